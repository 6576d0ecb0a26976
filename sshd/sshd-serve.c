/* sshd-serve.c - the server of qctl-sshd: libssh (its message API) over
 * the inherited listening socket, one process, one loop.
 *
 * Per connection: key exchange, then publickey authentication only, the
 * user name being a build id; the keys allowed for that build come from
 * the manager (KEYS_REQ/KEYS) and the client's key is compared here,
 * libssh having checked its signature.  Then "session" channels only,
 * each with an optional pty and one exec or shell, which becomes a
 * session of the manager's (OPEN/OPENED); its data moves as frames, within
 * a window per direction (sshd-proto.h).  Everything else is refused.
 *
 * The message API (deprecated in libssh in favour of callbacks) is used
 * because it lets an authentication request wait for the manager's key
 * list; a callback must answer at once.
 */
#include "sshd-serve.h"

#include <arpa/inet.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* Frames to the manager queued past this: stop reading clients until it
 * catches up (the windows bound it anyway). */
#define CTL_BACKLOG_MAX (1u << 20)

enum item_kind {
	K_STDOUT = 1,
	K_STDERR,
	K_EOF,
	K_EXIT,
	K_CLOSE,
};

enum sess_state {
	SS_NEW,	    /* channel open; no exec or shell yet */
	SS_OPENING, /* OPEN sent, its request held */
	SS_OPEN,    /* running */
	SS_DONE,    /* over; freed by the sweep */
};

struct conn;

struct sess {
	struct sess *next;
	struct conn *c;
	ssh_channel ch;
	uint32_t sid; /* 0 until exec or shell */
	enum sess_state st;
	ssh_message held; /* the exec/shell request, until answered */
	int64_t open_deadline; /* for the manager's answer */
	bool has_pty;
	char term[SSHD_TERM_MAX + 1];
	uint32_t rows, cols;
	uint32_t in_owed;  /* stdin sent, not acknowledged */
	bool in_eof;	   /* EOF sent to the manager */
	uint32_t out_owed; /* output received, not yet written */
	struct buf outq;   /* items: u8 kind, u32 len, bytes */
	size_t head_done;  /* bytes of the head item already written */
	bool eof_sent;	   /* channel EOF sent to the client */
};

struct conn {
	struct conn *next;
	ssh_session ss;
	bool in_event;
	bool kex_done;
	bool authed;
	bool dead;
	char peer[SSHD_PEER_MAX + 1];
	char build[SSHD_BUILD_MAX + 1];
	char fpr[SSHD_FPR_MAX + 1];
	uint32_t keys_req; /* the outstanding request, 0 if none */
	bool keys_known;
	ssh_key keys[SSHD_KEYS_MAX];
	size_t nkeys;
	ssh_message held_auth; /* waiting for the key list */
	unsigned int fails;
	int64_t deadline; /* login grace; then, while no session is open,
			   * the same time again (0: none) */
	struct sess *sess;
	unsigned int nsess;
};

static struct {
	ssh_bind bind;
	ssh_event ev;
	struct conn *conns;
	unsigned int nconns;
	uint32_t max_conns, max_sessions, grace_ms, max_auth;
	uint32_t last_id;
	struct buf ctl_out;
	bool ctl_pollout;
	bool listen_ready, ctl_ready;
} srv;

static void __attribute__((noreturn)) die(int status)
{
	_exit(status);
}

/* ---- the control socket ------------------------------------------------- */

