/*
 * qctl-sshd - the ssh server for held builds.
 *
 * Exec'd by qctl (qctl/sshd.c) with an empty environment, /dev/null on
 * 0-2, the listening TCP socket the manager made on fd 3 (SSHD_FD_LISTEN)
 * and its end of an AF_UNIX SOCK_SEQPACKET control socket on fd 4
 * (SSHD_FD_CTL).  It parses every ssh byte; the manager sees only the
 * frames of sshd-proto.h.  Privileges narrow in visible stages, top to
 * bottom:
 *
 *   1. fds: 3 is a listening TCP socket, 4 the control socket, nothing
 *      else above them stays open
 *   2. the manager's death kills us (PR_SET_PDEATHSIG); SIGPIPE ignored
 *   3. configuration: the manager's first frame, bounded and checked,
 *      with the host keys
 *   4. libssh: initialised, host keys imported, no configuration file;
 *      the key text wiped from our buffer
 *   5. privileges: limits, not dumpable, the configured uid/gid (never
 *      root), no groups, no capabilities, no_new_privs, all read back;
 *      the death signal again (changing ids cleared it)
 *   6. seccomp: the serving allowlist, read back
 *   7. say ready, then serve
 *
 * A failure before 7 is reported to the manager as a FAIL frame and exits
 * 1.  The manager going away (EOF) ends the sshd with 0.
 */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sshd-proto.h"
#include "sshd-sandbox.h"
#include "sshd-serve.h"

/* How long the configuration may take to arrive (it is normally queued
 * before the exec). */
#define CONFIG_WAIT_MS 5000

static void __attribute__((noreturn))
fail(const char *stage, const struct error *err)
{
	char raw[SSHD_TEXT_MAX + 1], msg[SSHD_TEXT_MAX + 1];
	struct sshd_msg m = { .type = SSHD_S_FAIL, .text = msg };
	size_t k = 0;

	snprintf(raw, sizeof(raw), "%s: %.400s", stage, err ? err->msg : "");
	for (; raw[k]; k++)
		msg[k] = raw[k] >= 0x20 && raw[k] < 0x7f ? raw[k] : '?';
	msg[k] = '\0';
	sshd_ctl_send_now(&m);
	_exit(1);
}

static int
sock_is(int fd, int domain, int type, bool listening)
{
	int d = 0, t = 0, acc = 0;
	socklen_t len = sizeof(int);
	struct stat st;

	if (fstat(fd, &st) < 0 || !S_ISSOCK(st.st_mode))
		return -1;
	if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &d, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &t, &len) < 0 ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0)
		return -1;
	if ((domain && d != domain) || t != type || !!acc != listening)
		return -1;
	return d;
}

/* Stage 1: exactly our two sockets above stdio. */
static int
fds_check(struct error *err)
{
	int d = sock_is(SSHD_FD_LISTEN, 0, SOCK_STREAM, true);

	if (d != AF_INET && d != AF_INET6)
		return error_set(err, EBADF,
				 "fd %d is not a listening TCP socket",
				 SSHD_FD_LISTEN);
	if (sock_is(SSHD_FD_CTL, AF_UNIX, SOCK_SEQPACKET, false) < 0)
		return error_set(err, EBADF,
				 "fd %d is not an AF_UNIX SOCK_SEQPACKET "
				 "socket",
				 SSHD_FD_CTL);
	/* Accepting never blocks the loop.  (The flag is on the open file
	 * the manager shares; it does not accept on it.) */
	if (fcntl(SSHD_FD_LISTEN, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(SSHD_FD_CTL, F_SETFD, FD_CLOEXEC) < 0 ||
	    fd_set_nonblock(SSHD_FD_LISTEN) < 0)
		return error_sys(err, errno, "fcntl");
	/* Whatever else a careless parent left open is not ours to use. */
	if (syscall(SYS_close_range, SSHD_FD_CTL + 1, ~0u, 0) < 0)
		for (int fd = SSHD_FD_CTL + 1; fd < 1024; fd++)
			close(fd);
	return 0;
}

/* Stage 3: one frame, bounded, without passed fds, checked. */
static int
config_read(uint8_t *buf, size_t cap, struct sshd_msg *m, size_t *len,
	    struct error *err)
{
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct pollfd pfd = { SSHD_FD_CTL, POLLIN, 0 };
	ssize_t n;
	int r;

	do
		r = poll(&pfd, 1, CONFIG_WAIT_MS);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return error_sys(err, errno, "poll");
	if (r == 0)
		return error_set(err, ETIMEDOUT,
				 "no configuration within %d ms",
				 CONFIG_WAIT_MS);
	do
		n = recvmsg(SSHD_FD_CTL, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		_exit(0); /* the manager is gone already */
	if (n < 0)
		return error_sys(err, errno, "recvmsg");
	*len = n;
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return error_set(err, EMSGSIZE, "oversized configuration");
	if (sshd_msg_decode(SSHD_TO_SSHD, buf, n, m, err) < 0)
		return -EPROTO;
	if (m->type != SSHD_M_CONFIG)
		return error_set(err, EPROTO, "first frame is not config");
	return 0;
}

int
main(void)
{
	static uint8_t buf[SSHD_FRAME_MAX + 1];
	struct sshd_msg conf;
	struct error err = { 0 };
	size_t len = 0;
	bool drop_ids;
	pid_t ppid = getppid();
	int r;

	if (fds_check(&err) < 0)
		fail("fds", &err);
	/* If the manager dies, the sshd dies: no orphan keeps serving.
	 * (qctl set this before the exec too.) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(1);
	/* A client that closes mid-write must cost an EPIPE, not the
	 * process. */
	signal(SIGPIPE, SIG_IGN);

	if (config_read(buf, sizeof(buf), &conf, &len, &err) < 0)
		fail("configuration", &err);
	r = sshd_serve_prepare(&conf, &err);
	/* libssh holds the keys now; our copy goes, used or not. */
	explicit_bzero(buf, sizeof(buf));
	if (r < 0)
		fail("libssh", &err);

	/* Started as root, the sshd must end as someone else; started
	 * unprivileged, it has no ids to give up but still gets
	 * no_new_privs and seccomp. */
	drop_ids = geteuid() == 0 || getuid() == 0;
	if (drop_ids && (conf.uid == 0 || conf.gid == 0)) {
		error_set(&err, EPERM, "will not run as uid or gid 0");
		fail("privileges", &err);
	}
	if (sshd_sandbox_drop(drop_ids, conf.uid, conf.gid, &err) < 0)
		fail("dropping privileges", &err);
	/* Changing credentials cleared the parent-death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(1);
	if (sshd_sandbox_seccomp(&err) < 0)
		fail("seccomp", &err);
	sshd_serve();
}
