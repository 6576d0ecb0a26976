/* qmp.c - non-blocking QMP client driven by the manager's event loop */
#include "qmp.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

/* A command in flight, on q's list in id order. */
struct qmp_cmd {
	struct qmp_cmd *next;
	uint64_t id;
	int64_t deadline;   /* absolute now_ms(), -1: none */
	int64_t timeout_ms; /* for the message */
	qmp_reply_fn cb;    /* NULL: nobody to tell */
	void *opaque;
	bool timed_out;     /* kept only to drop its late reply */
	char *name;
	char *line; /* serialized command while held back; NULL once sent */
};

struct qmp {
	int fd;
	qmp_event_fn on_event;
	void *opaque;

	uint64_t next_id;
	struct qmp_cmd *head;
	struct qmp_cmd **tail;
	unsigned int ntimed_out;

	/* Unparsed input; at most QMP_MAX_LINE + 1 bytes. */
	char *in;
	size_t in_len;
	size_t in_cap;
	size_t in_scan; /* bytes of the current line known to hold no '\n' */

	struct buf out;
	size_t out_off; /* bytes of out already written */
	int pass_fd;	/* goes with the next byte written (SCM_RIGHTS), or -1 */

	bool greeted;
	bool ready;
	bool dead;
	unsigned int depth; /* > 0 while a callback runs */
	struct error dead_err;
};

static void
cmd_free(struct qmp_cmd *c)
{
	if (!c)
		return;
	free(c->name);
	free(c->line);
	free(c);
}

/*
 * Messages may quote QEMU's strings and end up in logs: a compromised QEMU
 * must not forge log lines, so control characters are masked.
 */
static void
sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void
call_reply(struct qmp *q, qmp_reply_fn cb, void *opaque, json_t *ret,
	   const struct error *err)
{
	q->depth++;
	cb(q, ret, err, opaque);
	q->depth--;
}

static int
report_dead(const struct qmp *q, struct error *err)
{
	return error_set(err, q->dead_err.code, "qmp: %s", q->dead_err.msg);
}

/*
 * Kill the connection: remember why, drop queued output, and fail every
 * pending command.  The list is detached first, so callbacks that queue new
 * commands (which then fail with EPIPE) cannot disturb the walk.
 */
