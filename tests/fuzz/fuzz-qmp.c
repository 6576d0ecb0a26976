/*
 * fuzz-qmp.c - libFuzzer target: arbitrary bytes from "QEMU" into qmp.c
 *
 * The first input byte picks how the rest is chunked on the socket; the
 * rest is the peer's byte stream.  Our first command has id 1 and
 * qmp_capabilities id 2 (after the greeting); commands queued from the
 * callbacks follow, some with a zero timeout so late replies get exercised.
 *
 * Build with a small line cap so that inputs of a few KiB reach it (and the
 * per-call read budget, 4 * QMP_MAX_LINE):
 *
 *   clang -fsanitize=fuzzer,address,undefined -DQMP_MAX_LINE=512 \
 *	-D_GNU_SOURCE -Iqctl -g -O1 $(pkg-config --cflags jansson) \
 *	tests/fuzz/fuzz-qmp.c qctl/qmp.c qctl/util.c \
 *	$(pkg-config --libs jansson) -o fuzz-qmp
 */
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct state {
	int queued;
	int replies;
	int events;
};

static void
on_reply(struct qmp *q, json_t *ret, const struct error *err, void *opaque)
{
	struct state *st = opaque;

	st->replies++;
	/* Touch what we were given, as a real caller would. */
	if (ret)
		json_decref(json_deep_copy(ret));
	else if (err && strlen(err->msg) >= sizeof(err->msg))
		__builtin_trap();
	/* Re-entrant queueing, bounded per input. */
	if (st->queued < 8) {
		st->queued++;
		/* Odd ones expire at once; every third has no callback. */
		qmp_execute(q, "cont", json_pack("{s:i}", "n", st->queued),
			    st->queued % 2 ? 0 : 60000,
			    st->queued % 3 ? on_reply : NULL, st, NULL);
	}
}

static void
on_event(struct qmp *q, const char *event, json_t *data, void *opaque)
{
	struct state *st = opaque;

	st->events++;
	if (strlen(event) > QMP_MAX_LINE)
		__builtin_trap();
	if (data)
		json_decref(json_deep_copy(data));
	if (st->queued < 8) {
		st->queued++;
		qmp_execute(q, "stop", NULL, 60000, on_reply, st, NULL);
	}
}

/* Discard what the client wrote, so its output never backs up. */
static void
drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state st = { 0 };
	struct error err;
	struct qmp *q;
	size_t off = 0, chunk;
	int sv[2], i;

	if (size < 1)
		return 0;
	chunk = data[0] < 128 ? size : (size_t)(data[0] & 63) + 1;
	data++;
	size--;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	q = qmp_new(sv[0], on_event, &st);
	if (!q)
		__builtin_trap();
	qmp_execute(q, "query-status", NULL, 60000, on_reply, &st, NULL);

	while (off < size && !qmp_dead(q)) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = send(sv[1], data + off, n,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0)
			off += w;
		qmp_handle_io(q, EPOLLIN | EPOLLOUT, &err);
		qmp_check_timeouts(q, now_ms());
		drain(sv[1]);
	}
	/* Let the rest expire (late replies are now possible), then EOF. */
	qmp_check_timeouts(q, now_ms() + 120000);
	if (qmp_next_deadline(q) != -1)
		__builtin_trap();
	shutdown(sv[1], SHUT_WR);
	/* Each call reads at most QMP_READ_BUDGET bytes. */
	for (i = 0; i < 16 + (int)(size / QMP_READ_BUDGET) && !qmp_dead(q);
	     i++)
		qmp_handle_io(q, EPOLLIN | EPOLLHUP, &err);
	if (!qmp_dead(q))
		__builtin_trap();
	if (qmp_execute(q, "x", json_object(), 1, on_reply, &st, &err) !=
	    -EPIPE)
		__builtin_trap();
	qmp_free(q);
	close(sv[1]);
	return 0;
}
