/*
 * nf-driver.c - drive qctl-netfilter from a shell test (t-netfilter-*.sh)
 *
 *   nf-driver session HELPER NETNS_PATH
 *	start the helper through nf_start() inside the namespace, print
 *	"pid N", then run one command per stdin line and answer one line:
 *	  setup IF HOST GUEST PORT QUOTA | open | close | counters |
 *	  teardown | deadline MS | alive
 *	  raw HEX        send these bytes as one datagram, unchecked
 *	  rawfd          send a valid OPEN header with an fd attached
 *	  eof            close our end (the helper should exit by itself)
 *	  wait           wait up to 3 s for the helper: "exit N"/"signal N"
 *	  bench N        N x (open, close): "bench mean=.. p50=.. p99=.." (us)
 *	answers: "ok", "error: ...", "counters k=v ...", "exit N" ...
 *
 *   nf-driver selftest HELPER NETNS_PATH SYSCALL
 *	run the helper with QCTL_NF_SELFTEST_SYSCALL=SYSCALL (which
 *	nf_start() would never pass) and print how it ended.
 *
 * Built by the test script from source, with qctl/netfilter.c and
 * qctl/util.c, so that it does not depend on the rest of libqctl.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

#include "netfilter.h"
#include "nf-proto.h"

static void
print_status(int st)
{
	if (WIFEXITED(st))
		printf("exit %d\n", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		printf("signal %d\n", WTERMSIG(st));
	else
		printf("status %#x\n", st);
}

static int
wait_for(pid_t pid, int ms)
{
	int st;

	for (int i = 0; i < ms / 10; i++) {
		pid_t p = waitpid(pid, &st, WNOHANG);

		if (p == pid) {
			print_status(st);
			return 0;
		}
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	printf("running\n");
	return -1;
}

static int
send_hex(int fd, const char *hex)
{
	unsigned char buf[1024];
	size_t n = 0;

	while (hex[0] && hex[1] && n < sizeof(buf)) {
		unsigned int b;

		if (sscanf(hex, "%2x", &b) != 1)
			return -1;
		buf[n++] = b;
		hex += 2;
	}
	return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -1;
}

static int
send_with_fd(int fd)
{
	struct nf_hdr h = { NF_REQ_OPEN, sizeof(h), 99, 0 };
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { &h, sizeof(h) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int passed = 0;		/* our stdin */

	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &passed, sizeof(int));
	return sendmsg(fd, &mh, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static int64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Window open+close round trips through the helper, timed one by one. */
static void
bench(struct nf_client *c, long n)
{
	int64_t *t = calloc(n, sizeof(*t)), sum = 0;
	struct error err = { 0 };

	for (long i = 0; i < n; i++) {
		int64_t t0 = now_us();

		if (nf_open_window(c, &err) < 0 ||
		    nf_close_window(c, &err) < 0) {
			printf("error: %s\n", err.msg);
			free(t);
			return;
		}
		t[i] = now_us() - t0;
		sum += t[i];
	}
	qsort(t, n, sizeof(*t), cmp_i64);
	printf("bench mean=%.1f p50=%" PRId64 " p99=%" PRId64 "\n",
	       (double)sum / n, t[n / 2], t[(n * 99) / 100]);
	free(t);
}

static void
answer(int r, const struct error *err)
{
	if (r < 0)
		printf("error: %s\n", err->msg);
	else
		printf("ok\n");
}

static int
session(const char *helper, const char *nspath)
{
	struct nf_client *c;
	struct error err = { 0 };
	char line[2048];
	int nsfd, r;

	nsfd = open(nspath, O_RDONLY | O_CLOEXEC);
	if (nsfd < 0) {
		perror(nspath);
		return 1;
	}
	if (nf_start(helper, nsfd, &c, &err) < 0) {
		printf("error: %s\n", err.msg);
		return 1;
	}
	close(nsfd);
	printf("pid %d\n", (int)nf_pid(c));
	while (fgets(line, sizeof(line), stdin)) {
		char ifname[64], host[64], guest[64], hex[1500];
		unsigned int port;
		unsigned long long quota;
		long n;
		unsigned int ssh = 0;

		line[strcspn(line, "\n")] = '\0';
		error_clear(&err);
		/* "setup IF HOST GUEST PORT QUOTA [SSHPORT]" */
		if (sscanf(line, "setup %63s %63s %63s %u %llu %u", ifname,
			   host, guest, &port, &quota, &ssh) >= 5) {
			answer(nf_setup(c, ifname, host, guest, port, quota,
					ssh, &err), &err);
		} else if (strcmp(line, "open") == 0) {
			answer(nf_open_window(c, &err), &err);
		} else if (strcmp(line, "close") == 0) {
			answer(nf_close_window(c, &err), &err);
		} else if (strcmp(line, "counters") == 0) {
			struct nf_counters k;

			r = nf_read_counters(c, &k, &err);
			if (r < 0)
				answer(r, &err);
			else
				printf("counters rx_bytes=%" PRIu64
				       " rx_packets=%" PRIu64
				       " tx_bytes=%" PRIu64
				       " tx_packets=%" PRIu64
				       " dropped_packets=%" PRIu64
				       " quota_used=%" PRIu64 "\n",
				       k.rx_bytes, k.rx_packets, k.tx_bytes,
				       k.tx_packets, k.dropped_packets,
				       k.quota_used);
		} else if (strcmp(line, "teardown") == 0) {
			answer(nf_teardown(c, &err), &err);
		} else if (sscanf(line, "deadline %u", &port) == 1) {
			nf_set_deadline(c, (int)port);
			answer(0, &err);
		} else if (strcmp(line, "alive") == 0) {
			printf("%s\n", nf_alive(c) ? "alive" : "dead");
		} else if (sscanf(line, "raw %1499s", hex) == 1) {
			answer(send_hex(nf_fd(c), hex) < 0 ? -1 : 0, &err);
		} else if (strcmp(line, "rawfd") == 0) {
			answer(send_with_fd(nf_fd(c)), &err);
		} else if (strcmp(line, "eof") == 0) {
			shutdown(nf_fd(c), SHUT_RDWR);
			answer(0, &err);
		} else if (strcmp(line, "wait") == 0) {
			wait_for(nf_pid(c), 3000);
		} else if (sscanf(line, "bench %ld", &n) == 1 && n > 0 &&
			   n <= 1000000) {
			bench(c, n);
		} else {
			printf("error: unknown command\n");
		}
		fflush(stdout);
	}
	/* Not nf_stop() after "wait" reaped it; exiting is enough. */
	return 0;
}

static int
selftest(const char *helper, const char *nspath, const char *sys)
{
	int sv[2], st;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	pid = fork();
	if (pid == 0) {
		int nsfd = open(nspath, O_RDONLY | O_CLOEXEC);

		if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) < 0 ||
		    dup2(sv[1], NF_HELPER_FD) < 0)
			_exit(126);
		setenv("QCTL_NF_SELFTEST_SYSCALL", sys, 1);
		execl(helper, "qctl-netfilter", (char *)NULL);
		_exit(127);
	}
	close(sv[1]);
	if (waitpid(pid, &st, 0) != pid)
		return 1;
	print_status(st);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	signal(SIGPIPE, SIG_IGN);
	if (argc == 4 && strcmp(argv[1], "session") == 0)
		return session(argv[2], argv[3]);
	if (argc == 5 && strcmp(argv[1], "selftest") == 0)
		return selftest(argv[2], argv[3], argv[4]);
	fprintf(stderr,
		"usage: nf-driver session HELPER NETNS_PATH\n"
		"       nf-driver selftest HELPER NETNS_PATH SYSCALL\n");
	return 2;
}
