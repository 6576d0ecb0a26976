/* sshd.h - the ssh server for held builds, manager side.
 *
 * The ssh server is a program of its own (qctl-sshd, sshd/), exec'd by
 * the manager with an empty environment: unprivileged, under its own
 * seccomp filter, serving a listening socket the manager made.  It alone
 * parses ssh bytes; the manager sees only the frames of sshd-proto.h
 * (key requests, sessions, their data), watches the control socket in its
 * event loop and answers through the senders below.  See docs/ssh.md.
 */
#ifndef QCTL_SSHD_H
#define QCTL_SSHD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Longest wait for the sshd's "ready": the caller's deadline timer. */
#define SSHD_START_TIMEOUT_MS 10000

/* Defaults of the limits (0 in sshd_config). */
#define SSHD_DEFAULT_CONNS 16
#define SSHD_DEFAULT_SESSIONS 4
#define SSHD_DEFAULT_GRACE_MS 30000
#define SSHD_DEFAULT_AUTH 6

struct sshd_config {
	const char *path; /* the qctl-sshd program */
	int listen_fd;	  /* listening TCP socket; passed in, stays the
			   * caller's */
	const char *const *hostkeys; /* OpenSSH private key texts (the
				      * manager read the root-only files) */
	size_t n_hostkeys;
	uid_t uid; /* drop to these; 0 means nobody/nogroup (the */
	gid_t gid; /* sshd never runs as root) */
	unsigned int max_conns;	   /* connections at once */
	unsigned int max_sessions; /* sessions per connection */
	unsigned int grace_ms;	   /* from accept to authenticated */
	unsigned int max_auth;	   /* failed attempts per connection */
};

struct sshd;

/* A session the sshd asks to open; strings valid during the callback. */
struct sshd_open {
	uint32_t sid;
	const char *build;	 /* the ssh user name, a checked build id */
	const char *fingerprint; /* "SHA256:..." of the key that logged in */
	const char *peer;	 /* "ADDR port PORT" */
	bool has_pty;
	const char *term; /* with a pty ("" if the client named none) */
	unsigned int rows, cols;
	const char *command; /* NULL: a shell */
};

/*
 * What the sshd asks of the manager.  Every callback may call the senders
 * below (and sshd_stop() only from outside sshd_handle_io).  A key request
 * is answered with sshd_send_keys(), an open with sshd_send_opened() or
 * sshd_send_refused(), now or later from the loop.
 */
struct sshd_callbacks {
	void (*keys)(struct sshd *s, uint32_t req, const char *build,
		     void *opaque);
	void (*open)(struct sshd *s, const struct sshd_open *o, void *opaque);
	/* Client input; once passed on, sshd_stdin_done() gives the window
	 * back (until then, at most SSHD_WINDOW bytes arrive). */
	void (*stdin_data)(struct sshd *s, uint32_t sid, const uint8_t *data,
			   size_t len, void *opaque);
	void (*stdin_eof)(struct sshd *s, uint32_t sid, void *opaque);
	void (*winch)(struct sshd *s, uint32_t sid, unsigned int rows,
		      unsigned int cols, void *opaque);
	/* The client took output: sshd_output_room() grew. */
	void (*writable)(struct sshd *s, uint32_t sid, void *opaque);
	/* The session is over on the sshd's side (the client left, or after
	 * an exit, close or refusal); the id is forgotten after this. */
	void (*closed)(struct sshd *s, uint32_t sid, const char *reason,
		       void *opaque);
	/* A line worth the manager's log (authentication refused, ...). */
	void (*log)(struct sshd *s, const char *line, void *opaque);
};

/*
 * Start the sshd without waiting for it: queue its configuration on a
 * fresh control socket, fork, and exec cfg->path with an empty
 * environment, /dev/null on 0-2, listen_fd on 3, the control socket on 4
 * and no other fd.  It drops privileges, confines itself and says ready
 * (or fails) through sshd_handle_io; the caller bounds the wait
 * (SSHD_START_TIMEOUT_MS).  cb and opaque must outlive the sshd.
 */
