/*
 * qctl-netfilter - the seccomp-confined nftables helper.
 *
 * Started by qctl inside a builder's network namespace with one end of an
 * AF_UNIX SOCK_SEQPACKET socketpair at fd 3.  Privileges narrow in visible
 * stages, top to bottom:
 *
 *   1. check the channel: fd 3 is that socket, no other fd is open
 *   2. capabilities: CAP_NET_ADMIN only (bounding set too), no_new_privs
 *   3. create the long-lived libnftables context (netlink socket, config)
 *   4. seccomp: an allowlist of the syscalls serving needs; others kill
 *   5. say HELLO, then serve typed requests under the permit table
 *
 * A malformed, unknown or out-of-turn request is fatal: the helper closes
 * the window (if open) and exits 2.  EOF from the manager does the same
 * and exits 0; so does a successful TEARDOWN.  Setup failures exit 1.
 *
 * Test hook: QCTL_NF_SELFTEST_SYSCALL=socket|openat|execve makes the
 * helper call that (forbidden) syscall right after stage 4, so that a test
 * can watch the filter kill it with SIGSYS.  It can only end the process,
 * never widen anything; the manager starts the helper with an empty
 * environment.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "filter.h"
#include "nf-error.h"
#include "nf-proto.h"
#include "permit.h"
#include "request.h"
#include "sandbox.h"

enum {
	EXIT_DONE = 0,		/* TEARDOWN done, or the manager went away */
	EXIT_SETUP = 1,		/* could not reach the confined state */
	EXIT_PROTOCOL = 2,	/* the manager broke the protocol */
};

/* Taken before the filter, which does not permit getpid. */
static pid_t self;

static void __attribute__((format(printf, 1, 2)))
say(const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	int n;

	/* One write per line: the filter permits write(2) and nothing
	 * that would buffer behind our back. */
	n = snprintf(line, sizeof(line), "qctl-netfilter[%d]: ", (int)self);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	va_end(ap);
	strcat(line, "\n");
	if (write(2, line, strlen(line)) < 0)
		return;
}

static void __attribute__((noreturn))
die_setup(const char *stage, const struct error *err)
{
	say("%s: %s", stage, err->msg);
	exit(EXIT_SETUP);
}

