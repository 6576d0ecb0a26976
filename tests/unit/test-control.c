/*
 * test-control.c - the control socket: framing, negotiation, dispatch,
 * slow clients; and the scheduler (serve.c) behind a fake build engine,
 * so that no VM is needed.
 */
#include <dirent.h>
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "control.h"
#include "json-util.h"
#include "serve.h"

/* ---- framer ------------------------------------------------------------- */

/* Feed all of s; the values and errors found, as "M:<value>" / "E:<why>". */
static int
frame_all(struct ctl_framer *f, const char *s, size_t n, char out[][256],
	  int max)
{
	int k = 0;

	while (n > 0 && k < max) {
		enum ctl_frame fr;
		size_t used = ctl_framer_feed(f, s, n, &fr);

		cr_assert_gt(used, 0);
		cr_assert_leq(used, n);
		s += used;
		n -= used;
		if (fr == CTL_FRAME_MSG)
			snprintf(out[k++], 256, "M:%.*s", (int)f->msg.len,
				 f->msg.data);
		else if (fr == CTL_FRAME_ERROR)
			snprintf(out[k++], 256, "E:%s", f->why);
	}
	return k;
}

Test(framer, values_back_to_back_without_newlines)
{
	struct ctl_framer f;
	char out[8][256];
	const char *s = "{\"a\":1}{\"b\":[2,{}]}  \r\n [true]";

	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 8), 3);
	cr_assert_str_eq(out[0], "M:{\"a\":1}");
	cr_assert_str_eq(out[1], "M:{\"b\":[2,{}]}");
	cr_assert_str_eq(out[2], "M:[true]");
	ctl_framer_free(&f);
}

Test(framer, split_byte_by_byte)
{
	struct ctl_framer f;
	const char *s = "{\"execute\": \"x\", \"id\": \"}{\\\"\"}\n";
	int msgs = 0;

	ctl_framer_init(&f, 0);
	for (size_t i = 0; i < strlen(s); i++) {
		enum ctl_frame fr;

		cr_assert_eq(ctl_framer_feed(&f, s + i, 1, &fr), 1);
		cr_assert_neq(fr, CTL_FRAME_ERROR);
		if (fr == CTL_FRAME_MSG) {
			msgs++;
			cr_assert_eq(f.msg.len, strlen(s) - 1);
			cr_assert_eq(memcmp(f.msg.data, s, f.msg.len), 0);
		}
	}
	cr_assert_eq(msgs, 1);
	ctl_framer_free(&f);
}

Test(framer, brackets_inside_strings_do_not_count)
{
	struct ctl_framer f;
	char out[4][256];
	const char *s = "{\"a\": \"}]\\\\\", \"b\": \"{[\\\"\"}";

	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 4), 1);
	cr_assert_eq(strlen(out[0]), strlen(s) + 2);
	ctl_framer_free(&f);
}

Test(framer, bad_character_drops_the_rest_of_its_line)
{
	struct ctl_framer f;
	char out[4][256];
	const char *s = "{bad json}} }}\n{\"ok\":1}\n";

	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 4), 2);
	cr_assert_str_eq(out[0], "E:unexpected character");
	cr_assert_str_eq(out[1], "M:{\"ok\":1}");
	ctl_framer_free(&f);
}

Test(framer, unbalanced_close_is_an_error)
{
	struct ctl_framer f;
	char out[4][256];
	const char *s = "}\n[1]";

	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 4), 2);
	cr_assert_str_eq(out[0], "E:unbalanced closing bracket");
	cr_assert_str_eq(out[1], "M:[1]");
	ctl_framer_free(&f);
}

Test(framer, top_level_scalars_end_at_newline)
{
	struct ctl_framer f;
	char out[4][256];
	const char *s = "42\nnot json at all\n\"str\"\n";

	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 4), 3);
	cr_assert_str_eq(out[0], "M:42\n");
	cr_assert_str_eq(out[1], "M:not json at all\n");
	cr_assert_str_eq(out[2], "M:\"str\"\n");
	ctl_framer_free(&f);
}

Test(framer, control_character_in_string)
{
	struct ctl_framer f;
	char out[4][256];
	/* a newline inside a string ends the line: the next one is fresh */
	const char *s = "{\"a\": \"x\ny\"}\n{\"b\": \"\x01\"} junk\n{}";

	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 4), 4);
	cr_assert_str_eq(out[0], "E:control character in a string");
	/* 'y"}' then newline: y starts a scalar line */
	cr_assert_str_eq(out[1], "M:y\"}\n");
	cr_assert_str_eq(out[2], "E:control character in a string");
	cr_assert_str_eq(out[3], "M:{}");
	ctl_framer_free(&f);
}

Test(framer, too_long_is_one_error_then_in_sync)
{
	struct ctl_framer f;
	char out[8][256];
	struct buf b = { 0 };

	ctl_framer_init(&f, 64);
	/* too long, with brackets in a string, then a value on its line */
	buf_append(&b, "{\"a\": \"", 7);
	for (int i = 0; i < 1000; i++)
		buf_append(&b, i % 7 ? "x" : "}", 1);
	buf_append(&b, "\"}{\"b\":1}\n", 10);
	/* too long without any structure, up to its newline */
	for (int i = 0; i < 1000; i++)
		buf_append(&b, "1", 1);
	buf_append(&b, "\n{\"c\":2}", 8);
	cr_assert_eq(frame_all(&f, b.data, b.len, out, 8), 4);
	cr_assert_str_eq(out[0], "E:request too long");
	cr_assert_str_eq(out[1], "M:{\"b\":1}");
	cr_assert_str_eq(out[2], "E:request too long");
	cr_assert_str_eq(out[3], "M:{\"c\":2}");
	/* the big buffer was given back */
	cr_assert_leq(f.msg.cap, 65536);
	buf_free(&b);
	ctl_framer_free(&f);
}

Test(framer, nesting_is_bounded)
{
	struct ctl_framer f;
	char out[4][256];
	char s[200];

	memset(s, '[', 100);
	strcpy(s + 100, "\n[]");
	ctl_framer_init(&f, 0);
	cr_assert_eq(frame_all(&f, s, strlen(s), out, 4), 2);
	cr_assert_str_eq(out[0], "E:nesting too deep");
	cr_assert_str_eq(out[1], "M:[]");
	ctl_framer_free(&f);
}

/* ---- a server over socketpairs ----------------------------------------- */

static struct loop *L;
static struct ctl *C;

struct peer {
	int fd;
	struct buf in;
	json_t *events;	/* received while waiting for a reply */
	bool eof;	/* the server closed: not just silent */
};

static void
pump(int ms)
{
	int64_t end = now_ms() + ms;

	do
		loop_run_once(L, 5);
	while (now_ms() < end);
}

/* Run the server's loop until cond holds; a loaded host may take long
 * (30 s), but what never happens fails the test, naming what. */
#define PUMP_UNTIL(cond, what)                                              \
	do {                                                                \
		int64_t end_ = now_ms() + 30000;                            \
                                                                            \
		while (!(cond)) {                                           \
			cr_assert_lt(now_ms(), end_,                        \
				     "30 s and still not: %s", what);       \
			loop_run_once(L, 5);                                \
		}                                                           \
	} while (0)

/* The next message the server sent to p; NULL after EOF (p->eof) or
 * 30 s of silence. */
static json_t *
peer_recv_raw(struct peer *p, char *raw, size_t rawsz)
{
	int64_t end = now_ms() + 30000;
	json_error_t je;

	for (;;) {
		char *nl = p->in.data ? memchr(p->in.data, '\n', p->in.len)
				      : NULL;
		char tmp[65536];
		ssize_t n;

		if (nl) {
			size_t len = nl - p->in.data + 1;
			json_t *j;

			cr_assert_geq(len, 2);
			cr_assert_eq(nl[-1], '\r', "lines end with \\r\\n");
			if (raw)
				snprintf(raw, rawsz, "%.*s", (int)len - 2,
					 p->in.data);
			j = json_loadb(p->in.data, len, 0, &je);
			cr_assert_not_null(j, "bad JSON from server: %s",
					   je.text);
			buf_consume(&p->in, len);
			return j;
		}
		n = recv(p->fd, tmp, sizeof(tmp), MSG_DONTWAIT);
		if (n > 0) {
			buf_append(&p->in, tmp, n);
			continue;
		}
		if (n == 0)
			p->eof = true;
		if (n == 0 || now_ms() > end)
			return NULL;
		loop_run_once(L, 5);
	}
}