int
sshd_ctl_send_now(const struct sshd_msg *m)
{
	struct buf b = { 0 };
	ssize_t n;

	if (sshd_msg_encode(m, &b, NULL) < 0)
		return -EINVAL;
	do
		n = send(SSHD_FD_CTL, b.data, b.len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	buf_free(&b);
	return n < 0 ? -errno : 0;
}

static void
ctl_flush(void)
{
	size_t off = 0;

	while (srv.ctl_out.len - off >= SSHD_HDR_LEN) {
		const uint8_t *h = (const uint8_t *)srv.ctl_out.data + off;
		size_t len = (size_t)h[0] << 24 | h[1] << 16 | h[2] << 8 | h[3];
		ssize_t n;

		do
			n = send(SSHD_FD_CTL, h, len,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
		while (n < 0 && errno == EINTR);
		if (n < 0 && (errno == EAGAIN || errno == ENOBUFS))
			break;
		if (n < 0)
			die(0); /* the manager is gone */
		off += len;
	}
	buf_consume(&srv.ctl_out, off);
}

static void
ctl_send(const struct sshd_msg *m)
{
	/* Everything sent is built here from checked values: a frame the
	 * encoder refuses is a bug of ours, and the manager would stop us
	 * for it anyway. */
	if (sshd_msg_encode(m, &srv.ctl_out, NULL) < 0)
		die(1);
	ctl_flush();
}

/* Text for a log line or a reason: printable ASCII, bounded. */
static void
clean(char *out, size_t cap, const char *in)
{
	size_t k = 0;

	for (; in && in[k] && k < cap - 1; k++)
		out[k] = in[k] >= 0x20 && in[k] < 0x7f ? in[k] : '?';
	out[k] = '\0';
}

/* Log lines a second at most: anyone who can reach the port can make
 * them (a refused key, garbage), and the manager writes each to its log. */
#define LOG_PER_SEC 20

static void __attribute__((format(printf, 1, 2))) log_line(const char *fmt,
							   ...)
{
	static int64_t second;
	static unsigned int sent, dropped;
	char raw[SSHD_TEXT_MAX + 1], txt[SSHD_TEXT_MAX + 1];
	struct sshd_msg m = { .type = SSHD_S_LOG, .text = txt };
	int64_t now = now_ms() / 1000;
	va_list ap;

	if (now != second) {
		if (dropped) {
			snprintf(txt, sizeof(txt),
				 "ssh: %u log lines dropped (more than %d a "
				 "second)",
				 dropped, LOG_PER_SEC);
			ctl_send(&m);
		}
		second = now;
		sent = dropped = 0;
	}
	if (sent >= LOG_PER_SEC) {
		dropped++;
		return;
	}
	sent++;
	va_start(ap, fmt);
	vsnprintf(raw, sizeof(raw), fmt, ap);
	va_end(ap);
	clean(txt, sizeof(txt), raw);
	if (txt[0])
		ctl_send(&m);
}

static uint32_t
new_id(void)
{
	if (srv.last_id == UINT32_MAX)
		die(1); /* four billion sessions: start afresh */
	return ++srv.last_id;
}

static void
send_closed(struct sess *s, const char *reason)
{
	char txt[SSHD_TEXT_MAX + 1];
	struct sshd_msg m = { .type = SSHD_S_CLOSED, .id = s->sid,
			      .text = txt };

	if (!s->sid)
		return;
	clean(txt, sizeof(txt), reason);
	ctl_send(&m);
}

/* ---- sessions ----------------------------------------------------------- */

static struct sess *
sess_by_sid(uint32_t sid)
{
	for (struct conn *c = srv.conns; c; c = c->next)
		for (struct sess *s = c->sess; s; s = s->next)
			if (s->sid == sid && s->st != SS_DONE)
				return s;
	return NULL;
}

static struct sess *
sess_by_channel(struct conn *c, ssh_channel ch)
{
	for (struct sess *s = c->sess; s; s = s->next)
		if (s->ch == ch && s->st != SS_DONE)
			return s;
	return NULL;
}

/* The session is over here: tell the manager (once), free it later. */
static void
sess_end(struct sess *s, const char *reason)
{
	if (s->st == SS_DONE)
		return;
	if (s->held) {
		ssh_message_reply_default(s->held);
		ssh_message_free(s->held);
		s->held = NULL;
	}
	if (s->ch && !ssh_channel_is_closed(s->ch)) {
		if (!s->eof_sent)
			ssh_channel_send_eof(s->ch);
		ssh_channel_close(s->ch);
	}
	send_closed(s, reason);
	s->st = SS_DONE;
}

static void
sess_free(struct sess *s)
{
	if (s->held)
		ssh_message_free(s->held);
	if (s->ch)
		ssh_channel_free(s->ch);
	buf_free(&s->outq);
	free(s);
}

static void
item_push(struct sess *s, uint8_t kind, const void *data, uint32_t len)
{
	uint8_t h[5] = { kind, len >> 24, len >> 16, len >> 8, len };

	buf_append(&s->outq, h, 5);
	if (len)
		buf_append(&s->outq, data, len);
}

static const char *
signal_name(uint32_t sig)
{
	/* RFC 4254's names; any other signal goes as a status. */
	switch (sig) {
	case SIGABRT: return "ABRT";
	case SIGALRM: return "ALRM";
	case SIGFPE: return "FPE";
	case SIGHUP: return "HUP";
	case SIGILL: return "ILL";
	case SIGINT: return "INT";
	case SIGKILL: return "KILL";
	case SIGPIPE: return "PIPE";
	case SIGQUIT: return "QUIT";
	case SIGSEGV: return "SEGV";
	case SIGTERM: return "TERM";
	case SIGUSR1: return "USR1";
	case SIGUSR2: return "USR2";
	default: return NULL;
	}
}

/* Write what the manager sent, as far as the client's window allows;
 * what was written goes back to the manager as window (ACK). */
static void
sess_pump_out(struct sess *s)
{
	uint32_t written = 0;

	while (s->st == SS_OPEN && s->outq.len >= 5) {
		const uint8_t *h = (const uint8_t *)s->outq.data;
		uint32_t len = (uint32_t)h[1] << 24 | h[2] << 16 | h[3] << 8 |
			       h[4];
		const uint8_t *d = h + 5;
		char line[SSHD_TEXT_MAX + 16];
		const char *name;
		int r;

		if (h[0] == K_STDOUT || h[0] == K_STDERR) {
			uint32_t w = ssh_channel_window_size(s->ch);
			uint32_t n = len - s->head_done;

			if (n > w)
				n = w;
			if (!n)
				break;
			r = h[0] == K_STDOUT
				    ? ssh_channel_write(s->ch,
							d + s->head_done, n)
				    : ssh_channel_write_stderr(
					      s->ch, d + s->head_done, n);
			if (r < 0) {
				sess_end(s, "writing to the client failed");
				break;
			}
			s->head_done += r;
			written += r;
			if (s->head_done < len)
				break;
		} else if (h[0] == K_EOF) {
			if (!s->eof_sent)
				ssh_channel_send_eof(s->ch);
			s->eof_sent = true;
		} else if (h[0] == K_EXIT) {
			uint32_t v = (uint32_t)d[1] << 24 | d[2] << 16 |
				     d[3] << 8 | d[4];

			name = d[0] == SSHD_EXIT_SIGNAL ? signal_name(v) : NULL;
			if (name)
				ssh_channel_request_send_exit_signal(s->ch, name,
								     0, "", "");
			else
				ssh_channel_request_send_exit_status(
					s->ch, d[0] == SSHD_EXIT_SIGNAL
						       ? 128 + (int)v
						       : (int)v);
			sess_end(s, "exited");
			break;
		} else if (h[0] == K_CLOSE) {
			/* The manager's reason (hold expired, build
			 * cancelled) on the client's stderr, then a
			 * failure status. */
			snprintf(line, sizeof(line), "qctl: %.*s\r\n",
				 (int)len, (const char *)d);
			ssh_channel_write_stderr(s->ch, line, strlen(line));
			ssh_channel_request_send_exit_status(s->ch, 255);
			snprintf(line, sizeof(line), "%.*s", (int)len,
				 (const char *)d);
			sess_end(s, line);
			break;
		}
		buf_consume(&s->outq, 5 + len);
		s->head_done = 0;
	}
	s->out_owed -= written;
	/* After CLOSED the manager has forgotten the id: nothing more
	 * about it (its window died with it). */
	if (written && s->st != SS_DONE) {
		struct sshd_msg m = { .type = SSHD_S_ACK, .id = s->sid,
				      .ack = written };

		ctl_send(&m);
	}
}

/* Read the client's input into STDIN frames, within the window. */
static void
sess_pump_in(struct sess *s)
{
	static uint8_t buf[SSHD_DATA_MAX];

	while (s->st == SS_OPEN && !s->in_eof && s->in_owed < SSHD_WINDOW &&
	       srv.ctl_out.len < CTL_BACKLOG_MAX) {
		uint32_t want = SSHD_WINDOW - s->in_owed;
		int r;

		if (want > sizeof(buf))
			want = sizeof(buf);
		r = ssh_channel_read_nonblocking(s->ch, buf, want, 0);
		if (r > 0) {
			struct sshd_msg m = { .type = SSHD_S_STDIN,
					      .id = s->sid, .data = buf,
					      .len = r };

			s->in_owed += r;
			ctl_send(&m);
			continue;
		}
		if (r == SSH_EOF) {
			struct sshd_msg m = { .type = SSHD_S_EOF,
					      .id = s->sid };

			s->in_eof = true;
			ctl_send(&m);
		}
		break;
	}
	/* What it sent before is read (as far as the window goes). */
	if (s->st != SS_DONE && s->ch && ssh_channel_is_closed(s->ch))
		sess_end(s, "the client closed the channel");
}

/* ---- authentication ----------------------------------------------------- */

static void
key_fpr(ssh_key key, char *out, size_t cap)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *f;

	snprintf(out, cap, "SHA256:?");
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
				   &hlen) < 0)
		return;
	f = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	ssh_clean_pubkey_hash(&hash);
	if (f && strlen(f) < cap)
		snprintf(out, cap, "%s", f);
	ssh_string_free_char(f);
}

