/*
 * control.c - the QMP-style control socket.
 *
 * QMP's manners, so that generic QMP clients work unchanged: a greeting,
 * nothing but qmp_capabilities before negotiation, {"execute", "arguments",
 * "id"} requests, {"return"} or {"error": {"class", "desc"}} replies that
 * echo the id, and timestamped events.  Everything a client sends is
 * bounded (request size, nesting) and everything it is sent is bounded
 * (output queue): a client can neither grow the server nor stall it.
 */
#include "control.h"

#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "json-util.h"

#include "version.h"

/* What the greeting and query-version report as "qemu" (see docs). */
#define CTL_VERSION_MAJOR 0
#define CTL_VERSION_MINOR 1
#define CTL_VERSION_MICRO 0

/* Buffers larger than this are given back once they are empty. */
#define CTL_KEEP_BUF 65536
/* While accept fails for want of fds, listening pauses this long. */
#define CTL_ACCEPT_PAUSE_MS 1000

/* ---- framing ------------------------------------------------------------ */

/* A framer with nothing scanned yet. */
void
ctl_framer_init(struct ctl_framer *f, size_t max)
{
	memset(f, 0, sizeof(*f));
	f->max = max ? max : CTL_MAX_MSG;
}

/* Release the framer's buffer. */
void
ctl_framer_free(struct ctl_framer *f)
{
	buf_free(&f->msg);
}

static void
framer_reset(struct ctl_framer *f)
{
	/* one huge request must not pin its buffer for the connection */
	if (f->msg.cap > CTL_KEEP_BUF)
		buf_free(&f->msg);
	f->msg.len = 0;
	if (f->msg.data)
		f->msg.data[0] = '\0';
	f->depth = 0;
	f->in_str = f->esc = f->scalar = f->discard = false;
}

/* Refuse the current request; true if that is news to the client. */
static bool
framer_fail(struct ctl_framer *f, const char *why, bool at_newline)
{
	bool report = !f->discard;

	framer_reset(f);
	f->skip_line = !at_newline;
	f->why = why;
	return report;
}

/* Bytes that may appear outside strings within a JSON value. */
static bool
is_value_char(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c && strchr("-+.eE:,truefalsn", c));
}

/* Scan until one value ends or is refused; bytes consumed. */
size_t
ctl_framer_feed(struct ctl_framer *f, const char *p, size_t n,
		enum ctl_frame *out)
{
	*out = CTL_FRAME_MORE;
	if (f->have_msg) {
		f->have_msg = false;
		framer_reset(f);
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = p[i];
		const char *bad = NULL;
		bool end = false;

		if (f->skip_line) {
			if (c == '\n')
				f->skip_line = false;
			continue;
		}
		if (f->in_str) {
			if (f->esc)
				f->esc = false;
			else if (c == '\\')
				f->esc = true;
			else if (c == '"')
				f->in_str = false;
			else if (c < 0x20)
				bad = "control character in a string";
		} else if (f->scalar) {
			end = c == '\n';
		} else {
			switch (c) {
			case ' ':
			case '\t':
			case '\r':
			case '\n':
				if (f->depth == 0)
					continue;	/* between requests */
				break;
			case '{':
			case '[':
				if (++f->depth > CTL_MAX_DEPTH)
					bad = "nesting too deep";
				break;
			case '}':
			case ']':
				if (f->depth == 0)
					bad = "unbalanced closing bracket";
				else
					end = --f->depth == 0;
				break;
			case '"':
				f->in_str = true;
				f->scalar = f->depth == 0;
				break;
			default:
				if (f->depth == 0)
					f->scalar = true;
				else if (!is_value_char(c))
					bad = "unexpected character";
				break;
			}
		}
		if (bad) {
			if (framer_fail(f, bad, c == '\n')) {
				*out = CTL_FRAME_ERROR;
				return i + 1;
			}
			continue;
		}
		if (!f->discard) {
			if (f->msg.len >= f->max) {
				/* Follow it to its end without storing it, so
				 * that the request after it is read intact. */
				f->discard = true;
				f->why = "request too long";
				if (end)
					framer_reset(f);
				*out = CTL_FRAME_ERROR;
				return i + 1;
			}
			buf_append(&f->msg, &c, 1);
		}
		if (end) {
			if (f->discard) {
				framer_reset(f);	/* reported already */
				continue;
			}
			f->have_msg = true;
			*out = CTL_FRAME_MSG;
			return i + 1;
		}
	}
	return n;
}

