/*
 * test-sshbridge.c - qctl-sshbridge: its command lines run by a real
 * shell (every string must come out exactly as it went in), and the
 * program itself given hostile or broken configuration frames.
 */
#include <criterion/criterion.h>

#include "built-program.h"
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmdline.h"
#include "decode.h"
#include "sshbridge-proto.h"

/* Run line with sh -c in dir; stdout into out (NUL-terminated). */
static int
run_sh(const char *dir, const char *line, char *out, size_t cap,
       char *errout, size_t errcap)
{
	int po[2], pe[2], st;
	size_t n = 0, m = 0;
	pid_t pid;

	cr_assert_eq(pipe(po), 0);
	cr_assert_eq(pipe(pe), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(po[1], 1);
		dup2(pe[1], 2);
		close(po[0]);
		close(pe[0]);
		if (dir && chdir(dir) < 0)
			_exit(99);
		/* as sshd runs it: the login shell's -c */
		execl("/bin/sh", "sh", "-c", line, (char *)NULL);
		_exit(98);
	}
	close(po[1]);
	close(pe[1]);
	for (;;) {
		ssize_t r = read(po[0], out + n, cap - 1 - n);

		if (r <= 0)
			break;
		n += (size_t)r;
	}
	out[n] = '\0';
	if (errout) {
		for (;;) {
			ssize_t r = read(pe[0], errout + m, errcap - 1 - m);

			if (r <= 0)
				break;
			m += (size_t)r;
		}
		errout[m] = '\0';
	}
	close(po[0]);
	close(pe[0]);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static const char *const nasty[] = {
	"plain", "", "it's", "''", "a\"b", "$HOME", "$(touch /tmp/qctl-pwn)",
	"`id`", "back\\slash", "new\nline", "-n", "--", "semi; echo pwned",
	"*", "~", "tab\there", "'\\''", "!$#&|<>",
};

Test(sshbridge, quote_survives_the_shell)
{
	for (size_t i = 0; i < sizeof(nasty) / sizeof(nasty[0]); i++) {
		char line[512] = "printf %s ", out[512];

		cr_assert_eq(sb_quote(line, sizeof(line), nasty[i]), 0);
		cr_expect_eq(run_sh(NULL, line, out, sizeof(out), NULL, 0), 0);
		cr_expect_str_eq(out, nasty[i], "string %zu", i);
	}
	cr_expect_eq(access("/tmp/qctl-pwn", F_OK), -1);
}

Test(sshbridge, quote_refuses_what_does_not_fit)
{
	char small[8] = "";

	cr_expect_eq(sb_quote(small, sizeof(small), "abcde"), 0);
	cr_expect_str_eq(small, "'abcde'");
	small[0] = '\0';
	cr_expect_eq(sb_quote(small, sizeof(small), "abcdef"), -1);
	small[0] = '\0';
	cr_expect_eq(sb_quote(small, sizeof(small), "a'b"), -1);
}

Test(sshbridge, exec_command_env_cwd_args)
{
	char dir[] = "/tmp/qctl-sb-XXXXXX", sub[128], line[8192], out[8192],
	     jobs[128], p[300];
	struct ga_exec e = {0};

	cr_assert_not_null(mkdtemp(dir));
	snprintf(sub, sizeof(sub), "%s/it's a dir", dir);
	cr_assert_eq(mkdir(sub, 0755), 0);
	e.flags = AGENT_EXEC_SHELL;
	e.cwd = sub;
	e.argc = 3;
	e.argv[0] = "printf '%s|%s|%s|%s|%s\\n' \"$(pwd)\" \"$A\" \"$0\" "
		    "\"$1\" \"$PATH\"; env | sort | cut -d= -f1 | tr '\\n' ' '";
	e.argv[1] = "zero's";
	e.argv[2] = "$(one)";
	e.envc = 3;
	e.envv[0] = "A=first";
	e.envv[1] = "A=it's \"$HOME\" `x`";	/* a later entry wins */
	e.envv[2] = "PATH=/usr/bin:/bin";
	snprintf(jobs, sizeof(jobs), "%s/job's dir", dir);
	cr_assert_eq(sb_exec_command(&e, 7, jobs, line, sizeof(line)), 0);
	cr_expect_eq(run_sh("/", line, out, sizeof(out), NULL, 0), 0);
	{
		char want[1024];

		snprintf(want, sizeof(want),
			 "%s|it's \"$HOME\" `x`|zero's|$(one)|/usr/bin:/bin\n"
			 "A HOME PATH PWD TERM ",
			 sub);
		cr_expect_str_eq(out, want);
	}
	/* without the shell flag: argv as it is, searched in PATH */
	e.flags = 0;
	e.argc = 3;
	e.argv[0] = "printf";
	e.argv[1] = "[%s]";
	e.argv[2] = "a b'c";
	e.envc = 0;
	cr_assert_eq(sb_exec_command(&e, 8, jobs, line, sizeof(line)), 0);
	cr_expect_eq(run_sh("/", line, out, sizeof(out), NULL, 0), 0);
	cr_expect_str_eq(out, "[a b'c]");
	/* each job noted a pid */
	snprintf(p, sizeof(p), "%s/7", jobs);
	cr_expect_eq(access(p, F_OK), 0);
	/* a missing cwd fails, nothing runs */
	e.cwd = "/nonexistent/qctl";
	cr_assert_eq(sb_exec_command(&e, 9, jobs, line, sizeof(line)), 0);
	cr_expect_neq(run_sh("/", line, out, sizeof(out), NULL, 0), 0);
	cr_expect_str_eq(out, "");
	snprintf(line, sizeof(line), "rm -rf '%s'", dir);
	cr_expect_eq(system(line), 0);
}

Test(sshbridge, exec_command_too_long)
{
	static char big[70000], line[SB_CMDLINE_MAX + 1];
	struct ga_exec e = {0};

	/* every quote costs four bytes: 64 KiB of them is too much */
	memset(big, '\'', sizeof(big) - 1);
	e.flags = AGENT_EXEC_SHELL;
	e.cwd = "/";
	e.argc = 1;
	e.argv[0] = big;
	cr_expect_eq(sb_exec_command(&e, 1, SB_JOB_DIR, line, sizeof(line)),
		     -1);
	memset(big, 'x', sizeof(big) - 1);
	cr_expect_eq(sb_exec_command(&e, 1, SB_JOB_DIR, line, sizeof(line)),
		     0);
}

Test(sshbridge, file_in_and_file_out)
{
	char dir[] = "/tmp/qctl-sb-XXXXXX", line[8192], out[65536],
	     err[4096], p[512], dest[300];
	struct ga_file_out fo = {0};
	struct ga_file_in fi;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(p, sizeof(p), "%s/a.txt", dir);
	f = fopen(p, "w");
	fputs("A", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/it's b.txt", dir);
	f = fopen(p, "w");
	fputs("B", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/.hidden.txt", dir);
	f = fopen(p, "w");
	fclose(f);
	fo.dir = dir;
	fo.n = 3;
	fo.globs[0] = "*.txt";
	fo.globs[1] = "nomatch*";
	fo.globs[2] = "gone.txt";
	cr_assert_eq(sb_file_out_command(&fo, line, sizeof(line)), 0);
	/* listed by tar -t: both, not the dot file */
	{
		char l2[9000];

		snprintf(l2, sizeof(l2), "(%s) | tar -t -f -", line);
		cr_expect_eq(run_sh("/", l2, out, sizeof(out), err,
				    sizeof(err)), 0);
		cr_expect_str_eq(out, "a.txt\nit's b.txt\n");
		cr_expect_str_eq(err, "no match: nomatch*\nno match: gone.txt\n");
	}
	/* nothing matches: no archive at all, status 0 */
	fo.n = 1;
	fo.globs[0] = "*.none";
	cr_assert_eq(sb_file_out_command(&fo, line, sizeof(line)), 0);
	cr_expect_eq(run_sh("/", line, out, sizeof(out), err, sizeof(err)), 0);
	cr_expect_str_eq(out, "");
	/* FILE_IN: made with mkdir -p, unpacked there */
	snprintf(dest, sizeof(dest), "%s/new dir/x'y", dir);
	fi.dir = dest;
	cr_assert_eq(sb_file_in_command(&fi, line, sizeof(line)), 0);
	{
		char l2[9000];

		snprintf(l2, sizeof(l2), "tar -c -f - -C '%s' a.txt | (%s)",
			 dir, line);
		cr_expect_eq(run_sh("/", l2, out, sizeof(out), NULL, 0), 0);
		snprintf(p, sizeof(p), "%s/a.txt", dest);
		cr_expect_eq(access(p, F_OK), 0);
	}
	snprintf(line, sizeof(line), "rm -rf '%s'", dir);
	cr_expect_eq(system(line), 0);
}

Test(sshbridge, signal_kills_the_process_group)
{
	char dir[] = "/tmp/qctl-sb-XXXXXX", line[1024], out[64], p[128];
	int st;
	pid_t leader, member;
	FILE *f;

	cr_assert_not_null(mkdtemp(dir));
	/* a job as sshd leaves it: a session leader and a child of it */
	leader = fork();
	cr_assert_geq(leader, 0);
	if (leader == 0) {
		setsid();
		execl("/bin/sh", "sh", "-c", "sleep 60 & wait", (char *)NULL);
		_exit(99);
	}
	snprintf(p, sizeof(p), "%s/42", dir);
	f = fopen(p, "w");
	fprintf(f, "%d\n", (int)leader);
	fclose(f);
	usleep(200000);
	/* its child, in its group */
	snprintf(line, sizeof(line), "pgrep -g %d -x sleep", (int)leader);
	cr_assert_eq(run_sh("/", line, out, sizeof(out), NULL, 0), 0);
	member = atoi(out);
	cr_assert_gt(member, 0);
	cr_assert_eq(sb_signal_command(42, SIGTERM, dir, line, sizeof(line)),
		     0);
	cr_expect_eq(run_sh("/", line, out, sizeof(out), NULL, 0), 0);
	cr_assert_eq(waitpid(leader, &st, 0), leader);
	cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM, "status %d",
		  st);
	/* the other one gone too (or a zombie: its parent went first) */
	{
		char sp[64], stat[256] = "";
		FILE *sf;

		usleep(300000);
		snprintf(sp, sizeof(sp), "/proc/%d/stat", (int)member);
		sf = fopen(sp, "r");
		if (sf) {
			if (!fgets(stat, sizeof(stat), sf))
				stat[0] = '\0';
			fclose(sf);
		}
		cr_expect(!sf || strstr(stat, ") Z ") != NULL,
			  "the group's other process lives: %s", stat);
	}
	/* a job that noted nothing: the kill fails after its wait */
	cr_assert_eq(sb_signal_command(43, SIGTERM, dir, line, sizeof(line)),
		     0);
	cr_expect_neq(run_sh("/", line, out, sizeof(out), NULL, 0), 0);
	cr_expect_eq(sb_signal_command(42, 0, dir, line, sizeof(line)), -1);
	cr_expect_eq(sb_signal_command(42, 65, dir, line, sizeof(line)), -1);
	snprintf(line, sizeof(line), "rm -rf '%s'", dir);
	cr_expect_eq(system(line), 0);
}

Test(sshbridge, signal_names)
{
	cr_expect_str_eq(sb_signal_name(SIGTERM), "TERM");
	cr_expect_str_eq(sb_signal_name(SIGKILL), "KILL");
	cr_expect_null(sb_signal_name(SIGCHLD));
	cr_expect_null(sb_signal_name(64));
	cr_expect_eq(sb_signal_number("INT"), SIGINT);
	cr_expect_eq(sb_signal_number("SIGINT"), 0);
	cr_expect_eq(sb_signal_number(""), 0);
}

/* ---- the program, given configuration frames ------------------------ */

/* $QCTL_SSHBRIDGE, else the build's own (we are BUILD/tests/test-sshbridge,
 * build/ or build/san/). */
static const char *
bridge_path(void)
{
	return built_program("QCTL_SSHBRIDGE", "qctl-sshbridge");
}

/* Start the bridge with bytes queued on its socket; our end of it. */
static pid_t
bridge_start(const void *bytes, size_t n, bool close_after, int *fd)
{
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	if (n)
		cr_assert_eq(write(sv[0], bytes, n), (ssize_t)n);
	if (close_after)
		shutdown(sv[0], SHUT_WR);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(sv[1], SSHBRIDGE_FD);
		execl(bridge_path(), "qctl-sshbridge", (char *)NULL);
		_exit(97);
	}
	close(sv[1]);
	*fd = sv[0];
	return pid;
}

/* The exit status, and the first frame it sent (type 0: none). */
static int
bridge_end(pid_t pid, int fd, struct agent_hdr *h, char *msg, size_t cap,
	   int32_t *code)
{
	unsigned char buf[AGENT_HDR_SIZE + 4096];
	size_t got = 0;
	int st;

	memset(h, 0, sizeof(*h));
	msg[0] = '\0';
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		ssize_t r;

		if (poll(&pfd, 1, 20000) != 1)
			break;
		r = read(fd, buf + got, sizeof(buf) - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	if (got >= AGENT_HDR_SIZE) {
		cr_assert_eq(agent_hdr_decode(buf, h), 0);
		cr_assert_eq(got, AGENT_HDR_SIZE + h->len);
		*code = (int32_t)agent_get_u32(buf + AGENT_HDR_SIZE);
		snprintf(msg, cap, "%.*s", (int)(h->len - 5),
			 buf + AGENT_HDR_SIZE + 4);
	}
	close(fd);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static size_t
config(unsigned char *out, uint32_t version, uint32_t ms, uint32_t port,
       const char *addr, const char *hk, const char *ck)
{
	unsigned char *p = out + AGENT_HDR_SIZE;
	struct agent_hdr h = {.type = SSHBRIDGE_CONFIG};

	agent_put_u32(p, version);
	agent_put_u32(p + 4, ms);
	agent_put_u32(p + 8, port);
	p += 12;
	strcpy((char *)p, addr);
	p += strlen(addr) + 1;
	strcpy((char *)p, hk);
	p += strlen(hk) + 1;
	strcpy((char *)p, ck);
	p += strlen(ck) + 1;
	h.len = (uint32_t)(p - out - AGENT_HDR_SIZE);
	agent_hdr_encode(out, &h);
	return (size_t)(p - out);
}

/* a throwaway ed25519 pair in OpenSSH formats, made for this test */
static const char HOST_PUB[] =
	"AAAAC3NzaC1lZDI1NTE5AAAAINFF1uBHyLhqbgn17HhclDr5P1ASAbyUKgRRDOVXV9FD";
static const char CLIENT_KEY[] =
	"-----BEGIN OPENSSH PRIVATE KEY-----\n"
	"b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
	"QyNTUxOQAAACDRRdbgR8i4am4J9ex4XJQ6+T9QEgG8lCoEUQzlV1fRQwAAAJAxKKZsMSim\n"
	"bAAAAAtzc2gtZWQyNTUxOQAAACDRRdbgR8i4am4J9ex4XJQ6+T9QEgG8lCoEUQzlV1fRQw\n"
	"AAAEDZTWopNsnAdqfJ8EGzAjPYe98ZM3nBGlr3XAefQWx8t9FF1uBHyLhqbgn17HhclDr5\n"
	"P1ASAbyUKgRRDOVXV9FDAAAACnFjdGwtdGVzdHMBAgM=\n"
	"-----END OPENSSH PRIVATE KEY-----\n";

Test(sshbridge, manager_gone_before_config)
{
	struct agent_hdr h;
	char msg[512];
	int32_t code;
	int fd;
	pid_t pid = bridge_start(NULL, 0, true, &fd);

	cr_expect_eq(bridge_end(pid, fd, &h, msg, sizeof(msg), &code), 0);
	cr_expect_eq(h.type, 0);
}

Test(sshbridge, bad_config_frames_are_refused)
{
	unsigned char f[4096];
	struct {
		const char *what;
		size_t n;
		const char *want;
	} cases[8];
	size_t nc = 0;
	struct agent_hdr hdr = {.len = 70000, .type = SSHBRIDGE_CONFIG};

	/* each one in a buffer of its own */
	static unsigned char bufs[8][4096];

	agent_hdr_encode(bufs[nc], &hdr);
	cases[nc++] = (typeof(cases[0])){"oversized", AGENT_HDR_SIZE,
					 "bad configuration frame"};
	hdr = (struct agent_hdr){.len = 0, .type = AGENT_EXEC};
	agent_hdr_encode(bufs[nc], &hdr);
	cases[nc++] = (typeof(cases[0])){"not a config", AGENT_HDR_SIZE,
					 "bad configuration frame"};
	cases[nc].n = config(bufs[nc], 9, 1000, 22, "169.254.77.2", HOST_PUB,
			     CLIENT_KEY);
	cases[nc].what = "version";
	cases[nc++].want = "configuration version 9, not 1";
	cases[nc].n = config(bufs[nc], 1, 1000, 0, "169.254.77.2", HOST_PUB,
			     CLIENT_KEY);
	cases[nc].what = "port 0";
	cases[nc++].want = "bad address, port or time";
	cases[nc].n = config(bufs[nc], 1, 1000, 22, "guest.example", HOST_PUB,
			     CLIENT_KEY);
	cases[nc].what = "a name";
	cases[nc++].want = "bad address, port or time";
	cases[nc].n = config(bufs[nc], 1, 1000, 22, "169.254.77.2", "AAAA",
			     CLIENT_KEY);
	cases[nc].what = "host key";
	cases[nc++].want = "bad host key";
	cases[nc].n = config(bufs[nc], 1, 1000, 22, "169.254.77.2", HOST_PUB,
			     "-----BEGIN NOTHING-----");
	cases[nc].what = "client key";
	cases[nc++].want = "bad client key";
	/* the strings must fill the payload exactly */
	cases[nc].n = config(bufs[nc], 1, 1000, 22, "169.254.77.2", HOST_PUB,
			     CLIENT_KEY);
	bufs[nc][0]++;
	bufs[nc][cases[nc].n++] = 'x';
	cases[nc].what = "trailing byte";
	cases[nc++].want = "malformed configuration";
	(void)f;
	for (size_t i = 0; i < nc; i++) {
		struct agent_hdr h;
		char msg[512];
		int32_t code = 0;
		int fd;
		pid_t pid = bridge_start(bufs[i], cases[i].n, false, &fd);

		cr_expect_eq(bridge_end(pid, fd, &h, msg, sizeof(msg), &code),
			     1, "%s: exit", cases[i].what);
		cr_expect_eq(h.type, AGENT_ERROR, "%s", cases[i].what);
		cr_expect_eq(h.id, 0u);
		cr_expect_eq(code, SSHBRIDGE_E_CONFIG, "%s", cases[i].what);
		cr_expect_str_eq(msg, cases[i].want, "%s", cases[i].what);
	}
}

Test(sshbridge, no_server_is_a_clear_error_in_time)
{
	static unsigned char buf[4096];
	struct agent_hdr h;
	char msg[512];
	int32_t code = 0;
	int fd;
	/* nothing listens on 127.0.0.1:9 (discard) on a test host */
	size_t n = config(buf, 1, 1500, 9, "127.0.0.1", HOST_PUB, CLIENT_KEY);
	pid_t pid = bridge_start(buf, n, false, &fd);

	cr_expect_eq(bridge_end(pid, fd, &h, msg, sizeof(msg), &code), 1);
	cr_expect_eq(h.type, AGENT_ERROR);
	cr_expect_eq(code, SSHBRIDGE_E_CONNECT);
	cr_expect(strstr(msg, "no ssh server answered at 127.0.0.1:9 within "
			      "2s") != NULL, "%s", msg);
}

/* ---- the program against an ssh server of the test's own ----------- */

#include <arpa/inet.h>
#include <libssh/libssh.h>
#include <libssh/server.h>
#include <netinet/in.h>

/* What the test's server does with the one exec it is asked for. */
enum srv_mode { SRV_NORMAL, SRV_SIGNAL, SRV_NOSTATUS, SRV_REFUSE, SRV_TARFAIL };

struct srv {
	pid_t pid;
	int port;
	char cmdfile[64];
};

static void
srv_exec(ssh_channel ch, enum srv_mode mode)
{
	switch (mode) {
	case SRV_NORMAL:
		/* (stdout went out before the exec's answer) */
		ssh_channel_write_stderr(ch, "err\n", 4);
		ssh_channel_request_send_exit_status(ch, 3);
		break;
	case SRV_SIGNAL:
		ssh_channel_write(ch, "x", 1);
		ssh_channel_request_send_exit_signal(ch, "TERM", 0, "", "");
		break;
	case SRV_TARFAIL:
		/* a tar that gives up before reading its input */
		ssh_channel_write_stderr(ch, "tar: broken\n", 12);
		ssh_channel_request_send_exit_status(ch, 2);
		break;
	default:
		break;
	}
	ssh_channel_send_eof(ch);
	ssh_channel_close(ch);
}

/* One connection on lfd, in a child: key exchange with key, any login
 * (or none: SRV_REFUSE), one session channel, its exec. */
static void __attribute__((noreturn))
srv_child(int lfd, ssh_key key, enum srv_mode mode, const char *cmdfile)
{
	ssh_bind b = ssh_bind_new();
	ssh_session s = ssh_new();
	ssh_channel ch = NULL;
	ssh_message m;
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0 || !b || !s ||
	    ssh_bind_options_set(b, SSH_BIND_OPTIONS_IMPORT_KEY, key) < 0 ||
	    ssh_bind_accept_fd(b, s, fd) != SSH_OK ||
	    ssh_handle_key_exchange(s) != SSH_OK)
		_exit(1);
	while ((m = ssh_message_get(s)) != NULL) {
		int t = ssh_message_type(m), st = ssh_message_subtype(m);

		if (t == SSH_REQUEST_AUTH && st == SSH_AUTH_METHOD_PUBLICKEY &&
		    mode != SRV_REFUSE) {
			ssh_message_auth_reply_success(m, 0);
		} else if (t == SSH_REQUEST_CHANNEL_OPEN &&
			   st == SSH_CHANNEL_SESSION) {
			ch = ssh_message_channel_request_open_reply_accept(m);
		} else if (t == SSH_REQUEST_CHANNEL &&
			   st == SSH_CHANNEL_REQUEST_EXEC && ch) {
			FILE *f = fopen(cmdfile, "w");

			if (f) {
				fputs(ssh_message_channel_request_command(m),
				      f);
				fclose(f);
			}
			/* output before the answer to the exec: ssh allows
			 * it, and the bridge gets both in one go */
			if (mode == SRV_NORMAL)
				ssh_channel_write(ch, "out\n", 4);
			ssh_message_channel_request_reply_success(m);
			srv_exec(ch, mode);
		} else {
			if (t == SSH_REQUEST_AUTH)
				ssh_message_auth_set_methods(
					m, SSH_AUTH_METHOD_PUBLICKEY);
			ssh_message_reply_default(m);
		}
		ssh_message_free(m);
	}
	_exit(0);
}

static void
srv_start(struct srv *v, ssh_key key, enum srv_mode mode)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int lfd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_geq(lfd, 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(lfd, 1), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	v->port = ntohs(sa.sin_port);
	snprintf(v->cmdfile, sizeof(v->cmdfile), "/tmp/qctl-sb-cmd.%d",
		 (int)getpid());
	unlink(v->cmdfile);
	v->pid = fork();
	cr_assert_geq(v->pid, 0);
	if (v->pid == 0)
		srv_child(lfd, key, mode, v->cmdfile);
	close(lfd);
}

static void
srv_stop(struct srv *v)
{
	kill(v->pid, SIGKILL);
	waitpid(v->pid, NULL, 0);
	unlink(v->cmdfile);
}

/* One whole frame within 20 s; its payload in p (NUL added). */
static int
frame_read(int fd, struct agent_hdr *h, unsigned char *p, size_t cap)
{
	unsigned char hb[AGENT_HDR_SIZE];
	size_t got = 0, want = sizeof(hb);
	unsigned char *dst = hb;

	for (int part = 0; part < 2; part++) {
		while (got < want) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};
			ssize_t r;

			if (poll(&pfd, 1, 20000) != 1)
				return -1;
			r = read(fd, dst + got, want - got);
			if (r <= 0)
				return -1;
			got += (size_t)r;
		}
		if (part == 0) {
			cr_assert_eq(agent_hdr_decode(hb, h), 0);
			cr_assert_lt(h->len, cap);
			dst = p;
			got = 0;
			want = h->len;
		}
	}
	p[h->len] = '\0';
	return 0;
}

