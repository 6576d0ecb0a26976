/* cmd-serve.c - qctl serve: builds on demand over a QMP-style socket */
#include <getopt.h>
#include <stddef.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "cache.h"
#include "cmd.h"
#include "recipe.h"
#include "rundir.h"
#include "serve.h"
#include "state.h"
#include "uidpool.h"

static void
serve_usage(FILE *f)
{
	fputs("usage: qctl serve --socket PATH [OPTIONS]\n"
	      "\n"
	      "  --socket PATH        the control socket (QMP framing; see\n"
	      "                       docs/control-socket.md)\n"
	      "  --max-parallel N     builds at once (default: online CPUs);\n"
	      "                       the rest wait in submission order\n"
	      "  --keep-finished N    finished builds remembered, run\n"
	      "                       directories included (default 16)\n"
	      "  --group NAME         the socket's group (default \"qctl\" if\n"
	      "                       it exists, else root's group)\n"
	      "  --socket-mode MODE   octal (default 0660)\n"
	      "  --allow-quit         let clients stop the server with quit\n"
	      "  --keep-runs          run directories (result.json,\n"
	      "                       build.log, artifacts/) stay when their\n"
	      "                       builds are forgotten and at exit: a\n"
	      "                       results disk's, the operator removes\n"
	      "                       them\n"
	      "  --no-snapshot        boot every build cold: no snapshot\n"
	      "                       used or saved (docs/snapshots.md)\n"
	      "  --state-dir DIR      crash-recovery records and snapshots\n"
	      "                       (default\n"
	      "                       $QCTL_STATE_DIR or " STATE_DIR_DEFAULT
	      ");\n"
	      "                       what a dead server left is reaped at\n"
	      "                       start\n"
	      "  --run-root DIR       parent of run directories (default\n"
	      "                       $QCTL_RUN_ROOT or " RUN_ROOT_DEFAULT ")\n"
	      "  --accel auto|kvm|tcg accelerator (default auto)\n"
	      "  --max-cpus N         most vCPUs a recipe may ask for\n"
	      "                       (default: online CPUs)\n"
	      "  --max-memory SIZE    most guest memory (default: half of\n"
	      "                       the host's, at most 16G)\n"
	      "  --max-disk SIZE      largest scratch disk (default 20G)\n"
	      "  --max-wall-time DUR  longest wall_time (default 6h)\n"
	      "                       A recipe asking for more, or for an\n"
	      "                       unlimited log/net/artifacts budget,\n"
	      "                       is refused with the limit named.\n"
	      "  --uid-range FIRST:COUNT  QEMU's uids, one per VM (default\n"
	      "                       $QCTL_UID_RANGE or 1879048192:65536)\n"
	      "  --ssh ADDR:PORT      serve ssh into held builds there (a\n"
	      "                       numeric IPv4 or [IPv6] address): `ssh\n"
	      "                       -p PORT BUILDID@HOST` opens a shell in\n"
	      "                       a failed build a recipe's\n"
	      "                       hold_on_failure keeps (docs/ssh.md)\n"
	      "  --ssh-host-key FILE  the server's private key (OpenSSH\n"
	      "                       format, root's alone; up to 4)\n"
	      "  --ssh-authorized-keys FILE  public keys that may enter any\n"
	      "                       held build (a recipe's ssh_keys may\n"
	      "                       enter its own)\n"
	      "  --max-hold DUR       longest hold a recipe gets (default\n"
	      "                       30m; 0: no holds)\n"
	      "  --cache-max SIZE     all recipe cache images together at\n"
	      "                       most this (default 20G; least recently\n"
	      "                       used keys are evicted)\n"
	      "  --cache-dir DIR      where recipe cache images are kept\n"
	      "                       (default STATE_DIR/cache; root's\n"
	      "                       alone, mode 0700)\n"
	      "  -v, --verbose        builds' progress and output on stderr,\n"
	      "                       each line prefixed with the build's id\n"
	      "                       (twice: more detail)\n"
	      "\n"
	      "SIGINT or SIGTERM cancels every build, removes the socket and\n"
	      "exits 0.\n"
	      "\n"
	      "Started by systemd with a socket (LISTEN_FDS=1, qctl.socket),\n"
	      "it serves that one, which must be bound to --socket PATH; its\n"
	      "mode and group are then the unit's, and it stays at exit.\n",
	      f);
}

