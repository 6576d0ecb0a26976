/* sandbox.h - the helper's privilege stages: capabilities, then seccomp */
#ifndef QCTL_NF_SANDBOX_H
#define QCTL_NF_SANDBOX_H

#include "util.h"

/*
 * Keep CAP_NET_ADMIN only: effective and permitted, bounding set too; no
 * inheritable or ambient caps.  Then no_new_privs and not dumpable.
 */
int nf_sandbox_limit_caps(struct error *err);

/*
 * Install the seccomp allowlist (default: kill the process; any other
 * architecture: kill).  Everything the helper needs must be open by now.
 */
int nf_sandbox_enter(struct error *err);

/* Print the allowlist, one "name: why" per line, to fd (for docs/tests). */
void nf_sandbox_describe(int fd);

#endif