static void
conn_kill(struct conn *c, const char *why)
{
	if (c->dead)
		return;
	log_line("ssh: %s%s%s: closing: %s", c->peer, c->build[0] ? " as " : "",
		 c->build, why);
	c->dead = true;
}

/* An attempt that failed: publickey only, and too many end it. */
static void
auth_refuse(struct conn *c, ssh_message m, const char *why)
{
	c->fails++;
	log_line("ssh: %s: authentication refused%s%s: %s", c->peer,
		 c->build[0] ? " for " : "", c->build, why);
	ssh_message_auth_set_methods(m, SSH_AUTH_METHOD_PUBLICKEY);
	ssh_message_reply_default(m);
	ssh_message_free(m);
	if (c->fails >= srv.max_auth)
		conn_kill(c, "too many authentication failures");
}

static void
auth_decide(struct conn *c, ssh_message m)
{
	ssh_key key = ssh_message_auth_pubkey(m);
	enum ssh_publickey_state_e state = ssh_message_auth_publickey_state(m);
	char fpr[SSHD_FPR_MAX + 1], why[SSHD_FPR_MAX + 32];
	bool match = false;

	if (!key)
		return auth_refuse(c, m, "no key");
	key_fpr(key, fpr, sizeof(fpr));
	/* The manager's list: the operator's keys and the build's own; an
	 * empty list for a build that does not exist or is not held, so
	 * that a client learns nothing about which builds exist. */
	for (size_t i = 0; i < c->nkeys && !match; i++)
		match = ssh_key_cmp(c->keys[i], key, SSH_KEY_CMP_PUBLIC) == 0;
	if (!match) {
		snprintf(why, sizeof(why), "key %s not allowed", fpr);
		return auth_refuse(c, m, why);
	}
	if (state == SSH_PUBLICKEY_STATE_NONE) {
		/* A probe: yes, this key would do; a signature follows. */
		ssh_message_auth_reply_pk_ok_simple(m);
		ssh_message_free(m);
		return;
	}
	if (state != SSH_PUBLICKEY_STATE_VALID) {
		snprintf(why, sizeof(why), "bad signature by key %s", fpr);
		return auth_refuse(c, m, why);
	}
	/* libssh verified the signature over this session's id. */
	snprintf(c->fpr, sizeof(c->fpr), "%s", fpr);
	c->authed = true;
	c->deadline = 0;
	ssh_message_auth_reply_success(m, 0);
	ssh_message_free(m);
}