static int
serve_dir_check(const char *path, const char *what, struct error *err)
{
	int fd = -1;
	int r = rundir_root_check(path, what, RUNDIR_CREATE, &fd, NULL, err);

	if (fd >= 0)
		close(fd);
	return r;
}

struct serve_ctx {
	struct loop *loop;
	struct serve *serve;
	int signals;
};

static void
on_signal(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct serve_ctx *c = opaque;
	struct signalfd_siginfo si;
	char why[64];

	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (++c->signals > 1) {
		/* a second signal: no more waiting for the VMs to go */
		fprintf(stderr, "qctl serve: signal %d again: exiting now\n",
			(int)si.ssi_signo);
		loop_quit(l, 0);
		return;
	}
	snprintf(why, sizeof(why), "signal %s",
		 si.ssi_signo == SIGINT	   ? "SIGINT"
		 : si.ssi_signo == SIGTERM ? "SIGTERM"
					   : "SIGHUP");
	serve_shutdown(c->serve, why);
}

static char *
abs_path(const char *p)
{
	char cwd[PATH_MAX];

	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return xstrdup(p);
	return xasprintf("%s/%s", cwd, p);
}

static int
parse_int(const char *s, int min, int max, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* The socket's group: --group, else "qctl", else root's primary group. */
static int
socket_group(const char *name, gid_t *gid)
{
	struct group *g = getgrnam(name ? name : "qctl");
	struct passwd *pw;

	if (g) {
		*gid = g->gr_gid;
		return 0;
	}
	if (name)
		return -1;
	pw = getpwuid(0);
	*gid = pw ? pw->pw_gid : 0;
	return 0;
}


#define SSH_HOSTKEYS_MAX 4
#define SSH_KEYFILE_MAX (64 * 1024)
#define SSH_AUTH_KEYS_MAX 1000

/* A file of root's, read whole (at most max bytes). */
static char *
read_small_file(const char *path, size_t max, bool secret, struct error *err)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	struct stat st;
	char *buf;
	ssize_t n;

	if (fd < 0)
		return error_sys(err, errno, "%s", path), NULL;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return error_set(err, EINVAL, "%s: not a regular file", path),
		       NULL;
	/* as OpenSSH: a private key others may read is refused */
	if (secret && ((st.st_mode & 077) || st.st_uid != geteuid()))
		return error_set(err, EPERM, "%s: a private key must be ours "
				 "and readable by no one else (mode %04o, "
				 "uid %d)", path, (unsigned)(st.st_mode & 07777),
				 (int)st.st_uid), NULL;
	if ((size_t)st.st_size > max)
		return error_set(err, EFBIG, "%s: larger than %zu bytes", path,
				 max), NULL;
	buf = xmalloc((size_t)st.st_size + 1);
	n = read(fd, buf, (size_t)st.st_size);
	if (n != st.st_size) {
		free(buf);
		return error_set(err, EIO, "%s: short read", path), NULL;
	}
	buf[n] = '\0';
	if (memchr(buf, '\0', (size_t)n)) {
		free(buf);
		return error_set(err, EINVAL, "%s: a NUL byte", path), NULL;
	}
	return buf;
}

/* authorized_keys: one "TYPE BASE64 [COMMENT]" per line, # comments;
 * options before the type are not supported (refused, with the line). */
static int
read_authorized_keys(const char *path, struct serve_ssh_opts *o,
		     struct error *err)
{
	_cleanup_free_ char *text = read_small_file(path, 1 << 20, false, err);
	char *line, *save = NULL;
	int lineno = 0;

	if (!text)
		return -1;
	for (line = text; ; line = NULL) {
		char *l = strtok_r(line, "\n", &save);
		struct error e;
		size_t len;

		if (!l)
			break;
		lineno++;
		len = strlen(l);
		if (len && l[len - 1] == '\r')
			l[--len] = '\0';
		while (*l == ' ' || *l == '\t')
			l++;
		if (!*l || *l == '#')
			continue;
		if (recipe_check_ssh_key(l, &e) < 0)
			return error_set(err, EINVAL, "%s:%d: %s (options "
					 "before the key are not supported)",
					 path, lineno, e.msg);
		if (o->n_keys >= SSH_AUTH_KEYS_MAX)
			return error_set(err, E2BIG, "%s: more than %d keys",
					 path, SSH_AUTH_KEYS_MAX);
		o->keys = xrealloc(o->keys, (o->n_keys + 1) * sizeof(*o->keys));
		o->keys[o->n_keys++] = xstrdup(l);
	}
	return 0;
}