/* The server closes p's connection, with nothing more said before. */
static void
peer_expect_eof(struct peer *p)
{
	json_t *j = peer_recv_raw(p, NULL, 0);

	cr_assert_null(j, "a message instead of EOF: %s", json_dumps(j, 0));
	cr_assert(p->eof, "30 s of silence instead of EOF");
}

static json_t *
peer_recv(struct peer *p)
{
	json_t *j = peer_recv_raw(p, NULL, 0);

	cr_assert_not_null(j, "no message from the server");
	return j;
}

/* The next reply; events before it are kept for peer_event. */
static json_t *
peer_reply(struct peer *p)
{
	for (;;) {
		json_t *j = peer_recv(p);

		if (!json_object_get(j, "event"))
			return j;
		json_array_append_new(p->events, j);
	}
}

/* The next event, kept or new. */
static json_t *
peer_event(struct peer *p)
{
	json_t *e;

	if (json_array_size(p->events)) {
		e = json_incref(json_array_get(p->events, 0));
		json_array_remove(p->events, 0);
		return e;
	}
	e = peer_recv(p);
	cr_assert_not_null(json_object_get(e, "event"), "an event");
	return e;
}

static const char *
str(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static void
peer_send(struct peer *p, const char *s)
{
	cr_assert_eq(write_in_full(p->fd, s, strlen(s)), (ssize_t)strlen(s));
}

static struct peer *
peer_new(void)
{
	struct peer *p = xcalloc(1, sizeof(*p));
	struct error err = { 0 };
	char raw[512];
	json_t *g;
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(ctl_add_client(C, sv[0], &err), 0, "%s", err.msg);
	p->fd = sv[1];
	p->events = json_array();
	g = peer_recv_raw(p, raw, sizeof(raw));
	cr_assert_not_null(g);
	cr_assert(json_is_object(json_object_get(g, "QMP")));
	json_decref(g);
	return p;
}

static void
peer_free(struct peer *p)
{
	close(p->fd);
	buf_free(&p->in);
	json_decref(p->events);
	free(p);
}

/* Send a request and expect a reply whose text is exactly want. */
static void
expect(struct peer *p, const char *req, const char *want)
{
	char raw[4096];
	json_t *j;

	peer_send(p, req);
	for (;;) {
		j = peer_recv_raw(p, raw, sizeof(raw));
		cr_assert_not_null(j, "no reply to %s", req);
		if (!json_object_get(j, "event"))
			break;
		json_array_append_new(p->events, j);
	}
	json_decref(j);
	cr_assert_str_eq(raw, want, "request %s\n  got %s", req, raw);
}

static void
negotiate(struct peer *p)
{
	expect(p, "{\"execute\": \"qmp_capabilities\"}",
	       "{\"return\": {}}");
}

static int
cmd_echo(void *opaque, const struct ctl_peer *peer, json_t *args,
	 json_t **ret, struct error *err)
{
	(void)opaque;
	(void)peer;
	(void)err;
	*ret = json_deep_copy(args);
	return 0;
}

static int
cmd_fail(void *opaque, const struct ctl_peer *peer, json_t *args,
	 json_t **ret, struct error *err)
{
	(void)opaque;
	(void)peer;
	(void)args;
	(void)ret;
	return error_set(err, EIO, "it failed");
}

static int
cmd_big(void *opaque, const struct ctl_peer *peer, json_t *args,
	json_t **ret, struct error *err)
{
	static char s[65536];

	(void)opaque;
	(void)peer;
	(void)args;
	(void)err;
	memset(s, 'x', sizeof(s) - 1);
	*ret = json_pack("{s:s}", "s", s);
	return 0;
}

static const struct ctl_cmd test_cmds[] = {
	{ "echo", cmd_echo, "s:s n:i? b:b? o:o? a:a? any:*?", "echo" },
	{ "fail", cmd_fail, NULL, "always fails" },
	{ "big", cmd_big, NULL, "a 64 KiB reply" },
};

static void
server_up(const struct ctl_opts *o)
{
	L = loop_new();
	cr_assert_not_null(L);
	C = ctl_new(L, test_cmds, ARRAY_SIZE(test_cmds), NULL, o);
}

static void
server_down(void)
{
	ctl_free(C);
	loop_free(L);
	C = NULL;
	L = NULL;
}

static void
setup(void)
{
	struct ctl_opts o = { .package = "qctl test", .msg_max = 4096 };

	server_up(&o);
}

TestSuite(ctl, .init = setup, .fini = server_down);

Test(ctl, greeting_is_qemus_shape)
{
	struct peer *p = xcalloc(1, sizeof(*p));
	struct error err = { 0 };
	char raw[512];
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(ctl_add_client(C, sv[0], &err), 0);
	p->fd = sv[1];
	p->events = json_array();
	json_decref(peer_recv_raw(p, raw, sizeof(raw)));
	cr_assert_str_eq(raw, "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": "
			      "0, \"minor\": 1, \"major\": 0}, \"package\": "
			      "\"qctl test\"}, \"capabilities\": []}}");
	peer_free(p);
}

Test(ctl, nothing_but_qmp_capabilities_before_negotiation)
{
	struct peer *p = peer_new();

	expect(p, "{\"execute\": \"query-version\", \"id\": 7}",
	       "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
	       "\"Expecting capabilities negotiation with "
	       "'qmp_capabilities'\"}, \"id\": 7}");
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"x\"}}",
	       "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
	       "\"Expecting capabilities negotiation with "
	       "'qmp_capabilities'\"}}");
	expect(p, "{\"execute\": \"qmp_capabilities\", \"arguments\": "
		  "{\"enable\": [\"oob\"]}, \"id\": 1}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	       "\"Capability 'oob' not available\"}, \"id\": 1}");
	expect(p, "{\"execute\": \"qmp_capabilities\", \"id\": \"n\"}",
	       "{\"return\": {}, \"id\": \"n\"}");
	expect(p, "{\"execute\": \"qmp_capabilities\"}",
	       "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
	       "\"Capabilities negotiation is already complete, command "
	       "ignored\"}}");
	expect(p, "{\"execute\": \"query-version\"}",
	       "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 1, "
	       "\"major\": 0}, \"package\": \"qctl test\"}}");
	peer_free(p);
}

Test(ctl, id_is_echoed_whatever_its_type)
{
	struct peer *p = peer_new();

	negotiate(p);
	expect(p, "{\"execute\": \"fail\", \"id\": {\"a\": [1, null]}}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"it "
	       "failed\"}, \"id\": {\"a\": [1, null]}}");
	expect(p, "{\"id\": 1.5, \"execute\": \"echo\", \"arguments\": "
		  "{\"s\": \"\"}}",
	       "{\"return\": {\"s\": \"\"}, \"id\": 1.5}");
	expect(p, "{\"execute\": \"nope\", \"id\": null}",
	       "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The "
	       "command nope has not been found\"}, \"id\": null}");
	peer_free(p);
}

Test(ctl, malformed_requests_get_errors_and_the_connection_lives)
{
	struct peer *p = peer_new();

	negotiate(p);
	expect(p, "{bad json}\n",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON "
	       "parse error, unexpected character\"}}");
	expect(p, "{\"a\": tru}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON "
	       "parse error, invalid token near 'tru'\"}}");
	expect(p, "[1, 2]",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP "
	       "input must be a JSON object\"}}");
	expect(p, "{\"execute\": 3, \"id\": 1}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP "
	       "input member 'execute' must be a string\"}, \"id\": 1}");
	expect(p, "{\"id\": 2}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP "
	       "input lacks member 'execute'\"}, \"id\": 2}");
	expect(p, "{\"execute\": \"echo\", \"arguments\": [], \"id\": 3}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP "
	       "input member 'arguments' must be an object\"}, \"id\": 3}");
	expect(p, "{\"execute\": \"echo\", \"control\": 1}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"QMP "
	       "input member 'control' is unexpected\"}}");
	expect(p, "{\"execute\": \"echo\", \"execute\": \"echo\"}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"JSON "
	       "parse error, duplicate object key near '\\\"execute\\\"'\"}}");
	expect(p, "{\"execute\": \"query-version\"}",
	       "{\"return\": {\"qemu\": {\"micro\": 0, \"minor\": 1, "
	       "\"major\": 0}, \"package\": \"qctl test\"}}");
	peer_free(p);
}

