/* proxy-serve.h - the relay inside the proxy process (qctl-proxy) */
#ifndef QCTL_PROXY_SERVE_H
#define QCTL_PROXY_SERVE_H

#include <stdint.h>
#include <sys/types.h>

#include "proxy-config.h"

/* Most client connections served at once; more wait in the backlog. */
#define PROXY_MAX_CONNS 256
/* Resolver processes: a slow DNS answer holds one, not the relays. */
#define PROXY_RESOLVERS 4

/*
 * Before seccomp: make the listener (PROXY_FD_LISTEN) and the control
 * socket (PROXY_FD_CTL) non-blocking, fork the resolvers (each confines
 * itself and says so before this returns) and make the epoll set.  conf
 * must live as long as the process.  0, or -errno.
 */
int proxy_serve_prepare(const struct proxy_conf *conf, struct error *err);
/* Say ready to the manager, then relay until it goes away.  Never
 * returns. */
void proxy_serve(void) __attribute__((noreturn));

/* A resolver process serving fd (proxy-resolve.c).  Never returns. */
void proxy_resolve_main(int fd) __attribute__((noreturn));

#endif
