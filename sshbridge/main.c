/*
 * qctl-sshbridge - the agent protocol over ssh, for images whose guest
 * runs sshd and no qctl agent (docs/ssh-transport.md).
 *
 * Exec'd by qctl (qctl/build-ssh.c) inside the builder's network
 * namespace, as nobody, with no capabilities, no_new_privs, an empty
 * environment, /dev/null on 0-2 and its end of an AF_UNIX stream
 * socketpair on fd 3 (SSHBRIDGE_FD).  To the manager it is the guest
 * agent: frames of agent-proto.h both ways, so the manager's handling of
 * a hostile agent applies to it unchanged.  To the guest it is an ssh
 * client (libssh).  Top to bottom:
 *
 *   1. fds: 3 is a stream socket, nothing above it stays open; the
 *      manager's death kills us
 *   2. configuration: the manager's first frame (SSHBRIDGE_CONFIG),
 *      bounded and checked: the guest's address, the pinned host key,
 *      the client key
 *   3. seccomp: the bridge's allowlist (sandbox.c)
 *   4. connect to the guest's port 22 until connect_ms has passed
 *      (the guest is booting), ssh handshake, host key compared with
 *      the pinned one (a mismatch is ERROR SSHBRIDGE_E_HOSTKEY, exit),
 *      public key login as root
 *   5. HELLO (version 2), then serve: each EXEC, FILE_IN and FILE_OUT
 *      is an ssh channel of its own (cmdline.c builds its command line)
 *
 * The manager closing its end ends the bridge with 0; the ssh connection
 * ending ends it with 1 (the manager then sees its channel close).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include <libssh/callbacks.h>
#include <libssh/libssh.h>

#include "cmdline.h"
#include "decode.h"
#include "sandbox.h"
#include "sshbridge-proto.h"

#define MAX_JOBS 64
/* what the agent sends of a child's output in one frame */
#define OUT_CHUNK 32768u
/* FILE_DONE message: tar's stderr or the no-match lines */
#define DONE_MSG_MAX 4000u
/* between two connection attempts while the guest boots */
#define RETRY_MS 200
#define ATTEMPT_MS 1000
/* output an EXEC may have before its STARTED: what one read of the
 * socket can hold, with room to spare; more is a broken guest */
#define PEND_MAX (4u << 20)
/* preferred first; all of them OpenSSH 9.2's defaults */
#define CIPHERS                                                                \
	"aes128-ctr,aes128-gcm@openssh.com,aes256-gcm@openssh.com,"            \
	"chacha20-poly1305@openssh.com"
#define MACS "hmac-sha2-256-etm@openssh.com,hmac-sha2-512-etm@openssh.com"

enum job_kind { JOB_EXEC, JOB_FILE_IN, JOB_FILE_OUT };

struct job {
	bool used;
	/* the bridge's own (POWEROFF, SIGNAL): never found by an id, and
	 * nothing of it goes to the manager */
	bool internal;
	uint32_t id;
	enum job_kind kind;
	ssh_channel ch;
	struct ssh_channel_callbacks_struct cb;
	bool have_status;
	int status;
	int sig;
	bool closed;
	bool data_end; /* FILE_IN: DATA_END came (FILE_DONE only then) */
	/* EXEC: STARTED sent.  Output that came with sshd's answer to the
	 * exec request (libssh handles every packet it has read) waits in
	 * pend until then: nothing of a job may precede its STARTED. */
	bool started;
	unsigned char *pend; /* records: u8 stderr, u32 length, bytes */
	size_t pend_len;
	char msg[DONE_MSG_MAX + 1];
	size_t msg_len;
};

struct bridge {
	ssh_session s;
	struct job jobs[MAX_JOBS];
	unsigned char in[AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD];
	size_t in_len;
	bool mgr_eof;
	bool poweroff;
};

static struct bridge br;

/* ---- frames to the manager ------------------------------------------ */

static void
write_all(const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n) {
		ssize_t w = write(SSHBRIDGE_FD, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(0); /* the manager is gone: so are we */
		c += w;
		n -= (size_t)w;
	}
}