/* Stage 1: fd 3 must be our AF_UNIX SOCK_SEQPACKET end; nothing above. */
static int
channel_check(struct error *err)
{
	int type = 0, domain = 0;
	socklen_t len = sizeof(int);
	struct stat st;

	if (fstat(NF_HELPER_FD, &st) < 0 || !S_ISSOCK(st.st_mode))
		return nf_error(err, EBADF, "fd %d is not a socket",
				NF_HELPER_FD);
	if (getsockopt(NF_HELPER_FD, SOL_SOCKET, SO_DOMAIN, &domain, &len) <
		    0 ||
	    getsockopt(NF_HELPER_FD, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	    domain != AF_UNIX || type != SOCK_SEQPACKET)
		return nf_error(err, EPROTOTYPE,
				"fd %d is not an AF_UNIX SOCK_SEQPACKET socket",
				NF_HELPER_FD);
	if (fcntl(NF_HELPER_FD, F_SETFD, FD_CLOEXEC) < 0)
		return nf_error(err, errno, "fcntl: %s", strerror(errno));
	/* Whatever else a careless parent left open is not ours to use. */
	if (syscall(SYS_close_range, NF_HELPER_FD + 1, ~0u, 0) < 0)
		for (int fd = NF_HELPER_FD + 1; fd < 1024; fd++)
			close(fd);
	return 0;
}

/* After stage 4: prove to a test that the filter kills (see above). */
static void
selftest_forbidden_syscall(void)
{
	const char *which = getenv("QCTL_NF_SELFTEST_SYSCALL");

	if (!which)
		return;
	say("selftest: calling %s, which must kill us", which);
	if (strcmp(which, "socket") == 0)
		syscall(SYS_socket, AF_INET, SOCK_STREAM, 0);
	else if (strcmp(which, "openat") == 0)
		syscall(SYS_openat, AT_FDCWD, "/etc/hostname", O_RDONLY);
	else if (strcmp(which, "execve") == 0)
		syscall(SYS_execve, "/bin/true", (char *[]){ NULL },
			(char *[]){ NULL });
	say("selftest: %s survived the filter", which);
	exit(EXIT_SETUP);
}

static int
send_msg(const void *msg, size_t len)
{
	ssize_t n;

	do
		n = send(NF_HELPER_FD, msg, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/*
 * One datagram: its length, 0 at EOF, or -1 when it is unusable: larger
 * than any request (truncated) or carrying ancillary data (fds the kernel
 * had to drop for want of a control buffer).
 */
static ssize_t
recv_msg(void *buf, size_t size)
{
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do
		n = recvmsg(NF_HELPER_FD, &mh, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
		return -1;
	return n;
}

/* Close the window on the way out, so that no open port outlives us. */
static void
fail_closed(struct nf_filter *f, enum nf_state st)
{
	struct error err = { 0 };

	if (st == NF_STATE_OPEN && nf_filter_close(f, &err) < 0)
		say("closing the window failed: %s", err.msg);
}

static void __attribute__((noreturn))
die_protocol(struct nf_filter *f, enum nf_state st, const char *msg)
{
	say("fatal: %s", msg);
	fail_closed(f, st);
	exit(EXIT_PROTOCOL);
}

/* Carry out one permitted request and send its reply. */
static int
handle(struct nf_filter *f, const struct nf_request *req, enum nf_state st)
{
	struct nf_rep_counters rc = { 0 };
	struct nf_rep_error re = { 0 };
	struct nf_hdr ok = { 0 };
	struct nf_counter_values v;
	struct error err = { 0 };
	int r = 0;

	switch (req->type) {
	case NF_REQ_SETUP:
		r = nf_filter_setup(f, &req->setup, &err);
		break;
	case NF_REQ_OPEN:
		r = nf_filter_open(f, &err);
		break;
	case NF_REQ_CLOSE:
		/* Closing a closed window is a no-op, not an nft error. */
		if (st == NF_STATE_OPEN)
			r = nf_filter_close(f, &err);
		break;
	case NF_REQ_COUNTERS:
		r = nf_filter_counters(f, &v, &err);
		if (r < 0)
			break;
		rc.hdr = (struct nf_hdr){ NF_REP_COUNTERS, sizeof(rc),
					  req->seq, 0 };
		rc.rx_bytes = v.rx_bytes;
		rc.rx_packets = v.rx_packets;
		rc.tx_bytes = v.tx_bytes;
		rc.tx_packets = v.tx_packets;
		rc.dropped_packets = v.dropped_packets;
		rc.quota_used = v.quota_used;
		return send_msg(&rc, sizeof(rc)) < 0 ? -EPIPE : 0;
	case NF_REQ_TEARDOWN:
		r = nf_filter_teardown(f, &err);
		break;
	}
	if (r < 0) {
		say("%s failed: %s", nf_request_name(req->type), err.msg);
		re.hdr = (struct nf_hdr){ NF_REP_ERROR, sizeof(re), req->seq,
					  0 };
		re.code = err.code > 0 ? err.code : EIO;
		snprintf(re.msg, sizeof(re.msg), "%.*s",
			 (int)sizeof(re.msg) - 1, err.msg);
		return send_msg(&re, sizeof(re)) < 0 ? -EPIPE : r;
	}
	ok = (struct nf_hdr){ NF_REP_OK, sizeof(ok), req->seq, 0 };
	return send_msg(&ok, sizeof(ok)) < 0 ? -EPIPE : 0;
}

/* Stage 5: one request at a time, each permitted or fatal. */
static int
serve(struct nf_filter *f)
{
	enum nf_state st = NF_STATE_NEW, next;
	unsigned char buf[NF_MSG_MAX];
	struct nf_request req;
	struct error err = { 0 };
	ssize_t n;
	int r;

	for (;;) {
		n = recv_msg(buf, sizeof(buf));
		if (n == 0) {
			/* The manager is gone: nobody may rely on an open
			 * window any more. */
			fail_closed(f, st);
			return EXIT_DONE;
		}
		if (n < 0)
			die_protocol(f, st, "unreadable or oversized message");
		if (nf_request_parse(buf, (size_t)n, &req, &err) < 0)
			die_protocol(f, st, err.msg);
		if (nf_permit_check(st, req.type, &next, &err) < 0)
			die_protocol(f, st, err.msg);
		r = handle(f, &req, st);
		if (r == -EPIPE)
			die_protocol(f, st, "cannot reply to the manager");
		/* The state follows the kernel: a refused transaction
		 * changed nothing, so neither do we. */
		if (r == 0)
			st = next;
		if (st == NF_STATE_DONE)
			return EXIT_DONE;
	}
}

int
main(void)
{
	struct nf_rep_hello hello = { .hdr = { NF_REP_HELLO, sizeof(hello),
					       0, 0 },
				      .version = NF_PROTO_VERSION };
	struct nf_filter filter;
	struct error err = { 0 };
	int rc;

	self = getpid();
	if (channel_check(&err) < 0)
		die_setup("channel", &err);
	if (nf_sandbox_limit_caps(&err) < 0)
		die_setup("capabilities", &err);
	if (nf_filter_new(&filter, &err) < 0)
		die_setup("libnftables", &err);
	if (nf_sandbox_enter(&err) < 0)
		die_setup("seccomp", &err);
	selftest_forbidden_syscall();

	if (send_msg(&hello, sizeof(hello)) < 0)
		return EXIT_DONE;	/* the manager is already gone */
	rc = serve(&filter);
	/* No nft_ctx_free(): it would close() the netlink socket, which the
	 * filter does not permit; exiting releases everything anyway. */
	return rc;
}
