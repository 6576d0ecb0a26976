/*
 * test-guestagent.c - the real agent (build/guestagent, or $QCTL_GUESTAGENT)
 * run as a service with its port on a pseudo-terminal, driven through the
 * host's encoders and frame parser (qctl/agent.c): protocol version 2's
 * STDIN and PTY jobs end to end, without a VM.
 *
 * The port is the slave of a pty in raw mode: like a virtio-serial port it
 * is a character device the agent opens by path, reads and writes
 * non-blocking, and it reports POLLHUP when the host end (our master)
 * closes.
 */
#include <criterion/criterion.h>

#include <sched.h>
#include <time.h>

#include "built-program.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "agent.h"

struct frame {
	uint16_t type;
	uint32_t id;
	size_t len;
	unsigned char *data;
};

struct host {
	pid_t pid;	     /* the agent */
	int m;		     /* pty master: the host end of the port */
	int s;		     /* the slave, kept open so its mode stays raw */
	struct agent_conn c; /* frame encoding and the input buffer */
	struct frame *f;
	size_t nf, capf;
};

static struct host h;

static int
on_frame(const struct agent_hdr *hd, const void *p, void *opaque,
	 struct error *err)
{
	struct host *x = opaque;
	struct frame *fr;

	(void)err;
	if (x->nf == x->capf) {
		x->capf = x->capf ? 2 * x->capf : 64;
		x->f = realloc(x->f, x->capf * sizeof(*x->f));
		cr_assert(x->f);
	}
	fr = &x->f[x->nf++];
	fr->type = hd->type;
	fr->id = hd->id;
	fr->len = hd->len;
	fr->data = malloc(hd->len + 1);
	cr_assert(fr->data);
	memcpy(fr->data, p, hd->len);
	fr->data[hd->len] = '\0';
	return 0;
}

/* $QCTL_GUESTAGENT, else build/guestagent (we are build/tests/...). */
static const char *
agent_path(void)
{
	return built_program("QCTL_GUESTAGENT", "guestagent");
}

/* Read and write what the pty allows for up to ms milliseconds. */
static void
pump(int ms)
{
	int64_t end = now_ms() + ms;

	for (;;) {
		struct pollfd pfd = {h.m, POLLIN, 0};
		int64_t left = end - now_ms();
		struct error err = {0};
		unsigned char b[65536];
		ssize_t n;

		if (agent_pending(&h.c))
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, left > 0 ? (int)left : 0) < 0 &&
		    errno != EINTR)
			cr_assert_fail("poll: %s", strerror(errno));
		if (pfd.revents & POLLOUT) {
			n = write(h.m, h.c.out.data + h.c.out_off,
				  agent_pending(&h.c));
			if (n > 0)
				h.c.out_off += (size_t)n;
			if (h.c.out_off == h.c.out.len)
				h.c.out.len = h.c.out_off = 0;
		}
		if (pfd.revents & POLLIN) {
			while ((n = read(h.m, b, sizeof(b))) > 0) {
				buf_append(&h.c.in, b, (size_t)n);
				cr_assert_eq(agent_frames_parse(&h.c.in,
								on_frame, &h,
								&err),
					     0, "%s", err.msg);
			}
		}
		cr_assert_eq(pfd.revents & (POLLHUP | POLLERR), 0,
			     "the agent's end of the port closed");
		if (left <= 0)
			return;
	}
}

/* Index of the first frame at or after *from of type (and id unless 0). */
static struct frame *
find(size_t *from, uint16_t type, uint32_t id)
{
	for (size_t i = *from; i < h.nf; i++) {
		if (h.f[i].type == type && (!id || h.f[i].id == id)) {
			*from = i + 1;
			return &h.f[i];
		}
	}
	return NULL;
}

/* Whether a frame of type for id (any id if 0) has arrived. */
static bool
has(uint16_t type, uint32_t id)
{
	size_t from = 0;

	return find(&from, type, id) != NULL;
}

/* Pump until a frame of type for id arrives; or fail. */
static struct frame *
wait_frame(uint16_t type, uint32_t id, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	for (;;) {
		size_t from = 0;
		struct frame *fr = find(&from, type, id);

		if (fr)
			return fr;
		cr_assert_lt(now_ms(), end, "no %s for id %u in %d ms",
			     agent_type_name(type), id, timeout_ms);
		pump(20);
	}
}

