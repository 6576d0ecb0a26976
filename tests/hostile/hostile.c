/*
 * hostile.c - a guest agent that breaks the protocol on request (tests only).
 *
 * Linked only into build/guestagent-hostile, whose guestagent objects are
 * compiled with -DQCTL_HOSTILE (that is what adds the one hook, in
 * main.c's dispatch); that binary goes only into the test image
 * images/out/hostile.  The production agent has neither hook nor code.
 *
 * An EXEC whose shell script starts with "#hostile MODE" is taken here
 * instead of being run.  Each mode does to the host what a broken or
 * malicious agent could (see the table in modes[] and docs/testing.md);
 * where the host ought to stop at the violation, the mode goes on as if
 * nothing had happened and ends the job with a clean EXIT 0, so that a
 * host that misses the violation passes the build and the test notices.
 * Nothing here is careful about the guest: modes hang, flood, panic.
 *
 * What comes before any step (HELLO, the manager's setup EXEC, the source
 * upload) is chosen on the kernel command line, "qctl.hostile=MODE": a test
 * gives the image a cmdline of its own in a copy of image.json.
 */
#include "hostile.h"

#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/reboot.h>
#include <unistd.h>

#define MARK "#hostile "

/* ---- raw output --------------------------------------------------------- */

/* Write everything queued, however long the host takes to read it. */
static void
drain(struct ga_port *p)
{
	while (ga_buf_used(&p->out)) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};

		if (poll(&pfd, 1, 1000) < 0 && errno != EINTR)
			return;
		if (pfd.revents & (POLLHUP | POLLERR)) {
			usleep(100 * 1000); /* no host: nothing to do */
			continue;
		}
		if (port_flush(p) < 0)
			return;
	}
}

static void
raw(struct ga_port *p, const void *b, size_t n)
{
	ga_buf_add(&p->out, b, n);
	drain(p);
}

/* A header exactly as given: no check of len or flags. */
static void
raw_hdr(struct ga_port *p, uint32_t len, uint16_t type, uint16_t flags,
	uint32_t id)
{
	unsigned char h[AGENT_HDR_SIZE];
	struct agent_hdr hdr = {
		.len = len, .type = type, .flags = flags, .id = id};

	agent_hdr_encode(h, &hdr);
	raw(p, h, sizeof(h));
}

static void
frame(struct ga_port *p, uint16_t type, uint32_t id, const void *pl, size_t len)
{
	port_send(p, type, id, pl, len);
	drain(p);
}

static void
started(struct ga_port *p, uint32_t id)
{
	unsigned char pid[4];

	agent_put_u32(pid, 4242);
	frame(p, AGENT_STARTED, id, pid, sizeof(pid));
}

static void
exited(struct ga_port *p, uint32_t id, int code)
{
	unsigned char ex[8];

	agent_put_u32(ex, (uint32_t)code);
	agent_put_u32(ex + 4, 0);
	frame(p, AGENT_EXIT, id, ex, sizeof(ex));
}

static void
say(struct ga_port *p, uint32_t id, const char *s)
{
	frame(p, AGENT_STDOUT, id, s, strlen(s));
}

/* Silence with the port open: nothing read, nothing written, forever. */
static _Noreturn void
hang(void)
{
	for (;;)
		sleep(3600);
}

/* ---- modes -------------------------------------------------------------- */

static void
m_len0_exit(struct ga_port *p, uint32_t id)
{
	started(p, id);
	frame(p, AGENT_EXIT, id, NULL, 0);
	exited(p, id, 0);
}

static void
m_len0_started(struct ga_port *p, uint32_t id)
{
	frame(p, AGENT_STARTED, id, NULL, 0);
	exited(p, id, 0);
}

static void
m_len0_error(struct ga_port *p, uint32_t id)
{
	started(p, id);
	frame(p, AGENT_ERROR, id, NULL, 0);
	exited(p, id, 0);
}