/* ---- server state ------------------------------------------------------- */

struct ctl_client {
	struct ctl *ctl;
	struct ctl_client *next;
	struct ctl_peer peer;
	int fd;
	struct loop_watch *w;
	struct loop_timer *t_stall;
	struct ctl_framer fr;
	char *in;		/* read, not yet scanned: [in_off, in_len) */
	size_t in_off, in_len;
	struct buf out;		/* queued output: out.data[out_off..out.len) */
	size_t out_off;
	size_t reply_end;	/* just past the last reply queued */
	int64_t moved_ms;	/* output last moved, or a reply queued */
	uint64_t dropped;	/* events dropped since the last notice */
	bool negotiated, eof, dead;
	bool busy;		/* its requests are being served */
	bool waiting;		/* a deferred request has not been answered */
	json_t *wait_id;	/* its id */
};

struct ctl {
	struct loop *loop;
	const struct ctl_cmd *cmds;
	size_t n_cmds;
	void *opaque;
	struct ctl_opts o;

	int listen_fd;
	struct loop_watch *w_listen;
	struct loop_timer *t_accept;
	char *path;
	dev_t sock_dev;
	ino_t sock_ino;

	struct ctl_client *clients;
	size_t n_clients;
	unsigned next_conn;
	uint64_t dropped_total;
	struct loop_timer *t_reap;
};

static void
ctl_log(struct ctl *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
ctl_log(struct ctl *c, const char *fmt, ...)
{
	va_list ap;

	if (!c->o.log)
		return;
	fputs("qctl serve: ", c->o.log);
	va_start(ap, fmt);
	vfprintf(c->o.log, fmt, ap);
	va_end(ap);
	fputc('\n', c->o.log);
	fflush(c->o.log);
}

/*
 * A client's string, fit for a message: at most 64 bytes of printable
 * ASCII, the rest '?'.  Cut anywhere, it is still valid UTF-8 for JSON,
 * and it cannot forge lines in the log.
 */
static const char *
safe_str(char *dst, size_t size, const char *s)
{
	size_t i;

	for (i = 0; s[i] && i + 1 < size && i < 64; i++)
		dst[i] = (unsigned char)s[i] >= 0x20 &&
				 (unsigned char)s[i] < 0x7f
			 ? s[i]
			 : '?';
	dst[i] = '\0';
	return dst;
}

static size_t
pending(const struct ctl_client *cl)
{
	return cl->out.len - cl->out_off;
}

/* Input is read only while the client takes its output. */
static bool
can_read(const struct ctl_client *cl)
{
	return !cl->waiting && pending(cl) < cl->ctl->o.out_max;
}

static void
on_reap(struct loop *l, void *opaque)
{
	struct ctl *c = opaque;
	struct ctl_client **pp = &c->clients;

	(void)l;
	c->t_reap = NULL;
	while (*pp) {
		struct ctl_client *cl = *pp;

		if (!cl->dead) {
			pp = &cl->next;
			continue;
		}
		*pp = cl->next;
		ctl_framer_free(&cl->fr);
		buf_free(&cl->out);
		json_decref(cl->wait_id);
		free(cl->in);
		free(cl);
	}
}

/*
 * Disconnect a client.  Its memory goes on a later loop round: callers up
 * the stack (a broadcast, a request being served) may still hold it.
 */
static void
client_drop(struct ctl_client *cl, const char *why)
{
	struct ctl *c = cl->ctl;

	if (cl->dead)
		return;
	cl->dead = true;
	loop_unwatch(cl->w);
	loop_timer_cancel(cl->t_stall);
	cl->w = NULL;
	cl->t_stall = NULL;
	close(cl->fd);
	cl->fd = -1;
	c->n_clients--;
	ctl_log(c, "client %u (uid %d) disconnected%s%s", cl->peer.conn,
		(int)cl->peer.uid, why ? ": " : "", why ? why : "");
	if (!c->t_reap)
		c->t_reap = loop_timer_at(c->loop, now_ms(), on_reap, c);
}

/* Queue one message; events are dropped (and counted) past out_max. */
static void
client_queue(struct ctl_client *cl, const char *s, size_t n, bool reply)
{
	if (cl->dead)
		return;
	if (!reply && pending(cl) + n + 2 > cl->ctl->o.out_max) {
		cl->dropped++;
		cl->ctl->dropped_total++;
		return;
	}
	/* the stall clock runs from the oldest unread reply (or output) */
	if (pending(cl) == 0 || (reply && cl->reply_end <= cl->out_off))
		cl->moved_ms = now_ms();
	buf_append(&cl->out, s, n);
	buf_append(&cl->out, "\r\n", 2);
	if (reply)
		cl->reply_end = cl->out.len;
}

static void
client_queue_json(struct ctl_client *cl, json_t *msg, bool reply)
{
	_cleanup_free_ char *s = json_dumps(msg, 0);

	if (!s) {
		/* only a non-UTF-8 string could do that: a bug of ours */
		static const char oops[] = "{\"error\": {\"class\": "
					   "\"GenericError\", \"desc\": "
					   "\"reply not encodable\"}}";

		client_queue(cl, oops, sizeof(oops) - 1, reply);
		return;
	}
	client_queue(cl, s, strlen(s), reply);
}

/* Once there is room again, tell the client how many events it missed. */
static void
client_notice(struct ctl_client *cl)
{
	_cleanup_json_ json_t *e = NULL;
	struct timeval tv;

	if (!cl->dropped || !cl->negotiated ||
	    pending(cl) + 256 > cl->ctl->o.out_max)
		return;
	gettimeofday(&tv, NULL);
	e = json_pack("{s:s, s:{s:I}, s:{s:I, s:I}}", "event",
		      "EVENTS_DROPPED", "data", "count",
		      (json_int_t)cl->dropped, "timestamp", "seconds",
		      (json_int_t)tv.tv_sec, "microseconds",
		      (json_int_t)tv.tv_usec);
	cl->dropped = 0;
	client_queue_json(cl, e, false);
}

static void
client_flush(struct ctl_client *cl)
{
	for (int round = 0; round < 2 && !cl->dead; round++) {
		while (cl->out_off < cl->out.len) {
			ssize_t w = send(cl->fd, cl->out.data + cl->out_off,
					 cl->out.len - cl->out_off,
					 MSG_NOSIGNAL | MSG_DONTWAIT);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				client_drop(cl, strerror(errno));
				return;
			}
			cl->out_off += w;
			cl->moved_ms = now_ms();
		}
		if (cl->out_off == cl->out.len) {
			cl->out_off = cl->out.len = cl->reply_end = 0;
			if (cl->out.cap > CTL_KEEP_BUF)
				buf_free(&cl->out);
		} else if (cl->out_off >= CTL_KEEP_BUF &&
			   cl->out_off * 2 >= cl->out.len) {
			cl->reply_end = cl->reply_end > cl->out_off
						? cl->reply_end - cl->out_off
						: 0;
			buf_consume(&cl->out, cl->out_off);
			cl->out_off = 0;
		}
		if (!cl->dropped)
			break;
		client_notice(cl);
	}
}