/* Everything id wrote as STDOUT so far, NUL-terminated (static). */
static const char *
stdout_of(uint32_t id)
{
	static char out[4 << 20];
	size_t n = 0;

	for (size_t i = 0; i < h.nf; i++) {
		if (h.f[i].type != AGENT_STDOUT || h.f[i].id != id)
			continue;
		cr_assert_lt(n + h.f[i].len, sizeof(out));
		memcpy(out + n, h.f[i].data, h.f[i].len);
		n += h.f[i].len;
	}
	out[n] = '\0';
	return out;
}

/* Pump until id's STDOUT contains s. */
static void
wait_output(uint32_t id, const char *s, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;

	while (!strstr(stdout_of(id), s)) {
		cr_assert_lt(now_ms(), end, "job %u never wrote \"%s\": \"%s\"",
			     id, s, stdout_of(id));
		pump(20);
	}
}

static void
wait_exit(uint32_t id, int32_t want_code, int32_t want_sig, int timeout_ms)
{
	struct frame *fr = wait_frame(AGENT_EXIT, id, timeout_ms);
	struct error err = {0};
	int32_t code, sig;

	cr_assert_eq(agent_decode_exit(fr->data, fr->len, &code, &sig, &err), 0,
		     "%s", err.msg);
	cr_assert_eq(code, want_code, "job %u: exit %d signal %d, out \"%s\"",
		     id, code, sig, stdout_of(id));
	cr_assert_eq(sig, want_sig, "job %u: exit %d signal %d", id, code, sig);
}

/* The errno of the ERROR for id, waiting for it. */
static int32_t
wait_error(uint32_t id, size_t *from, int timeout_ms)
{
	int64_t end = now_ms() + timeout_ms;
	struct frame *fr;
	struct error err = {0};
	char msg[256];
	int32_t e;

	while (!(fr = find(from, AGENT_ERROR, id))) {
		cr_assert_lt(now_ms(), end, "no ERROR for id %u", id);
		pump(20);
	}
	cr_assert_eq(agent_decode_status(fr->data, fr->len, &e, msg,
					 sizeof(msg), &err),
		     0);
	cr_assert(msg[0], "ERROR without a message");
	return e;
}

static void
must(int r, const struct error *err)
{
	cr_assert_eq(r, 0, "%s", err->msg);
}

static void
exec(uint32_t id, uint32_t flags, const char *script, char *const *env,
     size_t envc)
{
	char *argv[] = {(char *)script};
	struct error err = {0};

	must(agent_send_exec(&h.c, id, flags | AGENT_EXEC_SHELL, "/", argv, 1,
			     env, envc, &err),
	     &err);
}

static pid_t
exec_started(uint32_t id, uint32_t flags, const char *script)
{
	struct frame *fr;

	exec(id, flags, script, NULL, 0);
	fr = wait_frame(AGENT_STARTED, id, 5000);
	cr_assert_eq(fr->len, 4);
	return (pid_t)agent_get_u32(fr->data);
}

static void
send_stdin(uint32_t id, const char *s)
{
	struct error err = {0};

	must(agent_send_stdin(&h.c, id, s, strlen(s), &err), &err);
}

static void
setup(void)
{
	char tty[64];
	struct termios t;

	memset(&h, 0, sizeof(h));
	h.m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(h.m, 0);
	cr_assert_eq(grantpt(h.m), 0);
	cr_assert_eq(unlockpt(h.m), 0);
	cr_assert_eq(ptsname_r(h.m, tty, sizeof(tty)), 0);
	h.s = open(tty, O_RDWR | O_NOCTTY | O_CLOEXEC);
	cr_assert_geq(h.s, 0);
	/* a byte pipe like virtio-serial: no echo, no line editing */
	cr_assert_eq(tcgetattr(h.s, &t), 0);
	cfmakeraw(&t);
	cr_assert_eq(tcsetattr(h.s, TCSANOW, &t), 0);
	h.pid = fork();
	cr_assert_geq(h.pid, 0);
	if (h.pid == 0) {
		/* the agent's log only on request: it is the console's */
		int nul = open("/dev/null", O_WRONLY);

		if (!getenv("QCTL_GUESTAGENT_LOG") && nul >= 0)
			dup2(nul, 2);
		/* a hostname of its own, whatever a broken IDENTITY does */
		(void)unshare(CLONE_NEWUTS);
		execl(agent_path(), "guestagent", "-p", tty, (char *)NULL);
		_exit(127);
	}
	agent_conn_init(&h.c, h.m, on_frame, &h);
}

