/* proxy-serve.c - the proxy's relay: resolvers forked, then one epoll
 * loop that parses requests, applies the allowlist and relays bytes with
 * splice(2).  main.c sets the process up around it. */
#include "proxy-serve.h"
#include "child.h"
#include "http-req.h"
#include "proxy-proto.h"
#include "proxy-sandbox.h"
#include "sni.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>

/* fd numbers in the proxy process */
enum {
	FD_LISTEN = PROXY_FD_LISTEN,
	FD_CTL = PROXY_FD_CTL,
};

#define HEAD_TIMEOUT_MS 30000 /* whole request head */
#define LINGER_MS 2000	      /* after an error reply, before close */
#define TICK_MS 50	      /* timeout and totals sweep */
#define TOTALS_EVERY_MS 200   /* < 250 ms promised to the manager */
#ifndef PIPE_BYTES
#define PIPE_BYTES (256 * 1024) /* per direction; see docs/proxy.md */
#endif
#define CTL_QUEUE_MAX (8u << 20) /* a manager this far behind is gone */

enum ev_kind {
	EV_LISTEN = 1,
	EV_CTL,
	EV_RESOLVER,
	EV_CLIENT,
	EV_UPSTREAM,
};

enum cstate {
	C_FREE,
	C_HEAD,	   /* reading the request head */
	C_RESOLVE, /* waiting for a resolver */
	C_CONNECT, /* upstream connect in progress */
	C_SNI,	   /* CONNECT: 200 sent, waiting for the ClientHello */
	C_RELAY,
	C_REPLY,  /* writing an error reply */
	C_LINGER, /* reply sent, draining the client before close */
};

/* One direction of a relay: src -> pipe -> dst, after pre. */
struct dir {
	int src, dst;
	int pipe[2];
	size_t inpipe, cap;
	bool in_blocked; /* splice-in said EAGAIN with bytes in the
			  * pipe: pipe full or src empty, cannot tell */
	struct buf pre;	 /* bytes to send first */
	size_t pre_off;
	size_t pre_nocount; /* leading pre bytes that are our own words */
	bool eof, shut;
	uint64_t bytes;
};

struct conn {
	enum cstate st;
	uint32_t gen;
	int cfd, ufd;
	uint32_t cmask, umask; /* registered epoll masks, 0 = none */
	int64_t deadline;
	int64_t last_io;
	struct buf in;	/* client bytes before the relay starts */
	struct buf out; /* error reply */
	size_t out_off;
	bool decided; /* allowed and still to be recorded */
	uint32_t window;
	char method[HTTP_REQ_METHOD_MAX];
	char host[PROXY_HOST_MAX];
	uint16_t port;
	bool connect;
	struct host h;
	struct proxy_resolve_addr addrs[PROXY_RESOLVE_ADDRS];
	size_t naddr, next;
	int last_errno;
	char reason[PROXY_REASON_MAX];
	struct dir up, down;
};

struct resolver {
	int fd;
	bool busy, dead;
	uint32_t id;
	int conn;
	uint32_t gen;
};

struct qent {
	int conn;
	uint32_t gen;
};

struct srv {
	const struct proxy_conf *a;
	int ep;
	bool listening;
	bool ctl_wout;
	uint32_t window; /* open window id, 0 = closed */
	bool budget_out;
	uint32_t next_gen, next_id;
	size_t nconns;
	uint64_t up, down;
	uint64_t rep_up, rep_down;
	int64_t rep_at, tick_at;
	struct buf ctlq; /* queued messages: u32 length, bytes */
	size_t ctlq_off;
	struct conn conns[PROXY_MAX_CONNS];
	struct resolver res[PROXY_RESOLVERS];
	struct qent rq[PROXY_MAX_CONNS];
	size_t rq_head, rq_len;
	struct http_req req; /* scratch for the parser */
};

static uint64_t
ev_key(enum ev_kind kind, unsigned int idx, uint32_t gen)
{
	return (uint64_t)gen << 32 | (uint64_t)idx << 8 | kind;
}

static void die(void) __attribute__((noreturn));

/* An impossible state or a broken invariant: stop, fail closed. */
static void
die(void)
{
	_exit(1);
}

/* ---- control channel ---------------------------------------------------- */

static void
ctl_flush(struct srv *s)
{
	while (s->ctlq_off < s->ctlq.len) {
		uint32_t len;
		ssize_t n;

		memcpy(&len, s->ctlq.data + s->ctlq_off, sizeof(len));
		n = send(FD_CTL, s->ctlq.data + s->ctlq_off + sizeof(len), len,
			 MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n < 0)
			_exit(0); /* the manager is gone */
		s->ctlq_off += sizeof(len) + len;
	}
	if (s->ctlq_off == s->ctlq.len) {
		s->ctlq.len = 0;
		s->ctlq_off = 0;
	}
	if (s->ctlq.len > CTL_QUEUE_MAX)
		die(); /* records could no longer be delivered: fail closed */
	if ((s->ctlq.len != 0) != s->ctl_wout) {
		struct epoll_event ev = {
			.events = EPOLLIN | (s->ctlq.len ? EPOLLOUT : 0),
			.data.u64 = ev_key(EV_CTL, 0, 0),
		};

		s->ctl_wout = s->ctlq.len != 0;
		if (epoll_ctl(s->ep, EPOLL_CTL_MOD, FD_CTL, &ev) < 0)
			die();
	}
}