static void
qmp_die(struct qmp *q, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
qmp_die(struct qmp *q, int code, const char *fmt, ...)
{
	struct qmp_cmd *list, *c;
	va_list ap;

	if (q->dead)
		return;
	q->dead = true;
	q->ready = false;
	q->dead_err.code = code;
	va_start(ap, fmt);
	vsnprintf(q->dead_err.msg, sizeof(q->dead_err.msg), fmt, ap);
	va_end(ap);
	sanitize(q->dead_err.msg);
	buf_free(&q->out);
	q->out_off = 0;

	list = q->head;
	q->head = NULL;
	q->tail = &q->head;
	q->ntimed_out = 0;
	while ((c = list)) {
		list = c->next;
		if (c->cb && !c->timed_out) {
			struct error e;

			error_set(&e, code, "qmp %s: %s", c->name,
				  q->dead_err.msg);
			call_reply(q, c->cb, c->opaque, NULL, &e);
		}
		cmd_free(c);
	}
}

/* send(), with fd (unless -1) attached to the first byte. */
static ssize_t
send_fd_with(int sock, const void *p, size_t n, int fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	if (fd >= 0) {
		memset(&u, 0, sizeof(u));
		m.msg_control = u.buf;
		m.msg_controllen = sizeof(u.buf);
		cm = CMSG_FIRSTHDR(&m);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &fd, sizeof(int));
	}
	return sendmsg(sock, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Write queued output until done or EAGAIN; 0 or -errno. */
static int
qmp_flush(struct qmp *q)
{
	while (q->out_off < q->out.len) {
		/* MSG_NOSIGNAL: a dead QEMU must give EPIPE, not SIGPIPE. */
		ssize_t n = send_fd_with(q->fd, q->out.data + q->out_off,
					 q->out.len - q->out_off, q->pass_fd);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return -errno;
		}
		q->out_off += n;
		/* QEMU keeps it for the command those bytes begin */
		if (q->pass_fd >= 0)
			close(q->pass_fd);
		q->pass_fd = -1;
	}
	/* Consume lazily so partial writes do not memmove every time. */
	if (q->out_off == q->out.len) {
		q->out.len = 0;
		q->out_off = 0;
	} else if (q->out_off > 65536 && q->out_off > q->out.len / 2) {
		buf_consume(&q->out, q->out_off);
		q->out_off = 0;
	}
	return 0;
}

static void
qmp_unlink(struct qmp *q, struct qmp_cmd **pp)
{
	struct qmp_cmd *c = *pp;

	*pp = c->next;
	if (q->tail == &c->next)
		q->tail = pp;
	c->next = NULL;
}

static struct qmp_cmd **
qmp_find(struct qmp *q, uint64_t id)
{
	struct qmp_cmd **pp;

	for (pp = &q->head; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id)
			return pp;
	return NULL;
}

/* Forget the oldest timed-out ids beyond QMP_MAX_TIMED_OUT. */
static void
qmp_trim_timed_out(struct qmp *q)
{
	struct qmp_cmd **pp = &q->head;

	while (q->ntimed_out > QMP_MAX_TIMED_OUT && *pp) {
		if ((*pp)->timed_out) {
			struct qmp_cmd *c = *pp;

			qmp_unlink(q, pp);
			cmd_free(c);
			q->ntimed_out--;
		} else {
			pp = &(*pp)->next;
		}
	}
}

/*
 * Serialize and queue a command.  hold: keep it back until qmp_capabilities
 * succeeded.  Returns the new command's id (> 0) or negative.
 */
static int64_t
qmp_queue(struct qmp *q, const char *cmd, json_t *args, int64_t timeout_ms,
	  qmp_reply_fn cb, void *opaque, bool hold, struct error *err)
{
	_cleanup_json_ json_t *a = args;
	_cleanup_json_ json_t *msg = NULL;
	_cleanup_free_ char *s = NULL;
	json_t *name;
	struct qmp_cmd *c;

	if (!cmd)
		return error_set(err, EINVAL, "qmp: no command name");
	if (q->dead)
		return error_set(err, EPIPE, "qmp %s: connection is dead: %s",
				 cmd, q->dead_err.msg);
	if (a && !json_is_object(a))
		return error_set(err, EINVAL,
				 "qmp %s: arguments must be an object", cmd);
	name = json_string(cmd);
	if (!name)
		return error_set(err, EINVAL, "qmp: command name not UTF-8");
	msg = json_object();
	json_object_set_new(msg, "execute", name);
	if (a)
		json_object_set(msg, "arguments", a);
	json_object_set_new(msg, "id", json_integer((json_int_t)q->next_id));
	/* JSON_COMPACT escapes newlines in strings: one command, one line. */
	s = json_dumps(msg, JSON_COMPACT);
	if (!s)
		return error_set(err, EINVAL, "qmp %s: cannot serialize", cmd);

	c = xcalloc(1, sizeof(*c));
	c->id = q->next_id++;
	c->timeout_ms = timeout_ms;
	c->deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;
	c->cb = cb;
	c->opaque = opaque;
	c->name = xstrdup(cmd);
	*q->tail = c;
	q->tail = &c->next;

	if (hold) {
		c->line = xasprintf("%s\n", s);
	} else {
		buf_append(&q->out, s, strlen(s));
		buf_append(&q->out, "\n", 1);
		/*
		 * Write now to save a loop iteration.  A failure is left
		 * for qmp_handle_io to find, since the output is still
		 * queued: dying here would run callbacks inside the caller.
		 */
		(void)qmp_flush(q);
	}
	return (int64_t)c->id;
}

static void
caps_done(struct qmp *q, json_t *ret, const struct error *err, void *opaque)
{
	struct qmp_cmd *c;

	(void)ret;
	(void)opaque;
	if (err) {
		/* Without negotiation QEMU accepts nothing else. */
		if (!q->dead)
			qmp_die(q, EPROTO, "capabilities negotiation failed: %s",
				err->msg);
		return;
	}
	q->ready = true;
	/* Release held commands in the order they were issued. */
	for (c = q->head; c; c = c->next) {
		if (!c->line)
			continue;
		buf_append(&q->out, c->line, strlen(c->line));
		free(c->line);
		c->line = NULL;
	}
	(void)qmp_flush(q);
}

static void
handle_greeting(struct qmp *q, json_t *msg)
{
	struct error e;

	if (q->greeted) {
		qmp_die(q, EPROTO, "protocol error: second greeting");
		return;
	}
	if (!json_is_object(json_object_get(msg, "QMP"))) {
		qmp_die(q, EPROTO, "protocol error: malformed greeting");
		return;
	}
	q->greeted = true;
	/* No deadline of its own: held commands time out individually. */
	if (qmp_queue(q, "qmp_capabilities", NULL, -1, caps_done, NULL, false,
		      &e) < 0)
		qmp_die(q, e.code, "%s", e.msg);
}

static void
handle_event(struct qmp *q, json_t *msg)
{
	const char *name = json_string_value(json_object_get(msg, "event"));

	if (!name) {
		qmp_die(q, EPROTO, "protocol error: event name not a string");
		return;
	}
	if (q->on_event) {
		q->depth++;
		q->on_event(q, name, json_object_get(msg, "data"), q->opaque);
		q->depth--;
	}
}

static void
handle_reply(struct qmp *q, json_t *msg)
{
	json_t *id = json_object_get(msg, "id");
	json_t *error = json_object_get(msg, "error");
	struct qmp_cmd **pp, *c;
	struct error e;

	if (!id) {
		qmp_die(q, EPROTO, "protocol error: reply without id");
		return;
	}
	/* We only send positive integer ids; anything else is unknown. */
	pp = json_is_integer(id) && json_integer_value(id) > 0 ?
		     qmp_find(q, (uint64_t)json_integer_value(id)) :
		     NULL;
	/* A reply to a command we hold back was never asked for. */
	if (!pp || (*pp)->line) {
		qmp_die(q, EPROTO, "protocol error: reply with unknown id");
		return;
	}
	if (error && !json_is_object(error)) {
		qmp_die(q, EPROTO, "protocol error: malformed error reply");
		return;
	}
	c = *pp;
	qmp_unlink(q, pp);
	if (c->timed_out)
		q->ntimed_out--; /* its late reply: dropped silently */
	if (c->timed_out || !c->cb) {
		cmd_free(c);
		return;
	}
	if (error) {
		const char *cls, *desc;

		cls = json_string_value(json_object_get(error, "class"));
		desc = json_string_value(json_object_get(error, "desc"));
		error_set(&e, QMP_EREMOTE, "qmp %s: %s: %s", c->name,
			  cls ? cls : "(no class)", desc ? desc : "(no desc)");
		sanitize(e.msg);
		call_reply(q, c->cb, c->opaque, NULL, &e);
	} else {
		call_reply(q, c->cb, c->opaque, json_object_get(msg, "return"),
			   NULL);
	}
	cmd_free(c);
}

static void
handle_line(struct qmp *q, const char *line, size_t len)
{
	_cleanup_json_ json_t *msg = NULL;
	json_error_t jerr;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	/* Jansson bounds nesting depth, so hostile input cannot blow the
	 * stack; without JSON_ALLOW_NUL strings are safe as C strings. */
	msg = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!msg) {
		qmp_die(q, EPROTO, "protocol error: invalid JSON: %s",
			jerr.text);
		return;
	}
	if (!json_is_object(msg))
		qmp_die(q, EPROTO, "protocol error: message not an object");
	else if (json_object_get(msg, "QMP"))
		handle_greeting(q, msg);
	else if (json_object_get(msg, "event"))
		handle_event(q, msg);
	else if (json_object_get(msg, "return") ||
		 json_object_get(msg, "error"))
		handle_reply(q, msg);
	else
		qmp_die(q, EPROTO, "protocol error: unexpected message");
}

