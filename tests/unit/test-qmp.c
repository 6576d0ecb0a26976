/* test-qmp.c - QMP client against a scripted peer and against real QEMU */
#include <criterion/criterion.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "qmp.h"

#define GREETING                                                          \
	"{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, " \
	"\"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"

/* What a reply callback saw. */
struct reply {
	int calls;
	int code;
	char msg[1024];
	json_t *ret;
};

/* Everything the callbacks saw, in order. */
static char seq[64][128];
static int nseq;

static struct qmp *q;
static int peer = -1;
static int nevents;

static void
log_seq(const char *kind, const char *s)
{
	if (nseq == (int)ARRAY_SIZE(seq))
		return;
	snprintf(seq[nseq++], sizeof(seq[0]), "%.16s:%.100s", kind, s);
}

static void
on_event(struct qmp *qq, const char *event, json_t *data, void *opaque)
{
	const char *v = json_string_value(json_object_get(data, "v"));

	(void)qq;
	(void)opaque;
	nevents++;
	if (v)
		log_seq("event", v);
	else
		log_seq("event", event);
}

static void
on_reply(struct qmp *qq, json_t *ret, const struct error *err, void *opaque)
{
	struct reply *r = opaque;

	(void)qq;
	r->calls++;
	if (err) {
		r->code = err->code;
		snprintf(r->msg, sizeof(r->msg), "%s", err->msg);
		log_seq("error", err->msg);
	} else {
		const char *v = json_string_value(json_object_get(ret, "v"));

		cr_assert_not_null(ret);
		json_decref(r->ret);
		r->ret = json_incref(ret);
		log_seq("reply", v ? v : "?");
	}
}

static void
reply_clear(struct reply *r)
{
	json_decref(r->ret);
	memset(r, 0, sizeof(*r));
}

static void
setup(void)
{
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	q = qmp_new(sv[0], on_event, NULL);
	cr_assert_not_null(q);
	peer = sv[1];
	nseq = 0;
	nevents = 0;
}

static void
teardown(void)
{
	qmp_free(q);
	q = NULL;
	if (peer >= 0)
		close(peer);
	peer = -1;
}

static void
peer_send(const char *s)
{
	cr_assert_eq(write_in_full(peer, s, strlen(s)), (ssize_t)strlen(s));
}

