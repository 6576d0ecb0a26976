/* agent.c - framing and messages of the guest agent channel, host side */
#include "agent.h"

#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

int
agent_frames_parse(struct buf *in, agent_frame_fn fn, void *opaque,
		   struct error *err)
{
	size_t off = 0;
	int r = 0;

	while (in->len - off >= AGENT_HDR_SIZE) {
		struct agent_hdr h;

		if (agent_hdr_decode((unsigned char *)in->data + off, &h) < 0) {
			r = error_set(err, EPROTO,
				      "agent: bad frame header (len %u, "
				      "flags %#x)", h.len, h.flags);
			break;
		}
		if (in->len - off - AGENT_HDR_SIZE < h.len)
			break;
		r = fn(&h, in->data + off + AGENT_HDR_SIZE, opaque, err);
		if (r < 0)
			break;
		off += AGENT_HDR_SIZE + h.len;
	}
	buf_consume(in, off);
	return r < 0 ? r : 0;
}

void
agent_conn_init(struct agent_conn *c, int fd, agent_frame_fn fn, void *opaque)
{
	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->on_frame = fn;
	c->opaque = opaque;
	fd_set_nonblock(fd);
}

void
agent_conn_free(struct agent_conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	c->out_off = 0;
}

int
agent_send(struct agent_conn *c, uint16_t type, uint32_t id,
	   const void *payload, size_t len, struct error *err)
{
	unsigned char hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = { .len = len, .type = type, .id = id };

	if (c->dead)
		return error_set(err, EPIPE, "agent: connection lost");
	if (len > AGENT_MAX_PAYLOAD)
		return error_set(err, E2BIG, "agent: frame of %zu bytes", len);
	agent_hdr_encode(hdr, &h);
	buf_append(&c->out, hdr, sizeof(hdr));
	if (len)
		buf_append(&c->out, payload, len);
	return 0;
}

static void
put_u32(struct buf *b, uint32_t v)
{
	unsigned char x[4];

	agent_put_u32(x, v);
	buf_append(b, x, 4);
}

static void
put_str(struct buf *b, const char *s)
{
	buf_append(b, s, strlen(s) + 1);
}

int
agent_send_exec(struct agent_conn *c, uint32_t id, uint32_t flags,
		const char *cwd, char *const *argv, size_t argc,
		char *const *env, size_t envc, struct error *err)
{
	struct buf p = { 0 };
	int r;

	if (flags & ~AGENT_EXEC_FLAGS)
		return error_set(err, EINVAL, "agent: EXEC flags %#x unknown",
				 flags & ~AGENT_EXEC_FLAGS);
	if (argc == 0 || argc + envc > AGENT_MAX_STRINGS)
		return error_set(err, E2BIG, "agent: bad argument count");
	put_u32(&p, flags);
	put_u32(&p, argc);
	put_u32(&p, envc);
	put_str(&p, cwd);
	for (size_t i = 0; i < argc; i++)
		put_str(&p, argv[i]);
	for (size_t i = 0; i < envc; i++)
		put_str(&p, env[i]);
	if (p.len > AGENT_MAX_PAYLOAD)
		r = error_set(err, E2BIG,
			      "command and environment exceed %u bytes",
			      AGENT_MAX_PAYLOAD);
	else
		r = agent_send(c, AGENT_EXEC, id, p.data, p.len, err);
	buf_free(&p);
	return r;
}

int
agent_send_stdin(struct agent_conn *c, uint32_t id, const void *p, size_t n,
		 struct error *err)
{
	const unsigned char *b = p;

	/* an empty STDIN is a protocol error for the agent: nothing to say */
	if (n == 0)
		return error_set(err, EINVAL, "agent: empty STDIN");
	if (id == 0)
		return error_set(err, EINVAL, "agent: STDIN for id 0");
	while (n) {
		size_t k = n < AGENT_MAX_PAYLOAD ? n : AGENT_MAX_PAYLOAD;
		int r = agent_send(c, AGENT_STDIN, id, b, k, err);

		if (r < 0)
			return r;
		b += k;
		n -= k;
	}
	return 0;
}