static ssh_key
key_new(void)
{
	ssh_key k = NULL;

	cr_assert_eq(ssh_pki_generate(SSH_KEYTYPE_ED25519, 0, &k), SSH_OK);
	return k;
}

/* The bridge, configured to reach v with pinned as the host key. */
static pid_t
bridge_to(const struct srv *v, ssh_key pinned, int *fd)
{
	static unsigned char buf[8192];
	ssh_key client = key_new();
	char *pub = NULL, *priv = NULL;
	size_t n;
	pid_t pid;

	cr_assert_eq(ssh_pki_export_pubkey_base64(pinned, &pub), SSH_OK);
	cr_assert_eq(ssh_pki_export_privkey_base64(client, NULL, NULL, NULL,
						   &priv),
		     SSH_OK);
	n = config(buf, 1, 10000, (uint32_t)v->port, "127.0.0.1", pub, priv);
	pid = bridge_start(buf, n, false, fd);
	ssh_string_free_char(pub);
	ssh_string_free_char(priv);
	ssh_key_free(client);
	return pid;
}

/* Frames of one EXEC of "true" in /src, up to its EXIT: their types in
 * order, the payloads of STDOUT and STDERR, the EXIT's code and signal. */
static void
run_exec(int fd, char *types, size_t cap, char *out, char *err,
	 int32_t *code, int32_t *sig)
{
	unsigned char f[AGENT_HDR_SIZE + 64], p[AGENT_MAX_PAYLOAD + 1];
	unsigned char *q = f + AGENT_HDR_SIZE;
	struct agent_hdr h = {.type = AGENT_EXEC, .id = 100};
	size_t nt = 0;

	agent_put_u32(q, AGENT_EXEC_SHELL);
	agent_put_u32(q + 4, 1);
	agent_put_u32(q + 8, 0);
	memcpy(q + 12, "/src\0true\0", 10);
	h.len = 22;
	agent_hdr_encode(f, &h);
	cr_assert_eq(write(fd, f, AGENT_HDR_SIZE + h.len),
		     (ssize_t)(AGENT_HDR_SIZE + h.len));
	out[0] = err[0] = '\0';
	for (;;) {
		cr_assert_eq(frame_read(fd, &h, p, sizeof(p)), 0,
			     "no frame; so far: %s", types);
		cr_assert_eq(h.id, 100u);
		cr_assert_lt(nt + 2, cap);
		types[nt++] = h.type == AGENT_STARTED  ? 'S'
			      : h.type == AGENT_STDOUT ? 'O'
			      : h.type == AGENT_STDERR ? 'E'
			      : h.type == AGENT_EXIT   ? 'X'
						       : '?';
		types[nt] = '\0';
		if (h.type == AGENT_STDOUT)
			strcat(out, (char *)p);
		if (h.type == AGENT_STDERR)
			strcat(err, (char *)p);
		if (h.type == AGENT_EXIT) {
			cr_assert_eq(h.len, 8u);
			*code = (int32_t)agent_get_u32(p);
			*sig = (int32_t)agent_get_u32(p + 4);
			return;
		}
	}
}

