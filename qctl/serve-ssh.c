/*
 * serve-ssh.c - ssh into held builds, the manager's half.
 *
 * `qctl serve --ssh ADDR:PORT` starts qctl-sshd (sshd.h): its own
 * unprivileged, seccomp-confined program holding the listening socket.
 * It alone speaks ssh; this file only answers its frames:
 *
 *  - keys: the public keys that may log in as a build id, i.e. the
 *    operator's (--ssh-authorized-keys) and the recipe's ssh_keys, while
 *    that build is held; none otherwise (an unknown, running or finished
 *    build looks the same as a wrong key);
 *  - open: a shell or command in the held build (build_shell_open), its
 *    output relayed within the client's window, its input within ours;
 *  - the end of a session on either side.
 *
 * A session ends when its shell exits, when its client leaves, and when
 * the hold does (it expired, build-cancel, a limit): the client is told
 * why.  Every session is logged with its key's fingerprint and address.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include "serve-int.h"
#include "sshd.h"

/* Output a slow client has not taken yet, beyond which its session ends
 * (the guest's output is not paced by one client). */
#define SSH_PENDING_MAX (8u << 20)

struct ssh_session {
	struct ssh_session *next;
	struct serve_ssh *ss;
	uint32_t sid;		/* the sshd's id */
	char build[24];
	unsigned shell;		/* the build's session id */
	bool live;		/* the build's session has not ended */
	struct buf pending[2];	/* stdout, stderr the window had no room for */
	bool exit_pending;	/* after the pending output: exit */
	bool exit_signal;
	int exit_value;
	char who[160];
};

struct serve_ssh {
	struct serve *s;
	struct sshd *d;
	struct loop_watch *w;
	struct loop_timer *t_ready;
	struct ssh_session *sessions;
};

static struct ssh_session *
session_find(struct serve_ssh *ss, uint32_t sid)
{
	for (struct ssh_session *x = ss->sessions; x; x = x->next)
		if (x->sid == sid)
			return x;
	return NULL;
}

static void
session_free(struct serve_ssh *ss, struct ssh_session *x)
{
	struct ssh_session **pp;

	for (pp = &ss->sessions; *pp; pp = &(*pp)->next)
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	buf_free(&x->pending[0]);
	buf_free(&x->pending[1]);
	free(x);
}

/* The engine's build of a held build of that id, else NULL. */
static struct build *
held_build(struct serve *s, const char *id)
{
	struct sbuild *sb = sb_find(s, id, NULL);

	if (!sb || sb->state != SB_RUNNING || !sb->b || !s->be->held ||
	    !s->be->held(sb->b))
		return NULL;
	return sb->b;
}

static void
update_watch(struct serve_ssh *ss)
{
	if (ss->w && ss->d)
		loop_watch_set(ss->w, sshd_events(ss->d));
}

/* Send what the client's window takes; then the exit, if it is due. */
static void
flush(struct ssh_session *x)
{
	struct serve_ssh *ss = x->ss;
	struct error err = { 0 };

	for (int k = 0; k < 2; k++) {
		struct buf *b = &x->pending[k];

		while (b->len) {
			ssize_t n = sshd_send_output(ss->d, x->sid, k == 1,
						     b->data, b->len, &err);

			if (n <= 0)
				return;	/* no room: on writable */
			memmove(b->data, b->data + n, b->len - (size_t)n);
			b->len -= (size_t)n;
		}
	}
	if (x->exit_pending) {
		x->exit_pending = false;
		sshd_send_eof(ss->d, x->sid, NULL);
		sshd_send_exit(ss->d, x->sid, x->exit_signal, x->exit_value,
			       NULL);
	}
	update_watch(ss);
}

/* ---- the build's session (build_shell_ops) ----------------------------- */

static void
shell_output(void *opaque, int stream, const void *p, size_t n)
{
	struct ssh_session *x = opaque;
	struct serve_ssh *ss = x->ss;
	struct buf *b = &x->pending[stream == 2];

	buf_append(b, p, n);
	if (x->pending[0].len + x->pending[1].len > SSH_PENDING_MAX) {
		struct build *bd = held_build(ss->s, x->build);

		serve_log(ss->s, "%s: ssh session %u: the client reads too "
			  "slowly; ended", x->build, x->sid);
		buf_free(&x->pending[0]);
		buf_free(&x->pending[1]);
		if (bd && x->live)
			ss->s->be->shell_close(bd, x->shell);
		x->live = false;
		sshd_send_close(ss->d, x->sid, "the client read too slowly",
				NULL);
		update_watch(ss);
		return;
	}
	flush(x);
}

