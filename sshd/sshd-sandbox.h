/* sshd-sandbox.h - privileges and seccomp filter of qctl-sshd */
#ifndef QCTL_SSHD_SANDBOX_H
#define QCTL_SSHD_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/*
 * Give up the manager's privileges: no core dumps, not dumpable, the
 * given uid/gid with no supplementary groups and no capabilities (when
 * drop_ids; an unprivileged manager has none to drop), no_new_privs.
 * Verified by reading back.
 */
int sshd_sandbox_drop(bool drop_ids, uid_t uid, gid_t gid, struct error *err);
/* Load the serving filter (everything else kills the process) and check
 * that the kernel says the process is in filter mode. */
int sshd_sandbox_seccomp(struct error *err);

#endif