static void
hello(int fd)
{
	unsigned char p[1024];
	struct agent_hdr h;

	cr_assert_eq(frame_read(fd, &h, p, sizeof(p)), 0, "no HELLO");
	cr_assert_eq(h.type, AGENT_HELLO, "type %u: %s", h.type, p + 4);
	cr_assert_eq(agent_get_u32(p), AGENT_PROTO_VERSION);
}

Test(sshbridge_server, exec_frames_in_order)
{
	ssh_key hk = key_new();
	struct srv v;
	char types[32], out[256], err[256], cmd[512] = "";
	int32_t code = -9, sig = -9;
	int fd, st;
	pid_t pid;
	FILE *f;

	srv_start(&v, hk, SRV_NORMAL);
	pid = bridge_to(&v, hk, &fd);
	hello(fd);
	run_exec(fd, types, sizeof(types), out, err, &code, &sig);
	/* STARTED first, what came before or with the exec's answer after
	 * it, in order */
	cr_expect_str_eq(types, "SOEX");
	cr_expect_str_eq(out, "out\n");
	cr_expect_str_eq(err, "err\n");
	cr_expect_eq(code, 3);
	cr_expect_eq(sig, 0);
	f = fopen(v.cmdfile, "r");
	cr_assert_not_null(f);
	cr_assert_not_null(fgets(cmd, sizeof(cmd), f));
	fclose(f);
	cr_expect(strncmp(cmd, "mkdir -p -- '/run/qctl/jobs' && echo $$ > "
			       "'/run/qctl/jobs'/100 && cd -- '/src' && exec "
			       "env -i -- 'PATH=", 101) == 0,
		  "%s", cmd);
	cr_expect(strstr(cmd, " /bin/sh -c 'true'") != NULL, "%s", cmd);
	/* the manager going away ends the bridge, with 0 */
	close(fd);
	cr_expect_eq(waitpid(pid, &st, 0), pid);
	cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d", st);
	srv_stop(&v);
	ssh_key_free(hk);
}