int
agent_send_stdin_end(struct agent_conn *c, uint32_t id, struct error *err)
{
	if (id == 0)
		return error_set(err, EINVAL, "agent: STDIN_END for id 0");
	return agent_send(c, AGENT_STDIN_END, id, NULL, 0, err);
}

int
agent_send_winsize(struct agent_conn *c, uint32_t id, uint32_t rows,
		   uint32_t cols, struct error *err)
{
	unsigned char p[8];

	if (id == 0)
		return error_set(err, EINVAL, "agent: WINSIZE for id 0");
	if (rows < 1 || rows > AGENT_WINSIZE_MAX || cols < 1 ||
	    cols > AGENT_WINSIZE_MAX)
		return error_set(err, EINVAL,
				 "agent: window of %u rows, %u columns", rows,
				 cols);
	agent_put_u32(p, rows);
	agent_put_u32(p + 4, cols);
	return agent_send(c, AGENT_WINSIZE, id, p, sizeof(p), err);
}

int
agent_send_identity(struct agent_conn *c, uint32_t id,
		    const struct timespec *now, const void *seed, size_t n,
		    const char *hostname, struct error *err)
{
	unsigned char p[16 + AGENT_SEED_MAX + 65];
	size_t hn = strlen(hostname);
	uint64_t sec = (uint64_t)now->tv_sec;

	if (n < AGENT_SEED_MIN || n > AGENT_SEED_MAX)
		return error_set(err, EINVAL, "agent: seed of %zu bytes", n);
	if (hn < 1 || hn > 64)
		return error_set(err, EINVAL, "agent: hostname of %zu bytes",
				 hn);
	agent_put_u32(p, (uint32_t)sec);
	agent_put_u32(p + 4, (uint32_t)(sec >> 32));
	agent_put_u32(p + 8, (uint32_t)now->tv_nsec);
	agent_put_u32(p + 12, (uint32_t)n);
	memcpy(p + 16, seed, n);
	memcpy(p + 16 + n, hostname, hn + 1);
	return agent_send(c, AGENT_IDENTITY, id, p, 16 + n + hn + 1, err);
}

int
agent_send_file_out(struct agent_conn *c, uint32_t id, const char *dir,
		    char *const *globs, size_t n, struct error *err)
{
	struct buf p = { 0 };
	int r;

	if (n > AGENT_MAX_STRINGS)
		return error_set(err, E2BIG, "agent: too many globs");
	put_u32(&p, n);
	put_str(&p, dir);
	for (size_t i = 0; i < n; i++)
		put_str(&p, globs[i]);
	if (p.len > AGENT_MAX_PAYLOAD)
		r = error_set(err, E2BIG, "artifact globs too long");
	else
		r = agent_send(c, AGENT_FILE_OUT, id, p.data, p.len, err);
	buf_free(&p);
	return r;
}

size_t
agent_pending(const struct agent_conn *c)
{
	return c->out.len - c->out_off;
}

static int
agent_flush(struct agent_conn *c, struct error *err)
{
	while (c->out_off < c->out.len) {
		ssize_t w = send(c->fd, c->out.data + c->out_off,
				 c->out.len - c->out_off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				break;
			c->dead = true;
			return error_sys(err, errno, "agent: write");
		}
		c->out_off += w;
	}
	if (c->out_off == c->out.len) {
		c->out.len = 0;
		c->out_off = 0;
	} else if (c->out_off > (1u << 20)) {
		buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
	return 0;
}

int
agent_handle_io(struct agent_conn *c, uint32_t events, struct error *err)
{
	int r;

	if (c->dead)
		return error_set(err, EPIPE, "agent: connection lost");
	if (events & EPOLLOUT) {
		r = agent_flush(c, err);
		if (r < 0)
			return r;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		/* Bounded reads: the buffer never holds more than one
		 * maximal frame plus one read. */
		char tmp[65536];

		for (int rounds = 0; rounds < 16; rounds++) {
			ssize_t n = read(c->fd, tmp, sizeof(tmp));

			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN)
					break;
				c->dead = true;
				return error_sys(err, errno, "agent: read");
			}
			if (n == 0) {
				c->dead = true;
				return error_set(err, EPIPE,
						 "agent: connection closed");
			}
			buf_append(&c->in, tmp, n);
			r = agent_frames_parse(&c->in, c->on_frame, c->opaque,
					       err);
			if (r < 0) {
				c->dead = true;
				return r;
			}
			if (c->dead)
				break;
		}
	}
	return agent_flush(c, err);
}

