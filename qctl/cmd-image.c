/* cmd-image.c - qctl image build: an image from a definition file */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cmd.h"
#include "imagedef.h"
#include "result.h"

#include "paths.h"

/* installed: the back ends and definitions (make install) */
#define SHARE_DIR QCTL_DATADIR

static const char usage_text[] =
	"usage: qctl image build FILE [--out DIR] [--name NAME] "
	"[--agent PATH] [--dry-run]\n\n"
	"Builds the image FILE defines (docs/images.md).\n\n"
	"  --out DIR     where the image goes (default $QCTL_IMAGES/NAME, or\n"
	"                images/out/NAME of the tree qctl was built in, or\n"
	"                " QCTL_IMAGEDIR "/NAME for an installed qctl)\n"
	"  --name NAME   the image's name instead of the file's\n"
	"  --agent PATH  the guest agent (default: guestagent beside qctl,\n"
	"                else " QCTL_LIBEXECDIR "/guestagent)\n"
	"  --dry-run     check FILE and print the build command; build "
	"nothing\n\n"
	"The back ends, mkimage-minimal.sh and mkimage-debian.sh, are looked "
	"for in\n$QCTL_IMAGE_SCRIPTS, then images/ of the tree qctl was built "
	"in, then\n" SHARE_DIR ".\n\n"
	"Exit codes: 0 built, 2 bad definition or usage, 4 the build failed,"
	"\n130 interrupted.\n";

/* argv being built for the back end */
struct args {
	char **v;
	size_t n, cap;
};

static void
args_add(struct args *a, const char *s)
{
	if (a->n + 2 > a->cap) {
		a->cap = a->cap ? a->cap * 2 : 32;
		a->v = xrealloc(a->v, a->cap * sizeof(*a->v));
	}
	a->v[a->n++] = xstrdup(s);
	a->v[a->n] = NULL;
}

static void
args_free(struct args *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

#define _cleanup_args_ __attribute__((cleanup(args_free)))

static bool
is_file(const char *p, bool exec)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode) &&
	       (!exec || access(p, X_OK) == 0);
}

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The directory of the qctl binary (build/), or NULL. */
static char *
exe_dir(void)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	char *slash;

	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	slash = strrchr(exe, '/');
	if (!slash || slash == exe)
		return NULL;
	*slash = '\0';
	return xstrdup(exe);
}

/* The tree qctl was built in (build/qctl -> the tree), or NULL. */
static char *
tree_dir(void)
{
	_cleanup_free_ char *dir = exe_dir();
	char *slash;

	if (!dir)
		return NULL;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return NULL;
	*slash = '\0';
	return xstrdup(dir);
}

/* script, in $QCTL_IMAGE_SCRIPTS, the tree's images/ or SHARE_DIR. */
static char *
find_script(const char *script)
{
	_cleanup_free_ char *tree = tree_dir();
	const char *env = getenv("QCTL_IMAGE_SCRIPTS");
	char *p;

	if (env && *env) {
		/* named on purpose: no falling back to another one */
		return xasprintf("%s/%s", env, script);
	}
	if (tree) {
		p = xasprintf("%s/images/%s", tree, script);
		if (is_file(p, true))
			return p;
		free(p);
	}
	return xasprintf("%s/%s", SHARE_DIR, script);
}

/*
 * Where image_open() looks for NAME: $QCTL_IMAGES, the tree's images/out,
 * else (an installed qctl) QCTL_IMAGEDIR.
 */
static char *
default_out(const char *name)
{
	_cleanup_free_ char *tree = tree_dir();
	const char *env = getenv("QCTL_IMAGES");

	if (env && *env)
		return xasprintf("%s/%s", env, name);
	if (tree) {
		_cleanup_free_ char *images = xasprintf("%s/images", tree);

		if (is_dir(images))
			return xasprintf("%s/out/%s", images, name);
	}
	return xasprintf("%s/%s", QCTL_IMAGEDIR, name);
}

static void
add_u64(struct args *a, const char *opt, uint64_t v)
{
	char num[32];

	snprintf(num, sizeof(num), "%" PRIu64, v);
	args_add(a, opt);
	args_add(a, num);
}

/* The back end's argv for a Debian base: every value one argument. */
static void
debian_args(const struct imagedef *d, const char *agent, const char *out,
	    struct args *a)
{
	size_t i;