static void
teardown(void)
{
	int st;

	if (h.pid > 0) {
		kill(h.pid, SIGTERM);
		waitpid(h.pid, &st, 0);
	}
	agent_conn_free(&h.c);
	if (h.m >= 0)
		close(h.m);
	close(h.s);
	for (size_t i = 0; i < h.nf; i++)
		free(h.f[i].data);
	free(h.f);
}

/* HELLO first, of this protocol version. */
static void
hello(void)
{
	struct frame *fr = wait_frame(AGENT_HELLO, 0, 10000);
	struct agent_hello he;
	struct error err = {0};

	cr_assert_eq(fr, &h.f[0], "HELLO is not the first frame");
	must(agent_decode_hello(fr->data, fr->len, &he, &err), &err);
	cr_assert_eq(he.version, AGENT_PROTO_VERSION);
}

TestSuite(guestagent, .init = setup, .fini = teardown, .timeout = 60);

Test(guestagent, hello_announces_version_3)
{
	hello();
	cr_assert_eq(AGENT_PROTO_VERSION, 3);
}

Test(guestagent, cat_echoes_stdin_and_exits_after_stdin_end)
{
	static char big[150000];
	struct error err = {0};
	const char *out;

	hello();
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = 'a' + i % 26;
	exec_started(1, AGENT_EXEC_STDIN, "exec cat");
	send_stdin(1, "hello\n");
	/* 3 frames: 65536 + 65536 + 18928 */
	must(agent_send_stdin(&h.c, 1, big, sizeof(big), &err), &err);
	wait_output(1, "hello\n", 5000);
	/* cat keeps running until its stdin closes */
	pump(300);
	cr_assert(!has(AGENT_EXIT, 1), "cat exited before STDIN_END");
	must(agent_send_stdin_end(&h.c, 1, &err), &err);
	wait_exit(1, 0, 0, 10000);
	out = stdout_of(1);
	cr_assert_eq(strlen(out), 6 + sizeof(big));
	cr_assert(!memcmp(out + 6, big, sizeof(big)), "bytes changed");
}

Test(guestagent, stdin_pipe_is_not_a_terminal_and_without_flag_is_null)
{
	struct error err = {0};

	hello();
	exec_started(1, AGENT_EXEC_STDIN,
		     "if test -t 0; then echo tty; else echo pipe; fi; "
		     "read x; echo \"x=$x\"");
	send_stdin(1, "one\n");
	must(agent_send_stdin_end(&h.c, 1, &err), &err);
	wait_exit(1, 0, 0, 5000);
	cr_assert_str_eq(stdout_of(1), "pipe\nx=one\n");
	/* without the flag stdin is /dev/null: read fails at once */
	exec_started(2, 0, "read x; echo \"read=$?\"");
	wait_exit(2, 0, 0, 5000);
	cr_assert_str_eq(stdout_of(2), "read=1\n");
}

Test(guestagent, pty_job_has_a_terminal_on_0_1_2_and_term_dumb)
{
	char term[] = "TERM=xterm-256color";
	char *env[] = {term};
	regex_t re;

	hello();
	exec_started(1, AGENT_EXEC_PTY,
		     "tty; test -t 0 && test -t 1 && test -t 2 && "
		     "echo \"term=$TERM\"");
	wait_exit(1, 0, 0, 5000);
	/* the terminal turns \n into \r\n, as any terminal would */
	cr_assert_eq(regcomp(&re, "^/dev/pts/[0-9]+\r\nterm=dumb\r\n$",
			     REG_EXTENDED),
		     0);
	cr_assert_eq(regexec(&re, stdout_of(1), 0, NULL, 0), 0, "\"%s\"",
		     stdout_of(1));
	regfree(&re);
	/* TERM only from the host's environment */
	exec(2, AGENT_EXEC_PTY, "echo \"term=$TERM\"", env, 1);
	wait_exit(2, 0, 0, 5000);
	cr_assert_str_eq(stdout_of(2), "term=xterm-256color\r\n");
	/* STDIN|PTY together is a PTY job */
	exec(3, AGENT_EXEC_PTY | AGENT_EXEC_STDIN, "tty >/dev/null && echo t",
	     NULL, 0);
	wait_exit(3, 0, 0, 5000);
	cr_assert_str_eq(stdout_of(3), "t\r\n");
}

