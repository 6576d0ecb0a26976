/* test-agent.c - host side of the agent channel: framing and decoders */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "agent.h"

struct seen {
	int n;
	uint16_t type[16];
	uint32_t id[16];
	size_t len[16];
	unsigned char first[16];
	int fail_at;
};

static int
collect(const struct agent_hdr *h, const void *p, void *opaque,
	struct error *err)
{
	struct seen *s = opaque;

	if (s->fail_at && s->n + 1 == s->fail_at)
		return error_set(err, EPROTO, "callback refused");
	cr_assert_lt(s->n, 16);
	s->type[s->n] = h->type;
	s->id[s->n] = h->id;
	s->len[s->n] = h->len;
	s->first[s->n] = h->len ? *(const unsigned char *)p : 0;
	s->n++;
	return 0;
}

static void
frame(struct buf *b, uint16_t type, uint32_t id, const void *p, uint32_t len)
{
	unsigned char hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = len, .type = type, .id = id };

	agent_hdr_encode(hdr, &h);
	buf_append(b, hdr, sizeof(hdr));
	if (len)
		buf_append(b, p, len);
}

Test(agent_frames, whole_and_split_frames)
{
	struct buf wire = { 0 }, in = { 0 };
	struct seen s = { 0 };

	frame(&wire, AGENT_STDOUT, 100, "hello", 5);
	frame(&wire, AGENT_EXIT, 100, "\0\0\0\0\0\0\0\0", 8);
	frame(&wire, AGENT_PONG, 7, NULL, 0);
	/* byte by byte: frames must come out exactly once, in order */
	for (size_t i = 0; i < wire.len; i++) {
		buf_append(&in, wire.data + i, 1);
		cr_assert_eq(agent_frames_parse(&in, collect, &s, NULL), 0);
	}
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.type[0], AGENT_STDOUT);
	cr_assert_eq(s.len[0], 5);
	cr_assert_eq(s.first[0], 'h');
	cr_assert_eq(s.type[1], AGENT_EXIT);
	cr_assert_eq(s.type[2], AGENT_PONG);
	cr_assert_eq(s.id[2], 7);
	cr_assert_eq(in.len, 0);
	buf_free(&wire);
	buf_free(&in);
}

Test(agent_frames, oversized_length_is_fatal_before_buffering)
{
	struct buf in = { 0 };
	struct seen s = { 0 };
	unsigned char hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = AGENT_MAX_PAYLOAD + 1,
			       .type = AGENT_STDOUT };
	struct error err = { 0 };

	agent_hdr_encode(hdr, &h);
	buf_append(&in, hdr, sizeof(hdr));
	cr_assert_lt(agent_frames_parse(&in, collect, &s, &err), 0);
	cr_assert_eq(err.code, EPROTO);
	cr_assert_eq(s.n, 0);
	buf_free(&in);
}

Test(agent_frames, length_of_4_gib_is_fatal)
{
	struct buf in = { 0 };
	struct seen s = { 0 };
	unsigned char hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = 0xffffffffu, .type = AGENT_STDOUT,
			       .id = 100 };
	struct error err = { 0 };

	agent_hdr_encode(hdr, &h);
	buf_append(&in, hdr, sizeof(hdr));
	buf_append(&in, "yyyy", 4);
	cr_assert_lt(agent_frames_parse(&in, collect, &s, &err), 0);
	cr_assert_eq(err.code, EPROTO);
	cr_assert(strstr(err.msg, "len 4294967295"), "%s", err.msg);
	cr_assert_eq(s.n, 0);
	buf_free(&in);
}

Test(agent_frames, truncated_frame_waits_for_the_rest)
{
	struct buf in = { 0 };
	struct seen s = { 0 };
	unsigned char hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = 1000, .type = AGENT_STDOUT, .id = 100 };

	agent_hdr_encode(hdr, &h);
	buf_append(&in, hdr, sizeof(hdr));
	buf_append(&in, "0123456789", 10);
	/* not an error, nothing delivered, the bytes kept for later */
	cr_assert_eq(agent_frames_parse(&in, collect, &s, NULL), 0);
	cr_assert_eq(s.n, 0);
	cr_assert_eq(in.len, AGENT_HDR_SIZE + 10);
	buf_free(&in);
}

Test(agent_frames, nonzero_flags_rejected)
{
	struct buf in = { 0 };
	struct seen s = { 0 };
	unsigned char hdr[AGENT_HDR_SIZE] = { 0 };

	hdr[4] = AGENT_PONG;
	hdr[6] = 1;
	buf_append(&in, hdr, sizeof(hdr));
	cr_assert_lt(agent_frames_parse(&in, collect, &s, NULL), 0);
	buf_free(&in);
}

