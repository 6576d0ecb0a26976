/* cmd.h - the verbs of the qctl command line (one cmd-*.c each) */
#ifndef QCTL_CMD_H
#define QCTL_CMD_H

int cmd_run(int argc, char **argv);
int cmd_serve(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_version(int argc, char **argv);
int cmd_image(int argc, char **argv);
/* internal: what qctl serve runs with a client's rights (cmd-peer.c) */
int cmd_peer(int argc, char **argv);
/* internal: the appliance's control socket over virtio-serial */
int cmd_relay(int argc, char **argv);

#endif