static void
send_frame(uint16_t type, uint32_t id, const void *p, size_t len)
{
	unsigned char h[AGENT_HDR_SIZE];
	struct agent_hdr hdr = {.len = (uint32_t)len, .type = type, .id = id};

	agent_hdr_encode(h, &hdr);
	write_all(h, sizeof(h));
	if (len)
		write_all(p, len);
}

/* i32 v, message '\0' (ERROR, FILE_DONE) */
static void
send_status(uint16_t type, uint32_t id, int32_t v, const char *msg)
{
	unsigned char p[4 + DONE_MSG_MAX + 1];
	size_t n = ga_encode_u32_strs(p, sizeof(p), (uint32_t)v, msg, NULL);

	send_frame(type, id, p, n);
}

static void __attribute__((format(printf, 3, 4)))
send_error(uint32_t id, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_status(AGENT_ERROR, id, code, msg);
}

/* Before HELLO: say why, and go. */
static void __attribute__((noreturn, format(printf, 2, 3)))
give_up(int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	send_status(AGENT_ERROR, 0, code, msg);
	_exit(1);
}

static void
send_data(uint16_t type, uint32_t id, const char *p, size_t n)
{
	while (n) {
		size_t k = n > OUT_CHUNK ? OUT_CHUNK : n;

		send_frame(type, id, p, k);
		p += k;
		n -= k;
	}
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the configuration ----------------------------------------------- */

struct config {
	uint32_t connect_ms;
	uint32_t port;
	char addr[INET_ADDRSTRLEN];
	ssh_key host_key;
	ssh_key client_key;
};

/* The first frame, read whole within 10 s (it is queued before exec). */
static void
read_config(struct config *cfg)
{
	unsigned char h[AGENT_HDR_SIZE];
	static unsigned char p[AGENT_MAX_PAYLOAD];
	struct agent_hdr hdr = {0};
	struct agent_cursor c;
	const char *addr, *hk, *ck;
	uint32_t version;
	struct in_addr ia;
	size_t got = 0;
	int64_t end = now_ms() + 10000;

	while (got < sizeof(h) + (got >= sizeof(h) ? hdr.len : 0)) {
		struct pollfd pfd = {.fd = SSHBRIDGE_FD, .events = POLLIN};
		int64_t left = end - now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			give_up(SSHBRIDGE_E_CONFIG, "no configuration");
		if (got < sizeof(h))
			n = read(SSHBRIDGE_FD, h + got, sizeof(h) - got);
		else
			n = read(SSHBRIDGE_FD, p + got - sizeof(h),
				 hdr.len - (got - sizeof(h)));
		if (n == 0)
			_exit(0);
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			give_up(SSHBRIDGE_E_CONFIG,
				"reading the configuration");
		if (n > 0)
			got += (size_t)n;
		if (got == sizeof(h) &&
		    (agent_hdr_decode(h, &hdr) < 0 ||
		     hdr.type != SSHBRIDGE_CONFIG || hdr.id != 0))
			give_up(SSHBRIDGE_E_CONFIG, "bad configuration frame");
	}
	agent_cursor_init(&c, p, hdr.len);
	if (agent_cursor_u32(&c, &version) < 0 ||
	    agent_cursor_u32(&c, &cfg->connect_ms) < 0 ||
	    agent_cursor_u32(&c, &cfg->port) < 0 ||
	    agent_cursor_str(&c, &addr) < 0 || agent_cursor_str(&c, &hk) < 0 ||
	    agent_cursor_str(&c, &ck) < 0 || c.left)
		give_up(SSHBRIDGE_E_CONFIG, "malformed configuration");
	if (version != SSHBRIDGE_VERSION)
		give_up(SSHBRIDGE_E_CONFIG, "configuration version %u, not %u",
			version, SSHBRIDGE_VERSION);
	if (!cfg->connect_ms || cfg->connect_ms > 24u * 3600 * 1000 ||
	    !cfg->port || cfg->port > 65535 ||
	    strlen(addr) >= sizeof(cfg->addr) ||
	    inet_pton(AF_INET, addr, &ia) != 1)
		give_up(SSHBRIDGE_E_CONFIG, "bad address, port or time");
	strcpy(cfg->addr, addr);
	if (ssh_pki_import_pubkey_base64(hk, SSH_KEYTYPE_ED25519,
					 &cfg->host_key) != SSH_OK)
		give_up(SSHBRIDGE_E_CONFIG, "bad host key");
	if (ssh_pki_import_privkey_base64(ck, NULL, NULL, NULL,
					  &cfg->client_key) != SSH_OK)
		give_up(SSHBRIDGE_E_CONFIG, "bad client key");
	/* the key's text is not needed any more */
	explicit_bzero(p, sizeof(p));
}

/* ---- connecting ------------------------------------------------------ */

/* One TCP connection attempt of at most ATTEMPT_MS: the fd, or -1. */
static int
tcp_attempt(const struct config *cfg)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)cfg->port)};
	struct pollfd pfd;
	int fd, e = 0;
	socklen_t el = sizeof(e);

	inet_pton(AF_INET, cfg->addr, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
	if (poll(&pfd, 1, ATTEMPT_MS) != 1 ||
	    getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 || e) {
		close(fd);
		return -1;
	}
	/* libssh's blocking calls want a blocking socket */
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	return fd;
}

