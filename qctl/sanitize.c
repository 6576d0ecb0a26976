/*
 * sanitize.c - what ASan and UBSan need in the sanitized test build
 *
 * Linked only into what `make SANITIZE=1` builds in build/san (qctl,
 * qctl-netfilter, qctl-proxy, the unit tests), never into a plain build;
 * see docs/testing.md.
 *
 * Options are compiled in because the proxy, the nftables helper and
 * `qctl __peer` are exec'd with an empty environment, which no
 * ASAN_OPTIONS reaches.  A report goes to a file in QCTL_SAN_DIR (the
 * makefile makes it, mode 1777, and fails the run when a report appears
 * there), or to stderr when that directory is not there to write to.
 *
 * The confined programs (QCTL_SAN_CONFINED: the proxy and the helper)
 * differ in two options:
 *  - detect_leaks=0: LeakSanitizer stops the process with ptrace from a
 *    clone of it at exit; seccomp kills both calls, and a non-dumpable
 *    process without CAP_SYS_PTRACE cannot be traced anyway.
 *  - symbolize=0: symbolizing opens the binaries, which seccomp forbids;
 *    frames stay module+offset (tests/san-reports.sh resolves them).
 * and san_seccomp_add() lets the runtime's own calls through their
 * filters.
 */
#include "sanitize.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <unistd.h>

#include "sanitize-config.h"

/* From <sanitizer/common_interface_defs.h>, whose old-style
 * declarations -Wstrict-prototypes rejects. */
void __sanitizer_sandbox_on_notify(void *args);

#ifdef QCTL_SAN_CONFINED
#define SAN_PROGRAM ":detect_leaks=0:symbolize=0"
#else
#define SAN_PROGRAM ":detect_leaks=1"
#endif
#define SAN_LOG ":log_path=" QCTL_SAN_DIR "/report"
#define SAN_UBSAN ":print_stacktrace=1"

/*
 * ASan asks at start-up, before main(): nothing but a system call here.
 * UBSan asks at its first report, perhaps under a seccomp filter that
 * kills access(2): it gets the answer ASan got.
 */
static int
san_dir_usable(void)
{
	static int usable = -1;

	if (usable < 0)
		usable = access(QCTL_SAN_DIR, W_OK | X_OK) == 0;
	return usable;
}

const char *
__asan_default_options(void)
{
	return san_dir_usable() ? QCTL_SAN_OPTIONS SAN_PROGRAM SAN_LOG
				: QCTL_SAN_OPTIONS SAN_PROGRAM;
}

const char *
__ubsan_default_options(void)
{
	return san_dir_usable() ? QCTL_SAN_OPTIONS SAN_PROGRAM SAN_UBSAN SAN_LOG
				: QCTL_SAN_OPTIONS SAN_PROGRAM SAN_UBSAN;
}

/* What the runtime calls under a filter, found with strace and the audit
 * log (GCC 12's runtime). */
#define REPORT_FLAGS (O_WRONLY | O_CREAT | O_TRUNC)
/* clang-format off */
#define ARG(n, op_, v) { .arg = (n), .op = (op_), .datum_a = (v) }
#define ALLOW(sys) { SCMP_SYS(sys), 0, 0, { 0 } }
#define ALLOW_IF(sys, cmp) { SCMP_SYS(sys), 0, 1, cmp }
#define REFUSE(sys, e) { SCMP_SYS(sys), (e), 0, { 0 } }
#define REFUSE_IF(sys, e, cmp) { SCMP_SYS(sys), (e), 1, cmp }
/* clang-format on */

static const struct {
	int nr;
	int err; /* 0: allow */
	unsigned int nargs;
	struct scmp_arg_cmp arg;
} san_rows[] = {
	/* Before every call of a noreturn function (exit, our fatal
	 * paths) ASan asks whether it runs on the alternate signal stack. */
	ALLOW_IF(sigaltstack, ARG(0, SCMP_CMP_EQ, 0)),
	/* ASan gives the shadow of large freed blocks back. */
	ALLOW(madvise),
	/* "==PID==" on every line of a report; the report's lock. */
	ALLOW(getpid),
	ALLOW(futex),
	/* The report, into a file opened when it starts... */
	ALLOW(write),
	/* ...with the legacy open(2), which glibc never calls on x86_64:
	 * the program's own opens are openat(2), whose rules stay. */
	ALLOW_IF(open, ARG(1, SCMP_CMP_EQ, REPORT_FLAGS)),
	/* /proc/self/maps: refused, the runtime then uses the copy that
	 * __sanitizer_sandbox_on_notify() cached. */
	REFUSE_IF(open, EACCES, ARG(1, SCMP_CMP_NE, REPORT_FLAGS)),
	/* UBSan's first report reads /proc/self/exe, makes the report
	 * directory (there already) and probes the memory it would print
	 * through a pipe; each may fail. */
	REFUSE(readlink, EACCES),
	REFUSE(mkdir, EEXIST),
	REFUSE(pipe2, EACCES),
};

int
san_seccomp_add(scmp_filter_ctx ctx)
{
	int r = 0;

	__sanitizer_sandbox_on_notify(NULL);
	/* A syscall the program allows already stays allowed: libseccomp
	 * keeps the first action of an unconditional rule. */
	for (size_t i = 0; r == 0 && i < sizeof(san_rows) / sizeof(san_rows[0]);
	     i++) {
		uint32_t act = san_rows[i].err ? SCMP_ACT_ERRNO(san_rows[i].err)
					       : SCMP_ACT_ALLOW;

		r = seccomp_rule_add_array(ctx, act, san_rows[i].nr,
					   san_rows[i].nargs, &san_rows[i].arg);
	}
	return r;
}
