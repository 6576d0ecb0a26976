/*
 * main.c - guestagent: PID 1 of the minimal image (or a service), serving
 * the host's frames from one poll() loop.  See docs/agent-protocol.md.
 *
 * The loop watches a signalfd (SIGCHLD: reap everything, orphans too), the
 * port, and the jobs' pipes.  Backpressure runs both ways without threads:
 * while the output queue is above GA_OUTQ_HIGH neither children nor the
 * port are read; while a job has more than GA_STDIN_HIGH of FILE_IN data or
 * STDIN unwritten the port is not read.  Both sides of every pipe then
 * simply wait.
 */
#include "agent.h"
#include "decode.h"
#ifdef QCTL_HOSTILE
/* the test-only agent of images/out/hostile (tests/hostile/hostile.c) */
#include "hostile.h"
#endif

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

/* How often to look for the host while its end of the port is closed. */
#define GA_RECONNECT_MS 20
/* How long to try to deliver queued frames before powering off. */
#define GA_FINAL_FLUSH_MS 1000

static struct ga_port port;
static bool is_init;

static _Noreturn void
agent_poweroff(void)
{
	job_kill_all();
	port_flush_wait(&port, GA_FINAL_FLUSH_MS);
	/* a service powers the machine off too: that is the request */
	init_poweroff();
}

static void
send_hello(void)
{
	unsigned char pl[1024];
	char un[512];
	struct utsname u;
	size_t n;

#ifdef QCTL_HOSTILE
	if (hostile_hello(&port))
		return;
#endif
	if (uname(&u) < 0)
		memset(&u, 0, sizeof(u));
	snprintf(un, sizeof(un), "%s %s %s %s %s", u.sysname, u.nodename,
		 u.release, u.version, u.machine);
	n = ga_encode_u32_strs(pl, sizeof(pl), AGENT_PROTO_VERSION,
			       QCTL_VERSION, un);
	port_send(&port, AGENT_HELLO, 0, pl, n);
}

/* A VM from a snapshot: the host's identity, then a new HELLO. */
static void
identity(const struct agent_hdr *h, const unsigned char *pl)
{
	struct ga_identity id;
	const char *why;
	char msg[256];
	int r;

	if (ga_identity_decode(pl, h->len, &id, &why) < 0) {
		port_send_error(&port, h->id, EINVAL, "%s", why);
		return;
	}
	r = ga_identity_apply(&id, msg, sizeof(msg));
	if (r < 0) {
		port_send_error(&port, h->id, -r, "%s", msg);
		return;
	}
	ga_log("identity taken: %s", id.hostname);
	send_hello();
}

/* The host's end closed: whatever it asked for is void. */
static void
host_gone(void)
{
	ga_log("host disconnected; killing %zu job(s)", job_count());
	job_kill_all();
	port_reset(&port);
	port.connected = false;
	/* unread bytes of the old session must not start the next one */
	while (port_read(&port) > 0)
		port_reset(&port);
	port_reset(&port);
}

/*
 * poll() reports POLLHUP on a port whose host end is closed, without any
 * event that would announce the reconnection, so look at it periodically.
 */
static void
check_host(void)
{
	struct pollfd pfd = {.fd = port.fd, .events = POLLIN | POLLOUT};

	if (poll(&pfd, 1, 0) < 0 || (pfd.revents & (POLLHUP | POLLNVAL)))
		return;
	port.connected = true;
	port_reset(&port);
	send_hello();
	ga_log("host connected");
}

static bool
input_paused(void)
{
	return port_congested(&port) || job_stdin_congested();
}

static void
dispatch(const struct agent_hdr *h, const unsigned char *pl)
{
	switch (h->type) {
	case AGENT_EXEC:
#ifdef QCTL_HOSTILE
		if (hostile_exec(&port, h->id, pl, h->len))
			break;
#endif
		job_exec(&port, h->id, pl, h->len);
		break;
	case AGENT_SIGNAL:
		job_signal(&port, h->id, pl, h->len);
		break;
	case AGENT_FILE_IN:
		job_file_in(&port, h->id, pl, h->len);
		break;
	case AGENT_FILE_OUT:
		job_file_out(&port, h->id, pl, h->len);
		break;
	case AGENT_DATA:
		job_data(&port, h->id, pl, h->len);
		break;
	case AGENT_DATA_END:
		if (h->len) {
			port_send_error(&port, h->id, EINVAL,
					"DATA_END with a payload");
			break;
		}
		job_data_end(&port, h->id);
		break;
	case AGENT_STDIN:
		job_stdin(&port, h->id, pl, h->len);
		break;
	case AGENT_STDIN_END:
		job_stdin_end(&port, h->id, h->len);
		break;
	case AGENT_WINSIZE:
		job_winsize(&port, h->id, pl, h->len);
		break;
	case AGENT_PING:
		port_send(&port, AGENT_PONG, h->id, pl, h->len);
		break;
	case AGENT_IDENTITY:
		identity(h, pl);
		break;
	case AGENT_POWEROFF:
		ga_log("power off requested");
		agent_poweroff();
	default:
		port_send_error(&port, h->id, ENOSYS, "unknown frame type %u",
				h->type);
		break;
	}
}

