/* proxy.c - manager side of the filtering proxy: start qctl-proxy, drive
 * its window, read its records.  The proxy parses the build's bytes, so
 * the manager trusts it less than itself: every message is bounded and
 * validated. */
#include "proxy.h"
#include "allowlist.h"
#include "child.h"
#include "json-util.h"
#include "proxy-proto.h"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define PROXY_DEFAULT_CONNECT_MS 10000
#define PROXY_DEFAULT_IDLE_MS (5 * 60 * 1000)

struct proxy {
	pid_t pid;
	int fd;
	bool open;
	char *path;
	struct proxy_msg_state st;
};

/* The control socket to watch. */
int
proxy_fd(const struct proxy *p)
{
	return p->fd;
}

/* The proxy process. */
pid_t
proxy_pid(const struct proxy *p)
{
	return p->pid;
}

/* Byte totals reported so far. */
void
proxy_totals(const struct proxy *p, uint64_t *up, uint64_t *down)
{
	if (up)
		*up = p->st.up;
	if (down)
		*down = p->st.down;
}

/* The ids to run the proxy as: never root. */
static int
pick_ids(const struct proxy_config *cfg, uid_t *uid, gid_t *gid,
	 struct error *err)
{
	struct passwd *pw;
	struct group *gr;

	*uid = cfg->uid;
	*gid = cfg->gid;
	if (!*uid) {
		pw = getpwnam("nobody");
		if (!pw || !pw->pw_uid)
			return error_set(
				err, ENOENT,
				"no user \"nobody\" to run the proxy as");
		*uid = pw->pw_uid;
	}
	if (!*gid) {
		gr = getgrnam("nogroup");
		if (!gr)
			gr = getgrnam("nobody");
		if (!gr || !gr->gr_gid)
			return error_set(
				err, ENOENT,
				"no group \"nogroup\" to run the proxy "
				"as");
		*gid = gr->gr_gid;
	}
	return 0;
}

/* One packet: 1 read, 0 nothing yet, < 0 EOF (-EPIPE) or bad packet. */
static int
recv_packet(int fd, char *buf, size_t cap, size_t *len)
{
	struct iovec iov = { buf, cap };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	do {
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	/* A peer that exits with unread packets (say, its configuration)
	 * leaves a reset, reported ahead of what it sent last (a "fail"):
	 * the error is consumed now, so look once more. */
	if (n < 0 && errno == ECONNRESET) {
		do {
			n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		} while (n < 0 && errno == EINTR);
		if (n < 0 && errno == EAGAIN)
			return -EPIPE;
	}
	if (n < 0 && errno == EAGAIN)
		return 0;
	/* A peer that died may show as a reset rather than an EOF. */
	if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE)))
		return -EPIPE;
	if (n < 0)
		return -errno;
	/* Oversized packets and passed fds (discarded by the kernel, since
	 * we give no control buffer) are both protocol violations. */
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		return -EMSGSIZE;
	*len = n;
	return 1;
}

/* The configuration message, defaults filled in, within the bounds. */
int
proxy_config_encode(const struct proxy_config *cfg, uid_t uid, gid_t gid,
		    char **out, struct error *err)
{
	_cleanup_json_ json_t *j = NULL;
	json_t *allow;
	char *txt;

	*out = NULL;
	if (cfg->n_allow > PROXY_ALLOW_MAX)
		return error_set(err, EINVAL,
				 "proxy: %zu allow entries, at most %d",
				 cfg->n_allow, PROXY_ALLOW_MAX);
	allow = json_array();
	for (size_t i = 0; i < cfg->n_allow; i++) {
		/* The proxy checks them again; a bad one is our error to
		 * report, with the manager's words. */
		if (allowlist_check_entry(cfg->allow[i], err) < 0) {
			json_decref(allow);
			error_prefix(err, "proxy: allow[%zu]", i);
			return -EINVAL;
		}
		json_array_append_new(allow, json_string(cfg->allow[i]));
	}
	j = json_pack(
		"{s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:o}", "t", "config", "v",
		PROXY_PROTO_VERSION, "uid", (json_int_t)uid, "gid",
		(json_int_t)gid, "connect_ms",
		(json_int_t)(cfg->connect_timeout_ms > 0
				     ? cfg->connect_timeout_ms
				     : PROXY_DEFAULT_CONNECT_MS),
		"idle_ms",
		(json_int_t)(cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms
						      : PROXY_DEFAULT_IDLE_MS),
		"max_bytes", (json_int_t)cfg->max_bytes, "allow", allow);
	if (!j || cfg->max_bytes > INT64_MAX)
		return error_set(err, EINVAL, "proxy: bad configuration");
	txt = json_dumps(j, JSON_COMPACT);
	if (!txt)
		return error_set(err, ENOMEM, "proxy: encoding configuration");
	if (strlen(txt) > PROXY_CONFIG_MAX) {
		free(txt);
		return error_set(err, EINVAL,
				 "proxy: allowlist too large (more than %d "
				 "bytes)",
				 PROXY_CONFIG_MAX);
	}
	*out = txt;
	return 0;
}

