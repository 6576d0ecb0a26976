/* vm.h - launch and tear down one QEMU process */
#ifndef QCTL_VM_H
#define QCTL_VM_H

#include <sys/types.h>

#include "jail.h"
#include "qemu-argv.h"
#include "uidpool.h"
#include "util.h"

/* How QEMU is confined before exec (see vm_confine_default). */
struct vm_confine {
	bool drop_ids;		/* a uid/gid of its own (only as root) */
	bool jail;		/* namespaces and a root of its own (root) */
	struct uid_range uids;	/* where the uid comes from */
	const char *lock_dir;	/* the uids' lock files: the state dir */
	int cgroup_procs_fd;	/* cgroup.procs of the VM's cgroup, or -1 */
	uint64_t max_open_files;
	/* filled in by vm_spawn for the child: */
	uid_t uid;
	gid_t gid;
	gid_t groups[1];	/* supplementary: kvm's group with KVM */
	int n_groups;
	const struct jail *root;
	bool kvm;
	uint64_t host_netns;
	pid_t parent;		/* the manager */
};

/*
 * Default confinement.  As root: a uid and gid of the VM's own, taken
 * from uids (NULL or empty: uidpool_range_pick's) with its lock under
 * lock_dir (NULL: STATE_DIR_DEFAULT), and a jail (jail.h); no cgroup.
 * Unprivileged: nothing to drop.
 */
int vm_confine_default(struct vm_confine *c, const char *lock_dir,
		       const struct uid_range *uids, struct error *err);

struct vm {
	pid_t pid;
	int pidfd;		/* readable when QEMU exits */
	int qmp_fd;		/* our ends of the channels */
	int agent_fd;
	int console_fd;
	bool reaped;
	int wstatus;
	struct uid_lease lease;	/* QEMU's uid, held until vm_destroy */
};

/*
 * Start QEMU paused (-S) with fresh socketpairs for QMP, agent and serial
 * console; cfg's fd fields are filled in here.  tap_fd (or -1) becomes
 * the VM's only network card, disk_fd (or -1) its scratch disk;
 * incoming_fd (or -1) a saved state to start from (vm_describe).  As root,
 * a uid of the VM's own is taken (vm->lease) before fork.  The child
 * joins its cgroup first, then enters its jail (namespaces and a root
 * of its own, see jail_enter), then drops to that uid and gid with no
 * capabilities (bounding set too), no supplementary group but kvm's
 * with KVM, no_new_privs, no core dumps, and a minimal environment;
 * each change is read back, and QEMU is not run if any did not take.
 * QEMU's stdout/stderr go to log_fd (borrowed: the caller made it, see
 * rundir_open_file).  QEMU is our direct child and
 * dies with us (PDEATHSIG).
 */
int vm_spawn(struct qemu_config *cfg, int tap_fd, int disk_fd,
	     int incoming_fd, int log_fd, const struct vm_confine *confine,
	     struct vm *vm, struct error *err);
/*
 * What a VM vm_spawn would start from cfg, tap_fd and disk_fd is: its
 * command line (less its name) and the identity of QEMU's binary, the
 * kernel, initrd and root disk files and the scratch disk's size, as
 * text (snapshot.h's descriptor).  A saved state of that VM fits exactly
 * the VMs with the same text.
 */
int vm_describe(const struct qemu_config *cfg, int tap_fd, int disk_fd,
		char **out, struct error *err);
/* SIGKILL QEMU if it still runs (no-op once reaped). */
void vm_kill(struct vm *vm);
/* Reap QEMU if it has exited: 1 reaped, 0 still running, <0 error. */
int vm_try_reap(struct vm *vm);
/* Kill, wait for and reap QEMU, close every fd, give back the uid. */
void vm_destroy(struct vm *vm);
/* Close the channel fds (after QEMU is gone). */
void vm_close_channels(struct vm *vm);

#endif