/* Dispatch every complete line in the input buffer; keep the rest. */
static void
parse_lines(struct qmp *q)
{
	size_t pos = 0, rest;

	while (!q->dead) {
		size_t from = pos + q->in_scan;
		char *nl = memchr(q->in + from, '\n', q->in_len - from);
		size_t len;

		if (!nl) {
			q->in_scan = q->in_len - pos;
			break;
		}
		len = nl - (q->in + pos);
		q->in_scan = 0;
		handle_line(q, q->in + pos, len);
		pos += len + 1;
	}
	if (q->dead)
		return;
	rest = q->in_len - pos;
	if (pos > 0)
		memmove(q->in, q->in + pos, rest);
	q->in_len = rest;
	if (rest > QMP_MAX_LINE)
		qmp_die(q, EPROTO, "protocol error: line longer than %d bytes",
			QMP_MAX_LINE);
}

static void
qmp_read(struct qmp *q)
{
	size_t budget = QMP_READ_BUDGET;

	while (budget > 0 && !q->dead) {
		size_t room;
		ssize_t n;

		if (q->in_len == q->in_cap) {
			/* parse_lines keeps in_len <= QMP_MAX_LINE, so
			 * there is always room below the cap. */
			size_t cap = q->in_cap ? q->in_cap * 2 : 4096;

			if (cap > QMP_MAX_LINE + 1)
				cap = QMP_MAX_LINE + 1;
			q->in = xrealloc(q->in, cap);
			q->in_cap = cap;
		}
		room = q->in_cap - q->in_len;
		if (room > budget)
			room = budget;
		n = read(q->fd, q->in + q->in_len, room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			qmp_die(q, errno == ECONNRESET ? EPIPE : errno,
				"read: %s", strerror(errno));
			return;
		}
		if (n == 0) {
			qmp_die(q, EPIPE, "connection closed by peer%s",
				q->in_len ? " in the middle of a line" : "");
			return;
		}
		q->in_len += n;
		budget -= n;
		parse_lines(q);
	}
}