int sshd_start(const struct sshd_config *cfg, const struct sshd_callbacks *cb,
	       void *opaque, struct sshd **out, struct error *err);
/* Has the sshd said "ready" (confined and serving)? */
bool sshd_ready(const struct sshd *s);
/* Control fd to watch in the manager's loop, for sshd_events(). */
int sshd_fd(const struct sshd *s);
/* EPOLLIN, plus EPOLLOUT while frames wait to be sent. */
uint32_t sshd_events(const struct sshd *s);
pid_t sshd_pid(const struct sshd *s);
/*
 * Read and dispatch what the sshd sent, and send what is queued.  0, or
 * < 0 if the sshd died, misbehaved (a malformed frame, a frame out of
 * turn, more data than the window) or reported a start-up failure: stop
 * it then (sessions are gone with it).
 */
int sshd_handle_io(struct sshd *s, struct error *err);

/*
 * Answer key request req: the OpenSSH public key lines allowed for its
 * build (none for an unknown or not-held build).  Lines the frame cannot
 * carry (not printable ASCII, longer than SSHD_KEY_MAX, past
 * SSHD_KEYS_MAX lines or the frame's size) are left out and the rest is
 * sent: < 0 then says how many were left out, but the request is
 * answered all the same (unless the sshd is gone).
 */
int sshd_send_keys(struct sshd *s, uint32_t req, const char *const *keys,
		   size_t n, struct error *err);
int sshd_send_opened(struct sshd *s, uint32_t sid, struct error *err);
int sshd_send_refused(struct sshd *s, uint32_t sid, const char *reason,
		      struct error *err);
/* Output bytes the session may take now (0 while the window is full). */
size_t sshd_output_room(const struct sshd *s, uint32_t sid);
/*
 * Queue output for the client: at most sshd_output_room() bytes (the
 * rest is the caller's to keep: -EAGAIN when nothing fits), cut into
 * frames.  Returns the bytes taken or < 0.
 */
ssize_t sshd_send_output(struct sshd *s, uint32_t sid, bool is_stderr,
			 const void *data, size_t len, struct error *err);
/* No more output (the client sees EOF). */
int sshd_send_eof(struct sshd *s, uint32_t sid, struct error *err);
/* The command ended: status (0..255) or signal (1..64); the channel
 * closes after it. */
int sshd_send_exit(struct sshd *s, uint32_t sid, bool signal, int value,
		   struct error *err);
/* End a session for reason (hold expired, build cancelled): the client
 * sees it on stderr. */
int sshd_send_close(struct sshd *s, uint32_t sid, const char *reason,
		    struct error *err);
/* n bytes of stdin passed on: that much window back. */
int sshd_stdin_done(struct sshd *s, uint32_t sid, size_t n,
		    struct error *err);
/* Ids of the sessions the sshd has open or opening (for a build's end):
 * fills at most max, returns how many there are. */
size_t sshd_sessions(const struct sshd *s, uint32_t *ids, size_t max);
/* SIGKILL, reap, free.  NULL is ignored. */
void sshd_stop(struct sshd *s);

/*
 * For tests and fuzzing: a manager-side state with no process; frames go
 * in through sshd_feed (one packet each, as sshd_handle_io would pass
 * them), and what the senders queue stays queued.
 */
struct sshd *sshd_new_detached(const struct sshd_callbacks *cb, void *opaque);
int sshd_feed(struct sshd *s, const uint8_t *frame, size_t len,
	      struct error *err);
/* Bytes of frames queued for the sshd, and the frames themselves. */
size_t sshd_queued(const struct sshd *s);
const uint8_t *sshd_queued_data(const struct sshd *s);

/* The configuration frame (sshd-proto.h) with cfg's defaults filled in
 * and uid/gid the ids to drop to; appended to out. */
int sshd_config_encode(const struct sshd_config *cfg, uid_t uid, gid_t gid,
		       struct buf *out, struct error *err);

#endif