/* Wait ms, but end at once if the manager goes away. */
static void
pause_ms(int ms)
{
	struct pollfd pfd = {.fd = SSHBRIDGE_FD, .events = POLLIN};
	char c;

	if (poll(&pfd, 1, ms) == 1 &&
	    recv(SSHBRIDGE_FD, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		_exit(0);
}

static char *
fingerprint(ssh_key k)
{
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp;

	if (ssh_get_publickey_hash(k, SSH_PUBLICKEY_HASH_SHA256, &hash, &hlen) <
	    0)
		return strdup("(unknown)");
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	ssh_clean_pubkey_hash(&hash);
	return fp ? fp : strdup("(unknown)");
}

/* Connected, the host key checked, logged in: the session. */
static ssh_session
connect_guest(const struct config *cfg)
{
	int64_t end = now_ms() + cfg->connect_ms;
	const char *why = "no answer";

	for (;;) {
		ssh_session s;
		ssh_key srv = NULL;
		long timeout = (long)(cfg->connect_ms / 1000) + 1;
		int fd, r, no = 0, verb = SSH_LOG_NOLOG;

		if (now_ms() >= end)
			give_up(SSHBRIDGE_E_CONNECT,
				"no ssh server answered at %s:%u within "
				"%.0fs (%s)",
				cfg->addr, cfg->port, cfg->connect_ms / 1000.0,
				why);
		fd = tcp_attempt(cfg);
		if (fd < 0) {
			why = "no connection";
			pause_ms(RETRY_MS);
			continue;
		}
		s = ssh_new();
		if (!s)
			give_up(SSHBRIDGE_E_CONNECT, "out of memory");
		/* No file of this host is read: no ssh_config, no known
		 * hosts, no home; the one accepted key is the pinned one. */
		if (ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &no) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_LOG_VERBOSITY, &verb) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_HOST, cfg->addr) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_USER, "root") < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_SSH_DIR, "/nonexistent") <
			    0 ||
		    ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, "/dev/null") <
			    0 ||
		    ssh_options_set(s, SSH_OPTIONS_GLOBAL_KNOWNHOSTS,
				    "/dev/null") < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_HOSTKEYS, "ssh-ed25519") <
			    0 ||
		    /* under TCG the guest's crypto is emulated: AES (its
		     * instructions are emulated too) with an ETM HMAC moved
		     * step output 4x faster than libssh's default
		     * chacha20-poly1305 here (docs/ssh-transport.md) */
		    ssh_options_set(s, SSH_OPTIONS_CIPHERS_C_S, CIPHERS) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_CIPHERS_S_C, CIPHERS) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_HMAC_C_S, MACS) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_HMAC_S_C, MACS) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
		    ssh_options_set(s, SSH_OPTIONS_FD, &fd) < 0)
			give_up(SSHBRIDGE_E_CONNECT, "ssh options: %s",
				ssh_get_error(s));
		r = ssh_connect(s);
		if (r != SSH_OK) {
			/* sshd may be starting: try again while time is left */
			why = "ssh handshake failed";
			ssh_disconnect(s);
			ssh_free(s);
			pause_ms(RETRY_MS);
			continue;
		}
		if (ssh_get_server_publickey(s, &srv) != SSH_OK)
			give_up(SSHBRIDGE_E_HOSTKEY,
				"host key of the guest does not match: it "
				"showed none");
		/* The only key this build's guest can have is the one made
		 * for it: anything else is not our guest. */
		if (ssh_key_cmp(srv, cfg->host_key, SSH_KEY_CMP_PUBLIC) != 0) {
			char *got = fingerprint(srv),
			     *want = fingerprint(cfg->host_key);

			give_up(SSHBRIDGE_E_HOSTKEY,
				"host key of the guest does not match: it "
				"showed %s %s, this build's is %s",
				ssh_key_type_to_char(ssh_key_type(srv)), got,
				want);
		}
		ssh_key_free(srv);
		r = ssh_userauth_publickey(s, NULL, cfg->client_key);
		if (r != SSH_AUTH_SUCCESS)
			give_up(SSHBRIDGE_E_AUTH,
				"the guest's sshd refused this build's client "
				"key (%s)",
				r == SSH_AUTH_DENIED ? "denied"
						     : ssh_get_error(s));
		return s;
	}
}

