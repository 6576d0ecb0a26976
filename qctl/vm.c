/* vm.c - fork/exec QEMU with exactly the fds it needs */
#include "vm.h"

#include "cgroup.h"
#include "child.h"
#include "privs.h"
#include "state.h"
#include "version.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/* fd numbers inside the child */
enum {
	CHILD_QMP_FD = 3,
	CHILD_AGENT_FD = 4,
	CHILD_CONSOLE_FD = 5,
	CHILD_TAP_FD = 6,
	CHILD_KERNEL_FD = 7,
	CHILD_INITRD_FD = 8,
	CHILD_DISK_FD = 9,
	CHILD_DISK_RO_FD = 10,
	CHILD_ROOT_FD = 11,
	CHILD_INCOMING_FD = 12,
	CHILD_CACHE_FD = 13,
	CHILD_CACHE_RO_FD = 14,
	CHILD_NFDS = 12,	/* fds mapped to 3..14 */
};

int
vm_confine_default(struct vm_confine *c, const char *lock_dir,
		   const struct uid_range *uids, struct error *err)
{
	memset(c, 0, sizeof(*c));
	c->cgroup_procs_fd = -1;
	c->max_open_files = 4096;
	if (geteuid() != 0)
		return 0;	/* nothing to drop: we are unprivileged */
	/* A uid per VM: execve makes QEMU dumpable again, so QEMUs that
	 * shared a uid could read each other's memory or kill each other. */
	c->drop_ids = true;
	c->jail = true;
	c->lock_dir = lock_dir ? lock_dir : STATE_DIR_DEFAULT;
	if (uids && uids->count)
		c->uids = *uids;
	else if (uidpool_range_pick(NULL, NULL, &c->uids, err) < 0)
		return -1;
	return 0;
}

/* Between fork and exec: give up everything QEMU does not need. */
static int
confine_apply(const struct vm_confine *c)
{
	struct rlimit nocore = { 0, 0 };
	struct rlimit nofile = { c->max_open_files, c->max_open_files };

	/* A QEMU owned by the guest must not dump guest memory to disk. */
	if (setrlimit(RLIMIT_CORE, &nocore) < 0 ||
	    (c->max_open_files && setrlimit(RLIMIT_NOFILE, &nofile) < 0))
		return -1;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -1;
	/* No group but the VM's own (and kvm's, to open /dev/kvm): the
	 * manager's groups would open files QEMU has no use for.  No
	 * capability and the VM's own uid: an escape from QEMU lands in a
	 * process that can do nothing root could, nor touch any other
	 * build's QEMU.  Everything is read back, or QEMU does not run. */
	if (c->drop_ids)
		return privs_drop_to(c->uid, c->gid, c->groups, c->n_groups);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	if (privs_verify_dropped(false, 0, 0) < 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}

static int
pidfd_open_(pid_t pid)
{
	return syscall(SYS_pidfd_open, pid, 0);
}

/*
 * QEMU reopens its kernel and initrd through /dev/fd/N, which checks
 * the file's permissions against QEMU's uid: a file that uid may not
 * read goes in as a copy in a sealed memfd instead.
 */
static int
open_for_qemu(int src, const char *path, bool private_copy,
	      struct error *err)
{
	_cleanup_close_ int mfd = -1;
	struct stat st;
	char buf[65536];
	off_t off = 0;
	ssize_t n;

	if (fstat(src, &st) < 0)
		return error_sys(err, errno, "%s", path);
	if (!private_copy || (st.st_mode & S_IROTH)) {
		int fd = fcntl(src, F_DUPFD_CLOEXEC, 3);

		return fd < 0 ? error_sys(err, errno, "%s", path) : fd;
	}
	mfd = memfd_create("qctl-boot", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd < 0)
		return error_sys(err, errno, "memfd for %s", path);
	while ((n = pread(src, buf, sizeof(buf), off)) > 0) {
		if (write_in_full(mfd, buf, n) != n)
			return error_sys(err, errno, "copy %s", path);
		off += n;
	}
	if (n < 0)
		return error_sys(err, errno, "read %s", path);
	/* the guest's QEMU must not change what the next boot reads */
	if (fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW |
				    F_SEAL_SHRINK | F_SEAL_SEAL) < 0)
		return error_sys(err, errno, "seal copy of %s", path);
	return steal_fd(&mfd);
}