/*
 * Between fork and exec.  A failure goes to the manager as the proxy's
 * "fail" message on the control socket, which it reads in its loop like
 * any start-up failure of the program itself.
 */
static void __attribute__((noreturn))
proxy_child(const char *path, int listen_fd, int ctl, pid_t ppid)
{
	char *const argv[] = { (char *)"qctl-proxy", NULL };
	char *const envp[] = { NULL };
	int fds[2] = { listen_fd, ctl };
	struct child_fds cf = {
		.in = -1, .out = -1, .err = -1,
		.fds = fds, .n = 2, .first = PROXY_FD_LISTEN,
		.errpipe = -1,
	};
	char msg[256];
	int e;

	if (child_setup(&cf, NULL) < 0)
		_exit(127);
	/* From here on the proxy dies with the manager (it sets this again
	 * once it has changed its ids, which clears it). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != ppid)
		_exit(127);
	/* An empty environment: nothing of the manager's (its variables,
	 * other builds' secrets, LD_* or test hooks) reaches the process
	 * that parses the build's bytes; exec also leaves the manager's heap
	 * behind. */
	execve(path, argv, envp);
	e = errno;
	snprintf(msg, sizeof(msg), "{\"t\":\"fail\",\"msg\":\"exec: %s\"}",
		 strerror(e));
	(void)!send(PROXY_FD_CTL, msg, strlen(msg), MSG_NOSIGNAL);
	_exit(127);
}

/* Fork and exec the proxy; "ready" arrives later through proxy_handle_io. */
int
proxy_start(const struct proxy_config *cfg, struct proxy **out,
	    struct error *err)
{
	_cleanup_free_ char *conf = NULL;
	struct proxy *p;
	int sv[2], acc = 0, r, sndbuf = 2 * PROXY_CONFIG_MAX;
	socklen_t sl = sizeof(acc);
	uid_t uid = 0;
	gid_t gid = 0;
	pid_t self = getpid();
	ssize_t n;

	*out = NULL;
	if (!cfg->path || !*cfg->path)
		return error_set(err, EINVAL, "proxy: no program to run");
	if (getsockopt(cfg->listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) <
		    0 ||
	    !acc)
		return error_set(err, EINVAL,
				 "proxy: fd %d is not a listening socket",
				 cfg->listen_fd);
	/* An unprivileged manager has nothing to give up; the proxy still
	 * sets no_new_privs and seccomp. */
	if (geteuid() == 0 && pick_ids(cfg, &uid, &gid, err) < 0)
		return -ENOENT;
	r = proxy_config_encode(cfg, uid, gid, &conf, err);
	if (r < 0)
		return r;

