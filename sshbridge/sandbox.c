/* sandbox.c - the bridge's seccomp allowlist (sandbox.h) */
#include "sandbox.h"

#include <errno.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

#ifdef QCTL_SANITIZE
#include "sanitize.h"
#endif

#define ALLOW(name) {SCMP_SYS(name), 0}
/* a file the crypto library or libssh might look for: refused, not fatal */
#define REFUSE(name) {SCMP_SYS(name), EACCES}

static const struct {
	int nr;
	int err;		/* 0: allow; else fail with this errno */
} rules[] = {
	/* I/O on the manager's socket and the guest's connection */
	ALLOW(read), ALLOW(write), ALLOW(readv), ALLOW(writev),
	ALLOW(recvfrom), ALLOW(sendto), ALLOW(recvmsg), ALLOW(sendmsg),
	ALLOW(poll), ALLOW(ppoll), ALLOW(close), ALLOW(fcntl),
	ALLOW(connect), ALLOW(getsockopt), ALLOW(setsockopt),
	ALLOW(getsockname), ALLOW(getpeername), ALLOW(shutdown),
	ALLOW(fstat), ALLOW(newfstatat), ALLOW(lseek),
	/* memory, threads of the allocator, time, randomness */
	ALLOW(brk), ALLOW(mmap), ALLOW(munmap), ALLOW(mremap),
	ALLOW(madvise), ALLOW(mprotect), ALLOW(futex), ALLOW(getrandom),
	ALLOW(clock_gettime), ALLOW(gettimeofday), ALLOW(nanosleep),
	ALLOW(clock_nanosleep),
	/* identity questions libssh and libc ask; signals; the end */
	ALLOW(getpid), ALLOW(gettid), ALLOW(getuid), ALLOW(geteuid),
	ALLOW(getgid), ALLOW(getegid), ALLOW(uname),
	ALLOW(rt_sigprocmask), ALLOW(rt_sigreturn), ALLOW(restart_syscall),
	ALLOW(exit), ALLOW(exit_group),
	REFUSE(open), REFUSE(openat), REFUSE(access), REFUSE(faccessat),
	REFUSE(faccessat2), REFUSE(stat), REFUSE(lstat), REFUSE(readlink),
};

int
sb_sandbox_apply(void)
{
	struct rlimit zero = {0, 0};
	scmp_filter_ctx ctx;
	int r;

	/* the client key is in this process's memory */
	if (setrlimit(RLIMIT_CORE, &zero) < 0 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -1;
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx) {
		errno = ENOMEM;
		return -1;
	}
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		r = seccomp_rule_add(ctx, rules[i].err
					     ? SCMP_ACT_ERRNO(rules[i].err)
					     : SCMP_ACT_ALLOW,
				     rules[i].nr, 0);
		if (r < 0)
			goto fail;
	}
	/* IPv4 stream sockets only: the guest's port 22 */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1,
			     SCMP_A0(SCMP_CMP_EQ, AF_INET));
	if (r < 0)
		goto fail;
#ifdef QCTL_SANITIZE
	r = san_seccomp_add(ctx);
	if (r < 0)
		goto fail;
#endif
	r = seccomp_load(ctx);
	if (r < 0)
		goto fail;
	seccomp_release(ctx);
	return 0;
fail:
	seccomp_release(ctx);
	errno = -r;
	return -1;
}