struct qmp *
qmp_new(int fd, qmp_event_fn on_event, void *opaque)
{
	struct qmp *q;
	int fl;

	fl = fcntl(fd, F_GETFD);
	if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0 ||
	    fd_set_nonblock(fd) < 0) {
		if (fl >= 0)
			close(fd);
		return NULL;
	}
	q = xcalloc(1, sizeof(*q));
	q->fd = fd;
	q->pass_fd = -1;
	q->on_event = on_event;
	q->opaque = opaque;
	q->next_id = 1;
	q->tail = &q->head;
	return q;
}

void
qmp_free(struct qmp *q)
{
	struct qmp_cmd *c;

	if (!q)
		return;
	if (q->depth) {
		/* Freeing under a running callback is a use-after-free. */
		fputs("qctl: qmp_free called from a qmp callback\n", stderr);
		abort();
	}
	if (q->pass_fd >= 0)
		close(q->pass_fd);
	while ((c = q->head)) {
		q->head = c->next;
		cmd_free(c);
	}
	if (q->fd >= 0)
		close(q->fd);
	free(q->in);
	buf_free(&q->out);
	free(q);
}

int
qmp_fd(const struct qmp *q)
{
	return q->fd;
}

bool
qmp_want_write(const struct qmp *q)
{
	return !q->dead && q->out_off < q->out.len;
}

bool
qmp_ready(const struct qmp *q)
{
	return q->ready && !q->dead;
}

bool
qmp_dead(const struct qmp *q)
{
	return q->dead;
}

int
qmp_handle_io(struct qmp *q, uint32_t events, struct error *err)
{
	int r;

	if (q->depth)
		return error_set(err, EDEADLK,
				 "qmp: qmp_handle_io called from a callback");
	if (q->dead)
		return report_dead(q, err);
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		qmp_read(q);
	/* Callbacks may have queued commands: write whatever is pending. */
	if (!q->dead && q->out_off < q->out.len) {
		r = qmp_flush(q);
		if (r < 0) {
			/* Replies QEMU sent before going away still count. */
			qmp_read(q);
			qmp_die(q, r == -ECONNRESET ? EPIPE : -r, "write: %s",
				strerror(-r));
		}
	}
	if (q->dead)
		return report_dead(q, err);
	return 0;
}

int
qmp_execute(struct qmp *q, const char *cmd, json_t *args, int64_t timeout_ms,
	    qmp_reply_fn cb, void *opaque, struct error *err)
{
	int64_t r;

	r = qmp_queue(q, cmd, args, timeout_ms, cb, opaque, !q->ready, err);
	return r < 0 ? (int)r : 0;
}

int
qmp_execute_fd(struct qmp *q, const char *cmd, json_t *args, int fd,
	       int64_t timeout_ms, qmp_reply_fn cb, void *opaque,
	       struct error *err)
{
	int64_t r;

	/* the fd rides on the command's first byte: nothing may be queued
	 * before it, and held commands would be sent ahead of it */
	if (!q->ready || q->out.len || q->pass_fd >= 0) {
		json_decref(args);
		return error_set(err, EBUSY, "qmp %s: connection busy", cmd);
	}
	q->pass_fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (q->pass_fd < 0) {
		json_decref(args);
		return error_sys(err, errno, "qmp %s: dup", cmd);
	}
	r = qmp_queue(q, cmd, args, timeout_ms, cb, opaque, false, err);
	if (r < 0 && q->pass_fd >= 0) {
		close(q->pass_fd);
		q->pass_fd = -1;
	}
	return r < 0 ? (int)r : 0;
}

int64_t
qmp_next_deadline(const struct qmp *q)
{
	const struct qmp_cmd *c;
	int64_t best = -1;

	for (c = q->head; c; c = c->next)
		if (c->cb && !c->timed_out && c->deadline >= 0 &&
		    (best < 0 || c->deadline < best))
			best = c->deadline;
	return best;
}

