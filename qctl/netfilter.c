/*
 * netfilter.c - the manager's client of qctl-netfilter
 *
 * Synchronous request/reply with a deadline: a helper that is stopped,
 * slow or dead costs at most NF_DEADLINE_MS and then counts as dead, and
 * the build stops (exit 4).  The helper is more privileged than a guest
 * but still a separate program: its replies get the same exact-size,
 * exact-type checks as its requests do on the other side.
 */
#include "netfilter.h"

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "child.h"
#include "nf-proto.h"

struct nf_client {
	pid_t pid;
	int fd;			/* our end of the socketpair */
	uint32_t seq;
	int deadline_ms;
	bool dead;
	bool reaped;
};

/* fd numbers inside the child */
enum {
	CHILD_CHAN_FD = NF_HELPER_FD,
	CHILD_ERR_FD = NF_HELPER_FD + 1,
};

static void __attribute__((noreturn))
nf_child(const char *path, int netns_fd, int chan, int errpipe)
{
	char *const argv[] = { (char *)"qctl-netfilter", NULL };
	char *const envp[] = { NULL };
	struct child_fds cf = {
		.in = -1, .out = -1, .err = STDERR_FILENO,
		.fds = &chan, .n = 1, .first = CHILD_CHAN_FD,
		.errpipe = errpipe,
	};
	int r;

	/* Born inside the builder's namespace: the helper never holds a
	 * handle on any other one. */
	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0)
		child_fail(errpipe, errno);
	/* Exactly stdio and the channel; the error pipe closes on exec. */
	r = child_setup(&cf, &errpipe);
	if (r < 0)
		child_fail(errpipe, -r);
	/* An empty environment: nothing of the manager's leaks into the
	 * privileged helper (no LD_*, no test hooks). */
	execve(path, argv, envp);
	child_fail(errpipe, errno);
}

/* SIGKILL (a no-op if it has exited) and reap; the wait status. */
static int
reap(struct nf_client *c)
{
	int st = 0;

	/* Our unreaped child cannot be a recycled pid, so kill() is safe. */
	if (c->pid > 0 && !c->reaped) {
		kill(c->pid, SIGKILL);
		while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
			;
		c->reaped = true;
	}
	return st;
}

static int
mark_dead(struct nf_client *c, int code, struct error *err, const char *what)
{
	c->dead = true;
	return error_set(err, code, "netfilter helper: %s", what);
}

/*
 * Wait up to the deadline for one datagram into buf (size >= NF_MSG_MAX
 * + 1); its length, or <0 with the client marked dead.
 */
static ssize_t
recv_reply(struct nf_client *c, void *buf, size_t size, struct error *err)
{
	int64_t end = now_ms() + c->deadline_ms;
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	for (;;) {
		int64_t left = end - now_ms();
		struct iovec iov = { .iov_base = buf, .iov_len = size };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		ssize_t n;
		int r;

		if (left <= 0)
			return mark_dead(c, ETIMEDOUT, err,
					 "no reply within the deadline");
		r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return mark_dead(c, errno, err, "poll failed");
		if (r == 0)
			continue;
		n = recvmsg(c->fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0)
			return mark_dead(c, errno, err, "cannot read reply");
		if (n == 0)
			return mark_dead(c, EPIPE, err, "helper hung up");
		if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
			return mark_dead(c, EPROTO, err, "oversized reply");
		return n;
	}
}

/*
 * Check a reply of n bytes against the request (seq) and the expected
 * reply type; NF_REP_ERROR is always acceptable.  0, or <0 (dead).
 */
static int
check_reply(struct nf_client *c, const void *buf, size_t n, uint32_t seq,
	    uint32_t want, struct error *err)
{
	struct nf_hdr h;

	if (n < sizeof(h))
		return mark_dead(c, EPROTO, err, "short reply");
	memcpy(&h, buf, sizeof(h));
	if (h.type != want && h.type != NF_REP_ERROR)
		return mark_dead(c, EPROTO, err, "unexpected reply type");
	if (n != nf_msg_size(h.type) || h.len != n || h.reserved != 0)
		return mark_dead(c, EPROTO, err, "malformed reply");
	if (h.seq != seq)
		return mark_dead(c, EPROTO, err, "reply out of sequence");
	return 0;
}