Test(ctl, arguments_are_checked_against_the_spec)
{
	struct peer *p = peer_new();

	negotiate(p);
	expect(p, "{\"execute\": \"echo\"}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	       "\"Parameter 's' is missing\"}}");
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": 1}}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid "
	       "parameter type for 's', expected: string\"}}");
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"\", "
		  "\"n\": \"1\"}}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"Invalid "
	       "parameter type for 'n', expected: integer\"}}");
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"\", "
		  "\"zz\": 1}}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	       "\"Parameter 'zz' is unexpected\"}}");
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"\", "
		  "\"n\": 1, \"b\": false, \"o\": {}, \"a\": [], \"any\": "
		  "null}}",
	       "{\"return\": {\"s\": \"\", \"n\": 1, \"b\": false, \"o\": {}, "
	       "\"a\": [], \"any\": null}}");
	/* client strings are quoted harmlessly */
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"\", "
		  "\"\\u001b[2J\": 1}}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	       "\"Parameter '?[2J' is unexpected\"}}");
	expect(p, "{\"execute\": \"query-commands\", \"arguments\": "
		  "{\"x\": 1}}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": "
	       "\"Parameter 'x' is unexpected\"}}");
	peer_free(p);
}

Test(ctl, query_commands_lists_builtins_and_table)
{
	struct peer *p = peer_new();
	json_t *r, *ret, *v;
	size_t i;
	int seen = 0;

	negotiate(p);
	peer_send(p, "{\"execute\": \"query-commands\"}");
	r = peer_reply(p);
	ret = json_object_get(r, "return");
	cr_assert_eq(json_array_size(ret), 6);
	json_array_foreach(ret, i, v) {
		const char *n = json_string_value(json_object_get(v, "name"));

		seen += !strcmp(n, "qmp_capabilities") + !strcmp(n, "big") +
			!strcmp(n, "query-version");
	}
	cr_assert_eq(seen, 3);
	json_decref(r);
	peer_free(p);
}

Test(ctl, oversized_request_then_usable)
{
	struct peer *p = peer_new();
	struct buf b = { 0 };

	negotiate(p);
	/* 64 KiB against a 4 KiB cap, sent while the server reads */
	static const char head[] =
		"{\"execute\": \"echo\", \"arguments\": {\"s\": \"";
	json_t *r;

	buf_append(&b, head, strlen(head));
	for (int i = 0; i < 65536; i++)
		buf_append(&b, "y", 1);
	buf_append(&b, "\"}}\n", 4);
	fd_set_nonblock(p->fd);
	for (size_t off = 0; off < b.len;) {
		ssize_t w = write(p->fd, b.data + off, b.len - off);

		if (w > 0)
			off += w;
		loop_run_once(L, 5);
	}
	r = peer_reply(p);
	cr_assert(strstr(str(json_object_get(r, "error"), "desc"),
			 "longer than 4096"));
	json_decref(r);
	expect(p, "{\"execute\": \"echo\", \"arguments\": {\"s\": \"z\"}}",
	       "{\"return\": {\"s\": \"z\"}}");
	buf_free(&b);
	peer_free(p);
}

Test(ctl, oversized_request_reply_comes_first)
{
	struct peer *p = peer_new();
	char raw[512];
	json_t *j;
	char big[6000];

	negotiate(p);
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	peer_send(p, big);
	peer_send(p, "\n");
	j = peer_recv_raw(p, raw, sizeof(raw));
	json_decref(j);
	cr_assert_str_eq(raw, "{\"error\": {\"class\": \"GenericError\", "
			      "\"desc\": \"JSON parse error, request longer "
			      "than 4096 bytes\"}}");
	peer_free(p);
}

Test(ctl, many_requests_in_one_write_are_all_answered)
{
	struct peer *p = peer_new();
	struct buf b = { 0 };
	char req[128];

	negotiate(p);
	for (int i = 0; i < 200; i++) {
		snprintf(req, sizeof(req),
			 "{\"execute\":\"echo\",\"arguments\":{\"s\":\"\"},"
			 "\"id\":%d}", i);
		buf_append(&b, req, strlen(req));
	}
	peer_send(p, b.data);
	for (int i = 0; i < 200; i++) {
		json_t *r = peer_reply(p);

		cr_assert_eq(json_integer_value(json_object_get(r, "id")), i);
		json_decref(r);
	}
	buf_free(&b);
	peer_free(p);
}

Test(ctl, events_go_to_negotiated_clients_only)
{
	struct peer *a = peer_new(), *b = peer_new();
	json_t *e, *ts;

	negotiate(a);
	ctl_event(C, "BUILD_STARTED", json_pack("{s:s}", "build", "b1"));
	e = peer_recv(a);
	cr_assert_str_eq(json_string_value(json_object_get(e, "event")),
			 "BUILD_STARTED");
	cr_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(e, "data"), "build")),
			 "b1");
	ts = json_object_get(e, "timestamp");
	cr_assert(json_integer_value(json_object_get(ts, "seconds")) >
		  1600000000);
	cr_assert(json_is_integer(json_object_get(ts, "microseconds")));
	json_decref(e);
	/* b is not negotiated: its next message is the reply */
	expect(b, "{\"execute\": \"qmp_capabilities\"}", "{\"return\": {}}");
	peer_free(a);
	peer_free(b);
}

Test(ctl, client_gone_mid_request_leaves_others_served)
{
	struct peer *a = peer_new(), *b = peer_new();

	negotiate(a);
	negotiate(b);
	peer_send(a, "{\"execute\": \"echo\", \"argu");
	pump(20);
	peer_free(a);
	PUMP_UNTIL(ctl_n_clients(C) == 1, "the departed client dropped");
	ctl_event(C, "X", NULL);
	expect(b, "{\"execute\": \"fail\"}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"it "
	       "failed\"}}");
	peer_free(b);
}

Test(ctl, half_closed_client_gets_its_replies)
{
	struct peer *p = peer_new();
	json_t *r;

	peer_send(p, "{\"execute\": \"qmp_capabilities\", \"id\": 1}\n"
		     "{\"execute\": \"query-version\", \"id\": 2}\n");
	shutdown(p->fd, SHUT_WR);
	r = peer_reply(p);
	cr_assert_eq(json_integer_value(json_object_get(r, "id")), 1);
	json_decref(r);
	r = peer_reply(p);
	cr_assert_eq(json_integer_value(json_object_get(r, "id")), 2);
	json_decref(r);
	peer_expect_eof(p);
	PUMP_UNTIL(ctl_n_clients(C) == 0, "the half-closed client dropped");
	peer_free(p);
}

/* Slow clients: small queues, small socket buffers.  The stall timeout
 * is long here: a test thread that a loaded host holds off the CPU for a
 * moment must not look like a client that stopped reading (the stall
 * test sets its own). */
static void
setup_slow(void)
{
	struct ctl_opts o = { .package = "qctl test", .out_max = 8192,
			      .stall_ms = 60000 };

	server_up(&o);
}

/* A negotiated peer with little kernel buffering towards it. */
static struct peer *
slow_peer(void)
{
	struct peer *p = xcalloc(1, sizeof(*p));
	struct error err = { 0 };
	int sv[2], small = 4096;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	/* unix sockets count in-flight bytes against the sender */
	cr_assert_eq(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small,
				sizeof(small)), 0);
	cr_assert_eq(ctl_add_client(C, sv[0], &err), 0);
	p->fd = sv[1];
	p->events = json_array();
	json_decref(peer_recv(p));
	negotiate(p);
	return p;
}

TestSuite(slow, .init = setup_slow, .fini = server_down);

