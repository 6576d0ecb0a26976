/*
 * test-sshd-sandbox.c - qctl-sshd's privilege drop and seccomp allowlist,
 * in forked children
 *
 * The filter loads under no_new_privs without root; the drop to nobody
 * needs root and is skipped without it (t-sshd.sh reads the real
 * process's /proc status as well).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sshd-sandbox.h"

typedef void (*body_fn)(void);

/* Run body in a child under the filter; its wait status. */
static int
confined(body_fn body)
{
	struct error err = { 0 };
	pid_t pid;
	int st;

	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
		    sshd_sandbox_seccomp(&err) < 0)
			_exit(100);
		body();
		syscall(SYS_exit_group, 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static void
serving(void)
{
	/* What serving does: heap, sockets it has, the clock, randomness,
	 * its own check. */
	char *big = malloc(1 << 20), buf[16];

	if (!big)
		syscall(SYS_exit_group, 101);
	memset(big, 1, 1 << 20);
	free(big);
	if (getrandom(buf, sizeof(buf), 0) != sizeof(buf))
		syscall(SYS_exit_group, 102);
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
		syscall(SYS_exit_group, 103);
	/* a late configuration lookup fails, and does not kill */
	if (syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY) != -1 ||
	    errno != EACCES)
		syscall(SYS_exit_group, 104);
	if (write(2, "", 0) < 0 || getpid() <= 0)
		syscall(SYS_exit_group, 105);
}

static void
call_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
}

static void
call_socketpair(void)
{
	int sv[2];

	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}

static void
call_connect(void)
{
	connect(0, NULL, 0);
}

static void
call_execve(void)
{
	char *argv[] = { (char *)"true", NULL };

	execve("/bin/true", argv, argv + 1);
}

static void
call_fork(void)
{
	syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
}

static void
call_ptrace(void)
{
	syscall(SYS_ptrace, 0, 0, 0, 0);
}

static void
call_prctl_other(void)
{
	prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
}

static void
call_kill(void)
{
	kill(1, 0);
}

Test(sshd_sandbox, serving_needs_are_allowed)
{
	int st = confined(serving);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		  "status 0x%x (exit %d, signal %d)", st,
		  WIFEXITED(st) ? WEXITSTATUS(st) : -1,
		  WIFSIGNALED(st) ? WTERMSIG(st) : -1);
}

Test(sshd_sandbox, forbidden_calls_kill_with_sigsys)
{
	static const struct {
		const char *name;
		body_fn fn;
	} calls[] = {
		{ "socket", call_socket },   { "socketpair", call_socketpair },
		{ "connect", call_connect }, { "execve", call_execve },
		{ "clone", call_fork },	     { "ptrace", call_ptrace },
		{ "prctl(PR_SET_DUMPABLE)", call_prctl_other },
		{ "kill", call_kill },
	};

	for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
		int st = confined(calls[i].fn);

		cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
			  "%s: status 0x%x", calls[i].name, st);
	}
}

Test(sshd_sandbox, drop_to_nobody)
{
	struct error err = { 0 };
	pid_t pid;
	int st;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		uid_t r, e, s;

		if (sshd_sandbox_drop(true, 65534, 65534, &err) < 0)
			_exit(100);
		if (getresuid(&r, &e, &s) < 0 || r != 65534 || e != 65534 ||
		    s != 65534 || getgroups(0, NULL) != 0 ||
		    prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1 ||
		    prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 0 ||
		    prctl(PR_CAPBSET_READ, 0, 0, 0, 0) != 0)
			_exit(101);
		/* and root cannot come back */
		if (setuid(0) == 0)
			_exit(102);
		_exit(0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status 0x%x", st);
}