const char *
agent_type_name(uint16_t type)
{
	static const struct {
		uint16_t type;
		const char *name;
	} names[] = {
		{ AGENT_EXEC, "EXEC" },		{ AGENT_SIGNAL, "SIGNAL" },
		{ AGENT_FILE_IN, "FILE_IN" },	{ AGENT_FILE_OUT, "FILE_OUT" },
		{ AGENT_DATA, "DATA" },		{ AGENT_DATA_END, "DATA_END" },
		{ AGENT_POWEROFF, "POWEROFF" },	{ AGENT_PING, "PING" },
		{ AGENT_STDIN, "STDIN" },	{ AGENT_STDIN_END, "STDIN_END" },
		{ AGENT_WINSIZE, "WINSIZE" },
		{ AGENT_IDENTITY, "IDENTITY" }, { AGENT_HELLO, "HELLO" },	{ AGENT_STARTED, "STARTED" },
		{ AGENT_STDOUT, "STDOUT" },	{ AGENT_STDERR, "STDERR" },
		{ AGENT_EXIT, "EXIT" },		{ AGENT_ERROR, "ERROR" },
		{ AGENT_PONG, "PONG" },		{ AGENT_FILE_DONE, "FILE_DONE" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i].type == type)
			return names[i].name;
	return "unknown";
}

void
agent_sanitize(const void *p, size_t len, char *out, size_t outlen)
{
	const unsigned char *s = p;
	size_t j = 0;

	if (!outlen)
		return;
	for (size_t i = 0; i < len && j + 1 < outlen; i++) {
		if (s[i] == '\0')
			break;
		out[j++] = (s[i] < 0x20 || s[i] >= 0x7f) ? '?' : s[i];
	}
	out[j] = '\0';
}

int
agent_decode_hello(const void *p, size_t len, struct agent_hello *out,
		   struct error *err)
{
	struct agent_cursor c;
	const char *ver = "", *un = "";

	agent_cursor_init(&c, p, len);
	if (agent_cursor_u32(&c, &out->version) < 0)
		return error_set(err, EPROTO, "agent: short HELLO");
	/* Older or terser agents may omit the strings. */
	if (c.left && agent_cursor_str(&c, &ver) < 0)
		return error_set(err, EPROTO, "agent: bad HELLO string");
	if (c.left && agent_cursor_str(&c, &un) < 0)
		return error_set(err, EPROTO, "agent: bad HELLO string");
	agent_sanitize(ver, strlen(ver), out->agent_version,
		       sizeof(out->agent_version));
	agent_sanitize(un, strlen(un), out->uname, sizeof(out->uname));
	return 0;
}

int
agent_decode_exit(const void *p, size_t len, int32_t *code, int32_t *sig,
		  struct error *err)
{
	struct agent_cursor c;
	uint32_t a, b;

	agent_cursor_init(&c, p, len);
	if (agent_cursor_u32(&c, &a) < 0 || agent_cursor_u32(&c, &b) < 0 ||
	    c.left)
		return error_set(err, EPROTO, "agent: EXIT of %zu bytes", len);
	*code = (int32_t)a;
	*sig = (int32_t)b;
	if (*code < -1 || *code > 255 || *sig < 0 || *sig > 64)
		return error_set(err, EPROTO, "agent: EXIT code %d signal %d",
				 *code, *sig);
	return 0;
}

int
agent_decode_status(const void *p, size_t len, int32_t *status, char *msg,
		    size_t msglen, struct error *err)
{
	struct agent_cursor c;
	uint32_t a;

	agent_cursor_init(&c, p, len);
	if (agent_cursor_u32(&c, &a) < 0)
		return error_set(err, EPROTO, "agent: short status frame");
	*status = (int32_t)a;
	agent_sanitize(c.p, c.left, msg, msglen);
	return 0;
}