static void
auth_handle(struct conn *c, ssh_message m)
{
	int sub = ssh_message_subtype(m);
	const char *user = ssh_message_auth_user(m);

	if (c->authed) {
		ssh_message_reply_default(m);
		ssh_message_free(m);
		return;
	}
	if (sub != SSH_AUTH_METHOD_PUBLICKEY) {
		/* "none" is how a client asks for the methods: not an
		 * attempt.  Passwords and keyboard-interactive are. */
		if (sub != SSH_AUTH_METHOD_NONE)
			return auth_refuse(c, m, "publickey only");
		ssh_message_auth_set_methods(m, SSH_AUTH_METHOD_PUBLICKEY);
		ssh_message_reply_default(m);
		ssh_message_free(m);
		return;
	}
	/* One request at a time; a client that pipelines gets refusals. */
	if (c->held_auth)
		return auth_refuse(c, m, "a request is pending");
	if (!user || !sshd_build_ok(user))
		return auth_refuse(c, m, "user name is not a build id");
	if (c->build[0] && strcmp(c->build, user))
		return auth_refuse(c, m, "another user name");
	if (!c->build[0]) {
		struct sshd_msg q = { .type = SSHD_S_KEYS_REQ };

		snprintf(c->build, sizeof(c->build), "%s", user);
		c->keys_req = q.id = new_id();
		q.build = c->build;
		ctl_send(&q);
	}
	if (!c->keys_known) {
		c->held_auth = m;
		return;
	}
	auth_decide(c, m);
}

/* The manager's answer to a key request. */
static void
keys_arrived(const struct sshd_msg *m)
{
	struct conn *c = srv.conns;
	ssh_message held;

	while (c && (c->dead || c->keys_req != m->id))
		c = c->next;
	if (!c)
		return; /* the connection went away meanwhile */
	c->keys_req = 0;
	c->keys_known = true;
	for (uint32_t i = 0; i < m->nkeys; i++) {
		char line[SSHD_KEY_MAX + 1], *save = NULL, *type, *b64;
		enum ssh_keytypes_e t;
		ssh_key k = NULL;

		/* "TYPE BASE64 [COMMENT]"; a line with authorized_keys
		 * options is not used (their restrictions would be
		 * ignored here). */
		snprintf(line, sizeof(line), "%s", m->keys[i]);
		type = strtok_r(line, " \t", &save);
		b64 = type ? strtok_r(NULL, " \t", &save) : NULL;
		t = type ? ssh_key_type_from_name(type) : SSH_KEYTYPE_UNKNOWN;
		if (!b64 || t == SSH_KEYTYPE_UNKNOWN ||
		    ssh_pki_import_pubkey_base64(b64, t, &k) != SSH_OK) {
			log_line("ssh: key %u for build %s: not a public key "
				 "line TYPE BASE64 [COMMENT]; not used",
				 (unsigned int)i + 1, c->build);
			continue;
		}
		c->keys[c->nkeys++] = k;
	}
	held = c->held_auth;
	c->held_auth = NULL;
	if (held)
		auth_decide(c, held);
}