Test(agent_frames, callback_error_stops_parsing)
{
	struct buf in = { 0 };
	struct seen s = { .fail_at = 2 };

	frame(&in, AGENT_PONG, 1, NULL, 0);
	frame(&in, AGENT_PONG, 2, NULL, 0);
	frame(&in, AGENT_PONG, 3, NULL, 0);
	cr_assert_lt(agent_frames_parse(&in, collect, &s, NULL), 0);
	cr_assert_eq(s.n, 1);
	buf_free(&in);
}

Test(agent_decode, hello)
{
	struct agent_hello h;
	struct error err = { 0 };
	unsigned char p[64] = { 1, 0, 0, 0 };
	size_t n = 4;

	memcpy(p + n, "ga 1.0\0Linux builder\0", 22);
	n += 22;
	cr_assert_eq(agent_decode_hello(p, n, &h, &err), 0);
	cr_assert_eq(h.version, 1);
	cr_assert_str_eq(h.agent_version, "ga 1.0");
	cr_assert_str_eq(h.uname, "Linux builder");
	/* string running past the end */
	cr_assert_lt(agent_decode_hello(p, 8, &h, &err), 0);
	cr_assert_lt(agent_decode_hello(p, 3, &h, &err), 0);
}

Test(agent_decode, hello_sanitizes_control_characters)
{
	struct agent_hello h;
	unsigned char p[] = { 1, 0, 0, 0, 'a', 0x1b, '[', '2', 'J', 0,
			      'u', '\n', 0 };

	cr_assert_eq(agent_decode_hello(p, sizeof(p), &h, NULL), 0);
	cr_assert_str_eq(h.agent_version, "a?[2J");
	cr_assert_str_eq(h.uname, "u?");
}

Test(agent_decode, exit)
{
	int32_t code, sig;
	unsigned char ok[8] = { 2, 0, 0, 0, 0, 0, 0, 0 };
	unsigned char killed[8] = { 0xff, 0xff, 0xff, 0xff, 9, 0, 0, 0 };
	unsigned char bad[8] = { 0, 1, 0, 0, 0, 0, 0, 0 };

	cr_assert_eq(agent_decode_exit(ok, 8, &code, &sig, NULL), 0);
	cr_assert_eq(code, 2);
	cr_assert_eq(sig, 0);
	cr_assert_eq(agent_decode_exit(killed, 8, &code, &sig, NULL), 0);
	cr_assert_eq(code, -1);
	cr_assert_eq(sig, 9);
	cr_assert_lt(agent_decode_exit(bad, 8, &code, &sig, NULL), 0);
	cr_assert_lt(agent_decode_exit(ok, 7, &code, &sig, NULL), 0);
	cr_assert_lt(agent_decode_exit(ok, 4, &code, &sig, NULL), 0);
}

Test(agent_decode, empty_payloads_where_one_is_required)
{
	int32_t code, sig, st;
	struct agent_hello hello;
	char msg[8];

	cr_assert_lt(agent_decode_exit("", 0, &code, &sig, NULL), 0);
	cr_assert_lt(agent_decode_status("", 0, &st, msg, sizeof(msg), NULL),
		     0);
	cr_assert_lt(agent_decode_hello("", 0, &hello, NULL), 0);
}

Test(agent_decode, type_names)
{
	cr_assert_str_eq(agent_type_name(AGENT_EXIT), "EXIT");
	cr_assert_str_eq(agent_type_name(AGENT_FILE_DONE), "FILE_DONE");
	cr_assert_str_eq(agent_type_name(AGENT_EXEC), "EXEC");
	cr_assert_str_eq(agent_type_name(AGENT_STDIN), "STDIN");
	cr_assert_str_eq(agent_type_name(AGENT_STDIN_END), "STDIN_END");
	cr_assert_str_eq(agent_type_name(AGENT_WINSIZE), "WINSIZE");
	cr_assert_str_eq(agent_type_name(0), "unknown");
	cr_assert_str_eq(agent_type_name(0x7777), "unknown");
}

Test(agent_decode, status_with_message)
{
	int32_t st;
	char msg[8];
	unsigned char p[] = { 5, 0, 0, 0, 'n', 'o', ' ', 's', 'p', 'a', 'c',
			      'e', '!', '!' };

	cr_assert_eq(agent_decode_status(p, sizeof(p), &st, msg, sizeof(msg),
					 NULL),
		     0);
	cr_assert_eq(st, 5);
	cr_assert_str_eq(msg, "no spac");	/* truncated, terminated */
	cr_assert_lt(agent_decode_status(p, 2, &st, msg, sizeof(msg), NULL),
		     0);
}