Test(guestagent, pty_is_the_controlling_terminal)
{
	hello();
	/* /dev/tty opens only for a process with a controlling terminal */
	exec_started(1, AGENT_EXEC_PTY, "echo x >/dev/tty && echo ctty");
	wait_exit(1, 0, 0, 5000);
	cr_assert_str_eq(stdout_of(1), "x\r\nctty\r\n");
}

Test(guestagent, stty_size_is_24x80_then_what_winsize_set)
{
	struct error err = {0};

	hello();
	exec_started(1, AGENT_EXEC_PTY, "stty size; read x; stty size");
	wait_output(1, "24 80\r\n", 5000);
	must(agent_send_winsize(&h.c, 1, 33, 101, &err), &err);
	send_stdin(1, "go\n");
	wait_exit(1, 0, 0, 5000);
	/* the terminal echoes the line read */
	cr_assert_str_eq(stdout_of(1), "24 80\r\ngo\r\n33 101\r\n");
	cr_assert(!has(AGENT_ERROR, 0), "WINSIZE was refused");
}

Test(guestagent, winsize_raises_sigwinch)
{
	struct error err = {0};

	hello();
	/* sleep in the background so the trap runs while the shell waits */
	exec_started(1, AGENT_EXEC_PTY,
		     "trap 'stty size; exit 0' WINCH; echo ready; "
		     "sleep 20 & wait");
	wait_output(1, "ready", 5000);
	must(agent_send_winsize(&h.c, 1, 50, 132, &err), &err);
	wait_exit(1, 0, 0, 10000);
	cr_assert_str_eq(stdout_of(1), "ready\r\n50 132\r\n");
}

Test(guestagent, shell_reads_a_line_through_the_pty)
{
	struct error err = {0};
	size_t f = 0;

	hello();
	exec_started(1, AGENT_EXEC_PTY,
		     "echo prompt; read line; echo \"got:$line\"");
	wait_output(1, "prompt\r\n", 5000);
	send_stdin(1, "hello world\n");
	wait_exit(1, 0, 0, 5000);
	/* echo of the line by the terminal, then the shell's answer */
	cr_assert_str_eq(stdout_of(1),
			 "prompt\r\nhello world\r\ngot:hello world\r\n");
	/* STDIN_END on a terminal writes nothing; the job runs on */
	exec_started(2, AGENT_EXEC_PTY, "read a; echo \"a=$a\"");
	must(agent_send_stdin_end(&h.c, 2, &err), &err);
	pump(300);
	cr_assert(!has(AGENT_EXIT, 2), "STDIN_END ended a PTY job");
	/* STDIN is refused from now on, so a signal ends it */
	send_stdin(2, "x\n");
	cr_assert_eq(wait_error(2, &f, 5000), EINVAL);
	must(agent_send(&h.c, AGENT_SIGNAL, 2, "\x09\0\0\0", 4, &err), &err);
	wait_exit(2, -1, SIGKILL, 5000);
}

Test(guestagent, signal_and_ctrl_c_reach_a_pty_job)
{
	struct error err = {0};

	hello();
	exec_started(1, AGENT_EXEC_PTY, "echo up; exec sleep 100");
	wait_output(1, "up", 5000);
	must(agent_send(&h.c, AGENT_SIGNAL, 1, "\x0f\0\0\0", 4, &err), &err);
	wait_exit(1, -1, SIGTERM, 5000);
	/* ^C typed on the terminal: SIGINT to the foreground group */
	exec_started(2, AGENT_EXEC_PTY, "echo up; exec sleep 100");
	wait_output(2, "up", 5000);
	send_stdin(2, "\x03");
	wait_exit(2, -1, SIGINT, 5000);
}

