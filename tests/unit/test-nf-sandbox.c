/*
 * test-nf-sandbox.c - the helper's seccomp allowlist, in forked children
 *
 * Needs no root: the filter loads under no_new_privs.  (The capability
 * stage needs root and is checked by t-netfilter-helper.sh through
 * /proc/PID/status.)
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sandbox.h"

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
		if (nf_sandbox_enter(&err) < 0)
			_exit(100);
		body();
		syscall(SYS_exit_group, 0);
	}
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	return st;
}

static void
allowed_work(void)
{
	/* What serving does: heap, large blocks, realloc, stderr. */
	char *small = malloc(100), *big = malloc(1 << 20);

	if (!small || !big)
		syscall(SYS_exit_group, 101);
	memset(big, 1, 1 << 20);
	big = realloc(big, 4 << 20);
	if (!big)
		syscall(SYS_exit_group, 102);
	free(big);
	free(small);
	if (write(2, "", 0) < 0)
		syscall(SYS_exit_group, 103);
}

static void
call_socket(void)
{
	socket(AF_INET, SOCK_STREAM, 0);
}

static void
call_openat(void)
{
	syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY);
}

static void
call_execve(void)
{
	char *argv[] = { (char *)"true", NULL };

	execve("/bin/true", argv, argv + 1);
}

static void
call_write_stdout(void)
{
	/* write is allowed on fd 2 only */
	syscall(SYS_write, 1, "", 0); /* the filter looks at the fd only */
}

static void
call_exec_mapping(void)
{
	/* no page may become executable */
	mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC,
	     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
}

static void
call_getpid(void)
{
	syscall(SYS_getpid);
}

static void
call_setsockopt_other(void)
{
	int one = 1;

	/* only the buffer sizes libnftables sets are permitted */
	syscall(SYS_setsockopt, 2, SOL_SOCKET, SO_REUSEADDR, &one,
		sizeof(one));
}

Test(nf_sandbox, serving_needs_are_allowed)
{
	int st = confined(allowed_work);

	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %#x", st);
}

Test(nf_sandbox, forbidden_calls_kill_with_sigsys)
{
	static const struct {
		const char *what;
		body_fn fn;
		bool report; /* a sanitizer report needs it (sanitize.c) */
	} cases[] = {
		{ "socket", call_socket, false },
		{ "openat", call_openat, false },
		{ "execve", call_execve, false },
		{ "write(1)", call_write_stdout, true },
		{ "mmap(PROT_EXEC)", call_exec_mapping, false },
		{ "getpid", call_getpid, true },
		{ "setsockopt(SO_REUSEADDR)", call_setsockopt_other, false },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		int st = confined(cases[i].fn);

#ifdef QCTL_SANITIZE
		/* The sanitized test build lets these through. */
		if (cases[i].report) {
			cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0,
				  "%s: status %#x", cases[i].what, st);
			continue;
		}
#endif
		cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS,
			  "%s: status %#x", cases[i].what, st);
	}
}

#if defined(__x86_64__)
static long
int80_getpid(void)
{
	long ret;

	/* i386 getpid is 20: another ABI, other numbers */
	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory");
	return ret;
}

static void
call_int80(void)
{
	int80_getpid();
}

Test(nf_sandbox, other_architecture_kills)
{
	pid_t pid;
	int st;

	/* Without a filter, is there an i386 ABI at all here? */
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* Without IA32 emulation int 0x80 is a SIGSEGV: ours, not
		 * one for ASan to report. */
		signal(SIGSEGV, SIG_DFL);
		_exit(int80_getpid() == getpid() ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		cr_skip_test("kernel without IA32 emulation");
	st = confined(call_int80);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, "status %#x",
		  st);
}
#endif

Test(nf_sandbox, allowlist_has_no_fd_makers)
{
	char buf[8192];
	FILE *f = tmpfile();
	size_t n;

	cr_assert_not_null(f);
	nf_sandbox_describe(fileno(f));
	rewind(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	cr_assert(strstr(buf, "recvmsg"));
	/* Nothing that opens, creates, duplicates or executes. */
	static const char *const never[] = {
		"socket ", "open", "connect", "bind", "accept", "dup",
		"execve", "clone", "fork", "ptrace", "ioctl", "mprotect",
		"prctl", "seccomp", "kill", "unshare", "setns", "fcntl",
	};
	for (size_t i = 0; i < ARRAY_SIZE(never); i++) {
		for (const char *l = buf; *l; l = strchr(l, '\n') + 1) {
			cr_expect_neq(strncmp(l, never[i], strlen(never[i])),
				      0, "%s allowed", never[i]);
			if (!strchr(l, '\n'))
				break;
		}
	}
}
