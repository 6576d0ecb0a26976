/* cmd-run.c - qctl run: one recipe, one VM, in the foreground */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <termios.h>

#include "build.h"
#include "cmd.h"
#include "json-util.h"
#include "recipe.h"
#include "rundir.h"
#include "state.h"
#include "uidpool.h"

static void
run_usage(FILE *f)
{
	fputs("usage: qctl run [OPTIONS] [RECIPE]   (default ./qctl.yaml)\n"
	      "\n"
	      "  --image NAME|DIR    image to boot (overrides the recipe)\n"
	      "  --source DIR        host directory copied to /src\n"
	      "  --result FILE       write the result JSON here\n"
	      "                      (default RUNDIR/result.json)\n"
	      "  --json              result JSON on stdout, logs on stderr\n"
	      "  --accel auto|kvm|tcg  accelerator (default auto)\n"
	      "  --artifacts DIR     where artifacts go (default "
	      "RUNDIR/artifacts)\n"
	      "  --keep              keep the run directory\n"
	      "  --no-snapshot       boot cold: do not start from, or save,\n"
	      "                      a snapshot (docs/snapshots.md)\n"
	      "  --run-root DIR      parent of run directories (default\n"
	      "                      $QCTL_RUN_ROOT or " RUN_ROOT_DEFAULT ")\n"
	      "  --uid-range FIRST:COUNT  QEMU's uids, one per VM (default\n"
	      "                      $QCTL_UID_RANGE or 1879048192:65536)\n"
	      "  --shell-on-failure  when a step fails, open a shell in the\n"
	      "                      VM on this terminal (in /src, the\n"
	      "                      step's environment, network closed);\n"
	      "                      `exit` ends the build with the failure\n"
	      "                      (held at most the recipe's\n"
	      "                      hold_on_failure, else 30m)\n"
	      "  --cache-max SIZE    all cache images together at most this\n"
	      "                      (allocated bytes; default 20G): least\n"
	      "                      recently used keys go first\n"
	      "  --cache-dir DIR     where cache images are kept (default\n"
	      "                      STATE_DIR/cache)\n"
	      "  -q, --quiet         only errors and the result\n"
	      "  -v, --verbose       more detail\n"
	      "\n"
	      "exit codes: 0 passed, 1 a step failed, 2 usage or recipe "
	      "error,\n"
	      "            3 limit exceeded, 4 infrastructure error, 130 "
	      "interrupted\n",
	      f);
}

struct run_ctx {
	struct loop *loop;
	struct build *build;
	int sigfd;
	int signals;
	/* --shell-on-failure: the terminal, the shell's session */
	bool shell;
	int term_fd;		/* where the shell's output goes */
	bool raw;		/* stdin is in raw mode (saved in tio) */
	struct termios tio;
	bool in_shell;
	unsigned sid;
	struct loop_watch *w_stdin;
};

/* Default hold for --shell-on-failure when the recipe names none. */
#define RUN_HOLD_DEFAULT_MS (30 * 60 * 1000)

static void
term_restore(struct run_ctx *c)
{
	if (c->raw)
		tcsetattr(STDIN_FILENO, TCSADRAIN, &c->tio);
	c->raw = false;
}

