/*
 * cmd-relay.c - `qctl __relay DEVICE SOCKET`: `qctl serve`'s control
 * socket, exported over a virtio-serial port (the appliance; see
 * docs/appliance.md).
 *
 * A virtio-serial port is one byte stream whose far end, QEMU's chardev
 * on the host, comes and goes: while no host client is connected the port
 * polls readable and hung up, and read() returns 0.  Each time a host
 * client connects, the relay opens a new connection to the server's
 * socket, so that client gets its own greeting and session, as on a local
 * socket; when it leaves, that connection is closed and whatever either
 * side had in flight is dropped.  If the server ends the session first
 * (quit, a dead server), the host client's further bytes are read and
 * dropped until it leaves: the relay cannot hang up on it.
 *
 * The server sees the relay as a local client with the relay's uid (root
 * in the appliance): whoever can reach the host side of the port is the
 * appliance's operator.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "util.h"

#define RELAY_BUF (64 * 1024)
/* how often an absent host client or server is looked for again: the
 * port reports no arrival, it only stops reporting a hang-up */
#define RELAY_IDLE_MS 100

struct relay_buf {
	char data[RELAY_BUF];
	size_t off, len;
};

static void
relay_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("qctl relay: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static void
idle(void)
{
	struct timespec ts = {0, RELAY_IDLE_MS * 1000000L};

	nanosleep(&ts, NULL);
}

/* Is a host client there?  Nothing is read. */
static bool
host_present(int port)
{
	struct pollfd p = {port, POLLIN, 0};

	if (poll(&p, 1, 0) < 0)
		return false;
	return !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

/* Drop what the port holds (a gone client's last bytes); false when
 * the client is gone (read returns 0 or fails). */
static bool
port_drain(int port)
{
	char b[4096];

	for (;;) {
		ssize_t r = read(port, b, sizeof(b));

		if (r > 0)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EINTR))
			return true;
		return false;
	}
}

static int
serve_connect(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int s;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return -1;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		int e = errno;

		close(s);
		errno = e;
		return -1;
	}
	return s;
}

/* Read into b from fd: >0 bytes, 0 at the end, -1 with EAGAIN. */
static ssize_t
fill(int fd, struct relay_buf *b)
{
	ssize_t r;

	if (b->len == 0)
		b->off = 0;
	r = read(fd, b->data + b->off + b->len,
		 sizeof(b->data) - b->off - b->len);
	if (r > 0)
		b->len += r;
	else if (r < 0 && errno == EINTR)
		errno = EAGAIN;
	return r;
}

/* Write from b to fd: 0 (all or some written, or EAGAIN), -1 failed. */
static int
flush(int fd, struct relay_buf *b)
{
	ssize_t r = write(fd, b->data + b->off, b->len);

	if (r < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	b->off += r;
	b->len -= r;
	return 0;
}

enum session_end { HOST_LEFT, SERVER_LEFT };

/* One host client's session on its own server connection. */
static enum session_end
pump(int port, int s, struct relay_buf *to_serve, struct relay_buf *to_host)
{
	bool serve_eof = false;

	to_serve->off = to_serve->len = 0;
	to_host->off = to_host->len = 0;
	for (;;) {
		struct pollfd p[2] = {{port, 0, 0}, {s, 0, 0}};
		bool room =
			to_serve->off + to_serve->len < sizeof(to_serve->data);

		if (serve_eof && to_host->len == 0)
			return SERVER_LEFT;
		p[0].events =
			(room ? POLLIN : 0) | (to_host->len ? POLLOUT : 0);
		p[1].events = (!serve_eof && to_host->len == 0 ? POLLIN : 0) |
			      (to_serve->len ? POLLOUT : 0);
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			relay_log("poll: %s", strerror(errno));
			return SERVER_LEFT;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = room ? fill(port, to_serve) : 0;

			if (r == 0 || (r < 0 && errno != EAGAIN))
				return HOST_LEFT;
		}
		if ((p[0].revents & POLLOUT) && flush(port, to_host) < 0)
			return HOST_LEFT;
		if (!serve_eof &&
		    (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t r = fill(s, to_host);

			if (r == 0 || (r < 0 && errno != EAGAIN))
				serve_eof = true;
		}
		if ((p[1].revents & POLLOUT) && to_serve->len &&
		    flush(s, to_serve) < 0)
			serve_eof = true;
		if (serve_eof)
			to_serve->len = 0;
	}
}

int
cmd_relay(int argc, char **argv)
{
	static struct relay_buf to_serve, to_host;
	const char *dev, *sock;
	bool told_wait = false;
	int port;

	if (argc != 3) {
		fprintf(stderr, "usage: qctl __relay DEVICE SOCKET\n");
		return 2;
	}
	dev = argv[1];
	sock = argv[2];
	signal(SIGPIPE, SIG_IGN);
	port = open(dev, O_RDWR | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
	if (port < 0) {
		fprintf(stderr, "qctl relay: %s: %s\n", dev, strerror(errno));
		return 1;
	}
	relay_log("%s <-> %s", dev, sock);
	for (;;) {
		int s;

		if (!host_present(port)) {
			port_drain(port);
			idle();
			continue;
		}
		s = serve_connect(sock);
		if (s < 0) {
			if (!told_wait)
				relay_log("%s: %s (waiting for the server)",
					  sock, strerror(errno));
			told_wait = true;
			idle();
			continue;
		}
		told_wait = false;
		relay_log("host client connected");
		if (pump(port, s, &to_serve, &to_host) == SERVER_LEFT) {
			relay_log("the server ended the session; the host "
				  "client's input is dropped until it leaves");
			close(s);
			while (host_present(port) && port_drain(port))
				idle();
		} else {
			close(s);
		}
		relay_log("host client left");
	}
}
