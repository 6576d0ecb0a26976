/* peer.c - work done with a client's rights, in a process of its own */
#include "peer.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "child.h"
#include "privs.h"

void
peer_child_init(struct peer_child *c)
{
	memset(c, 0, sizeof(*c));
	c->pid = -1;
	c->pidfd = c->fd = c->status_fd = -1;
}

/* Between fork and exec: become the client, and nothing more. */
static int
peer_drop(const struct peer_creds *pc)
{
	if (!pc || !pc->drop || geteuid() != 0)
		return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* The client must not ptrace what reads its files for root. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -1;
	/* Exactly the client's groups: root's would add rights. */
	return privs_drop_to(pc->uid, pc->gid, pc->groups, pc->n_groups);
}

int
peer_spawn(const struct peer_creds *pc, int sock_type,
	   const char *const *args, struct peer_child *c, struct error *err)
{
	return peer_spawn_setup(pc, sock_type, args, NULL, NULL, c, err);
}

int
peer_spawn_setup(const struct peer_creds *pc, int sock_type,
		 const char *const *args, int (*setup)(void *arg), void *arg,
		 struct peer_child *c, struct error *err)
{
	int sv[2] = { -1, -1 }, st[2] = { -1, -1 }, ep[2] = { -1, -1 };
	const char *self = getenv("QCTL_PEER_EXE");
	_cleanup_close_ int exe = -1;
	const char *argv[16];
	char *const envp[] = { NULL };
	pid_t parent = getpid();
	size_t n = 0;
	int e = 0, r = 0;
	ssize_t got;

	peer_child_init(c);
	argv[n++] = "qctl";
	argv[n++] = "__peer";
	for (size_t i = 0; args[i]; i++) {
		if (n + 1 >= ARRAY_SIZE(argv))
			return error_set(err, E2BIG, "peer: too many args");
		argv[n++] = args[i];
	}
	argv[n] = NULL;
	/* This very binary (QCTL_PEER_EXE: the unit tests' qctl), opened
	 * here: the client needs no path to it, only the right to run it. */
	exe = open(self && *self ? self : "/proc/self/exe",
		   O_RDONLY | O_CLOEXEC);
	if (exe < 0)
		return error_sys(err, errno, "peer: open %s",
				 self && *self ? self : "/proc/self/exe");
	if (socketpair(AF_UNIX, sock_type | SOCK_CLOEXEC, 0, sv) < 0 ||
	    pipe2(st, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		r = error_sys(err, errno, "peer: socketpair");
		goto out;
	}
	c->pid = fork();
	if (c->pid < 0) {
		r = error_sys(err, errno, "peer: fork");
		goto out;
	}
	if (c->pid == 0) {
		int fds[3] = { sv[1], st[1], exe };
		struct child_fds cf = {
			.in = -1, .out = -1, .err = -1,
			.fds = fds, .n = 3, .first = 3,
			.errpipe = ep[1], .keep_cloexec = false,
		};
		int errp = ep[1];

		r = child_setup(&cf, &errp);
		if (r < 0)
			child_fail(errp, -r);
		if (setup && (r = setup(arg)) != 0)
			child_fail(errp, r);
		if (peer_drop(pc) < 0)
			child_fail(errp, errno ? errno : EPERM);
		/* Credential changes clear it: set last. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 ||
		    getppid() != parent)
			_exit(127);
		/* fd 5 (the binary) must not outlive the exec */
		if (fcntl(5, F_SETFD, FD_CLOEXEC) < 0)
			child_fail(errp, errno);
		syscall(SYS_execveat, 5, "", argv, envp, AT_EMPTY_PATH);
		child_fail(errp, errno);
	}
	close(ep[1]);
	ep[1] = -1;
	c->pidfd = syscall(SYS_pidfd_open, c->pid, 0);
	do
		got = read(ep[0], &e, sizeof(e));
	while (got < 0 && errno == EINTR);
	if (got == sizeof(e)) {
		peer_reap(c, true);
		r = error_sys(err, e, "peer: cannot start");
		goto out;
	}
	if (c->pidfd < 0) {
		r = error_sys(err, errno, "peer: pidfd_open");
		goto out;
	}
	c->fd = steal_fd(&sv[0]);
	c->status_fd = steal_fd(&st[0]);
	fd_set_nonblock(c->fd);
	fd_set_nonblock(c->status_fd);
out:
	for (int i = 0; i < 2; i++) {
		if (sv[i] >= 0)
			close(sv[i]);
		if (st[i] >= 0)
			close(st[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	if (r < 0)
		peer_free(c);
	return r;
}

int
peer_reap(struct peer_child *c, bool block)
{
	pid_t p;

	if (c->pid <= 0 || c->reaped)
		return 1;
	do
		p = waitpid(c->pid, &c->wstatus, block ? 0 : WNOHANG);
	while (p < 0 && errno == EINTR);
	if (p == 0)
		return 0;
	c->reaped = true;
	return 1;
}

int
peer_result(struct peer_child *c, struct error *err)
{
	char msg[512];
	ssize_t n = 0;

	if (c->reaped && WIFEXITED(c->wstatus) && WEXITSTATUS(c->wstatus) == 0)
		return 0;
	if (c->status_fd >= 0)
		n = read(c->status_fd, msg, sizeof(msg) - 1);
	if (n > 0) {
		msg[n] = '\0';
		/* the client's process wrote it: printable ASCII only */
		for (ssize_t i = 0; i < n; i++)
			if ((unsigned char)msg[i] < 0x20 ||
			    (unsigned char)msg[i] >= 0x7f)
				msg[i] = '?';
		return error_set(err, EACCES, "%s", msg);
	}
	if (c->reaped && WIFSIGNALED(c->wstatus))
		return error_set(err, EIO, "killed by signal %d",
				 WTERMSIG(c->wstatus));
	return error_set(err, EIO, "failed (status %d)",
			 c->reaped ? WEXITSTATUS(c->wstatus) : -1);
}

void
peer_free(struct peer_child *c)
{
	if (c->pid > 0 && !c->reaped) {
		if (c->pidfd >= 0)
			syscall(SYS_pidfd_send_signal, c->pidfd, SIGKILL, NULL,
				0);
		else
			kill(c->pid, SIGKILL);
		peer_reap(c, true);
	}
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->fd >= 0)
		close(c->fd);
	if (c->status_fd >= 0)
		close(c->status_fd);
	c->pidfd = c->fd = c->status_fd = -1;
}