static void
on_stall(struct loop *l, void *opaque)
{
	struct ctl_client *cl = opaque;
	struct ctl *c = cl->ctl;

	cl->t_stall = NULL;
	if (cl->dead || cl->reply_end <= cl->out_off)
		return;
	if (now_ms() - cl->moved_ms >= c->o.stall_ms) {
		/* Its replies would pile up (and its input is no longer
		 * read): a client that does not read is gone. */
		client_drop(cl, "left a reply unread too long");
		return;
	}
	cl->t_stall = loop_timer_at(l, cl->moved_ms + c->o.stall_ms, on_stall,
				    cl);
}

static void client_process(struct ctl_client *cl);

/* After anything happened to cl: write, maybe read on, set the watch. */
static void
client_update(struct ctl_client *cl, bool process)
{
	uint32_t ev = 0;

	client_flush(cl);
	if (process)
		client_process(cl);
	if (cl->dead)
		return;
	/* Done with a client that hung up, but never under its own request
	 * (an event it caused must not cost it the reply). */
	if (cl->eof && !cl->busy && !cl->waiting && cl->in_off == cl->in_len &&
	    !pending(cl)) {
		client_drop(cl, NULL);
		return;
	}
	if (!cl->eof && cl->in_off == cl->in_len && can_read(cl))
		ev |= EPOLLIN;
	if (pending(cl))
		ev |= EPOLLOUT;
	loop_watch_set(cl->w, ev);
	if (cl->reply_end > cl->out_off && !cl->t_stall)
		cl->t_stall = loop_timer_at(cl->ctl->loop,
					    cl->moved_ms + cl->ctl->o.stall_ms,
					    on_stall, cl);
}

/* ---- requests ----------------------------------------------------------- */

