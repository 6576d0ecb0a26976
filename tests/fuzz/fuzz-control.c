/*
 * fuzz-control.c - libFuzzer target: arbitrary bytes from a client into
 * the control server (control.c): framing, JSON, negotiation, dispatch,
 * argument checks, the output queue.
 *
 * The first input byte picks how the rest is chunked on the socket (and
 * whether events are broadcast meanwhile); the rest is the client's byte
 * stream.  Small limits (512-byte requests, 4 KiB queue) so that short
 * inputs reach them.  The framer alone is checked against its contract
 * on the same bytes.
 *
 *   make fuzz    (or: clang -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE
 *		   -Iqctl $(pkg-config --cflags jansson)
 *		   tests/fuzz/fuzz-control.c
 *		   qctl/control.c qctl/loop.c qctl/util.c
 *		   $(pkg-config --libs jansson) -o fuzz-control)
 */
#include <string.h>
#include <sys/socket.h>

#include "control.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_MSG 512

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
	return error_set(err, EIO, "no");
}

static const struct ctl_cmd cmds[] = {
	{ "echo", cmd_echo, "s:s n:i? b:b? o:o? a:a? x:*?", "" },
	{ "fail", cmd_fail, NULL, "" },
};

/* The framer's contract, on the raw bytes. */
static void
check_framer(const uint8_t *data, size_t size)
{
	struct ctl_framer f;
	size_t off = 0;

	ctl_framer_init(&f, MAX_MSG);
	while (off < size) {
		enum ctl_frame fr;
		size_t used = ctl_framer_feed(&f, (const char *)data + off,
					      size - off, &fr);

		if (used == 0 || used > size - off)
			__builtin_trap();
		if (fr == CTL_FRAME_MSG &&
		    (f.msg.len == 0 || f.msg.len > MAX_MSG))
			__builtin_trap();
		if (fr == CTL_FRAME_ERROR && !f.why)
			__builtin_trap();
		if (fr == CTL_FRAME_MORE && used != size - off)
			__builtin_trap();
		if (f.msg.len > MAX_MSG)
			__builtin_trap();
		off += used;
	}
	ctl_framer_free(&f);
}

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
	struct ctl_opts o = { .package = "fuzz", .msg_max = MAX_MSG,
			      .out_max = 4096 };
	struct error err;
	struct loop *l;
	struct ctl *c;
	size_t off = 0, chunk;
	bool events, slow;
	int sv[2];

	if (size < 1)
		return 0;
	chunk = (data[0] & 63) + 1;
	events = data[0] & 64;
	slow = data[0] & 128;	/* the client does not read */
	data++;
	size--;
	check_framer(data, size);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	l = loop_new();
	c = ctl_new(l, cmds, 2, NULL, &o);
	if (ctl_add_client(c, sv[0], &err) < 0)
		__builtin_trap();
	/* negotiated half of the time, so dispatch is reached */
	if (events) {
		static const char neg[] = "{\"execute\":\"qmp_capabilities\"}";

		if (send(sv[1], neg, sizeof(neg) - 1, MSG_NOSIGNAL) < 0)
			__builtin_trap();
	}
	while (off < size && ctl_n_clients(c) == 1) {
		size_t n = size - off < chunk ? size - off : chunk;
		ssize_t w = send(sv[1], data + off, n,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0)
			off += w;
		loop_run_once(l, 0);
		if (events)
			ctl_event(c, "TICK", json_pack("{s:I}", "off",
						       (json_int_t)off));
		if (!slow || w <= 0)
			drain(sv[1]);
	}
	shutdown(sv[1], SHUT_WR);
	for (int i = 0; i < 64 && ctl_n_clients(c) == 1; i++) {
		loop_run_once(l, 0);
		drain(sv[1]);
	}
	if (ctl_n_clients(c) != 0)
		__builtin_trap();	/* EOF and drained: must be gone */
	ctl_free(c);
	loop_free(l);
	close(sv[1]);
	return 0;
}
