/*
 * build-disk.c - a build's scratch disk.
 *
 * A fresh raw file of the recipe's disk size, made ext4 by mkfs.ext4 on
 * the host: a child watched by the loop, with the boot timeout as its
 * deadline.  When it exits 0 the boot goes on (build_boot_qemu).
 */
#include "build-int.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "rundir.h"
#include "state.h"

/* ---- scratch disk ---------------------------------------------------- */

/* Kill and reap mkfs.ext4 if it runs (synchronously: teardown, free). */
void
build_mkfs_stop(struct build *b)
{
	loop_unwatch(b->w_mkfs);
	b->w_mkfs = NULL;
	if (b->mkfs_pid > 0) {
		/* its process group: whatever it started goes too */
		kill(-b->mkfs_pid, SIGKILL);
		while (waitpid(b->mkfs_pid, NULL, 0) < 0 && errno == EINTR)
			;
		b->mkfs_pid = -1;
	}
	if (b->mkfs_pidfd >= 0)
		close(b->mkfs_pidfd);
	b->mkfs_pidfd = -1;
}

static void
on_mkfs_exit(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };
	pid_t pid = b->mkfs_pid;
	int st = 0;
	pid_t r;

	(void)l;
	(void)fd;
	(void)events;
	/* The leader is a zombie until reaped, so its group id is still
	 * ours: anything it left running goes with it. */
	kill(-pid, SIGKILL);
	do
		r = waitpid(pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return;		/* not yet */
	b->mkfs_pid = -1;
	build_mkfs_stop(b);
	build_cancel_phase_timer(b);
	if (b->killing) {
		build_finalize(b);	/* teardown waited for it */
		return;
	}
	if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (r > 0 && WIFSIGNALED(st))
			build_fail(b, BUILD_ERROR, "making the scratch disk: "
				   "mkfs.ext4 died of signal %d", WTERMSIG(st));
		else
			build_fail(b, BUILD_ERROR, "making the scratch disk: "
				   "mkfs.ext4 exited with status %d (its "
				   "messages are in build.log)",
				   r > 0 ? WEXITSTATUS(st) : -1);
		return;
	}
	build_say(b, 2, "scratch disk of %llu MiB ready after %lld ms",
		  (unsigned long long)(b->recipe->limits.disk >> 20),
		  (long long)(now_ms() - b->vm_t0));
	if (build_boot_qemu(b, &err) < 0)
		build_fail(b, BUILD_ERROR, "%s", err.msg);
}

static void
on_mkfs_deadline(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	/* teardown kills it and waits for its pidfd */
	build_fail(b, BUILD_ERROR, "making the scratch disk: mkfs.ext4 did "
		   "not finish within %.0fs (the boot timeout)",
		   b->recipe->limits.boot_timeout_ms / 1000.0);
}

/*
 * A fresh raw file of exactly the `disk` size with an empty ext4 made on
 * the host (never mounted here): the guest can allocate no more than that,
 * and nothing of an earlier build survives.  mkfs.ext4 is a child watched
 * by the loop, never waited for; the boot timeout is its deadline too.
 * The boot goes on (build_boot_qemu) when it exits 0.
 */
int
build_disk_start(struct build *b, struct error *err)
{
	char size[32];
	/* The disk goes in as fd 3: mkfs looks up no path of ours. */
	char *argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F",
			 (char *)"-m", (char *)"0", (char *)"-O",
			 (char *)"^has_journal,^resize_inode", (char *)"-E",
			 (char *)"lazy_itable_init=1,nodiscard", (char *)"-L",
			 (char *)"scratch", (char *)"/dev/fd/3", size, NULL,
			 NULL, NULL };
	/* the ssh transport: the guest's files for sshd, under the
	 * overlay's upper layer (build-ssh.c) */
	_cleanup_free_ char *seed = b->ssh ? build_ssh_seed_path(b) : NULL;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int r;

	if (seed) {
		/* options before the device: ... -d SEED DEVICE SIZE */
		argv[ARRAY_SIZE(argv) - 5] = (char *)"-d";
		argv[ARRAY_SIZE(argv) - 4] = seed;
		argv[ARRAY_SIZE(argv) - 3] = (char *)"/dev/fd/3";
		argv[ARRAY_SIZE(argv) - 2] = size;
	}
	if (b->disk_fd >= 0)
		close(b->disk_fd);
	b->disk_fd = -1;
	/* a retry's fresh VM gets a fresh disk */
	if (unlinkat(b->dir_fd, "disk.img", 0) < 0 && errno != ENOENT)
		return error_sys(err, errno, "remove %s", b->disk_path);
	r = rundir_open_file(b->dir_fd, "disk.img", O_RDWR, &b->disk_fd, err);
	if (r < 0)
		return r;
	if (ftruncate(b->disk_fd, b->recipe->limits.disk) < 0)
		return error_sys(err, errno, "size %s", b->disk_path);
	snprintf(size, sizeof(size), "%lluk",
		 (unsigned long long)(b->recipe->limits.disk >> 10));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	/* its complaints go to build.log, where the reason points */
	if (b->log_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, b->log_fd, 2);
	posix_spawn_file_actions_adddup2(&fa, b->disk_fd, 3);
	/* Signals as a fresh process has them (the manager blocks some for
	 * its signalfd and ignores SIGPIPE); a group of its own, so that a
	 * ^C is the manager's to handle and one kill reaches all of it. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	r = posix_spawnp(&b->mkfs_pid, "mkfs.ext4", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		b->mkfs_pid = -1;
		return error_sys(err, r, "cannot run mkfs.ext4");
	}
	state_note_pid(b->state, "mkfs", b->mkfs_pid);
	/* our child, not reaped yet: the pid cannot name another process */
	b->mkfs_pidfd = syscall(SYS_pidfd_open, b->mkfs_pid, 0);
	if (b->mkfs_pidfd < 0) {
		r = error_sys(err, errno, "pidfd_open mkfs.ext4");
		build_mkfs_stop(b);
		return r;
	}
	b->w_mkfs = loop_watch_fd(b->loop, b->mkfs_pidfd, EPOLLIN, on_mkfs_exit,
				  b);
	if (!b->w_mkfs) {
		r = error_sys(err, errno, "epoll");
		build_mkfs_stop(b);
		return r;
	}
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_mkfs_deadline, b);
	return 0;
}