/* ---- channels ----------------------------------------------------------- */

static void
refuse(ssh_message m)
{
	ssh_message_reply_default(m);
	ssh_message_free(m);
}

static void
channel_open(struct conn *c, ssh_message m)
{
	struct sess *s;
	ssh_channel ch;

	if (!c->authed)
		return refuse(m);
	if (ssh_message_subtype(m) != SSH_CHANNEL_SESSION) {
		/* direct-tcpip (ssh -L, -W), x11, forwarded-tcpip: no
		 * forwarding of any kind into or out of a build. */
		log_line("ssh: %s as %s: channel type %d refused", c->peer,
			 c->build, ssh_message_subtype(m));
		return refuse(m);
	}
	if (c->nsess >= srv.max_sessions) {
		log_line("ssh: %s as %s: more than %u sessions refused",
			 c->peer, c->build, (unsigned int)srv.max_sessions);
		return refuse(m);
	}
	ch = ssh_message_channel_request_open_reply_accept(m);
	ssh_message_free(m);
	if (!ch)
		return;
	s = xcalloc(1, sizeof(*s));
	s->c = c;
	s->ch = ch;
	s->next = c->sess;
	c->sess = s;
	c->nsess++;
}

static uint32_t
dim(int v)
{
	return v < 0 ? 0 : v > SSHD_PTY_DIM_MAX ? SSHD_PTY_DIM_MAX : v;
}

static bool
term_ok(const char *t)
{
	size_t n = strlen(t);

	if (n > SSHD_TERM_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = t[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("._+-", ch)))
			return false;
	}
	return true;
}

static void
session_start(struct conn *c, struct sess *s, ssh_message m, const char *cmd)
{
	struct sshd_msg o = { .type = SSHD_S_OPEN };

	if (cmd && strlen(cmd) > SSHD_COMMAND_MAX) {
		log_line("ssh: %s as %s: command longer than %d bytes",
			 c->peer, c->build, SSHD_COMMAND_MAX);
		return refuse(m);
	}
	s->sid = o.id = new_id();
	o.build = c->build;
	o.fingerprint = c->fpr;
	o.peer = c->peer;
	o.has_pty = s->has_pty;
	o.term = s->term;
	o.rows = s->rows;
	o.cols = s->cols;
	o.has_command = cmd != NULL;
	o.command = cmd ? cmd : "";
	s->held = m;
	s->st = SS_OPENING;
	s->open_deadline = now_ms() + srv.grace_ms;
	ctl_send(&o);
}

static void
channel_request(struct conn *c, ssh_message m)
{
	struct sess *s = sess_by_channel(c, ssh_message_channel_request_channel(m));
	const char *t;

	if (!s)
		return refuse(m);
	switch (ssh_message_subtype(m)) {
	case SSH_CHANNEL_REQUEST_PTY:
		t = ssh_message_channel_request_pty_term(m);
		if (s->st != SS_NEW || s->has_pty || !t || !term_ok(t))
			return refuse(m);
		snprintf(s->term, sizeof(s->term), "%s", t);
		s->rows = dim(ssh_message_channel_request_pty_height(m));
		s->cols = dim(ssh_message_channel_request_pty_width(m));
		s->has_pty = true;
		ssh_message_channel_request_reply_success(m);
		ssh_message_free(m);
		return;
	case SSH_CHANNEL_REQUEST_EXEC:
	case SSH_CHANNEL_REQUEST_SHELL:
		if (s->st != SS_NEW)
			return refuse(m);
		return session_start(
			c, s, m,
			ssh_message_subtype(m) == SSH_CHANNEL_REQUEST_EXEC
				? ssh_message_channel_request_command(m)
						? ssh_message_channel_request_command(m)
						: ""
				: NULL);
	case SSH_CHANNEL_REQUEST_WINDOW_CHANGE:
		if (s->has_pty) {
			s->rows = dim(ssh_message_channel_request_pty_height(m));
			s->cols = dim(ssh_message_channel_request_pty_width(m));
			if (s->st == SS_OPEN) {
				struct sshd_msg w = { .type = SSHD_S_WINCH,
						      .id = s->sid,
						      .rows = s->rows,
						      .cols = s->cols };

				ctl_send(&w);
			}
		}
		ssh_message_channel_request_reply_success(m);
		ssh_message_free(m);
		return;
	case SSH_CHANNEL_REQUEST_ENV:
		/* The build's environment is the recipe's. */
		return refuse(m);
	case SSH_CHANNEL_REQUEST_SUBSYSTEM:
		log_line("ssh: %s as %s: subsystem %.40s refused", c->peer,
			 c->build,
			 ssh_message_channel_request_subsystem(m)
				 ? ssh_message_channel_request_subsystem(m)
				 : "?");
		return refuse(m);
	case SSH_CHANNEL_REQUEST_X11:
		log_line("ssh: %s as %s: X11 forwarding refused", c->peer,
			 c->build);
		return refuse(m);
	default:
		return refuse(m);
	}
}

