/* test-proxy.c - the proxy process end to end: each test unshares a fresh
 * network namespace (root only; skipped otherwise), starts python3
 * http.server upstreams on 127.0.0.1 in it, runs proxy_start (which execs
 * build/qctl-proxy, or $QCTL_PROXY) on a listener there and talks to it.
 * No packet leaves the namespace; "example.com" appears only as a name
 * that is refused. */
#include <arpa/inet.h>
#include <criterion/criterion.h>

#include "built-program.h"
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "proxy.h"

#define PROXY_PORT 13128
#define UP_OK 18080		/* allowlisted upstream */
#define UP_OTHER 18081		/* upstream that is not listed */
#define UP_NAMED 18082		/* listed only by name (localhost) */
#define UP_NONE 18099		/* listed, nothing listens */
#define FILE_BYTES 100000

static char tmpdir[] = "/tmp/qctl-proxy-test-XXXXXX";
static pid_t servers[8];
static size_t nservers;
static struct proxy *px;

struct rec {
	char *step, *method, *host, *reason;
	uint16_t port;
	bool allowed;
	uint64_t up, down;
};
static struct rec recs[64];
static size_t nrecs;

static void
on_record(const struct proxy_record *r, void *opaque)
{
	(void)opaque;
	cr_assert_lt(nrecs, 64);
	recs[nrecs++] = (struct rec){
		r->step ? strdup(r->step) : NULL, strdup(r->method),
		strdup(r->host),		    strdup(r->reason),
		r->port,			    r->allowed,
		r->bytes_up,			    r->bytes_down,
	};
}

/* Read proxy messages until n records are in, or 30 s pass (a loaded
 * host is slow; what never comes fails). */
static void
wait_records(size_t n)
{
	int64_t deadline = now_ms() + 30000;
	struct error err = { 0 };

	while (nrecs < n && now_ms() < deadline) {
		struct pollfd pfd = { proxy_fd(px), POLLIN, 0 };

		poll(&pfd, 1, 100);
		cr_assert_geq(proxy_handle_io(px, on_record, NULL, &err), 0,
			      "proxy_handle_io: %s", err.msg);
	}
	cr_assert_eq(nrecs, n, "records: %zu, want %zu", nrecs, n);
}

static void
lo_up(void)
{
	struct ifreq ifr = { 0 };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	strcpy(ifr.ifr_name, "lo");
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
	close(fd);
}

static int
tcp_connect_to(const char *addr, uint16_t port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port) };
	/* a read that times out fails (-1), told apart from EOF (0) */
	struct timeval tv = { 30, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_eq(inet_pton(AF_INET, addr, &sin.sin_addr), 1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
tcp_connect(uint16_t port)
{
	return tcp_connect_to("127.0.0.1", port);
}

static void
start_server_on(const char *addr, uint16_t port)
{
	char portstr[16], www[64];
	pid_t pid;

	snprintf(portstr, sizeof(portstr), "%u", port);
	snprintf(www, sizeof(www), "%s/www", tmpdir);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(devnull, 1);
		dup2(devnull, 2);
		execlp(access("/usr/bin/python3", X_OK) == 0
			       ? "/usr/bin/python3"
			       : "python3",
		       "python3", "-m", "http.server", "--bind", addr,
		       "--directory", www, portstr, (char *)NULL);
		_exit(127);
	}
	servers[nservers++] = pid;
	for (int64_t end = now_ms() + 30000; now_ms() < end;) {
		int fd = tcp_connect_to(addr, port);

		if (fd >= 0) {
			close(fd);
			return;
		}
		usleep(50000);
	}
	cr_assert_fail("upstream on %u did not start in 30 s", port);
}

static void
start_server(uint16_t port)
{
	start_server_on("127.0.0.1", port);
}

static int
listener(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(PROXY_PORT) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(fd, 64), 0);
	return fd;
}

/* $QCTL_PROXY, else build/qctl-proxy (we are build/tests/test-proxy). */
static const char *
proxy_path(void)
{
	return built_program("QCTL_PROXY", "qctl-proxy");
}