	/* Packets, not a stream: a message is whole or absent, and a
	 * proxy cannot make the manager buffer an endless line. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return error_sys(err, errno, "proxy: socketpair");
	/* The configuration is queued before the fork: the proxy finds it
	 * waiting, and the manager never waits on the proxy to read. */
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
	n = send(sv[0], conf, strlen(conf), MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n != (ssize_t)strlen(conf)) {
		r = error_sys(err, n < 0 ? errno : EMSGSIZE,
			      "proxy: queueing the configuration");
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	p = xcalloc(1, sizeof(*p));
	p->fd = sv[0];
	p->path = xstrdup(cfg->path);
	p->pid = fork();
	if (p->pid < 0) {
		r = error_sys(err, errno, "proxy: fork");
		close(sv[1]);
		p->pid = 0;
		proxy_stop(p);
		return r;
	}
	if (p->pid == 0)
		proxy_child(cfg->path, cfg->listen_fd, sv[1], self);
	close(sv[1]);
	if (fd_set_nonblock(p->fd) < 0) {
		r = error_sys(err, errno, "proxy: fcntl");
		proxy_stop(p);
		return r;
	}
	*out = p;
	return 0;
}

/* Has it said "ready"? */
bool
proxy_ready(const struct proxy *p)
{
	return p->st.ready;
}

static int
send_json(struct proxy *p, json_t *msg, struct error *err)
{
	char *txt = json_dumps(msg, JSON_COMPACT);
	ssize_t n;
	size_t len;

	json_decref(msg);
	if (!txt)
		return error_set(err, ENOMEM, "proxy: encoding a message");
	len = strlen(txt);
	/* Never block on the proxy: a full socket means it stopped
	 * reading, which is a failure of the proxy. */
	do {
		n = send(p->fd, txt, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	} while (n < 0 && errno == EINTR);
	free(txt);
	if (n < 0)
		return error_sys(err, errno, "proxy: sending to proxy");
	return 0;
}

/* Open (with a step name) or close the window; closing cuts relays. */
int
proxy_set_window(struct proxy *p, bool open, const char *step,
		 struct error *err)
{
	if (open && !p->st.ready)
		return error_set(err, EAGAIN, "proxy: not ready yet");
	if (!open) {
		p->open = false;
		return send_json(
			p, json_pack("{s:s, s:b}", "t", "window", "open", 0),
			err);
	}
	if (p->st.nsteps >= UINT32_MAX - 1)
		return error_set(err, ERANGE, "proxy: too many windows");
	/* The proxy tags records with this id; the name stays here, so a
	 * misbehaving proxy cannot make up step names. */
	p->st.steps = xrealloc(p->st.steps,
			       (p->st.nsteps + 1) * sizeof(*p->st.steps));
	p->st.steps[p->st.nsteps++] = xstrdup(step ? step : "");
	p->open = true;
	return send_json(p,
			 json_pack("{s:s, s:b, s:I}", "t", "window", "open", 1,
				   "id", (json_int_t)p->st.nsteps),
			 err);
}

static bool
text_ok(const char *s, size_t max, bool allow_space)
{
	size_t n = 0;

	for (; s[n]; n++) {
		unsigned char c = s[n];

		if (n >= max || c > 0x7e || c < 0x20 ||
		    (c == ' ' && !allow_space))
			return false;
	}
	return true;
}

static bool
method_ok(const char *m)
{
	size_t n = strlen(m);

	if (!strcmp(m, "-"))
		return true;
	if (n == 0 || n >= PROXY_METHOD_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (m[i] < 'A' || m[i] > 'Z')
			return false;
	return true;
}

static int
handle_req(struct proxy_msg_state *st, json_t *j, proxy_record_fn fn,
	   void *opaque, struct error *err)
{
	const char *t, *method, *host, *reason;
	json_int_t w, port, up, down;
	int allowed;
	struct proxy_record rec;

	if (json_unpack(j, "{s:s, s:I, s:s, s:s, s:I, s:b, s:s, s:I, s:I !}",
			"t", &t, "w", &w, "method", &method, "host", &host,
			"port", &port, "allowed", &allowed, "reason", &reason,
			"up", &up, "down", &down) < 0)
		return error_set(err, EPROTO, "proxy: malformed record");
	if (w < 0 || (uint64_t)w > st->nsteps || port < 0 || port > 65535 ||
	    up < 0 || down < 0 || !method_ok(method) ||
	    !text_ok(host, PROXY_HOST_MAX - 1, false) ||
	    !text_ok(reason, PROXY_REASON_MAX, true))
		return error_set(err, EPROTO, "proxy: invalid record");
	rec.step = w ? st->steps[w - 1] : NULL;
	rec.method = method;
	rec.host = host;
	rec.port = port;
	rec.allowed = allowed;
	rec.reason = reason;
	rec.bytes_up = up;
	rec.bytes_down = down;
	if (fn)
		fn(&rec, opaque);
	return 0;
}

static int
handle_bytes(struct proxy_msg_state *st, json_t *j, struct error *err)
{
	const char *t;
	json_int_t up, down;

	if (json_unpack(j, "{s:s, s:I, s:I !}", "t", &t, "up", &up, "down",
			&down) < 0)
		return error_set(err, EPROTO, "proxy: malformed totals");
	/* Counters only grow: a proxy that claims otherwise is lying
	 * about what the build used. */
	if (up < 0 || down < 0 || (uint64_t)up < st->up ||
	    (uint64_t)down < st->down)
		return error_set(err, EPROTO, "proxy: totals went backwards");
	st->up = up;
	st->down = down;
	return 0;
}

/* The proxy's own account of why it could not start, made printable. */
static int
handle_fail(json_t *j, struct error *err)
{
	const char *t, *m;
	char clean[512];
	size_t k = 0;

	if (json_unpack(j, "{s:s, s:s !}", "t", &t, "msg", &m) < 0)
		return error_set(err, EPROTO, "proxy: malformed failure");
	for (; m[k] && k < sizeof(clean) - 1; k++)
		clean[k] = m[k] >= 0x20 && m[k] < 0x7f ? m[k] : '?';
	clean[k] = '\0';
	return error_set(err, EPERM, "proxy: %s", clean);
}

/* Validate one packet from the proxy; records go to fn. */
int
proxy_msg_decode(struct proxy_msg_state *st, const char *msg, size_t len,
		 proxy_record_fn fn, void *opaque, struct error *err)
{
	_cleanup_json_ json_t *j = NULL;
	const char *t;

	if (len > PROXY_MSG_MAX)
		return error_set(err, EPROTO, "proxy: oversized message");
	j = json_loadb(msg, len, JSON_REJECT_DUPLICATES, NULL);
	t = json_string_value(json_object_get(j, "t"));
	if (!t)
		return error_set(err, EPROTO, "proxy: bad message");
	if (!strcmp(t, "fail"))
		return handle_fail(j, err);
	if (!st->ready) {
		/* Nothing counts before the proxy is confined. */
		if (strcmp(t, "ready") || json_object_size(j) != 1)
			return error_set(err, EPROTO,
					 "proxy: unexpected first message");
		st->ready = true;
		return 0;
	}
	if (!strcmp(t, "req"))
		return handle_req(st, j, fn, opaque, err);
	if (!strcmp(t, "bytes"))
		return handle_bytes(st, j, err);
	return error_set(err, EPROTO, "proxy: unexpected message");
}

/* Drain the control socket; < 0 if the proxy died or misbehaved. */
int
proxy_handle_io(struct proxy *p, proxy_record_fn fn, void *opaque,
		struct error *err)
{
	char msg[PROXY_MSG_MAX + 1];

	for (;;) {
		size_t len = 0;
		int r = recv_packet(p->fd, msg, sizeof(msg), &len);

		if (r == 0)
			return 0;
		if (r == -EPIPE && !p->st.ready) {
			error_set(err, EPIPE,
				  "proxy: exited before it was ready");
			error_prefix(err, "starting %s", p->path);
			return -EPIPE;
		}
		if (r == -EPIPE)
			return error_set(err, EPIPE, "proxy: exited");
		if (r < 0)
			return error_set(err, EPROTO,
					 "proxy: oversized or bad packet");
		r = proxy_msg_decode(&p->st, msg, len, fn, opaque, err);
		if (r < 0 && !p->st.ready)
			error_prefix(err, "starting %s", p->path);
		if (r < 0)
			return r;
	}
}

/* Free the step names and reset the state. */
void
proxy_msg_state_free(struct proxy_msg_state *st)
{
	for (size_t i = 0; i < st->nsteps; i++)
		free(st->steps[i]);
	free(st->steps);
	memset(st, 0, sizeof(*st));
}

/* SIGKILL, reap, free; NULL is ignored. */
void
proxy_stop(struct proxy *p)
{
	if (!p)
		return;
	if (p->pid > 0) {
		kill(p->pid, SIGKILL);
		while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (p->fd >= 0)
		close(p->fd);
	proxy_msg_state_free(&p->st);
	free(p->path);
	free(p);
}

/* A record as a "network" entry of the result. */
json_t *
proxy_record_to_json(const struct proxy_record *r)
{
	return json_pack("{s:o, s:s, s:s, s:i, s:b, s:s, s:I, s:I}", "step",
			 r->step ? json_string(r->step) : json_null(), "method",
			 r->method, "host", r->host, "port", (int)r->port,
			 "allowed", (int)r->allowed, "reason", r->reason,
			 "bytes_up", (json_int_t)r->bytes_up, "bytes_down",
			 (json_int_t)r->bytes_down);
}