static void
write_all(int fd, const void *p, size_t n)
{
	const char *q = p;

	while (n) {
		ssize_t w = write(fd, q, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;	/* the terminal is gone: the output too */
		q += w;
		n -= (size_t)w;
	}
}

static void
shell_output(void *opaque, int stream, const void *p, size_t n)
{
	struct run_ctx *c = opaque;

	(void)stream;
	write_all(c->term_fd, p, n);
}

static void
shell_ended(void *opaque, int code, int sig, const char *why)
{
	struct run_ctx *c = opaque;

	c->in_shell = false;
	loop_unwatch(c->w_stdin);
	c->w_stdin = NULL;
	term_restore(c);
	if (why)
		fprintf(stderr, "\nqctl: the shell ended: %s\n", why);
	else if (sig)
		fprintf(stderr, "\nqctl: the shell was killed by signal %d\n",
			sig);
	else
		fprintf(stderr, "qctl: the shell exited (%d)\n", code);
	build_hold_end(c->build, why ? why : "the shell exited");
}

static const struct build_shell_ops shell_ops = {
	.output = shell_output,
	.ended = shell_ended,
};

static void
winsize_of(int fd, unsigned *rows, unsigned *cols)
{
	struct winsize ws = { 0 };

	*rows = *cols = 0;
	if (ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_row && ws.ws_col) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

static void
on_stdin(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct run_ctx *c = opaque;
	struct error err = { 0 };
	char buf[16384];
	ssize_t n;

	(void)l;
	(void)events;
	n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		loop_unwatch(c->w_stdin);
		c->w_stdin = NULL;
		if (build_shell_eof(c->build, c->sid, &err) < 0)
			fprintf(stderr, "qctl run: %s\n", err.msg);
		return;
	}
	if (build_shell_input(c->build, c->sid, buf, (size_t)n, &err) < 0)
		fprintf(stderr, "qctl run: %s\n", err.msg);
}

/* The build is held: the shell comes up on this terminal. */
static void
shell_start(struct run_ctx *c)
{
	struct build_shell_req req = { .pty = true, .who = "terminal" };
	struct termios raw;
	struct error err = { 0 };

	req.term = getenv("TERM");
	winsize_of(STDIN_FILENO, &req.rows, &req.cols);
	fprintf(stderr, "qctl: a shell in the failed build's VM (/src, "
		"network closed); `exit` ends the build\n");
	if (build_shell_open(c->build, &req, &shell_ops, c, &c->sid,
			     &err) < 0) {
		fprintf(stderr, "qctl run: no shell: %s\n", err.msg);
		build_hold_end(c->build, "the shell could not start");
		return;
	}
	c->in_shell = true;
	if (tcgetattr(STDIN_FILENO, &c->tio) == 0) {
		raw = c->tio;
		cfmakeraw(&raw);
		/* output processing stays: qctl's own lines keep their CR */
		raw.c_oflag |= OPOST;
		if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) == 0)
			c->raw = true;
	}
	c->w_stdin = loop_watch_fd(c->loop, STDIN_FILENO, EPOLLIN, on_stdin,
				   c);
}

static void
on_event(struct build *b, const char *event, json_t *data, void *opaque)
{
	struct run_ctx *c = opaque;

	(void)b;
	(void)data;
	if (c->shell && !strcmp(event, "BUILD_HELD"))
		shell_start(c);
}

static void
on_done(struct build *b, void *opaque)
{
	struct run_ctx *c = opaque;

	(void)b;
	loop_quit(c->loop, 0);
}

static void
on_signal(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct run_ctx *c = opaque;
	struct signalfd_siginfo si;

	(void)l;
	(void)events;
	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGWINCH) {
		unsigned rows, cols;

		winsize_of(STDIN_FILENO, &rows, &cols);
		if (c->in_shell && rows && cols)
			build_shell_winsize(c->build, c->sid, rows, cols,
					    NULL);
		return;
	}
	c->signals++;
	build_cancel(c->build, si.ssi_signo == SIGINT
				       ? "interrupted (SIGINT)"
				       : "terminated by signal");
}

static char *
abs_path(const char *p)
{
	char cwd[PATH_MAX];

	if (p[0] == '/' || !getcwd(cwd, sizeof(cwd)))
		return xstrdup(p);
	return xasprintf("%s/%s", cwd, p);
}

/*
 * The state directory or run root was refused before the build began:
 * an infrastructure error, with the result where --json wants it.
 */
static int
run_refused(bool json, const char *result, const struct build_opts *o,
	    struct recipe *recipe, const struct error *err)
{
	struct build_result res = { .status = BUILD_RUNNING };
	struct error werr = { 0 };

	fprintf(stderr, "qctl run: %s\n", err->msg);
	result_finish(&res, BUILD_ERROR, "%s", err->msg);
	res.accel = accel_name(o->accel);
	if (json) {
		_cleanup_json_ json_t *j = result_to_json(&res);

		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		fflush(stdout);
	}
	if (result && result_write_file(&res, result, &werr) < 0)
		fprintf(stderr, "qctl run: %s\n", werr.msg);
	result_clear(&res);
	recipe_free(recipe);
	return EXIT_INFRA;
}

