/*
 * sshbridge-proto.h - what qctl tells qctl-sshbridge before the agent
 * protocol starts (docs/ssh-transport.md).
 *
 * The bridge's end of an AF_UNIX stream socketpair is its fd
 * SSHBRIDGE_FD.  On it the bridge speaks the agent protocol of
 * agent-proto.h to the manager, as the guest agent would on its
 * virtio-serial port; the manager's first frame is SSHBRIDGE_CONFIG
 * (id 0), which no agent ever sees.  Before its HELLO the bridge may
 * send one ERROR (id 0) naming why it gives up, then it exits.
 */
#ifndef QCTL_SSHBRIDGE_PROTO_H
#define QCTL_SSHBRIDGE_PROTO_H

#include "agent-proto.h"

#define SSHBRIDGE_FD 3
#define SSHBRIDGE_VERSION 1
/*
 * Payload: u32 version, u32 connect_ms, u32 port, address '\0',
 * host key '\0' (the pinned public key: base64 of an ssh-ed25519 blob),
 * client key '\0' (the private key to log in with, OpenSSH PEM text).
 * connect_ms bounds how long the bridge tries to reach port at address
 * and to log in; every later wait is bounded by the manager's timers.
 */
#define SSHBRIDGE_CONFIG 0x200
/* ERROR codes of the bridge before HELLO */
#define SSHBRIDGE_E_HOSTKEY 1 /* the guest's host key is not the pinned one */
#define SSHBRIDGE_E_AUTH 2    /* the guest refused the client key */
#define SSHBRIDGE_E_CONNECT 3 /* no ssh server answered in time */
#define SSHBRIDGE_E_CONFIG 4  /* the manager's configuration was bad */

#endif
