/* netns.h - a builder's private network namespace with one tap device */
#ifndef QCTL_NETNS_H
#define QCTL_NETNS_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

#define NETNS_DIR "/run/netns"
#define NETNS_TAP "qtap0"
/* A link-local /30: every builder has its own namespace, so all reuse it. */
#define NETNS_HOST_IP "169.254.77.1"
#define NETNS_GUEST_IP "169.254.77.2"
#define NETNS_PREFIX 30
#define NETNS_PROXY_PORT 3128

struct netns {
	char name[64];		/* bind mount at NETNS_DIR/name */
	int fd;			/* the namespace */
	int tap_fd;		/* the tap's queue, for QEMU */
	int listen_fd;		/* proxy listener on HOST_IP:PROXY_PORT */
	bool mounted;
};

/*
 * Create namespace `name` (pinned at NETNS_DIR/name so that a later gc can
 * find it), with loopback up, IPv6 disabled, the tap NETNS_TAP addressed
 * NETNS_HOST_IP/30, and a listening TCP socket on the proxy port inside.
 * The caller's own namespace is unchanged on return.
 */
int netns_create(const char *name, struct netns *ns, struct error *err);
/* Close the fds and remove the namespace's pin; safe on a partial one. */
void netns_destroy(struct netns *ns);
/* Remove a pinned namespace by name (for gc). */
int netns_remove(const char *name, struct error *err);

#endif