int
cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "image", required_argument, NULL, 'i' },
		{ "source", required_argument, NULL, 's' },
		{ "result", required_argument, NULL, 'r' },
		{ "json", no_argument, NULL, 'j' },
		{ "accel", required_argument, NULL, 'a' },
		{ "artifacts", required_argument, NULL, 'A' },
		{ "keep", no_argument, NULL, 'k' },
		{ "no-snapshot", no_argument, NULL, 'N' },
		{ "run-root", required_argument, NULL, 'R' },
		{ "uid-range", required_argument, NULL, 'u' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "shell-on-failure", no_argument, NULL, 'S' },
		{ "cache-max", required_argument, NULL, 'C' },
		{ "cache-dir", required_argument, NULL, 'D' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct build_opts o = { .verbosity = 1, .out = stdout };
	_cleanup_free_ char *source = NULL, *artifacts = NULL, *result = NULL;
	_cleanup_free_ char *run_root = NULL, *cache_dir = NULL;
	const char *recipe_path = "qctl.yaml", *accel_s = "auto";
	const char *uid_range = NULL;
	struct recipe *recipe = NULL;
	struct run_ctx ctx = { .sigfd = -1 };
	struct error err = { 0 };
	struct build_result *res;
	const char *rd;
	bool json = false;
	char why[256], hv[13];
	sigset_t mask;
	int opt, rc;

	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "+qvh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'i':
			o.image = optarg;
			break;
		case 's': {
			struct stat st;

			free(source);
			source = realpath(optarg, NULL);
			if (!source || stat(source, &st) < 0 ||
			    !S_ISDIR(st.st_mode)) {
				fprintf(stderr, "qctl run: --source %s: not a "
					"directory\n", optarg);
				return EXIT_USAGE;
			}
			break;
		}
		case 'r':
			free(result);
			result = abs_path(optarg);
			break;
		case 'j':
			json = true;
			break;
		case 'a':
			accel_s = optarg;
			break;
		case 'A':
			free(artifacts);
			artifacts = abs_path(optarg);
			break;
		case 'k':
			o.keep = true;
			break;
		case 'N':
			o.no_snapshots = true;
			break;
		case 'R':
			free(run_root);
			run_root = abs_path(optarg);
			break;
		case 'u':
			uid_range = optarg;
			break;
		case 'q':
			o.verbosity = 0;
			break;
		case 'v':
			o.verbosity = 2;
			break;
		case 'S':
			ctx.shell = true;
			break;
		case 'C':
			if (parse_size(optarg, &o.cache_max, &err) < 0 ||
			    !o.cache_max) {
				fprintf(stderr, "qctl run: --cache-max %s: %s\n",
					optarg, err.msg[0] ? err.msg
							   : "must be more "
							     "than 0");
				return EXIT_USAGE;
			}
			break;
		case 'D':
			free(cache_dir);
			cache_dir = abs_path(optarg);
			break;
		case 'h':
			run_usage(stdout);
			return 0;
		default:
			fprintf(stderr, "qctl run: bad option \"%s\"\n\n",
				argv[optind - 1]);
			run_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind > 1) {
		fprintf(stderr, "qctl run: one recipe at a time\n");
		return EXIT_USAGE;
	}
	if (optind < argc)
		recipe_path = argv[optind];
	if (accel_parse(accel_s, &o.accel, &err) < 0) {
		fprintf(stderr, "qctl run: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (geteuid() == 0 &&
	    uidpool_range_pick(uid_range, NULL, &o.uids, &err) < 0) {
		fprintf(stderr, "qctl run: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (recipe_load_file(recipe_path, &recipe, &err) < 0) {
		fprintf(stderr, "qctl run: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (json)
		o.out = stderr;
	ctx.term_fd = json ? STDERR_FILENO : STDOUT_FILENO;
	if (ctx.shell && (!isatty(STDIN_FILENO) || !isatty(ctx.term_fd))) {
		fprintf(stderr, "qctl run: --shell-on-failure needs a terminal "
			"on stdin and %s\n", json ? "stderr" : "stdout");
		recipe_free(recipe);
		return EXIT_USAGE;
	}
	if (ctx.shell) {
		/* a recipe's hold (kept after a pass too) is for serve's
		 * sessions; here it only times the shell after a failure */
		o.hold_ms = recipe->hold_ms	    ? recipe->hold_ms
			    : recipe->hold_after_ms ? recipe->hold_after_ms
						    : RUN_HOLD_DEFAULT_MS;
		o.event = on_event;
		o.event_opaque = &ctx;
	}
	if (o.accel == ACCEL_AUTO) {
		o.accel = accel_detect("/dev", "/sys", cpu_hypervisor(hv),
					      why, sizeof(why));
		if (o.verbosity >= 1)
			fprintf(o.out, "qctl: --accel auto: %s\n", why);
	}
	o.source = source;
	o.artifacts_dir = artifacts;
	/* the cache's namespace: whoever runs qctl run */
	o.cache_ns = getuid();
	o.cache_dir = cache_dir;
	o.machine = getenv("QCTL_MACHINE");
	o.qemu_binary = getenv("QCTL_QEMU");
	o.run_root = run_root ? run_root : getenv("QCTL_RUN_ROOT");
	if (!o.run_root || !*o.run_root)
		o.run_root = RUN_ROOT_DEFAULT;
	o.state_dir = getenv("QCTL_STATE_DIR");
	if (!o.state_dir || !*o.state_dir)
		o.state_dir = STATE_DIR_DEFAULT;
	/* What a killed manager left behind goes first (only dead owners').
	 * It checks the state directory and the run root as the build
	 * will: a refused one ends the run before anything is written. */
	if (state_gc(o.state_dir, o.run_root, o.verbosity >= 1 ? o.out : NULL,
		     &err) < 0)
		return run_refused(json, result, &o, recipe, &err);

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	if (ctx.shell)
		sigaddset(&mask, SIGWINCH);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	ctx.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	ctx.loop = loop_new();
	if (ctx.sigfd < 0 || !ctx.loop) {
		fprintf(stderr, "qctl run: %s\n", strerror(errno));
		recipe_free(recipe);
		return EXIT_INFRA;
	}
	loop_watch_fd(ctx.loop, ctx.sigfd, EPOLLIN, on_signal, &ctx);
	ctx.build = build_new(ctx.loop, recipe, &o, on_done, &ctx);
	if (build_start(ctx.build, &err) < 0) {
		fprintf(stderr, "qctl run: %s\n", err.msg);
		result_finish(build_result(ctx.build), BUILD_ERROR, "%s",
			      err.msg);
	} else {
		loop_run(ctx.loop);
	}
	loop_unwatch(ctx.w_stdin);
	ctx.w_stdin = NULL;
	term_restore(&ctx);
	res = build_result(ctx.build);
	rd = build_run_dir(ctx.build);
	if (!o.keep && rd &&
	    (!result || !strncmp(result, rd, strlen(rd)))) {
		/* The default places go with the run directory. */
		if (!json && o.verbosity >= 1)
			fprintf(o.out, "qctl: run directory removed (use "
				"--keep, --result or --json to keep the "
				"result)\n");
		free(result);
		result = NULL;
	} else if (!result && rd) {
		/* in the run directory: created there, never through a
		 * link (see rundir.h) */
		_cleanup_close_ int dfd = -1;

		result = xasprintf("%s/result.json", rd);
		if (rundir_open_dir(rd, &dfd, &err) < 0 ||
		    result_write_file_at(res, dfd, "result.json", &err) < 0)
			fprintf(stderr, "qctl run: %s\n", err.msg);
		else if (o.verbosity >= 1)
			fprintf(o.out, "qctl: result in %s\n", result);
		free(result);
		result = NULL;
	}
	if (result && result_write_file(res, result, &err) < 0)
		fprintf(stderr, "qctl run: %s\n", err.msg);
	else if (result && o.verbosity >= 1)
		fprintf(o.out, "qctl: result in %s\n", result);
	if (json) {
		_cleanup_json_ json_t *j = result_to_json(res);

		json_dumpf(j, stdout, JSON_INDENT(2));
		fputc('\n', stdout);
		fflush(stdout);
	}
	rc = result_exit(res);
	build_free(ctx.build);
	loop_free(ctx.loop);
	close(ctx.sigfd);
	recipe_free(recipe);
	return rc;
}