/* --ssh ADDR:PORT: a listening TCP socket, close-on-exec (only the sshd
 * gets it, as its fd 3). */
static int
ssh_listen(const char *where, int *out, struct error *err)
{
	char host[64];
	const char *colon = strrchr(where, ':');
	struct sockaddr_storage ss = { 0 };
	socklen_t len;
	int port, fd, one = 1;

	if (!colon || (size_t)(colon - where) >= sizeof(host) ||
	    parse_int(colon + 1, 1, 65535, &port) < 0)
		return error_set(err, EINVAL, "--ssh %s: expected ADDR:PORT "
				 "(a numeric address, [IPv6]:PORT)", where);
	memcpy(host, where, (size_t)(colon - where));
	host[colon - where] = '\0';
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		host[strlen(host) - 1] = '\0';
		a->sin6_family = AF_INET6;
		a->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return error_set(err, EINVAL, "--ssh %s: not an IPv6 "
					 "address", where);
		len = sizeof(*a);
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		a->sin_family = AF_INET;
		a->sin_port = htons(port);
		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return error_set(err, EINVAL, "--ssh %s: not a numeric "
					 "IPv4 address", where);
		len = sizeof(*a);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return error_sys(err, errno, "--ssh: socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 64) < 0) {
		error_sys(err, errno, "--ssh %s", where);
		close(fd);
		return -1;
	}
	*out = fd;
	return 0;
}

/* Ceilings a shared server should have even when none are given. */
static void
serve_default_ceilings(struct serve_opts *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
	uint64_t half = pages > 0 && psz > 0
				? (uint64_t)pages * (uint64_t)psz / 2
				: 4ull << 30;

	if (!o->max_cpus)
		o->max_cpus = cpus > 0 ? (int)cpus : 1;
	if (!o->max_memory)
		o->max_memory = half < (16ull << 30) ? half : 16ull << 30;
	if (!o->max_disk)
		o->max_disk = 20ull << 30;
	if (!o->max_wall_time_ms)
		o->max_wall_time_ms = 6ll * 3600 * 1000;
}

/*
 * Socket activation, sd_listen_fds(3)'s protocol without libsystemd: if
 * LISTEN_PID is ours, LISTEN_FDS must be 1 and fd 3 a listening Unix
 * stream socket bound to the --socket path (so the unit and the command
 * line cannot disagree about where clients connect); anything else is
 * refused rather than served.  *fd is -1 when we were not activated.  The
 * variables are removed either way: no child sees them.
 */
static int
activation_take(const char *sock, int *fd, struct error *err)
{
	const char *pid_s = getenv("LISTEN_PID");
	const char *fds_s = getenv("LISTEN_FDS");
	struct sockaddr_un sa = { 0 };
	socklen_t len = sizeof(sa), ol;
	int type = 0, acc = 0;
	size_t n;
	bool ours;
	char *end;
	long pid;

	*fd = -1;
	if (!pid_s)
		return 0;
	errno = 0;
	pid = strtol(pid_s, &end, 10);
	/* set for another process (a parent that did not clear them) */
	ours = !errno && end != pid_s && !*end && pid == (long)getpid();
	if (ours && (!fds_s || strcmp(fds_s, "1")))
		error_set(err, EINVAL, "socket activation: LISTEN_FDS=%s: "
			  "qctl serve takes exactly one socket",
			  fds_s ? fds_s : "(unset)");
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (!ours)
		return 0;
	if (err->msg[0])
		return -EINVAL;
	ol = sizeof(type);
	if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &ol) < 0)
		return error_sys(err, errno, "socket activation: fd 3");
	ol = sizeof(acc);
	if (getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &acc, &ol) < 0 ||
	    type != SOCK_STREAM || !acc)
		return error_set(err, EINVAL, "socket activation: fd 3 is not "
				 "a listening stream socket");
	if (getsockname(3, (struct sockaddr *)&sa, &len) < 0)
		return error_sys(err, errno, "socket activation: fd 3");
	n = len > offsetof(struct sockaddr_un, sun_path)
		    ? strnlen(sa.sun_path, len - offsetof(struct sockaddr_un,
							  sun_path))
		    : 0;
	if (sa.sun_family != AF_UNIX || !n || n != strlen(sock) ||
	    memcmp(sa.sun_path, sock, n))
		return error_set(err, EINVAL, "socket activation: fd 3 is "
				 "bound to %.*s, not to --socket %s",
				 sa.sun_family == AF_UNIX && n ? (int)n : 9,
				 sa.sun_family == AF_UNIX && n ? sa.sun_path
							       : "no path",
				 sock);
	*fd = 3;
	return 0;
}