static bool
peer_readable(void)
{
	struct pollfd p = { .fd = peer, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/* Read one command line from the client; fail the test after 2 s. */
static json_t *
peer_recv(void)
{
	char line[65536];
	size_t n = 0;
	json_error_t jerr;
	json_t *j;

	for (;;) {
		struct pollfd p = { .fd = peer, .events = POLLIN };
		ssize_t r;

		cr_assert_eq(poll(&p, 1, 10000), 1, "client sent nothing");
		r = read(peer, line + n, 1);
		cr_assert_eq(r, 1);
		if (line[n] == '\n')
			break;
		n++;
		cr_assert_lt(n, sizeof(line));
	}
	j = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
	cr_assert_not_null(j, "client sent bad JSON: %s", jerr.text);
	return j;
}

/* Read a command, check its name, return its id. */
static json_int_t
expect_cmd(const char *name)
{
	json_t *j = peer_recv();
	json_t *id = json_object_get(j, "id");
	json_int_t v;

	cr_assert_str_eq(json_string_value(json_object_get(j, "execute")),
			 name);
	cr_assert(json_is_integer(id));
	v = json_integer_value(id);
	json_decref(j);
	return v;
}

static void
send_reply(json_int_t id, const char *v)
{
	char s[256];

	snprintf(s, sizeof(s), "{\"return\": {\"v\": \"%s\"}, \"id\": %lld}\n",
		 v, (long long)id);
	peer_send(s);
}

static int
pump_err(struct error *err)
{
	return qmp_handle_io(q, EPOLLIN | EPOLLOUT, err);
}

static void
pump(void)
{
	struct error err = { 0 };

	cr_assert_eq(pump_err(&err), 0, "qmp_handle_io: %s", err.msg);
}

static void
handshake(void)
{
	json_int_t id;
	char s[128];

	peer_send(GREETING);
	pump();
	cr_assert(!qmp_ready(q));
	id = expect_cmd("qmp_capabilities");
	snprintf(s, sizeof(s), "{\"return\": {}, \"id\": %lld}\r\n",
		 (long long)id);
	peer_send(s);
	pump();
	cr_assert(qmp_ready(q));
}

/* hang guards, well above what a loaded host takes */
TestSuite(qmp, .init = setup, .fini = teardown, .timeout = 120);

Test(qmp, greeting_capabilities_and_reply)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	json_int_t cid, id;
	char s[128];

	cr_assert_eq(qmp_execute(q, "query-status", NULL, 5000, on_reply, &r,
				 &err),
		     0);
	pump();
	cr_assert(!peer_readable(), "command sent before the greeting");
	peer_send(GREETING);
	pump();
	cid = expect_cmd("qmp_capabilities");
	cr_assert(!peer_readable(), "command sent before negotiation");
	snprintf(s, sizeof(s), "{\"return\": {}, \"id\": %lld}\n",
		 (long long)cid);
	peer_send(s);
	pump();
	cr_assert(qmp_ready(q));
	id = expect_cmd("query-status");
	cr_assert_neq(id, cid);
	cr_assert_eq(r.calls, 0);
	cr_assert_neq(qmp_next_deadline(q), -1);
	send_reply(id, "running");
	pump();
	cr_assert_eq(r.calls, 1);
	cr_assert_str_eq(json_string_value(json_object_get(r.ret, "v")),
			 "running");
	cr_assert_eq(qmp_next_deadline(q), -1);
	reply_clear(&r);
}

Test(qmp, out_of_order_replies)
{
	struct error err = { 0 };
	struct reply r[3] = { { 0 } };
	json_int_t id[3];
	char s[512];
	int i;

	handshake();
	for (i = 0; i < 3; i++)
		cr_assert_eq(qmp_execute(q, "cmd", json_pack("{s:i}", "n", i),
					 5000, on_reply, &r[i], &err),
			     0);
	for (i = 0; i < 3; i++)
		id[i] = expect_cmd("cmd");
	cr_assert(id[0] != id[1] && id[1] != id[2] && id[0] != id[2]);
	snprintf(s, sizeof(s),
		 "{\"return\": {\"v\": \"c\"}, \"id\": %lld}\n"
		 "{\"return\": {\"v\": \"a\"}, \"id\": %lld}\n"
		 "{\"id\": %lld, \"return\": {\"v\": \"b\"}}\n",
		 (long long)id[2], (long long)id[0], (long long)id[1]);
	peer_send(s);
	pump();
	cr_assert_str_eq(json_string_value(json_object_get(r[0].ret, "v")),
			 "a");
	cr_assert_str_eq(json_string_value(json_object_get(r[1].ret, "v")),
			 "b");
	cr_assert_str_eq(json_string_value(json_object_get(r[2].ret, "v")),
			 "c");
	cr_assert_str_eq(seq[0], "reply:c");
	cr_assert_str_eq(seq[1], "reply:a");
	cr_assert_str_eq(seq[2], "reply:b");
	for (i = 0; i < 3; i++) {
		cr_assert_eq(r[i].calls, 1);
		reply_clear(&r[i]);
	}
}

Test(qmp, error_reply_gives_class_and_desc)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	json_int_t id;
	char s[256];

	handshake();
	qmp_execute(q, "bogus", NULL, 5000, on_reply, &r, &err);
	id = expect_cmd("bogus");
	snprintf(s, sizeof(s),
		 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": "
		 "\"The command bogus has not been found\\n\"}, \"id\": %lld}\n",
		 (long long)id);
	peer_send(s);
	pump();
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.code, QMP_EREMOTE);
	cr_assert_null(r.ret);
	cr_assert(strstr(r.msg, "CommandNotFound"), "%s", r.msg);
	cr_assert(strstr(r.msg, "The command bogus has not been found"));
	cr_assert_null(strchr(r.msg, '\n'), "control chars not masked");
	cr_assert(qmp_ready(q), "an error reply is not fatal");
}

Test(qmp, event_before_greeting)
{
	peer_send("{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
		  "\"event\": \"EARLY\"}\n" GREETING);
	pump();
	cr_assert_eq(nevents, 1);
	cr_assert_str_eq(seq[0], "event:EARLY");
	expect_cmd("qmp_capabilities");
}