/* Read the proxy's messages until it says ready (bounded). */
static void
wait_ready(void)
{
	int64_t deadline = now_ms() + 30000;
	struct error err = { 0 };

	while (!proxy_ready(px)) {
		struct pollfd pfd = { proxy_fd(px), POLLIN, 0 };

		cr_assert_lt(now_ms(), deadline, "proxy not ready in 30 s");
		poll(&pfd, 1, 100);
		cr_assert_geq(proxy_handle_io(px, on_record, NULL, &err), 0,
			      "proxy: %s", err.msg);
	}
}

static void
start_proxy_with(const char *const *allow, size_t n, uint64_t max_bytes,
		 int64_t idle_ms)
{
	struct proxy_config cfg = { 0 };
	struct error err = { 0 };
	char *copy[8];

	for (size_t i = 0; i < n; i++)
		copy[i] = strdup(allow[i]);
	cfg.path = proxy_path();
	cfg.listen_fd = listener();
	cfg.allow = copy;
	cfg.n_allow = n;
	cfg.max_bytes = max_bytes;
	cfg.idle_timeout_ms = idle_ms;
	cfg.connect_timeout_ms = 2000;
	cr_assert_eq(proxy_start(&cfg, &px, &err), 0, "proxy_start: %s",
		     err.msg);
	close(cfg.listen_fd);
	for (size_t i = 0; i < n; i++)
		free(copy[i]);
	/* Not before it is ready: start-up does not wait for the proxy,
	 * and a window must not open ahead of it. */
	cr_assert_lt(proxy_set_window(px, true, "fetch", &err), 0);
	cr_assert_eq(err.code, EAGAIN);
	wait_ready();
	cr_assert_eq(proxy_set_window(px, true, "fetch", &err), 0, "%s",
		     err.msg);
}

static void
start_proxy(void)
{
	static const char *const allow[] = {
		"127.0.0.1:18080", "localhost:18082", "127.0.0.1:18099",
		"[::1]:18080",
	};

	start_proxy_with(allow, 4, 0, 0);
}

static void
setup(void)
{
	char path[128];
	int fd;
	char *data;

	if (geteuid() != 0)
		cr_skip_test("needs root for a network namespace");
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare: %s", strerror(errno));
	lo_up();
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/www", tmpdir);
	cr_assert_eq(mkdir(path, 0755), 0);
	chmod(tmpdir, 0755);
	snprintf(path, sizeof(path), "%s/www/file", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	data = malloc(FILE_BYTES);
	for (int i = 0; i < FILE_BYTES; i++)
		data[i] = 'a' + i % 26;
	cr_assert_eq(write(fd, data, FILE_BYTES), FILE_BYTES);
	free(data);
	close(fd);
	start_server(UP_OK);
	start_server(UP_OTHER);
	start_server(UP_NAMED);
}

static void
teardown(void)
{
	proxy_stop(px);
	px = NULL;
	for (size_t i = 0; i < nservers; i++) {
		kill(servers[i], SIGKILL);
		waitpid(servers[i], NULL, 0);
	}
	if (strcmp(tmpdir, "/tmp/qctl-proxy-test-XXXXXX"))
		rm_rf(tmpdir);
}

/* a hang guard above the tests' own 30 s waits for what must happen */
TestSuite(proxy, .init = setup, .fini = teardown, .timeout = 300);

/* Send req through the proxy, read the whole answer; returns the status
 * code (0 if none), the answer in *resp (malloc'd). */
static int
http(const char *req, size_t reqlen, char **resp, size_t *resplen)
{
	int fd = tcp_connect(PROXY_PORT), status = 0;
	struct buf b = { 0 };
	char tmp[65536];
	ssize_t n;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, req, reqlen), (ssize_t)reqlen);
	while ((n = read(fd, tmp, sizeof(tmp))) > 0)
		buf_append(&b, tmp, n);
	close(fd);
	if (b.len > 12 && !strncmp(b.data, "HTTP/1.", 7))
		status = atoi(b.data + 9);
	if (resp)
		*resp = b.data ? b.data : strdup("");
	else
		buf_free(&b);
	if (resplen)
		*resplen = b.len;
	return status;
}