/* ---- jobs ------------------------------------------------------------ */

static struct job *
job_find(uint32_t id)
{
	for (int i = 0; i < MAX_JOBS; i++)
		if (br.jobs[i].used && !br.jobs[i].internal &&
		    br.jobs[i].id == id)
			return &br.jobs[i];
	return NULL;
}

static void
msg_add(struct job *j, const char *p, size_t n)
{
	size_t room = DONE_MSG_MAX - j->msg_len;

	if (n > room)
		n = room;
	memcpy(j->msg + j->msg_len, p, n);
	j->msg_len += n;
	j->msg[j->msg_len] = '\0';
}

static void
pend_add(struct job *j, int is_stderr, const void *data, uint32_t len)
{
	if (j->pend_len + 5 + len > PEND_MAX)
		_exit(1); /* the manager sees the transport lost */
	j->pend = realloc(j->pend, j->pend_len + 5 + len);
	if (!j->pend)
		_exit(1);
	j->pend[j->pend_len] = is_stderr ? 1 : 0;
	agent_put_u32(j->pend + j->pend_len + 1, len);
	memcpy(j->pend + j->pend_len + 5, data, len);
	j->pend_len += 5 + len;
}

/* STARTED, then what waited for it, in the order it came. */
static void
job_started(struct job *j)
{
	size_t off = 0;

	send_frame(AGENT_STARTED, j->id, "\0\0\0\0", 4);
	j->started = true;
	while (off < j->pend_len) {
		uint32_t n = agent_get_u32(j->pend + off + 1);

		send_data(j->pend[off] ? AGENT_STDERR : AGENT_STDOUT, j->id,
			  (const char *)j->pend + off + 5, n);
		off += 5 + n;
	}
	free(j->pend);
	j->pend = NULL;
	j->pend_len = 0;
}

static int
on_data(ssh_session s, ssh_channel ch, void *data, uint32_t len, int is_stderr,
	void *opaque)
{
	struct job *j = opaque;

	(void)s;
	(void)ch;
	if (!len || j->internal)
		return (int)len;
	switch (j->kind) {
	case JOB_EXEC:
		if (!j->started) {
			pend_add(j, is_stderr, data, len);
			break;
		}
		send_data(is_stderr ? AGENT_STDERR : AGENT_STDOUT, j->id, data,
			  len);
		break;
	case JOB_FILE_OUT:
		if (!is_stderr) {
			send_data(AGENT_DATA, j->id, data, len);
			break;
		}
		/* stderr is the FILE_DONE's message */
		__attribute__((fallthrough));
	case JOB_FILE_IN:
		msg_add(j, data, len);
		break;
	}
	return (int)len;
}

static void
on_exit_status(ssh_session s, ssh_channel ch, int status, void *opaque)
{
	struct job *j = opaque;

	(void)s;
	(void)ch;
	j->have_status = true;
	j->status = status;
	j->sig = 0;
}

static void
on_exit_signal(ssh_session s, ssh_channel ch, const char *sig, int core,
	       const char *errmsg, const char *lang, void *opaque)
{
	struct job *j = opaque;

	(void)s;
	(void)ch;
	(void)core;
	(void)errmsg;
	(void)lang;
	j->have_status = true;
	j->status = -1;
	/* a name outside RFC 4254's list: reported as a kill */
	j->sig = sb_signal_number(sig ? sig : "");
	if (!j->sig)
		j->sig = SIGKILL;
}