static void
client_reply(struct ctl_client *cl, json_t *id, json_t *ret)
{
	_cleanup_json_ json_t *r = json_object();

	json_object_set_new(r, "return", ret ? ret : json_object());
	if (id)
		json_object_set(r, "id", id);
	client_queue_json(cl, r, true);
}

static void
client_error(struct ctl_client *cl, json_t *id, const char *cls,
	     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
client_error(struct ctl_client *cl, json_t *id, const char *cls,
	     const char *fmt, ...)
{
	_cleanup_json_ json_t *r = NULL;
	char desc[1100];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	r = json_pack("{s:{s:s, s:s}}", "error", "class", cls, "desc", desc);
	if (!r) /* desc not UTF-8: our messages quote through safe_str */
		r = json_pack("{s:{s:s, s:s}}", "error", "class", cls, "desc",
			      "error");
	if (id)
		json_object_set(r, "id", id);
	client_queue_json(cl, r, true);
}

static const char *
type_name(char t)
{
	switch (t) {
	case 's':
		return "string";
	case 'i':
		return "integer";
	case 'b':
		return "boolean";
	case 'o':
		return "object";
	case 'a':
		return "array";
	default:
		return "any";
	}
}

static bool
type_ok(char t, json_t *v)
{
	switch (t) {
	case 's':
		return json_is_string(v);
	case 'i':
		return json_is_integer(v);
	case 'b':
		return json_is_boolean(v);
	case 'o':
		return json_is_object(v);
	case 'a':
		return json_is_array(v);
	default:
		return true;
	}
}

/* The next "name:T[?]" of a spec: false at its end. */
static bool
spec_next(const char **sp, char *name, size_t size, char *type, bool *opt)
{
	const char *s = *sp, *colon;
	size_t len;

	while (s && *s == ' ')
		s++;
	if (!s || !*s)
		return false;
	colon = strchr(s, ':');
	len = colon ? (size_t)(colon - s) : strlen(s);
	if (len >= size)
		len = size - 1;
	memcpy(name, s, len);
	name[len] = '\0';
	*type = colon ? colon[1] : '*';
	*opt = colon && colon[1] && colon[2] == '?';
	s = colon ? colon + 1 : s + len;
	while (*s && *s != ' ')
		s++;
	*sp = s;
	return true;
}

static int
check_args(const char *spec, json_t *args, struct error *err)
{
	char name[64], q[80];
	const char *key, *sp;
	json_t *v;
	char type;
	bool opt;

	json_object_foreach(args, key, v) {
		bool found = false;

		sp = spec;
		while (spec_next(&sp, name, sizeof(name), &type, &opt))
			if (!strcmp(name, key)) {
				found = true;
				break;
			}
		if (!found)
			return error_set(err, EINVAL,
					 "Parameter '%s' is unexpected",
					 safe_str(q, sizeof(q), key));
		if (!type_ok(type, v))
			return error_set(err, EINVAL,
					 "Invalid parameter type for '%s', "
					 "expected: %s", name, type_name(type));
	}
	sp = spec;
	while (spec_next(&sp, name, sizeof(name), &type, &opt))
		if (!opt && !json_object_get(args, name))
			return error_set(err, EINVAL,
					 "Parameter '%s' is missing", name);
	return 0;
}

/* ---- built-in commands -------------------------------------------------- */

static int
cmd_qmp_capabilities(void *opaque, const struct ctl_peer *peer,
		     json_t *args, json_t **ret, struct error *err)
{
	json_t *v = json_array_get(json_object_get(args, "enable"), 0);
	char q[80];

	(void)opaque;
	(void)peer;
	(void)ret;
	/* The greeting offers none (no out-of-band execution). */
	if (v)
		return error_set(err, EINVAL, "Capability '%s' not available",
				 json_is_string(v)
					 ? safe_str(q, sizeof(q),
						    json_string_value(v))
					 : "?");
	return 0;
}

static json_t *
version_json(const struct ctl *c)
{
	return json_pack("{s:{s:i, s:i, s:i}, s:s}", "qemu", "micro",
			 CTL_VERSION_MICRO, "minor", CTL_VERSION_MINOR,
			 "major", CTL_VERSION_MAJOR, "package", c->o.package);
}

static int
cmd_query_version(void *opaque, const struct ctl_peer *peer, json_t *args,
		  json_t **ret, struct error *err)
{
	(void)peer;
	(void)args;
	(void)err;
	*ret = version_json(opaque);
	return 0;
}

static int cmd_query_commands(void *opaque, const struct ctl_peer *peer,
			      json_t *args, json_t **ret, struct error *err);

static const struct ctl_cmd builtin[] = {
	{ "qmp_capabilities", cmd_qmp_capabilities, "enable:a?",
	  "leave capabilities negotiation (first command)" },
	{ "query-version", cmd_query_version, NULL,
	  "the server's version (QEMU's shape; qctl's in package)" },
	{ "query-commands", cmd_query_commands, NULL,
	  "the commands this server knows" },
};

static int
cmd_query_commands(void *opaque, const struct ctl_peer *peer, json_t *args,
		   json_t **ret, struct error *err)
{
	struct ctl *c = opaque;
	json_t *a = json_array();

	(void)peer;
	(void)args;
	(void)err;
	for (size_t i = 0; i < ARRAY_SIZE(builtin); i++)
		json_array_append_new(a, json_pack("{s:s, s:s}", "name",
						   builtin[i].name, "help",
						   builtin[i].help));
	for (size_t i = 0; i < c->n_cmds; i++)
		json_array_append_new(a, json_pack("{s:s, s:s}", "name",
						   c->cmds[i].name, "help",
						   c->cmds[i].help
							   ? c->cmds[i].help
							   : ""));
	*ret = a;
	return 0;
}

static const struct ctl_cmd *
find_cmd(const struct ctl *c, const char *name, bool *is_builtin)
{
	for (size_t i = 0; i < ARRAY_SIZE(builtin); i++)
		if (!strcmp(builtin[i].name, name)) {
			*is_builtin = true;
			return &builtin[i];
		}
	*is_builtin = false;
	for (size_t i = 0; i < c->n_cmds; i++)
		if (!strcmp(c->cmds[i].name, name))
			return &c->cmds[i];
	return NULL;
}

/* One request: checked like QEMU checks it, then dispatched. */
static void
client_request(struct ctl_client *cl, const char *text, size_t len)
{
	struct ctl *c = cl->ctl;
	_cleanup_json_ json_t *req = NULL, *empty = NULL;
	json_t *id, *exec, *args, *v, *ret = NULL;
	const struct ctl_cmd *cmd;
	struct error err = { 0 };
	const char *key, *name;
	json_error_t je;
	bool is_builtin;
	char q[80];
	int rc;

	req = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
			 &je);
	if (!req) {
		client_error(cl, NULL, "GenericError", "JSON parse error, %s",
			     safe_str(q, sizeof(q), je.text));
		return;
	}
	if (!json_is_object(req)) {
		client_error(cl, NULL, "GenericError",
			     "QMP input must be a JSON object");
		return;
	}
	id = json_object_get(req, "id");
	json_object_foreach(req, key, v) {
		if (strcmp(key, "execute") && strcmp(key, "arguments") &&
		    strcmp(key, "id")) {
			client_error(cl, id, "GenericError",
				     "QMP input member '%s' is unexpected",
				     safe_str(q, sizeof(q), key));
			return;
		}
	}
	exec = json_object_get(req, "execute");
	if (!exec) {
		client_error(cl, id, "GenericError",
			     "QMP input lacks member 'execute'");
		return;
	}
	if (!json_is_string(exec)) {
		client_error(cl, id, "GenericError",
			     "QMP input member 'execute' must be a string");
		return;
	}
	args = json_object_get(req, "arguments");
	if (args && !json_is_object(args)) {
		client_error(cl, id, "GenericError",
			     "QMP input member 'arguments' must be an object");
		return;
	}
	if (!args)
		args = empty = json_object();
	name = json_string_value(exec);
	if (!cl->negotiated && strcmp(name, "qmp_capabilities")) {
		client_error(cl, id, "CommandNotFound",
			     "Expecting capabilities negotiation with "
			     "'qmp_capabilities'");
		return;
	}
	if (cl->negotiated && !strcmp(name, "qmp_capabilities")) {
		client_error(cl, id, "CommandNotFound",
			     "Capabilities negotiation is already complete, "
			     "command ignored");
		return;
	}
	cmd = find_cmd(c, name, &is_builtin);
	if (!cmd) {
		client_error(cl, id, "CommandNotFound",
			     "The command %s has not been found",
			     safe_str(q, sizeof(q), name));
		return;
	}
	rc = check_args(cmd->args ? cmd->args : "", args, &err);
	if (rc == 0)
		rc = cmd->fn(is_builtin ? (void *)c : c->opaque, &cl->peer,
			     args, &ret, &err);
	if (rc < 0) {
		json_decref(ret);
		client_error(cl, id, "GenericError", "%s", err.msg);
		return;
	}
	if (rc == CTL_DEFER) {
		/* the command answers through ctl_complete */
		json_decref(ret);
		cl->waiting = true;
		cl->wait_id = id ? json_incref(id) : NULL;
		return;
	}
	if (cmd->fn == cmd_qmp_capabilities)
		cl->negotiated = true;
	client_reply(cl, id, ret);
}