static int
get(const char *url, char **resp, size_t *resplen)
{
	char req[512];

	snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", url);
	return http(req, strlen(req), resp, resplen);
}

Test(proxy, allowed_get_relayed_and_recorded)
{
	char *resp;
	size_t len;
	uint64_t up, down;

	start_proxy();
	cr_assert_eq(get("http://127.0.0.1:18080/file", &resp, &len), 200);
	cr_expect_gt(len, FILE_BYTES);
	cr_expect(strstr(resp, "abcdefghijklmnopqrstuvwxyzabc"));
	free(resp);
	wait_records(1);
	cr_expect_str_eq(recs[0].step, "fetch");
	cr_expect_str_eq(recs[0].method, "GET");
	cr_expect_str_eq(recs[0].host, "127.0.0.1");
	cr_expect_eq(recs[0].port, UP_OK);
	cr_expect(recs[0].allowed);
	cr_expect_gt(recs[0].up, 50);
	cr_expect_geq(recs[0].down, FILE_BYTES);
	cr_expect_eq(recs[0].down, len, "down %lu, client got %zu",
		     (unsigned long)recs[0].down, len);
	proxy_totals(px, &up, &down);
	cr_expect_eq(up, recs[0].up);
	cr_expect_eq(down, recs[0].down);
}

Test(proxy, not_listed_refused_with_reason)
{
	char *resp;

	start_proxy();
	cr_assert_eq(get("http://127.0.0.1:18081/file", &resp, NULL), 403);
	cr_expect(strstr(resp, "qctl: 127.0.0.1:18081 is not in the "
			       "allowlist"),
		  "%s", resp);
	free(resp);
	cr_assert_eq(get("http://example.com/", &resp, NULL), 403);
	cr_expect(strstr(resp, "example.com:80 is not in the allowlist"));
	free(resp);
	wait_records(2);
	cr_expect_not(recs[0].allowed);
	cr_expect_str_eq(recs[0].host, "127.0.0.1");
	cr_expect_eq(recs[0].port, UP_OTHER);
	cr_expect(strstr(recs[0].reason, "not in the allowlist"));
	cr_expect_eq(recs[0].down, 0);
}

Test(proxy, names_and_addresses)
{
	char *resp;

	start_proxy();
	/* localhost resolves to 127.0.0.1, but the name is not listed */
	cr_assert_eq(get("http://localhost:18080/file", &resp, NULL), 403);
	cr_expect(strstr(resp, "localhost:18080 is not in the allowlist"),
		  "%s", resp);
	free(resp);
	/* listed as a name, but it resolves to loopback, and neither
	 * 127.0.0.1:18082 nor ::1:18082 is listed (which of the two the
	 * resolver gives first depends on the host's /etc/hosts) */
	cr_assert_eq(get("http://localhost:18082/file", &resp, NULL), 403);
	cr_expect(strstr(resp, "resolves to 127.0.0.1 (loopback)") ||
			  strstr(resp, "resolves to ::1 (loopback)"),
		  "%s", resp);
	free(resp);
	/* the listed IP itself */
	cr_assert_eq(get("http://127.0.0.1:18080/file", NULL, NULL), 200);
	wait_records(3);
	/* other spellings of 127.0.0.1 */
	cr_expect_eq(get("http://2130706433:18080/file", NULL, NULL), 403);
	cr_expect_eq(get("http://0x7f.1:18080/file", NULL, NULL), 403);
	cr_expect_eq(get("http://0177.0.0.1:18080/file", NULL, NULL), 403);
	cr_expect_eq(get("http://127.1:18080/file", NULL, NULL), 403);
	cr_expect_eq(get("http://[::ffff:127.0.0.1]:18080/file", NULL, NULL),
		     403);
	cr_expect_eq(get("http://127.0.0.1.:18080/file", NULL, NULL), 403);
	wait_records(9);
	cr_expect_not(recs[1].allowed);
	cr_expect(strstr(recs[1].reason, "loopback"));
	cr_expect(recs[2].allowed);
	cr_expect_str_eq(recs[3].host, "2130706433");
	cr_expect(strstr(recs[3].reason, "dotted quad"), "%s", recs[3].reason);
	cr_expect(strstr(recs[7].reason, "IPv4-mapped"), "%s", recs[7].reason);
}