Test(agent_conn, exec_encoding_roundtrip_over_socket)
{
	int sv[2];
	struct agent_conn c;
	struct error err = { 0 };
	char a0[] = "echo hi", e0[] = "A=1", e1[] = "B=two";
	char *argv[] = { a0 };
	char *env[] = { e0, e1 };
	unsigned char got[256];
	struct agent_hdr h;
	struct agent_cursor cur;
	uint32_t flags, argc, envc;
	const char *s;
	ssize_t n;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	agent_conn_init(&c, sv[0], collect, NULL);
	cr_assert_eq(agent_send_exec(&c, 101, AGENT_EXEC_SHELL, "/src", argv,
				     1, env, 2, &err),
		     0);
	cr_assert_gt(agent_pending(&c), 0);
	cr_assert_eq(agent_handle_io(&c, EPOLLOUT, &err), 0);
	cr_assert_eq(agent_pending(&c), 0);
	n = read(sv[1], got, sizeof(got));
	cr_assert_gt(n, AGENT_HDR_SIZE);
	cr_assert_eq(agent_hdr_decode(got, &h), 0);
	cr_assert_eq(h.type, AGENT_EXEC);
	cr_assert_eq(h.id, 101);
	cr_assert_eq(h.len, (size_t)n - AGENT_HDR_SIZE);
	agent_cursor_init(&cur, got + AGENT_HDR_SIZE, h.len);
	cr_assert_eq(agent_cursor_u32(&cur, &flags), 0);
	cr_assert_eq(agent_cursor_u32(&cur, &argc), 0);
	cr_assert_eq(agent_cursor_u32(&cur, &envc), 0);
	cr_assert_eq(flags, AGENT_EXEC_SHELL);
	cr_assert_eq(argc, 1);
	cr_assert_eq(envc, 2);
	cr_assert_eq(agent_cursor_str(&cur, &s), 0);
	cr_assert_str_eq(s, "/src");
	cr_assert_eq(agent_cursor_str(&cur, &s), 0);
	cr_assert_str_eq(s, "echo hi");
	cr_assert_eq(agent_cursor_str(&cur, &s), 0);
	cr_assert_str_eq(s, "A=1");
	cr_assert_eq(agent_cursor_str(&cur, &s), 0);
	cr_assert_str_eq(s, "B=two");
	cr_assert_eq(cur.left, 0);
	agent_conn_free(&c);
	close(sv[0]);
	close(sv[1]);
}

Test(agent_conn, oversized_exec_refused)
{
	int sv[2];
	struct agent_conn c;
	struct error err = { 0 };
	char *big = malloc(AGENT_MAX_PAYLOAD + 10);
	char *argv[1] = { big };

	memset(big, 'x', AGENT_MAX_PAYLOAD + 9);
	big[AGENT_MAX_PAYLOAD + 9] = '\0';
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	agent_conn_init(&c, sv[0], collect, NULL);
	cr_assert_lt(agent_send_exec(&c, 1, AGENT_EXEC_SHELL, "/", argv, 1,
				     NULL, 0, &err),
		     0);
	cr_assert_eq(agent_pending(&c), 0);
	agent_conn_free(&c);
	free(big);
	close(sv[0]);
	close(sv[1]);
}

Test(agent_conn, eof_from_guest_is_an_error)
{
	int sv[2];
	struct agent_conn c;
	struct error err = { 0 };
	struct seen s = { 0 };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	agent_conn_init(&c, sv[0], collect, &s);
	/* half a header, then EOF */
	cr_assert_eq(write(sv[1], "\x05\x00\x00", 3), 3);
	close(sv[1]);
	cr_assert_lt(agent_handle_io(&c, EPOLLIN, &err), 0);
	cr_assert_eq(err.code, EPIPE);
	cr_assert(c.dead);
	cr_assert_lt(agent_send(&c, AGENT_PING, 1, NULL, 0, &err), 0);
	agent_conn_free(&c);
	close(sv[0]);
}

/* The frames queued in c, parsed back (the encoders' output). */
static struct seen
queued(struct agent_conn *c)
{
	struct buf copy = { 0 };
	struct seen s = { 0 };

	buf_append(&copy, c->out.data + c->out_off, agent_pending(c));
	cr_assert_eq(agent_frames_parse(&copy, collect, &s, NULL), 0);
	cr_assert_eq(copy.len, 0, "a partial frame was queued");
	buf_free(&copy);
	return s;
}