/* qctl serve: options, gc, socket, then the loop until a signal. */
int
cmd_serve(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "max-parallel", required_argument, NULL, 'p' },
		{ "keep-finished", required_argument, NULL, 'K' },
		{ "group", required_argument, NULL, 'g' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "allow-quit", no_argument, NULL, 'Q' },
		{ "keep-runs", no_argument, NULL, 'R' },
		{ "no-snapshot", no_argument, NULL, 'N' },
		{ "state-dir", required_argument, NULL, 's' },
		{ "run-root", required_argument, NULL, 'r' },
		{ "accel", required_argument, NULL, 'a' },
		{ "max-cpus", required_argument, NULL, 'C' },
		{ "max-memory", required_argument, NULL, 'M' },
		{ "max-disk", required_argument, NULL, 'D' },
		{ "max-wall-time", required_argument, NULL, 'W' },
		{ "uid-range", required_argument, NULL, 'u' },
		{ "ssh", required_argument, NULL, 'H' },
		{ "ssh-host-key", required_argument, NULL, 'k' },
		{ "ssh-authorized-keys", required_argument, NULL, 'A' },
		{ "max-hold", required_argument, NULL, 'O' },
		{ "cache-max", required_argument, NULL, 'c' },
		{ "cache-dir", required_argument, NULL, 'Y' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct serve_opts o = { .log = stderr };
	_cleanup_free_ char *sock = NULL, *state_dir = NULL, *run_root = NULL;
	_cleanup_free_ char *cache_dir = NULL;
	const char *group = NULL, *accel_s = "auto", *env;
	const char *uid_range = NULL, *ssh_where = NULL, *auth_keys = NULL;
	const char *hostkeys[SSH_HOSTKEYS_MAX];
	size_t n_hostkeys = 0;
	bool max_hold_set = false;
	int rc = 0;
	struct serve_ctx ctx = { 0 };
	_cleanup_close_ int sigfd = -1, act_fd = -1;
	bool activated;
	struct error err = { 0 };
	unsigned long mode = 0660;
	int opt, verbose = 0, n;
	char why[256], hv[13], *end;
	sigset_t mask;
	gid_t gid;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'S':
			free(sock);
			sock = abs_path(optarg);
			break;
		case 'p':
			if (parse_int(optarg, 1, 1024, &o.max_parallel) < 0) {
				fprintf(stderr, "qctl serve: --max-parallel: "
					"1..1024, not \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'K':
			if (parse_int(optarg, 1, 100000, &o.keep_finished) <
			    0) {
				fprintf(stderr, "qctl serve: --keep-finished: "
					"1..100000, not \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'g':
			group = optarg;
			break;
		case 'm':
			errno = 0;
			mode = strtoul(optarg, &end, 8);
			if (errno || end == optarg || *end || mode > 0777) {
				fprintf(stderr, "qctl serve: --socket-mode: "
					"octal 0..0777, not \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'Q':
			o.allow_quit = true;
			break;
		case 'R':
			o.keep_runs = true;
			break;
		case 'N':
			o.build.no_snapshots = true;
			break;
		case 's':
			free(state_dir);
			state_dir = abs_path(optarg);
			break;
		case 'r':
			free(run_root);
			run_root = abs_path(optarg);
			break;
		case 'a':
			accel_s = optarg;
			break;
		case 'C':
			if (parse_int(optarg, 1, 1024, &o.max_cpus) < 0) {
				fprintf(stderr, "qctl serve: --max-cpus: "
					"1..1024, not \"%s\"\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case 'M':
		case 'D':
			if (parse_size(optarg, opt == 'M' ? &o.max_memory
							  : &o.max_disk,
				       &err) < 0 ||
			    !(opt == 'M' ? o.max_memory : o.max_disk)) {
				fprintf(stderr, "qctl serve: --max-%s: %s\n",
					opt == 'M' ? "memory" : "disk",
					err.msg[0] ? err.msg : "must be > 0");
				return EXIT_USAGE;
			}
			break;
		case 'W':
			if (parse_duration(optarg, &o.max_wall_time_ms, &err) <
				    0 ||
			    o.max_wall_time_ms <= 0) {
				fprintf(stderr, "qctl serve: --max-wall-time: "
					"%s\n", err.msg[0] ? err.msg
							   : "must be > 0");
				return EXIT_USAGE;
			}
			break;
		case 'u':
			uid_range = optarg;
			break;
		case 'H':
			ssh_where = optarg;
			break;
		case 'k':
			if (n_hostkeys == SSH_HOSTKEYS_MAX) {
				fprintf(stderr, "qctl serve: at most %d "
					"--ssh-host-key\n", SSH_HOSTKEYS_MAX);
				return EXIT_USAGE;
			}
			hostkeys[n_hostkeys++] = optarg;
			break;
		case 'A':
			auth_keys = optarg;
			break;
		case 'O':
			if (parse_duration(optarg, &o.ssh.max_hold_ms, &err) <
				    0 ||
			    o.ssh.max_hold_ms > RECIPE_HOLD_MAX_MS) {
				fprintf(stderr, "qctl serve: --max-hold: %s\n",
					err.msg[0] ? err.msg : "at most 24h");
				return EXIT_USAGE;
			}
			max_hold_set = true;
			break;
		case 'c':
			if (parse_size(optarg, &o.build.cache_max, &err) < 0 ||
			    !o.build.cache_max) {
				fprintf(stderr, "qctl serve: --cache-max: %s\n",
					err.msg[0] ? err.msg : "must be > 0");
				return EXIT_USAGE;
			}
			break;
		case 'Y':
			free(cache_dir);
			cache_dir = abs_path(optarg);
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			serve_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "qctl serve: bad option \"%s\"\n\n",
				argv[optind - 1]);
			serve_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !sock) {
		fprintf(stderr, "qctl serve: %s\n\n",
			sock ? "no arguments besides options"
			     : "--socket PATH is required");
		serve_usage(stderr);
		return EXIT_USAGE;
	}
	/* systemd's socket (qctl.socket), taken before anything forks */
	if (activation_take(sock, &act_fd, &err) < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		return EXIT_USAGE;
	}
	activated = act_fd >= 0;
	if (!ssh_where != !n_hostkeys) {
		fprintf(stderr, "qctl serve: --ssh and --ssh-host-key go "
			"together\n");
		return EXIT_USAGE;
	}
	if (auth_keys && !ssh_where) {
		fprintf(stderr, "qctl serve: --ssh-authorized-keys needs "
			"--ssh\n");
		return EXIT_USAGE;
	}
	if (ssh_where) {
		o.ssh.on = true;
		o.ssh.where = ssh_where;
		o.ssh.listen_fd = -1;
		if (!max_hold_set)
			o.ssh.max_hold_ms = SERVE_MAX_HOLD_DEFAULT_MS;
		o.ssh.hostkeys = xcalloc(n_hostkeys, sizeof(char *));
		for (size_t i = 0; i < n_hostkeys; i++) {
			o.ssh.hostkeys[i] = read_small_file(
				hostkeys[i], SSH_KEYFILE_MAX, true, &err);
			if (!o.ssh.hostkeys[i]) {
				fprintf(stderr, "qctl serve: --ssh-host-key "
					"%s\n", err.msg);
				rc = EXIT_USAGE;
				goto out;
			}
			o.ssh.n_hostkeys++;
		}
		if (auth_keys &&
		    read_authorized_keys(auth_keys, &o.ssh, &err) < 0) {
			fprintf(stderr, "qctl serve: --ssh-authorized-keys "
				"%s\n", err.msg);
			rc = EXIT_USAGE;
			goto out;
		}
	}
	if (socket_group(group, &gid) < 0) {
		fprintf(stderr, "qctl serve: --group %s: no such group\n",
			group);
		rc = EXIT_USAGE;
		goto out;
	}
	if (accel_parse(accel_s, &o.build.accel, &err) < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		rc = EXIT_USAGE;
		goto out;
	}
	if (geteuid() == 0 &&
	    uidpool_range_pick(uid_range, NULL, &o.build.uids, &err) < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		rc = EXIT_USAGE;
		goto out;
	}
	if (o.build.accel == ACCEL_AUTO) {
		o.build.accel = accel_detect("/dev", "/sys", cpu_hypervisor(hv),
					      why, sizeof(why));
		fprintf(stderr, "qctl serve: --accel auto: %s\n", why);
	}
	serve_default_ceilings(&o);
	env = getenv("QCTL_STATE_DIR");
	if (!state_dir)
		state_dir = xstrdup(env && *env ? env : STATE_DIR_DEFAULT);
	env = getenv("QCTL_RUN_ROOT");
	if (!run_root && env && *env)
		run_root = abs_path(env);
	if (!run_root)
		run_root = xstrdup(RUN_ROOT_DEFAULT);
	o.build.state_dir = state_dir;
	o.build.run_root = run_root;
	o.build.cache_dir = cache_dir;
	o.build.machine = getenv("QCTL_MACHINE");
	o.build.qemu_binary = getenv("QCTL_QEMU");
	o.build.verbosity = verbose >= 2 ? 2 : 1;
	o.progress = verbose > 0;

	/* Both are root's alone (see rundir.h): made or refused now, not
	 * at the first build. */
	if (serve_dir_check(state_dir, "state directory", &err) < 0 ||
	    serve_dir_check(run_root, "run root", &err) < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		rc = EXIT_INFRA;
		goto out;
	}
	if (cache_dir) {
		int fd = -1;

		if (cache_root_open(cache_dir, &fd, &err) < 0) {
			fprintf(stderr, "qctl serve: --cache-dir: %s\n",
				err.msg);
			rc = EXIT_INFRA;
			goto out;
		}
		close(fd);
	}
	/* What a dead server (or qctl run) left behind goes first. */
	n = state_gc(state_dir, run_root, stdout, &err);
	if (n >= 0 && cache_dir)
		cache_gc(cache_dir, stdout);
	fflush(stdout);
	if (n < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		rc = EXIT_INFRA;
		goto out;
	}

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	ctx.loop = loop_new();
	if (sigfd < 0 || !ctx.loop) {
		fprintf(stderr, "qctl serve: %s\n", strerror(errno));
		loop_free(ctx.loop);
		rc = EXIT_INFRA;
		goto out;
	}
	if (o.ssh.on && ssh_listen(o.ssh.where, &o.ssh.listen_fd, &err) < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		loop_free(ctx.loop);
		rc = EXIT_INFRA;
		goto out;
	}
	ctx.serve = serve_new(ctx.loop, &o);
	if (!loop_watch_fd(ctx.loop, sigfd, EPOLLIN, on_signal, &ctx) ||
	    (act_fd >= 0 ? ctl_listen_fd(serve_ctl(ctx.serve),
					 steal_fd(&act_fd), &err)
			 : ctl_listen(serve_ctl(ctx.serve), sock, mode, gid,
				      &err)) < 0) {
		fprintf(stderr, "qctl serve: %s\n",
			err.msg[0] ? err.msg : strerror(errno));
		serve_free(ctx.serve);
		loop_free(ctx.loop);
		rc = EXIT_INFRA;
		goto out;
	}
	if (o.ssh.on && serve_ssh_start(ctx.serve, &err) < 0) {
		fprintf(stderr, "qctl serve: %s\n", err.msg);
		serve_free(ctx.serve);
		loop_free(ctx.loop);
		rc = EXIT_INFRA;
		goto out;
	}
	if (activated) {
		struct stat st;

		if (stat(sock, &st) == 0) {
			mode = st.st_mode & 07777;
			gid = st.st_gid;
		}
	}
	fprintf(stderr, "qctl serve: listening on %s (%smode %04lo, gid %d), "
		"%d build%s at once, accel %s, runs in %s, state in %s\n",
		sock, activated ? "systemd's socket, " : "", mode, (int)gid,
		o.max_parallel > 0 ? o.max_parallel
				   : (int)sysconf(_SC_NPROCESSORS_ONLN),
		o.max_parallel == 1 ? "" : "s", accel_name(o.build.accel),
		run_root, state_dir);
	loop_run(ctx.loop);
	serve_free(ctx.serve);
	loop_free(ctx.loop);
	fprintf(stderr, "qctl serve: exited\n");
out:
	if (o.ssh.listen_fd >= 0 && o.ssh.on)
		close(o.ssh.listen_fd);
	for (size_t i = 0; i < o.ssh.n_hostkeys; i++) {
		explicit_bzero(o.ssh.hostkeys[i], strlen(o.ssh.hostkeys[i]));
		free(o.ssh.hostkeys[i]);
	}
	free(o.ssh.hostkeys);
	for (size_t i = 0; i < o.ssh.n_keys; i++)
		free(o.ssh.keys[i]);
	free(o.ssh.keys);
	return rc;
}