Test(proxy, malformed_and_https_absolute)
{
	const char *junk = "HELLO\r\n\r\n";
	const char *https = "GET https://127.0.0.1:18080/ HTTP/1.1\r\n\r\n";
	const char *origin = "GET /file HTTP/1.1\r\nHost: x\r\n\r\n";
	const char *userinfo =
		"GET http://127.0.0.1:18080@example.com/ HTTP/1.1\r\n\r\n";

	start_proxy();
	cr_expect_eq(http(junk, strlen(junk), NULL, NULL), 400);
	cr_expect_eq(http(https, strlen(https), NULL, NULL), 400);
	cr_expect_eq(http(origin, strlen(origin), NULL, NULL), 400);
	cr_expect_eq(http(userinfo, strlen(userinfo), NULL, NULL), 400);
	wait_records(4);
	cr_expect_str_eq(recs[0].method, "-");
	cr_expect(strstr(recs[1].reason, "CONNECT"), "%s", recs[1].reason);
	cr_expect_not(recs[3].allowed);
}

Test(proxy, upstream_down_is_502)
{
	char *resp;

	start_proxy();
	cr_assert_eq(get("http://127.0.0.1:18099/", &resp, NULL), 502);
	cr_expect(strstr(resp, "Connection refused"), "%s", resp);
	free(resp);
	wait_records(1);
	cr_expect(recs[0].allowed);
}

/* A minimal ClientHello (TLS 1.2 layout) naming host, or none if NULL. */
static size_t
client_hello(const char *host, uint8_t *out)
{
	size_t n = 0, hl = host ? strlen(host) : 0, ext = host ? 9 + hl : 0;
	size_t body = 2 + 32 + 1 + 4 + 2 + 2 + ext;

	out[n++] = 22, out[n++] = 3, out[n++] = 1;
	out[n++] = (body + 4) >> 8, out[n++] = body + 4;
	out[n++] = 1, out[n++] = 0, out[n++] = body >> 8, out[n++] = body;
	out[n++] = 3, out[n++] = 3;
	memset(out + n, 0x42, 32), n += 32;
	out[n++] = 0;				/* session id */
	out[n++] = 0, out[n++] = 2, out[n++] = 0x13, out[n++] = 0x01;
	out[n++] = 1, out[n++] = 0;		/* compression: null */
	out[n++] = ext >> 8, out[n++] = ext;
	if (host) {
		out[n++] = 0, out[n++] = 0;	/* server_name */
		out[n++] = (hl + 5) >> 8, out[n++] = hl + 5;
		out[n++] = (hl + 3) >> 8, out[n++] = hl + 3;
		out[n++] = 0;
		out[n++] = hl >> 8, out[n++] = hl;
		memcpy(out + n, host, hl), n += hl;
	}
	return n;
}

/* CONNECT to target, then send first; return the socket after reading
 * the proxy's reply head (status in *status). */
static int
tunnel(const char *target, int *status)
{
	char req[256], head[256];
	int fd = tcp_connect(PROXY_PORT);
	ssize_t n;
	size_t got = 0;

	cr_assert_geq(fd, 0);
	snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n",
		 target, target);
	cr_assert_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	/* read byte by byte up to the end of the head: what follows is the
	 * tunnel's */
	while (got < sizeof(head) - 1 && (n = read(fd, head + got, 1)) == 1) {
		got++;
		head[got] = '\0';
		if (got >= 4 && !strcmp(head + got - 4, "\r\n\r\n"))
			break;
	}
	head[got] = '\0';
	*status = got > 12 ? atoi(head + 9) : 0;
	return fd;
}