/* fd again, read-only: QEMU's fd sets want a read-only twin. */
static int
reopen_ro(int fd, int *out, struct error *err)
{
	char p[64];

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	*out = open(p, O_RDONLY | O_CLOEXEC);
	if (*out < 0)
		return error_sys(err, errno, "reopen cache disk");
	return 0;
}

static void __attribute__((noreturn))
vm_child(char **argv, int fds[CHILD_NFDS], int logfd, int errpipe,
	 const struct vm_confine *c)
{
	static char path_env[] = "PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	char *envp[] = { path_env, NULL };
	/* QEMU gets exactly stdio (its log), its three channels, the tap,
	 * kernel, initrd, disks and a saved state; the error pipe closes on
	 * exec. */
	struct child_fds cf = {
		.in = -1, .out = logfd, .err = logfd,
		.fds = fds, .n = CHILD_NFDS, .first = CHILD_QMP_FD,
		.errpipe = errpipe,
	};
	int r;

	/* Into the VM's cgroup first, so that everything QEMU allocates is
	 * counted there. */
	if (c->cgroup_procs_fd >= 0) {
		r = cgroup_enter_self(c->cgroup_procs_fd);
		if (r < 0)
			child_fail(errpipe, -r);
	}
	r = child_setup(&cf, &errpipe);

	if (r < 0)
		child_fail(errpipe, -r);
	/* The jail while we are still root (mounts need it); from here
	 * on, nothing of the host's filesystem is reachable. */
	if (c->jail) {
		r = jail_enter(c->root, c->kvm);
		if (r < 0)
			child_fail(errpipe, -r);
	}
	if (confine_apply(c) < 0)
		child_fail(errpipe, errno ? errno : EPERM);
	/* read back the jail as QEMU will see it, under its own uid */
	if (c->jail && jail_verify(c->host_netns) < 0)
		child_fail(errpipe, EPERM);
	/* If the manager dies, QEMU dies with it: no orphaned builders.
	 * Set last: changing credentials clears it. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		child_fail(errpipe, errno);
	if (getppid() != c->parent)
		_exit(127);	/* the manager died before we got here */
	execve(argv[0], argv, envp);
	child_fail(errpipe, errno);
}