static void
shell_ended(void *opaque, int code, int sig, const char *why)
{
	struct ssh_session *x = opaque;
	struct serve_ssh *ss = x->ss;

	x->live = false;
	if (why) {
		struct error err = { 0 };

		serve_log(ss->s, "%s: ssh session %u (%s) ended: %s", x->build,
			  x->sid, x->who, why);
		if (sshd_send_close(ss->d, x->sid, why, &err) < 0)
			serve_log(ss->s, "ssh: %s", err.msg);
		update_watch(ss);
		return;
	}
	serve_log(ss->s, "%s: ssh session %u (%s) ended: %s %d", x->build,
		  x->sid, x->who, sig ? "signal" : "exit", sig ? sig : code);
	x->exit_pending = true;
	x->exit_signal = sig != 0;
	x->exit_value = sig ? sig : code & 0xff;
	flush(x);
}

static const struct build_shell_ops shell_ops = {
	.output = shell_output,
	.ended = shell_ended,
};

/* ---- what the sshd asks (sshd_callbacks) ------------------------------- */

static void
on_keys(struct sshd *d, uint32_t req, const char *build, void *opaque)
{
	struct serve_ssh *ss = opaque;
	struct serve *s = ss->s;
	struct sbuild *sb = sb_find(s, build, NULL);
	const char **keys = NULL;
	size_t n = 0;
	struct error err = { 0 };

	if (held_build(s, build)) {
		keys = xcalloc(s->o.ssh.n_keys + sb->recipe->n_ssh_keys + 1,
			       sizeof(*keys));
		for (size_t i = 0; i < s->o.ssh.n_keys; i++)
			keys[n++] = s->o.ssh.keys[i];
		for (size_t i = 0; i < sb->recipe->n_ssh_keys; i++)
			keys[n++] = sb->recipe->ssh_keys[i];
	}
	if (sshd_send_keys(d, req, keys, n, &err) < 0)
		serve_log(s, "ssh: %s", err.msg);
	free(keys);
	update_watch(ss);
}

static void
on_open(struct sshd *d, const struct sshd_open *o, void *opaque)
{
	struct serve_ssh *ss = opaque;
	struct serve *s = ss->s;
	struct build *b = held_build(s, o->build);
	struct build_shell_req req = {
		.command = o->command,
		.pty = o->has_pty,
		.term = o->term,
		.rows = o->rows,
		.cols = o->cols,
	};
	struct ssh_session *x;
	struct error err = { 0 };

	if (!b) {
		serve_log(s, "%s: ssh session refused (%s from %s): the build "
			  "is not held", o->build, o->fingerprint, o->peer);
		sshd_send_refused(d, o->sid, "the build is not held (any "
				  "more)", NULL);
		update_watch(ss);
		return;
	}
	x = xcalloc(1, sizeof(*x));
	x->ss = ss;
	x->sid = o->sid;
	snprintf(x->build, sizeof(x->build), "%s", o->build);
	snprintf(x->who, sizeof(x->who), "%s from %s", o->fingerprint,
		 o->peer);
	req.who = x->who;
	if (s->be->shell_open(b, &req, &shell_ops, x, &x->shell, &err) < 0) {
		serve_log(s, "%s: ssh session refused (%s): %s", o->build,
			  x->who, err.msg);
		sshd_send_refused(d, o->sid, err.msg, NULL);
		free(x);
		update_watch(ss);
		return;
	}
	x->live = true;
	x->next = ss->sessions;
	ss->sessions = x;
	serve_log(s, "%s: ssh session %u opened by %s: %s%s", o->build,
		  o->sid, x->who, o->command ? "a command" : "a shell",
		  o->has_pty ? " on a terminal" : "");
	sshd_send_opened(d, o->sid, NULL);
	update_watch(ss);
}

static void
on_stdin(struct sshd *d, uint32_t sid, const uint8_t *p, size_t n,
	 void *opaque)
{
	struct serve_ssh *ss = opaque;
	struct ssh_session *x = session_find(ss, sid);
	struct build *b = x && x->live ? held_build(ss->s, x->build) : NULL;
	struct error err = { 0 };

	if (b && ss->s->be->shell_input(b, x->shell, p, n, &err) < 0) {
		serve_log(ss->s, "%s: ssh session %u: %s", x->build, sid,
			  err.msg);
		ss->s->be->shell_close(b, x->shell);
		x->live = false;
		sshd_send_close(d, sid, err.msg, NULL);
	} else {
		/* passed on (or dropped: the shell is gone) */
		sshd_stdin_done(d, sid, n, NULL);
	}
	update_watch(ss);
}

static void
on_stdin_eof(struct sshd *d, uint32_t sid, void *opaque)
{
	struct serve_ssh *ss = opaque;
	struct ssh_session *x = session_find(ss, sid);
	struct build *b = x && x->live ? held_build(ss->s, x->build) : NULL;

	(void)d;
	if (b)
		ss->s->be->shell_eof(b, x->shell, NULL);
}

static void
on_winch(struct sshd *d, uint32_t sid, unsigned rows, unsigned cols,
	 void *opaque)
{
	struct serve_ssh *ss = opaque;
	struct ssh_session *x = session_find(ss, sid);
	struct build *b = x && x->live ? held_build(ss->s, x->build) : NULL;

	(void)d;
	if (b)
		ss->s->be->shell_winsize(b, x->shell, rows, cols, NULL);
}