/* Everything up to EOF (a cut tunnel: 0 bytes); -1 if the read failed
 * or timed out instead -- a tunnel left hanging is no cut one. */
static ssize_t
read_all(int fd, char *out, size_t cap)
{
	size_t got = 0;
	ssize_t n = 0;

	while (got < cap && (n = read(fd, out + got, cap - got)) > 0)
		got += n;
	return n < 0 ? -1 : (ssize_t)got;
}

Test(proxy, connect_sni_checked)
{
	static const char *const allow[] = { "127.0.0.1:18080",
					     "localhost:18080" };
	uint8_t hello[512];
	char resp[4096];
	size_t hl;
	int fd, st;

	start_proxy_with(allow, 2, 0, 0);
	/* SNI names another host than the CONNECT: cut, nothing relayed */
	fd = tunnel("localhost:18080", &st);
	cr_assert_eq(st, 200);
	hl = client_hello("example.com", hello);
	cr_assert_eq(write(fd, hello, hl), (ssize_t)hl);
	cr_expect_eq(read_all(fd, resp, sizeof(resp)), 0);
	close(fd);
	wait_records(1);
	/* SNI equal to the CONNECT host (case aside): relayed; the python
	 * server answers the non-HTTP bytes with a 400 page */
	fd = tunnel("LOCALHOST:18080", &st);
	cr_assert_eq(st, 200);
	hl = client_hello("LocalHost", hello);
	hello[hl++] = '\n';	/* python reads a line, then says 400 */
	cr_assert_eq(write(fd, hello, hl), (ssize_t)hl);
	cr_expect_gt(read_all(fd, resp, sizeof(resp)), 0);
	close(fd);
	wait_records(2);
	/* no SNI at all: allowed */
	fd = tunnel("127.0.0.1:18080", &st);
	cr_assert_eq(st, 200);
	hl = client_hello(NULL, hello);
	hello[hl++] = '\n';
	cr_assert_eq(write(fd, hello, hl), (ssize_t)hl);
	cr_expect_gt(read_all(fd, resp, sizeof(resp)), 0);
	close(fd);
	wait_records(3);
	/* an IP CONNECT with a name in SNI: mismatch */
	fd = tunnel("127.0.0.1:18080", &st);
	cr_assert_eq(st, 200);
	hl = client_hello("localhost", hello);
	cr_assert_eq(write(fd, hello, hl), (ssize_t)hl);
	cr_expect_eq(read_all(fd, resp, sizeof(resp)), 0);
	close(fd);
	wait_records(4);
	/* plain HTTP inside the tunnel: not TLS, relayed */
	fd = tunnel("127.0.0.1:18080", &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(write(fd, "GET /file HTTP/1.0\r\n\r\n", 22), 22);
	{
		char *big = malloc(2 * FILE_BYTES);

		cr_expect_gt(read_all(fd, big, 2 * FILE_BYTES), FILE_BYTES);
		free(big);
	}
	close(fd);
	wait_records(5);
	cr_expect_not(recs[0].allowed);
	cr_expect_str_eq(recs[0].method, "CONNECT");
	cr_expect(strstr(recs[0].reason, "TLS SNI example.com does not match "
					 "CONNECT host localhost"),
		  "%s", recs[0].reason);
	cr_expect_eq(recs[0].up, 0, "bytes went up: %lu",
		     (unsigned long)recs[0].up);
	cr_expect(recs[1].allowed, "%s", recs[1].reason);
	cr_expect(recs[2].allowed, "%s", recs[2].reason);
	cr_expect_not(recs[3].allowed);
	cr_expect(recs[4].allowed);
	cr_expect_geq(recs[4].down, FILE_BYTES);
}

Test(proxy, window_closed_refuses_and_cuts)
{
	struct error err = { 0 };
	char *resp, buf[16];
	int fd, st;

	start_proxy();
	/* a tunnel open when the window closes is cut */
	fd = tunnel("127.0.0.1:18080", &st);
	cr_assert_eq(st, 200);
	cr_assert_eq(proxy_set_window(px, false, NULL, &err), 0);
	cr_expect_eq(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	cr_assert_eq(get("http://127.0.0.1:18080/file", &resp, NULL), 403);
	cr_expect(strstr(resp, "no network window is open"), "%s", resp);
	free(resp);
	/* and a new window lets requests through again, under its name */
	cr_assert_eq(proxy_set_window(px, true, "deps", &err), 0);
	cr_assert_eq(get("http://127.0.0.1:18080/file", NULL, NULL), 200);
	wait_records(3);
	cr_expect(strstr(recs[0].reason, "network window closed"), "%s",
		  recs[0].reason);
	cr_expect_str_eq(recs[0].step, "fetch");
	cr_expect_null(recs[1].step);
	cr_expect_not(recs[1].allowed);
	cr_expect_str_eq(recs[2].step, "deps");
}

static void
status_field(pid_t pid, const char *field, char *out, size_t n)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, field, strlen(field)) &&
		    line[strlen(field)] == ':') {
			snprintf(out, n, "%s", line + strlen(field) + 1);
			out[strcspn(out, "\n")] = '\0';
			break;
		}
	}
	fclose(f);
}

