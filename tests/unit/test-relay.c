/*
 * test-relay.c - `qctl __relay DEVICE SOCKET` (qctl/cmd-relay.c), the
 * appliance's control socket exported over a virtio-serial port.
 *
 * A pseudo-terminal stands in for the port: its master is the host side,
 * open while a host client is there; closed, the slave polls hung up and
 * reads fail, as the port does when QEMU's client leaves.  A listening
 * socket of the test's own stands in for qctl serve.  The real relay is
 * the build's qctl (QCTL_PEER_EXE, else beside the suite).  t-appliance
 * runs it against a real port in a real appliance.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "built-program.h"

static char dir[] = "/tmp/qctl-test-relay-XXXXXX";
static char sock[100];
static int lfd = -1, master = -1;
static pid_t relay = -1;

/* Wait up to ms for fd to be readable; false on timeout. */
static bool
readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };

	return poll(&p, 1, ms) == 1;
}

/* Read until buf holds want (NUL-terminated), within 20 s. */
static void
read_until(int fd, const char *want)
{
	char buf[256] = "";
	size_t n = 0;

	while (!strstr(buf, want)) {
		ssize_t r;

		cr_assert(readable(fd, 20000), "no \"%s\" within 20 s (got "
			  "\"%.*s\")", want, (int)n, buf);
		r = read(fd, buf + n, sizeof(buf) - 1 - n);
		cr_assert_gt(r, 0, "read: %s", r < 0 ? strerror(errno) : "EOF");
		n += r;
		buf[n] = '\0';
		cr_assert_lt(n, sizeof(buf) - 1, "too much: \"%s\"", buf);
	}
}

static void
start(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct termios t;
	char pts[64];
	int slave;

	signal(SIGPIPE, SIG_IGN);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/control.sock", dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 4), 0);
	/* raw both ways: the port is a plain byte stream */
	cr_assert_eq(openpty(&master, &slave, pts, NULL, NULL), 0);
	cr_assert_eq(tcgetattr(slave, &t), 0);
	cfmakeraw(&t);
	cr_assert_eq(tcsetattr(slave, TCSANOW, &t), 0);
	fcntl(master, F_SETFD, FD_CLOEXEC);
	relay = fork();
	cr_assert_geq(relay, 0);
	if (relay == 0) {
		const char *qctl = built_program("QCTL_PEER_EXE", "qctl");

		close(slave);
		execl(qctl, "qctl", "__relay", pts, sock, (char *)NULL);
		_exit(127);
	}
	close(slave);
}

static void
stop(void)
{
	if (relay > 0) {
		kill(relay, SIGKILL);
		waitpid(relay, NULL, 0);
	}
	if (master >= 0)
		close(master);
	if (lfd >= 0)
		close(lfd);
	unlink(sock);
	rmdir(dir);
}

TestSuite(relay, .init = start, .fini = stop);

/* The relay's connection to the server (the host side is there). */
static int
accept_session(void)
{
	int c;

	cr_assert(readable(lfd, 20000), "the relay never connected");
	c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(c, 0);
	return c;
}

/* The relay is still running. */
static void
relay_alive(void)
{
	int st;

	cr_assert_eq(waitpid(relay, &st, WNOHANG), 0, "the relay ended");
}

Test(relay, a_host_client_gets_its_own_server_session)
{
	/* the host side is there: the relay connects to the server */
	int c = accept_session();

	/* the server's greeting reaches the host, the host's bytes the
	 * server, both ways at once */
	cr_assert_eq(write(c, "{\"QMP\": {}}\n", 12), 12);
	read_until(master, "{\"QMP\": {}}\n");
	cr_assert_eq(write(master, "{\"execute\": \"x\"}\n", 17), 17);
	read_until(c, "{\"execute\": \"x\"}\n");
	/* the host client leaves: the relay closes its server connection
	 * and stays, for the next one */
	close(master);
	master = -1;
	for (;;) {
		char b[64];
		ssize_t r;

		cr_assert(readable(c, 20000), "the relay kept the session");
		r = read(c, b, sizeof(b));
		if (r == 0)
			break;
		cr_assert_gt(r, 0);
	}
	close(c);
	relay_alive();
	/* and opens no new session while no host client is there */
	cr_assert(!readable(lfd, 500), "a session without a host client");
}

Test(relay, the_server_ending_the_session_is_survived)
{
	int c = accept_session();

	cr_assert_eq(write(c, "bye\n", 4), 4);
	read_until(master, "bye\n");
	close(c);
	/* the host's bytes are dropped now, and no new session opens
	 * while this client stays */
	cr_assert_eq(write(master, "ignored\n", 8), 8);
	cr_assert(!readable(lfd, 500), "a second session for one client");
	relay_alive();
}

Test(relay, a_missing_port_is_a_clear_error)
{
	int p[2], st;
	char msg[256] = "";
	ssize_t n;
	pid_t pid;

	cr_assert_eq(pipe(p), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(p[1], 2);
		execl(built_program("QCTL_PEER_EXE", "qctl"), "qctl", "__relay",
		      "/nonexistent/port", sock, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	n = read(p[0], msg, sizeof(msg) - 1);
	close(p[0]);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 1, "status 0x%x", st);
	cr_assert(n > 0 && strstr(msg, "/nonexistent/port"), "%s", msg);
}
