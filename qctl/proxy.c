/* proxy.c - manager side of the filtering proxy: fork it, drive its window,
 * read its records.  The proxy parses the build's bytes, so the manager
 * trusts it less than itself: every message is bounded and validated. */
#include "proxy.h"
#include "allowlist.h"
#include "json-util.h"
#include "proxy-proto.h"
#include "proxy-serve.h"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#define PROXY_START_TIMEOUT_MS 5000
#define PROXY_DEFAULT_CONNECT_MS 10000
#define PROXY_DEFAULT_IDLE_MS (5 * 60 * 1000)

struct proxy {
	pid_t pid;
	int fd;
	bool open;
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

/* Fork the sandboxed proxy; return once it says it is serving. */
int
proxy_start(const struct proxy_config *cfg, struct proxy **out,
	    struct error *err)
{
	struct proxy_child_args args = { 0 };
	struct allowlist *al;
	struct proxy *p;
	char msg[PROXY_MSG_MAX + 1];
	size_t len = 0;
	int sv[2], acc = 0, r;
	socklen_t sl = sizeof(acc);
	int64_t deadline;
	pid_t pid;

	*out = NULL;
	if (getsockopt(cfg->listen_fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &sl) <
		    0 ||
	    !acc)
		return error_set(err, EINVAL,
				 "proxy: fd %d is not a listening socket",
				 cfg->listen_fd);
	al = allowlist_new(cfg->allow, cfg->n_allow, err);
	if (!al) {
		error_prefix(err, "proxy");
		return -EINVAL;
	}
	args.listen_fd = cfg->listen_fd;
	args.al = al;
	/* An unprivileged manager has nothing to give up but still gets
	 * no_new_privs and seccomp. */
	args.drop_ids = geteuid() == 0;
	if (args.drop_ids && pick_ids(cfg, &args.uid, &args.gid, err) < 0) {
		allowlist_free(al);
		return -ENOENT;
	}
	args.connect_timeout_ms = cfg->connect_timeout_ms > 0
					  ? cfg->connect_timeout_ms
					  : PROXY_DEFAULT_CONNECT_MS;
	args.idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms
							: PROXY_DEFAULT_IDLE_MS;
	args.max_bytes = cfg->max_bytes;

	/* Packets, not a stream: a message is whole or absent, and a
	 * proxy cannot make the manager buffer an endless line. */
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		allowlist_free(al);
		return error_sys(err, errno, "proxy: socketpair");
	}
	pid = fork();
	if (pid < 0) {
		r = error_sys(err, errno, "proxy: fork");
		close(sv[0]);
		close(sv[1]);
		allowlist_free(al);
		return r;
	}
	if (pid == 0) {
		args.ctl_fd = sv[1];
		proxy_child_main(&args);
	}
	close(sv[1]);
	allowlist_free(al);
	p = xcalloc(1, sizeof(*p));
	p->pid = pid;
	p->fd = sv[0];

	/* Wait, bounded, for the child to say it is sandboxed. */
	deadline = now_ms() + PROXY_START_TIMEOUT_MS;
	for (;;) {
		struct pollfd pfd = { p->fd, POLLIN, 0 };
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			r = error_set(err, ETIMEDOUT,
				      "proxy: not ready after %d ms",
				      PROXY_START_TIMEOUT_MS);
			goto fail;
		}
		if (poll(&pfd, 1, left) < 0 && errno != EINTR) {
			r = error_sys(err, errno, "proxy: poll");
			goto fail;
		}
		r = recv_packet(p->fd, msg, sizeof(msg) - 1, &len);
		if (r < 0) {
			r = error_set(err, EPIPE, "proxy: died while starting");
			goto fail;
		}
		if (r > 0)
			break;
	}
	msg[len] = '\0';
	{
		_cleanup_json_ json_t *j = json_loads(msg, 0, NULL);
		const char *t = json_string_value(json_object_get(j, "t"));
		const char *m = json_string_value(json_object_get(j, "msg"));

		if (t && !strcmp(t, "ready")) {
			if (fd_set_nonblock(p->fd) < 0) {
				r = error_sys(err, errno, "proxy: fcntl");
				goto fail;
			}
			*out = p;
			return 0;
		}
		if (t && !strcmp(t, "fail") && m) {
			char clean[512];
			size_t k = 0;

			for (; m[k] && k < sizeof(clean) - 1; k++)
				clean[k] = m[k] >= 0x20 && m[k] < 0x7f ? m[k]
								       : '?';
			clean[k] = '\0';
			r = error_set(err, EPERM, "proxy: %s", clean);
		} else {
			r = error_set(err, EPROTO,
				      "proxy: unexpected first message");
		}
	}
fail:
	proxy_stop(p);
	return r;
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
		if (r == -EPIPE)
			return error_set(err, EPIPE, "proxy: exited");
		if (r < 0)
			return error_set(err, EPROTO,
					 "proxy: oversized or bad packet");
		r = proxy_msg_decode(&p->st, msg, len, fn, opaque, err);
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