Test(qmp, events_between_replies_in_order)
{
	struct error err = { 0 };
	struct reply a = { 0 }, b = { 0 };
	json_int_t ia, ib;
	char s[1024];

	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	qmp_execute(q, "b", NULL, 5000, on_reply, &b, &err);
	ia = expect_cmd("a");
	ib = expect_cmd("b");
	snprintf(s, sizeof(s),
		 "{\"event\": \"E\", \"data\": {\"v\": \"1\"}}\n"
		 "{\"return\": {\"v\": \"a\"}, \"id\": %lld}\n"
		 "{\"event\": \"E\", \"data\": {\"v\": \"2\"}}\r\n"
		 "{\"return\": {\"v\": \"b\"}, \"id\": %lld}\n"
		 "{\"event\": \"NODATA\"}\n",
		 (long long)ia, (long long)ib);
	peer_send(s);
	pump();
	cr_assert_eq(nseq, 5);
	cr_assert_str_eq(seq[0], "event:1");
	cr_assert_str_eq(seq[1], "reply:a");
	cr_assert_str_eq(seq[2], "event:2");
	cr_assert_str_eq(seq[3], "reply:b");
	cr_assert_str_eq(seq[4], "event:NODATA");
	reply_clear(&a);
	reply_clear(&b);
}

Test(qmp, garbled_json_is_fatal_and_fails_all_pending)
{
	struct error err = { 0 };
	struct reply a = { 0 }, b = { 0 }, c = { 0 };

	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	qmp_execute(q, "b", NULL, 5000, on_reply, &b, &err);
	expect_cmd("a");
	peer_send("{\"return\": {}, \"id\": 2\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(err.code, EPROTO);
	cr_assert(strstr(err.msg, "JSON"), "%s", err.msg);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.code, EPROTO);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.code, EPROTO);
	cr_assert(qmp_dead(q));
	cr_assert(!qmp_ready(q));
	cr_assert_eq(qmp_next_deadline(q), -1);
	/* Dead stays dead, with the same error. */
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(qmp_execute(q, "c", json_object(), 5000, on_reply, &c,
				 &err),
		     -EPIPE);
	cr_assert_eq(c.calls, 0);
}

Test(qmp, timeout_then_late_reply_is_dropped)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	int64_t t0 = now_ms(), dl;
	json_int_t id;

	handshake();
	qmp_execute(q, "slow", NULL, 50, on_reply, &r, &err);
	id = expect_cmd("slow");
	dl = qmp_next_deadline(q);
	cr_assert_geq(dl, t0 + 50);
	cr_assert_leq(dl, now_ms() + 50);
	qmp_check_timeouts(q, dl - 1);
	cr_assert_eq(r.calls, 0);
	qmp_check_timeouts(q, dl);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.code, ETIMEDOUT);
	cr_assert_eq(qmp_next_deadline(q), -1);
	qmp_check_timeouts(q, dl + 1000);
	cr_assert_eq(r.calls, 1);
	/* The late reply is dropped silently... */
	send_reply(id, "late");
	pump();
	cr_assert_eq(r.calls, 1);
	cr_assert(qmp_ready(q));
	/* ...but only once: a second one is a protocol error. */
	send_reply(id, "again");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(r.calls, 1);
}

Test(qmp, held_command_that_times_out_is_never_sent)
{
	struct error err = { 0 };
	struct reply r = { 0 }, r2 = { 0 };

	qmp_execute(q, "early", NULL, 10, on_reply, &r, &err);
	qmp_execute(q, "later", NULL, 10000, on_reply, &r2, &err);
	qmp_check_timeouts(q, now_ms() + 20);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.code, ETIMEDOUT);
	cr_assert_eq(r2.calls, 0);
	handshake();
	expect_cmd("later");
	cr_assert(!peer_readable());
}

Test(qmp, sync_timeout_on_silence)
{
	struct error err = { 0 };
	json_t *ret = (json_t *)1;
	int64_t t0;

	handshake();
	t0 = now_ms();
	cr_assert_eq(qmp_execute_sync(q, "silence", NULL, 100, &ret, &err),
		     -ETIMEDOUT);
	/* not before its 100 ms; after, only "not stuck" (a loaded host) */
	cr_assert_geq(now_ms() - t0, 100);
	cr_assert_lt(now_ms() - t0, 10000);
	cr_assert_null(ret);
	cr_assert_eq(err.code, ETIMEDOUT);
	cr_assert(strstr(err.msg, "silence"), "%s", err.msg);
}

Test(qmp, sync_before_greeting_times_out)
{
	struct error err = { 0 };
	json_t *ret = NULL;

	cr_assert_eq(qmp_execute_sync(q, "x", NULL, 50, &ret, &err),
		     -ETIMEDOUT);
	cr_assert(!peer_readable());
}

