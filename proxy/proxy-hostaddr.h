/* proxy-hostaddr.h - this host's addresses, as the proxy refuses them */
#ifndef QCTL_PROXY_HOSTADDR_H
#define QCTL_PROXY_HOSTADDR_H

#include <stddef.h>

#include "allowlist.h"

/*
 * Every IPv4 and IPv6 address on the interfaces of the caller's network
 * namespace (getifaddrs: a netlink socket, so before seccomp), without
 * duplicates.  0 with *out malloc'd (*n may be 0), or -errno.
 */
int proxy_hostaddr_collect(struct allow_addr **out, size_t *n,
			   struct error *err);

#endif