static void
ctl_send(struct srv *s, json_t *msg)
{
	char *txt = json_dumps(msg, JSON_COMPACT);
	uint32_t len;

	json_decref(msg);
	if (!txt)
		die();
	len = strlen(txt);
	if (len > PROXY_MSG_MAX)
		die();
	buf_append(&s->ctlq, &len, sizeof(len));
	buf_append(&s->ctlq, txt, len);
	free(txt);
	ctl_flush(s);
}

static void
send_totals(struct srv *s)
{
	s->rep_up = s->up;
	s->rep_down = s->down;
	s->rep_at = now_ms();
	ctl_send(s, json_pack("{s:s, s:I, s:I}", "t", "bytes", "up",
			      (json_int_t)s->up, "down", (json_int_t)s->down));
}

static void
record(struct srv *s, struct conn *c, bool allowed)
{
	/* Totals first: a manager that reads a record has totals that
	 * include it. */
	if (s->up != s->rep_up || s->down != s->rep_down)
		send_totals(s);
	ctl_send(s,
		 json_pack("{s:s, s:I, s:s, s:s, s:i, s:b, s:s, s:I, s:I}", "t",
			   "req", "w", (json_int_t)c->window, "method",
			   c->method[0] ? c->method : "-", "host", c->host,
			   "port", (int)c->port, "allowed", allowed, "reason",
			   c->reason, "up", (json_int_t)c->up.bytes, "down",
			   (json_int_t)c->down.bytes));
}

/* ---- connections -------------------------------------------------------- */

static void
set_mask(struct srv *s, struct conn *c, int fd, uint32_t *reg, uint32_t want,
	 enum ev_kind kind)
{
	struct epoll_event ev = {
		.events = want,
		.data.u64 = ev_key(kind, c - s->conns, c->gen),
	};
	int op;

	if (fd < 0 || *reg == want)
		return;
	/* An fd with nothing to wait for leaves the set: a hung-up socket
	 * would otherwise report EPOLLHUP on every round. */
	if (want == 0)
		op = EPOLL_CTL_DEL;
	else if (*reg == 0)
		op = EPOLL_CTL_ADD;
	else
		op = EPOLL_CTL_MOD;
	if (epoll_ctl(s->ep, op, fd, &ev) < 0)
		die();
	*reg = want;
}

static bool
dir_wants_src(const struct dir *d)
{
	return d->pipe[0] >= 0 && !d->eof && !d->in_blocked &&
	       d->inpipe < d->cap && d->pre_off == d->pre.len;
}

static bool
dir_wants_dst(const struct dir *d)
{
	return !d->shut && (d->pre_off < d->pre.len || d->inpipe);
}

static void
conn_update(struct srv *s, struct conn *c)
{
	uint32_t cw = 0, uw = 0;

	switch (c->st) {
	case C_HEAD:
	case C_LINGER:
		cw = EPOLLIN;
		break;
	case C_REPLY:
		cw = EPOLLOUT;
		break;
	case C_CONNECT:
		uw = EPOLLOUT;
		break;
	case C_SNI:
		if (c->in.len < SNI_BUF_MAX)
			cw |= EPOLLIN;
		if (dir_wants_dst(&c->down))
			cw |= EPOLLOUT;
		if (dir_wants_src(&c->down))
			uw |= EPOLLIN;
		break;
	case C_RELAY:
		if (dir_wants_src(&c->up))
			cw |= EPOLLIN;
		if (dir_wants_dst(&c->down))
			cw |= EPOLLOUT;
		if (dir_wants_src(&c->down))
			uw |= EPOLLIN;
		if (dir_wants_dst(&c->up))
			uw |= EPOLLOUT;
		break;
	case C_FREE:
	case C_RESOLVE:
		break;
	}
	set_mask(s, c, c->cfd, &c->cmask, cw, EV_CLIENT);
	set_mask(s, c, c->ufd, &c->umask, uw, EV_UPSTREAM);
}

static void
dir_init(struct dir *d)
{
	memset(d, 0, sizeof(*d));
	d->src = d->dst = -1;
	d->pipe[0] = d->pipe[1] = -1;
}

static void
dir_free(struct dir *d)
{
	if (d->pipe[0] >= 0)
		close(d->pipe[0]);
	if (d->pipe[1] >= 0)
		close(d->pipe[1]);
	buf_free(&d->pre);
	dir_init(d);
}

static void
listen_update(struct srv *s)
{
	bool want = s->nconns < PROXY_MAX_CONNS;
	struct epoll_event ev = {
		.events = EPOLLIN,
		.data.u64 = ev_key(EV_LISTEN, 0, 0),
	};

	if (want == s->listening)
		return;
	/* At the cap, new clients wait in the kernel's backlog. */
	if (epoll_ctl(s->ep, want ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, FD_LISTEN,
		      &ev) < 0)
		die();
	s->listening = want;
}

static void
conn_free(struct srv *s, struct conn *c)
{
	if (c->cfd >= 0)
		close(c->cfd);
	if (c->ufd >= 0)
		close(c->ufd);
	dir_free(&c->up);
	dir_free(&c->down);
	buf_free(&c->in);
	buf_free(&c->out);
	memset(c, 0, sizeof(*c));
	dir_init(&c->up);
	dir_init(&c->down);
	c->cfd = c->ufd = -1;
	c->st = C_FREE;
	s->nconns--;
	listen_update(s);
}

/* End an allowed connection: record it with its bytes, close. */
static void
conn_finish(struct srv *s, struct conn *c, bool allowed, const char *why)
{
	if (why)
		snprintf(c->reason, sizeof(c->reason), "%s", why);
	if (c->decided)
		record(s, c, allowed);
	conn_free(s, c);
}

