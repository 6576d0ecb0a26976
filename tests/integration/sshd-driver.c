/* sshd-driver.c - run qctl's ssh server alone, for tests.
 *
 *   sshd-driver [-S QCTL_SSHD] [-g GRACE_MS] [-c MAX_CONNS] -k HOSTKEY...
 *               -a AUTHORIZED_KEYS [-b BUILD] [-A ADDR] PORT
 *
 * Plays the manager with qctl/sshd.c's API: listens on ADDR:PORT
 * (default 127.0.0.1), starts the sshd (-S, else $QCTL_SSHD) with the
 * host keys read from each -k HOSTKEY (at most 3), and serves one held build, BUILD (default
 * "b1"), whose allowed keys are the lines of AUTHORIZED_KEYS; every other
 * build gets an empty key list (and an open of one is refused).  A
 * session with a command runs it with /bin/sh -c, stdin, stdout and
 * stderr piped; a shell is a fake one that says
 * "fake-shell term=T rows=R cols=C", echoes its input and exits 0 at a
 * line "exit".  One JSON line per event on stdout:
 *   {"event":"ready","pid":N}  {"event":"open",...}  {"event":"closed",...}
 *   {"event":"log","line":"..."}  {"event":"winch",...}
 *   {"event":"sshd-died","error":"..."}
 * Commands on stdin, one a line: "close-all REASON", "unhold" (the build
 * is no longer held: its key list is empty from now on), "mute-opens"
 * (opens are left unanswered from now on), "quit".
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "sshd.h"

#define MAXS 64

struct dsess {
	uint32_t sid;
	bool used, shell;
	pid_t pid;
	int in, out, err; /* pipes to the child; -1 when closed */
	struct buf inbuf; /* stdin not yet written to the child */
	struct buf line;  /* the fake shell's current line */
	int status;
	bool exited, done;
};

static struct dsess sess[MAXS];
static const char *build = "b1";
static char **keys;
static size_t nkeys;
static struct sshd *sd;
static bool mute; /* leave opens unanswered */

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

static struct dsess *
find(uint32_t sid)
{
	for (int i = 0; i < MAXS; i++)
		if (sess[i].used && sess[i].sid == sid)
			return &sess[i];
	return NULL;
}

static void
drop(struct dsess *d)
{
	if (d->in >= 0)
		close(d->in);
	if (d->out >= 0)
		close(d->out);
	if (d->err >= 0)
		close(d->err);
	if (d->pid > 0) {
		kill(-d->pid, SIGKILL);
		if (!d->exited)
			waitpid(d->pid, NULL, 0);
	}
	buf_free(&d->inbuf);
	buf_free(&d->line);
	memset(d, 0, sizeof(*d));
}

static void
on_keys(struct sshd *s, uint32_t req, const char *b, void *o)
{
	struct error err = { 0 };

	(void)o;
	emit(json_pack("{s:s, s:s}", "event", "keys", "build", b));
	if (sshd_send_keys(s, req, (const char *const *)keys,
			   strcmp(b, build) ? 0 : nkeys, &err) < 0)
		emit(json_pack("{s:s, s:s}", "event", "error", "error",
			       err.msg));
}

