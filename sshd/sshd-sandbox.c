/* sshd-sandbox.c - what qctl-sshd may do: ids, limits, seccomp */
#include "sshd-sandbox.h"

#include "privs.h"
#include "sanitize.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* fds: 256 connections at most, plus spares. */
#define SSHD_NOFILE 512

int
sshd_sandbox_drop(bool drop_ids, uid_t uid, gid_t gid, struct error *err)
{
	struct rlimit zero = { 0, 0 };
	struct rlimit nofile = { SSHD_NOFILE, SSHD_NOFILE };

	/* The sshd holds the host key and the sessions' bytes: no core
	 * file may keep them, and it writes no files at all. */
	if (setrlimit(RLIMIT_CORE, &zero) < 0)
		return error_sys(err, errno, "setrlimit");
#ifndef QCTL_SANITIZE
	/* (The sanitized test build writes its reports to files.) */
	if (setrlimit(RLIMIT_FSIZE, &zero) < 0)
		return error_sys(err, errno, "setrlimit");
#endif
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return error_sys(err, errno, "setrlimit(RLIMIT_NOFILE)");
	/* Not dumpable: another process of the same uid (a proxy, QEMU
	 * run as nobody) can neither ptrace it nor read the host key out
	 * of its memory. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return error_sys(err, errno, "PR_SET_DUMPABLE");
	if (drop_ids) {
		/* It parses every byte a client sends before that client is
		 * authenticated: a bug there must land in a process that
		 * owns nothing: no root, no groups, no capabilities. */
		capng_clear(CAPNG_SELECT_BOTH);
		if (capng_change_id(uid, gid,
				    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING))
			return error_set(err, EPERM,
					 "cannot change to uid %u gid %u",
					 (unsigned int)uid, (unsigned int)gid);
		prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	}
	/* Nothing it could exec may give privileges back. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return error_sys(err, errno, "PR_SET_NO_NEW_PRIVS");
	if (privs_verify_dropped(drop_ids, uid, gid) < 0 ||
	    (drop_ids && getgroups(0, NULL) != 0))
		return error_set(err, EPERM,
				 "privileges still held after drop");
	return 0;
}

struct rule {
	int nr;
	uint32_t action; /* 0: allow */
	unsigned int nargs;
	struct scmp_arg_cmp args[2];
};

/* clang-format off */
#define ALLOW(name) { SCMP_SYS(name), 0, 0, { { 0 } } }
#define ALLOW_IF(name, n, ...) { SCMP_SYS(name), 0, n, { __VA_ARGS__ } }
#define FAIL(name, e) { SCMP_SYS(name), SCMP_ACT_ERRNO(e), 0, { { 0 } } }
/* clang-format on */

/*
 * The server: it accepts clients on the inherited listening socket, runs
 * libssh (OpenSSL underneath) over them, and talks to the manager on the
 * control socket.  It opens no file, makes no socket, creates no process
 * and executes nothing.
 */
static const struct rule serve_rules[] = {
	/* memory (malloc; OpenSSL's secure heap is not used) */
	ALLOW(brk),
	ALLOW(mmap),
	ALLOW(munmap),
	ALLOW(mremap),
	ALLOW(madvise),
	/* the loop: libssh polls; timeouts read the clock (a syscall where
	 * the vDSO cannot read the clocksource) */
	ALLOW(poll),
	ALLOW(ppoll),
	ALLOW(clock_gettime),
	ALLOW(gettimeofday),
	/* clients: accept, read, write, close (recv/send are recvfrom and
	 * sendto); the control socket: recvmsg, sendto */
	ALLOW(accept4),
	ALLOW(recvfrom),
	ALLOW(sendto),
	ALLOW(recvmsg),
	ALLOW(read),
	ALLOW(write),
	ALLOW(close),
	ALLOW(shutdown),
	ALLOW(fcntl),
	ALLOW(getsockopt),
	ALLOW(setsockopt),
	ALLOW(getpeername),
	ALLOW(getsockname),
	/* key exchange and signatures: OpenSSL's randomness, its fork
	 * check and its locks */
	ALLOW(getrandom),
	ALLOW(getpid),
	ALLOW(futex),
	/* its own check that the filter is on (prctl(PR_GET_SECCOMP) and
	 * nothing else of prctl) */
	ALLOW_IF(prctl, 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_SECCOMP)),
	/* a configuration file libssh or OpenSSL might want late: refused,
	 * not fatal (everything was loaded before the filter) */
	FAIL(openat, EACCES),
	FAIL(newfstatat, EACCES),
	/* ending */
	ALLOW(exit_group),
	ALLOW(restart_syscall),
	ALLOW(rt_sigreturn),
};

int
sshd_sandbox_seccomp(struct error *err)
{
	scmp_filter_ctx ctx;
	int r;

	/* Default kill: a syscall nobody listed is a compromise, not a
	 * bug to limp past.  libseccomp checks the architecture first
	 * (x86_64 only; i386 and x32 entry points are killed). */
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return error_set(err, ENOMEM, "seccomp_init");
	for (size_t i = 0; i < ARRAY_SIZE(serve_rules); i++) {
		const struct rule *ru = &serve_rules[i];

		if (ru->nr < 0)
			continue; /* not a syscall on this architecture */
		r = seccomp_rule_add_array(
			ctx, ru->action ? ru->action : SCMP_ACT_ALLOW, ru->nr,
			ru->nargs, ru->args);
		if (r < 0) {
			char *name = seccomp_syscall_resolve_num_arch(
				SCMP_ARCH_NATIVE, ru->nr);

			error_sys(err, -r, "seccomp rule for %s",
				  name ? name : "?");
			free(name);
			seccomp_release(ctx);
			return -EINVAL;
		}
	}
#ifdef QCTL_SANITIZE
	/* The sanitized test build only: a sanitizer report's own calls
	 * (qctl/sanitize.c). */
	r = san_seccomp_add(ctx);
	if (r < 0) {
		seccomp_release(ctx);
		return error_sys(err, -r, "seccomp: sanitizer report calls");
	}
#endif
	r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0)
		return error_sys(err, -r, "seccomp_load");
	/* Read back: 2 is SECCOMP_MODE_FILTER. */
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
		return error_set(err, EPERM, "seccomp filter not in force");
	return 0;
}
