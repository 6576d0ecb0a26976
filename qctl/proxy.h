/* proxy.h - the builder's filtering HTTP/CONNECT proxy, manager side.
 *
 * The proxy is a program of its own (qctl-proxy, proxy/), exec'd by the
 * manager with an empty environment: unprivileged, under its own seccomp
 * filter, serving a listening socket that the manager made inside the
 * builder's network namespace, and connecting upstream from the manager's
 * namespace.  The manager drives it over a control socket (see
 * proxy-proto.h) and watches that socket in its event loop, from start-up
 * ("ready") to the end. */
#ifndef QCTL_PROXY_H
#define QCTL_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Longest wait for the proxy's "ready": the caller's deadline timer. */
#define PROXY_START_TIMEOUT_MS 10000

struct proxy_config {
	const char *path;   /* the qctl-proxy program */
	int listen_fd;	    /* listening TCP socket, made in the builder's
			     * netns; passed in, stays the caller's */
	char *const *allow; /* allowlist entries as written in the recipe */
	size_t n_allow;
	uid_t uid; /* drop to these; 0 means nobody/nogroup (the */
	gid_t gid; /* proxy never runs as root) */
	int64_t connect_timeout_ms; /* resolve + connect; 0: 10 s */
	int64_t idle_timeout_ms;    /* relay without traffic; 0: 5 min */
	uint64_t max_bytes;	    /* budget up+down over all connections;
				     * 0 = none (the manager enforces too) */
};

struct proxy;

/* One request as the proxy decided it; strings valid during the callback. */
struct proxy_record {
	const char *step;   /* fetch step whose window it came in; NULL if
			     * no window was open */
	const char *method; /* "GET", "CONNECT", ...; "-" if unparsable */
	const char *host;   /* normalised host, or the request's host made
			     * printable; "" if unparsable */
	uint16_t port;
	bool allowed;
	const char *reason;
	uint64_t bytes_up, bytes_down;
};

typedef void (*proxy_record_fn)(const struct proxy_record *r, void *opaque);

/*
 * Start the proxy without waiting for it: queue its configuration on a
 * fresh control socket, fork, and exec cfg->path with an empty
 * environment, /dev/null on 0-2, listen_fd on 3, the control socket on 4
 * and no other fd.  The program drops privileges, confines itself and
 * says "ready" (or "fail") through proxy_handle_io; until proxy_ready(),
 * no window may open.  The caller bounds the wait (PROXY_START_TIMEOUT_MS
 * is the usual deadline).  Errors here are the manager's own (bad config,
 * no socket, no fork).
 */
int proxy_start(const struct proxy_config *cfg, struct proxy **out,
		struct error *err);
/* Has the proxy said "ready" (sandboxed, resolvers up, serving)? */
bool proxy_ready(const struct proxy *p);
/* Control fd (socketpair) to watch for EPOLLIN in the manager's loop. */
int proxy_fd(const struct proxy *p);
pid_t proxy_pid(const struct proxy *p);
/*
 * Open or close the window (step is logged with each request).  A request
 * arriving while closed is refused (defense in depth: nftables also
 * drops).  Closing also kills every open relay.  Opening before
 * proxy_ready() is an error (-EAGAIN).
 */
int proxy_set_window(struct proxy *p, bool open, const char *step,
		     struct error *err);
/*
 * Read what the proxy sent: "ready" (see proxy_ready), records (fn is
 * called for each), totals.  Returns 0, or < 0 on EOF, garbage or a
 * start-up failure that the proxy reported (the proxy died, misbehaved or
 * could not confine itself: stop the build).
 */
int proxy_handle_io(struct proxy *p, proxy_record_fn fn, void *opaque,
		    struct error *err);
/* Byte totals reported so far (updated at least every 250 ms while bytes
 * flow, and with every record). */
void proxy_totals(const struct proxy *p, uint64_t *up, uint64_t *down);
/* SIGKILL, reap, free.  NULL is ignored. */
void proxy_stop(struct proxy *p);

/*
 * Decoding of what the proxy sends, as a pure function for tests and
 * fuzzing: one packet (len bytes) against the manager's state (ready or
 * not, the step names of the windows it opened, the totals so far).
 * Before ready, only "ready" or "fail" (an error carrying the proxy's
 * message, made printable); after it, records (to fn) and totals.
 * Anything malformed, unknown, out of turn or implausible is an error.
 */
struct proxy_msg_state {
	bool ready;
	char **steps; /* steps[id - 1] names window id */
	size_t nsteps;
	uint64_t up, down;
};
int proxy_msg_decode(struct proxy_msg_state *st, const char *msg, size_t len,
		     proxy_record_fn fn, void *opaque, struct error *err);
void proxy_msg_state_free(struct proxy_msg_state *st);

/* A record as the result's "network" array and the JSON log want it. */
json_t *proxy_record_to_json(const struct proxy_record *r);

/*
 * The configuration packet for the proxy (see proxy-proto.h), as text in
 * *out (malloc'd), with cfg's defaults filled in and uid/gid the ids to
 * drop to.  -EINVAL if an entry is bad or it would exceed the protocol's
 * bounds.
 */
int proxy_config_encode(const struct proxy_config *cfg, uid_t uid, gid_t gid,
			char **out, struct error *err);

#endif