static void
client_process(struct ctl_client *cl)
{
	cl->busy = true;
	while (!cl->dead && !cl->waiting && cl->in_off < cl->in_len &&
	       can_read(cl)) {
		enum ctl_frame k;
		size_t used = ctl_framer_feed(&cl->fr, cl->in + cl->in_off,
					      cl->in_len - cl->in_off, &k);

		cl->in_off += used;
		if (k == CTL_FRAME_MSG)
			client_request(cl, cl->fr.msg.data, cl->fr.msg.len);
		else if (k == CTL_FRAME_ERROR && cl->fr.discard)
			client_error(cl, NULL, "GenericError",
				     "JSON parse error, request longer than "
				     "%zu bytes", cl->fr.max);
		else if (k == CTL_FRAME_ERROR)
			client_error(cl, NULL, "GenericError",
				     "JSON parse error, %s", cl->fr.why);
		client_flush(cl);
	}
	cl->busy = false;
}

static void
on_client_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct ctl_client *cl = opaque;

	(void)l;
	if (cl->waiting && (events & (EPOLLHUP | EPOLLERR))) {
		/* gone while its request is worked on: nothing to answer */
		client_drop(cl, "hung up");
		return;
	}
	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !cl->eof &&
	    cl->in_off == cl->in_len && can_read(cl)) {
		ssize_t r = recv(fd, cl->in, CTL_IN_CHUNK, MSG_DONTWAIT);

		if (r == 0) {
			cl->eof = true;
		} else if (r > 0) {
			cl->in_off = 0;
			cl->in_len = r;
		} else if (errno != EAGAIN && errno != EINTR) {
			client_drop(cl, strerror(errno));
			return;
		}
	}
	client_update(cl, true);
}

