/* proxy-sandbox.c - what the proxy processes may do: ids, limits, seccomp */
#include "proxy-sandbox.h"

#include "privs.h"
#include "sanitize.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <seccomp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* fds: 256 connections x (client, upstream, two pipes) plus spares. */
#define PROXY_NOFILE 2048

/* Ids, capabilities, no_new_privs, and no supplementary groups at all. */
static int
verify(bool drop_ids, uid_t uid, gid_t gid)
{
	if (privs_verify_dropped(drop_ids, uid, gid) < 0)
		return -1;
	return drop_ids && getgroups(0, NULL) != 0 ? -1 : 0;
}

/* Limits, ids, capabilities, no_new_privs; verified by reading back. */
int
proxy_sandbox_drop(bool drop_ids, uid_t uid, gid_t gid, struct error *err)
{
	struct rlimit zero = { 0, 0 };
	struct rlimit nofile = { PROXY_NOFILE, PROXY_NOFILE };

	/* The proxy holds the build's traffic: no core file may keep it,
	 * and it writes no files at all. */
	if (setrlimit(RLIMIT_CORE, &zero) < 0)
		return error_sys(err, errno, "setrlimit");
#ifndef QCTL_SANITIZE
	/* (The sanitized test build writes its reports to files.) */
	if (setrlimit(RLIMIT_FSIZE, &zero) < 0)
		return error_sys(err, errno, "setrlimit");
#endif
	if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
		return error_sys(err, errno, "setrlimit(RLIMIT_NOFILE)");
	/* Not dumpable: other processes of the same uid (say, another
	 * builder's proxy) cannot ptrace it or read its memory. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return error_sys(err, errno, "PR_SET_DUMPABLE");
	if (drop_ids) {
		/* The proxy parses every byte the build sends it: a bug
		 * there must land in a process that owns nothing, so no
		 * root, no groups, no capabilities, no bounding set. */
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
	if (verify(drop_ids, uid, gid) < 0)
		return error_set(err, EPERM,
				 "privileges still held after drop");
	return 0;
}

/* ---- seccomp ------------------------------------------------------------ */

struct rule {
	int nr;
	uint32_t action; /* 0: allow */
	unsigned int nargs;
	struct scmp_arg_cmp args[3];
};

#define ALLOW(name)                                                            \
	{                                                                      \
		SCMP_SYS(name), 0, 0,                                          \
		{                                                              \
			{                                                      \
				0                                              \
			}                                                      \
		}                                                              \
	}
#define ALLOW_IF(name, n, ...)                                                 \
	{                                                                      \
		SCMP_SYS(name), 0, n,                                          \
		{                                                              \
			__VA_ARGS__                                            \
		}                                                              \
	}
#define FAIL_IF(name, e, n, ...)                                               \
	{                                                                      \
		SCMP_SYS(name), SCMP_ACT_ERRNO(e), n,                          \
		{                                                              \
			__VA_ARGS__                                            \
		}                                                              \
	}

/* Flags that make an open write or create: none allowed. */
#define OPEN_WRITE_FLAGS (O_ACCMODE | O_CREAT | O_TRUNC | O_APPEND)

/*
 * The relay: it accepts clients on the inherited listening socket,
 * connects TCP upstream, moves bytes with splice and talks to the manager
 * and its resolvers.  It opens no file, creates no process, and can make
 * no socket but TCP over IPv4/IPv6.
 */
static const struct rule relay_rules[] = {
	/* memory (malloc; realloc of a large buffer uses mremap) */
	ALLOW(brk),
	ALLOW(mmap),
	ALLOW(munmap),
	ALLOW(mremap),
	/* the loop (clock_gettime is a syscall where the vDSO cannot
	 * read the clocksource) */
	ALLOW(epoll_wait),
	ALLOW(epoll_pwait),
	ALLOW(epoll_ctl),
	ALLOW(clock_gettime),
	/* relaying: recv/send are recvfrom/sendto */
	ALLOW(recvfrom),
	ALLOW(sendto),
	ALLOW(splice),
	ALLOW(pipe2),
	ALLOW(fcntl),
	ALLOW(close),
	ALLOW(shutdown),
	ALLOW(accept4),
	ALLOW(connect),
	ALLOW(getsockopt),
	ALLOW(setsockopt),
	/* upstream sockets: TCP over IPv4 or IPv6 and nothing else */
	ALLOW_IF(socket, 2, SCMP_A0(SCMP_CMP_EQ, AF_INET),
		 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM)),
	ALLOW_IF(socket, 2, SCMP_A0(SCMP_CMP_EQ, AF_INET6),
		 SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_STREAM)),
	/* ending */
	ALLOW(exit_group),
	ALLOW(restart_syscall),
};