Test(sshbridge_server, exit_signal_and_no_status)
{
	ssh_key hk = key_new();
	enum srv_mode modes[] = {SRV_SIGNAL, SRV_NOSTATUS};

	for (size_t i = 0; i < 2; i++) {
		struct srv v;
		char types[32], out[256], err[256];
		int32_t code = -9, sig = -9;
		int fd;
		pid_t pid;

		srv_start(&v, hk, modes[i]);
		pid = bridge_to(&v, hk, &fd);
		hello(fd);
		run_exec(fd, types, sizeof(types), out, err, &code, &sig);
		if (modes[i] == SRV_SIGNAL) {
			cr_expect_str_eq(types, "SOX");
			cr_expect_eq(code, -1);
			cr_expect_eq(sig, SIGTERM);
		} else {
			/* said, and exit 255 as ssh(1) would */
			cr_expect_str_eq(types, "SEX");
			cr_expect(strstr(err, "no exit status") != NULL);
			cr_expect_eq(code, 255);
			cr_expect_eq(sig, 0);
		}
		close(fd);
		waitpid(pid, NULL, 0);
		srv_stop(&v);
	}
	ssh_key_free(hk);
}

Test(sshbridge_server, host_key_pinned_and_login_refused)
{
	ssh_key hk = key_new(), other = key_new();
	struct agent_hdr h;
	char msg[512];
	int32_t code = 0;
	struct srv v;
	int fd;
	pid_t pid;

	/* a server with another key than the pinned one */
	srv_start(&v, hk, SRV_NORMAL);
	pid = bridge_to(&v, other, &fd);
	cr_expect_eq(bridge_end(pid, fd, &h, msg, sizeof(msg), &code), 1);
	cr_expect_eq(h.type, AGENT_ERROR);
	cr_expect_eq(code, SSHBRIDGE_E_HOSTKEY);
	cr_expect(strncmp(msg, "host key of the guest does not match: it "
			       "showed ssh-ed25519 SHA256:", 64) == 0,
		  "%s", msg);
	cr_expect(access(v.cmdfile, F_OK) < 0, "an exec reached the server");
	srv_stop(&v);
	/* the right key, but the login refused */
	srv_start(&v, hk, SRV_REFUSE);
	pid = bridge_to(&v, hk, &fd);
	cr_expect_eq(bridge_end(pid, fd, &h, msg, sizeof(msg), &code), 1);
	cr_expect_eq(h.type, AGENT_ERROR);
	cr_expect_eq(code, SSHBRIDGE_E_AUTH);
	cr_expect(strstr(msg, "refused this build's client key") != NULL,
		  "%s", msg);
	srv_stop(&v);
	ssh_key_free(hk);
	ssh_key_free(other);
}