Test(slow, events_past_the_queue_are_dropped_with_a_notice)
{
	struct peer *p = slow_peer(), *q = peer_new();
	uint64_t seen = 0, dropped = 0, notices = 0;
	bool got_reply = false;
	json_t *j;

	negotiate(q);
	for (int i = 0; i < 2000; i++)
		ctl_event(C, "TICK",
			  json_pack("{s:i, s:s}", "i", i, "pad",
				    "................................"
				    "................................"));
	cr_assert_gt(ctl_events_dropped(C), 0);
	/* a reply is never dropped, even now */
	peer_send(p, "{\"execute\": \"query-version\", \"id\": \"v\"}");
	pump(50);
	while (!got_reply || seen + dropped < 2000) {
		const char *ev;

		j = peer_recv_raw(p, NULL, 0);
		cr_assert_not_null(j, "seen %lu dropped %lu",
				   (unsigned long)seen, (unsigned long)dropped);
		ev = json_string_value(json_object_get(j, "event"));
		if (!ev) {
			cr_assert_str_eq(json_string_value(
						 json_object_get(j, "id")),
					 "v");
			got_reply = true;
			json_decref(j);
			continue;
		}
		if (!strcmp(ev, "TICK")) {
			seen++;
		} else {
			cr_assert_str_eq(ev, "EVENTS_DROPPED");
			dropped += json_integer_value(json_object_get(
				json_object_get(j, "data"), "count"));
			notices++;
		}
		json_decref(j);
	}
	cr_assert_geq(notices, 1);
	/* every event was delivered or counted, none twice */
	cr_assert_eq(seen + dropped, 2000);
	cr_assert_gt(dropped, 0);
	peer_free(p);
	peer_free(q);
}

Test(slow, client_that_reads_no_replies_is_dropped)
{
	struct ctl_opts o = { .package = "qctl test", .out_max = 8192,
			      .stall_ms = 300 };
	struct peer *p, *q;
	int64_t t0;

	server_down();
	server_up(&o);
	p = slow_peer();
	q = peer_new();
	negotiate(q);
	/* the stall clock starts when the first reply is queued, after t0:
	 * dropped, but not before 300 ms from t0, however late we look */
	t0 = now_ms();
	for (int i = 0; i < 20; i++)
		peer_send(p, "{\"execute\": \"big\"}");
	PUMP_UNTIL(ctl_n_clients(C) == 1, "dropped after the stall timeout");
	cr_assert_geq(now_ms() - t0, 300, "dropped after %lld ms, before the "
		      "stall timeout", (long long)(now_ms() - t0));
	/* the other client never noticed */
	expect(q, "{\"execute\": \"fail\"}",
	       "{\"error\": {\"class\": \"GenericError\", \"desc\": \"it "
	       "failed\"}}");
	peer_free(p);
	peer_free(q);
}

Test(slow, flooding_requests_are_not_all_buffered)
{
	struct peer *p = slow_peer();
	int replies = 0;
	json_t *j;

	/* 200 x 64 KiB of replies: the server stops reading instead */
	fd_set_nonblock(p->fd);
	for (int i = 0; i < 200; i++) {
		static const char req[] = "{\"execute\": \"big\"}";

		if (write(p->fd, req, sizeof(req) - 1) < 0)
			break;
		loop_run_once(L, 0);
	}
	pump(50);
	cr_assert_eq(ctl_n_clients(C), 1);
	/* reading now, everything arrives, in order */
	while (replies < 200 && (j = peer_recv_raw(p, NULL, 0))) {
		cr_assert_not_null(json_object_get(j, "return"));
		replies++;
		json_decref(j);
	}
	cr_assert_eq(replies, 200);
	peer_free(p);
}

Test(ctl, listen_socket_mode_stale_and_live)
{
	char dir[] = "/tmp/qctl-test-ctl-XXXXXX";
	char path[256], junk[256];
	struct error err = { 0 };
	struct ctl *c2;
	struct stat st;
	int fd;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	snprintf(junk, sizeof(junk), "%s/file", dir);
	cr_assert_eq(ctl_listen(C, path, 0640, getgid(), &err), 0, "%s",
		     err.msg);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0640);
	/* a second server must not steal a live socket */
	c2 = ctl_new(L, NULL, 0, NULL, NULL);
	cr_assert_lt(ctl_listen(c2, path, 0660, getgid(), &err), 0);
	cr_assert(strstr(err.msg, "another server"), "%s", err.msg);
	/* nor overwrite something that is not a socket */
	fd = open(junk, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	close(fd);
	cr_assert_lt(ctl_listen(c2, junk, 0660, getgid(), &err), 0);
	/* a dead server's socket is replaced */
	ctl_stop_listening(C);
	cr_assert_neq(stat(path, &st), 0, "socket removed");
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	{
		struct sockaddr_un sa = { .sun_family = AF_UNIX };

		strcpy(sa.sun_path, path);
		cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	}
	close(fd);
	cr_assert_eq(ctl_listen(c2, path, 0660, getgid(), &err), 0, "%s",
		     err.msg);
	ctl_free(c2);
	cr_assert_neq(stat(path, &st), 0, "removed by ctl_free");
	unlink(junk);
	rmdir(dir);
}

static int
connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

Test(ctl, clients_beyond_the_cap_are_refused)
{
	struct ctl_opts o = { .package = "qctl test", .max_clients = 2 };
	char dir[] = "/tmp/qctl-test-ctl-XXXXXX";
	struct peer *p[3];
	char path[256], raw[512];
	struct error err = { 0 };

	server_down();
	server_up(&o);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/sock", dir);
	cr_assert_eq(ctl_listen(C, path, 0600, getgid(), &err), 0);
	for (int i = 0; i < 3; i++) {
		p[i] = xcalloc(1, sizeof(*p[i]));
		p[i]->events = json_array();
		p[i]->fd = connect_to(path);
		if (i < 2)	/* accepted before the next one comes */
			PUMP_UNTIL(ctl_n_clients(C) == (size_t)i + 1,
				   "the connection accepted");
	}
	json_decref(peer_recv_raw(p[2], raw, sizeof(raw)));
	cr_assert_str_eq(raw, "{\"error\": {\"class\": \"GenericError\", "
			      "\"desc\": \"too many clients\"}}");
	peer_expect_eof(p[2]);
	cr_assert_eq(ctl_n_clients(C), 2);
	json_decref(peer_recv(p[0]));
	negotiate(p[0]);
	for (int i = 0; i < 3; i++)
		peer_free(p[i]);
	PUMP_UNTIL(ctl_n_clients(C) == 0, "all clients dropped");
	ctl_stop_listening(C);
	rmdir(dir);
}

/* ---- the scheduler behind a fake engine -------------------------------- */

/*
 * The fake engine: a build "boots" in 20 ms, then each step takes 20 ms.
 * A step whose run is "false" fails; "hang" never ends; a recipe whose
 * first step is "nostart" fails to start.  Cancel ends it a round later,
 * as the real engine does once QEMU's pidfd fires.
 */
struct build {
	struct loop *loop;
	const struct recipe *recipe;
	struct build_opts opts;
	build_done_fn done;
	void *opaque;
	struct build_result res;
	char *run_dir;
	struct loop_timer *t;
	size_t step;
	bool in_step, ended, paused;
	bool holding;	/* steps done, opts.hold_always: until hold_end */
};

static int fake_live;	/* fake builds not freed */
static bool fake_held;	/* builds mark time: no step begins or ends */
static int fake_kept;	/* run dirs left by free (keep) */

static struct build *
fake_new(struct loop *loop, const struct recipe *r,
	 const struct build_opts *o, build_done_fn done, void *opaque)
{
	struct build *b = xcalloc(1, sizeof(*b));

	b->loop = loop;
	b->recipe = r;
	b->opts = *o;
	b->done = done;
	b->opaque = opaque;
	b->res.status = BUILD_RUNNING;
	b->res.accel = "tcg";
	b->res.n_steps = r->n_steps;
	b->res.steps = xcalloc(r->n_steps, sizeof(*b->res.steps));
	for (size_t i = 0; i < r->n_steps; i++) {
		b->res.steps[i].name = xstrdup(r->steps[i].name);
		b->res.steps[i].exit_code = -1;
	}
	fake_live++;
	return b;
}