static void
sanitize(const char *in, size_t n, char *out, size_t outlen)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < outlen; i++) {
		unsigned char ch = in[i];

		out[k++] = ch > 0x20 && ch < 0x7f && ch != '"' && ch != '\\'
				   ? ch
				   : '?';
	}
	out[k] = '\0';
}

/*
 * Refuse with an HTTP error: record the request now, send the reply,
 * linger briefly.  allowed is the policy decision (true for an allowed
 * request whose upstream failed).
 */
static void conn_refuse(struct srv *s, struct conn *c, int status,
			bool allowed, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void
conn_refuse(struct srv *s, struct conn *c, int status, bool allowed,
	    const char *fmt, ...)
{
	static const struct {
		int code;
		const char *text;
	} texts[] = {
		{ 400, "Bad Request" },
		{ 403, "Forbidden" },
		{ 408, "Request Timeout" },
		{ 502, "Bad Gateway" },
		{ 504, "Gateway Timeout" },
	};
	const char *text = "Error";
	char body[PROXY_REASON_MAX + 16], head[256];
	va_list ap;
	int bn, hn;

	va_start(ap, fmt);
	vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
	va_end(ap);
	c->decided = false;
	record(s, c, allowed);
	for (size_t i = 0; i < ARRAY_SIZE(texts); i++)
		if (texts[i].code == status)
			text = texts[i].text;
	bn = snprintf(body, sizeof(body), "qctl: %s\n", c->reason);
	hn = snprintf(head, sizeof(head),
		      "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
		      "Content-Length: %d\r\nConnection: close\r\n\r\n",
		      status, text, bn);
	if (c->ufd >= 0) {
		close(c->ufd);
		c->ufd = -1;
		c->umask = 0;
	}
	dir_free(&c->up);
	dir_free(&c->down);
	buf_free(&c->out);
	buf_append(&c->out, head, hn);
	buf_append(&c->out, body, bn);
	c->out_off = 0;
	c->st = C_REPLY;
	c->deadline = now_ms() + LINGER_MS;
}

/* ---- relaying ----------------------------------------------------------- */

static uint64_t
budget_left(const struct srv *s)
{
	uint64_t used = s->up + s->down;

	if (!s->a->max_bytes)
		return UINT64_MAX;
	return used >= s->a->max_bytes ? 0 : s->a->max_bytes - used;
}

static void
count(struct srv *s, struct conn *c, struct dir *d, size_t n)
{
	d->bytes += n;
	if (d == &c->up)
		s->up += n;
	else
		s->down += n;
	c->last_io = now_ms();
}

static int
dir_open_pipe(struct dir *d)
{
	int sz;

	if (pipe2(d->pipe, O_NONBLOCK | O_CLOEXEC) < 0)
		return -errno;
	/* A bigger pipe means fewer splice calls per byte; the kernel may
	 * refuse past the user's pipe quota, and the default still works. */
	fcntl(d->pipe[1], F_SETPIPE_SZ, PIPE_BYTES);
	sz = fcntl(d->pipe[1], F_GETPIPE_SZ);
	d->cap = sz > 0 ? (size_t)sz : 65536;
	return 0;
}

/* Move what can move without blocking; 0, or -errno on a dead socket. */
static int
dir_pump(struct srv *s, struct conn *c, struct dir *d)
{
	for (;;) {
		bool progress = false;
		ssize_t n;

		while (d->pre_off < d->pre.len) {
			n = send(d->dst, d->pre.data + d->pre_off,
				 d->pre.len - d->pre_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0 && errno == EAGAIN)
				return 0;
			if (n < 0)
				return -errno;
			/* Only the client's or server's bytes count. */
			if (d->pre_off + n > d->pre_nocount)
				count(s, c, d,
				      d->pre_off + n -
					      (d->pre_off > d->pre_nocount
						       ? d->pre_off
						       : d->pre_nocount));
			d->pre_off += n;
		}
		if (d->pre.data) {
			buf_free(&d->pre);
			d->pre_off = d->pre_nocount = 0;
		}
		if (d->pipe[0] < 0)
			break;
		if (d->inpipe) {
			n = splice(d->pipe[0], NULL, d->dst, NULL, d->inpipe,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->inpipe -= n;
				d->in_blocked = false;
				count(s, c, d, n);
				progress = true;
			} else if (n < 0 && errno != EAGAIN && errno != EINTR) {
				return -errno;
			}
		}
		if (!d->eof && !d->in_blocked && d->inpipe < d->cap) {
			uint64_t left = budget_left(s);
			size_t want = d->cap - d->inpipe;

			if (left == 0)
				break;
			/* Stop at the budget, not a pipe's worth past it. */
			if (want > left)
				want = left;
			n = splice(d->src, NULL, d->pipe[1], NULL, want,
				   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->inpipe += n;
				c->last_io = now_ms();
				progress = true;
			} else if (n == 0) {
				d->eof = true;
				progress = true;
			} else if (errno == EAGAIN) {
				if (d->inpipe)
					d->in_blocked = true;
			} else if (errno != EINTR) {
				return -errno;
			}
		}
		if (!progress)
			break;
	}
	if (d->eof && !d->inpipe && d->pre_off == d->pre.len && !d->shut) {
		/* Pass the half-close on: HTTP/1.0 clients and many
		 * tunnelled protocols end a request that way. */
		shutdown(d->dst, SHUT_WR);
		d->shut = true;
	}
	return 0;
}

static void budget_exhausted(struct srv *s);

static void
relay_pump(struct srv *s, struct conn *c, bool up, bool down)
{
	int r = 0;

	if (up && c->st == C_RELAY)
		r = dir_pump(s, c, &c->up);
	if (r == 0 && down)
		r = dir_pump(s, c, &c->down);
	if (r < 0) {
		conn_finish(s, c, true, NULL);
		return;
	}
	if (s->a->max_bytes && !budget_left(s)) {
		budget_exhausted(s);
		return;
	}
	if (c->st == C_RELAY && c->up.shut && c->down.shut) {
		conn_finish(s, c, true, NULL);
		return;
	}
	conn_update(s, c);
}

static int
start_dir(struct dir *d, int src, int dst)
{
	d->src = src;
	d->dst = dst;
	return dir_open_pipe(d);
}

/* Cut every decided connection and refuse the rest: window closed, or
 * budget gone. */
static void
cut_all(struct srv *s, const char *why)
{
	for (size_t i = 0; i < PROXY_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];

		switch (c->st) {
		case C_SNI:
		case C_RELAY:
			conn_finish(s, c, true, why);
			break;
		case C_RESOLVE:
		case C_CONNECT:
			c->decided = false;
			conn_refuse(s, c, 403, false, "%s", why);
			conn_update(s, c);
			break;
		case C_HEAD:
			conn_free(s, c);
			break;
		default:
			break;
		}
	}
}

