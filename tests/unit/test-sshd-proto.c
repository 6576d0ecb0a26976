/* test-sshd-proto.c - the frames between the manager and qctl-sshd: round
 * trips, every rule a frame can break, and the manager's checks of the
 * order and windows of a session's frames */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "sshd-proto.h"
#include "sshd.h"

static const char *const hk = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
			      "b3BlbnNzaC1rZXktdjEAAAAA\n"
			      "-----END OPENSSH PRIVATE KEY-----\n";

static struct buf enc(const struct sshd_msg *m)
{
	struct buf b = { 0 };
	struct error err = { 0 };

	cr_assert_eq(sshd_msg_encode(m, &b, &err), 0, "encode %s: %s",
		     sshd_msg_name(m->type), err.msg);
	return b;
}

static int
dec(const struct buf *b, enum sshd_dir dir, struct sshd_msg *out,
    struct error *err)
{
	return sshd_msg_decode(dir, (const uint8_t *)b->data, b->len, out, err);
}

static struct sshd_msg
open_msg(uint32_t id)
{
	return (struct sshd_msg){ .type = SSHD_S_OPEN, .id = id,
				  .build = "b1", .fingerprint = "SHA256:abc+/=",
				  .peer = "127.0.0.1 port 5", .has_pty = true,
				  .term = "xterm-256color", .rows = 24,
				  .cols = 80, .has_command = true,
				  .command = "cat /src/x\n\x01\xff" };
}