/* A peer with more groups than we keep: the first CTL_PEER_GROUPS. */
static int
peer_groups_prefix(int fd, gid_t *out)
{
	socklen_t len = 0;
	_cleanup_free_ gid_t *all = NULL;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, NULL, &len) < 0 &&
	    errno != ERANGE)
		return -1;
	if (len == 0 || len > 65536 * sizeof(gid_t))
		return -1;
	all = xmalloc(len);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &len) < 0)
		return -1;
	memcpy(out, all, CTL_PEER_GROUPS * sizeof(gid_t));
	return CTL_PEER_GROUPS;
}

static int
client_new(struct ctl *c, int fd, struct error *err)
{
	struct ctl_client *cl;
	struct ucred cred = { .pid = 0, .uid = -1, .gid = -1 };
	socklen_t cl_len = sizeof(cred), gl_len;
	_cleanup_json_ json_t *greeting = NULL;

	if (fd_set_nonblock(fd) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
		int e = errno;

		close(fd);
		return error_sys(err, e, "client socket");
	}
	/* Who is asking: logged with every build it submits. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl_len) < 0)
		cred.uid = cred.gid = -1;
	cl = xcalloc(1, sizeof(*cl));
	cl->ctl = c;
	cl->fd = fd;
	cl->peer.conn = ++c->next_conn;
	cl->peer.uid = cred.uid;
	cl->peer.gid = cred.gid;
	cl->peer.pid = cred.pid;
	/* The groups too: work done with the client's rights must have
	 * exactly its rights, not the server's groups. */
	gl_len = sizeof(cl->peer.groups);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, cl->peer.groups,
		       &gl_len) == 0)
		cl->peer.n_groups = gl_len / sizeof(gid_t);
	else if (errno == ERANGE)
		/* more than we keep: the first ones only, fewer rights */
		cl->peer.n_groups = peer_groups_prefix(fd, cl->peer.groups);
	else
		cl->peer.n_groups = -1;
	cl->in = xmalloc(CTL_IN_CHUNK);
	ctl_framer_init(&cl->fr, c->o.msg_max);
	cl->w = loop_watch_fd(c->loop, fd, EPOLLIN, on_client_io, cl);
	if (!cl->w) {
		int e = errno;

		close(fd);
		ctl_framer_free(&cl->fr);
		free(cl->in);
		free(cl);
		return error_sys(err, e, "epoll");
	}
	cl->next = c->clients;
	c->clients = cl;
	c->n_clients++;
	ctl_log(c, "client %u connected (uid %d, pid %d)", cl->peer.conn,
		(int)cl->peer.uid, (int)cl->peer.pid);
	greeting = json_pack("{s:{s:o, s:[]}}", "QMP", "version",
			     version_json(c), "capabilities");
	client_queue_json(cl, greeting, false);
	client_update(cl, false);
	return 0;
}