/* Its own program, with nothing of the manager's environment. */
static void
expect_exec(pid_t pid)
{
	char path[64], exe[4096], env[64];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	cr_assert_gt(n, 0);
	exe[n] = '\0';
	cr_expect(n > 11 && !strcmp(exe + n - 11, "/qctl-proxy"),
		  "pid %d runs %s", (int)pid, exe);
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	n = read(fd, env, sizeof(env));
	close(fd);
	cr_expect_eq(n, 0, "pid %d has an environment (%zd bytes)", (int)pid,
		     n);
}

static void
expect_confined(pid_t pid)
{
	char v[128];

	status_field(pid, "Uid", v, sizeof(v));
	cr_expect_str_eq(v, "\t65534\t65534\t65534\t65534", "pid %d Uid %s",
			 (int)pid, v);
	status_field(pid, "Gid", v, sizeof(v));
	cr_expect_str_eq(v, "\t65534\t65534\t65534\t65534");
	status_field(pid, "Groups", v, sizeof(v));
	cr_expect(v[strspn(v, "\t ")] == '\0', "groups: %s", v);
	status_field(pid, "Seccomp", v, sizeof(v));
	cr_expect_str_eq(v, "\t2");
	status_field(pid, "NoNewPrivs", v, sizeof(v));
	cr_expect_str_eq(v, "\t1");
	status_field(pid, "CapEff", v, sizeof(v));
	cr_expect_str_eq(v, "\t0000000000000000");
	status_field(pid, "CapBnd", v, sizeof(v));
	cr_expect_str_eq(v, "\t0000000000000000");
}

Test(proxy, runs_confined)
{
	char path[64], kids[256], fdpath[300];
	FILE *f;
	int nfd = 0, nkids = 0;

	start_proxy();
	/* fds: stdio on /dev/null, listener, control, epoll, 4 resolvers */
	snprintf(fdpath, sizeof(fdpath), "/proc/%d/fd", (int)proxy_pid(px));
	for (int fd = 0; fd < 64; fd++) {
		char p[320];

		snprintf(p, sizeof(p), "%s/%d", fdpath, fd);
		if (access(p, F_OK) == 0)
			nfd++;
	}
	cr_expect_eq(nfd, 10, "proxy holds %d fds", nfd);
	/* a resolver does a lookup under its filter, and lives on */
	cr_assert_eq(get("http://localhost:18082/", NULL, NULL), 403);
	cr_assert_eq(get("http://localhost:18082/", NULL, NULL), 403);
	wait_records(2);
	cr_expect(strstr(recs[1].reason, "loopback"), "%s", recs[1].reason);
	expect_confined(proxy_pid(px));
	expect_exec(proxy_pid(px));
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children",
		 (int)proxy_pid(px), (int)proxy_pid(px));
	f = fopen(path, "r");
	cr_assert_not_null(f);
	if (fgets(kids, sizeof(kids), f)) {
		for (char *t = strtok(kids, " \n"); t;
		     t = strtok(NULL, " \n")) {
			expect_confined(atoi(t));
			expect_exec(atoi(t));
			nkids++;
		}
	}
	fclose(f);
	cr_expect_eq(nkids, 4, "resolvers: %d", nkids);
}