/* Write as much of data as the socket takes, letting q read in between. */
static size_t
pump_bytes(const char *data, size_t len, int *rc, struct error *err)
{
	size_t off = 0;

	*rc = 0;
	while (off < len && *rc == 0) {
		ssize_t n = send(peer, data + off, len - off, MSG_DONTWAIT);

		if (n > 0)
			off += n;
		else
			cr_assert(n < 0 && errno == EAGAIN, "send: %m");
		*rc = qmp_handle_io(q, EPOLLIN, err);
	}
	return off;
}

Test(qmp, oversized_line_is_fatal_without_buffering_it)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	size_t len = 2 * 1024 * 1024, sent;
	char *big = xmalloc(len);
	int rc, inq = 0;

	memset(big, 'x', len);
	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &r, &err);
	sent = pump_bytes(big, len, &rc, &err);
	cr_assert_eq(rc, -EPROTO);
	cr_assert(strstr(err.msg, "line"), "%s", err.msg);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.code, EPROTO);
	/* What the client took off the socket is what it buffered. */
	cr_assert_eq(ioctl(qmp_fd(q), FIONREAD, &inq), 0);
	cr_assert_leq(sent - inq, (size_t)QMP_MAX_LINE + 1);
	cr_assert_lt(sent, len, "peer never blocked");
	free(big);
}

/* An event line of exactly n bytes before "\n" (counting "\r"). */
static char *
event_line(size_t n)
{
	const char *head = "{\"event\": \"BIG\", \"data\": {\"p\": \"";
	const char *tail = "\"}}\r\n";
	size_t hl = strlen(head), tl = strlen(tail);
	char *s = xmalloc(n + 2);

	memcpy(s, head, hl);
	memset(s + hl, 'y', n + 1 - hl - tl);
	memcpy(s + n + 1 - tl, tail, tl);
	s[n + 1] = '\0';
	cr_assert_eq(strlen(s), n + 1);
	return s;
}

Test(qmp, line_of_exactly_max_is_accepted_one_more_is_not)
{
	struct error err = { 0 };
	char *ok = event_line(QMP_MAX_LINE), *bad = event_line(QMP_MAX_LINE + 1);
	int rc;

	pump_bytes(ok, strlen(ok), &rc, &err);
	while (rc == 0 && nevents == 0)
		rc = qmp_handle_io(q, EPOLLIN, &err);
	cr_assert_eq(rc, 0, "%s", err.msg);
	cr_assert_eq(nevents, 1);
	cr_assert_str_eq(seq[0], "event:BIG");
	pump_bytes(bad, strlen(bad), &rc, &err);
	cr_assert_eq(rc, -EPROTO);
	cr_assert_eq(nevents, 1);
	free(ok);
	free(bad);
}

Test(qmp, eof_mid_reply_fails_all_pending_with_epipe)
{
	struct error err = { 0 };
	struct reply a = { 0 }, b = { 0 };

	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	qmp_execute(q, "b", NULL, 5000, on_reply, &b, &err);
	expect_cmd("a");
	expect_cmd("b");
	peer_send("{\"return\": {}, \"id\"");
	close(peer);
	peer = -1;
	cr_assert_eq(qmp_handle_io(q, EPOLLIN | EPOLLHUP, &err), -EPIPE);
	cr_assert(strstr(err.msg, "closed"), "%s", err.msg);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.code, EPIPE);
	cr_assert_eq(b.calls, 1);
	cr_assert_eq(b.code, EPIPE);
	cr_assert(strstr(b.msg, "qmp b:"), "%s", b.msg);
}

Test(qmp, reply_with_unknown_id_is_fatal)
{
	struct error err = { 0 };
	struct reply a = { 0 };

	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	expect_cmd("a");
	send_reply(999, "x");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert(strstr(err.msg, "unknown id"), "%s", err.msg);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.code, EPROTO);
}