Test(guestagent, signal_reaches_the_foreground_job_of_a_job_control_shell)
{
	struct error err = {0};

	hello();
	/*
	 * With job control the shell runs its foreground job in a process
	 * group of its own; the trap keeps the shell alive, so only a signal
	 * to the terminal's foreground group can end sleep before 100 s.
	 * The job prints "up" itself, so it is in the foreground by then.
	 */
	exec_started(1, AGENT_EXEC_PTY,
		     "trap 'echo trapped' INT; set -m; "
		     "sh -c 'echo up; exec sleep 100'; echo \"after:$?\"");
	wait_output(1, "up", 5000);
	must(agent_send(&h.c, AGENT_SIGNAL, 1, "\x02\0\0\0", 4, &err), &err);
	wait_exit(1, 0, 0, 10000);
	cr_assert(strstr(stdout_of(1), "after:130"), "\"%s\"", stdout_of(1));
}

Test(guestagent, queued_stdin_over_256k_stops_reading_the_port)
{
	static char mib[1 << 20];
	struct error err = {0};
	int64_t t0;

	hello();
	memset(mib, 'z', sizeof(mib));
	/* the job reads nothing for 2 s, then all of it */
	exec_started(1, AGENT_EXEC_STDIN, "sleep 2; exec wc -c");
	t0 = now_ms();
	must(agent_send_stdin(&h.c, 1, mib, sizeof(mib), &err), &err);
	must(agent_send(&h.c, AGENT_PING, 77, "p", 1, &err), &err);
	must(agent_send_stdin_end(&h.c, 1, &err), &err);
	/* the agent holds the pipe's 64 KiB, 256 KiB + one frame queued,
	 * and reads no further: PING waits behind the rest */
	pump(1200);
	cr_assert(!has(AGENT_PONG, 77), "PING answered at once");
	cr_assert_gt(agent_pending(&h.c) + h.c.in.len, 0);
	wait_frame(AGENT_PONG, 77, 20000);
	cr_assert_geq(now_ms() - t0, 1500, "PONG before the job read");
	wait_exit(1, 0, 0, 20000);
	/* nothing was lost */
	cr_assert_str_eq(stdout_of(1), "1048576\n");
	cr_assert(!has(AGENT_ERROR, 0), "an ERROR came");
}

Test(guestagent, stdin_queued_for_a_child_that_exits_is_discarded)
{
	static char big[600 << 10];
	struct error err = {0};
	struct frame *fr;
	size_t f = 0;

	hello();
	memset(big, 'q', sizeof(big));
	exec_started(1, AGENT_EXEC_STDIN, "sleep 1; exec head -c 10");
	must(agent_send_stdin(&h.c, 1, big, sizeof(big), &err), &err);
	must(agent_send(&h.c, AGENT_PING, 5, NULL, 0, &err), &err);
	wait_exit(1, 0, 0, 10000);
	cr_assert_str_eq(stdout_of(1), "qqqqqqqqqq");
	/* the port is read again: the rest of the frames are answered
	 * ESRCH (the id ended), then PING */
	wait_frame(AGENT_PONG, 5, 10000);
	while ((fr = find(&f, AGENT_ERROR, 0))) {
		cr_assert_eq(fr->id, 1);
		cr_assert_eq((int32_t)agent_get_u32(fr->data), ESRCH);
	}
}

