/* sshd.c - manager side of the ssh server: start qctl-sshd, answer its
 * key requests and sessions, carry their data.  The sshd parses the
 * clients' bytes, so the manager trusts it less than itself: every frame
 * is bounded and checked, and must fit the state of its session. */
#include "sshd.h"
#include "child.h"
#include "sshd-proto.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

/* Frames queued for a sshd that does not read: past this it has stopped
 * (the windows bound what a working one can be owed). */
#define SSHD_QUEUE_MAX (8u << 20)

enum sess_state {
	S_KEYS,	   /* a key request, unanswered */
	S_OPENING, /* OPEN received, not answered */
	S_OPEN,	   /* OPENED sent */
	S_ENDING,  /* REFUSED, EXIT or CLOSE sent: waiting for CLOSED */
};

struct sess {
	uint32_t id;
	enum sess_state st;
	bool has_pty;
	bool was_open; /* OPENED sent (ENDING may follow either) */
	bool in_eof;	   /* the client closed stdin */
	bool out_eof;	   /* EOF sent */
	uint32_t in_owed;  /* stdin bytes received, not yet done */
	uint32_t out_owed; /* output bytes sent, not yet acknowledged */
};

struct sshd {
	pid_t pid;
	int fd;
	bool ready;
	char *path;
	const struct sshd_callbacks *cb;
	void *opaque;
	uint32_t last_id;
	size_t max_ids; /* sessions and requests tracked at once */
	struct sess *sess;
	size_t nsess;
	struct buf out; /* frames to send, each with its length header */
};

int
sshd_fd(const struct sshd *s)
{
	return s->fd;
}

pid_t
sshd_pid(const struct sshd *s)
{
	return s->pid;
}

bool
sshd_ready(const struct sshd *s)
{
	return s->ready;
}

uint32_t
sshd_events(const struct sshd *s)
{
	return EPOLLIN | (s->out.len ? EPOLLOUT : 0);
}

size_t
sshd_queued(const struct sshd *s)
{
	return s->out.len;
}

const uint8_t *
sshd_queued_data(const struct sshd *s)
{
	return (const uint8_t *)s->out.data;
}

static struct sess *
sess_find(const struct sshd *s, uint32_t id)
{
	for (size_t i = 0; i < s->nsess; i++)
		if (s->sess[i].id == id)
			return &s->sess[i];
	return NULL;
}

static void
sess_drop(struct sshd *s, struct sess *x)
{
	size_t i = x - s->sess;

	s->sess[i] = s->sess[--s->nsess];
}

/* The ids to run the sshd as: never root. */
static int
pick_ids(const struct sshd_config *cfg, uid_t *uid, gid_t *gid,
	 struct error *err)
{
	struct passwd *pw;
	struct group *gr;

	*uid = cfg->uid;
	*gid = cfg->gid;
	if (!*uid) {
		pw = getpwnam("nobody");
		if (!pw || !pw->pw_uid)
			return error_set(err, ENOENT,
					 "no user \"nobody\" to run the ssh "
					 "server as");
		*uid = pw->pw_uid;
	}
	if (!*gid) {
		gr = getgrnam("nogroup");
		if (!gr)
			gr = getgrnam("nobody");
		if (!gr || !gr->gr_gid)
			return error_set(err, ENOENT,
					 "no group \"nogroup\" to run the ssh "
					 "server as");
		*gid = gr->gr_gid;
	}
	return 0;
}

int
sshd_config_encode(const struct sshd_config *cfg, uid_t uid, gid_t gid,
		   struct buf *out, struct error *err)
{
	struct sshd_msg m = { .type = SSHD_M_CONFIG };

	if (cfg->n_hostkeys < 1 || cfg->n_hostkeys > SSHD_HOSTKEYS_MAX)
		return error_set(err, EINVAL,
				 "ssh server: %zu host keys (1 to %d)",
				 cfg->n_hostkeys, SSHD_HOSTKEYS_MAX);
	m.version = SSHD_PROTO_VERSION;
	m.uid = uid;
	m.gid = gid;
	m.max_conns = cfg->max_conns ? cfg->max_conns : SSHD_DEFAULT_CONNS;
	m.max_sessions =
		cfg->max_sessions ? cfg->max_sessions : SSHD_DEFAULT_SESSIONS;
	m.grace_ms = cfg->grace_ms ? cfg->grace_ms : SSHD_DEFAULT_GRACE_MS;
	m.max_auth = cfg->max_auth ? cfg->max_auth : SSHD_DEFAULT_AUTH;
	m.nhostkeys = cfg->n_hostkeys;
	for (size_t i = 0; i < cfg->n_hostkeys; i++)
		m.hostkeys[i] = cfg->hostkeys[i];
	if (sshd_msg_encode(&m, out, err) < 0) {
		error_prefix(err, "ssh server configuration");
		return -EINVAL;
	}
	return 0;
}