Test(qmp, reply_without_id_is_fatal)
{
	struct error err = { 0 };
	struct reply a = { 0 };

	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	expect_cmd("a");
	peer_send("{\"return\": {}}\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert(strstr(err.msg, "without id"), "%s", err.msg);
	cr_assert_eq(a.code, EPROTO);
}

Test(qmp, string_id_is_unknown)
{
	struct error err = { 0 };
	struct reply a = { 0 };

	handshake();
	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	expect_cmd("a");
	peer_send("{\"return\": {}, \"id\": \"2\"}\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(a.code, EPROTO);
}

Test(qmp, reply_to_held_command_is_fatal)
{
	struct error err = { 0 };
	struct reply a = { 0 };

	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	/* id 1 exists but was never sent: the peer cannot know it. */
	send_reply(1, "guess");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(a.code, EPROTO);
}

Test(qmp, non_object_and_duplicate_keys_are_fatal)
{
	struct error err = { 0 };

	peer_send("[1, 2]\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	teardown();
	setup();
	peer_send("{\"event\": \"A\", \"event\": \"B\"}\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(nevents, 0);
	teardown();
	setup();
	peer_send("{\"hello\": 1}\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	teardown();
	setup();
	peer_send("{\"event\": 5}\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	teardown();
	setup();
	peer_send(GREETING GREETING);
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert(strstr(err.msg, "greeting"), "%s", err.msg);
}

Test(qmp, capabilities_error_is_fatal)
{
	struct error err = { 0 };
	struct reply a = { 0 };
	json_int_t id;
	char s[256];

	qmp_execute(q, "a", NULL, 5000, on_reply, &a, &err);
	peer_send(GREETING);
	pump();
	id = expect_cmd("qmp_capabilities");
	snprintf(s, sizeof(s),
		 "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no\"}, "
		 "\"id\": %lld}\n",
		 (long long)id);
	peer_send(s);
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert(strstr(err.msg, "capabilities"), "%s", err.msg);
	cr_assert_eq(a.calls, 1);
	cr_assert_eq(a.code, EPROTO);
	cr_assert(!peer_readable(), "held command sent after failure");
}

Test(qmp, partial_lines_byte_by_byte)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	char s[512];
	json_int_t id;
	size_t i;

	qmp_execute(q, "a", NULL, 5000, on_reply, &r, &err);
	snprintf(s, sizeof(s), "{\"event\": \"E1\"}\r\n%s", GREETING);
	for (i = 0; s[i]; i++) {
		cr_assert_eq(write(peer, &s[i], 1), 1);
		pump();
	}
	cr_assert_eq(nevents, 1);
	id = expect_cmd("qmp_capabilities");
	snprintf(s, sizeof(s), "{\"return\": {}, \"id\": %lld}\r\n",
		 (long long)id);
	for (i = 0; s[i]; i++) {
		cr_assert(!qmp_ready(q));
		cr_assert_eq(write(peer, &s[i], 1), 1);
		pump();
	}
	cr_assert(qmp_ready(q));
	id = expect_cmd("a");
	snprintf(s, sizeof(s), "{\"return\": {\"v\": \"ok\"}, \"id\": %lld}\n",
		 (long long)id);
	for (i = 0; s[i]; i++) {
		cr_assert_eq(r.calls, 0);
		cr_assert_eq(write(peer, &s[i], 1), 1);
		pump();
	}
	cr_assert_eq(r.calls, 1);
	cr_assert_str_eq(seq[1], "reply:ok");
	reply_clear(&r);
}

Test(qmp, execute_after_death_fails)
{
	struct error err = { 0 };
	struct reply r = { 0 };

	handshake();
	close(peer);
	peer = -1;
	cr_assert_eq(pump_err(&err), -EPIPE);
	cr_assert_eq(qmp_execute(q, "a", json_pack("{s:s}", "k", "v"), 5000,
				 on_reply, &r, &err),
		     -EPIPE);
	cr_assert_eq(err.code, EPIPE);
	cr_assert_eq(r.calls, 0);
	cr_assert(!qmp_want_write(q));
}

Test(qmp, write_to_closed_peer_is_epipe_not_sigpipe)
{
	struct error err = { 0 };
	struct reply r = { 0 };

	handshake();
	close(peer);
	peer = -1;
	/* Writes at once; SIGPIPE would kill the test. */
	cr_assert_eq(qmp_execute(q, "a", NULL, 5000, on_reply, &r, &err), 0);
	cr_assert_eq(qmp_handle_io(q, EPOLLOUT, &err), -EPIPE);
	cr_assert_eq(r.calls, 1);
	cr_assert_eq(r.code, EPIPE);
}

struct chain {
	int step;
	int code;
	struct reply r;
};

static void
chain_cb(struct qmp *qq, json_t *ret, const struct error *err, void *opaque)
{
	struct chain *c = opaque;
	struct error e = { 0 };

	(void)ret;
	c->step++;
	c->code = err ? err->code : 0;
	/* Re-entrant: queue the next command from inside the callback. */
	if (c->step < 3)
		cr_assert_eq(qmp_execute(qq, "next", NULL, 5000, chain_cb, c,
					 &e),
			     err && err->code != ETIMEDOUT ? -EPIPE : 0);
	else
		cr_assert_eq(qmp_execute_sync(qq, "x", NULL, 10, &ret, &e),
			     -EDEADLK);
}

Test(qmp, callbacks_may_queue_commands)
{
	struct error err = { 0 };
	struct chain c = { 0 };
	json_int_t id;

	handshake();
	qmp_execute(q, "first", NULL, 5000, chain_cb, &c, &err);
	id = expect_cmd("first");
	send_reply(id, "1");
	pump();
	cr_assert_eq(c.step, 1);
	id = expect_cmd("next");
	send_reply(id, "2");
	pump();
	cr_assert_eq(c.step, 2);
	id = expect_cmd("next");
	send_reply(id, "3");
	pump();
	cr_assert_eq(c.step, 3);
	cr_assert(!peer_readable());
}

Test(qmp, callbacks_may_queue_during_timeouts_and_death)
{
	struct error err = { 0 };
	struct chain c = { 0 };

	handshake();
	qmp_execute(q, "first", NULL, 10, chain_cb, &c, &err);
	expect_cmd("first");
	/* The timeout callback queues a second command, which succeeds. */
	qmp_check_timeouts(q, now_ms() + 100);
	cr_assert_eq(c.step, 1);
	cr_assert_eq(c.code, ETIMEDOUT);
	expect_cmd("next");
	/* Death fails it; its callback's own qmp_execute gets EPIPE. */
	peer_send("garbage\n");
	cr_assert_eq(pump_err(&err), -EPROTO);
	cr_assert_eq(c.step, 2);
	cr_assert_eq(c.code, EPROTO);
}

Test(qmp, large_command_waits_for_pollout)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	size_t len = 4 * 1024 * 1024, got = 0;
	char *big = xmalloc(len + 1), *line = xmalloc(len + 256);
	json_t *j;

	memset(big, 'z', len);
	big[len] = '\0';
	handshake();
	qmp_execute(q, "big", json_pack("{s:s}", "blob", big), 5000, on_reply,
		    &r, &err);
	cr_assert(qmp_want_write(q), "4 MiB fit in a socket buffer?");
	while (got == 0 || line[got - 1] != '\n') {
		ssize_t n = read(peer, line + got, len + 256 - got);

		cr_assert_gt(n, 0);
		got += n;
		pump();
	}
	cr_assert(!qmp_want_write(q));
	j = json_loadb(line, got, 0, NULL);
	cr_assert_not_null(j);
	cr_assert_eq(strlen(json_string_value(
			     json_object_get(json_object_get(j, "arguments"),
					     "blob"))),
		     len);
	json_decref(j);
	free(big);
	free(line);
}

Test(qmp, many_timeouts_are_remembered_up_to_a_bound)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	int i, n = QMP_MAX_TIMED_OUT + 10;

	handshake();
	for (i = 0; i < n; i++)
		qmp_execute(q, "t", NULL, 0, on_reply, &r, &err);
	for (i = 0; i < n; i++)
		expect_cmd("t");
	qmp_check_timeouts(q, now_ms());
	cr_assert_eq(r.calls, n);
	/* The newest is remembered: its late reply is dropped. */
	send_reply(1 + n, "late");
	pump();
	/* The oldest is forgotten: its reply is now unknown. */
	send_reply(2, "late");
	cr_assert_eq(pump_err(&err), -EPROTO);
}

Test(qmp, fire_and_forget_without_callback)
{
	struct error err = { 0 };
	json_int_t a, b;

	handshake();
	/* As the manager sends "quit": no callback, no error object. */
	cr_assert_eq(qmp_execute(q, "quit", NULL, 5000, NULL, NULL, NULL), 0);
	cr_assert_eq(qmp_execute(q, "stop", NULL, 0, NULL, NULL, &err), 0);
	a = expect_cmd("quit");
	b = expect_cmd("stop");
	/* Nobody waits for them, so nobody needs waking up. */
	cr_assert_eq(qmp_next_deadline(q), -1);
	qmp_check_timeouts(q, now_ms() + 1);
	send_reply(a, "bye");
	send_reply(b, "late");
	pump();
	cr_assert_eq(nseq, 0);
	/* Both are settled now: a repeat is an unknown id. */
	send_reply(a, "again");
	cr_assert_eq(pump_err(&err), -EPROTO);
}

Test(qmp, fire_and_forget_pending_at_death)
{
	struct error err = { 0 };

	qmp_execute(q, "held", NULL, 5000, NULL, NULL, NULL);
	handshake();
	qmp_execute(q, "sent", NULL, 5000, NULL, NULL, NULL);
	expect_cmd("held");
	expect_cmd("sent");
	close(peer);
	peer = -1;
	cr_assert_eq(pump_err(&err), -EPIPE);
	cr_assert_eq(qmp_execute(q, "x", NULL, 5000, NULL, NULL, NULL),
		     -EPIPE);
}

/* Real QEMU, with the QMP monitor on a socketpair passed as fd 3. */

static bool
in_path(const char *prog)
{
	const char *path = getenv("PATH");
	char *dirs, *d, *save = NULL;
	bool found = false;

	if (!path)
		return false;
	dirs = xstrdup(path);
	for (d = strtok_r(dirs, ":", &save); d && !found;
	     d = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", d, prog);

		found = access(p, X_OK) == 0;
		free(p);
	}
	free(dirs);
	return found;
}

static int shutdown_events;

static void
on_real_event(struct qmp *qq, const char *event, json_t *data, void *opaque)
{
	(void)qq;
	(void)data;
	(void)opaque;
	if (!strcmp(event, "SHUTDOWN"))
		shutdown_events++;
}

static pid_t
spawn_qemu(int fd)
{
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid > 0)
		return pid;
	/* Never outlive the test, whatever happens to it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (fd == 3)
		fcntl(3, F_SETFD, 0);
	else if (dup2(fd, 3) < 0)
		_exit(127);
	close_range(4, ~0U, 0);
	execlp("qemu-system-x86_64", "qemu-system-x86_64", "-S", "-nodefaults",
	       "-no-user-config", "-display", "none", "-machine", "none",
	       "-chardev", "socket,id=qmp,fd=3", "-mon",
	       "chardev=qmp,mode=control", (char *)NULL);
	_exit(127);
}

/* Wait up to 10 s for pid, then kill it; its wait status. */
static int
reap(pid_t pid)
{
	int64_t end = now_ms() + 10000;
	int status = -1;

	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() > end) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			break;
		}
		poll(NULL, 0, 20);
	}
	return status;
}

