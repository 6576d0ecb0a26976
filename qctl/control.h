/* control.h - the QMP-style control socket: framing, clients, dispatch */
#ifndef QCTL_CONTROL_H
#define QCTL_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "loop.h"
#include "util.h"

/*
 * Limits.  Every one is a bound on what one client can make the server
 * hold: its request, its output queue, its share of the connections.
 */
#define CTL_MAX_MSG (1024 * 1024)	/* bytes of one request */
#define CTL_MAX_DEPTH 32		/* nesting of one request */
#define CTL_OUT_MAX (1024 * 1024)	/* queued output per client */
#define CTL_MAX_CLIENTS 64
#define CTL_STALL_MS 30000		/* a reply left unread this long */
#define CTL_IN_CHUNK 16384		/* bytes read from a client at once */

/* ---- framing: a pure scanner over buffers ------------------------------ */

/*
 * QMP has no line framing: a request is one JSON value, and clients such
 * as qemu.qmp send no newline after it.  The framer finds where each value
 * ends (braces and brackets outside strings), stores at most `max` bytes
 * of it, and recovers from errors the way an operator typing into socat
 * expects: one error per bad request, then the next line is read afresh.
 */
enum ctl_frame {
	CTL_FRAME_MORE,		/* all input consumed, no value ended */
	CTL_FRAME_MSG,		/* a value ended: f->msg.data, f->msg.len */
	CTL_FRAME_ERROR,	/* a request was refused: f->why */
};

struct ctl_framer {
	struct buf msg;		/* the current value */
	size_t max;
	int depth;
	bool in_str, esc;
	bool scalar;		/* a top-level non-container: ends at '\n' */
	bool discard;		/* too long: follow it, store nothing */
	bool skip_line;		/* after an error: drop input up to '\n' */
	bool have_msg;		/* msg holds a value the caller has seen */
	const char *why;
};

/* Start a framer that accepts values of at most max bytes. */
void ctl_framer_init(struct ctl_framer *f, size_t max);
/* Release its buffer. */
void ctl_framer_free(struct ctl_framer *f);
/*
 * Scan p[0..n) and stop after the first value that ends (CTL_FRAME_MSG,
 * the value in f->msg until the next call) or the first error
 * (CTL_FRAME_ERROR, a static message in f->why); returns the number of
 * bytes consumed.  Values that fail to parse later are the caller's.
 */
size_t ctl_framer_feed(struct ctl_framer *f, const char *p, size_t n,
		       enum ctl_frame *out);

/* ---- the server -------------------------------------------------------- */

struct ctl;

/* Supplementary groups kept of a peer; more are dropped (fewer rights). */
#define CTL_PEER_GROUPS 64

/* Who sent a request (SO_PEERCRED and SO_PEERGROUPS of its connection). */
struct ctl_peer {
	unsigned conn;		/* connection number, for logs */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	int n_groups;		/* -1: unknown (then none are used) */
	gid_t groups[CTL_PEER_GROUPS];
};

/*
 * A command: args is always an object (borrowed), already checked against
 * the command's argument spec.  Return 0 with *ret a new reference (NULL
 * means {}), or negative with err filled: the client gets a GenericError
 * carrying err->msg.  CTL_DEFER means the reply comes later through
 * ctl_complete (work that must not block the loop); until then that
 * client's further requests wait, in order, as QMP clients expect.
 */
#define CTL_DEFER 1

typedef int (*ctl_cmd_fn)(void *opaque, const struct ctl_peer *peer,
			  json_t *args, json_t **ret, struct error *err);

/*
 * One entry of a command table (kvmtool style).  args lists the arguments
 * as "name:T" separated by spaces, T one of s (string), i (integer),
 * b (boolean), o (object), a (array), * (any), with a trailing '?' when
 * optional; NULL or "" for none.  Anything else is refused.
 */
struct ctl_cmd {
	const char *name;
	ctl_cmd_fn fn;
	const char *args;
	const char *help;
};

struct ctl_opts {
	const char *package;	/* greeting's version.package ("qctl X") */
	size_t max_clients;	/* 0: CTL_MAX_CLIENTS */
	size_t out_max;		/* 0: CTL_OUT_MAX */
	size_t msg_max;		/* 0: CTL_MAX_MSG */
	int64_t stall_ms;	/* 0: CTL_STALL_MS */
	FILE *log;		/* connections and refusals; NULL: none */
};

/*
 * A server over loop with the caller's command table (borrowed; must
 * outlive it) besides the built-in qmp_capabilities, query-version and
 * query-commands.  opaque goes to every command.
 */
struct ctl *ctl_new(struct loop *loop, const struct ctl_cmd *cmds,
		    size_t n_cmds, void *opaque, const struct ctl_opts *opts);
/* Close every client and the listening socket (removing its path). */
void ctl_free(struct ctl *c);
/*
 * Listen on a Unix socket at path, made with the given mode and group
 * (owner: our euid).  A stale socket nobody listens on is replaced; a live
 * one, or anything else at path, is an error.
 */
int ctl_listen(struct ctl *c, const char *path, mode_t mode, gid_t gid,
	       struct error *err);
/*
 * Accept on fd, a listening stream socket someone else made (systemd's
 * socket activation; taken over): its path, mode and owner are theirs,
 * and it is never unlinked.
 */
int ctl_listen_fd(struct ctl *c, int fd, struct error *err);
/* Stop accepting and remove the socket's path; clients stay. */
void ctl_stop_listening(struct ctl *c);
/* Serve an already connected stream socket (taken over; tests use pairs). */
int ctl_add_client(struct ctl *c, int fd, struct error *err);
/* Send an event to every negotiated client; data (stolen) may be NULL. */
void ctl_event(struct ctl *c, const char *event, json_t *data);
/*
 * The reply to a deferred request of connection conn: ret (stolen; NULL
 * means {}) when err is NULL, else an error carrying err->msg.  A client
 * that has gone meanwhile is ignored.
 */
void ctl_complete(struct ctl *c, unsigned conn, json_t *ret,
		  const struct error *err);
/* Connected clients, including those not negotiated yet. */
size_t ctl_n_clients(const struct ctl *c);
/* Events dropped so far for slow clients, over all clients. */
uint64_t ctl_events_dropped(const struct ctl *c);

#endif