static void
m_over_max(struct ga_port *p, uint32_t id)
{
	static unsigned char big[AGENT_MAX_PAYLOAD + 1];

	started(p, id);
	memset(big, 'x', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	/* one past the limit, and every promised byte really sent */
	raw_hdr(p, sizeof(big), AGENT_STDOUT, 0, id);
	raw(p, big, sizeof(big));
	exited(p, id, 0);
}

static _Noreturn void
m_len_4g(struct ga_port *p, uint32_t id)
{
	static unsigned char junk[65536];

	started(p, id);
	memset(junk, 'y', sizeof(junk));
	raw_hdr(p, 0xffffffffu, AGENT_STDOUT, 0, id);
	/* 1 MiB of the 4 GiB promised, then nothing */
	for (int i = 0; i < 16; i++)
		raw(p, junk, sizeof(junk));
	hang();
}

static void
m_bad_flags(struct ga_port *p, uint32_t id)
{
	started(p, id);
	raw_hdr(p, 2, AGENT_STDOUT, 0x8000, id);
	raw(p, "z\n", 2);
	exited(p, id, 0);
}

/* A header that promises 1000 bytes, 10 of them, then silence or close. */
static void
truncated(struct ga_port *p, uint32_t id)
{
	started(p, id);
	raw_hdr(p, 1000, AGENT_STDOUT, 0, id);
	raw(p, "0123456789", 10);
}

static _Noreturn void
m_truncated(struct ga_port *p, uint32_t id)
{
	truncated(p, id);
	hang();
}

static _Noreturn void
m_truncated_close(struct ga_port *p, uint32_t id)
{
	truncated(p, id);
	close(p->fd);
	hang();
}

static _Noreturn void
m_close(struct ga_port *p, uint32_t id)
{
	started(p, id);
	say(p, id, "closing the channel\n");
	close(p->fd);
	hang();
}

static void
m_unknown_id(struct ga_port *p, uint32_t id)
{
	started(p, id);
	say(p, id + 1000, "output for a job the host never started\n");
	exited(p, id, 0);
}

static void
m_unknown_type(struct ga_port *p, uint32_t id)
{
	started(p, id);
	frame(p, 0x7777, id, "?", 1);
	exited(p, id, 0);
}

static void
m_exit_twice(struct ga_port *p, uint32_t id)
{
	started(p, id);
	exited(p, id, 0);
	exited(p, id, 0);
}

static void
m_stdout_after_exit(struct ga_port *p, uint32_t id)
{
	started(p, id);
	exited(p, id, 0);
	say(p, id, "late output\n");
}

static void
m_exit_before_started(struct ga_port *p, uint32_t id)
{
	exited(p, id, 0);
}

static void
m_hello_again(struct ga_port *p, uint32_t id)
{
	unsigned char pl[256];
	size_t n = ga_encode_u32_strs(pl, sizeof(pl), AGENT_PROTO_VERSION,
				      "hostile", "again");

	started(p, id);
	frame(p, AGENT_HELLO, 0, pl, n);
	exited(p, id, 0);
}

static void
m_error_esc(struct ga_port *p, uint32_t id)
{
	/* the reason the host prints comes from here */
	port_send_error(p, id, EPERM,
			"denied \033]0;owned\007\033[2J\033c"
			"\302\233"
			"31m\233"
			"1m end");
	drain(p);
}

/* Output without end: the host's log_bytes limit must stop it. */
static _Noreturn void
m_flood(struct ga_port *p, uint32_t id)
{
	static char chunk[GA_READ_CHUNK];

	started(p, id);
	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = i % 64 == 63 ? '\n' : 'F';
	for (;;)
		frame(p, AGENT_STDOUT, id, chunk, sizeof(chunk));
}

/* Frames without end that carry no output: nothing counts them. */
static _Noreturn void
m_empty_flood(struct ga_port *p, uint32_t id)
{
	started(p, id);
	for (;;)
		frame(p, AGENT_STDOUT, id, NULL, 0);
}

static _Noreturn void
m_pong_flood(struct ga_port *p, uint32_t id)
{
	static char pl[GA_READ_CHUNK];

	started(p, id);
	for (;;)
		frame(p, AGENT_PONG, id, pl, sizeof(pl));
}

/* A frame a byte at a time, one every 250 ms, never ending. */
static _Noreturn void
drip(struct ga_port *p, uint32_t id)
{
	unsigned char f[AGENT_HDR_SIZE + 1];
	struct agent_hdr h = {.len = 1, .type = AGENT_STDOUT, .id = id};

	agent_hdr_encode(f, &h);
	f[AGENT_HDR_SIZE] = '.';
	for (size_t i = 0;; i = (i + 1) % sizeof(f)) {
		raw(p, &f[i], 1);
		usleep(250 * 1000);
	}
}

static _Noreturn void
m_slowloris(struct ga_port *p, uint32_t id)
{
	started(p, id);
	drip(p, id);
}

static _Noreturn void
m_silent(struct ga_port *p, uint32_t id)
{
	started(p, id);
	hang();
}

/*
 * The step ends; then everything the host sends (FILE_OUT, POWEROFF) is
 * read and thrown away while a frame of 64 KiB trickles out a byte every
 * 250 ms (it would take 4.5 hours to complete).
 */
static _Noreturn void
deaf(struct ga_port *p, uint32_t id, int code)
{
	started(p, id);
	say(p, id, "step done; ignoring POWEROFF from now on\n");
	exited(p, id, code);
	raw_hdr(p, AGENT_MAX_PAYLOAD, AGENT_STDOUT, 0, id);
	for (;;) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
		unsigned char buf[4096];

		if (poll(&pfd, 1, 250) > 0 && (pfd.revents & POLLIN))
			while (read(p->fd, buf, sizeof(buf)) > 0)
				;
		if (pfd.revents & POLLHUP)
			usleep(100 * 1000);
		raw(p, ".", 1);
	}
}