static void
budget_exhausted(struct srv *s)
{
	if (s->budget_out)
		return;
	/* The build has used its net_bytes: no byte more, in or out. */
	s->budget_out = true;
	cut_all(s, "net_bytes budget exhausted");
}

/* ---- CONNECT: checking the ClientHello ---------------------------------- */

static void
tunnel_start(struct srv *s, struct conn *c)
{
	c->up.pre = c->in;
	memset(&c->in, 0, sizeof(c->in));
	c->up.pre_off = 0;
	if (start_dir(&c->up, c->cfd, c->ufd) < 0) {
		conn_finish(s, c, true, "out of pipes");
		return;
	}
	c->st = C_RELAY;
	relay_pump(s, c, true, true);
}

static void
sni_check(struct srv *s, struct conn *c, bool client_eof)
{
	char name[PROXY_HOST_MAX];
	enum sni_result r;

	if (c->in.len == 0) {
		if (client_eof) {
			/* Nothing sent at all: pass the close on. */
			c->up.eof = true;
			tunnel_start(s, c);
		} else {
			conn_update(s, c);
		}
		return;
	}
	/* Not TLS: the host:port was allowed, and there is no name in
	 * the stream to compare. */
	if ((uint8_t)c->in.data[0] != SNI_TLS_HANDSHAKE) {
		tunnel_start(s, c);
		return;
	}
	r = sni_parse((const uint8_t *)c->in.data, c->in.len, name,
		      sizeof(name));
	switch (r) {
	case SNI_NEED_MORE:
		if (client_eof) {
			conn_finish(s, c, false, "incomplete TLS ClientHello");
		} else if (c->in.len >= SNI_BUF_MAX) {
			conn_finish(s, c, false, "TLS ClientHello too large");
		} else {
			conn_update(s, c);
		}
		return;
	case SNI_MALFORMED:
		/* What we cannot read, we cannot check. */
		conn_finish(s, c, false, "malformed TLS ClientHello");
		return;
	case SNI_ABSENT:
		tunnel_start(s, c);
		return;
	case SNI_FOUND:
		break;
	}
	for (char *p = name; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p += 'a' - 'A';
	/* The tunnel was opened for one host; TLS asking the server for
	 * another is domain fronting, a way around the allowlist. */
	if (strcmp(name, c->h.name)) {
		char msg[PROXY_REASON_MAX];

		snprintf(msg, sizeof(msg),
			 "TLS SNI %.180s does not match CONNECT host %.180s",
			 name, c->h.name);
		conn_finish(s, c, false, msg);
		return;
	}
	tunnel_start(s, c);
}

static void
client_read_sni(struct srv *s, struct conn *c)
{
	char tmp[4096];
	size_t room = SNI_BUF_MAX - c->in.len;
	ssize_t n;

	if (room > sizeof(tmp))
		room = sizeof(tmp);
	n = recv(c->cfd, tmp, room, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		conn_finish(s, c, true, NULL);
		return;
	}
	if (n > 0) {
		buf_append(&c->in, tmp, n);
		c->last_io = now_ms();
	}
	sni_check(s, c, n == 0);
}

/* ---- upstream connect --------------------------------------------------- */

static void
addr_text(const struct proxy_resolve_addr *a, char *out, size_t n)
{
	if (!inet_ntop(a->family == 4 ? AF_INET : AF_INET6, a->addr, out, n))
		snprintf(out, n, "?");
}

static void
connected(struct srv *s, struct conn *c)
{
	int one = 1;

	setsockopt(c->ufd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->last_io = now_ms();
	if (start_dir(&c->down, c->ufd, c->cfd) < 0) {
		conn_refuse(s, c, 502, true, "out of pipes");
		conn_update(s, c);
		return;
	}
	if (c->connect) {
		buf_append(&c->down.pre,
			   "HTTP/1.1 200 Connection established\r\n\r\n", 39);
		c->down.pre_nocount = 39;
		c->st = C_SNI;
		relay_pump(s, c, false, true);
		if (c->st == C_SNI)
			sni_check(s, c, false);
		return;
	}
	if (start_dir(&c->up, c->cfd, c->ufd) < 0) {
		conn_finish(s, c, true, "out of pipes");
		return;
	}
	c->st = C_RELAY;
	relay_pump(s, c, true, true);
}

static void
connect_next(struct srv *s, struct conn *c)
{
	while (c->next < c->naddr) {
		const struct proxy_resolve_addr *a = &c->addrs[c->next++];
		struct sockaddr_storage ss;
		socklen_t sl;
		int fd;

		memset(&ss, 0, sizeof(ss));
		if (a->family == 4) {
			struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

			sin->sin_family = AF_INET;
			sin->sin_port = htons(c->port);
			memcpy(&sin->sin_addr, a->addr, 4);
			sl = sizeof(*sin);
		} else {
			struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

			sin6->sin6_family = AF_INET6;
			sin6->sin6_port = htons(c->port);
			memcpy(&sin6->sin6_addr, a->addr, 16);
			sl = sizeof(*sin6);
		}
		fd = socket(ss.ss_family,
			    SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			c->last_errno = errno;
			continue;
		}
		c->ufd = fd;
		c->umask = 0;
		if (connect(fd, (struct sockaddr *)&ss, sl) == 0) {
			connected(s, c);
			return;
		}
		if (errno == EINPROGRESS) {
			c->st = C_CONNECT;
			conn_update(s, c);
			return;
		}
		c->last_errno = errno;
		close(fd);
		c->ufd = -1;
	}
	conn_refuse(s, c, 502, true, "cannot connect to %s:%u: %s", c->host,
		    c->port, strerror(c->last_errno ? c->last_errno : EIO));
	conn_update(s, c);
}

static void
upstream_connect_done(struct srv *s, struct conn *c)
{
	int e = 0;
	socklen_t el = sizeof(e);

	if (getsockopt(c->ufd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
		e = errno;
	if (e == EINPROGRESS || e == EALREADY)
		return;
	if (e == 0) {
		connected(s, c);
		return;
	}
	c->last_errno = e;
	set_mask(s, c, c->ufd, &c->umask, 0, EV_UPSTREAM);
	close(c->ufd);
	c->ufd = -1;
	connect_next(s, c);
}

/* Keep the addresses the allowlist permits, in resolver order. */
static void
resolved(struct srv *s, struct conn *c, const struct proxy_resolve_rep *rep)
{
	struct proxy_resolve_addr keep[PROXY_RESOLVE_ADDRS];
	size_t nkeep = 0;
	char first[INET6_ADDRSTRLEN] = "";
	enum addr_class first_cls = ADDR_PUBLIC;

	if (rep->gai_err) {
		conn_refuse(s, c, 502, true, "cannot resolve %s: %s", c->host,
			    gai_strerror(rep->gai_err));
		conn_update(s, c);
		return;
	}
	for (uint32_t i = 0; i < rep->n; i++) {
		const struct proxy_resolve_addr *a = &rep->a[i];
		enum addr_class cls;

		if (allowlist_addr_ok(s->a->al,
				      a->family == 4 ? AF_INET : AF_INET6,
				      a->addr, c->port, &cls)) {
			keep[nkeep++] = *a;
		} else if (!first[0]) {
			addr_text(a, first, sizeof(first));
			first_cls = cls;
		}
	}
	if (nkeep == 0) {
		if (first[0])
			conn_refuse(s, c, 403, false,
				    "%s resolves to %s (%s), which is not in "
				    "the allowlist as %s:%u",
				    c->host, first,
				    allowlist_class_name(first_cls), first,
				    c->port);
		else
			conn_refuse(s, c, 502, true,
				    "%s has no IPv4 or IPv6 address", c->host);
		conn_update(s, c);
		return;
	}
	memcpy(c->addrs, keep, nkeep * sizeof(keep[0]));
	c->naddr = nkeep;
	c->next = 0;
	connect_next(s, c);
}

/* ---- resolvers ---------------------------------------------------------- */

static void
resolver_dispatch(struct srv *s)
{
	for (size_t r = 0; r < PROXY_RESOLVERS && s->rq_len; r++) {
		struct resolver *rv = &s->res[r];
		struct proxy_resolve_req q;
		struct qent e;
		struct conn *c;

		if (rv->busy || rv->dead)
			continue;
		e = s->rq[s->rq_head];
		s->rq_head = (s->rq_head + 1) % PROXY_MAX_CONNS;
		s->rq_len--;
		c = &s->conns[e.conn];
		if (c->gen != e.gen || c->st != C_RESOLVE) {
			r--; /* stale entry: same resolver, next one */
			continue;
		}
		memset(&q, 0, sizeof(q));
		if (++s->next_id == 0)
			++s->next_id;	/* 0 is the resolvers' hello */
		q.id = s->next_id;
		snprintf(q.host, sizeof(q.host), "%s", c->h.name);
		if (send(rv->fd, &q, sizeof(q), MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    sizeof(q)) {
			rv->dead = true;
			conn_refuse(s, c, 502, true, "resolver failed");
			conn_update(s, c);
			continue;
		}
		rv->busy = true;
		rv->id = q.id;
		rv->conn = e.conn;
		rv->gen = e.gen;
	}
	/* No resolver left: fail what waits rather than hang it. */
	for (size_t r = 0; r < PROXY_RESOLVERS; r++)
		if (!s->res[r].dead)
			return;
	while (s->rq_len) {
		struct qent e = s->rq[s->rq_head];
		struct conn *c = &s->conns[e.conn];

		s->rq_head = (s->rq_head + 1) % PROXY_MAX_CONNS;
		s->rq_len--;
		if (c->gen == e.gen && c->st == C_RESOLVE) {
			conn_refuse(s, c, 502, true, "no resolver");
			conn_update(s, c);
		}
	}
}

static void
resolver_event(struct srv *s, struct resolver *rv)
{
	struct proxy_resolve_rep rep;
	struct conn *c = &s->conns[rv->conn];
	ssize_t n;
	bool ok;

	n = recv(rv->fd, &rep, sizeof(rep), MSG_DONTWAIT | MSG_TRUNC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* A reply must be exactly one struct for the query in flight, with
	 * a sane count and families; anything else retires the resolver. */
	ok = n == sizeof(rep) && rv->busy && rep.id == rv->id &&
	     rep.n <= PROXY_RESOLVE_ADDRS;
	for (uint32_t i = 0; ok && i < rep.n; i++)
		ok = rep.a[i].family == 4 || rep.a[i].family == 6;
	if (!ok) {
		epoll_ctl(s->ep, EPOLL_CTL_DEL, rv->fd, NULL);
		close(rv->fd);
		rv->fd = -1;
		rv->dead = true;
		if (rv->busy && c->gen == rv->gen && c->st == C_RESOLVE) {
			conn_refuse(s, c, 502, true, "resolver failed");
			conn_update(s, c);
		}
		rv->busy = false;
		resolver_dispatch(s);
		return;
	}
	rv->busy = false;
	if (c->gen == rv->gen && c->st == C_RESOLVE)
		resolved(s, c, &rep);
	resolver_dispatch(s);
}

/* Drop queue entries of connections that left C_RESOLVE while waiting. */
static void
rq_compact(struct srv *s)
{
	size_t n = 0;

	for (size_t i = 0; i < s->rq_len; i++) {
		struct qent e = s->rq[(s->rq_head + i) % PROXY_MAX_CONNS];
		struct conn *c = &s->conns[e.conn];

		if (c->gen == e.gen && c->st == C_RESOLVE)
			s->rq[(s->rq_head + n++) % PROXY_MAX_CONNS] = e;
	}
	s->rq_len = n;
}

static void
resolve_start(struct srv *s, struct conn *c)
{
	/* Stale entries (timed out while queued) may fill the ring; live
	 * ones cannot, as each live connection has at most one. */
	if (s->rq_len == PROXY_MAX_CONNS)
		rq_compact(s);
	if (s->rq_len == PROXY_MAX_CONNS)
		die();
	c->st = C_RESOLVE;
	s->rq[(s->rq_head + s->rq_len) % PROXY_MAX_CONNS] =
		(struct qent){ c - s->conns, c->gen };
	s->rq_len++;
	conn_update(s, c);
	resolver_dispatch(s);
}

/* ---- the request -------------------------------------------------------- */

static void
entry_text(const struct allow_entry *e, char *out, size_t n)
{
	snprintf(out, n, "%s%s:%u", e->kind == ALLOW_SUFFIX ? "*" : "", e->host,
		 e->port);
}

static void
decide(struct srv *s, struct conn *c, const struct http_req *req, int r,
       const struct error *perr)
{
	struct error err = { 0 };
	char ent[PROXY_HOST_MAX + 16];
	int idx;

	c->window = s->window;
	snprintf(c->method, sizeof(c->method), "%s", req->method);
	sanitize(req->host, strlen(req->host), c->host, sizeof(c->host));
	c->port = req->port;
	c->connect = req->connect;
	if (r < 0) {
		/* No token from the client is echoed but the method and
		 * a host made printable. */
		conn_refuse(s, c, 400, false, "bad request: %s", perr->msg);
		return;
	}
	/* Defense in depth: nftables closes the port outside fetch
	 * steps, and the proxy refuses on its own as well. */
	if (!s->window) {
		conn_refuse(s, c, 403, false, "no network window is open");
		return;
	}
	if (allowlist_normalize_host(req->host, strlen(req->host), &c->h,
				     &err) < 0) {
		conn_refuse(s, c, 403, false, "host %s refused: %s", c->host,
			    err.msg);
		return;
	}
	snprintf(c->host, sizeof(c->host), "%s", c->h.name);
	if (s->budget_out) {
		conn_refuse(s, c, 403, false, "net_bytes budget exhausted");
		return;
	}
	idx = allowlist_match(s->a->al, &c->h, c->port);
	if (idx < 0) {
		conn_refuse(s, c, 403, false, "%s:%u is not in the allowlist",
			    c->host, c->port);
		return;
	}
	entry_text(&s->a->al->e[idx], ent, sizeof(ent));
	snprintf(c->reason, sizeof(c->reason), "allowlisted as %s", ent);
	c->decided = true;
	if (!c->connect) {
		/* One request per connection, to the host the URI named;
		 * what follows the head (a body) goes through unchanged to
		 * that same server. */
		http_req_rewrite(req, c->in.data, c->h.name, &c->up.pre);
		if (c->in.len > req->head_len)
			buf_append(&c->up.pre, c->in.data + req->head_len,
				   c->in.len - req->head_len);
		buf_free(&c->in);
	} else {
		buf_consume(&c->in, req->head_len);
	}
	c->deadline = now_ms() + s->a->connect_timeout_ms;
	if (c->h.kind == HOST_NAME) {
		resolve_start(s, c);
		return;
	}
	/* A listed IP literal: nothing to resolve. */
	c->addrs[0].family = c->h.kind == HOST_IPV4 ? 4 : 6;
	memcpy(c->addrs[0].addr, c->h.addr, 16);
	c->naddr = 1;
	c->next = 0;
	connect_next(s, c);
}

static void
client_read_head(struct srv *s, struct conn *c)
{
	char tmp[HTTP_REQ_HEAD_MAX];
	size_t room = HTTP_REQ_HEAD_MAX - c->in.len;
	struct error err = { 0 };
	ssize_t n;
	int r;

	n = recv(c->cfd, tmp, room ? room : 1, MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		conn_free(s, c); /* gone before a request: nothing */
		return;
	}
	buf_append(&c->in, tmp, n);
	c->last_io = now_ms();
	/* A head ends with a line: parse again only when one may have
	 * ended, so that a byte-by-byte client costs linear time. */
	if (!memchr(tmp, '\n', n) && c->in.len < HTTP_REQ_HEAD_MAX)
		return;
	r = http_req_parse(c->in.data, c->in.len, &s->req, &err);
	if (r == 0)
		return;
	decide(s, c, &s->req, r, &err);
	conn_update(s, c);
}

static void
reply_write(struct srv *s, struct conn *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->cfd, c->out.data + c->out_off,
				 c->out.len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			conn_free(s, c);
			return;
		}
		c->out_off += n;
	}
	/* Half-close and drain, so that unread request bytes do not turn
	 * the close into a reset that destroys the reply in flight. */
	shutdown(c->cfd, SHUT_WR);
	c->st = C_LINGER;
	conn_update(s, c);
}

static void
linger_read(struct srv *s, struct conn *c)
{
	char tmp[4096];
	ssize_t n = recv(c->cfd, tmp, sizeof(tmp), MSG_DONTWAIT);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		conn_free(s, c);
}

static void
client_event(struct srv *s, struct conn *c, uint32_t ev)
{
	switch (c->st) {
	case C_HEAD:
		client_read_head(s, c);
		break;
	case C_SNI:
		if (ev & (EPOLLOUT | EPOLLERR))
			relay_pump(s, c, false, true);
		if (c->st == C_SNI && (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)))
			client_read_sni(s, c);
		break;
	case C_RELAY:
		relay_pump(s, c, ev & (EPOLLIN | EPOLLHUP | EPOLLERR),
			   ev & (EPOLLOUT | EPOLLERR));
		break;
	case C_REPLY:
		reply_write(s, c);
		break;
	case C_LINGER:
		linger_read(s, c);
		break;
	default:
		break;
	}
}

static void
upstream_event(struct srv *s, struct conn *c, uint32_t ev)
{
	switch (c->st) {
	case C_CONNECT:
		upstream_connect_done(s, c);
		break;
	case C_SNI:
		relay_pump(s, c, false, true);
		break;
	case C_RELAY:
		relay_pump(s, c, ev & (EPOLLOUT | EPOLLERR),
			   ev & (EPOLLIN | EPOLLHUP | EPOLLERR));
		break;
	default:
		break;
	}
}

static void
accept_clients(struct srv *s)
{
	while (s->nconns < PROXY_MAX_CONNS) {
		struct conn *c = NULL;
		int fd, one = 1;

		fd = accept4(FD_LISTEN, NULL, NULL,
			     SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EAGAIN || errno == EINTR ||
			    errno == ECONNABORTED)
				return;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				return; /* retried on the next round */
			die();
		}
		for (size_t i = 0; i < PROXY_MAX_CONNS; i++) {
			if (s->conns[i].st == C_FREE) {
				c = &s->conns[i];
				break;
			}
		}
		if (!c)
			die(); /* nconns disagrees with the table */
		memset(c, 0, sizeof(*c));
		dir_init(&c->up);
		dir_init(&c->down);
		c->gen = ++s->next_gen;
		c->cfd = fd;
		c->ufd = -1;
		c->st = C_HEAD;
		c->deadline = now_ms() + HEAD_TIMEOUT_MS;
		c->last_io = now_ms();
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		s->nconns++;
		conn_update(s, c);
	}
	listen_update(s);
}

/* ---- manager messages, timers ------------------------------------------- */

static void
ctl_event(struct srv *s, uint32_t ev)
{
	char msg[PROXY_MSG_MAX + 1];

	if (ev & EPOLLOUT)
		ctl_flush(s);
	for (;;) {
		json_t *j, *t, *open, *id;
		ssize_t n = recv(FD_CTL, msg, sizeof(msg), MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			_exit(0); /* the manager is gone: so are we */
		if ((size_t)n > PROXY_MSG_MAX)
			die();
		j = json_loadb(msg, n, JSON_REJECT_DUPLICATES, NULL);
		t = json_object_get(j, "t");
		open = json_object_get(j, "open");
		id = json_object_get(j, "id");
		if (!json_is_string(t) ||
		    strcmp(json_string_value(t), "window") ||
		    !json_is_boolean(open))
			die();
		if (json_is_true(open)) {
			if (!json_is_integer(id) ||
			    json_integer_value(id) < 1 ||
			    json_integer_value(id) > UINT32_MAX)
				die();
			s->window = json_integer_value(id);
		} else if (s->window) {
			s->window = 0;
			cut_all(s, "network window closed");
		}
		json_decref(j);
	}
}

static void
sweep(struct srv *s, int64_t now)
{
	for (size_t i = 0; i < PROXY_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];

		switch (c->st) {
		case C_HEAD:
			if (now < c->deadline)
				break;
			if (c->in.len) {
				snprintf(c->method, sizeof(c->method), "-");
				c->window = s->window;
				conn_refuse(s, c, 408, false,
					    "timed out reading the request");
				conn_update(s, c);
			} else {
				conn_free(s, c);
			}
			break;
		case C_RESOLVE:
		case C_CONNECT:
			if (now < c->deadline)
				break;
			conn_refuse(s, c, 504, true,
				    "timed out connecting to %s:%u", c->host,
				    c->port);
			conn_update(s, c);
			break;
		case C_SNI:
		case C_RELAY:
			if (now - c->last_io >= s->a->idle_timeout_ms)
				conn_finish(s, c, true, "idle timeout");
			break;
		case C_REPLY:
		case C_LINGER:
			if (now >= c->deadline)
				conn_free(s, c);
			break;
		case C_FREE:
			break;
		}
	}
	if ((s->up != s->rep_up || s->down != s->rep_down) &&
	    now - s->rep_at >= TOTALS_EVERY_MS)
		send_totals(s);
}

static void
serve(struct srv *s)
{
	struct epoll_event ev = { .events = EPOLLIN };

	ev.data.u64 = ev_key(EV_CTL, 0, 0);
	if (epoll_ctl(s->ep, EPOLL_CTL_ADD, FD_CTL, &ev) < 0)
		die();
	for (size_t r = 0; r < PROXY_RESOLVERS; r++) {
		ev.data.u64 = ev_key(EV_RESOLVER, r, 0);
		if (epoll_ctl(s->ep, EPOLL_CTL_ADD, s->res[r].fd, &ev) < 0)
			die();
	}
	listen_update(s);
	ctl_send(s, json_pack("{s:s}", "t", "ready"));
	s->tick_at = now_ms();
	for (;;) {
		struct epoll_event evs[64];
		int n = epoll_wait(s->ep, evs, ARRAY_SIZE(evs), TICK_MS);
		int64_t now;

		if (n < 0 && errno != EINTR)
			die();
		for (int i = 0; i < n; i++) {
			uint64_t k = evs[i].data.u64;
			enum ev_kind kind = k & 0xff;
			unsigned int idx = (k >> 8) & 0xffffff;
			uint32_t gen = k >> 32;
			struct conn *c;

			switch (kind) {
			case EV_LISTEN:
				accept_clients(s);
				break;
			case EV_CTL:
				ctl_event(s, evs[i].events);
				break;
			case EV_RESOLVER:
				if (idx < PROXY_RESOLVERS && !s->res[idx].dead)
					resolver_event(s, &s->res[idx]);
				break;
			case EV_CLIENT:
			case EV_UPSTREAM:
				if (idx >= PROXY_MAX_CONNS)
					break;
				c = &s->conns[idx];
				/* A connection closed earlier in this round
				 * may have left events behind. */
				if (c->st == C_FREE || c->gen != gen)
					break;
				if (kind == EV_CLIENT)
					client_event(s, c, evs[i].events);
				else
					upstream_event(s, c, evs[i].events);
				break;
			}
		}
		now = now_ms();
		if (now - s->tick_at >= TICK_MS) {
			s->tick_at = now;
			sweep(s, now);
		}
	}
}

/* ---- set-up ----------------------------------------------------------- */

static struct srv srv;

static int
spawn_resolvers(struct srv *s, struct error *err)
{
	struct proxy_resolve_rep hello;

	for (size_t r = 0; r < PROXY_RESOLVERS; r++) {
		int sv[2], e;
		pid_t pid;

		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) <
		    0)
			return error_sys(err, errno, "resolver: socketpair");
		pid = fork();
		if (pid < 0) {
			e = errno;
			close(sv[0]);
			close(sv[1]);
			return error_sys(err, e, "resolver: fork");
		}
		if (pid == 0) {
			/* The resolver keeps its socket and nothing else:
			 * not the listener, not the manager's channel. */
			struct child_fds cf = {
				.in = -1, .out = -1, .err = -1,
				.fds = &sv[1], .n = 1, .first = 3,
				.errpipe = -1, .keep_cloexec = true,
			};

			if (child_setup(&cf, NULL) < 0)
				_exit(1);
			/* The proxy has dropped its ids already: the
			 * resolver's death signal survives. */
			if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
				_exit(1);
			/* DNS over TCP writes with writev(): a server that
			 * hangs up costs an EPIPE, not the resolver. */
			signal(SIGPIPE, SIG_IGN);
			proxy_resolve_main(3);
		}
		close(sv[1]);
		s->res[r].fd = sv[0];
		/* Ready means sandboxed, resolvers included. */
		if (recv(sv[0], &hello, sizeof(hello), 0) != sizeof(hello) ||
		    hello.id != 0)
			return error_set(err, EPERM, "resolver did not start");
		if (fd_set_nonblock(sv[0]) < 0)
			return error_sys(err, errno, "resolver: fcntl");
	}
	return 0;
}

/* Resolvers and the epoll set, for conf; before seccomp. */
int
proxy_serve_prepare(const struct proxy_conf *conf, struct error *err)
{
	int r;

	memset(&srv, 0, sizeof(srv));
	srv.a = conf;
	for (size_t i = 0; i < PROXY_MAX_CONNS; i++) {
		srv.conns[i].cfd = srv.conns[i].ufd = -1;
		dir_init(&srv.conns[i].up);
		dir_init(&srv.conns[i].down);
	}
	for (size_t i = 0; i < PROXY_RESOLVERS; i++)
		srv.res[i].fd = -1;
	if (fd_set_nonblock(FD_LISTEN) < 0 || fd_set_nonblock(FD_CTL) < 0)
		return error_sys(err, errno, "fcntl");
	r = spawn_resolvers(&srv, err);
	if (r < 0)
		return r;
	srv.ep = epoll_create1(EPOLL_CLOEXEC);
	if (srv.ep < 0)
		return error_sys(err, errno, "epoll_create1");
	return 0;
}

/* Say ready, serve until the manager goes away. */
void
proxy_serve(void)
{
	serve(&srv);
	_exit(0);
}
