/*
 * sandbox.c - the helper's privilege stages: capabilities, then seccomp
 *
 * The seccomp filter is a declarative allowlist in the manner of OpenSSH's
 * sandbox-seccomp-filter.c: one row per system call, with the argument
 * restriction and the reason.  The set was found by running the helper
 * under strace through a whole session (setup, open, close, counters,
 * teardown, EOF) and keeping what it does after the filter is installed;
 * everything else kills the process.  See docs/netfilter.md.
 */
#include "sandbox.h"

#include <cap-ng.h>
#include <fcntl.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>

#include "nf-error.h"
#include "sanitize.h"

#define MAX_ARGS 2

struct sandbox_rule {
	int nr;
	const char *name;
	unsigned int nargs;
	struct scmp_arg_cmp args[MAX_ARGS];
	const char *why;
};

#define ALLOW(sys, why_) { SCMP_SYS(sys), #sys, 0, { { 0 } }, why_ }
#define ALLOW_IF(sys, a0, why_) { SCMP_SYS(sys), #sys, 1, { a0 }, why_ }
#define ALLOW_IF2(sys, a0, a1, why_) \
	{ SCMP_SYS(sys), #sys, 2, { a0, a1 }, why_ }
/* Static-initializer forms of libseccomp's SCMP_Ax() comparisons. */
#define ARG_EQ(n, v) { .arg = (n), .op = SCMP_CMP_EQ, .datum_a = (v) }
#define ARG_CLEAR(n, mask) \
	{ .arg = (n), .op = SCMP_CMP_MASKED_EQ, .datum_a = (mask) }

static const struct sandbox_rule allowlist[] = {
	/* The request channel (fd 3) and libnftables' netlink socket, both
	 * made before the filter; no call that makes a new fd is allowed,
	 * and fds offered over fd 3 are discarded unreceived, so these
	 * can only ever reach those two sockets (and stdio). */
	ALLOW(recvmsg, "requests from the manager; netlink replies"),
	ALLOW(sendmsg, "netlink batches: one per transaction"),
	ALLOW(sendto, "replies to the manager; netlink dump requests"),
	ALLOW(pselect6, "libnftables polls for netlink acknowledgements"),
	/* libnftables sizes the netlink socket to the batch: exactly these
	 * SOL_SOCKET options (the FORCE ones need our CAP_NET_ADMIN). */
	ALLOW_IF2(getsockopt, ARG_EQ(1, SOL_SOCKET), ARG_EQ(2, SO_SNDBUF),
		  "read the netlink send buffer size"),
	ALLOW_IF2(getsockopt, ARG_EQ(1, SOL_SOCKET), ARG_EQ(2, SO_RCVBUF),
		  "read the netlink receive buffer size"),
	ALLOW_IF2(setsockopt, ARG_EQ(1, SOL_SOCKET), ARG_EQ(2, SO_SNDBUFFORCE),
		  "grow the netlink send buffer for a batch"),
	ALLOW_IF2(setsockopt, ARG_EQ(1, SOL_SOCKET), ARG_EQ(2, SO_RCVBUFFORCE),
		  "grow the netlink receive buffer for a dump"),
	/* Diagnostics: stderr only (fds 0 and 1 are /dev/null anyway). */
	ALLOW_IF(write, ARG_EQ(0, 2), "one line per diagnostic to stderr"),
	/* Memory: the heap may grow and shrink, but no page may become
	 * executable, so bytes an attacker places stay data. */
	ALLOW(brk, "malloc: the heap"),
	ALLOW_IF(mmap, ARG_CLEAR(2, PROT_EXEC), "malloc: large blocks"),
	ALLOW(munmap, "free: large blocks"),
	ALLOW_IF(mremap, ARG_EQ(3, MREMAP_MAYMOVE),
		 "realloc: large blocks (nft output buffers)"),
	ALLOW(exit_group, "exit"),
};

int
nf_sandbox_limit_caps(struct error *err)
{
	/* Everything goes, in every set: effective, permitted,
	 * inheritable, ambient and the bounding set... */
	capng_clear(CAPNG_SELECT_ALL);
	/* ...but CAP_NET_ADMIN, the one thing nftables needs.  Keeping it in
	 * the bounding set only, nowhere to be regained from. */
	if (capng_update(CAPNG_ADD,
			 CAPNG_EFFECTIVE | CAPNG_PERMITTED | CAPNG_BOUNDING_SET,
			 CAP_NET_ADMIN) < 0)
		return nf_error(err, EPERM, "capng_update failed");
	/* Securebits: not even an exec as uid 0 could give caps back. */
	if (capng_lock() < 0)
		return nf_error(err, EPERM, "capng_lock failed");
	if (capng_apply(CAPNG_SELECT_ALL) < 0)
		return nf_error(err, EPERM,
				"cannot drop capabilities (not root?)");
	/* Check rather than trust: the kernel's view must be exactly ours. */
	capng_get_caps_process();
	if (capng_have_capability(CAPNG_EFFECTIVE, CAP_NET_ADMIN) != 1)
		return nf_error(err, EPERM, "no CAP_NET_ADMIN");
	for (unsigned int c = 0; c <= CAP_LAST_CAP; c++) {
		if (c == CAP_NET_ADMIN)
			continue;
		if (capng_have_capability(CAPNG_EFFECTIVE, c) ||
		    capng_have_capability(CAPNG_PERMITTED, c) ||
		    capng_have_capability(CAPNG_BOUNDING_SET, c))
			return nf_error(err, EPERM, "capability %u kept", c);
	}
	/* No exec may ever add privilege (also lets us load seccomp
	 * without CAP_SYS_ADMIN). */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return nf_error(err, errno, "PR_SET_NO_NEW_PRIVS: %s",
				strerror(errno));
	/* No core dump of our memory, no ptrace by a same-uid process. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return nf_error(err, errno, "PR_SET_DUMPABLE: %s",
				strerror(errno));
	return 0;
}

int
nf_sandbox_enter(struct error *err)
{
	scmp_filter_ctx ctx;
	const char *what = "seccomp_attr_set";
	int r;

	/* Default: a system call not in the table kills the whole process
	 * (not just a thread), so nothing half-works on after it. */
	ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
	if (!ctx)
		return nf_error(err, ENOMEM, "seccomp_init failed");
	/* Architecture first: the filter holds rules for the native ABI
	 * only; a call through any other (i386 via int 0x80, x32 on
	 * x86_64) has other numbers and kills too.  libseccomp puts that
	 * check at the top of the BPF program; we make its action explicit
	 * and check that no second architecture slipped in. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
			     SCMP_ACT_KILL_PROCESS);
	if (r == 0 && seccomp_arch_exist(ctx, seccomp_arch_native()) != 0) {
		what = "native architecture missing";
		r = -EINVAL;
	}
	/* no_new_privs is set already; loading must not depend on it. */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(allowlist); i++) {
		what = allowlist[i].name;
		r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, allowlist[i].nr,
					   allowlist[i].nargs,
					   allowlist[i].args);
	}
#ifdef QCTL_SANITIZE
	/* The sanitized test build only: a sanitizer report's own calls
	 * (qctl/sanitize.c). */
	if (r == 0) {
		what = "sanitizer report calls";
		r = san_seccomp_add(ctx);
	}
#endif
	if (r == 0) {
		what = "seccomp_load";
		r = seccomp_load(ctx);
	}
	seccomp_release(ctx);
	if (r < 0)
		return nf_error(err, -r, "%s: %s", what, strerror(-r));
	return 0;
}

void
nf_sandbox_describe(int fd)
{
	for (size_t i = 0; i < ARRAY_SIZE(allowlist); i++)
		dprintf(fd, "%-14s %s%s\n", allowlist[i].name,
			allowlist[i].nargs ? "(restricted) " : "",
			allowlist[i].why);
}