void
qmp_check_timeouts(struct qmp *q, int64_t now)
{
	/* Rescan after each callback: it may have changed the list. */
	for (;;) {
		struct qmp_cmd **pp, *c = NULL;
		qmp_reply_fn cb;
		struct error e;

		for (pp = &q->head; *pp; pp = &(*pp)->next) {
			c = *pp;
			if (!c->timed_out && c->deadline >= 0 &&
			    c->deadline <= now)
				break;
		}
		if (!*pp)
			return;
		error_set(&e, ETIMEDOUT, "qmp %s: no reply within %lld ms",
			  c->name, (long long)c->timeout_ms);
		cb = c->cb;
		if (c->line) {
			/* Never sent, so no late reply can come. */
			qmp_unlink(q, pp);
			if (cb)
				call_reply(q, cb, c->opaque, NULL, &e);
			cmd_free(c);
		} else {
			/* Keep the id to drop its late reply silently. */
			c->timed_out = true;
			q->ntimed_out++;
			if (cb)
				call_reply(q, cb, c->opaque, NULL, &e);
			qmp_trim_timed_out(q);
		}
	}
}

struct sync_state {
	bool done;
	bool failed;
	json_t *ret;
	struct error err;
};

static void
sync_done(struct qmp *q, json_t *ret, const struct error *err, void *opaque)
{
	struct sync_state *st = opaque;

	(void)q;
	st->done = true;
	if (err) {
		st->failed = true;
		st->err = *err;
	} else {
		st->ret = json_incref(ret);
	}
}

/* Detach a pending command from its callback (its reply is dropped). */
static void
qmp_forget(struct qmp *q, uint64_t id)
{
	struct qmp_cmd **pp = qmp_find(q, id);

	if (pp)
		(*pp)->cb = NULL;
}

int
qmp_execute_sync(struct qmp *q, const char *cmd, json_t *args,
		 int64_t timeout_ms, json_t **ret, struct error *err)
{
	struct sync_state st = { 0 };
	int64_t id;

	*ret = NULL;
	if (q->depth) {
		json_decref(args);
		return error_set(err, EDEADLK,
				 "qmp %s: synchronous call from a callback",
				 cmd ? cmd : "?");
	}
	id = qmp_queue(q, cmd, args, timeout_ms, sync_done, &st, !q->ready,
		       err);
	if (id < 0)
		return (int)id;
	while (!st.done) {
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };
		int64_t dl = qmp_next_deadline(q);
		uint32_t ev = 0;
		int tmo = -1, n;

		if (qmp_want_write(q))
			pfd.events |= POLLOUT;
		if (dl >= 0) {
			int64_t left = dl - now_ms();

			tmo = left < 0 ? 0 : (left > INT_MAX ? INT_MAX : left);
		}
		n = poll(&pfd, 1, tmo);
		if (n < 0) {
			int saved = errno;

			if (saved == EINTR)
				continue;
			/* st lives on this stack: unhook it before leaving. */
			qmp_forget(q, (uint64_t)id);
			return error_sys(err, saved, "qmp %s: poll", cmd);
		}
		if (pfd.revents & POLLIN)
			ev |= EPOLLIN;
		if (pfd.revents & POLLOUT)
			ev |= EPOLLOUT;
		if (pfd.revents & POLLHUP)
			ev |= EPOLLHUP;
		if (pfd.revents & (POLLERR | POLLNVAL))
			ev |= EPOLLERR;
		/* A fatal error reaches st through sync_done. */
		if (ev)
			(void)qmp_handle_io(q, ev, NULL);
		qmp_check_timeouts(q, now_ms());
	}
	if (st.failed) {
		if (err)
			*err = st.err;
		return st.err.code > 0 ? -st.err.code : -1;
	}
	*ret = st.ret;
	return 0;
}

const char *
qmp_shutdown_cause(const json_t *data)
{
	static const struct {
		const char *reason, *words;
	} causes[] = {
		{ "guest-shutdown", "the guest powered off" },
		/* panic=-1 on the kernel command line: a panic is a reset */
		{ "guest-reset", "the guest reset (a kernel panic or a reboot)" },
		{ "guest-panic", "the guest kernel panicked" },
		{ "host-signal", "QEMU got a signal" },
		{ "host-error", "QEMU hit an error" },
		{ "host-qmp-quit", "QEMU was told to quit" },
	};
	const char *r = json_string_value(json_object_get(data, "reason"));

	for (size_t i = 0; r && i < ARRAY_SIZE(causes); i++)
		if (!strcmp(r, causes[i].reason))
			return causes[i].words;
	return "cause unknown";
}

bool
qmp_vserport_closed(const json_t *data, const char *id)
{
	const char *s = json_string_value(json_object_get(data, "id"));
	json_t *is_open = json_object_get(data, "open");

	return s && !strcmp(s, id) && json_is_false(is_open);
}