static int
spawn(struct dsess *d, const char *cmd)
{
	int pi[2], po[2], pe[2];

	if (pipe2(pi, O_CLOEXEC) < 0 || pipe2(po, O_CLOEXEC) < 0 ||
	    pipe2(pe, O_CLOEXEC) < 0)
		return -1;
	d->pid = fork();
	if (d->pid < 0)
		return -1;
	if (d->pid == 0) {
		/* a group of its own, killed whole at the session's end;
		 * and gone with the driver */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pi[0], 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	close(pi[0]);
	close(po[1]);
	close(pe[1]);
	d->in = pi[1];
	d->out = po[0];
	d->err = pe[0];
	fcntl(d->in, F_SETFL, O_NONBLOCK);
	return 0;
}

static void
on_open(struct sshd *s, const struct sshd_open *o, void *opaque)
{
	struct error err = { 0 };
	struct dsess *d = NULL;
	char hello[200];

	(void)opaque;
	emit(json_pack("{s:s, s:i, s:s, s:s, s:s, s:b, s:s, s:i, s:i, s:o}",
		       "event", "open", "sid", (int)o->sid, "build", o->build,
		       "fingerprint", o->fingerprint, "peer", o->peer, "pty",
		       o->has_pty, "term", o->term, "rows", (int)o->rows,
		       "cols", (int)o->cols, "command",
		       o->command ? json_string(o->command) : json_null()));
	if (mute)
		return;
	if (strcmp(o->build, build)) {
		sshd_send_refused(s, o->sid, "no such held build", &err);
		return;
	}
	for (int i = 0; i < MAXS && !d; i++)
		if (!sess[i].used)
			d = &sess[i];
	if (!d) {
		sshd_send_refused(s, o->sid, "too many sessions", &err);
		return;
	}
	memset(d, 0, sizeof(*d));
	d->used = true;
	d->sid = o->sid;
	d->in = d->out = d->err = -1;
	if (o->command) {
		if (spawn(d, o->command) < 0) {
			sshd_send_refused(s, o->sid, "fork failed", &err);
			drop(d);
			return;
		}
		sshd_send_opened(s, o->sid, &err);
		return;
	}
	d->shell = true;
	sshd_send_opened(s, o->sid, &err);
	snprintf(hello, sizeof(hello), "fake-shell term=%s rows=%u cols=%u\r\n",
		 o->term, o->rows, o->cols);
	sshd_send_output(s, o->sid, false, hello, strlen(hello), &err);
}

static void
shell_input(struct sshd *s, struct dsess *d, const uint8_t *p, size_t n)
{
	struct error err = { 0 };

	sshd_send_output(s, d->sid, false, p, n, &err);
	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n' && p[i] != '\r') {
			buf_append(&d->line, &p[i], 1);
			continue;
		}
		if (d->line.len && !strcmp(d->line.data, "exit")) {
			sshd_send_eof(s, d->sid, &err);
			sshd_send_exit(s, d->sid, false, 0, &err);
			d->done = true;
			return;
		}
		buf_consume(&d->line, d->line.len);
	}
}

static void
on_stdin(struct sshd *s, uint32_t sid, const uint8_t *p, size_t n, void *o)
{
	struct error err = { 0 };
	struct dsess *d = find(sid);

	(void)o;
	if (!d)
		return;
	if (d->shell) {
		if (!d->done)
			shell_input(s, d, p, n);
		sshd_stdin_done(s, sid, n, &err);
		return;
	}
	buf_append(&d->inbuf, p, n);
}

static void
on_stdin_eof(struct sshd *s, uint32_t sid, void *o)
{
	struct dsess *d = find(sid);

	(void)s;
	(void)o;
	if (d && !d->shell && d->inbuf.len == 0 && d->in >= 0) {
		close(d->in);
		d->in = -1;
	} else if (d && !d->shell) {
		d->line.len = 1; /* close once the buffer is written */
	}
}

static void
on_winch(struct sshd *s, uint32_t sid, unsigned int r, unsigned int c,
	 void *o)
{
	(void)s;
	(void)o;
	emit(json_pack("{s:s, s:i, s:i, s:i}", "event", "winch", "sid",
		       (int)sid, "rows", (int)r, "cols", (int)c));
}

static void
on_closed(struct sshd *s, uint32_t sid, const char *reason, void *o)
{
	struct dsess *d = find(sid);

	(void)s;
	(void)o;
	emit(json_pack("{s:s, s:i, s:s}", "event", "closed", "sid", (int)sid,
		       "reason", reason));
	if (d)
		drop(d);
}

static void
on_log(struct sshd *s, const char *line, void *o)
{
	(void)s;
	(void)o;
	emit(json_pack("{s:s, s:s}", "event", "log", "line", line));
}

static const struct sshd_callbacks cbs = {
	.keys = on_keys,
	.open = on_open,
	.stdin_data = on_stdin,
	.stdin_eof = on_stdin_eof,
	.winch = on_winch,
	.closed = on_closed,
	.log = on_log,
};

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

