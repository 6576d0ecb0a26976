/* proxy-driver.c - run qctl's proxy alone, for tests and benchmarks.
 *
 *   proxy-driver [-P QCTL_PROXY] [-m MAX_BYTES] [-c CONNECT_MS]
 *                [-i IDLE_MS] [-C] [-a ADDR] PORT ENTRY...
 *
 * Listens on ADDR:PORT (default 127.0.0.1), starts the proxy program
 * (-P, else $QCTL_PROXY) with the allowlist ENTRY..., waits for it to be
 * ready, opens a window for step "fetch" unless -C, and prints one JSON
 * line per event on stdout:
 *   {"event":"ready","pid":N}  {"event":"record",...}
 *   {"event":"totals","up":U,"down":D}  {"event":"proxy-died","error":"..."}
 * Commands on stdin, one a line: "open STEP", "close", "totals", "quit".
 * Built by the proxy tests against build/libqctl.a; the proxy itself is
 * build/qctl-proxy. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "json-util.h"
#include "proxy.h"

static void
emit(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);

	json_decref(j);
	if (s) {
		printf("%s\n", s);
		fflush(stdout);
		free(s);
	}
}

static void
on_record(const struct proxy_record *r, void *opaque)
{
	json_t *j = proxy_record_to_json(r);

	(void)opaque;
	json_object_set_new(j, "event", json_string("record"));
	emit(j);
}

static int
listen_on(const char *addr, int port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0 || inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 128) < 0)
		return -1;
	return fd;
}

int
main(int argc, char **argv)
{
	struct proxy_config cfg = { 0 };
	struct error err = { 0 };
	struct proxy *p;
	const char *addr = "127.0.0.1";
	bool closed = false;
	char line[256];
	int64_t deadline;
	int opt;

	cfg.path = getenv("QCTL_PROXY");
	while ((opt = getopt(argc, argv, "P:m:c:i:a:C")) != -1) {
		switch (opt) {
		case 'P':
			cfg.path = optarg;
			break;
		case 'm':
			cfg.max_bytes = strtoull(optarg, NULL, 10);
			break;
		case 'c':
			cfg.connect_timeout_ms = strtoll(optarg, NULL, 10);
			break;
		case 'i':
			cfg.idle_timeout_ms = strtoll(optarg, NULL, 10);
			break;
		case 'a':
			addr = optarg;
			break;
		case 'C':
			closed = true;
			break;
		default:
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: %s [options] PORT ENTRY...\n", argv[0]);
		return 2;
	}
	cfg.listen_fd = listen_on(addr, atoi(argv[optind]));
	if (cfg.listen_fd < 0) {
		perror("listen");
		return 1;
	}
	cfg.allow = argv + optind + 1;
	cfg.n_allow = argc - optind - 1;
	if (proxy_start(&cfg, &p, &err) < 0) {
		fprintf(stderr, "proxy_start: %s\n", err.msg);
		return 1;
	}
	close(cfg.listen_fd);
	/* Start-up does not wait: "ready" comes over the control socket. */
	deadline = now_ms() + PROXY_START_TIMEOUT_MS;
	while (!proxy_ready(p)) {
		struct pollfd pfd = { proxy_fd(p), POLLIN, 0 };

		if (now_ms() >= deadline ||
		    poll(&pfd, 1, deadline - now_ms()) < 0 ||
		    proxy_handle_io(p, on_record, NULL, &err) < 0) {
			fprintf(stderr, "proxy not ready: %s\n",
				err.msg[0] ? err.msg : "timed out");
			proxy_stop(p);
			return 1;
		}
	}
	if (!closed && proxy_set_window(p, true, "fetch", &err) < 0) {
		fprintf(stderr, "window: %s\n", err.msg);
		return 1;
	}
	emit(json_pack("{s:s, s:i}", "event", "ready", "pid",
		       (int)proxy_pid(p)));
	/* poll() sees fd 0, not stdio's buffer: read commands unbuffered */
	setvbuf(stdin, NULL, _IONBF, 0);
	for (;;) {
		struct pollfd pfd[2] = { { proxy_fd(p), POLLIN, 0 },
					 { 0, POLLIN, 0 } };
		uint64_t up, down;

		if (poll(pfd, 2, -1) < 0)
			continue;
		if (pfd[0].revents &&
		    proxy_handle_io(p, on_record, NULL, &err) < 0) {
			emit(json_pack("{s:s, s:s}", "event", "proxy-died",
				       "error", err.msg));
			proxy_stop(p);
			return 3;
		}
		if (!pfd[1].revents)
			continue;
		if (!fgets(line, sizeof(line), stdin) ||
		    !strncmp(line, "quit", 4))
			break;
		line[strcspn(line, "\n")] = '\0';
		if (!strncmp(line, "open ", 5)) {
			if (proxy_set_window(p, true, line + 5, &err) < 0)
				fprintf(stderr, "window: %s\n", err.msg);
		} else if (!strcmp(line, "close")) {
			if (proxy_set_window(p, false, NULL, &err) < 0)
				fprintf(stderr, "window: %s\n", err.msg);
		} else if (!strcmp(line, "totals")) {
			proxy_totals(p, &up, &down);
			emit(json_pack("{s:s, s:I, s:I}", "event", "totals",
				       "up", (json_int_t)up, "down",
				       (json_int_t)down));
		}
		emit(json_pack("{s:s, s:s}", "event", "ok", "cmd", line));
	}
	proxy_stop(p);
	return 0;
}