Test(guestagent, malformed_frames_get_error_and_the_job_continues)
{
	struct error err = {0};
	unsigned char ws[8];
	size_t f = 0;

	hello();
	exec_started(1, AGENT_EXEC_PTY, "read x; echo \"x=$x\"");
	exec_started(2, 0, "sleep 100");
	/* cat ends at STDIN_END; the job goes on */
	exec_started(3, AGENT_EXEC_STDIN, "cat; echo .; exec sleep 100");
	/* rows 0, cols 65536, a short payload, a long one */
	agent_put_u32(ws, 0);
	agent_put_u32(ws + 4, 80);
	must(agent_send(&h.c, AGENT_WINSIZE, 1, ws, 8, &err), &err);
	cr_assert_eq(wait_error(1, &f, 5000), EINVAL);
	agent_put_u32(ws, 24);
	agent_put_u32(ws + 4, 65536);
	must(agent_send(&h.c, AGENT_WINSIZE, 1, ws, 8, &err), &err);
	cr_assert_eq(wait_error(1, &f, 5000), EINVAL);
	must(agent_send(&h.c, AGENT_WINSIZE, 1, ws, 4, &err), &err);
	cr_assert_eq(wait_error(1, &f, 5000), EINVAL);
	must(agent_send(&h.c, AGENT_WINSIZE, 1, "123456789", 9, &err), &err);
	cr_assert_eq(wait_error(1, &f, 5000), EINVAL);
	/* empty STDIN; STDIN_END with a payload */
	must(agent_send(&h.c, AGENT_STDIN, 1, NULL, 0, &err), &err);
	cr_assert_eq(wait_error(1, &f, 5000), EINVAL);
	must(agent_send(&h.c, AGENT_STDIN_END, 1, "x", 1, &err), &err);
	cr_assert_eq(wait_error(1, &f, 5000), EINVAL);
	/* a job without a terminal / without stdin; unknown ids */
	agent_put_u32(ws + 4, 80);
	must(agent_send(&h.c, AGENT_WINSIZE, 2, ws, 8, &err), &err);
	cr_assert_eq(wait_error(2, &f, 5000), EINVAL);
	must(agent_send(&h.c, AGENT_WINSIZE, 3, ws, 8, &err), &err);
	cr_assert_eq(wait_error(3, &f, 5000), EINVAL);
	send_stdin(2, "x");
	cr_assert_eq(wait_error(2, &f, 5000), EINVAL);
	must(agent_send_stdin_end(&h.c, 2, &err), &err);
	cr_assert_eq(wait_error(2, &f, 5000), EINVAL);
	send_stdin(99, "x");
	cr_assert_eq(wait_error(99, &f, 5000), ESRCH);
	must(agent_send_stdin_end(&h.c, 99, &err), &err);
	cr_assert_eq(wait_error(99, &f, 5000), ESRCH);
	must(agent_send_winsize(&h.c, 99, 24, 80, &err), &err);
	cr_assert_eq(wait_error(99, &f, 5000), ESRCH);
	/* STDIN after STDIN_END, STDIN_END twice */
	send_stdin(3, "abc");
	must(agent_send_stdin_end(&h.c, 3, &err), &err);
	wait_output(3, "abc.\n", 5000);
	send_stdin(3, "def");
	cr_assert_eq(wait_error(3, &f, 5000), EINVAL);
	must(agent_send_stdin_end(&h.c, 3, &err), &err);
	cr_assert_eq(wait_error(3, &f, 5000), EINVAL);
	must(agent_send(&h.c, AGENT_SIGNAL, 3, "\x09\0\0\0", 4, &err), &err);
	wait_exit(3, -1, SIGKILL, 5000);
	cr_assert_str_eq(stdout_of(3), "abc.\n");
	/* unknown EXEC flags */
	must(agent_send(&h.c, AGENT_EXEC, 4,
			"\x08\0\0\0\x01\0\0\0\0\0\0\0/\0true", 19, &err),
	     &err);
	cr_assert_eq(wait_error(4, &f, 5000), EINVAL);
	cr_assert(!has(AGENT_STARTED, 4), "EXEC with flag 0x8 started");
	/* all the while the jobs ran on */
	send_stdin(1, "fine\n");
	wait_exit(1, 0, 0, 5000);
	cr_assert(strstr(stdout_of(1), "x=fine\r\n"), "\"%s\"", stdout_of(1));
	must(agent_send(&h.c, AGENT_SIGNAL, 2, "\x09\0\0\0", 4, &err), &err);
	wait_exit(2, -1, SIGKILL, 5000);
}