/* Everything libssh queued for this connection. */
static void
conn_messages(struct conn *c)
{
	ssh_message m;

	while (!c->dead && (m = ssh_message_get(c->ss))) {
		switch (ssh_message_type(m)) {
		case SSH_REQUEST_SERVICE:
			refuse(m); /* the default accepts ssh-userauth */
			break;
		case SSH_REQUEST_AUTH:
			auth_handle(c, m);
			break;
		case SSH_REQUEST_CHANNEL_OPEN:
			channel_open(c, m);
			break;
		case SSH_REQUEST_CHANNEL:
			channel_request(c, m);
			break;
		case SSH_REQUEST_GLOBAL:
			/* tcpip-forward (ssh -R) and the like */
			if (ssh_message_subtype(m) ==
			    SSH_GLOBAL_REQUEST_TCPIP_FORWARD)
				log_line("ssh: %s as %s: remote forwarding "
					 "refused",
					 c->peer, c->build);
			refuse(m);
			break;
		default:
			refuse(m);
			break;
		}
	}
}

/* ---- connections -------------------------------------------------------- */

static void
conn_free(struct conn *c)
{
	struct sess *s, *n;

	for (s = c->sess; s; s = n) {
		n = s->next;
		sess_end(s, "the connection ended");
		sess_free(s);
	}
	if (c->held_auth)
		ssh_message_free(c->held_auth);
	for (size_t i = 0; i < c->nkeys; i++)
		ssh_key_free(c->keys[i]);
	if (c->in_event)
		ssh_event_remove_session(srv.ev, c->ss);
	ssh_silent_disconnect(c->ss);
	ssh_free(c->ss); /* closes the socket */
	free(c);
}

static void
peer_name(int fd, char *out, size_t cap)
{
	struct sockaddr_storage sa;
	socklen_t sl = sizeof(sa);
	char a[INET6_ADDRSTRLEN] = "?";
	int port = 0;

	if (getpeername(fd, (struct sockaddr *)&sa, &sl) == 0) {
		if (sa.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&sa;

			inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
			port = ntohs(in->sin_port);
		} else if (sa.ss_family == AF_INET6) {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&sa;

			inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
			port = ntohs(in6->sin6_port);
		}
	}
	snprintf(out, cap, "%s port %d", a, port);
}