static void
fake_log(struct build *b, const char *s)
{
	char *p = xasprintf("%s/build.log", b->run_dir);
	int fd = open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	cr_assert_geq(fd, 0);
	cr_assert_eq(write_in_full(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
	free(p);
}

static void
fake_end(struct build *b)
{
	loop_timer_cancel(b->t);
	b->t = NULL;
	b->ended = true;
	fake_log(b, "the end\n");
	b->done(b, b->opaque);
}

static void
fake_tick(struct loop *l, void *opaque)
{
	struct build *b = opaque;
	const struct recipe_step *s;
	json_t *d;

	b->t = NULL;
	if (fake_held) {
		b->t = loop_timer_at(l, now_ms() + 20, fake_tick, b);
		return;
	}
	if (b->step >= b->recipe->n_steps) {
		result_finish(&b->res, BUILD_PASSED, "all passed");
		if (b->opts.hold_always) {
			b->holding = true;
			d = json_pack("{s:s, s:b}", "step", "x", "passed", 1);
			b->opts.event(b, "BUILD_HELD", d,
				      b->opts.event_opaque);
			json_decref(d);
			return;
		}
		fake_end(b);
		return;
	}
	s = &b->recipe->steps[b->step];
	if (!b->in_step) {
		b->in_step = true;
		d = json_pack("{s:s, s:I}", "step", s->name, "index",
			      (json_int_t)b->step);
		b->opts.event(b, "STEP_STARTED", d, b->opts.event_opaque);
		json_decref(d);
		fake_log(b, s->name);
		fake_log(b, "| started\n");
		if (!strcmp(s->run, "hang"))
			return;
		b->t = loop_timer_at(l, now_ms() + 20, fake_tick, b);
		return;
	}
	b->in_step = false;
	b->res.steps[b->step].ran = true;
	b->res.steps[b->step].exit_code = strcmp(s->run, "false") ? 0 : 1;
	d = json_pack("{s:s, s:I, s:i}", "step", s->name, "index",
		      (json_int_t)b->step, "exit_code",
		      b->res.steps[b->step].exit_code);
	b->opts.event(b, "STEP_FINISHED", d, b->opts.event_opaque);
	json_decref(d);
	if (b->res.steps[b->step].exit_code) {
		result_finish(&b->res, BUILD_FAILED, "step %s failed",
			      s->name);
		fake_end(b);
		return;
	}
	b->step++;
	b->t = loop_timer_at(l, now_ms() + 20, fake_tick, b);
}

static int
fake_start(struct build *b, struct error *err)
{
	char *tmpl = xasprintf("%s/run-XXXXXX", b->opts.run_root);

	cr_assert(b->opts.keep, "serve keeps run directories itself");
	cr_assert_not_null(mkdtemp(tmpl));
	b->run_dir = tmpl;
	b->res.run_dir = xstrdup(tmpl);
	if (!strcmp(b->recipe->steps[0].run, "nostart"))
		return error_set(err, EIO, "no VM today");
	fake_log(b, "booting\n");
	b->t = loop_timer_at(b->loop, now_ms() + 20, fake_tick, b);
	return 0;
}

static void
fake_cancel_now(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t = NULL;
	fake_end(b);
}

static void
fake_cancel(struct build *b, const char *why)
{
	if (b->ended)
		return;
	result_finish(&b->res, BUILD_CANCELLED, "%s", why);
	loop_timer_cancel(b->t);
	b->t = loop_timer_at(b->loop, now_ms(), fake_cancel_now, b);
}

static struct build_result *
fake_result(struct build *b)
{
	return &b->res;
}

static const char *
fake_run_dir(const struct build *b)
{
	return b->run_dir;
}

static int
fake_pause(struct build *b, bool pause, struct error *err)
{
	(void)err;
	b->paused = pause;
	return 0;
}

static const char *
fake_step(const struct build *b)
{
	return b->in_step ? b->recipe->steps[b->step].name : NULL;
}

static int
fake_pid(const struct build *b)
{
	return b->ended ? -1 : 4242;
}

static void
fake_free(struct build *b)
{
	loop_timer_cancel(b->t);
	if (b->run_dir)
		fake_kept++;
	result_clear(&b->res);
	free(b->run_dir);
	free(b);
	fake_live--;
}

static bool
fake_is_held(const struct build *b)
{
	return b->holding;
}

static void
fake_hold_end(struct build *b, const char *why)
{
	cr_assert(b->holding, "hold_end of a build not held: %s", why);
	b->holding = false;
	fake_log(b, why);
	fake_end(b);
}

static const struct serve_backend fake = {
	.new = fake_new,
	.start = fake_start,
	.cancel = fake_cancel,
	.result = fake_result,
	.run_dir = fake_run_dir,
	.pause = fake_pause,
	.current_step = fake_step,
	.qemu_pid = fake_pid,
	.free = fake_free,
	.held = fake_is_held,
	.hold_end = fake_hold_end,
};

static struct serve *S;
static char run_root[] = "/tmp/qctl-test-serve-XXXXXX";
static uint64_t ceiling_memory;	/* serve_up's --max-memory */
static FILE *serve_log;		/* serve_up's log */
static bool keep_runs;		/* serve_up's --keep-runs */

static void
serve_up(int max_parallel, int keep, bool allow_quit)
{
	struct serve_opts o = {
		.max_parallel = max_parallel,
		.keep_finished = keep,
		.allow_quit = allow_quit,
		.keep_runs = keep_runs,
		.max_memory = ceiling_memory,
		.log = serve_log,
		.backend = &fake,
		.ctl = { .package = "qctl test" },
	};

	L = loop_new();
	cr_assert_not_null(mkdtemp(run_root));
	o.build.run_root = run_root;
	S = serve_new(L, &o);
	C = serve_ctl(S);
}

static void
serve_down(void)
{
	serve_free(S);
	loop_free(L);
	cr_assert_eq(fake_live, 0, "every fake build freed");
	cr_assert_eq(rmdir(run_root), 0, "run root empty: %s",
		     strerror(errno));
}

/* Run a command, return its "return" (or the error object if want_err). */
static json_t *
call(struct peer *p, const char *req, bool want_err)
{
	json_t *r, *v;

	peer_send(p, req);
	r = peer_reply(p);
	v = json_object_get(r, want_err ? "error" : "return");
	cr_assert_not_null(v, "%s: %s", req, json_dumps(r, 0));
	json_incref(v);
	json_decref(r);
	return v;
}

/* Until build id is in step (a build-status round trip at a time, each
 * running the loop): the fake engine's timers are late on a loaded host,
 * so a test waits for the state it needs rather than a time. */
static void
wait_in_step(struct peer *p, const char *id, const char *step)
{
	int64_t end = now_ms() + 30000;
	char req[128];

	snprintf(req, sizeof(req), "{\"execute\": \"build-status\", "
		 "\"arguments\": {\"id\": \"%s\"}}", id);
	for (;;) {
		json_t *r = call(p, req, false);
		const char *now = str(r, "step");
		bool there = now && !strcmp(now, step);

		json_decref(r);
		if (there)
			return;
		cr_assert_lt(now_ms(), end, "30 s and %s is not in step %s",
			     id, step);
		pump(10);
	}
}

#define RECIPE(steps) \
	"{\"execute\": \"build-submit\", \"arguments\": {\"recipe\": " \
	"{\"steps\": " steps "}}}"

/* Wait for BUILD_FINISHED of build id (NULL: any); events go to log. */
static json_t *
wait_finished(struct peer *p, const char *id, char log[][64], int *n)
{
	for (;;) {
		json_t *e = peer_event(p);
		const char *ev = str(e, "event");
		json_t *d = json_object_get(e, "data");

		cr_assert_not_null(ev, "an event, not a reply");
		if (log && *n < 64)
			snprintf(log[(*n)++], 64, "%s %s", str(d, "build"),
				 ev);
		if (!strcmp(ev, "BUILD_FINISHED") &&
		    (!id || !strcmp(str(d, "build"), id))) {
			json_t *res = json_incref(json_object_get(d,
								  "result"));

			json_decref(e);
			return res;
		}
		json_decref(e);
	}
}

Test(serve, parallel_limit_queue_order_and_events)
{
	struct peer *p;
	char log[64][64];
	int n = 0;
	json_t *r, *res;
	const char *order[] = { "BUILD_STARTED", "STEP_STARTED",
				"STEP_FINISHED", "STEP_STARTED",
				"STEP_FINISHED", "BUILD_FINISHED" };

	serve_up(2, 0, false);
	p = peer_new();
	negotiate(p);
	/* b1 and b2 must not end before b3 is seen queued */
	fake_held = true;
	r = call(p, RECIPE("[{\"name\": \"a\", \"run\": \"true\"}, "
			   "{\"name\": \"b\", \"run\": \"true\"}]"), false);
	cr_assert_str_eq(str(r, "id"), "b1");
	cr_assert_str_eq(str(r, "status"), "running");
	json_decref(r);
	r = call(p, RECIPE("[{\"name\": \"a\", \"run\": \"true\"}, "
			   "{\"name\": \"b\", \"run\": \"false\"}]"), false);
	cr_assert_str_eq(str(r, "status"), "running");
	json_decref(r);
	r = call(p, RECIPE("[{\"name\": \"a\", \"run\": \"true\"}, "
			   "{\"name\": \"b\", \"run\": \"true\"}]"), false);
	cr_assert_str_eq(str(r, "id"), "b3");
	cr_assert_str_eq(str(r, "status"), "queued");
	json_decref(r);
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b3\"}}", false);
	cr_assert_str_eq(str(r, "status"), "queued");
	cr_assert_eq(json_integer_value(json_object_get(r, "position")), 0);
	cr_assert_eq(json_integer_value(json_object_get(r, "uid")),
		     (int)getuid());
	json_decref(r);
	fake_held = false;

	for (int done = 0; done < 3; done++)
		json_decref(wait_finished(p, NULL, log, &n));
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b2\"}}", false);
	res = json_object_get(r, "result");
	cr_assert_str_eq(str(res, "status"), "failed");
	cr_assert_eq(json_integer_value(json_object_get(res, "exit_code")), 1);
	json_decref(r);
	/* per build, events in order; b3 starts only after one ended */
	for (int b = 1; b <= 3; b++) {
		char id[8];
		int k = 0;

		snprintf(id, sizeof(id), "b%d", b);
		for (int i = 0; i < n; i++) {
			if (strncmp(log[i], id, strlen(id)) ||
			    log[i][strlen(id)] != ' ')
				continue;
			cr_assert_lt(k, 6);
			cr_assert_str_eq(log[i] + strlen(id) + 1, order[k],
					 "%s event %d", id, k);
			k++;
		}
		cr_assert_eq(k, 6, "%s: %d events", id, k);
	}
	for (int i = 0, ended = 0; i < n; i++) {
		if (!strcmp(log[i], "b3 BUILD_STARTED")) {
			cr_assert_geq(ended, 1, "b3 waited for a free slot");
			break;
		}
		ended += !strcmp(log[i], "b1 BUILD_FINISHED") ||
			 !strcmp(log[i], "b2 BUILD_FINISHED");
	}
	r = call(p, "{\"execute\": \"build-list\"}", false);
	cr_assert_eq(json_array_size(r), 3);
	cr_assert_str_eq(str(json_array_get(r, 1), "status"), "failed");
	json_decref(r);
	peer_free(p);
	serve_down();
}