static void
on_writable(struct sshd *d, uint32_t sid, void *opaque)
{
	struct ssh_session *x = session_find(opaque, sid);

	(void)d;
	if (x)
		flush(x);
}

static void
on_closed(struct sshd *d, uint32_t sid, const char *reason, void *opaque)
{
	struct serve_ssh *ss = opaque;
	struct ssh_session *x = session_find(ss, sid);
	struct build *b;

	(void)d;
	if (!x)
		return;
	b = x->live ? held_build(ss->s, x->build) : NULL;
	if (b) {
		serve_log(ss->s, "%s: ssh session %u (%s) closed by the "
			  "client: %s", x->build, sid, x->who,
			  reason ? reason : "");
		ss->s->be->shell_close(b, x->shell);
	}
	session_free(ss, x);
}

static void
on_log(struct sshd *d, const char *line, void *opaque)
{
	struct serve_ssh *ss = opaque;

	(void)d;
	serve_log(ss->s, "ssh: %s", line);
}

static const struct sshd_callbacks sshd_cb = {
	.keys = on_keys,
	.open = on_open,
	.stdin_data = on_stdin,
	.stdin_eof = on_stdin_eof,
	.winch = on_winch,
	.writable = on_writable,
	.closed = on_closed,
	.log = on_log,
};

/* ---- the sshd process ------------------------------------------------- */

/* The sshd died or misbehaved: no more ssh; builds go on. */
static void
ssh_lost(struct serve_ssh *ss, const char *why)
{
	struct serve *s = ss->s;

	serve_log(s, "ssh: the ssh server is gone: %s; held builds can no "
		  "longer be reached", why);
	loop_unwatch(ss->w);
	ss->w = NULL;
	loop_timer_cancel(ss->t_ready);
	ss->t_ready = NULL;
	sshd_stop(ss->d);
	ss->d = NULL;
	/* the builds' sessions end with their jobs */
	while (ss->sessions) {
		struct ssh_session *x = ss->sessions;
		struct build *b = x->live ? held_build(s, x->build) : NULL;

		if (b)
			s->be->shell_close(b, x->shell);
		session_free(ss, x);
	}
}

static void
on_sshd_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct serve_ssh *ss = opaque;
	bool was_ready = sshd_ready(ss->d);
	struct error err = { 0 };

	(void)l;
	(void)fd;
	(void)events;
	if (sshd_handle_io(ss->d, &err) < 0) {
		ssh_lost(ss, err.msg);
		return;
	}
	if (!was_ready && sshd_ready(ss->d)) {
		loop_timer_cancel(ss->t_ready);
		ss->t_ready = NULL;
		serve_log(ss->s, "ssh: serving on %s (pid %d, confined)",
			  ss->s->o.ssh.where ? ss->s->o.ssh.where : "?",
			  (int)sshd_pid(ss->d));
	}
	update_watch(ss);
}

static void
on_sshd_deadline(struct loop *l, void *opaque)
{
	struct serve_ssh *ss = opaque;

	(void)l;
	ss->t_ready = NULL;
	ssh_lost(ss, "it did not say ready within 10 s");
}

int
serve_ssh_start(struct serve *s, struct error *err)
{
	const struct serve_ssh_opts *o = &s->o.ssh;
	_cleanup_free_ char *path = NULL;
	struct sshd_config cfg = { 0 };
	struct serve_ssh *ss;

	if (!o->on)
		return 0;
	if (!o->sshd_path)
		path = helper_path("QCTL_SSHD", "qctl-sshd");
	cfg.path = o->sshd_path ? o->sshd_path : path;
	cfg.listen_fd = o->listen_fd;
	cfg.hostkeys = (const char *const *)o->hostkeys;
	cfg.n_hostkeys = o->n_hostkeys;
	ss = xcalloc(1, sizeof(*ss));
	ss->s = s;
	if (sshd_start(&cfg, &sshd_cb, ss, &ss->d, err) < 0) {
		free(ss);
		return -1;
	}
	ss->w = loop_watch_fd(s->loop, sshd_fd(ss->d), sshd_events(ss->d),
			      on_sshd_io, ss);
	ss->t_ready = loop_timer_at(s->loop, now_ms() + SSHD_START_TIMEOUT_MS,
				    on_sshd_deadline, ss);
	s->ssh = ss;
	return 0;
}

int64_t
serve_ssh_hold(const struct serve *s, const struct recipe *r)
{
	int64_t max = s->o.ssh.max_hold_ms;
	int64_t want = r->hold_ms ? r->hold_ms : r->hold_after_ms;

	/* --max-hold 0: no holds at all */
	if (!s->o.ssh.on || !want || max <= 0)
		return 0;
	return want > max ? max : want;
}

void
serve_ssh_free(struct serve *s)
{
	struct serve_ssh *ss = s->ssh;

	if (!ss)
		return;
	loop_unwatch(ss->w);
	loop_timer_cancel(ss->t_ready);
	sshd_stop(ss->d);
	while (ss->sessions)
		session_free(ss, ss->sessions);
	free(ss);
	s->ssh = NULL;
}
