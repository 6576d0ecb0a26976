/* sshd-serve.h - qctl-sshd's server: libssh over the inherited socket */
#ifndef QCTL_SSHD_SERVE_H
#define QCTL_SSHD_SERVE_H

#include "sshd-proto.h"
#include "util.h"

/*
 * Before the sandbox: libssh initialised, the host keys of the
 * configuration (m, a decoded CONFIG frame) imported, nothing read from
 * files later.  The key texts are wiped from m's buffer by the caller.
 */
int sshd_serve_prepare(const struct sshd_msg *conf, struct error *err);
/* Say ready and serve until the manager goes away; never returns. */
void sshd_serve(void) __attribute__((noreturn));

/* Send one frame to the manager, blocking (start-up: ready, fail). */
int sshd_ctl_send_now(const struct sshd_msg *m);

#endif