Test(agent_conn, stdin_is_split_into_frames_of_64_kib)
{
	size_t n = 2 * AGENT_MAX_PAYLOAD + 5;
	unsigned char *p = malloc(n);
	struct agent_conn c;
	struct error err = { 0 };
	struct seen s;

	for (size_t i = 0; i < n; i++)
		p[i] = (unsigned char)(i / AGENT_MAX_PAYLOAD + 'a');
	agent_conn_init(&c, -1, collect, NULL);
	cr_assert_eq(agent_send_stdin(&c, 9, p, n, &err), 0, "%s", err.msg);
	s = queued(&c);
	cr_assert_eq(s.n, 3);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(s.type[i], AGENT_STDIN);
		cr_assert_eq(s.id[i], 9);
		cr_assert_eq(s.first[i], 'a' + i);
	}
	cr_assert_eq(s.len[0], AGENT_MAX_PAYLOAD);
	cr_assert_eq(s.len[1], AGENT_MAX_PAYLOAD);
	cr_assert_eq(s.len[2], 5);
	agent_conn_free(&c);
	/* exactly one full frame, and one byte */
	agent_conn_init(&c, -1, collect, NULL);
	cr_assert_eq(agent_send_stdin(&c, 9, p, AGENT_MAX_PAYLOAD, &err), 0);
	cr_assert_eq(agent_send_stdin(&c, 9, "x", 1, &err), 0);
	s = queued(&c);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.len[0], AGENT_MAX_PAYLOAD);
	cr_assert_eq(s.len[1], 1);
	cr_assert_eq(s.first[1], 'x');
	agent_conn_free(&c);
	free(p);
}

Test(agent_conn, stdin_refuses_empty_and_id_0)
{
	struct agent_conn c;
	struct error err = { 0 };

	agent_conn_init(&c, -1, collect, NULL);
	cr_assert_lt(agent_send_stdin(&c, 9, "", 0, &err), 0);
	cr_assert_eq(err.code, EINVAL);
	cr_assert_lt(agent_send_stdin(&c, 0, "x", 1, &err), 0);
	cr_assert_lt(agent_send_stdin_end(&c, 0, &err), 0);
	cr_assert_lt(agent_send_winsize(&c, 0, 24, 80, &err), 0);
	cr_assert_eq(agent_pending(&c), 0);
	agent_conn_free(&c);
}

Test(agent_conn, stdin_end_and_winsize_encoding)
{
	struct agent_conn c;
	struct error err = { 0 };
	struct seen s;
	const unsigned char *w;

	agent_conn_init(&c, -1, collect, NULL);
	cr_assert_eq(agent_send_stdin_end(&c, 4, &err), 0);
	cr_assert_eq(agent_send_winsize(&c, 4, 50, 132, &err), 0);
	s = queued(&c);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.type[0], AGENT_STDIN_END);
	cr_assert_eq(s.id[0], 4);
	cr_assert_eq(s.len[0], 0);
	cr_assert_eq(s.type[1], AGENT_WINSIZE);
	cr_assert_eq(s.len[1], 8);
	/* payload: u32 rows, u32 cols after the second header */
	w = (const unsigned char *)c.out.data + c.out_off + 2 * AGENT_HDR_SIZE;
	cr_assert_eq(agent_get_u32(w), 50);
	cr_assert_eq(agent_get_u32(w + 4), 132);
	agent_conn_free(&c);
}

Test(agent_conn, winsize_bounds)
{
	struct agent_conn c;
	struct error err = { 0 };

	agent_conn_init(&c, -1, collect, NULL);
	cr_assert_eq(agent_send_winsize(&c, 1, 1, 1, &err), 0);
	cr_assert_eq(agent_send_winsize(&c, 1, 65535, 65535, &err), 0);
	cr_assert_lt(agent_send_winsize(&c, 1, 0, 80, &err), 0);
	cr_assert_eq(err.code, EINVAL);
	cr_assert_lt(agent_send_winsize(&c, 1, 24, 0, &err), 0);
	cr_assert_lt(agent_send_winsize(&c, 1, 65536, 80, &err), 0);
	cr_assert_lt(agent_send_winsize(&c, 1, 24, 0xffffffffu, &err), 0);
	cr_assert_eq(queued(&c).n, 2);
	agent_conn_free(&c);
}

Test(agent_conn, exec_flags_checked)
{
	struct agent_conn c;
	struct error err = { 0 };
	char a0[] = "sh";
	char *argv[] = { a0 };

	agent_conn_init(&c, -1, collect, NULL);
	cr_assert_eq(agent_send_exec(&c, 1, AGENT_EXEC_PTY | AGENT_EXEC_STDIN,
				     "/", argv, 1, NULL, 0, &err), 0);
	cr_assert_eq(agent_send_exec(&c, 2, AGENT_EXEC_FLAGS, "/", argv, 1,
				     NULL, 0, &err), 0);
	cr_assert_lt(agent_send_exec(&c, 3, 0x8, "/", argv, 1, NULL, 0, &err),
		     0);
	cr_assert_eq(err.code, EINVAL);
	cr_assert_lt(agent_send_exec(&c, 3, AGENT_EXEC_SHELL | 0x100, "/",
				     argv, 1, NULL, 0, &err), 0);
	cr_assert_eq(queued(&c).n, 2);
	agent_conn_free(&c);
}