/* Whether pid runs (a zombie does not: orphans wait for PID 1 to reap). */
static bool
alive(pid_t pid)
{
	char path[64], st[512], *rp;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(st, 1, sizeof(st) - 1, f);
	fclose(f);
	st[n] = '\0';
	rp = strrchr(st, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Descriptors of pid that are pseudo-terminal masters. */
static int
count_ptmx(pid_t pid)
{
	char dir[64], p[320], t[256];
	struct dirent *de;
	DIR *d;
	int n = 0;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	cr_assert(d);
	while ((de = readdir(d))) {
		ssize_t k;

		snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
		k = readlink(p, t, sizeof(t) - 1);
		if (k <= 0)
			continue;
		t[k] = '\0';
		n += !strcmp(t, "/dev/ptmx") ||
		     !strncmp(t, "/dev/pts/ptmx", 13);
	}
	closedir(d);
	return n;
}

Test(guestagent, session_end_kills_pty_jobs_and_closes_their_terminals)
{
	int64_t end;
	pid_t pid, pid2;
	int before, pid3;

	hello();
	before = count_ptmx(h.pid);
	pid = exec_started(1, AGENT_EXEC_PTY, "exec sleep 100");
	cr_assert_eq(count_ptmx(h.pid), before + 3);
	pid2 = exec_started(2, AGENT_EXEC_STDIN, "exec sleep 100");
	/* a job-control shell's foreground job, in a group of its own,
	 * ignoring the hangup of its terminal */
	exec_started(3, AGENT_EXEC_PTY,
		     "trap '' HUP; set -m; "
		     "sh -c 'echo pid=$$; exec sleep 100'");
	wait_output(3, "\r\n", 5000);
	cr_assert_eq(sscanf(stdout_of(3), "pid=%d", &pid3), 1, "%s",
		     stdout_of(3));
	cr_assert(alive(pid3));
	/* the host goes away */
	close(h.m);
	h.m = -1;
	end = now_ms() + 5000;
	while (alive(pid) || alive(pid2) || alive(pid3)) {
		cr_assert_lt(now_ms(), end, "jobs outlived the session");
		usleep(20000);
	}
	cr_assert_eq(count_ptmx(h.pid), before);
}

/*
 * A malformed IDENTITY is refused before anything is applied (a valid
 * one is never sent here: it would reseed, set the clock and name of
 * this very host; t-snapshot checks it in a VM).
 */
Test(guestagent, malformed_identity_is_refused_and_nothing_changes)
{
	unsigned char pl[16 + AGENT_SEED_MAX + 80];
	struct error err = {0};
	char host[65];
	size_t f = 0, from = 1, hn;
	time_t now = time(NULL);

	hello();
	/* were one taken, it would change little: this clock, this name
	 * (and the agent has a UTS namespace of its own, see setup) */
	cr_assert_eq(gethostname(host, sizeof(host)), 0);
	hn = strlen(host) + 1;
	memset(pl, 0x5a, sizeof(pl));
	agent_put_u32(pl, (uint32_t)now);
	agent_put_u32(pl + 4, (uint32_t)((uint64_t)now >> 32));
	agent_put_u32(pl + 8, 0);
	/* a seed below 256 bits */
	agent_put_u32(pl + 12, AGENT_SEED_MIN - 1);
	memcpy(pl + 16 + AGENT_SEED_MIN - 1, host, hn);
	must(agent_send(&h.c, AGENT_IDENTITY, 7, pl,
			16 + AGENT_SEED_MIN - 1 + hn, &err),
	     &err);
	cr_assert_eq(wait_error(7, &f, 5000), EINVAL);
	/* nanoseconds of a second or more */
	agent_put_u32(pl + 8, 1000000000u);
	agent_put_u32(pl + 12, AGENT_SEED_MIN);
	memcpy(pl + 16 + AGENT_SEED_MIN, host, hn);
	must(agent_send(&h.c, AGENT_IDENTITY, 7, pl, 16 + AGENT_SEED_MIN + hn,
			&err),
	     &err);
	cr_assert_eq(wait_error(7, &f, 5000), EINVAL);
	/* a hostname with a slash; one without its NUL */
	agent_put_u32(pl + 8, 0);
	memcpy(pl + 16 + AGENT_SEED_MIN, "a/b", 4);
	must(agent_send(&h.c, AGENT_IDENTITY, 7, pl, 16 + AGENT_SEED_MIN + 4,
			&err),
	     &err);
	cr_assert_eq(wait_error(7, &f, 5000), EINVAL);
	memcpy(pl + 16 + AGENT_SEED_MIN, "ab", 2);
	must(agent_send(&h.c, AGENT_IDENTITY, 7, pl, 16 + AGENT_SEED_MIN + 2,
			&err),
	     &err);
	cr_assert_eq(wait_error(7, &f, 5000), EINVAL);
	/* still serving, and nothing said HELLO again */
	exec_started(1, 0, "exit 3");
	wait_exit(1, 3, 0, 10000);
	cr_assert_null(find(&from, AGENT_HELLO, 0), "a second HELLO came");
}