/*
 * Between fork and exec.  A failure goes to the manager as the sshd's own
 * FAIL frame on the control socket, read in its loop like any start-up
 * failure of the program itself.
 */
static void __attribute__((noreturn))
sshd_child(const char *path, int listen_fd, int ctl, pid_t ppid)
{
	char *const argv[] = { (char *)"qctl-sshd", NULL };
	char *const envp[] = { NULL };
	int fds[2] = { listen_fd, ctl };
	struct child_fds cf = {
		.in = -1, .out = -1, .err = -1,
		.fds = fds, .n = 2, .first = SSHD_FD_LISTEN,
		.errpipe = -1,
	};
	struct sshd_msg m = { .type = SSHD_S_FAIL };
	struct buf b = { 0 };
	char msg[200];

	if (child_setup(&cf, NULL) < 0)
		_exit(127);
	/* The sshd dies with the manager (it sets this again once it has
	 * changed ids, which clears it). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(127);
	/* An empty environment: nothing of the manager's (variables,
	 * secrets, LD_* hooks) reaches the process that parses ssh bytes;
	 * exec leaves the manager's heap (other builds' data) behind. */
	execve(path, argv, envp);
	snprintf(msg, sizeof(msg), "exec: %s", strerror(errno));
	m.text = msg;
	if (sshd_msg_encode(&m, &b, NULL) == 0)
		(void)!send(SSHD_FD_CTL, b.data, b.len, MSG_NOSIGNAL);
	_exit(127);
}

static struct sshd *
sshd_alloc(const struct sshd_callbacks *cb, void *opaque, size_t max_ids)
{
	struct sshd *s = xcalloc(1, sizeof(*s));

	s->fd = -1;
	s->cb = cb;
	s->opaque = opaque;
	s->max_ids = max_ids;
	s->sess = xcalloc(max_ids, sizeof(*s->sess));
	return s;
}

struct sshd *
sshd_new_detached(const struct sshd_callbacks *cb, void *opaque)
{
	struct sshd *s = sshd_alloc(cb, opaque,
				    SSHD_DEFAULT_CONNS *
					    (SSHD_DEFAULT_SESSIONS + 1));

	s->path = xstrdup("(detached)");
	return s;
}