Test(codec, round_trips)
{
	struct sshd_msg conf = { .type = SSHD_M_CONFIG, .version = 1,
				 .uid = 65534, .gid = 65534, .max_conns = 16,
				 .max_sessions = 4, .grace_ms = 30000,
				 .max_auth = 6, .nhostkeys = 1,
				 .hostkeys = { hk } };
	struct sshd_msg keys = { .type = SSHD_M_KEYS, .id = 7, .nkeys = 2,
				 .keys = { "ssh-ed25519 AAAA a@b", "x y" } };
	struct sshd_msg o = open_msg(9), d;
	struct sshd_msg data = { .type = SSHD_M_STDERR, .id = 3,
				 .data = (const uint8_t *)"\0\1\2", .len = 3 };
	struct sshd_msg ex = { .type = SSHD_M_EXIT, .id = 3,
			       .exit_kind = SSHD_EXIT_SIGNAL,
			       .exit_value = 9 };
	struct error err = { 0 };
	struct buf b;

	b = enc(&conf);
	cr_assert_eq(dec(&b, SSHD_TO_SSHD, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(d.uid, 65534);
	cr_assert_eq(d.grace_ms, 30000);
	cr_assert_str_eq(d.hostkeys[0], hk);
	buf_free(&b);

	b = enc(&keys);
	cr_assert_eq(dec(&b, SSHD_TO_SSHD, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(d.id, 7);
	cr_assert_eq(d.nkeys, 2);
	cr_assert_str_eq(d.keys[1], "x y");
	buf_free(&b);

	b = enc(&o);
	cr_assert_eq(dec(&b, SSHD_TO_MANAGER, &d, &err), 0, "%s", err.msg);
	cr_assert_str_eq(d.build, "b1");
	cr_assert_str_eq(d.fingerprint, "SHA256:abc+/=");
	cr_assert_str_eq(d.term, "xterm-256color");
	cr_assert_str_eq(d.command, "cat /src/x\n\x01\xff");
	cr_assert(d.has_pty && d.has_command);
	cr_assert_eq(d.rows, 24);
	cr_assert_eq(d.cols, 80);
	buf_free(&b);

	b = enc(&data);
	cr_assert_eq(dec(&b, SSHD_TO_SSHD, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(d.len, 3);
	cr_assert_eq(memcmp(d.data, "\0\1\2", 3), 0);
	buf_free(&b);

	b = enc(&ex);
	cr_assert_eq(dec(&b, SSHD_TO_SSHD, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(d.exit_kind, SSHD_EXIT_SIGNAL);
	cr_assert_eq(d.exit_value, 9);
	buf_free(&b);
}

Test(codec, every_simple_type)
{
	static const struct sshd_msg ms[] = {
		{ .type = SSHD_M_OPENED, .id = 1 },
		{ .type = SSHD_M_REFUSED, .id = 1, .text = "no" },
		{ .type = SSHD_M_REFUSED, .id = 1, .text = "" },
		{ .type = SSHD_M_EOF, .id = 1 },
		{ .type = SSHD_M_CLOSE, .id = 1, .text = "hold expired" },
		{ .type = SSHD_M_ACK, .id = 1, .ack = SSHD_WINDOW },
		{ .type = SSHD_M_EXIT, .id = 1, .exit_value = 255 },
		{ .type = SSHD_S_READY },
		{ .type = SSHD_S_FAIL, .text = "seccomp: x" },
		{ .type = SSHD_S_LOG, .text = "a line" },
		{ .type = SSHD_S_KEYS_REQ, .id = 2, .build = "b_1.x-y" },
		{ .type = SSHD_S_EOF, .id = 2 },
		{ .type = SSHD_S_WINCH, .id = 2, .rows = 1, .cols = 10000 },
		{ .type = SSHD_S_ACK, .id = 2, .ack = 1 },
		{ .type = SSHD_S_CLOSED, .id = 2, .text = "exited" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(ms); i++) {
		struct buf b = enc(&ms[i]);
		struct sshd_msg d;
		struct error err = { 0 };

		cr_assert_eq(dec(&b, sshd_msg_dir(ms[i].type), &d, &err), 0,
			     "%s: %s", sshd_msg_name(ms[i].type), err.msg);
		cr_assert_eq(d.type, ms[i].type);
		cr_assert_eq(d.id, ms[i].id);
		/* and never in the other direction */
		cr_assert_lt(dec(&b, !sshd_msg_dir(ms[i].type), &d, &err), 0);
		buf_free(&b);
	}
}

/* Every proper prefix of a valid frame is refused (the length says so,
 * and with the length patched, the payload is short). */
Test(codec, truncation)
{
	struct sshd_msg o = open_msg(3), d;
	struct buf b = enc(&o);
	struct error err = { 0 };

	for (size_t n = 0; n < b.len; n++) {
		uint8_t *c = malloc(b.len);

		memcpy(c, b.data, n);
		cr_assert_lt(sshd_msg_decode(SSHD_TO_MANAGER, c, n, &d, &err),
			     0, "prefix %zu", n);
		if (n >= SSHD_HDR_LEN) {
			c[0] = n >> 24;
			c[1] = n >> 16;
			c[2] = n >> 8;
			c[3] = n;
			cr_assert_lt(sshd_msg_decode(SSHD_TO_MANAGER, c, n, &d,
						     &err),
				     0, "patched prefix %zu", n);
		}
		free(c);
	}
	buf_free(&b);
}

/* A frame with one byte changed at offset off to v; must be refused. */
static void
refused_with(const struct sshd_msg *m, size_t off, uint8_t v,
	     const char *what)
{
	struct buf b = enc(m);
	struct sshd_msg d;
	struct error err = { 0 };

	cr_assert_lt(off, b.len);
	((uint8_t *)b.data)[off] = v;
	cr_assert_lt(dec(&b, sshd_msg_dir(m->type), &d, &err), 0, "%s", what);
	cr_assert_eq(err.code, EPROTO);
	cr_assert(strstr(err.msg, "sshd frame"), "%s: %s", what, err.msg);
	buf_free(&b);
}

Test(codec, header_rules)
{
	struct sshd_msg m = { .type = SSHD_M_OPENED, .id = 5 }, d;
	struct sshd_msg ready = { .type = SSHD_S_READY };
	struct error err = { 0 };
	struct buf b = enc(&m);
	uint8_t big[SSHD_FRAME_MAX + 8] = { 0 };

	refused_with(&m, 3, 13, "length differs");
	refused_with(&m, 6, 1, "flags");
	refused_with(&m, 7, 1, "flags low");
	refused_with(&m, 5, 99, "unknown type");
	refused_with(&m, 5, 0, "type 0");
	refused_with(&m, 5, SSHD_S_OPEN, "other direction");
	refused_with(&m, 11, 0, "id 0 for a session frame");
	refused_with(&ready, 11, 1, "id for ready");
	/* trailing bytes, length patched */
	buf_append(&b, "x", 1);
	((uint8_t *)b.data)[3] = b.len;
	cr_assert_lt(dec(&b, SSHD_TO_SSHD, &d, &err), 0);
	cr_assert(strstr(err.msg, "trailing"), "%s", err.msg);
	/* beyond the frame bound, whatever the length says */
	big[1] = ((SSHD_FRAME_MAX + 8) >> 16) & 0xff;
	big[2] = ((SSHD_FRAME_MAX + 8) >> 8) & 0xff;
	big[3] = (SSHD_FRAME_MAX + 8) & 0xff;
	big[5] = SSHD_M_OPENED;
	big[11] = 1;
	cr_assert_lt(sshd_msg_decode(SSHD_TO_SSHD, big, sizeof(big), &d, &err),
		     0);
	buf_free(&b);
}

/* The offset of the first string's count in a frame (after fixed
 * fields of fixed bytes). */
Test(codec, string_rules)
{
	struct sshd_msg req = { .type = SSHD_S_KEYS_REQ, .id = 1,
				.build = "abcd" };
	struct sshd_msg log = { .type = SSHD_S_LOG, .text = "abcd" };

	/* header 12, count 4: bytes at 16..19, NUL at 20 */
	refused_with(&req, 20, 'x', "no NUL at the end");
	refused_with(&req, 17, 0, "NUL inside");
	refused_with(&req, 17, '/', "slash in a build id");
	refused_with(&req, 16, '-', "build id starting with '-'");
	refused_with(&req, 16, '.', "build id starting with '.'");
	refused_with(&req, 18, ' ', "space in a build id");
	refused_with(&req, 15, 3, "count short of the NUL");
	refused_with(&req, 15, 5, "count past the NUL");
	refused_with(&req, 12, 1, "count huge");
	refused_with(&log, 17, '\n', "newline in a log line");
	refused_with(&log, 17, 0x7f, "DEL in a log line");
	refused_with(&log, 17, 0x9b, "C1 byte in a log line");
}

static void
encode_refused(const struct sshd_msg *m, const char *what)
{
	struct buf b = { 0 };
	struct error err = { 0 };

	buf_append(&b, "keep", 4);
	cr_assert_lt(sshd_msg_encode(m, &b, &err), 0, "%s", what);
	cr_assert_eq(err.code, EINVAL, "%s", what);
	/* nothing half-written */
	cr_assert_eq(b.len, 4, "%s", what);
	buf_free(&b);
}

/* What decode refuses, encode refuses too (it checks its output). */
Test(codec, field_rules)
{
	char longb[SSHD_BUILD_MAX + 2], longt[SSHD_TEXT_MAX + 2];
	static uint8_t bigdata[SSHD_DATA_MAX + 1];
	struct sshd_msg m;

	memset(longb, 'a', sizeof(longb) - 1);
	longb[sizeof(longb) - 1] = '\0';
	memset(longt, 'a', sizeof(longt) - 1);
	longt[sizeof(longt) - 1] = '\0';

	m = (struct sshd_msg){ .type = SSHD_S_KEYS_REQ, .id = 1,
			       .build = longb };
	encode_refused(&m, "build id too long");
	m.build = "";
	encode_refused(&m, "empty build id");
	m = (struct sshd_msg){ .type = SSHD_S_LOG, .text = longt };
	encode_refused(&m, "log line too long");
	m.text = "";
	encode_refused(&m, "empty log line");
	m = (struct sshd_msg){ .type = SSHD_M_CLOSE, .id = 1,
			       .text = "a\033[2J" };
	encode_refused(&m, "escape in a reason");
	m = (struct sshd_msg){ .type = SSHD_M_STDOUT, .id = 1,
			       .data = bigdata, .len = 0 };
	encode_refused(&m, "empty data");
	m.len = SSHD_DATA_MAX + 1;
	encode_refused(&m, "data too long");
	m = (struct sshd_msg){ .type = SSHD_M_EXIT, .id = 1, .exit_value = 256 };
	encode_refused(&m, "status 256");
	m = (struct sshd_msg){ .type = SSHD_M_EXIT, .id = 1, .exit_kind = 1,
			       .exit_value = 0 };
	encode_refused(&m, "signal 0");
	m.exit_value = 65;
	encode_refused(&m, "signal 65");
	m.exit_kind = 2;
	m.exit_value = 1;
	encode_refused(&m, "exit kind 2");
	m = (struct sshd_msg){ .type = SSHD_M_ACK, .id = 1, .ack = 0 };
	encode_refused(&m, "ack 0");
	m.ack = SSHD_WINDOW + 1;
	encode_refused(&m, "ack beyond the window");
	m = (struct sshd_msg){ .type = SSHD_S_WINCH, .id = 1,
			       .rows = SSHD_PTY_DIM_MAX + 1 };
	encode_refused(&m, "rows too many");
	m = open_msg(1);
	m.fingerprint = "MD5:aa";
	encode_refused(&m, "fingerprint without SHA256:");
	m = open_msg(1);
	m.fingerprint = "SHA256:";
	encode_refused(&m, "empty fingerprint");
	m = open_msg(1);
	m.fingerprint = "SHA256:a b";
	encode_refused(&m, "space in a fingerprint");
	m = open_msg(1);
	m.term = "xterm;rm";
	encode_refused(&m, "term with ';'");
	m = open_msg(1);
	m.has_pty = false;
	encode_refused(&m, "term and size without a pty");
	m = open_msg(1);
	m.has_command = false;
	encode_refused(&m, "a command without has_command");
	m = open_msg(1);
	m.peer = "a\nb";
	encode_refused(&m, "newline in a peer");
	m = (struct sshd_msg){ .type = 77, .id = 1 };
	encode_refused(&m, "unknown type");
	m = (struct sshd_msg){ .type = SSHD_M_OPENED };
	encode_refused(&m, "id 0");
}

Test(codec, bool_and_config_rules)
{
	struct sshd_msg o = open_msg(1);
	struct sshd_msg conf = { .type = SSHD_M_CONFIG, .version = 1,
				 .uid = 1, .gid = 1, .max_conns = 16,
				 .max_sessions = 4, .grace_ms = 30000,
				 .max_auth = 6, .nhostkeys = 1,
				 .hostkeys = { "k\nk" } };
	struct sshd_msg c;
	struct buf b = enc(&o);

	/* has_pty: header 12, build 4+2+1, fpr 4+13+1, peer 4+16+1 */
	cr_assert_eq(((uint8_t *)b.data)[58], 1);
	refused_with(&o, 58, 2, "bool 2");
	buf_free(&b);

	c = conf;
	c.version = 2;
	encode_refused(&c, "version 2");
	c = conf;
	c.max_conns = 0;
	encode_refused(&c, "no connections");
	c.max_conns = SSHD_CONNS_MAX + 1;
	encode_refused(&c, "too many connections");
	c = conf;
	c.max_sessions = SSHD_SESSIONS_MAX + 1;
	encode_refused(&c, "too many sessions");
	c = conf;
	c.grace_ms = SSHD_GRACE_MS_MIN - 1;
	encode_refused(&c, "grace too short");
	c = conf;
	c.max_auth = 0;
	encode_refused(&c, "no attempts");
	c = conf;
	c.nhostkeys = 0;
	encode_refused(&c, "no host key");
	c = conf;
	c.hostkeys[0] = "k\tk";
	encode_refused(&c, "tab in a host key");
	c = conf;
	c.hostkeys[0] = "";
	encode_refused(&c, "empty host key");
}

Test(codec, key_list_bounds)
{
	struct sshd_msg k = { .type = SSHD_M_KEYS, .id = 1,
			      .nkeys = SSHD_KEYS_MAX };
	struct buf b;
	struct sshd_msg d;
	struct error err = { 0 };

	for (int i = 0; i < SSHD_KEYS_MAX; i++)
		k.keys[i] = "ssh-ed25519 AAAA";
	b = enc(&k);
	cr_assert_eq(dec(&b, SSHD_TO_SSHD, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(d.nkeys, SSHD_KEYS_MAX);
	/* a count of 65 */
	((uint8_t *)b.data)[15] = SSHD_KEYS_MAX + 1;
	cr_assert_lt(dec(&b, SSHD_TO_SSHD, &d, &err), 0);
	buf_free(&b);
	k.nkeys = 1;
	k.keys[0] = "ssh-ed25519\x01";
	encode_refused(&k, "control character in a key");
	k.nkeys = 0;
	b = enc(&k);
	cr_assert_eq(dec(&b, SSHD_TO_SSHD, &d, &err), 0, "%s", err.msg);
	cr_assert_eq(d.nkeys, 0);
	buf_free(&b);
}

Test(codec, build_ids)
{
	cr_assert(sshd_build_ok("b1"));
	cr_assert(sshd_build_ok("build_12.a-b"));
	cr_assert_not(sshd_build_ok(""));
	cr_assert_not(sshd_build_ok("-b"));
	cr_assert_not(sshd_build_ok(".."));
	cr_assert_not(sshd_build_ok("a/b"));
	cr_assert_not(sshd_build_ok("a b"));
	cr_assert_not(sshd_build_ok("root@x"));
}

/* ---- the manager's side: order and windows ---------------------------- */

static struct {
	int keys, open, in, eof, winch, writable, closed, log;
	uint32_t last_req, last_sid;
	size_t in_bytes;
	char build[80], reason[600], cmd[200];
	bool cmd_null;
} seen;

static void
cb_keys(struct sshd *s, uint32_t req, const char *b, void *o)
{
	(void)s;
	(void)o;
	seen.keys++;
	seen.last_req = req;
	snprintf(seen.build, sizeof(seen.build), "%s", b);
}

static void
cb_open(struct sshd *s, const struct sshd_open *op, void *o)
{
	(void)s;
	(void)o;
	seen.open++;
	seen.last_sid = op->sid;
	seen.cmd_null = !op->command;
	snprintf(seen.cmd, sizeof(seen.cmd), "%s",
		 op->command ? op->command : "");
}

static void
cb_in(struct sshd *s, uint32_t sid, const uint8_t *d, size_t n, void *o)
{
	(void)s;
	(void)sid;
	(void)d;
	(void)o;
	seen.in++;
	seen.in_bytes += n;
}

static void
cb_eof(struct sshd *s, uint32_t sid, void *o)
{
	(void)s;
	(void)sid;
	(void)o;
	seen.eof++;
}

static void
cb_winch(struct sshd *s, uint32_t sid, unsigned int r, unsigned int c,
	 void *o)
{
	(void)s;
	(void)sid;
	(void)r;
	(void)c;
	(void)o;
	seen.winch++;
}

static void
cb_writable(struct sshd *s, uint32_t sid, void *o)
{
	(void)s;
	(void)sid;
	(void)o;
	seen.writable++;
}

static void
cb_closed(struct sshd *s, uint32_t sid, const char *r, void *o)
{
	(void)s;
	(void)sid;
	(void)o;
	seen.closed++;
	snprintf(seen.reason, sizeof(seen.reason), "%s", r);
}

static void
cb_log(struct sshd *s, const char *l, void *o)
{
	(void)s;
	(void)l;
	(void)o;
	seen.log++;
}

static const struct sshd_callbacks cbs = {
	.keys = cb_keys, .open = cb_open, .stdin_data = cb_in,
	.stdin_eof = cb_eof, .winch = cb_winch, .writable = cb_writable,
	.closed = cb_closed, .log = cb_log,
};

static struct sshd *sd;

static int
feed(const struct sshd_msg *m)
{
	struct buf b = enc(m);
	struct error err = { 0 };
	int r = sshd_feed(sd, (const uint8_t *)b.data, b.len, &err);

	buf_free(&b);
	return r;
}

static void
setup(void)
{
	struct sshd_msg ready = { .type = SSHD_S_READY };

	memset(&seen, 0, sizeof(seen));
	sd = sshd_new_detached(&cbs, NULL);
	cr_assert_eq(feed(&ready), 0);
	cr_assert(sshd_ready(sd));
}

static void
teardown(void)
{
	sshd_stop(sd);
}

Test(manager, nothing_before_ready)
{
	struct sshd_msg o = open_msg(1);
	struct sshd_msg fail = { .type = SSHD_S_FAIL, .text = "seccomp: no" };
	struct buf b;
	struct error err = { 0 };

	sd = sshd_new_detached(&cbs, NULL);
	cr_assert_lt(feed(&o), 0);
	b = enc(&fail);
	cr_assert_lt(sshd_feed(sd, (const uint8_t *)b.data, b.len, &err), 0);
	cr_assert(strstr(err.msg, "seccomp: no"), "%s", err.msg);
	buf_free(&b);
	sshd_stop(sd);
}

Test(manager, ready_twice, .init = setup, .fini = teardown)
{
	struct sshd_msg ready = { .type = SSHD_S_READY };

	cr_assert_lt(feed(&ready), 0);
}

Test(manager, key_request, .init = setup, .fini = teardown)
{
	struct sshd_msg q = { .type = SSHD_S_KEYS_REQ, .id = 4, .build = "b1" };
	const char *k[] = { "ssh-ed25519 AAAA x" };
	const char *bad[] = { "ssh-ed25519 \x1b[2J" };
	struct error err = { 0 };
	size_t before;

	cr_assert_eq(feed(&q), 0);
	cr_assert_eq(seen.keys, 1);
	cr_assert_str_eq(seen.build, "b1");
	cr_assert_eq(sshd_send_keys(sd, 4, k, 1, &err), 0, "%s", err.msg);
	cr_assert_gt(sshd_queued(sd), 0);
	/* answered once */
	cr_assert_lt(sshd_send_keys(sd, 4, k, 1, &err), 0);
	/* an id not above the last one */
	cr_assert_lt(feed(&q), 0);
	q.id = 5;
	cr_assert_eq(feed(&q), 0);
	/* a bad list still answers the sshd, with no keys */
	before = sshd_queued(sd);
	cr_assert_lt(sshd_send_keys(sd, 5, bad, 1, &err), 0);
	cr_assert_gt(sshd_queued(sd), before);
	cr_assert_lt(sshd_send_keys(sd, 5, k, 1, &err), 0, "answered once");
	/* frames about a key request's id are not a session's */
	q = (struct sshd_msg){ .type = SSHD_S_EOF, .id = 5 };
	cr_assert_lt(feed(&q), 0);
}

Test(manager, session_order, .init = setup, .fini = teardown)
{
	struct sshd_msg o = open_msg(2);
	struct sshd_msg in = { .type = SSHD_S_STDIN, .id = 2,
			       .data = (const uint8_t *)"abc", .len = 3 };
	struct sshd_msg eof = { .type = SSHD_S_EOF, .id = 2 };
	struct sshd_msg w = { .type = SSHD_S_WINCH, .id = 2, .rows = 5,
			      .cols = 6 };
	struct sshd_msg ack = { .type = SSHD_S_ACK, .id = 2, .ack = 1 };
	struct sshd_msg closed = { .type = SSHD_S_CLOSED, .id = 2,
				   .text = "exited" };
	struct error err = { 0 };
	uint32_t ids[4];

	cr_assert_eq(feed(&o), 0);
	cr_assert_eq(seen.open, 1);
	cr_assert_str_eq(seen.cmd, "cat /src/x\n\x01\xff");
	/* nothing flows before the manager said opened */
	cr_assert_lt(feed(&in), 0);
	cr_assert_lt(sshd_send_output(sd, 2, false, "x", 1, &err), 0);
	cr_assert_eq(sshd_send_opened(sd, 2, &err), 0, "%s", err.msg);
	cr_assert_lt(sshd_send_opened(sd, 2, &err), 0);
	cr_assert_eq(sshd_sessions(sd, ids, 4), 1);
	cr_assert_eq(ids[0], 2);
	cr_assert_eq(feed(&in), 0);
	cr_assert_eq(seen.in_bytes, 3);
	cr_assert_eq(feed(&w), 0);
	cr_assert_eq(seen.winch, 1);
	/* acknowledging output never sent */
	cr_assert_lt(feed(&ack), 0);
	cr_assert_eq(feed(&eof), 0);
	cr_assert_eq(seen.eof, 1);
	/* no input after EOF, no second EOF */
	cr_assert_lt(feed(&in), 0);
	cr_assert_lt(feed(&eof), 0);
	/* more stdin done than received */
	cr_assert_lt(sshd_stdin_done(sd, 2, 4, &err), 0);
	cr_assert_eq(sshd_stdin_done(sd, 2, 3, &err), 0, "%s", err.msg);
	cr_assert_eq(sshd_send_exit(sd, 2, false, 0, &err), 0, "%s",
		     err.msg);
	/* nothing after the exit */
	cr_assert_lt(sshd_send_output(sd, 2, false, "x", 1, &err), 0);
	cr_assert_eq(feed(&closed), 0);
	cr_assert_eq(seen.closed, 1);
	cr_assert_str_eq(seen.reason, "exited");
	/* the id is gone: anything about it is refused */
	cr_assert_lt(feed(&in), 0);
	cr_assert_lt(feed(&closed), 0);
	cr_assert_eq(sshd_sessions(sd, ids, 4), 0);
}

/* The frame the manager queued last, decoded for the sshd. */
static struct sshd_msg
last_frame(struct buf *keep)
{
	struct sshd_msg m;
	struct error err = { 0 };
	size_t len = 0, off = 0;
	const uint8_t *p;

	buf_free(keep);
	/* detached: nothing is ever sent, the queue holds every frame */
	while (sshd_queued(sd) - off >= SSHD_HDR_LEN) {
		p = sshd_queued_data(sd) + off;
		len = (size_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
		off += len;
	}
	buf_append(keep, sshd_queued_data(sd) + off - len, len);
	cr_assert_eq(sshd_msg_decode(SSHD_TO_SSHD, (const uint8_t *)keep->data,
				     len, &m, &err),
		     0, "%s", err.msg);
	return m;
}

Test(manager, key_lists_are_filtered, .init = setup, .fini = teardown)
{
	static char longk[SSHD_KEY_MAX + 2];
	const char *ks[SSHD_KEYS_MAX + 5];
	struct sshd_msg q = { .type = SSHD_S_KEYS_REQ, .id = 1, .build = "b1" };
	struct error err = { 0 };
	struct buf keep = { 0 };
	struct sshd_msg m;

	memset(longk, 'k', sizeof(longk) - 1);
	ks[0] = "ssh-ed25519 AAAA one";
	ks[1] = "ssh-ed25519 AAAA crlf\r";
	ks[2] = longk;
	ks[3] = "";
	ks[4] = "ssh-ed25519 AAAA two";
	cr_assert_eq(feed(&q), 0);
	cr_assert_lt(sshd_send_keys(sd, 1, ks, 5, &err), 0);
	cr_assert(strstr(err.msg, "3 key lines not sent"), "%s", err.msg);
	m = last_frame(&keep);
	cr_assert_eq(m.type, SSHD_M_KEYS);
	cr_assert_eq(m.nkeys, 2);
	cr_assert_str_eq(m.keys[0], "ssh-ed25519 AAAA one");
	cr_assert_str_eq(m.keys[1], "ssh-ed25519 AAAA two");
	/* more lines than a frame holds: the first 64 go */
	for (size_t i = 0; i < ARRAY_SIZE(ks); i++)
		ks[i] = "ssh-ed25519 AAAA";
	q.id = 2;
	cr_assert_eq(feed(&q), 0);
	cr_assert_eq(sshd_send_keys(sd, 2, ks, ARRAY_SIZE(ks), &err), -E2BIG);
	m = last_frame(&keep);
	cr_assert_eq(m.nkeys, SSHD_KEYS_MAX);
	/* and more bytes than a frame holds: as many as fit */
	memset(longk, 'k', SSHD_KEY_MAX);
	longk[SSHD_KEY_MAX] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(ks); i++)
		ks[i] = longk;
	q.id = 3;
	cr_assert_eq(feed(&q), 0);
	cr_assert_eq(sshd_send_keys(sd, 3, ks, 10, &err), -E2BIG);
	m = last_frame(&keep);
	cr_assert_eq(m.nkeys, SSHD_FRAME_MAX / (SSHD_KEY_MAX + 5));
	buf_free(&keep);
}

Test(manager, winch_needs_a_pty, .init = setup, .fini = teardown)
{
	struct sshd_msg o = open_msg(2);
	struct sshd_msg w = { .type = SSHD_S_WINCH, .id = 2, .rows = 5,
			      .cols = 6 };
	struct error err = { 0 };

	o.has_pty = false;
	o.term = "";
	o.rows = o.cols = 0;
	o.has_command = false;
	o.command = "";
	cr_assert_eq(feed(&o), 0);
	cr_assert(seen.cmd_null, "a shell has no command");
	cr_assert_eq(sshd_send_opened(sd, 2, &err), 0);
	cr_assert_lt(feed(&w), 0);
}

Test(manager, windows, .init = setup, .fini = teardown)
{
	static uint8_t big[SSHD_WINDOW + 100];
	struct sshd_msg o = open_msg(3);
	struct sshd_msg in = { .type = SSHD_S_STDIN, .id = 3, .data = big,
			       .len = SSHD_DATA_MAX };
	struct sshd_msg ack = { .type = SSHD_S_ACK, .id = 3, .ack = 1000 };
	struct error err = { 0 };
	ssize_t n;

	cr_assert_eq(feed(&o), 0);
	cr_assert_eq(sshd_send_opened(sd, 3, &err), 0);
	/* output: exactly the window, then -EAGAIN */
	cr_assert_eq(sshd_output_room(sd, 3), SSHD_WINDOW);
	n = sshd_send_output(sd, 3, false, big, sizeof(big), &err);
	cr_assert_eq(n, SSHD_WINDOW);
	cr_assert_eq(sshd_output_room(sd, 3), 0);
	cr_assert_eq(sshd_send_output(sd, 3, true, big, 1, &err), -EAGAIN);
	cr_assert_eq(feed(&ack), 0);
	cr_assert_eq(seen.writable, 1);
	cr_assert_eq(sshd_output_room(sd, 3), 1000);
	/* input: the sshd may send the window and not a byte more */
	for (int i = 0; i < SSHD_WINDOW / SSHD_DATA_MAX; i++)
		cr_assert_eq(feed(&in), 0, "chunk %d", i);
	in.len = 1;
	cr_assert_lt(feed(&in), 0);
	cr_assert_eq(sshd_stdin_done(sd, 3, 1, &err), 0);
	cr_assert_eq(feed(&in), 0);
}

Test(manager, refusal_and_close, .init = setup, .fini = teardown)
{
	struct sshd_msg o = open_msg(2);
	struct sshd_msg in = { .type = SSHD_S_STDIN, .id = 2,
			       .data = (const uint8_t *)"a", .len = 1 };
	struct error err = { 0 };

	cr_assert_eq(feed(&o), 0);
	/* a reason with control characters is cleaned, not refused */
	cr_assert_eq(sshd_send_refused(sd, 2, "no\033[2J such build", &err),
		     0, "%s", err.msg);
	cr_assert_lt(sshd_send_opened(sd, 2, &err), 0);
	/* input that crossed the refusal is dropped, not an error */
	cr_assert_lt(feed(&in), 0, "still not opened");
	o = open_msg(3);
	cr_assert_eq(feed(&o), 0);
	cr_assert_eq(sshd_send_opened(sd, 3, &err), 0);
	cr_assert_eq(sshd_send_close(sd, 3, "hold expired", &err), 0);
	in.id = 3;
	cr_assert_eq(feed(&in), 0, "input crossing a close");
	cr_assert_eq(seen.in, 0, "goes nowhere");
	cr_assert_lt(sshd_send_close(sd, 99, "x", &err), 0);
}

Test(manager, bounded_ids, .init = setup, .fini = teardown)
{
	size_t max = SSHD_DEFAULT_CONNS * (SSHD_DEFAULT_SESSIONS + 1);
	struct sshd_msg o;

	for (size_t i = 1; i <= max; i++) {
		o = open_msg(i);
		cr_assert_eq(feed(&o), 0, "session %zu", i);
	}
	o = open_msg(max + 1);
	cr_assert_lt(feed(&o), 0);
}