static void
accept_clients(void)
{
	for (;;) {
		int fd = accept4(SSHD_FD_LISTEN, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct conn *c;
		char peer[SSHD_PEER_MAX + 1];

		if (fd < 0)
			return; /* EAGAIN, or a client gone already */
		peer_name(fd, peer, sizeof(peer));
		if (srv.nconns >= srv.max_conns) {
			/* Before any ssh byte: a flood of connections costs
			 * an accept and a close each. */
			log_line("ssh: %s: refused: %u connections already",
				 peer, (unsigned int)srv.nconns);
			close(fd);
			continue;
		}
		c = xcalloc(1, sizeof(*c));
		snprintf(c->peer, sizeof(c->peer), "%s", peer);
		c->ss = ssh_new();
		if (!c->ss) {
			close(fd);
			free(c);
			continue;
		}
		if (ssh_bind_accept_fd(srv.bind, c->ss, fd) != SSH_OK) {
			log_line("ssh: %s: %s", peer, ssh_get_error(srv.bind));
			ssh_free(c->ss);
			close(fd);
			free(c);
			continue;
		}
		ssh_set_blocking(c->ss, 0);
		ssh_set_auth_methods(c->ss, SSH_AUTH_METHOD_PUBLICKEY);
		c->deadline = now_ms() + srv.grace_ms;
		c->next = srv.conns;
		srv.conns = c;
		srv.nconns++;
	}
}

/* One connection's turn: key exchange, messages, data both ways. */
static void
conn_step(struct conn *c)
{
	int r;

	if (c->dead)
		return;
	if (c->deadline && now_ms() >= c->deadline)
		return conn_kill(c, c->authed
					    ? "no session within the grace time"
					    : "not authenticated within the "
					      "login grace time");
	if (!c->kex_done) {
		r = ssh_handle_key_exchange(c->ss);
		/* The first call made libssh's poll handle for the socket:
		 * from now on the shared loop watches it. */
		if (!c->in_event && r != SSH_ERROR &&
		    ssh_event_add_session(srv.ev, c->ss) == SSH_OK)
			c->in_event = true;
		if (r == SSH_ERROR)
			return conn_kill(c, "key exchange failed");
		if (r != SSH_OK)
			return;
		c->kex_done = true;
	}
	conn_messages(c);
	for (struct sess *s = c->sess; s && !c->dead; s = s->next) {
		/* A manager that never answers an open must not hold the
		 * client's request (and a session place) for ever. */
		if (s->st == SS_OPENING && now_ms() >= s->open_deadline)
			sess_end(s, "no answer from the manager");
		sess_pump_out(s);
		sess_pump_in(s);
	}
	/* Connections are few (max_conns): one that holds no session
	 * (an idle -N, a forgotten master) gives its place back. */
	if (c->authed && c->nsess)
		c->deadline = 0;
	else if (c->authed && !c->deadline)
		c->deadline = now_ms() + srv.grace_ms;
	if (!ssh_is_connected(c->ss) ||
	    (ssh_get_status(c->ss) & (SSH_CLOSED | SSH_CLOSED_ERROR)))
		c->dead = true;
}

static void
sweep(void)
{
	struct conn **pc = &srv.conns;

	while (*pc) {
		struct conn *c = *pc;
		struct sess **ps = &c->sess;

		if (c->dead) {
			*pc = c->next;
			srv.nconns--;
			conn_free(c);
			continue;
		}
		while (*ps) {
			struct sess *s = *ps;

			if (s->st == SS_DONE) {
				*ps = s->next;
				c->nsess--;
				sess_free(s);
				continue;
			}
			ps = &s->next;
		}
		pc = &c->next;
	}
}

/* ---- frames from the manager -------------------------------------------- */

static void
ctl_frame(const struct sshd_msg *m)
{
	struct sess *s;

	if (m->type == SSHD_M_CONFIG)
		die(1); /* once, before the exec */
	if (m->type == SSHD_M_KEYS)
		return keys_arrived(m);
	/* Everything else is about a session; one that ended here since
	 * is no error (the manager sent before it heard). */
	s = sess_by_sid(m->id);
	if (!s)
		return;
	switch (m->type) {
	case SSHD_M_OPENED:
		if (s->st != SS_OPENING)
			die(1);
		ssh_message_channel_request_reply_success(s->held);
		ssh_message_free(s->held);
		s->held = NULL;
		s->st = SS_OPEN;
		return;
	case SSHD_M_REFUSED:
		if (s->st != SS_OPENING)
			die(1);
		if (m->text[0]) {
			char line[SSHD_TEXT_MAX + 16];

			snprintf(line, sizeof(line), "qctl: %s\r\n", m->text);
			ssh_channel_write_stderr(s->ch, line, strlen(line));
		}
		return sess_end(s, "refused");
	case SSHD_M_STDOUT:
	case SSHD_M_STDERR:
		/* The manager keeps to the window, as we do. */
		if (s->st != SS_OPEN || s->out_owed + m->len > SSHD_WINDOW)
			die(1);
		s->out_owed += m->len;
		item_push(s, m->type == SSHD_M_STDOUT ? K_STDOUT : K_STDERR,
			  m->data, m->len);
		return;
	case SSHD_M_EOF:
		item_push(s, K_EOF, NULL, 0);
		return;
	case SSHD_M_EXIT: {
		uint8_t e[5] = { m->exit_kind, m->exit_value >> 24,
				 m->exit_value >> 16, m->exit_value >> 8,
				 m->exit_value };

		item_push(s, K_EXIT, e, 5);
		return;
	}
	case SSHD_M_CLOSE:
		if (s->st == SS_OPENING)
			return sess_end(s, m->text);
		/* A close does not wait behind output that a client may
		 * never read: the hold is over now. */
		buf_consume(&s->outq, s->outq.len);
		s->head_done = 0;
		s->out_owed = 0;
		item_push(s, K_CLOSE, m->text, strlen(m->text));
		return;
	case SSHD_M_ACK:
		if (m->ack > s->in_owed)
			die(1);
		s->in_owed -= m->ack;
		return;
	default:
		die(1);
	}
}

static void
ctl_read(void)
{
	static uint8_t pkt[SSHD_FRAME_MAX + 1];

	for (int i = 0; i < 256; i++) {
		struct iovec iov = { pkt, sizeof(pkt) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct sshd_msg m;
		ssize_t n;

		do
			n = recvmsg(SSHD_FD_CTL, &mh, MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
		if (n < 0 && errno == EAGAIN)
			return;
		/* The manager went away: so do we, and every session. */
		if (n <= 0)
			die(0);
		/* A frame we cannot take whole, or passed fds: the
		 * manager is broken; stop rather than guess. */
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC) ||
		    sshd_msg_decode(SSHD_TO_SSHD, pkt, n, &m, NULL) < 0)
			die(1);
		ctl_frame(&m);
	}
}

/* ---- the loop ----------------------------------------------------------- */

static int
on_listen(socket_t fd, int revents, void *u)
{
	(void)fd;
	(void)revents;
	(void)u;
	srv.listen_ready = true;
	return 0;
}

static int
on_ctl(socket_t fd, int revents, void *u)
{
	(void)fd;
	(void)u;
	/* Only flags here: libssh calls this from inside whatever it is
	 * polling for (a read of one session), not only from our loop. */
	(void)revents;
	srv.ctl_ready = true;
	return 0;
}

static void
ctl_watch(bool pollout)
{
	if (pollout == srv.ctl_pollout)
		return;
	ssh_event_remove_fd(srv.ev, SSHD_FD_CTL);
	ssh_event_add_fd(srv.ev, SSHD_FD_CTL,
			 POLLIN | (pollout ? POLLOUT : 0), on_ctl, NULL);
	srv.ctl_pollout = pollout;
}

int
sshd_serve_prepare(const struct sshd_msg *conf, struct error *err)
{
	int verbosity = SSH_LOG_NOLOG, no = 0;

	srv.max_conns = conf->max_conns;
	srv.max_sessions = conf->max_sessions;
	srv.grace_ms = conf->grace_ms;
	srv.max_auth = conf->max_auth;
	if (ssh_init() != SSH_OK)
		return error_set(err, EINVAL, "ssh_init failed");
	srv.bind = ssh_bind_new();
	if (!srv.bind)
		return error_set(err, ENOMEM, "ssh_bind_new");
	/* No configuration file: everything is the manager's to say, and
	 * the filter forbids opening files later. */
	ssh_bind_options_set(srv.bind, SSH_BIND_OPTIONS_PROCESS_CONFIG, &no);
	ssh_bind_options_set(srv.bind, SSH_BIND_OPTIONS_LOG_VERBOSITY,
			     &verbosity);
	for (uint32_t i = 0; i < conf->nhostkeys; i++) {
		ssh_key k = NULL;

		if (ssh_pki_import_privkey_base64(conf->hostkeys[i], NULL,
						  NULL, NULL, &k) != SSH_OK)
			return error_set(err, EINVAL,
					 "host key %u: not a private key "
					 "libssh can read (unencrypted "
					 "OpenSSH or PEM)",
					 (unsigned int)i + 1);
		/* The bind owns the key from here. */
		if (ssh_bind_options_set(srv.bind, SSH_BIND_OPTIONS_IMPORT_KEY,
					 k) != SSH_OK) {
			ssh_key_free(k);
			return error_set(err, EINVAL,
					 "host key %u: %s: type not usable",
					 (unsigned int)i + 1,
					 ssh_get_error(srv.bind));
		}
	}
	srv.ev = ssh_event_new();
	if (!srv.ev ||
	    ssh_event_add_fd(srv.ev, SSHD_FD_LISTEN, POLLIN, on_listen,
			     NULL) != SSH_OK ||
	    ssh_event_add_fd(srv.ev, SSHD_FD_CTL, POLLIN, on_ctl, NULL) !=
		    SSH_OK)
		return error_set(err, ENOMEM, "ssh_event");
	return 0;
}

void
sshd_serve(void)
{
	struct sshd_msg ready = { .type = SSHD_S_READY };

	ctl_send(&ready);
	for (;;) {
		int64_t now = now_ms(), wait = 1000;

		for (struct conn *c = srv.conns; c; c = c->next)
			if (c->deadline && c->deadline - now < wait)
				wait = c->deadline > now ? c->deadline - now
							 : 0;
		ssh_event_dopoll(srv.ev, (int)wait);
		if (srv.ctl_ready) {
			srv.ctl_ready = false;
			ctl_read();
		}
		if (srv.listen_ready) {
			srv.listen_ready = false;
			accept_clients();
		}
		for (struct conn *c = srv.conns; c; c = c->next)
			conn_step(c);
		sweep();
		ctl_flush();
		ctl_watch(srv.ctl_out.len > 0);
	}
}