int
sshd_start(const struct sshd_config *cfg, const struct sshd_callbacks *cb,
	   void *opaque, struct sshd **out, struct error *err)
{
	struct buf conf = { 0 };
	struct sshd *s;
	int sv[2], acc = 0, r, sndbuf = 4 * SSHD_FRAME_MAX;
	socklen_t sl = sizeof(acc);
	uid_t uid = 0;
	gid_t gid = 0;
	pid_t self = getpid();
	unsigned int conns, sessions;
	ssize_t n;

	*out = NULL;
	if (!cfg->path || !*cfg->path)
		return error_set(err, EINVAL, "ssh server: no program to run");
	if (getsockopt(cfg->listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) <
		    0 ||
	    !acc)
		return error_set(err, EINVAL,
				 "ssh server: fd %d is not a listening socket",
				 cfg->listen_fd);
	/* An unprivileged manager has no ids to give up; the sshd still
	 * sets no_new_privs and seccomp. */
	if (geteuid() == 0 && pick_ids(cfg, &uid, &gid, err) < 0)
		return -ENOENT;
	r = sshd_config_encode(cfg, uid, gid, &conf, err);
	if (r < 0)
		return r;
	/* Packets, not a stream: a frame is whole or absent, and one
	 * larger than the reader's buffer shows (MSG_TRUNC). */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		buf_free(&conf);
		return error_sys(err, errno, "ssh server: socketpair");
	}
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	/* Queued before the fork: the sshd finds it waiting and the
	 * manager never waits on the sshd to read. */
	n = send(sv[0], conf.data, conf.len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n != (ssize_t)conf.len) {
		r = error_sys(err, n < 0 ? errno : EMSGSIZE,
			      "ssh server: queueing the configuration");
		/* The host key must not linger in freed memory. */
		explicit_bzero(conf.data, conf.cap);
		buf_free(&conf);
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	explicit_bzero(conf.data, conf.cap);
	buf_free(&conf);
	conns = cfg->max_conns ? cfg->max_conns : SSHD_DEFAULT_CONNS;
	sessions = cfg->max_sessions ? cfg->max_sessions
				     : SSHD_DEFAULT_SESSIONS;
	/* Each connection: one key request, its sessions. */
	s = sshd_alloc(cb, opaque, (size_t)conns * (sessions + 1));
	s->fd = sv[0];
	s->path = xstrdup(cfg->path);
	s->pid = fork();
	if (s->pid < 0) {
		r = error_sys(err, errno, "ssh server: fork");
		close(sv[1]);
		s->pid = 0;
		sshd_stop(s);
		return r;
	}
	if (s->pid == 0)
		sshd_child(cfg->path, cfg->listen_fd, sv[1], self);
	close(sv[1]);
	if (fd_set_nonblock(s->fd) < 0) {
		r = error_sys(err, errno, "ssh server: fcntl");
		sshd_stop(s);
		return r;
	}
	*out = s;
	return 0;
}

/* ---- sending ------------------------------------------------------------ */