Test(sshbridge_server, file_in_done_only_after_data_end)
{
	ssh_key hk = key_new();
	unsigned char f[AGENT_HDR_SIZE + 64], p[AGENT_MAX_PAYLOAD + 1];
	struct agent_hdr h;
	struct pollfd pfd;
	char cmd[512] = "";
	struct srv v;
	int fd;
	pid_t pid;
	FILE *cf;

	srv_start(&v, hk, SRV_TARFAIL);
	pid = bridge_to(&v, hk, &fd);
	hello(fd);
	h = (struct agent_hdr){.type = AGENT_FILE_IN, .id = 1, .len = 5};
	agent_hdr_encode(f, &h);
	memcpy(f + AGENT_HDR_SIZE, "/src", 5);
	cr_assert_eq(write(fd, f, AGENT_HDR_SIZE + 5), AGENT_HDR_SIZE + 5);
	h = (struct agent_hdr){.type = AGENT_DATA, .id = 1, .len = 3};
	agent_hdr_encode(f, &h);
	memcpy(f + AGENT_HDR_SIZE, "abc", 3);
	cr_assert_eq(write(fd, f, AGENT_HDR_SIZE + 3), AGENT_HDR_SIZE + 3);
	/* tar is gone; the agent would say so only after DATA_END */
	pfd = (struct pollfd){.fd = fd, .events = POLLIN};
	cr_expect_eq(poll(&pfd, 1, 1500), 0, "a frame before DATA_END");
	/* later DATA for it is dropped, not an error */
	cr_assert_eq(write(fd, f, AGENT_HDR_SIZE + 3), AGENT_HDR_SIZE + 3);
	h = (struct agent_hdr){.type = AGENT_DATA_END, .id = 1};
	agent_hdr_encode(f, &h);
	cr_assert_eq(write(fd, f, AGENT_HDR_SIZE), AGENT_HDR_SIZE);
	cr_assert_eq(frame_read(fd, &h, p, sizeof(p)), 0);
	cr_expect_eq(h.type, AGENT_FILE_DONE);
	cr_expect_eq(h.id, 1u);
	cr_expect_eq((int32_t)agent_get_u32(p), 2);
	cr_expect_str_eq((char *)p + 4, "tar: broken\n");
	cf = fopen(v.cmdfile, "r");
	cr_assert_not_null(cf);
	cr_assert_not_null(fgets(cmd, sizeof(cmd), cf));
	fclose(cf);
	cr_expect_str_eq(cmd, "mkdir -p -- '/src' && cd -- '/src' && exec tar "
			      "-x -f -");
	close(fd);
	waitpid(pid, NULL, 0);
	srv_stop(&v);
	ssh_key_free(hk);
}