static void
read_keys(const char *path)
{
	char *txt = NULL, *save = NULL, *l;
	size_t len;
	struct error err = { 0 };

	if (read_file(path, 1 << 20, &txt, &len, &err) < 0) {
		fprintf(stderr, "%s\n", err.msg);
		exit(1);
	}
	for (l = strtok_r(txt, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!*l || *l == '#')
			continue;
		keys = xrealloc(keys, (nkeys + 1) * sizeof(*keys));
		keys[nkeys++] = xstrdup(l);
	}
	free(txt);
}

/* Move bytes between the sessions' children and the sshd. */
static void
pump(struct dsess *d, struct pollfd *pf)
{
	struct error err = { 0 };
	char b[8192];
	ssize_t n;

	if (d->in >= 0 && d->inbuf.len) {
		n = write(d->in, d->inbuf.data, d->inbuf.len);
		if (n > 0) {
			buf_consume(&d->inbuf, n);
			sshd_stdin_done(sd, d->sid, n, &err);
		} else if (n < 0 && errno != EAGAIN) {
			sshd_stdin_done(sd, d->sid, d->inbuf.len, &err);
			buf_consume(&d->inbuf, d->inbuf.len);
		}
	}
	if (d->in >= 0 && !d->inbuf.len && d->line.len == 1) {
		close(d->in);
		d->in = -1;
	}
	for (int k = 0; k < 2; k++) {
		int *fd = k ? &d->err : &d->out;
		size_t room = sshd_output_room(sd, d->sid);

		if (*fd < 0 || !(pf[k].revents & (POLLIN | POLLHUP)) || !room)
			continue;
		n = read(*fd, b, room < sizeof(b) ? room : sizeof(b));
		if (n > 0) {
			sshd_send_output(sd, d->sid, k, b, n, &err);
		} else if (n == 0 || errno != EINTR) {
			close(*fd);
			*fd = -1;
		}
	}
	if (d->out < 0 && d->err < 0 && !d->done) {
		int st;

		if (!d->exited && waitpid(d->pid, &st, WNOHANG) == d->pid) {
			d->exited = true;
			d->status = st;
		}
		if (d->exited) {
			sshd_send_eof(sd, d->sid, &err);
			if (WIFSIGNALED(d->status))
				sshd_send_exit(sd, d->sid, true,
					       WTERMSIG(d->status), &err);
			else
				sshd_send_exit(sd, d->sid, false,
					       WEXITSTATUS(d->status), &err);
			d->done = true;
		}
	}
}