Test(proxy, death_is_noticed)
{
	struct error err = { 0 };
	struct pollfd pfd;
	int r = 0;

	start_proxy();
	kill(proxy_pid(px), SIGKILL);
	pfd = (struct pollfd){ proxy_fd(px), POLLIN, 0 };
	cr_assert_eq(poll(&pfd, 1, 30000), 1);
	for (int i = 0; i < 10 && r == 0; i++)
		r = proxy_handle_io(px, NULL, NULL, &err);
	cr_expect_lt(r, 0);
	cr_expect(strstr(err.msg, "exited"), "%s", err.msg);
}

Test(proxy, byte_budget_stops_relaying)
{
	static const char *const allow[] = { "127.0.0.1:18080" };
	uint64_t up, down;
	char *resp;
	size_t len;

	start_proxy_with(allow, 1, 30000, 0);
	get("http://127.0.0.1:18080/file", &resp, &len);
	free(resp);
	cr_expect_lt(len, FILE_BYTES);
	wait_records(1);
	cr_expect(strstr(recs[0].reason, "net_bytes budget exhausted"), "%s",
		  recs[0].reason);
	cr_expect_leq(recs[0].up + recs[0].down, 30000);
	cr_assert_eq(get("http://127.0.0.1:18080/file", &resp, NULL), 403);
	cr_expect(strstr(resp, "budget"), "%s", resp);
	free(resp);
	wait_records(2);
	proxy_totals(px, &up, &down);
	cr_expect_eq(up + down, 30000, "totals %lu",
		     (unsigned long)(up + down));
}

Test(proxy, idle_tunnel_times_out)
{
	static const char *const allow[] = { "127.0.0.1:18080" };
	char buf[16];
	int fd, st;
	int64_t t0;

	start_proxy_with(allow, 1, 0, 300);
	/* the tunnel's idle clock starts after t0: it is cut no sooner than
	 * 300 ms on (a little less for the clocks' rounding), and not
	 * never -- how late, a loaded host decides */
	t0 = now_ms();
	fd = tunnel("127.0.0.1:18080", &st);
	cr_assert_eq(st, 200);
	cr_expect_eq(read(fd, buf, sizeof(buf)), 0, "not cut for idleness");
	cr_expect_geq(now_ms() - t0, 290, "cut after %lld ms",
		      (long long)(now_ms() - t0));
	cr_expect_lt(now_ms() - t0, 20000);
	close(fd);
	wait_records(1);
	cr_expect_str_eq(recs[0].reason, "idle timeout");
}

Test(proxy, many_clients_at_once)
{
	enum { N = 40 };
	int fds[N];
	const char *req = "GET http://127.0.0.1:18080/file HTTP/1.1\r\n\r\n";
	size_t total = 0;

	start_proxy();
	for (int i = 0; i < N; i++) {
		fds[i] = tcp_connect(PROXY_PORT);
		cr_assert_geq(fds[i], 0);
		cr_assert_eq(write(fds[i], req, strlen(req)),
			     (ssize_t)strlen(req));
	}
	for (int i = 0; i < N; i++) {
		char *b = malloc(FILE_BYTES + 4096);
		ssize_t n = read_all(fds[i], b, FILE_BYTES + 4096);

		cr_expect_geq(n, 0, "client %d: no EOF", i);
		total += n > 0 ? (size_t)n : 0;
		free(b);
		close(fds[i]);
	}
	cr_expect_gt(total, (size_t)N * FILE_BYTES);
	wait_records(N);
	for (int i = 0; i < N; i++)
		cr_expect(recs[i].allowed);
}