void
ctl_complete(struct ctl *c, unsigned conn, json_t *ret,
	     const struct error *err)
{
	struct ctl_client *cl;
	json_t *id;

	for (cl = c->clients; cl; cl = cl->next)
		if (cl->peer.conn == conn && !cl->dead)
			break;
	if (!cl || !cl->waiting) {
		json_decref(ret);
		return;
	}
	id = cl->wait_id;
	cl->wait_id = NULL;
	cl->waiting = false;
	if (err) {
		json_decref(ret);
		client_error(cl, id, "GenericError", "%s", err->msg);
	} else {
		client_reply(cl, id, ret);
	}
	json_decref(id);
	/* its next requests, already read, are served now */
	client_update(cl, true);
}

/* Serve an already connected socket: greeting first. */
int
ctl_add_client(struct ctl *c, int fd, struct error *err)
{
	return client_new(c, fd, err);
}

static void on_listen(struct loop *l, int fd, uint32_t events, void *opaque);

static void
on_accept_pause(struct loop *l, void *opaque)
{
	struct ctl *c = opaque;

	(void)l;
	c->t_accept = NULL;
	if (c->w_listen)
		loop_watch_set(c->w_listen, EPOLLIN);
}

static void
on_listen(struct loop *l, int fd, uint32_t events, void *opaque)
{
	static const char busy[] = "{\"error\": {\"class\": \"GenericError\", "
				   "\"desc\": \"too many clients\"}}\r\n";
	struct ctl *c = opaque;
	struct error err = { 0 };

	(void)events;
	for (int i = 0; i < 16; i++) {
		int cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM) {
				/* Level-triggered: without a pause this
				 * would spin until an fd frees up. */
				ctl_log(c, "accept: %s; pausing",
					strerror(errno));
				loop_watch_set(c->w_listen, 0);
				if (!c->t_accept)
					c->t_accept = loop_timer_at(
						l, now_ms() +
							   CTL_ACCEPT_PAUSE_MS,
						on_accept_pause, c);
			}
			return;
		}
		if (c->n_clients >= c->o.max_clients) {
			if (send(cfd, busy, sizeof(busy) - 1,
				 MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
				(void)0;
			close(cfd);
			ctl_log(c, "refused a client: %zu connected already",
				c->n_clients);
			continue;
		}
		if (client_new(c, cfd, &err) < 0)
			ctl_log(c, "%s", err.msg);
	}
}

/* ---- public ------------------------------------------------------------- */

/* A server with the built-in commands and the caller's table. */
struct ctl *
ctl_new(struct loop *loop, const struct ctl_cmd *cmds, size_t n_cmds,
	void *opaque, const struct ctl_opts *opts)
{
	struct ctl *c = xcalloc(1, sizeof(*c));

	c->loop = loop;
	c->cmds = cmds;
	c->n_cmds = n_cmds;
	c->opaque = opaque;
	if (opts)
		c->o = *opts;
	if (!c->o.package)
		c->o.package = "qctl " QCTL_VERSION;
	if (!c->o.max_clients)
		c->o.max_clients = CTL_MAX_CLIENTS;
	if (!c->o.out_max)
		c->o.out_max = CTL_OUT_MAX;
	if (!c->o.msg_max)
		c->o.msg_max = CTL_MAX_MSG;
	if (!c->o.stall_ms)
		c->o.stall_ms = CTL_STALL_MS;
	c->listen_fd = -1;
	return c;
}