static void
on_close(ssh_session s, ssh_channel ch, void *opaque)
{
	struct job *j = opaque;

	(void)s;
	(void)ch;
	j->closed = true;
}

/* A channel running line: the job, or NULL with ERROR sent. */
static struct job *
job_start(uint32_t id, enum job_kind kind, const char *line, bool pty,
	  bool internal)
{
	struct job *j = NULL;

	if (!internal && (!id || job_find(id))) {
		send_error(id, EEXIST, "id %u in use", id);
		return NULL;
	}
	for (int i = 0; i < MAX_JOBS && !j; i++)
		if (!br.jobs[i].used)
			j = &br.jobs[i];
	if (!j) {
		if (!internal)
			send_error(id, EAGAIN, "%d jobs running", MAX_JOBS);
		return NULL;
	}
	memset(j, 0, sizeof(*j));
	j->id = internal ? 0 : id;
	j->internal = internal;
	j->kind = kind;
	j->ch = ssh_channel_new(br.s);
	if (!j->ch || ssh_channel_open_session(j->ch) != SSH_OK) {
		if (!internal)
			send_error(id, EIO, "ssh: no channel: %s",
				   ssh_get_error(br.s));
		if (j->ch)
			ssh_channel_free(j->ch);
		return NULL;
	}
	ssh_callbacks_init(&j->cb);
	j->cb.userdata = j;
	j->cb.channel_data_function = on_data;
	j->cb.channel_exit_status_function = on_exit_status;
	j->cb.channel_exit_signal_function = on_exit_signal;
	j->cb.channel_close_function = on_close;
	ssh_set_channel_callbacks(j->ch, &j->cb);
	if ((pty &&
	     ssh_channel_request_pty_size(j->ch, "xterm", 80, 24) != SSH_OK) ||
	    ssh_channel_request_exec(j->ch, line) != SSH_OK) {
		if (!internal)
			send_error(id, EIO, "ssh: exec refused: %s",
				   ssh_get_error(br.s));
		ssh_channel_close(j->ch);
		ssh_channel_free(j->ch);
		free(j->pend);
		j->pend = NULL;
		return NULL;
	}
	j->used = true;
	return j;
}

/* The channel closed: the job's last frame, and it is gone. */
static void
job_finish(struct job *j)
{
	if (j->kind == JOB_EXEC) {
		unsigned char p[8];

		if (!j->have_status) {
			static const char m[] = "qctl-sshbridge: the guest "
						"sent no exit status\n";

			send_frame(AGENT_STDERR, j->id, m, sizeof(m) - 1);
			j->status = 255;
		}
		agent_put_u32(p, (uint32_t)j->status);
		agent_put_u32(p + 4, (uint32_t)j->sig);
		send_frame(AGENT_EXIT, j->id, p, sizeof(p));
	} else {
		int32_t st = !j->have_status ? 255
			     : j->sig	     ? 128 + j->sig
					     : j->status;

		send_status(AGENT_FILE_DONE, j->id, st, j->msg);
	}
	ssh_channel_free(j->ch);
	free(j->pend);
	j->pend = NULL;
	j->used = false;
}

/* ---- frames from the manager ----------------------------------------- */

static char line[SB_CMDLINE_MAX + 1];

static void
do_exec(uint32_t id, const void *p, size_t len)
{
	static struct ga_exec e;
	const char *why;
	struct job *j;

	if (ga_exec_decode(p, len, &e, &why) < 0) {
		send_error(id, EINVAL, "%s", why);
		return;
	}
	if (sb_exec_command(&e, id, SB_JOB_DIR, line, sizeof(line)) < 0) {
		send_error(id, E2BIG, "command line too long for ssh");
		return;
	}
	j = job_start(id, JOB_EXEC, line, e.flags & AGENT_EXEC_PTY, false);
	if (!j)
		return;
	/* sshd does not say its child's pid: 0 */
	job_started(j);
	/* stdin is /dev/null unless STDIN frames feed it */
	if (!(e.flags & (AGENT_EXEC_STDIN | AGENT_EXEC_PTY)) && !j->closed)
		ssh_channel_send_eof(j->ch);
}

