/*
 * qctl-proxy - the builder's filtering HTTP/CONNECT proxy.
 *
 * Exec'd by qctl (qctl/proxy.c) with an empty environment, /dev/null on
 * 0-2, the listening socket that the manager made inside the builder's
 * network namespace on fd 3 (PROXY_FD_LISTEN) and its end of an AF_UNIX
 * SOCK_SEQPACKET control socket on fd 4 (PROXY_FD_CTL).  It runs in the
 * manager's network namespace: that is where its upstream sockets live.
 * Privileges narrow in visible stages, top to bottom:
 *
 *   1. fds: 3 is a listening TCP socket, 4 the control socket, no other
 *      fd above them stays open
 *   2. the manager's death kills us (PR_SET_PDEATHSIG); SIGPIPE ignored
 *   3. configuration: the manager's first packet, bounded and validated
 *   4. this host's addresses (netlink), refused unless listed
 *   5. privileges: limits, not dumpable, the configured uid/gid (never
 *      root), no groups, no capabilities, no_new_privs, all read back;
 *      the death signal again (changing ids cleared it)
 *   6. resolvers forked, each under its own filter; the epoll set
 *   7. seccomp: the relay's allowlist
 *   8. say ready, then serve
 *
 * A failure before 8 is reported to the manager as {"t":"fail","msg":...}
 * and exits 1.  The manager going away (EOF) ends the proxy with 0.
 */
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proxy-config.h"
#include "proxy-hostaddr.h"
#include "proxy-proto.h"
#include "proxy-sandbox.h"
#include "proxy-serve.h"

/* How long the configuration may take to arrive (it is normally queued
 * before the exec). */
#define CONFIG_WAIT_MS 5000

static void __attribute__((noreturn))
fail(const char *stage, const struct error *err)
{
	char msg[PROXY_MSG_MAX / 2];
	json_t *j;
	char *txt;

	snprintf(msg, sizeof(msg), "%s: %.900s", stage, err ? err->msg : "");
	j = json_pack("{s:s, s:s}", "t", "fail", "msg", msg);
	txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (txt)
		(void)!send(PROXY_FD_CTL, txt, strlen(txt), MSG_NOSIGNAL);
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
	int d = sock_is(PROXY_FD_LISTEN, 0, SOCK_STREAM, true);

	if (d != AF_INET && d != AF_INET6)
		return error_set(err, EBADF,
				 "fd %d is not a listening TCP socket",
				 PROXY_FD_LISTEN);
	if (sock_is(PROXY_FD_CTL, AF_UNIX, SOCK_SEQPACKET, false) < 0)
		return error_set(err, EBADF,
				 "fd %d is not an AF_UNIX SOCK_SEQPACKET "
				 "socket",
				 PROXY_FD_CTL);
	if (fcntl(PROXY_FD_LISTEN, F_SETFD, FD_CLOEXEC) < 0 ||
	    fcntl(PROXY_FD_CTL, F_SETFD, FD_CLOEXEC) < 0)
		return error_sys(err, errno, "fcntl");
	/* Whatever else a careless parent left open is not ours to use. */
	if (syscall(SYS_close_range, PROXY_FD_CTL + 1, ~0u, 0) < 0)
		for (int fd = PROXY_FD_CTL + 1; fd < 1024; fd++)
			close(fd);
	return 0;
}

/* Stage 3: one packet, bounded, without passed fds, validated. */
static int
config_read(struct proxy_conf *conf, struct error *err)
{
	static char buf[PROXY_CONFIG_MAX + 1];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct pollfd pfd = { PROXY_FD_CTL, POLLIN, 0 };
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
		n = recvmsg(PROXY_FD_CTL, &mh, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n == 0)
		_exit(0); /* the manager is gone already */
	if (n < 0)
		return error_sys(err, errno, "recvmsg");
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC) || n > PROXY_CONFIG_MAX)
		return error_set(err, EMSGSIZE, "oversized configuration");
	return proxy_config_parse(buf, n, conf, err);
}

int
main(void)
{
	static struct proxy_conf conf;
	struct allow_addr *own = NULL;
	struct error err = { 0 };
	bool drop_ids;
	size_t n_own = 0;
	pid_t ppid = getppid();

	if (fds_check(&err) < 0)
		fail("fds", &err);
	/* If the manager dies, the proxy dies: no orphan keeps relaying.
	 * (qctl set this before the exec too.  A manager gone before this
	 * point has closed its end: the proxy exits at the EOF.) */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(1);
	/* A peer that closes mid-write must cost an EPIPE, not the
	 * process. */
	signal(SIGPIPE, SIG_IGN);
	/* jansson seeds its hash from /dev/urandom on first use: do it
	 * while files can still be opened. */
	json_object_seed(0);

	if (config_read(&conf, &err) < 0)
		fail("configuration", &err);
	/* Before seccomp (netlink) and in the manager's namespace: the
	 * addresses a name must not resolve to unless listed. */
	if (proxy_hostaddr_collect(&own, &n_own, &err) < 0)
		fail("host addresses", &err);
	allowlist_set_own(conf.al, own, n_own);
	free(own);

	/* Started as root, the proxy must end as someone else; started
	 * unprivileged, it has no ids to give up but still gets
	 * no_new_privs and seccomp. */
	drop_ids = geteuid() == 0 || getuid() == 0;
	if (drop_ids && (conf.uid == 0 || conf.gid == 0)) {
		error_set(&err, EPERM, "will not run as uid or gid 0");
		fail("privileges", &err);
	}
	if (proxy_sandbox_drop(drop_ids, conf.uid, conf.gid, &err) < 0)
		fail("dropping privileges", &err);
	/* Changing credentials cleared the parent-death signal. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(1);

	if (proxy_serve_prepare(&conf, &err) < 0)
		fail("resolvers", &err);
	if (proxy_sandbox_seccomp(PROXY_ROLE_RELAY, &err) < 0)
		fail("seccomp", &err);
	proxy_serve();
}
