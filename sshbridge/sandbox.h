/* sandbox.h - what qctl-sshbridge may do once configured: seccomp */
#ifndef QCTL_SB_SANDBOX_H
#define QCTL_SB_SANDBOX_H

/*
 * Not dumpable, no core, then a seccomp allowlist: IPv4 TCP sockets
 * (the network namespace and its nftables table decide where they can
 * go), I/O on fds it holds, memory, time, exit.  A file open fails with
 * EACCES; anything else kills the process.  0, or -1 with errno.
 */
int sb_sandbox_apply(void);

#endif
