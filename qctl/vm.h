/* vm.h - launch and tear down one QEMU process */
#ifndef QCTL_VM_H
#define QCTL_VM_H

#include <sys/types.h>

#include "qemu-argv.h"
#include "util.h"

/* How QEMU is confined before exec (see vm_confine_default). */
struct vm_confine {
	bool drop_ids;		/* change to uid/gid (only possible as root) */
	uid_t uid;
	gid_t gid;
	char user[64];		/* for supplementary groups (initgroups) */
	int cgroup_procs_fd;	/* cgroup.procs of the VM's cgroup, or -1 */
	uint64_t max_open_files;
	pid_t parent;		/* the manager (set by vm_spawn) */
};

/*
 * Default confinement: the dedicated user "qctl-qemu" if it exists, else
 * "nobody"; no cgroup.  Fails only if neither user exists while root.
 */
int vm_confine_default(struct vm_confine *c, struct error *err);

struct vm {
	pid_t pid;
	int pidfd;		/* readable when QEMU exits */
	int qmp_fd;		/* our ends of the channels */
	int agent_fd;
	int console_fd;
	bool reaped;
	int wstatus;
};

/*
 * Start QEMU paused (-S) with fresh socketpairs for QMP, agent and serial
 * console; cfg's fd fields are filled in here.  tap_fd (or -1) becomes
 * the VM's only network card, disk_fd (or -1) its only disk.  The child joins its cgroup first, then
 * drops to an unprivileged uid with no capabilities (bounding set too),
 * no_new_privs, no core dumps, and a minimal environment; each change is
 * read back, and QEMU is not run if any did not take.  QEMU's stdout/stderr go to
 * log_fd (borrowed: the caller made it, see rundir_open_file).  QEMU is our
 * direct child and dies with us (PDEATHSIG).
 */
int vm_spawn(struct qemu_config *cfg, int tap_fd, int disk_fd, int log_fd,
	     const struct vm_confine *confine, struct vm *vm,
	     struct error *err);
/* SIGKILL QEMU if it still runs (no-op once reaped). */
void vm_kill(struct vm *vm);
/* Reap QEMU if it has exited: 1 reaped, 0 still running, <0 error. */
int vm_try_reap(struct vm *vm);
/* Kill, wait for and reap QEMU, and close every fd. */
void vm_destroy(struct vm *vm);
/* Close the channel fds (after QEMU is gone). */
void vm_close_channels(struct vm *vm);

#endif
