/* proxy-sandbox.h - privileges and seccomp filters of the proxy processes */
#ifndef QCTL_PROXY_SANDBOX_H
#define QCTL_PROXY_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

enum proxy_role {
	PROXY_ROLE_RELAY,    /* the event loop: sockets and pipes only */
	PROXY_ROLE_RESOLVER, /* getaddrinfo: reads /etc files, talks DNS */
};

/*
 * Give up the manager's privileges: no core dumps, not dumpable, the
 * given uid/gid with no supplementary groups and no capabilities (when
 * drop_ids; an unprivileged manager has none to drop), no_new_privs.
 * Verified by reading back.
 */
int proxy_sandbox_drop(bool drop_ids, uid_t uid, gid_t gid, struct error *err);
/* Load the seccomp allowlist of role; everything else kills the process. */
int proxy_sandbox_seccomp(enum proxy_role role, struct error *err);

#endif