	args_add(a, "--name");
	args_add(a, d->name);
	args_add(a, "--suite");
	args_add(a, d->suite);
	args_add(a, "--variant");
	args_add(a, d->variant);
	for (i = 0; i < d->n_packages; i++) {
		args_add(a, "--package");
		args_add(a, d->packages[i]);
	}
	args_add(a, "--source-type");
	args_add(a, "deb");
	if (d->deb_src) {
		args_add(a, "--source-type");
		args_add(a, "deb-src");
	}
	if (d->npm)
		args_add(a, "--npm");
	if (d->ssh) {
		args_add(a, "--transport");
		args_add(a, "ssh");
	}
	for (i = 0; i < d->n_setup; i++) {
		args_add(a, "--setup");
		args_add(a, d->setup[i]);
	}
	if (d->cpus)
		add_u64(a, "--cpus", d->cpus);
	if (d->memory)
		add_u64(a, "--memory", d->memory);
	if (d->root_size) {
		add_u64(a, "--root-size", d->root_size);
	} else {
		args_add(a, "--root-size");
		args_add(a, "auto");
	}
	args_add(a, "--");
	args_add(a, agent);
	args_add(a, out);
}

/* The environment knobs of mkimage-minimal.sh (base: initramfs). */
static void
minimal_env(const struct imagedef *d, struct args *env)
{
	_cleanup_free_ char *name = xasprintf("QCTL_IMAGE_NAME=%s", d->name);

	args_add(env, name);
	if (d->cpus) {
		_cleanup_free_ char *s =
			xasprintf("QCTL_IMAGE_CPUS=%d", d->cpus);
		args_add(env, s);
	}
	if (d->memory) {
		_cleanup_free_ char *s =
			xasprintf("QCTL_IMAGE_MEMORY=%" PRIu64, d->memory);
		args_add(env, s);
	}
}

static volatile sig_atomic_t child_pid;

/*
 * A signal for qctl is one for the build, sent to the back end's whole
 * process group: bash runs its clean-up trap only after its foreground
 * child (mmdebstrap) ends, so that child must get the signal too.
 */
static void
forward_signal(int sig)
{
	if (child_pid > 0)
		kill(-child_pid, sig);
}

/* Run argv with env added; its exit code, or 128 + signal. */
static int
run_backend(char **argv, char **env, struct error *err)
{
	struct sigaction sa = {.sa_handler = forward_signal};
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
	int status;
	pid_t pid;

	fflush(NULL);
	pid = fork();
	if (pid < 0)
		return error_sys(err, errno, "fork");
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);

		/* a process group of its own, which qctl signals (a ^C on
		 * the terminal reaches qctl alone, so it arrives once); no
		 * terminal input, which a background group may not read */
		setpgid(0, 0);
		if (null < 0 || dup2(null, 0) < 0)
			_exit(127);
		/* the script gets stdio and its environment, nothing else */
		close_range(3, ~0U, 0);
		for (size_t i = 0; env && env[i]; i++)
			putenv(env[i]);
		execv(argv[0], argv);
		fprintf(stderr, "qctl image: %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid); /* either side may come first */
	child_pid = pid;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < ARRAY_SIZE(sigs); i++)
		sigaction(sigs[i], &sa, NULL);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return error_sys(err, errno, "waitpid");
	child_pid = 0;
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return WEXITSTATUS(status);
}

static void
print_command(char **env, char **argv)
{
	for (size_t i = 0; env && env[i]; i++)
		printf("%s ", env[i]);
	for (size_t i = 0; argv[i]; i++) {
		const char *s = argv[i];

		/* shell-quoted, to be copied into a terminal */
		if (s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
				"rstuvwxyz0123456789_+-.,/:=@")] ||
		    !*s) {
			putchar('\'');
			for (; *s; s++) {
				if (*s == '\'')
					fputs("'\\''", stdout);
				else
					putchar(*s);
			}
			putchar('\'');
		} else {
			fputs(s, stdout);
		}
		putchar(argv[i + 1] ? ' ' : '\n');
	}
}