/* An NF_REP_ERROR as an error: the helper lives on, the change did not. */
static int
reply_error(const void *buf, struct error *err)
{
	struct nf_rep_error re;

	memcpy(&re, buf, sizeof(re));
	re.msg[sizeof(re.msg) - 1] = '\0';
	for (char *p = re.msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return error_set(err, re.code > 0 && re.code < 4096 ? re.code : EIO,
			 "netfilter helper: %s", re.msg);
}

/* Send a request (len bytes, header first) and receive the reply. */
static int
call(struct nf_client *c, void *msg, size_t len, uint32_t want, void *reply,
     struct error *err)
{
	unsigned char buf[NF_MSG_MAX + 1];
	struct nf_hdr *h = msg;
	ssize_t n;
	int r;

	if (c->dead)
		return error_set(err, EPIPE, "netfilter helper is gone");
	h->len = len;
	h->seq = ++c->seq;
	h->reserved = 0;
	/* Never block on a helper that does not read: one request at a
	 * time cannot fill a healthy helper's queue. */
	do
		n = send(c->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		return mark_dead(c, n < 0 ? errno : EIO, err,
				 "cannot send request");
	n = recv_reply(c, buf, sizeof(buf), err);
	if (n < 0)
		return (int)n;
	r = check_reply(c, buf, (size_t)n, h->seq, want, err);
	if (r < 0)
		return r;
	if (((struct nf_hdr *)buf)->type == NF_REP_ERROR)
		return reply_error(buf, err);
	if (reply)
		memcpy(reply, buf, (size_t)n);
	return 0;
}

static int
call_simple(struct nf_client *c, uint32_t type, struct error *err)
{
	struct nf_hdr h = { .type = type };

	return call(c, &h, sizeof(h), NF_REP_OK, NULL, err);
}

int
nf_start(const char *helper_path, int netns_fd, struct nf_client **out,
	 struct error *err)
{
	unsigned char buf[NF_MSG_MAX + 1];
	struct nf_rep_hello hello;
	struct nf_client *c;
	int sv[2], ep[2], e = 0, r;
	ssize_t n;

	*out = NULL;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return error_sys(err, errno, "socketpair");
	if (pipe2(ep, O_CLOEXEC) < 0) {
		r = error_sys(err, errno, "pipe");
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	c = xcalloc(1, sizeof(*c));
	c->fd = sv[0];
	c->deadline_ms = NF_DEADLINE_MS;
	c->pid = fork();
	if (c->pid < 0) {
		r = error_sys(err, errno, "fork");
		close(sv[0]);
		close(sv[1]);
		close(ep[0]);
		close(ep[1]);
		free(c);
		return r;
	}
	if (c->pid == 0)
		nf_child(helper_path, netns_fd, sv[1], ep[1]);
	close(sv[1]);
	close(ep[1]);
	do
		n = read(ep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == sizeof(e)) {
		r = error_sys(err, e, "cannot run %s", helper_path);
		nf_stop(c);
		return r;
	}
	/* Confined and ready, or not at all: wait for HELLO. */
	n = recv_reply(c, buf, sizeof(buf), err);
	if (n >= 0 &&
	    check_reply(c, buf, (size_t)n, 0, NF_REP_HELLO, err) == 0) {
		memcpy(&hello, buf, sizeof(hello));
		if (hello.hdr.type == NF_REP_HELLO &&
		    hello.version == NF_PROTO_VERSION && hello.reserved == 0) {
			*out = c;
			return 0;
		}
		mark_dead(c, EPROTO, err, "bad HELLO (version mismatch?)");
	}
	r = err && err->code ? -err->code : -EPROTO;
	e = reap(c);
	if (WIFEXITED(e))
		error_prefix(err, "%s exited with status %d", helper_path,
			     WEXITSTATUS(e));
	else if (WIFSIGNALED(e) && WTERMSIG(e) != SIGKILL)
		error_prefix(err, "%s killed by signal %d", helper_path,
			     WTERMSIG(e));
	else
		error_prefix(err, "starting %s", helper_path);
	nf_stop(c);
	return r;
}

int
nf_setup(struct nf_client *c, const char *ifname, const char *host_ip,
	 const char *guest_ip, uint16_t proxy_port, uint64_t quota_bytes,
	 uint16_t ssh_port, struct error *err)
{
	struct nf_req_setup m;

	/* Zeroed: no stale stack bytes cross to the helper, and every
	 * string is NUL-padded. */
	memset(&m, 0, sizeof(m));
	if (strlen(ifname) >= sizeof(m.ifname) ||
	    strlen(host_ip) >= sizeof(m.host_ip) ||
	    strlen(guest_ip) >= sizeof(m.guest_ip))
		return error_set(err, EINVAL, "netfilter: field too long");
	m.hdr.type = NF_REQ_SETUP;
	memcpy(m.ifname, ifname, strlen(ifname));
	memcpy(m.host_ip, host_ip, strlen(host_ip));
	memcpy(m.guest_ip, guest_ip, strlen(guest_ip));
	m.proxy_port = proxy_port;
	m.quota_bytes = quota_bytes;
	m.ssh_port = ssh_port;
	return call(c, &m, sizeof(m), NF_REP_OK, NULL, err);
}

int
nf_open_window(struct nf_client *c, struct error *err)
{
	return call_simple(c, NF_REQ_OPEN, err);
}

int
nf_close_window(struct nf_client *c, struct error *err)
{
	return call_simple(c, NF_REQ_CLOSE, err);
}

int
nf_read_counters(struct nf_client *c, struct nf_counters *out,
		 struct error *err)
{
	struct nf_hdr h = { .type = NF_REQ_COUNTERS };
	struct nf_rep_counters rc;
	int r;

	r = call(c, &h, sizeof(h), NF_REP_COUNTERS, &rc, err);
	if (r < 0)
		return r;
	out->rx_bytes = rc.rx_bytes;
	out->rx_packets = rc.rx_packets;
	out->tx_bytes = rc.tx_bytes;
	out->tx_packets = rc.tx_packets;
	out->dropped_packets = rc.dropped_packets;
	out->quota_used = rc.quota_used;
	return 0;
}

int
nf_teardown(struct nf_client *c, struct error *err)
{
	int r = call_simple(c, NF_REQ_TEARDOWN, err);

	/* The helper exits after a successful TEARDOWN: nothing more to
	 * ask, and EOF from it is now expected rather than a fault. */
	if (r == 0)
		c->dead = true;
	return r;
}

pid_t
nf_pid(const struct nf_client *c)
{
	return c->pid;
}

int
nf_fd(const struct nf_client *c)
{
	return c->fd;
}

bool
nf_alive(const struct nf_client *c)
{
	return !c->dead;
}

void
nf_set_deadline(struct nf_client *c, int ms)
{
	c->deadline_ms = ms > 0 ? ms : NF_DEADLINE_MS;
}

void
nf_stop(struct nf_client *c)
{
	if (!c)
		return;
	reap(c);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}