Test(qmp_qemu, query_status_version_and_quit, .timeout = 120)
{
	struct error err = { 0 };
	struct qmp *qq;
	json_t *ret = NULL;
	pid_t pid;
	int sv[2], r, status;
	int64_t end;

	if (!in_path("qemu-system-x86_64"))
		cr_skip_test("qemu-system-x86_64 not on PATH");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = spawn_qemu(sv[1]);
	close(sv[1]);
	qq = qmp_new(sv[0], on_real_event, NULL);

	r = qmp_execute_sync(qq, "query-status", NULL, 20000, &ret, &err);
	if (r < 0) {
		kill(pid, SIGKILL);
		reap(pid);
		cr_assert_fail("query-status: %s", err.msg);
	}
	cr_assert(qmp_ready(qq));
	cr_assert_str_eq(json_string_value(json_object_get(ret, "status")),
			 "prelaunch");
	json_decref(ret);

	r = qmp_execute_sync(qq, "query-version", NULL, 10000, &ret, &err);
	cr_assert_eq(r, 0, "%s", err.msg);
	cr_assert_geq(json_integer_value(json_object_get(
			      json_object_get(ret, "qemu"), "major")),
		      2);
	json_decref(ret);

	r = qmp_execute_sync(qq, "quit", NULL, 10000, &ret, &err);
	cr_assert_eq(r, 0, "%s", err.msg);
	json_decref(ret);

	/* QEMU closes the monitor as it exits: EOF is the last word. */
	end = now_ms() + 10000;
	do {
		struct pollfd p = { .fd = qmp_fd(qq), .events = POLLIN };

		poll(&p, 1, 100);
		r = qmp_handle_io(qq, EPOLLIN, &err);
	} while (r == 0 && now_ms() < end);
	cr_assert_eq(r, -EPIPE, "%s", err.msg);
	cr_assert_eq(shutdown_events, 1);
	qmp_free(qq);

	status = reap(pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "qemu status %#x", status);
}