/* Run the back end and say how it went; qctl's exit code. */
static int
image_run(const struct imagedef *d, const char *script, const char *agent,
	  const char *out, struct args *argv, struct args *env)
{
	struct error err = {0};
	int64_t t0;
	int rc;

	if (!is_file(script, true)) {
		fprintf(stderr, "qctl image: no back end %s (set "
				"QCTL_IMAGE_SCRIPTS)\n",
			script);
		return EXIT_INFRA;
	}
	if (!agent || !is_file(agent, true)) {
		fprintf(stderr, "qctl image: no guest agent %s (run make, or "
				"give --agent)\n",
			agent ? agent : "beside qctl");
		return EXIT_INFRA;
	}
	fprintf(stderr, "qctl image: building %s (%s) into %s\n", d->name,
		d->base == IMAGEDEF_DEBIAN ? d->suite : "initramfs", out);
	t0 = now_ms();
	rc = run_backend(argv->v, env->v, &err);
	if (rc < 0) {
		fprintf(stderr, "qctl image: %s\n", err.msg);
		return EXIT_INFRA;
	}
	if (rc == 0) {
		fprintf(stderr, "qctl image: %s built in %" PRId64 " s\n", out,
			(now_ms() - t0 + 500) / 1000);
		return 0;
	}
	if (rc == 130 || rc == 128 + SIGINT || rc == 128 + SIGTERM ||
	    rc == 128 + SIGHUP) {
		fprintf(stderr, "qctl image: interrupted; %s is as it was\n",
			out);
		return EXIT_CANCELLED;
	}
	fprintf(stderr, "qctl image: the build failed (%s exited %d); %s is "
			"as it was\n",
		script, rc, out);
	return EXIT_INFRA;
}

static int
image_build(const char *file, const char *out_opt, const char *name,
	    const char *agent_opt, bool dry_run)
{
	_cleanup_imagedef_ struct imagedef *d = NULL;
	_cleanup_free_ char *script = NULL, *agent = NULL, *out = NULL;
	_cleanup_args_ struct args argv = {0}, env = {0};
	struct error err = {0};

	if (imagedef_load_file(file, &d, &err) < 0) {
		fprintf(stderr, "qctl image: %s\n", err.msg);
		return EXIT_USAGE;
	}
	if (name) {
		if (!imagedef_name_ok(name)) {
			fprintf(stderr, "qctl image: --name: bad image name "
					"(1-%d of [A-Za-z0-9_.-], not "
					"starting with '.')\n",
				IMAGEDEF_NAME_MAX);
			return EXIT_USAGE;
		}
		free(d->name);
		d->name = xstrdup(name);
	}
	out = out_opt ? xstrdup(out_opt) : default_out(d->name);
	if (agent_opt)
		agent = xstrdup(agent_opt);
	else
		agent = helper_path(NULL, "guestagent");
	script = find_script(d->base == IMAGEDEF_DEBIAN ? "mkimage-debian.sh"
							: "mkimage-minimal.sh");
	args_add(&argv, script);
	if (d->base == IMAGEDEF_DEBIAN) {
		debian_args(d, agent ? agent : "guestagent", out, &argv);
	} else {
		minimal_env(d, &env);
		args_add(&argv, agent ? agent : "guestagent");
		args_add(&argv, out);
	}
	if (dry_run) {
		print_command(env.v, argv.v);
		return 0;
	}
	return image_run(d, script, agent, out, &argv, &env);
}

int
cmd_image(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"out", required_argument, NULL, 'o'},
		{"name", required_argument, NULL, 'n'},
		{"agent", required_argument, NULL, 'a'},
		{"dry-run", no_argument, NULL, 'd'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *out = NULL, *name = NULL, *agent = NULL;
	bool dry_run = false;
	int opt;

	if (argc >= 2 &&
	    (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		fputs(usage_text, stdout);
		return 0;
	}
	if (argc < 2 || strcmp(argv[1], "build")) {
		fprintf(stderr, "qctl image: %s\n\n%s",
			argc < 2 ? "which subcommand? (build)"
				 : "unknown subcommand",
			usage_text);
		return EXIT_USAGE;
	}
	argc--;
	argv++;
	opterr = 0;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (opt) {
		case 'o':
			out = optarg;
			break;
		case 'n':
			name = optarg;
			break;
		case 'a':
			agent = optarg;
			break;
		case 'd':
			dry_run = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		default:
			fprintf(stderr, "qctl image build: bad option \"%s\"\n",
				argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr,
			"qctl image build: one definition FILE "
			"expected\n\n%s",
			usage_text);
		return EXIT_USAGE;
	}
	return image_build(argv[optind], out, name, agent, dry_run);
}