static void
do_file(uint16_t type, uint32_t id, const void *p, size_t len)
{
	static struct ga_file_out fo;
	struct ga_file_in fi;
	const char *why;
	int r;

	if (type == AGENT_FILE_IN) {
		r = ga_file_in_decode(p, len, &fi, &why);
		if (r == 0 && sb_file_in_command(&fi, line, sizeof(line)) < 0)
			r = -1, why = "directory name too long";
	} else {
		r = ga_file_out_decode(p, len, &fo, &why);
		if (r == 0 && sb_file_out_command(&fo, line, sizeof(line)) < 0)
			r = -1, why = "globs too long for ssh";
	}
	if (r < 0) {
		/* FILE_* always ends with its FILE_DONE */
		send_status(AGENT_FILE_DONE, id, -EINVAL, why);
		return;
	}
	if (job_find(id)) {
		send_error(id, EEXIST, "id %u in use", id);
		return;
	}
	if (!job_start(id, type == AGENT_FILE_IN ? JOB_FILE_IN : JOB_FILE_OUT,
		       line, false, false))
		return;
	if (type == AGENT_FILE_OUT)
		ssh_channel_send_eof(job_find(id)->ch);
}

static void
do_frame(const struct agent_hdr *h, const unsigned char *p)
{
	struct job *j = job_find(h->id);
	int signo;
	const char *why;

	switch (h->type) {
	case AGENT_EXEC:
		do_exec(h->id, p, h->len);
		return;
	case AGENT_FILE_IN:
	case AGENT_FILE_OUT:
		do_file(h->type, h->id, p, h->len);
		return;
	case AGENT_DATA:
	case AGENT_STDIN:
		if (!j || (h->type == AGENT_DATA && j->kind != JOB_FILE_IN)) {
			send_error(h->id, ESRCH, "no such job");
			return;
		}
		/* a tar that failed early takes no more: the rest goes */
		if (h->len && !j->closed &&
		    ssh_channel_write(j->ch, p, h->len) == SSH_ERROR &&
		    !ssh_is_connected(br.s))
			_exit(1);
		return;
	case AGENT_DATA_END:
	case AGENT_STDIN_END:
		if (!j) {
			send_error(h->id, ESRCH, "no such job");
			return;
		}
		j->data_end = true;
		if (!j->closed)
			ssh_channel_send_eof(j->ch);
		return;
	case AGENT_SIGNAL:
		if (ga_signal_decode(p, h->len, &signo, &why) < 0) {
			send_error(h->id, EINVAL, "%s", why);
			return;
		}
		if (!j) {
			send_error(h->id, ESRCH, "no such job");
			return;
		}
		if (j->kind != JOB_EXEC) {
			send_error(h->id, EINVAL,
				   "over ssh, SIGNAL reaches "
				   "EXEC jobs only");
			return;
		}
		/* a channel of its own kills the job's process group, as
		 * the agent's kill(-pgid): sshd refuses ssh's "signal"
		 * request in a root session; no reply, as the agent's */
		if (!j->closed && sb_signal_command(h->id, signo, SB_JOB_DIR,
						    line, sizeof(line)) == 0)
			job_start(0, JOB_EXEC, line, false, true);
		return;
	case AGENT_WINSIZE:
		if (!j || h->len != 8) {
			send_error(h->id, j ? EINVAL : ESRCH, "bad WINSIZE");
			return;
		}
		if (!j->closed)
			ssh_channel_change_pty_size(j->ch,
						    (int)agent_get_u32(p + 4),
						    (int)agent_get_u32(p));
		return;
	case AGENT_PING:
		send_frame(AGENT_PONG, h->id, p, h->len);
		return;
	case AGENT_POWEROFF:
		/* the guest's init is not ours to signal: busybox (the
		 * initramfs's, kept by the boot) syncs and powers off */
		if (job_start(0, JOB_EXEC, "exec /run/qctl/busybox poweroff -f",
			      false, true))
			br.poweroff = true;
		else
			_exit(1);
		return;
	default:
		send_error(h->id, ENOSYS, "unknown frame type %u", h->type);
		return;
	}
}