int
main(int argc, char **argv)
{
	struct sshd_config cfg = { 0 };
	struct error err = { 0 };
	const char *addr = "127.0.0.1", *hk_path[3], *ak_path = NULL;
	const char *hk[3];
	char *hostkey[3];
	size_t hlen[3], nhk = 0;
	int64_t deadline;
	int opt;

	cfg.path = getenv("QCTL_SSHD");
	while ((opt = getopt(argc, argv, "S:g:c:k:a:b:A:")) != -1) {
		switch (opt) {
		case 'S': cfg.path = optarg; break;
		case 'g': cfg.grace_ms = atoi(optarg); break;
		case 'c': cfg.max_conns = atoi(optarg); break;
		case 'k':
			if (nhk == 3)
				return 2;
			hk_path[nhk++] = optarg;
			break;
		case 'a': ak_path = optarg; break;
		case 'b': build = optarg; break;
		case 'A': addr = optarg; break;
		default: return 2;
		}
	}
	if (optind >= argc || !nhk || !ak_path) {
		fprintf(stderr, "usage: %s [options] -k HOSTKEY -a KEYS PORT\n",
			argv[0]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	for (size_t i = 0; i < nhk; i++) {
		if (read_file(hk_path[i], 65536, &hostkey[i], &hlen[i], &err) <
		    0) {
			fprintf(stderr, "%s\n", err.msg);
			return 1;
		}
		hk[i] = hostkey[i];
	}
	read_keys(ak_path);
	cfg.hostkeys = hk;
	cfg.n_hostkeys = nhk;
	cfg.listen_fd = listen_on(addr, atoi(argv[optind]));
	if (cfg.listen_fd < 0) {
		perror("listen");
		return 1;
	}
	if (sshd_start(&cfg, &cbs, NULL, &sd, &err) < 0) {
		fprintf(stderr, "sshd_start: %s\n", err.msg);
		return 1;
	}
	close(cfg.listen_fd);
	/* the sshd has its copy (queued with the configuration) */
	for (size_t i = 0; i < nhk; i++) {
		explicit_bzero(hostkey[i], hlen[i]);
		free(hostkey[i]);
	}
	deadline = now_ms() + SSHD_START_TIMEOUT_MS;
	while (!sshd_ready(sd)) {
		struct pollfd pfd = { sshd_fd(sd), POLLIN, 0 };

		if (now_ms() >= deadline ||
		    poll(&pfd, 1, deadline - now_ms()) < 0 ||
		    sshd_handle_io(sd, &err) < 0) {
			fprintf(stderr, "sshd not ready: %s\n",
				err.msg[0] ? err.msg : "timed out");
			sshd_stop(sd);
			return 1;
		}
	}
	emit(json_pack("{s:s, s:i}", "event", "ready", "pid",
		       (int)sshd_pid(sd)));
	setvbuf(stdin, NULL, _IONBF, 0);
	for (;;) {
		struct pollfd pf[2 + 3 * MAXS];
		int idx[MAXS];
		int n = 2;
		char line[600];

		pf[0] = (struct pollfd){ sshd_fd(sd),
					 (sshd_events(sd) & EPOLLOUT)
						 ? POLLIN | POLLOUT
						 : POLLIN,
					 0 };
		pf[1] = (struct pollfd){ 0, POLLIN, 0 };
		for (int i = 0; i < MAXS; i++) {
			struct dsess *d = &sess[i];

			idx[i] = -1;
			if (!d->used || d->shell)
				continue;
			idx[i] = n;
			pf[n++] = (struct pollfd){
				d->out, sshd_output_room(sd, d->sid) ? POLLIN : 0, 0 };
			pf[n++] = (struct pollfd){
				d->err, sshd_output_room(sd, d->sid) ? POLLIN : 0, 0 };
			pf[n++] = (struct pollfd){
				d->in, d->inbuf.len ? POLLOUT : 0, 0 };
		}
		if (poll(pf, n, 200) < 0)
			continue;
		if (pf[0].revents && sshd_handle_io(sd, &err) < 0) {
			emit(json_pack("{s:s, s:s}", "event", "sshd-died",
				       "error", err.msg));
			sshd_stop(sd);
			return 1;
		}
		for (int i = 0; i < MAXS; i++)
			if (idx[i] >= 0 && sess[i].used)
				pump(&sess[i], &pf[idx[i]]);
		if (pf[1].revents & (POLLIN | POLLHUP)) {
			ssize_t k = read(0, line, sizeof(line) - 1);

			if (k <= 0)
				break;
			line[k] = '\0';
			line[strcspn(line, "\n")] = '\0';
			if (!strcmp(line, "quit"))
				break;
			if (!strcmp(line, "mute-opens")) {
				mute = true;
				emit(json_pack("{s:s}", "event", "muted"));
			}
			if (!strcmp(line, "unhold")) {
				build = "";
				emit(json_pack("{s:s}", "event", "unheld"));
			}
			if (!strncmp(line, "close-all ", 10)) {
				uint32_t ids[MAXS];
				size_t m = sshd_sessions(sd, ids, MAXS);

				for (size_t i = 0; i < m && i < MAXS; i++)
					sshd_send_close(sd, ids[i], line + 10,
							&err);
				emit(json_pack("{s:s, s:i}", "event",
					       "closing", "n", (int)m));
			}
		}
		/* queued frames go out */
		if (sshd_handle_io(sd, &err) < 0) {
			emit(json_pack("{s:s, s:s}", "event", "sshd-died",
				       "error", err.msg));
			sshd_stop(sd);
			return 1;
		}
	}
	sshd_stop(sd);
	for (int i = 0; i < MAXS; i++)
		if (sess[i].used)
			drop(&sess[i]);
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	return 0;
}