static _Noreturn void
m_deaf(struct ga_port *p, uint32_t id)
{
	deaf(p, id, 0);
}

/* The same after a step that failed (its artifacts are still wanted). */
static _Noreturn void
m_deaf_fail(struct ga_port *p, uint32_t id)
{
	deaf(p, id, 1);
}

/* Bytes a terminal would act on: titles, clears, resets, C1 controls. */
static const char esc_junk[] =
	"\033]0;owned\007\033[2J\033[H\033c\033]52;c;b3duZWQ=\007"
	"\033P+q544e\033\\\233"
	"31m\302\233"
	"1m\a\b\r\177 ";

static void
m_console(struct ga_port *p, uint32_t id)
{
	static unsigned char junk[65536];
	unsigned int seed = 12345;
	char line[256];

	/* fd 2 of PID 1 is /dev/console: the serial port the host logs */
	for (size_t i = 0; i < sizeof(junk); i++) {
		seed = seed * 1103515245u + 12345u;
		junk[i] = (unsigned char)(seed >> 16);
	}
	for (int i = 0; i < 16; i++) {
		if (write(2, esc_junk, sizeof(esc_junk) - 1) < 0 ||
		    write(2, junk + i * 4096, 4096) < 0)
			break;
	}
	started(p, id);
	snprintf(line, sizeof(line), "visible-marker %s tail\n", esc_junk);
	say(p, id, line);
	frame(p, AGENT_STDERR, id, line, strlen(line));
	frame(p, AGENT_STDOUT, id, junk, 8192);
	say(p, id, "\nafter-junk\n");
	exited(p, id, 0);
}

static _Noreturn void
m_panic(struct ga_port *p, uint32_t id)
{
	int fd;

	started(p, id);
	say(p, id, "panicking\n");
	fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "c", 1) != 1) {
		say(p, id, "sysrq-trigger failed\n");
		exited(p, id, 1);
	}
	hang();
}

static _Noreturn void
m_poweroff(struct ga_port *p, uint32_t id)
{
	started(p, id);
	say(p, id, "powering off unasked\n");
	sync();
	reboot(RB_POWER_OFF);
	hang();
}