/* Send what is queued, frame by frame, without blocking. */
static int
flush(struct sshd *s, struct error *err)
{
	size_t off = 0;
	int r = 0;

	while (s->fd >= 0 && s->out.len - off >= SSHD_HDR_LEN) {
		const uint8_t *h = (const uint8_t *)s->out.data + off;
		size_t len = (size_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		ssize_t n;

		do {
			n = send(s->fd, h, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == ENOBUFS))
			break;
		if (n < 0) {
			r = error_sys(err, errno, "ssh server: sending");
			break;
		}
		off += len;
	}
	buf_consume(&s->out, off);
	return r;
}

static int
queue(struct sshd *s, const struct sshd_msg *m, struct error *err)
{
	if (s->out.len > SSHD_QUEUE_MAX)
		return error_set(err, ENOBUFS,
				 "ssh server: not reading its control socket");
	if (sshd_msg_encode(m, &s->out, err) < 0)
		return -EINVAL;
	return flush(s, err);
}

/* The session sid in one of the states of mask, or an error. */
static struct sess *
want(struct sshd *s, uint32_t sid, unsigned int mask, const char *what,
     struct error *err)
{
	struct sess *x = sess_find(s, sid);

	if (!x || !(mask & (1u << x->st))) {
		error_set(err, EINVAL, "ssh server: %s for %s session %u",
			  what, x ? "a session in another state of" : "no",
			  (unsigned int)sid);
		return NULL;
	}
	return x;
}

/* A key line the frame can carry: printable ASCII, bounded, not empty. */
static bool
key_line_ok(const char *k)
{
	size_t n = k ? strlen(k) : 0;

	if (n == 0 || n > SSHD_KEY_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (k[i] < 0x20 || k[i] > 0x7e)
			return false;
	return true;
}

int
sshd_send_keys(struct sshd *s, uint32_t req, const char *const *keys,
	       size_t n, struct error *err)
{
	struct sshd_msg m = { .type = SSHD_M_KEYS, .id = req };
	struct sess *x = want(s, req, 1u << S_KEYS, "keys", err);
	size_t bad = 0, over = 0, bytes = SSHD_HDR_LEN + 4;
	int r;

	if (!x)
		return -EINVAL;
	/* The sshd always gets an answer, with every line that can go:
	 * one bad line (a CR from a copied file) must not lock out every
	 * other key, nor leave the client waiting for the grace time. */
	for (size_t i = 0; i < n; i++) {
		size_t len;

		if (!key_line_ok(keys[i])) {
			bad++;
			continue;
		}
		len = 4 + strlen(keys[i]) + 1;
		if (m.nkeys == SSHD_KEYS_MAX || bytes + len > SSHD_FRAME_MAX) {
			over++;
			continue;
		}
		m.keys[m.nkeys++] = keys[i];
		bytes += len;
	}
	r = queue(s, &m, err);
	sess_drop(s, x);
	if (r < 0)
		return r;
	if (bad || over)
		return error_set(err, bad ? EINVAL : E2BIG,
				 "ssh server: %zu key lines not sent (%zu not "
				 "printable or longer than %d bytes, %zu past "
				 "%d lines or %d bytes)",
				 bad + over, bad, SSHD_KEY_MAX, over,
				 SSHD_KEYS_MAX, SSHD_FRAME_MAX);
	return 0;
}

int
sshd_send_opened(struct sshd *s, uint32_t sid, struct error *err)
{
	struct sshd_msg m = { .type = SSHD_M_OPENED, .id = sid };
	struct sess *x = want(s, sid, 1u << S_OPENING, "opened", err);

	if (!x)
		return -EINVAL;
	x->st = S_OPEN;
	x->was_open = true;
	return queue(s, &m, err);
}

/* Reasons go to a client's terminal: printable ASCII, bounded. */
static void
clean_text(const char *in, char *out, size_t cap)
{
	size_t k = 0;

	for (; in && in[k] && k < cap - 1; k++)
		out[k] = in[k] >= 0x20 && in[k] < 0x7f ? in[k] : '?';
	out[k] = '\0';
}

int
sshd_send_refused(struct sshd *s, uint32_t sid, const char *reason,
		  struct error *err)
{
	char text[SSHD_TEXT_MAX + 1];
	struct sshd_msg m = { .type = SSHD_M_REFUSED, .id = sid,
			      .text = text };
	struct sess *x = want(s, sid, 1u << S_OPENING, "refused", err);

	if (!x)
		return -EINVAL;
	clean_text(reason, text, sizeof(text));
	x->st = S_ENDING;
	return queue(s, &m, err);
}

size_t
sshd_output_room(const struct sshd *s, uint32_t sid)
{
	struct sess *x = sess_find(s, sid);

	if (!x || x->st != S_OPEN || x->out_eof)
		return 0;
	return SSHD_WINDOW - x->out_owed;
}

ssize_t
sshd_send_output(struct sshd *s, uint32_t sid, bool is_stderr,
		 const void *data, size_t len, struct error *err)
{
	struct sshd_msg m = { .type = is_stderr ? SSHD_M_STDERR
						: SSHD_M_STDOUT,
			      .id = sid };
	struct sess *x = want(s, sid, 1u << S_OPEN, "output", err);
	size_t room, done = 0;
	int r;

	if (!x)
		return -EINVAL;
	if (x->out_eof)
		return error_set(err, EINVAL, "ssh server: output after EOF");
	room = SSHD_WINDOW - x->out_owed;
	if (!room && len)
		return -EAGAIN;
	while (done < len && done < room) {
		m.data = (const uint8_t *)data + done;
		m.len = len - done;
		if (m.len > room - done)
			m.len = room - done;
		if (m.len > SSHD_DATA_MAX)
			m.len = SSHD_DATA_MAX;
		r = queue(s, &m, err);
		if (r < 0)
			return r;
		x->out_owed += m.len;
		done += m.len;
	}
	return done;
}

int
sshd_send_eof(struct sshd *s, uint32_t sid, struct error *err)
{
	struct sshd_msg m = { .type = SSHD_M_EOF, .id = sid };
	struct sess *x = want(s, sid, 1u << S_OPEN, "eof", err);

	if (!x)
		return -EINVAL;
	if (x->out_eof)
		return 0;
	x->out_eof = true;
	return queue(s, &m, err);
}

int
sshd_send_exit(struct sshd *s, uint32_t sid, bool signal, int value,
	       struct error *err)
{
	struct sshd_msg m = { .type = SSHD_M_EXIT, .id = sid };
	struct sess *x = want(s, sid, 1u << S_OPEN, "exit", err);

	if (!x)
		return -EINVAL;
	m.exit_kind = signal ? SSHD_EXIT_SIGNAL : SSHD_EXIT_STATUS;
	m.exit_value = value;
	if (queue(s, &m, err) < 0)
		return -EINVAL;
	x->st = S_ENDING;
	return 0;
}

int
sshd_send_close(struct sshd *s, uint32_t sid, const char *reason,
		struct error *err)
{
	char text[SSHD_TEXT_MAX + 1];
	struct sshd_msg m = { .type = SSHD_M_CLOSE, .id = sid, .text = text };
	struct sess *x = sess_find(s, sid);

	if (x && x->st == S_OPENING)
		return sshd_send_refused(s, sid, reason, err);
	if (!want(s, sid, 1u << S_OPEN, "close", err))
		return -EINVAL;
	clean_text(reason, text, sizeof(text));
	x->st = S_ENDING;
	return queue(s, &m, err);
}

int
sshd_stdin_done(struct sshd *s, uint32_t sid, size_t n, struct error *err)
{
	struct sshd_msg m = { .type = SSHD_M_ACK, .id = sid };
	struct sess *x = sess_find(s, sid);

	/* Input of a session that has ended since needs no window. */
	if (!x || x->st == S_KEYS)
		return 0;
	if (n == 0)
		return 0;
	if (n > x->in_owed)
		return error_set(err, EINVAL,
				 "ssh server: %zu stdin bytes done, %u owed",
				 n, (unsigned int)x->in_owed);
	x->in_owed -= n;
	m.ack = n;
	return queue(s, &m, err);
}

size_t
sshd_sessions(const struct sshd *s, uint32_t *ids, size_t max)
{
	size_t k = 0;

	for (size_t i = 0; i < s->nsess; i++) {
		if (s->sess[i].st == S_KEYS)
			continue;
		if (k < max)
			ids[k] = s->sess[i].id;
		k++;
	}
	return k;
}

/* ---- receiving ---------------------------------------------------------- */

static int
bad(const struct sshd_msg *m, const char *why, struct error *err)
{
	return error_set(err, EPROTO, "ssh server: %s for session %u: %s",
			 sshd_msg_name(m->type), (unsigned int)m->id, why);
}

/* A fresh id: larger than all before, room to track it. */
static struct sess *
new_sess(struct sshd *s, const struct sshd_msg *m, enum sess_state st,
	 struct error *err)
{
	struct sess *x;

	if (m->id <= s->last_id) {
		bad(m, "id reused", err);
		return NULL;
	}
	if (s->nsess >= s->max_ids) {
		bad(m, "more sessions than its limits allow", err);
		return NULL;
	}
	s->last_id = m->id;
	x = &s->sess[s->nsess++];
	memset(x, 0, sizeof(*x));
	x->id = m->id;
	x->st = st;
	return x;
}

static int
dispatch(struct sshd *s, const struct sshd_msg *m, struct error *err)
{
	const struct sshd_callbacks *cb = s->cb;
	struct sshd_open o;
	struct sess *x;

	if (m->type == SSHD_S_FAIL) {
		/* decode checked: printable ASCII, bounded */
		return error_set(err, EPERM, "ssh server: %s", m->text);
	}
	if (!s->ready) {
		/* Nothing counts before the sshd is confined. */
		if (m->type != SSHD_S_READY)
			return bad(m, "before ready", err);
		s->ready = true;
		return 0;
	}
	switch (m->type) {
	case SSHD_S_READY:
		return bad(m, "ready twice", err);
	case SSHD_S_LOG:
		if (cb->log)
			cb->log(s, m->text, s->opaque);
		return 0;
	case SSHD_S_KEYS_REQ:
		if (!new_sess(s, m, S_KEYS, err))
			return -EPROTO;
		if (cb->keys)
			cb->keys(s, m->id, m->build, s->opaque);
		return 0;
	case SSHD_S_OPEN:
		x = new_sess(s, m, S_OPENING, err);
		if (!x)
			return -EPROTO;
		x->has_pty = m->has_pty;
		o = (struct sshd_open){
			.sid = m->id, .build = m->build,
			.fingerprint = m->fingerprint, .peer = m->peer,
			.has_pty = m->has_pty, .term = m->term,
			.rows = m->rows, .cols = m->cols,
			.command = m->has_command ? m->command : NULL,
		};
		if (cb->open)
			cb->open(s, &o, s->opaque);
		return 0;
	default:
		break;
	}
	x = sess_find(s, m->id);
	if (!x || x->st == S_KEYS)
		return bad(m, "unknown session", err);
	/* Before OPENED (and after a refusal) a session has no data, no
	 * window and no size: only CLOSED. */
	if (m->type != SSHD_S_CLOSED &&
	    (x->st == S_OPENING || (x->st == S_ENDING && !x->was_open)))
		return bad(m, "before the session was opened", err);
	switch (m->type) {
	case SSHD_S_STDIN:
		/* Input only into a running session, within its window:
		 * the manager never buffers more than that per session. */
		if (x->st == S_OPENING || x->in_eof)
			return bad(m, "stdin out of turn", err);
		if (x->in_owed + m->len > SSHD_WINDOW)
			return bad(m, "stdin beyond the window", err);
		x->in_owed += m->len;
		if (x->st == S_ENDING) {
			/* Ended here already: the bytes go nowhere. */
			x->in_owed -= m->len;
			return 0;
		}
		if (cb->stdin_data)
			cb->stdin_data(s, m->id, m->data, m->len, s->opaque);
		return 0;
	case SSHD_S_EOF:
		if (x->st == S_OPENING || x->in_eof)
			return bad(m, "eof out of turn", err);
		x->in_eof = true;
		if (x->st == S_OPEN && cb->stdin_eof)
			cb->stdin_eof(s, m->id, s->opaque);
		return 0;
	case SSHD_S_WINCH:
		if (x->st == S_OPENING || !x->has_pty)
			return bad(m, "window change out of turn", err);
		if (x->st == S_OPEN && cb->winch)
			cb->winch(s, m->id, m->rows, m->cols, s->opaque);
		return 0;
	case SSHD_S_ACK:
		if (x->st == S_OPENING || m->ack > x->out_owed)
			return bad(m, "acknowledges more than was sent", err);
		x->out_owed -= m->ack;
		if (x->st == S_OPEN && cb->writable)
			cb->writable(s, m->id, s->opaque);
		return 0;
	case SSHD_S_CLOSED:
		sess_drop(s, x);
		if (cb->closed)
			cb->closed(s, m->id, m->text, s->opaque);
		return 0;
	default:
		return bad(m, "unexpected", err);
	}
}

int
sshd_feed(struct sshd *s, const uint8_t *frame, size_t len, struct error *err)
{
	struct sshd_msg m;

	if (sshd_msg_decode(SSHD_TO_MANAGER, frame, len, &m, err) < 0)
		return -EPROTO;
	return dispatch(s, &m, err);
}

/* One packet: 1 read, 0 nothing yet, < 0 EOF (-EPIPE) or bad packet. */
static int
recv_packet(int fd, uint8_t *buf, size_t cap, size_t *len)
{
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do {
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	/* A peer that exits with unread packets leaves a reset ahead of
	 * what it sent last (a FAIL): look once more. */
	if (n < 0 && errno == ECONNRESET) {
		do {
			n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && errno == EAGAIN)
			return -EPIPE;
	}
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return -EPIPE;
	if (n < 0)
		return -errno;
	/* Oversized packets and passed fds are protocol violations. */
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE;
	*len = n;
	return 1;
}

int
sshd_handle_io(struct sshd *s, struct error *err)
{
	static uint8_t pkt[SSHD_FRAME_MAX + 1];
	int r;

	/* Bounded per call, so that a chatty sshd cannot starve the rest
	 * of the manager's loop (the fd stays readable). */
	for (int i = 0; i < 256; i++) {
		size_t len = 0;

		r = recv_packet(s->fd, pkt, sizeof(pkt), &len);
		if (r == 0)
			break;
		if (r == -EPIPE && !s->ready) {
			error_set(err, EPIPE,
				  "ssh server: exited before it was ready");
			error_prefix(err, "starting %s", s->path);
			return -EPIPE;
		}
		if (r == -EPIPE)
			return error_set(err, EPIPE, "ssh server: exited");
		if (r < 0)
			return error_set(err, EPROTO,
					 "ssh server: oversized or bad packet");
		r = sshd_feed(s, pkt, len, err);
		if (r < 0 && !s->ready)
			error_prefix(err, "starting %s", s->path);
		if (r < 0)
			return r;
	}
	return flush(s, err);
}

void
sshd_stop(struct sshd *s)
{
	if (!s)
		return;
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (s->fd >= 0)
		close(s->fd);
	buf_free(&s->out);
	free(s->sess);
	free(s->path);
	free(s);
}
