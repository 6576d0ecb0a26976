/* proxy-serve.h - inside the proxy process (forked by proxy_start) */
#ifndef QCTL_PROXY_SERVE_H
#define QCTL_PROXY_SERVE_H

#include <stdint.h>
#include <sys/types.h>

#include "allowlist.h"

/* Most client connections served at once; more wait in the backlog. */
#define PROXY_MAX_CONNS 256
/* Resolver processes: a slow DNS answer holds one, not the relays. */
#define PROXY_RESOLVERS 4

struct proxy_child_args {
	int listen_fd;
	int ctl_fd;
	const struct allowlist *al;
	bool drop_ids;
	uid_t uid;
	gid_t gid;
	int64_t connect_timeout_ms;
	int64_t idle_timeout_ms;
	uint64_t max_bytes;
};

/* The proxy process, from fork to exit: fds, privileges, resolvers,
 * seccomp, then the event loop.  Never returns. */
void proxy_child_main(const struct proxy_child_args *a)
	__attribute__((noreturn));

/* A resolver process serving fd (proxy-resolve.c).  Never returns. */
void proxy_resolve_main(int fd) __attribute__((noreturn));

#endif