static const struct {
	const char *name;
	void (*fn)(struct ga_port *p, uint32_t id);
} modes[] = {
	/* payload length 0 where one is required */
	{"len0-exit", m_len0_exit},
	{"len0-started", m_len0_started},
	{"len0-error", m_len0_error},
	/* bad headers: AGENT_MAX_PAYLOAD + 1, 4 GiB, reserved flags */
	{"over-max", m_over_max},
	{"len-4g", m_len_4g},
	{"bad-flags", m_bad_flags},
	/* a frame cut short, then silence or a closed port */
	{"truncated", m_truncated},
	{"truncated-close", m_truncated_close},
	{"close", m_close},
	/* frames the host never asked for */
	{"unknown-id", m_unknown_id},
	{"unknown-type", m_unknown_type},
	{"exit-twice", m_exit_twice},
	{"stdout-after-exit", m_stdout_after_exit},
	{"exit-before-started", m_exit_before_started},
	{"hello-again", m_hello_again},
	{"error-esc", m_error_esc},
	/* floods and silences */
	{"flood", m_flood},
	{"empty-flood", m_empty_flood},
	{"pong-flood", m_pong_flood},
	{"slowloris", m_slowloris},
	{"silent", m_silent},
	{"deaf", m_deaf},
	{"deaf-fail", m_deaf_fail},
	/* the console, the kernel, the machine */
	{"console", m_console},
	{"panic", m_panic},
	{"poweroff", m_poweroff},
};

/* The word after "qctl.hostile=" on the kernel command line, or "". */
static const char *
boot_mode(void)
{
	static char mode[64];
	static bool done;
	char line[4096];
	const char *k;
	ssize_t n;
	int fd;

	if (done)
		return mode;
	done = true;
	fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return mode;
	n = read(fd, line, sizeof(line) - 1);
	close(fd);
	line[n > 0 ? n : 0] = '\0';
	k = strstr(line, "qctl.hostile=");
	if (k) {
		k += strlen("qctl.hostile=");
		snprintf(mode, sizeof(mode), "%.*s", (int)strcspn(k, " \n"), k);
	}
	return mode;
}

bool
hostile_hello(struct ga_port *p)
{
	unsigned char pl[256];
	const char *m = boot_mode();

	if (!strcmp(m, "hello-len0")) {
		port_send(p, AGENT_HELLO, 0, NULL, 0);
		return true;
	}
	if (!strcmp(m, "hello-version")) {
		port_send(p, AGENT_HELLO, 0, pl,
			  ga_encode_u32_strs(pl, sizeof(pl), 99, "hostile",
					     "from the future"));
		return true;
	}
	return false;
}

/* The manager's own first EXEC (mounting /src), as the boot mode says. */
static bool
first_exec(struct ga_port *p, uint32_t id)
{
	const char *m = boot_mode();

	if (!strcmp(m, "setup-silent")) {
		/* never answered; the agent goes on serving */
		ga_log("hostile: ignoring job %u", id);
		return true;
	}
	if (!strcmp(m, "setup-flood")) {
		/* output without end from the manager's own command */
		static char line[GA_READ_CHUNK];

		memset(line, 'S', sizeof(line));
		started(p, id);
		for (;;)
			frame(p, AGENT_STDOUT, id, line, sizeof(line));
	}
	if (!strcmp(m, "upload-silent")) {
		/* "set up", then nothing read: the host's DATA piles up */
		started(p, id);
		exited(p, id, 0);
		hang();
	}
	if (!strcmp(m, "upload-deaf")) {
		/* "set up", then deaf: the upload never ends */
		started(p, id);
		exited(p, id, 0);
		for (;;) {
			struct pollfd pfd = {.fd = p->fd, .events = POLLIN};
			unsigned char buf[4096];

			if (poll(&pfd, 1, 1000) > 0 && (pfd.revents & POLLIN))
				while (read(p->fd, buf, sizeof(buf)) > 0)
					;
			if (pfd.revents & POLLHUP)
				usleep(100 * 1000);
		}
	}
	return false;
}

bool
hostile_exec(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	static struct ga_exec x;
	static bool first = true;
	const char *why, *m;
	size_t n;

	if (first) {
		first = false;
		if (first_exec(p, id))
			return true;
	}
	if (ga_exec_decode(pl, len, &x, &why) < 0 ||
	    !(x.flags & AGENT_EXEC_SHELL) ||
	    strncmp(x.argv[0], MARK, strlen(MARK)))
		return false;
	m = x.argv[0] + strlen(MARK);
	n = strcspn(m, " \t\n");
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		if (strlen(modes[i].name) == n &&
		    !strncmp(m, modes[i].name, n)) {
			ga_log("hostile mode %s for job %u", modes[i].name, id);
			modes[i].fn(p, id);
			return true;
		}
	}
	port_send_error(p, id, EINVAL, "no hostile mode \"%.*s\"", (int)n, m);
	return true;
}
