/* peer.h - work done with a client's rights, in a process of its own */
#ifndef QCTL_PEER_H
#define QCTL_PEER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

#define PEER_MAX_GROUPS 64

/* Whose rights a peer child has. */
struct peer_creds {
	bool drop;		/* false: the manager's own (qctl run) */
	uid_t uid;
	gid_t gid;
	int n_groups;
	gid_t groups[PEER_MAX_GROUPS];
};

/* A running peer child. */
struct peer_child {
	pid_t pid;
	int pidfd;
	int fd;			/* our end of its channel (its fd 3) */
	int status_fd;		/* its error message (its fd 4) */
	int wstatus;
	bool reaped;
};

/*
 * Messages of `qctl __peer access` on its SOCK_SEQPACKET channel: a
 * header, then len bytes; IMAGE carries two fds (kernel, initrd).
 */
enum peer_msg_type {
	PEER_MSG_RECIPE = 1,	/* a chunk of the recipe file */
	PEER_MSG_SOURCE,	/* the source directory checked (its path) */
	PEER_MSG_IMAGE,		/* image.json's bytes; fds: kernel, initrd */
	PEER_MSG_DONE,
};

struct peer_msg_hdr {
	uint32_t type;
	uint32_t len;
};

#define PEER_MSG_MAX (64 * 1024)	/* payload of one message */
#define PEER_IMAGE_JSON_MAX (60 * 1024)

/*
 * Fork; in the child give up everything but pc's rights (uid, gid, the
 * supplementary groups, no capabilities, no_new_privs, not dumpable) and
 * exec this very binary as `qctl __peer ARGS...` with an empty
 * environment, fd 3 its end of a socketpair of sock_type and fd 4 a pipe
 * for its error message.  The exec gives it a fresh memory image: nothing
 * of the server's heap (other builds' recipes) is in a process the client
 * could subvert.
 */
int peer_spawn(const struct peer_creds *pc, int sock_type,
	       const char *const *args, struct peer_child *c,
	       struct error *err);
/*
 * The same; in the child, before it gives up root, setup(arg) runs (a
 * private mount namespace, say) and returns 0 or an errno that fails the
 * spawn.  Between fork and exec: system calls only, no allocation.
 */
int peer_spawn_setup(const struct peer_creds *pc, int sock_type,
		     const char *const *args, int (*setup)(void *arg),
		     void *arg, struct peer_child *c, struct error *err);
/* Reap it if it has exited (block: wait for it): 1 reaped, 0 not yet. */
int peer_reap(struct peer_child *c, bool block);
/* After the reap: 0 if it exited 0, else -1 with its message in err. */
int peer_result(struct peer_child *c, struct error *err);
/* Kill (if running), reap and close everything; fine to call twice. */
void peer_free(struct peer_child *c);
/* Nothing running: all fds -1. */
void peer_child_init(struct peer_child *c);

#endif