Test(qmp_events, shutdown_cause_in_words)
{
	json_t *d;

	d = json_pack("{s:b, s:s}", "guest", 1, "reason", "guest-reset");
	cr_assert(strstr(qmp_shutdown_cause(d), "kernel panic"));
	json_decref(d);
	d = json_pack("{s:b, s:s}", "guest", 1, "reason", "guest-shutdown");
	cr_assert_str_eq(qmp_shutdown_cause(d), "the guest powered off");
	json_decref(d);
	d = json_pack("{s:s}", "reason", "guest-panic");
	cr_assert_str_eq(qmp_shutdown_cause(d), "the guest kernel panicked");
	json_decref(d);
	/* what QEMU may add later, or nothing at all */
	d = json_pack("{s:s}", "reason", "snapshot-load");
	cr_assert_str_eq(qmp_shutdown_cause(d), "cause unknown");
	json_decref(d);
	d = json_pack("{s:i}", "reason", 3);
	cr_assert_str_eq(qmp_shutdown_cause(d), "cause unknown");
	json_decref(d);
	cr_assert_str_eq(qmp_shutdown_cause(NULL), "cause unknown");
}

Test(qmp_events, vserport_closed_only_for_our_port)
{
	json_t *d;

	d = json_pack("{s:s, s:b}", "id", "agentport", "open", 0);
	cr_assert(qmp_vserport_closed(d, "agentport"));
	cr_assert_not(qmp_vserport_closed(d, "other"));
	json_decref(d);
	d = json_pack("{s:s, s:b}", "id", "agentport", "open", 1);
	cr_assert_not(qmp_vserport_closed(d, "agentport"));
	json_decref(d);
	/* a malformed event closes nothing */
	d = json_pack("{s:s, s:s}", "id", "agentport", "open", "false");
	cr_assert_not(qmp_vserport_closed(d, "agentport"));
	json_decref(d);
	d = json_pack("{s:b}", "open", 0);
	cr_assert_not(qmp_vserport_closed(d, "agentport"));
	json_decref(d);
	cr_assert_not(qmp_vserport_closed(NULL, "agentport"));
}

