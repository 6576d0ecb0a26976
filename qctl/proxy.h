/* proxy.h - the builder's filtering HTTP/CONNECT proxy, manager side.
 *
 * The proxy is a child process of the manager: unprivileged, under its own
 * seccomp filter, serving a listening socket that the manager made inside
 * the builder's network namespace, and connecting upstream from the
 * manager's namespace.  The manager drives it over a control socket (see
 * proxy-proto.h) and watches that socket in its event loop. */
#ifndef QCTL_PROXY_H
#define QCTL_PROXY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

struct proxy_config {
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
 * Fork the proxy process: the child drops privileges (supplementary
 * groups, gid, uid, capabilities, no_new_privs), installs its seccomp
 * allowlist, keeps no fd but listen_fd and its control socket, and
 * serves.  Returns once the child reports it is sandboxed and serving.
 */
int proxy_start(const struct proxy_config *cfg, struct proxy **out,
		struct error *err);
/* Control fd (socketpair) to watch for EPOLLIN in the manager's loop. */
int proxy_fd(const struct proxy *p);
pid_t proxy_pid(const struct proxy *p);
/*
 * Open or close the window (step is logged with each request).  A request
 * arriving while closed is refused (defense in depth: nftables also
 * drops).  Closing also kills every open relay.
 */
int proxy_set_window(struct proxy *p, bool open, const char *step,
		     struct error *err);
/*
 * Read what the proxy sent; call fn for each request record.  Returns 0,
 * or < 0 on EOF or garbage (the proxy died or misbehaved: stop the build).
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
 * fuzzing: one packet (len bytes) against the manager's state (the step
 * names of the windows it opened, the totals so far).  Records go to fn;
 * anything malformed, unknown or implausible is an error.
 */
struct proxy_msg_state {
	char **steps; /* steps[id - 1] names window id */
	size_t nsteps;
	uint64_t up, down;
};
int proxy_msg_decode(struct proxy_msg_state *st, const char *msg, size_t len,
		     proxy_record_fn fn, void *opaque, struct error *err);
void proxy_msg_state_free(struct proxy_msg_state *st);

/* A record as the result's "network" array and the JSON log want it. */
json_t *proxy_record_to_json(const struct proxy_record *r);

#endif