/* Resolve a binary name along PATH before fork: the child uses execve. */
static char *
find_binary(const char *name)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = NULL;
	char *dir, *save = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? xstrdup(name) : NULL;
	copy = xstrdup(path && *path ? path : "/usr/bin:/bin");
	for (dir = strtok_r(copy, ":", &save); dir;
	     dir = strtok_r(NULL, ":", &save)) {
		char *p = xasprintf("%s/%s", *dir ? dir : ".", name);

		if (access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

/* The fd numbers of cfg's channels and files as QEMU sees them (the
 * fds array of vm_spawn): one place, so that vm_describe's command line
 * is the one vm_spawn runs. */
static void
child_fds(struct qemu_config *c, int tap_fd, int disk_fd)
{
	c->qmp_fd = CHILD_QMP_FD;
	c->agent_fd = CHILD_AGENT_FD;
	c->console_fd = CHILD_CONSOLE_FD;
	c->tap_fd = tap_fd >= 0 ? CHILD_TAP_FD : -1;
	c->disk_fd = disk_fd >= 0 ? CHILD_DISK_FD : -1;
	c->root_fd = c->root_file >= 0 ? CHILD_ROOT_FD : -1;
	c->cache_fd = c->cache_file > 0 ? CHILD_CACHE_FD : -1;
}

/* ... and the binary, kernel, initrd and saved state by those fds. */
static void
child_paths(struct qemu_config *c, const char *binary, int incoming_fd)
{
	c->binary = binary;
	c->kernel = "/dev/fd/7";
	c->initrd = "/dev/fd/8";
	c->incoming_fd = incoming_fd >= 0 ? CHILD_INCOMING_FD : -1;
}

/* "dev ino size mtime ctime" of fd: a file replaced or rewritten differs */
static char *
file_identity(int fd)
{
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0)
		return xstrdup("none");
	return xasprintf("%llu %llu %lld %lld.%09ld %lld.%09ld",
			 (unsigned long long)st.st_dev,
			 (unsigned long long)st.st_ino, (long long)st.st_size,
			 (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
			 (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
}

int
vm_describe(const struct qemu_config *cfg, int tap_fd, int disk_fd,
	    char **out, struct error *err)
{
	_cleanup_free_ char *binary = NULL, *qemu = NULL, *kernel = NULL,
			    *initrd = NULL, *disk = NULL, *root = NULL;
	_cleanup_close_ int bfd = -1;
	struct qemu_config c2 = *cfg;
	struct buf b = { 0 };
	struct stat st;
	char **argv = NULL;
	int r;

	binary = find_binary(cfg->binary ? cfg->binary : "qemu-system-x86_64");
	if (!binary)
		return error_set(err, ENOENT, "QEMU not found (PATH)");
	bfd = open(binary, O_RDONLY | O_CLOEXEC);
	/* the command line exactly as vm_spawn makes it, less its name */
	child_fds(&c2, tap_fd, disk_fd);
	child_paths(&c2, binary, -1);
	c2.name = NULL;
	r = qemu_argv_build(&c2, &argv, err);
	if (r < 0)
		return r;
	for (char **a = argv; *a; a++) {
		buf_append(&b, *a, strlen(*a));
		buf_append(&b, "\n", 1);
	}
	qemu_argv_free(argv);
	qemu = file_identity(bfd);
	kernel = file_identity(cfg->kernel_file);
	initrd = file_identity(cfg->initrd_file);
	root = file_identity(cfg->root_file);
	/* the scratch disk is each build's own: only its size is seen by
	 * the guest before a build runs (its kernel probed it) */
	if (disk_fd >= 0 && fstat(disk_fd, &st) == 0)
		disk = xasprintf("%lld", (long long)st.st_size);
	*out = xasprintf("qctl %s\nqemu %s\nkernel %s\ninitrd %s\nroot %s\n"
			 "disk %s\nargv\n%.*s", QCTL_VERSION, qemu, kernel,
			 initrd, root, disk ? disk : "none", (int)b.len,
			 b.data);
	buf_free(&b);
	return 0;
}

int
vm_spawn(struct qemu_config *cfg, int tap_fd, int disk_fd, int incoming_fd,
	 int log_fd, const struct vm_confine *confine, struct vm *vm,
	 struct error *err)
{
	_cleanup_close_ int kfd = -1, ifd = -1, rofd = -1, cache_ro = -1;
	_cleanup_free_ char *binary = NULL;
	struct vm_confine c = *confine;
	struct qemu_config c2;
	int qmp[2] = { -1, -1 }, agent[2] = { -1, -1 }, con[2] = { -1, -1 };
	int ep[2] = { -1, -1 };
	char **argv = NULL;
	int fds[CHILD_NFDS], r = 0, e = 0;
	pid_t pid;
	ssize_t n;

	memset(vm, 0, sizeof(*vm));
	vm->pid = -1;
	vm->pidfd = vm->qmp_fd = vm->agent_fd = vm->console_fd = -1;

	binary = find_binary(cfg->binary ? cfg->binary : "qemu-system-x86_64");
	if (!binary)
		return error_set(err, ENOENT, "%s not found (PATH)",
				 cfg->binary ? cfg->binary
					     : "qemu-system-x86_64");
	c.parent = getpid();
	if (c.jail) {
		c.kvm = cfg->accel == ACCEL_KVM;
		c.host_netns = jail_netns_id();
		r = jail_for_qemu(binary, &c.root, err);
		if (r < 0)
			return r;
	}
	if (c.kvm && c.drop_ids) {
		/* /dev/kvm is root:kvm 0660 on most hosts */
		struct group *g = getgrnam("kvm");

		if (g && g->gr_gid != 0) {
			c.groups[0] = g->gr_gid;
			c.n_groups = 1;
		}
	}
	/* Kernel and initrd go in as open files (opened by whoever had the
	 * right to): QEMU's uid needs no path into the image directory. */
	kfd = open_for_qemu(cfg->kernel_file, cfg->kernel, c.drop_ids, err);
	if (kfd < 0)
		return kfd;
	ifd = open_for_qemu(cfg->initrd_file, cfg->initrd, c.drop_ids, err);
	if (ifd < 0)
		return ifd;
	if (c.drop_ids) {
		r = uidpool_acquire(c.lock_dir, &c.uids, &vm->lease, err);
		if (r < 0)
			return r;
		c.uid = vm->lease.uid;
		c.gid = vm->lease.uid;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qmp) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, agent) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, con) < 0 ||
	    pipe2(ep, O_CLOEXEC) < 0) {
		r = error_sys(err, errno, "socketpair");
		goto out;
	}
	child_fds(cfg, tap_fd, disk_fd);
	c2 = *cfg;
	child_paths(&c2, binary, incoming_fd);
	r = qemu_argv_build(&c2, &argv, err);
	if (r < 0)
		goto out;

	fds[0] = qmp[1];	/* fd 3 in the child, and so on */
	fds[1] = agent[1];
	fds[2] = con[1];
	fds[3] = tap_fd;
	fds[4] = kfd;
	fds[5] = ifd;
	fds[6] = disk_fd;
	fds[7] = -1;
	/* an open file: QEMU's uid needs no right on the image's path */
	fds[8] = cfg->root_file;
	fds[9] = incoming_fd;
	fds[10] = cfg->cache_file > 0 ? cfg->cache_file : -1;
	fds[11] = -1;
	if (cfg->cache_file > 0) {
		/* the same read-only twin as the scratch disk's (below) */
		r = reopen_ro(cfg->cache_file, &cache_ro, err);
		if (r < 0)
			goto out;
		fds[11] = cache_ro;
	}
	if (disk_fd >= 0) {
		/* QEMU reopens an fdset file read-only at times (permission
		 * changes): the set needs a read-only twin of the same file. */
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", disk_fd);
		rofd = open(p, O_RDONLY | O_CLOEXEC);
		if (rofd < 0) {
			r = error_sys(err, errno, "reopen disk");
			goto out;
		}
		fds[7] = rofd;
	}
	pid = fork();
	if (pid < 0) {
		r = error_sys(err, errno, "fork");
		goto out;
	}
	if (pid == 0)
		vm_child(argv, fds, log_fd, ep[1], &c);

	close(ep[1]);
	ep[1] = -1;
	vm->pid = pid;
	/* Our child cannot be recycled before we reap it, so pidfd_open
	 * after fork refers to QEMU for sure. */
	vm->pidfd = pidfd_open_(pid);
	do
		n = read(ep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(e)) {
		waitpid(pid, NULL, 0);
		vm->pid = -1;
		r = error_sys(err, e, "cannot run %s", argv[0]);
		goto out;
	}
	if (vm->pidfd < 0) {
		r = error_sys(err, errno, "pidfd_open");
		vm_kill(vm);
		waitpid(pid, NULL, 0);
		vm->pid = -1;
		goto out;
	}
	vm->qmp_fd = steal_fd(&qmp[0]);
	vm->agent_fd = steal_fd(&agent[0]);
	vm->console_fd = steal_fd(&con[0]);
out:
	e = errno;
	if (r < 0)
		uidpool_release(&vm->lease);
	for (int i = 0; i < 2; i++) {
		if (qmp[i] >= 0)
			close(qmp[i]);
		if (agent[i] >= 0)
			close(agent[i]);
		if (con[i] >= 0)
			close(con[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	qemu_argv_free(argv);
	errno = e;
	return r;
}

void
vm_kill(struct vm *vm)
{
	if (vm->pid > 0 && !vm->reaped) {
		/* pidfd_send_signal cannot hit a recycled pid */
		if (vm->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, vm->pidfd, SIGKILL,
				NULL, 0);
		else
			kill(vm->pid, SIGKILL);
	}
}

int
vm_try_reap(struct vm *vm)
{
	pid_t p;

	if (vm->pid <= 0 || vm->reaped)
		return 1;
	p = waitpid(vm->pid, &vm->wstatus, WNOHANG);
	if (p < 0)
		return -errno;
	if (p == 0)
		return 0;
	vm->reaped = true;
	return 1;
}

void
vm_close_channels(struct vm *vm)
{
	int *fds[] = { &vm->qmp_fd, &vm->agent_fd, &vm->console_fd };

	for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

void
vm_destroy(struct vm *vm)
{
	if (vm->pid > 0 && !vm->reaped) {
		vm_kill(vm);
		if (waitpid(vm->pid, &vm->wstatus, 0) == vm->pid)
			vm->reaped = true;
	}
	if (vm->pidfd >= 0)
		close(vm->pidfd);
	vm->pidfd = -1;
	vm_close_channels(vm);
	/* QEMU is reaped: its uid may go (uidpool kills what is left) */
	if (vm->pid <= 0 || vm->reaped)
		uidpool_release(&vm->lease);
}