/* getfd's fd rides on the command's first byte, and only then. */
Test(qmp, execute_fd_passes_the_fd_with_the_command)
{
	struct error err = { 0 };
	struct reply r = { 0 };
	char buf[4096], path[] = "/tmp/test-qmp-fd.XXXXXX";
	union {
		char b[CMSG_SPACE(sizeof(int))];
		struct cmsghdr a;
	} u;
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = u.b, .msg_controllen = sizeof(u.b) };
	struct cmsghdr *cm;
	struct stat a, b;
	int f = mkstemp(path), got = -1;
	ssize_t n;

	cr_assert_geq(f, 0);
	unlink(path);
	/* not before the connection is ready: held commands go first */
	cr_assert_lt(qmp_execute_fd(q, "getfd", json_pack("{s:s}", "fdname",
							  "x"),
				    f, 5000, on_reply, &r, &err),
		     0);
	cr_assert_eq(err.code, EBUSY);
	handshake();
	cr_assert_eq(qmp_execute_fd(q, "getfd", json_pack("{s:s}", "fdname",
							  "x"),
				    f, 5000, on_reply, &r, &err),
		     0, "%s", err.msg);
	n = recvmsg(peer, &m, 0);
	cr_assert_gt(n, 0);
	buf[n] = '\0';
	cr_assert(strstr(buf, "\"getfd\""), "%s", buf);
	cm = CMSG_FIRSTHDR(&m);
	cr_assert(cm && cm->cmsg_type == SCM_RIGHTS, "no fd came along");
	memcpy(&got, CMSG_DATA(cm), sizeof(int));
	cr_assert(fstat(f, &a) == 0 && fstat(got, &b) == 0);
	cr_assert_eq(a.st_ino, b.st_ino, "another file came along");
	close(got);
	/* the next command carries none */
	cr_assert_eq(qmp_execute(q, "query-status", NULL, 5000, NULL, NULL,
				 &err),
		     0);
	m.msg_controllen = sizeof(u.b);
	n = recvmsg(peer, &m, 0);
	cr_assert_gt(n, 0);
	cr_assert_eq(m.msg_controllen, 0, "an fd came with a second command");
	close(f);
}