/* Bind, restrict, then widen the socket; accept from the loop. */
int
ctl_listen(struct ctl *c, const char *path, mode_t mode, gid_t gid,
	   struct error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -1;
	struct stat st;
	mode_t old;
	int r;

	if (c->listen_fd >= 0)
		return error_set(err, EBUSY, "already listening");
	if (strlen(path) >= sizeof(sa.sun_path))
		return error_set(err, ENAMETOOLONG, "socket path too long: %s",
				 path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (lstat(path, &st) == 0) {
		_cleanup_close_ int probe = -1;

		if (!S_ISSOCK(st.st_mode))
			return error_set(err, EEXIST,
					 "%s exists and is not a socket", path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 &&
		    connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return error_set(err, EADDRINUSE,
					 "%s: another server listens there",
					 path);
		/* a dead server's socket: nobody answers on it */
		if (unlink(path) < 0 && errno != ENOENT)
			return error_sys(err, errno, "unlink %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return error_sys(err, errno, "socket");
	/* Born 0600, widened only once owner and group are right: no
	 * moment where someone outside the group could connect. */
	old = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0)
		return error_sys(err, errno, "bind %s", path);
	if (lstat(path, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    lchown(path, geteuid(), gid) < 0 ||
	    chmod(path, mode & 0777) < 0) {
		int e = errno;

		unlink(path);
		return error_sys(err, e, "set owner and mode of %s", path);
	}
	if (listen(fd, 64) < 0) {
		int e = errno;

		unlink(path);
		return error_sys(err, e, "listen %s", path);
	}
	c->w_listen = loop_watch_fd(c->loop, fd, EPOLLIN, on_listen, c);
	if (!c->w_listen) {
		int e = errno;

		unlink(path);
		return error_sys(err, e, "epoll");
	}
	c->sock_dev = st.st_dev;
	c->sock_ino = st.st_ino;
	c->path = xstrdup(path);
	c->listen_fd = steal_fd(&fd);
	return 0;
}

int
ctl_listen_fd(struct ctl *c, int fd, struct error *err)
{
	_cleanup_close_ int owned = fd;
	int fl;

	if (c->listen_fd >= 0)
		return error_set(err, EBUSY, "already listening");
	/* accept4 must not block the loop; no child may inherit it */
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return error_sys(err, errno, "socket fd %d", fd);
	c->w_listen = loop_watch_fd(c->loop, fd, EPOLLIN, on_listen, c);
	if (!c->w_listen)
		return error_sys(err, errno, "epoll");
	c->path = NULL; /* systemd's: left in place when we stop */
	c->listen_fd = steal_fd(&owned);
	return 0;
}

/* Close the listener and remove the path if still ours. */
void
ctl_stop_listening(struct ctl *c)
{
	struct stat st;

	loop_unwatch(c->w_listen);
	loop_timer_cancel(c->t_accept);
	c->w_listen = NULL;
	c->t_accept = NULL;
	if (c->listen_fd >= 0)
		close(c->listen_fd);
	c->listen_fd = -1;
	/* only our own socket: another server may have taken the path */
	if (c->path && lstat(c->path, &st) == 0 && st.st_dev == c->sock_dev &&
	    st.st_ino == c->sock_ino)
		unlink(c->path);
	free(c->path);
	c->path = NULL;
}

/* Serialize once, queue for every negotiated client. */
void
ctl_event(struct ctl *c, const char *event, json_t *data)
{
	_cleanup_json_ json_t *e = NULL;
	_cleanup_free_ char *s = NULL;
	struct timeval tv;
	size_t n;

	gettimeofday(&tv, NULL);
	e = json_pack("{s:s, s:o, s:{s:I, s:I}}", "event", event, "data",
		      data ? data : json_object(), "timestamp", "seconds",
		      (json_int_t)tv.tv_sec, "microseconds",
		      (json_int_t)tv.tv_usec);
	s = e ? json_dumps(e, 0) : NULL;
	if (!s)
		return;
	n = strlen(s);
	for (struct ctl_client *cl = c->clients; cl; cl = cl->next) {
		if (cl->dead || !cl->negotiated)
			continue;
		client_notice(cl);
		client_queue(cl, s, n, false);
		client_update(cl, false);
	}
}

/* Clients connected now. */
size_t
ctl_n_clients(const struct ctl *c)
{
	return c->n_clients;
}

/* Events dropped for slow clients since start. */
uint64_t
ctl_events_dropped(const struct ctl *c)
{
	return c->dropped_total;
}

/* Flush what fits, close every client and the listener. */
void
ctl_free(struct ctl *c)
{
	if (!c)
		return;
	ctl_stop_listening(c);
	for (struct ctl_client *cl = c->clients; cl; cl = cl->next) {
		if (cl->dead)
			continue;
		client_flush(cl);	/* last words, if they fit */
		client_drop(cl, "server exiting");
	}
	loop_timer_cancel(c->t_reap);
	on_reap(c->loop, c);
	free(c);
}