/* Whole frames in br.in: handled and consumed.  A bad header: exit. */
static void
do_frames(void)
{
	size_t off = 0;

	while (br.in_len - off >= AGENT_HDR_SIZE) {
		struct agent_hdr h;

		if (agent_hdr_decode(br.in + off, &h) < 0)
			_exit(1); /* the manager's bug: nothing to save */
		if (br.in_len - off < AGENT_HDR_SIZE + h.len)
			break;
		do_frame(&h, br.in + off + AGENT_HDR_SIZE);
		off += AGENT_HDR_SIZE + h.len;
	}
	memmove(br.in, br.in + off, br.in_len - off);
	br.in_len -= off;
}

static int
on_manager(socket_t fd, int revents, void *opaque)
{
	ssize_t n;

	(void)opaque;
	if (!(revents & (POLLIN | POLLHUP | POLLERR)) ||
	    br.in_len == sizeof(br.in))
		return 0; /* a read of 0 bytes would look like EOF */
	n = read(fd, br.in + br.in_len, sizeof(br.in) - br.in_len);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
		br.mgr_eof = true;
	if (n > 0)
		br.in_len += (size_t)n;
	return 0;
}

static void
serve(void)
{
	ssh_event ev = ssh_event_new();

	if (!ev || ssh_event_add_session(ev, br.s) != SSH_OK ||
	    ssh_event_add_fd(ev, SSHBRIDGE_FD, POLLIN, on_manager, NULL) !=
		    SSH_OK)
		_exit(1);
	for (;;) {
		int r = ssh_event_dopoll(ev, 1000);

		if (br.mgr_eof)
			_exit(0);
		/* The blocking calls of a frame (a channel write waiting for
		 * the guest's window) poll this event too: the manager's
		 * socket stays out of it meanwhile, so that nothing is read
		 * into the buffer being handled, and the manager waits. */
		ssh_event_remove_fd(ev, SSHBRIDGE_FD);
		do_frames();
		if (ssh_event_add_fd(ev, SSHBRIDGE_FD, POLLIN, on_manager,
				     NULL) != SSH_OK)
			_exit(1);
		for (int i = 0; i < MAX_JOBS; i++)
			if (br.jobs[i].used && br.jobs[i].closed &&
			    (br.jobs[i].kind != JOB_FILE_IN ||
			     br.jobs[i].data_end)) {
				if (br.jobs[i].internal) {
					ssh_channel_free(br.jobs[i].ch);
					br.jobs[i].used = false;
				} else
					job_finish(&br.jobs[i]);
			}
		if (r == SSH_ERROR || !ssh_is_connected(br.s))
			_exit(br.poweroff ? 0 : 1);
	}
}

/* ---- main ------------------------------------------------------------ */

static void
check_fds(void)
{
	struct stat st;
	int t = 0;
	socklen_t l = sizeof(t);

	if (fstat(SSHBRIDGE_FD, &st) < 0 || !S_ISSOCK(st.st_mode) ||
	    getsockopt(SSHBRIDGE_FD, SOL_SOCKET, SO_TYPE, &t, &l) < 0 ||
	    t != SOCK_STREAM)
		_exit(2);
	/* nothing of the manager's beyond our channel */
	close_range(SSHBRIDGE_FD + 1, ~0u, 0);
}

int
main(void)
{
	struct config cfg = {0};
	char hello[4 + 64 + 256 + 2], un[256];
	size_t n;

	check_fds();
	signal(SIGPIPE, SIG_IGN);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() == 1)
		_exit(2);
	if (ssh_init() != SSH_OK)
		give_up(SSHBRIDGE_E_CONFIG, "ssh_init failed");
	read_config(&cfg);
	if (sb_sandbox_apply() < 0)
		give_up(SSHBRIDGE_E_CONFIG, "seccomp: %s", strerror(errno));
	br.s = connect_guest(&cfg);
	ssh_key_free(cfg.client_key);
	ssh_key_free(cfg.host_key);
	snprintf(un, sizeof(un), "ssh %s:%u (%s)", cfg.addr, cfg.port,
		 ssh_get_serverbanner(br.s) ? ssh_get_serverbanner(br.s)
					    : "no banner");
	n = ga_encode_u32_strs((unsigned char *)hello, sizeof(hello),
			       AGENT_PROTO_VERSION, "qctl-sshbridge", un);
	send_frame(AGENT_HELLO, 0, hello, n);
	serve();
	return 0;
}