Test(serve, cancel_queued_running_and_finished)
{
	struct peer *p;
	json_t *r, *res;

	serve_up(1, 0, false);
	p = peer_new();
	negotiate(p);
	json_decref(call(p, RECIPE("[{\"name\": \"h\", \"run\": \"hang\"}]"),
			 false));
	json_decref(call(p, RECIPE("[{\"name\": \"h\", \"run\": \"hang\"}]"),
			 false));
	r = call(p, "{\"execute\": \"build-cancel\", \"arguments\": "
		    "{\"id\": \"b2\"}}", false);
	cr_assert_str_eq(str(r, "status"), "cancelled");
	json_decref(r);
	res = wait_finished(p, "b2", NULL, NULL);
	cr_assert_str_eq(str(res, "status"), "cancelled");
	cr_assert_eq(json_integer_value(json_object_get(res, "exit_code")),
		     130);
	json_decref(res);
	wait_in_step(p, "b1", "h");
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	cr_assert_str_eq(str(r, "status"), "running");
	cr_assert_str_eq(str(r, "step"), "h");
	json_decref(r);
	r = call(p, "{\"execute\": \"vm-stats\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	cr_assert_eq(json_integer_value(json_object_get(r, "qemu_pid")), 4242);
	cr_assert(json_is_object(json_object_get(r, "stats")));
	json_decref(r);
	json_decref(call(p, "{\"execute\": \"vm-pause\", \"arguments\": "
			    "{\"id\": \"b1\"}}", false));
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	cr_assert(json_is_true(json_object_get(r, "paused")));
	json_decref(r);
	json_decref(call(p, "{\"execute\": \"vm-resume\", \"arguments\": "
			    "{\"id\": \"b1\"}}", false));
	json_decref(call(p, "{\"execute\": \"build-cancel\", \"arguments\": "
			    "{\"id\": \"b1\"}}", false));
	res = wait_finished(p, "b1", NULL, NULL);
	cr_assert_str_eq(str(res, "status"), "cancelled");
	cr_assert(strstr(str(res, "reason"), "control socket"));
	json_decref(res);
	r = call(p, "{\"execute\": \"build-cancel\", \"arguments\": "
		    "{\"id\": \"b1\"}}", true);
	cr_assert(strstr(str(r, "desc"), "has finished"));
	json_decref(r);
	r = call(p, "{\"execute\": \"vm-pause\", \"arguments\": "
		    "{\"id\": \"b1\"}}", true);
	cr_assert(strstr(str(r, "desc"), "not running"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b9\"}}", true);
	cr_assert(strstr(str(r, "desc"), "no build \"b9\""));
	json_decref(r);
	pump(20);
	cr_assert_eq(fake_live, 0, "the engine's builds are freed at once");
	peer_free(p);
	serve_down();
}

Test(serve, release_ends_a_hold_and_only_a_hold)
{
	struct peer *p;
	json_t *r, *res;
	int64_t end = now_ms() + 30000;
	bool held = false;

	serve_up(2, 0, false);
	p = peer_new();
	negotiate(p);
	/* a recipe's hold reaches the engine as hold_always */
	json_decref(call(p, "{\"execute\": \"build-submit\", \"arguments\": "
			    "{\"recipe\": {\"hold\": \"1h\", \"steps\": "
			    "[{\"name\": \"a\", \"run\": \"true\"}]}}}",
			 false));
	json_decref(call(p, RECIPE("[{\"name\": \"h\", \"run\": \"hang\"}]"),
			 false));
	wait_in_step(p, "b2", "h");
	r = call(p, "{\"execute\": \"build-release\", \"arguments\": "
		    "{\"id\": \"b2\"}}", true);
	cr_assert(strstr(str(r, "desc"), "b2 is not held (running)"),
		  "%s", str(r, "desc"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-release\", \"arguments\": "
		    "{\"id\": \"b7\"}}", true);
	cr_assert(strstr(str(r, "desc"), "no build \"b7\""));
	json_decref(r);
	while (!held) {
		r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
			    "{\"id\": \"b1\"}}", false);
		held = json_is_true(json_object_get(r, "held"));
		json_decref(r);
		cr_assert_lt(now_ms(), end, "30 s and b1 is not held");
		pump(10);
	}
	r = call(p, "{\"execute\": \"build-release\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	cr_assert_str_eq(str(r, "id"), "b1");
	json_decref(r);
	res = wait_finished(p, "b1", NULL, NULL);
	cr_assert_str_eq(str(res, "status"), "passed");
	json_decref(res);
	r = call(p, "{\"execute\": \"build-release\", \"arguments\": "
		    "{\"id\": \"b1\"}}", true);
	cr_assert(strstr(str(r, "desc"), "b1 is not held"));
	json_decref(r);
	json_decref(call(p, "{\"execute\": \"build-cancel\", \"arguments\": "
			    "{\"id\": \"b2\"}}", false));
	json_decref(wait_finished(p, "b2", NULL, NULL));
	pump(20);
	cr_assert_eq(fake_live, 0);
	peer_free(p);
	serve_down();
}

Test(serve, submit_checks)
{
	struct peer *p;
	json_t *r;
	char dir[] = "/tmp/qctl-test-rel-XXXXXX", req[512], path[300];
	FILE *f;

	serve_up(1, 0, false);
	p = peer_new();
	negotiate(p);
	r = call(p, "{\"execute\": \"build-submit\"}", true);
	cr_assert(strstr(str(r, "desc"), "one of them"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": {\"path\": "
		    "\"rel.yaml\"}}", true);
	cr_assert(strstr(str(r, "desc"), "absolute"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": {\"path\": "
		    "\"/nonexistent/r.yaml\"}}", true);
	cr_assert(strstr(str(r, "desc"), "No such file"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"source\": \".\", \"steps\": "
		    "[{\"name\": \"a\", \"run\": \"true\"}]}}}", true);
	cr_assert(strstr(str(r, "desc"), "absolute"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"image\": \"x/y\", \"steps\": "
		    "[{\"name\": \"a\", \"run\": \"true\"}]}}}", true);
	cr_assert(strstr(str(r, "desc"), "image"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"steps\": [], \"bogus\": 1}}}", true);
	cr_assert(strstr(str(r, "desc"), "recipe"), "%s", str(r, "desc"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"steps\": [{\"name\": \"a\", "
		    "\"run\": \"true\"}]}, \"source\": \"/nonexistent\"}}",
		 true);
	cr_assert(strstr(str(r, "desc"), "source"));
	json_decref(r);
	/* a git source: an absolute path that the client can open */
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"source\": {\"git\": \"repo\"}, \"steps\": "
		    "[{\"name\": \"a\", \"run\": \"true\"}]}}}", true);
	cr_assert(strstr(str(r, "desc"), "source.git: \"repo\" must be an "
			 "absolute path"), "%s", str(r, "desc"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"source\": {\"git\": \"/nonexistent/r\", "
		    "\"ref\": \"main\"}, \"steps\": "
		    "[{\"name\": \"a\", \"run\": \"true\"}]}}}", true);
	cr_assert(strstr(str(r, "desc"), "source.git: cannot read repository "
			 "/nonexistent/r: No such file"), "%s", str(r, "desc"));
	json_decref(r);
	/* a YAML file with a relative source: relative to the file */
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/r.yaml", dir);
	f = fopen(path, "w");
	fputs("source: .\nsteps: [{name: a, run: \"true\"}]\n", f);
	fclose(f);
	snprintf(req, sizeof(req), "{\"execute\": \"build-submit\", "
		 "\"arguments\": {\"path\": \"%s\"}}", path);
	r = call(p, req, false);
	cr_assert_str_eq(str(r, "id"), "b1");
	json_decref(r);
	json_decref(wait_finished(p, "b1", NULL, NULL));
	/* a start failure is a finished build with status error */
	r = call(p, RECIPE("[{\"name\": \"a\", \"run\": \"nostart\"}]"),
		 false);
	cr_assert_str_eq(str(r, "status"), "error");
	json_decref(r);
	r = wait_finished(p, "b2", NULL, NULL);
	cr_assert_str_eq(str(r, "reason"), "no VM today");
	json_decref(r);
	r = call(p, "{\"execute\": \"quit\"}", true);
	cr_assert(strstr(str(r, "desc"), "--allow-quit"));
	json_decref(r);
	unlink(path);
	rmdir(dir);
	peer_free(p);
	serve_down();
}

Test(serve, build_log_chunks_tail_and_eof)
{
	struct peer *p;
	json_t *r;
	char *log;
	const char *rd;

	serve_up(1, 0, false);
	p = peer_new();
	negotiate(p);
	json_decref(call(p, RECIPE("[{\"name\": \"a\", \"run\": \"hang\"}]"),
			 false));
	wait_in_step(p, "b1", "a");	/* "a| started" is in the log */
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	rd = str(r, "run_dir");
	cr_assert_not_null(rd);
	/* invalid UTF-8 and a character cut by the chunk boundary */
	log = xasprintf("%s/build.log", rd);
	{
		FILE *f = fopen(log, "a");

		fputs("bad \xff\xc3 ok \xc3\xa9!\n", f);
		fclose(f);
	}
	json_decref(r);
	r = call(p, "{\"execute\": \"build-log\", \"arguments\": "
		    "{\"id\": \"b1\", \"offset\": 0}}", false);
	cr_assert_str_eq(str(r, "data"),
			 "booting\na| started\nbad ?? ok \xc3\xa9!\n");
	cr_assert_eq(json_integer_value(json_object_get(r, "next")),
		     json_integer_value(json_object_get(r, "size")));
	cr_assert(json_is_false(json_object_get(r, "eof")), "still running");
	json_decref(r);
	/* "é" is bytes 29-30: a chunk ending in it stops before it */
	r = call(p, "{\"execute\": \"build-log\", \"arguments\": "
		    "{\"id\": \"b1\", \"offset\": 23, \"max\": 7}}", false);
	cr_assert_str_eq(str(r, "data"), "?? ok ");
	cr_assert_eq(json_integer_value(json_object_get(r, "offset")), 23);
	cr_assert_eq(json_integer_value(json_object_get(r, "next")), 29);
	json_decref(r);
	/* a tail starts on a character too */
	r = call(p, "{\"execute\": \"build-log\", \"arguments\": "
		    "{\"id\": \"b1\", \"max\": 3}}", false);
	cr_assert_str_eq(str(r, "data"), "!\n");
	json_decref(r);
	r = call(p, "{\"execute\": \"build-log\", \"arguments\": "
		    "{\"id\": \"b1\", \"max\": 0}}", true);
	json_decref(r);
	json_decref(call(p, "{\"execute\": \"build-cancel\", \"arguments\": "
			    "{\"id\": \"b1\"}}", false));
	json_decref(wait_finished(p, "b1", NULL, NULL));
	r = call(p, "{\"execute\": \"build-log\", \"arguments\": "
		    "{\"id\": \"b1\", \"offset\": 20}}", false);
	cr_assert(json_is_true(json_object_get(r, "eof")));
	cr_assert(strstr(str(r, "data"), "the end\n"));
	json_decref(r);
	free(log);
	peer_free(p);
	serve_down();
}

Test(serve, finished_builds_are_forgotten_with_their_run_dirs)
{
	struct peer *p;
	json_t *r;
	char *rd1;
	struct stat st;

	serve_up(2, 2, false);
	p = peer_new();
	negotiate(p);
	for (int i = 0; i < 3; i++)
		json_decref(call(p, RECIPE("[{\"name\": \"a\", \"run\": "
					   "\"true\"}]"), false));
	r = call(p, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	rd1 = xstrdup(str(r, "run_dir"));
	json_decref(r);
	json_decref(wait_finished(p, "b3", NULL, NULL));
	/* forgotten a loop round or so after b3 ended: whatever happens
	 * must within 30 s */
	for (int64_t end = now_ms() + 30000;; pump(10)) {
		r = call(p, "{\"execute\": \"build-list\"}", false);
		if (json_array_size(r) == 2 || now_ms() > end)
			break;
		json_decref(r);
	}
	cr_assert_eq(json_array_size(r), 2);
	cr_assert_str_eq(str(json_array_get(r, 0), "id"), "b2");
	json_decref(r);
	cr_assert_neq(stat(rd1, &st), 0, "b1's run dir removed");
	cr_assert_eq(fake_kept, 3, "the engine left each run dir to serve");
	free(rd1);
	peer_free(p);
	serve_down();
}

Test(serve, keep_runs_leaves_run_dirs_to_the_operator)
{
	struct peer *p;
	json_t *r;
	char *rd[3], *f;
	struct stat st;
	int n = 0;
	DIR *d;

	keep_runs = true;
	serve_up(2, 1, false);
	p = peer_new();
	negotiate(p);
	for (int i = 0; i < 3; i++) {
		char id[8];

		json_decref(call(p, RECIPE("[{\"name\": \"a\", \"run\": "
					   "\"true\"}]"), false));
		snprintf(id, sizeof(id), "b%d", i + 1);
		json_decref(wait_finished(p, id, NULL, NULL));
		r = call(p, "{\"execute\": \"build-list\"}", false);
		json_decref(r);
	}
	/* b1 and b2 are forgotten (keep 1), b3 goes at exit: all stay */
	peer_free(p);
	serve_free(S);
	loop_free(L);
	keep_runs = false;
	cr_assert_eq(fake_live, 0);
	d = opendir(run_root);
	cr_assert_not_null(d);
	for (struct dirent *e; (e = readdir(d));) {
		if (e->d_name[0] == '.' || n == 3)
			continue;
		rd[n++] = xasprintf("%s/%s", run_root, e->d_name);
	}
	closedir(d);
	cr_assert_eq(n, 3, "each build's run directory stayed");
	for (int i = 0; i < n; i++) {
		f = xasprintf("%s/build.log", rd[i]);
		cr_assert_eq(stat(f, &st), 0, "%s", f);
		free(f);
		cr_assert_eq(rm_rf(rd[i]), 0);
		free(rd[i]);
	}
	cr_assert_eq(rmdir(run_root), 0, "%s", strerror(errno));
}

Test(serve, client_leaving_mid_build_does_not_matter)
{
	struct peer *p, *q;
	json_t *r, *res;

	serve_up(1, 0, false);
	p = peer_new();
	negotiate(p);
	json_decref(call(p, RECIPE("[{\"name\": \"a\", \"run\": \"true\"}, "
				   "{\"name\": \"b\", \"run\": \"true\"}]"),
			 false));
	peer_free(p);
	q = peer_new();
	negotiate(q);
	res = wait_finished(q, "b1", NULL, NULL);
	cr_assert_str_eq(str(res, "status"), "passed");
	json_decref(res);
	r = call(q, "{\"execute\": \"build-status\", \"arguments\": "
		    "{\"id\": \"b1\"}}", false);
	cr_assert_str_eq(str(json_object_get(r, "result"), "status"),
			 "passed");
	json_decref(r);
	peer_free(q);
	serve_down();
}

Test(serve, quit_when_allowed_cancels_everything_then_stops_the_loop)
{
	struct peer *p;
	json_t *e;
	int rc;

	serve_up(1, 0, true);
	p = peer_new();
	negotiate(p);
	json_decref(call(p, RECIPE("[{\"name\": \"h\", \"run\": \"hang\"}]"),
			 false));
	json_decref(call(p, RECIPE("[{\"name\": \"h\", \"run\": \"hang\"}]"),
			 false));
	wait_in_step(p, "b1", "h");	/* one running, one queued */
	json_decref(call(p, "{\"execute\": \"quit\"}", false));
	e = peer_event(p);
	while (strcmp(str(e, "event"), "SHUTDOWN")) {
		json_decref(e);
		e = peer_event(p);
	}
	json_decref(e);
	rc = loop_run(L);
	cr_assert_eq(rc, 0);
	cr_assert_eq(serve_n_active(S), 0);
	peer_free(p);
	serve_down();
}

/*
 * What a client names is opened with O_NONBLOCK and must be a regular
 * file: a FIFO (recipe or image.json) gets an error instead of freezing
 * the server; a submitted image whose initrd is a symlink is refused.
 */
Test(serve, client_files_fifo_symlink)
{
	char dir[] = "/tmp/qctl-test-fifo-XXXXXX", req[600], p1[300], p2[300];
	struct peer *p, *q;
	json_t *r;
	FILE *f;

	serve_up(1, 0, false);
	p = peer_new();
	q = peer_new();
	negotiate(p);
	negotiate(q);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(p1, sizeof(p1), "%s/r.yaml", dir);
	cr_assert_eq(mkfifo(p1, 0600), 0);
	snprintf(req, sizeof(req), "{\"execute\": \"build-submit\", "
		 "\"arguments\": {\"path\": \"%s\"}}", p1);
	r = call(p, req, true);
	cr_assert(strstr(str(r, "desc"), "not a regular file"), "%s",
		  str(r, "desc"));
	json_decref(r);
	/* an image directory: image.json a FIFO, then initrd a symlink */
	snprintf(p2, sizeof(p2), "%s/img", dir);
	cr_assert_eq(mkdir(p2, 0700), 0);
	snprintf(p1, sizeof(p1), "%s/img/image.json", dir);
	cr_assert_eq(mkfifo(p1, 0600), 0);
	snprintf(req, sizeof(req), "{\"execute\": \"build-submit\", "
		 "\"arguments\": {\"recipe\": {\"image\": \"%s\", "
		 "\"steps\": [{\"name\": \"a\", \"run\": \"true\"}]}}}",
		 p2);
	r = call(p, req, true);
	cr_assert(strstr(str(r, "desc"), "not a regular file"), "%s",
		  str(r, "desc"));
	json_decref(r);
	/* the server kept serving everyone */
	json_decref(call(q, "{\"execute\": \"build-list\"}", false));
	unlink(p1);
	f = fopen(p1, "w");
	fputs("{\"name\": \"t\"}", f);
	fclose(f);
	snprintf(p1, sizeof(p1), "%s/img/vmlinuz", dir);
	f = fopen(p1, "w");
	fclose(f);
	snprintf(p1, sizeof(p1), "%s/img/initrd.img", dir);
	cr_assert_eq(symlink("/etc/shadow", p1), 0);
	r = call(p, req, true);
	cr_assert(strstr(str(r, "desc"), "symbolic link"), "%s",
		  str(r, "desc"));
	json_decref(r);
	unlink(p1);
	f = fopen(p1, "w");
	fclose(f);
	/* a plain image directory is taken */
	r = call(p, req, false);
	cr_assert_str_eq(str(r, "id"), "b1");
	json_decref(r);
	json_decref(wait_finished(p, "b1", NULL, NULL));
	peer_free(p);
	peer_free(q);
	serve_down();
	snprintf(req, sizeof(req), "rm -rf %s", dir);
	cr_assert_eq(system(req), 0);
}

/* The server's ceilings: more memory, or an unlimited budget, refused. */
Test(serve, ceilings)
{
	struct peer *p;
	json_t *r;

	ceiling_memory = 1ull << 30;
	serve_up(1, 0, false);
	p = peer_new();
	negotiate(p);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"memory\": \"2G\", \"steps\": "
		    "[{\"name\": \"a\", \"run\": \"true\"}]}}}", true);
	cr_assert(strstr(str(r, "desc"), "--max-memory"), "%s",
		  str(r, "desc"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"limits\": {\"log_bytes\": 0}, "
		    "\"steps\": [{\"name\": \"a\", \"run\": \"true\"}]}}}",
		 true);
	cr_assert(strstr(str(r, "desc"), "log_bytes: unlimited"), "%s",
		  str(r, "desc"));
	json_decref(r);
	r = call(p, "{\"execute\": \"build-submit\", \"arguments\": "
		    "{\"recipe\": {\"memory\": \"1G\", \"steps\": "
		    "[{\"name\": \"a\", \"run\": \"true\"}]}}}", false);
	json_decref(r);
	json_decref(wait_finished(p, "b1", NULL, NULL));
	peer_free(p);
	serve_down();
	ceiling_memory = 0;
}

/* A client's path with escape sequences reaches the server log inert. */
Test(serve, log_has_no_client_escapes)
{
	char dir[] = "/tmp/qctl-test-esc-XXXXXX", path[128], req[300];
	struct peer *p;
	json_t *r;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	/* an existing recipe file, named with escapes, that does not parse:
	 * its name comes back in the error that the server logs */
	snprintf(path, sizeof(path), "%s/\x1b]0;pwned\x07\x1b[2J\xc2\x80"
		 "\xc2\x9b" "1m",
		 dir);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs("steps: [\n", f);
	fclose(f);
	snprintf(req, sizeof(req), "{\"execute\": \"build-submit\", "
		 "\"arguments\": {\"path\": \"%s/\\u001b]0;pwned\\u0007"
		 "\\u001b[2J\\u0080\\u009b1m\"}}", dir);
	serve_log = open_memstream(&text, &len);
	serve_up(1, 0, false);
	p = peer_new();
	negotiate(p);
	r = call(p, req, true);
	json_decref(r);
	peer_free(p);
	serve_down();
	fclose(serve_log);
	serve_log = NULL;
	unlink(path);
	rmdir(dir);
	cr_assert(strstr(text, "refused") && strstr(text, "pwned"), "%s", text);
	cr_assert_null(memchr(text, 0x1b, len), "ESC in the log: %s", text);
	cr_assert_null(memchr(text, 0x07, len), "BEL in the log");
	cr_assert_null(strstr(text, "\xc2\x9b"), "C1 CSI in the log");
	free(text);
}