/* Serve every complete frame in the input buffer unless input is paused. */
static void
process_frames(void)
{
	while (!input_paused() && port.connected) {
		const unsigned char *b = port.in.data + port.in.off;
		size_t used = ga_buf_used(&port.in);
		struct agent_hdr h;

		if (used < AGENT_HDR_SIZE)
			return;
		if (agent_hdr_decode(b, &h) < 0) {
			/*
			 * Length or flags are garbage, so the next frame's
			 * start is unknown and nothing after can be trusted.
			 */
			port_send_error(&port, 0, EPROTO,
					"bad frame header (len %u flags %u); "
					"powering off",
					h.len, h.flags);
			ga_log("bad frame header from host; powering off");
			agent_poweroff();
		}
		if (used < AGENT_HDR_SIZE + (size_t)h.len)
			return;
		dispatch(&h, b + AGENT_HDR_SIZE);
		ga_buf_drop(&port.in, AGENT_HDR_SIZE + (size_t)h.len);
	}
}

static void
handle_signals(int sfd)
{
	struct signalfd_siginfo si;
	int status;
	pid_t pid;

	while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD)
			continue;
		if (si.ssi_signo == SIGTERM && !is_init) {
			job_kill_all();
			exit(0);
		}
		/* busybox halt/poweroff/reboot signal init with these */
		if (is_init) {
			ga_log("signal %u: powering off", si.ssi_signo);
			agent_poweroff();
		}
	}
	/* as PID 1 every orphan is ours to reap, not only the jobs */
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		job_reaped(&port, pid, status);
}

static int
signals_setup(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	/* a write to a child that exited must fail with EPIPE, not kill us */
	signal(SIGPIPE, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	return signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
}

static void
serve(int sfd)
{
	struct pollfd fds[2 + 3 * GA_MAX_JOBS];

	for (;;) {
		size_t n = 0, first;
		int pi = -1, timeout = -1, r;

		if (!port.connected)
			check_host();
		fds[n++] = (struct pollfd){.fd = sfd, .events = POLLIN};
		if (port.connected) {
			short ev = 0;

			if (!input_paused())
				ev |= POLLIN;
			if (ga_buf_used(&port.out))
				ev |= POLLOUT;
			pi = (int)n;
			fds[n++] = (struct pollfd){.fd = port.fd, .events = ev};
		} else {
			timeout = GA_RECONNECT_MS;
		}
		first = n;
		n = job_poll_fill(&port, fds, n, sizeof(fds) / sizeof(fds[0]));
		r = poll(fds, n, timeout);
		if (r < 0 && errno != EINTR)
			ga_fatal("poll: %s", strerror(errno));
		if (r < 0)
			continue;
		if (fds[0].revents)
			handle_signals(sfd);
		if (pi >= 0 && fds[pi].revents) {
			if (fds[pi].revents & (POLLHUP | POLLERR)) {
				host_gone();
			} else if ((fds[pi].revents & POLLIN) &&
				   port_read(&port) < 0) {
				host_gone();
			}
		}
		job_poll_handle(&port, fds, first, n);
		if (port.connected) {
			process_frames();
			if ((r = port_flush(&port)) < 0) {
				ga_log("port write: %s", strerror(-r));
				host_gone();
			}
		}
	}
}

/* guestagent [-p PORT-DEVICE] */
int
main(int argc, char **argv)
{
	char path[256];
	int sfd, r, opt;
	const char *dev = NULL;

	is_init = getpid() == 1;
	/* as PID 1 the kernel may pass stray arguments: ignore them quietly */
	opterr = !is_init;
	while ((opt = getopt(argc, argv, "p:")) != -1) {
		switch (opt) {
		case 'p':
			dev = optarg;
			break;
		default:
			if (!is_init) {
				fputs("usage: guestagent [-p DEVICE]\n",
				      stderr);
				return 2;
			}
		}
	}
	if (is_init)
		init_system();
	sfd = signals_setup();
	if (sfd < 0)
		ga_fatal("signals: %s", strerror(errno));
	if (!dev) {
		r = port_find(AGENT_PORT_NAME, GA_PORT_WAIT_MS, path,
			      sizeof(path));
		if (r < 0)
			ga_fatal("no virtio port named %s: %s", AGENT_PORT_NAME,
				 strerror(-r));
		dev = path;
	}
	r = port_open(&port, dev);
	if (r < 0)
		ga_fatal("open %s: %s", dev, strerror(-r));
	ga_log("agent %s on %s", QCTL_VERSION, dev);
	serve(sfd);
	return 0;
}