/*
 * A resolver: getaddrinfo() reads /etc/hosts, /etc/nsswitch.conf,
 * /etc/resolv.conf (and may load an NSS module), sends DNS over UDP or
 * TCP, and asks netlink which address families are configured.  It may
 * open files read-only; it may not write or create any, and local
 * (AF_UNIX) sockets fail so that it cannot reach local daemons.
 */
static const struct rule resolver_rules[] = {
	/* memory; mmap and mprotect also for an NSS module that
	 * nsswitch.conf may name (glibc 2.34+ has files and dns built in) */
	ALLOW(brk),
	ALLOW(mmap),
	ALLOW(munmap),
	ALLOW(mremap),
	ALLOW(mprotect),
	ALLOW(clock_gettime),
	ALLOW(uname),
	ALLOW(futex),
	/* files, read-only: hosts, nsswitch.conf, resolv.conf, gai.conf */
	ALLOW_IF(openat, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, OPEN_WRITE_FLAGS, 0)),
	ALLOW(read),
	ALLOW(pread64),
	ALLOW(lseek),
	ALLOW(newfstatat),
	ALLOW(close),
	/* DNS and the family check */
	ALLOW_IF(socket, 1, SCMP_A0(SCMP_CMP_EQ, AF_INET)),
	ALLOW_IF(socket, 1, SCMP_A0(SCMP_CMP_EQ, AF_INET6)),
	ALLOW_IF(socket, 1, SCMP_A0(SCMP_CMP_EQ, AF_NETLINK)),
	/* nscd and systemd-resolved's varlink: refused, not fatal; glibc
	 * then falls back to the files and dns services. */
	FAIL_IF(socket, EACCES, 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)),
	ALLOW(connect),
	ALLOW(bind),
	ALLOW(getsockname),
	ALLOW(setsockopt),
	ALLOW(getsockopt),
	ALLOW(sendto),
	ALLOW(sendmmsg),
	ALLOW(recvfrom),
	ALLOW(recvmsg),
	ALLOW(writev), /* DNS over TCP, after a truncated answer */
	ALLOW(readv),
	ALLOW(poll),
	ALLOW_IF(ioctl, 1, SCMP_A1(SCMP_CMP_EQ, FIONREAD)),
	ALLOW(exit_group),
	ALLOW(restart_syscall),
};

/* Load the filter of role; other syscalls kill the process. */
int
proxy_sandbox_seccomp(enum proxy_role role, struct error *err)
{
	const struct rule *rules;
	size_t n;
	scmp_filter_ctx ctx;
	int r;

	if (role == PROXY_ROLE_RELAY) {
		rules = relay_rules;
		n = ARRAY_SIZE(relay_rules);
	} else {
		rules = resolver_rules;
		n = ARRAY_SIZE(resolver_rules);
	}
	/* Default kill: a syscall nobody listed is a compromise, not a
	 * bug to limp past.  libseccomp checks the architecture first
	 * (x86_64 only; i386 and x32 entry points are killed). */
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return error_set(err, ENOMEM, "seccomp_init");
	for (size_t i = 0; i < n; i++) {
		uint32_t act =
			rules[i].action ? rules[i].action : SCMP_ACT_ALLOW;

		if (rules[i].nr < 0)
			continue; /* not a syscall on this architecture */
		r = seccomp_rule_add_array(ctx, act, rules[i].nr,
					   rules[i].nargs, rules[i].args);
		if (r < 0) {
			char *name = seccomp_syscall_resolve_num_arch(
				SCMP_ARCH_NATIVE, rules[i].nr);

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
	return 0;
}