/* Start-up returns at once; a proxy that never gets ready is the
 * caller's to time out, and a program that cannot run says why. */
Test(proxy, start_does_not_wait)
{
	struct proxy_config cfg = { 0 };
	struct error err = { 0 };
	struct pollfd pfd;
	char hang[128], *const none[] = { NULL };
	int64_t t0;
	FILE *f;

	snprintf(hang, sizeof(hang), "%s/hang", tmpdir);
	f = fopen(hang, "w");
	cr_assert_not_null(f);
	fputs("#!/bin/sh\nexec /bin/sleep 30\n", f);
	fclose(f);
	chmod(hang, 0755);
	cfg.path = hang;
	cfg.listen_fd = listener();
	cfg.allow = none;
	t0 = now_ms();
	cr_assert_eq(proxy_start(&cfg, &px, &err), 0, "%s", err.msg);
	/* the stand-in never gets ready: a start that waited for it would
	 * take its 30 s (or a deadline's); a loaded host, a few seconds */
	cr_expect_lt(now_ms() - t0, 5000, "proxy_start waited");
	pfd = (struct pollfd){ proxy_fd(px), POLLIN, 0 };
	cr_expect_eq(poll(&pfd, 1, 500), 0);
	cr_expect_eq(proxy_handle_io(px, on_record, NULL, &err), 0);
	cr_expect_not(proxy_ready(px));
	cr_expect_lt(proxy_set_window(px, true, "fetch", &err), 0);
	proxy_stop(px);

	cfg.path = "/nonexistent/qctl-proxy";
	cr_assert_eq(proxy_start(&cfg, &px, &err), 0, "%s", err.msg);
	close(cfg.listen_fd);
	pfd = (struct pollfd){ proxy_fd(px), POLLIN, 0 };
	cr_assert_eq(poll(&pfd, 1, 30000), 1);
	cr_expect_lt(proxy_handle_io(px, on_record, NULL, &err), 0);
	cr_expect(strstr(err.msg, "/nonexistent/qctl-proxy") &&
			  strstr(err.msg, "No such file"),
		  "%s", err.msg);
	cr_expect_not(proxy_ready(px));
}

/*
 * An address of the namespace the proxy connects from (192.0.2.1 on lo
 * here) is this host's: a name resolving to it is refused unless that
 * very IP:port is listed, like loopback.  The name comes from a hosts
 * file bind-mounted over /etc/hosts in a mount namespace of the test's.
 */
Test(proxy, host_addresses_refused_unless_listed)
{
	static const char *const allow[] = { "self.test:18083",
					     "self.test:18084",
					     "192.0.2.1:18084" };
	char hosts[128], *resp;
	FILE *f;

	cr_assert_eq(system("ip addr add 192.0.2.1/32 dev lo"), 0);
	snprintf(hosts, sizeof(hosts), "%s/hosts", tmpdir);
	f = fopen(hosts, "w");
	cr_assert_not_null(f);
	fputs("127.0.0.1 localhost\n192.0.2.1 self.test\n", f);
	fclose(f);
	chmod(hosts, 0644);
	cr_assert_eq(unshare(CLONE_NEWNS), 0, "%s", strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mount(hosts, "/etc/hosts", NULL, MS_BIND, NULL), 0,
		     "%s", strerror(errno));
	start_server_on("192.0.2.1", 18083);
	start_server_on("192.0.2.1", 18084);
	start_proxy_with(allow, 3, 0, 0);

	cr_assert_eq(get("http://self.test:18083/file", &resp, NULL), 403);
	cr_expect(strstr(resp, "self.test resolves to 192.0.2.1 (an address "
			       "of this host)"),
		  "%s", resp);
	free(resp);
	cr_expect_eq(get("http://self.test:18084/file", NULL, NULL), 200);
	cr_expect_eq(get("http://192.0.2.1:18084/file", NULL, NULL), 200);
	wait_records(3);
	cr_expect_not(recs[0].allowed);
	cr_expect(recs[1].allowed);
	cr_expect(recs[2].allowed);
}
