/*
 * gitsrc.c - source: {git: URL, ref: REF}.
 *
 * The manager makes GITSRC_DIR in the run directory (owned by the
 * submitter under qctl serve) and starts `qctl __peer git URL REF` with
 * the submitter's rights; it hands the child that directory as an fd (the
 * run directory itself stays root's, 0700).  The child runs git, never
 * through a shell, with an empty environment but for what disables every
 * configuration, hook, helper and transport that could run a command or
 * reach the network:
 *
 *   git init --bare --template= repo.git       no hooks, no sample files
 *   git fetch URL heads, tags (and HEAD)       into refs/qctl/...
 *   git rev-parse --verify REF^{commit}        once: the commit
 *   git checkout --detach COMMIT (work tree: tree)
 *
 * and sends the commit id back.  The tree is then packed like a directory
 * source (`qctl __peer pack-fd`, again as the submitter); repo.git is
 * never sent.  The manager removes GITSRC_DIR whatever the end.
 */
#include "gitsrc.h"

#include <fcntl.h>
#include <limits.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "json-util.h"
#include "peer.h"
#include "rundir.h"

#define COMMIT_MAX 64

struct gitsrc {
	struct loop *loop;
	const struct recipe_git *git; /* borrowed from the recipe */
	int dir_fd;		      /* the run directory (borrowed) */
	int work_fd;		      /* GITSRC_DIR */
	bool made;		      /* GITSRC_DIR exists: remove it */
	char *bind_src;		      /* RUNDIR/GITSRC_DIR */
	char *bind_dst;		      /* the run root */
	struct peer_child pc;
	struct loop_watch *w_pid;
	struct loop_timer *t;
	int64_t timeout_ms;
	gitsrc_done_fn done;
	void *opaque;
	bool ended, timed_out;
	char commit[COMMIT_MAX + 1];
	int result; /* 0 or -1, once ended */
	bool recipe_fault;
	struct error err;
};

/* ---- pure helpers ------------------------------------------------------ */

bool
gitsrc_is_commit_id(const char *s, size_t n)
{
	if (n != 40 && n != 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

void
gitsrc_sanitize(const char *in, size_t n, char *out, size_t cap)
{
	size_t o = 0, i = 0;
	bool sep = false; /* a line ended: "; " before the next */

	if (!cap)
		return;
	while (i < n) {
		size_t eol = i;
		bool space = true; /* no leading space on a line */

		while (eol < n && in[eol] != '\n')
			eol++;
		/* git's advice, not the reason */
		if (eol - i >= 5 && !memcmp(in + i, "hint:", 5)) {
			i = eol + 1;
			continue;
		}
		for (; i < eol; i++) {
			unsigned char c = in[i];

			if (c < 0x20 || c >= 0x7f)
				c = ' ';
			if (c == ' ' && space)
				continue;
			if (sep) {
				if (o + 3 >= cap)
					goto cut;
				out[o++] = ';';
				out[o++] = ' ';
				sep = false;
			}
			space = c == ' ';
			if (o + 1 >= cap)
				goto cut;
			out[o++] = c;
		}
		i = eol + 1;
		while (o && out[o - 1] == ' ')
			o--;
		/* a line that left something: the next one is separated */
		sep = o > 0;
	}
	out[o] = '\0';
	return;
cut:
	if (cap >= 4 && o > cap - 4)
		o = cap - 4;
	while (o && out[o - 1] == ' ')
		o--;
	if (cap >= 4) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < cap ? o : cap - 1] = '\0';
}

char **
gitsrc_candidates(const char *ref)
{
	char **v = xcalloc(4, sizeof(*v));
	size_t n = 0;

	if (gitsrc_is_commit_id(ref, strlen(ref)))
		v[n++] = xstrdup(ref);
	else if (!strcmp(ref, "HEAD"))
		v[n++] = xstrdup("refs/qctl/HEAD");
	else if (!strncmp(ref, "refs/heads/", 11))
		v[n++] = xasprintf("refs/qctl/heads/%s", ref + 11);
	else if (!strncmp(ref, "refs/tags/", 10))
		v[n++] = xasprintf("refs/qctl/tags/%s", ref + 10);
	else if (strncmp(ref, "refs/", 5)) {
		/* git's own order: a tag before a branch */
		v[n++] = xasprintf("refs/qctl/tags/%s", ref);
		v[n++] = xasprintf("refs/qctl/heads/%s", ref);
	}
	return v;
}

static void
strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* ---- the child: `qctl __peer git URL REF` ------------------------------ */

/*
 * Everything git is told, on every command.  Together with the
 * environment below, no configuration but this is read: not the system's
 * (GIT_CONFIG_NOSYSTEM), not a user's (GIT_CONFIG_GLOBAL, HOME), and the
 * repository's own is the one we just made.  The source repository's
 * config and hooks belong to the upload-pack side, which runs none of
 * them (uploadpack.packObjectsHook is read from protected config only).
 */
/* clang-format off: one option per line, as git reads them */
static const char *const git_opts[] = {
	/* no hook of any repository ever runs */
	"-c",
	"core.hooksPath=/dev/null",
	/* fsmonitor and untracked cache would run or trust a helper */
	"-c",
	"core.fsmonitor=false",
	"-c",
	"core.untrackedCache=false",
	/* the file transport only: no ext::, ssh, http, git:// */
	"-c",
	"protocol.allow=never",
	"-c",
	"protocol.file.allow=always",
	/* no credential helper, no askpass: nothing to prompt for */
	"-c",
	"credential.helper=",
	"-c",
	"core.askPass=",
	/* no submodule is ever fetched or checked out */
	"-c",
	"submodule.recurse=false",
	"-c",
	"fetch.recurseSubmodules=false",
	/* objects are checked as they come in (malformed trees, paths) */
	"-c",
	"transfer.fsckObjects=true",
	/* no background work outliving the fetch */
	"-c",
	"gc.auto=0",
	"-c",
	"maintenance.auto=false",
	"-c",
	"fetch.writeCommitGraph=false",
	/* paths Windows or macOS would read otherwise: refused anyway */
	"-c",
	"core.protectNTFS=true",
	"-c",
	"core.protectHFS=true",
};
/* clang-format on */

static const char *const git_env[] = {
	"PATH=/usr/bin:/bin",
	/* (HOME and XDG_CONFIG_HOME: an empty directory, git_home) */
	"GIT_CONFIG_NOSYSTEM=1",
	"GIT_CONFIG_GLOBAL=/dev/null",
	"GIT_CONFIG_SYSTEM=/dev/null",
	"GIT_ATTR_NOSYSTEM=1",
	/* never a prompt, never a helper program */
	"GIT_TERMINAL_PROMPT=0",
	"GIT_ASKPASS=/bin/false",
	"SSH_ASKPASS=/bin/false",
	/* the transport allowlist once more, the old way */
	"GIT_ALLOW_PROTOCOL=file",
	"GIT_PROTOCOL_FROM_USER=0",
	"GIT_NO_REPLACE_OBJECTS=1",
	"GIT_OPTIONAL_LOCKS=0",
	"LC_ALL=C",
	NULL,
};

/* "HOME=" and "XDG_CONFIG_HOME=" an empty directory of ours: no user's
 * configuration, attributes or ignore files */
static char git_home[2][PATH_MAX + 32] = {"HOME=/nonexistent",
					  "XDG_CONFIG_HOME=/nonexistent"};

struct git_run {
	int status; /* waitpid's, or -1: could not start */
	int exec_errno;
	char out[COMMIT_MAX + 2]; /* first bytes of stdout */
	size_t out_len;
	char err[2048]; /* first bytes of stderr */
	size_t err_len;
};

/* Read both pipes to their ends, keeping the first bytes of each. */
static void
git_collect(int ofd, int efd, struct git_run *g)
{
	struct pollfd p[2] = {{ofd, POLLIN, 0}, {efd, POLLIN, 0}};
	char buf[4096];

	while (p[0].fd >= 0 || p[1].fd >= 0) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++) {
			char *dst = i ? g->err : g->out;
			size_t cap = i ? sizeof(g->err) : sizeof(g->out);
			size_t *len = i ? &g->err_len : &g->out_len;
			ssize_t n;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				close(p[i].fd);
				p[i].fd = -1;
				continue;
			}
			/* the rest is drained, not kept */
			if (*len < cap) {
				size_t k = cap - *len < (size_t)n ? cap - *len
								  : (size_t)n;

				memcpy(dst + *len, buf, k);
				*len += k;
			}
		}
	}
}

/* Run git with args (after the fixed options); never a shell. */
static void
git_run(const char *const *args, struct git_run *g)
{
	const char *argv[64];
	const char *envp[ARRAY_SIZE(git_env) + 2];
	int op[2] = {-1, -1}, ep[2] = {-1, -1}, xp[2] = {-1, -1};
	size_t n = 0;
	pid_t pid;
	ssize_t got;

	memset(g, 0, sizeof(*g));
	g->status = -1;
	argv[n++] = "git";
	for (size_t i = 0; i < ARRAY_SIZE(git_opts); i++)
		argv[n++] = git_opts[i];
	for (size_t i = 0; args[i] && n + 1 < ARRAY_SIZE(argv); i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	envp[0] = git_home[0];
	envp[1] = git_home[1];
	memcpy(envp + 2, git_env, sizeof(git_env));
	if (pipe2(op, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0 ||
	    pipe2(xp, O_CLOEXEC) < 0) {
		g->exec_errno = errno;
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		g->exec_errno = errno;
		goto out;
	}
	if (pid == 0) {
		int e;

		/* it dies with us: a killed fetch leaves no git behind */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(op[1], 1) < 0 || dup2(ep[1], 2) < 0)
			goto fail;
		/* stdin is /dev/null (peer.c); nothing else is inherited:
		 * not our channel, not the status pipe */
		if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			goto fail;
		execve(GITSRC_GIT, (char *const *)argv, (char *const *)envp);
	fail:
		e = errno;
		if (write(xp[1], &e, sizeof(e)) < 0)
			_exit(127);
		_exit(127);
	}
	close(op[1]);
	close(ep[1]);
	close(xp[1]);
	op[1] = ep[1] = xp[1] = -1;
	do
		got = read(xp[0], &g->exec_errno, sizeof(g->exec_errno));
	while (got < 0 && errno == EINTR);
	if (got != sizeof(g->exec_errno))
		g->exec_errno = 0;
	git_collect(op[0], ep[0], g);
	op[0] = ep[0] = -1; /* closed there */
	while (waitpid(pid, &g->status, 0) < 0 && errno == EINTR)
		;
	if (g->exec_errno)
		g->status = -1;
out:
	for (int i = 0; i < 2; i++) {
		if (op[i] >= 0)
			close(op[i]);
		if (ep[i] >= 0)
			close(ep[i]);
		if (xp[i] >= 0)
			close(xp[i]);
	}
}

static int
git_ok(const struct git_run *g)
{
	return g->status >= 0 && WIFEXITED(g->status) &&
	       WEXITSTATUS(g->status) == 0;
}

static void __attribute__((noreturn, format(printf, 3, 4)))
child_die(int status_fd, int code, const char *fmt, ...)
{
	char msg[480];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0 && write(status_fd, msg, strlen(msg)) < 0)
		_exit(code);
	_exit(code);
}

/* "git fetch failed (exit 128): fatal: ..." */
static void __attribute__((noreturn))
git_die(int status_fd, int code, const char *what, const struct git_run *g)
{
	char why[GITSRC_MSG_MAX + 1];

	if (g->status < 0 && g->exec_errno == ENOENT)
		child_die(status_fd, 1,
			  "%s is not installed (Debian: apt-get "
			  "install git)",
			  GITSRC_GIT);
	if (g->status < 0)
		child_die(status_fd, 1, "cannot run %s: %s", GITSRC_GIT,
			  strerror(g->exec_errno));
	gitsrc_sanitize(g->err, g->err_len, why, sizeof(why));
	if (WIFSIGNALED(g->status))
		child_die(status_fd, 1, "%s: git died of signal %d%s%s", what,
			  WTERMSIG(g->status), *why ? ": " : "", why);
	child_die(status_fd, code, "%s (git exit %d)%s%s", what,
		  WEXITSTATUS(g->status), *why ? ": " : "", why);
}

/* A directory's fd, sent by the manager first thing (gitsrc.h). */
int
gitsrc_recv_dir(int chan_fd)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte;
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;
	struct stat st;
	int fd = -1;
	ssize_t n;

	do
		n = recvmsg(chan_fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != 1 || (mh.msg_flags & MSG_CTRUNC))
		return -1;
	c = CMSG_FIRSTHDR(&mh);
	if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
	    c->cmsg_len != CMSG_LEN(sizeof(int)))
		return -1;
	memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Resolve candidate to a commit in repo.git: 1 found, 0 not. */
static int
resolve_one(int status_fd, const char *cand, char *commit)
{
	_cleanup_free_ char *spec = xasprintf("%s^{commit}", cand);
	const char *args[] = {
		"--git-dir=" GITSRC_REPO, "rev-parse", "--verify", "--quiet",
		"--end-of-options",	  spec,	       NULL};
	struct git_run g;
	size_t n;

	git_run(args, &g);
	if (g.status >= 0 && WIFEXITED(g.status) &&
	    WEXITSTATUS(g.status) == 1 && !g.out_len)
		return 0; /* --quiet: "no such thing" */
	if (!git_ok(&g))
		git_die(status_fd, 1, "git rev-parse failed", &g);
	n = g.out_len;
	while (n && g.out[n - 1] == '\n')
		n--;
	if (!gitsrc_is_commit_id(g.out, n))
		child_die(status_fd, 1, "git rev-parse: unexpected output");
	memcpy(commit, g.out, n);
	commit[n] = '\0';
	return 1;
}

/* The manager died: take git and everything it started along. */
static void
on_parent_death(int sig)
{
	(void)sig;
	kill(0, SIGKILL);
	_exit(1);
}

/* The repository path with our rights: git's own words for what it may
 * not read are "does not appear to be a git repository". */
static void
peer_check_repo(const char *url, int status_fd)
{
	const char *path = url[0] == '/' ? url : url + 7; /* file:// */
	int fd;

	if (strchr(path, '%'))
		return; /* URL-encoded: git's to decode */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		child_die(status_fd, GITSRC_EXIT_RECIPE,
			  "cannot read repository %.200s: %s", url,
			  strerror(errno));
	close(fd);
}

/* The working directory (GITSRC_DIR, see git_setup): an empty HOME. */
static void
peer_prepare(int status_fd)
{
	char cwd[PATH_MAX];

	/* the tree's modes are what the repository says */
	umask(022);
	if (access(".", W_OK) < 0 || mkdir("home", 0500) < 0 ||
	    !getcwd(cwd, sizeof(cwd)))
		child_die(status_fd, 1, "work directory: %s", strerror(errno));
	snprintf(git_home[0], sizeof(git_home[0]), "HOME=%s/home", cwd);
	snprintf(git_home[1], sizeof(git_home[1]), "XDG_CONFIG_HOME=%s/home",
		 cwd);
}

/* A fresh bare repository (no hooks, no samples) and the remote's
 * branches and tags in it; its HEAD only when asked for (an empty
 * repository has none, and that is no error for a branch). */
static void
peer_fetch(const char *url, const char *ref, int status_fd)
{
	const char *init[] = {"init",	     "--quiet",	  "--bare",
			      "--template=", GITSRC_REPO, NULL};
	const char *fetch[] = {"--git-dir=" GITSRC_REPO,
			       "fetch",
			       "--quiet",
			       "--no-tags",
			       "--no-recurse-submodules",
			       "--no-write-fetch-head",
			       "--end-of-options",
			       url,
			       "+refs/heads/*:refs/qctl/heads/*",
			       "+refs/tags/*:refs/qctl/tags/*",
			       !strcmp(ref, "HEAD") ? "+HEAD:refs/qctl/HEAD"
						    : NULL,
			       NULL};
	char what[200];
	struct git_run g;

	git_run(init, &g);
	if (!git_ok(&g))
		git_die(status_fd, 1, "git init failed", &g);
	snprintf(what, sizeof(what), "cannot fetch from %.150s", url);
	git_run(fetch, &g);
	if (!git_ok(&g))
		git_die(status_fd, GITSRC_EXIT_RECIPE, what, &g);
}

/* The one commit ref names in what was fetched, into commit. */
static void
peer_resolve(const char *url, const char *ref, int status_fd, char *commit)
{
	char other[COMMIT_MAX + 1];
	char **cands = gitsrc_candidates(ref);
	bool found = false;

	if (!cands[0])
		child_die(status_fd, GITSRC_EXIT_RECIPE,
			  "ref \"%s\": only HEAD, branches (refs/heads/), "
			  "tags (refs/tags/) and full commit ids are fetched",
			  ref);
	for (size_t i = 0; cands[i]; i++) {
		if (!resolve_one(status_fd, cands[i], found ? other : commit))
			continue;
		/* a tag and a branch of that name: say which */
		if (found && strcmp(commit, other))
			child_die(status_fd, GITSRC_EXIT_RECIPE,
				  "ref \"%s\" is both a tag and a branch of "
				  "%.150s (write refs/tags/%s or "
				  "refs/heads/%s)",
				  ref, url, ref, ref);
		found = true;
	}
	strv_free(cands);
	if (!found)
		child_die(status_fd, GITSRC_EXIT_RECIPE,
			  "ref \"%s\" is not a branch, tag or commit of "
			  "%.150s%s",
			  ref, url,
			  gitsrc_is_commit_id(ref, strlen(ref))
				  ? " (a commit must be reachable from a "
				    "branch or tag)"
				  : "");
}

/* Exactly the commit, detached, into GITSRC_TREE; no submodules. */
static void
peer_checkout(const char *commit, int status_fd)
{
	const char *args[] = {"--git-dir=" GITSRC_REPO,
			      "--work-tree=" GITSRC_TREE,
			      "-c",
			      "core.bare=false",
			      "checkout",
			      "--quiet",
			      "--detach",
			      "--no-recurse-submodules",
			      commit,
			      "--",
			      NULL};
	struct git_run g;

	if (mkdir(GITSRC_TREE, 0755) < 0)
		child_die(status_fd, 1, "mkdir %s: %s", GITSRC_TREE,
			  strerror(errno));
	git_run(args, &g);
	if (!git_ok(&g))
		git_die(status_fd, 1, "git checkout failed", &g);
}

int
gitsrc_peer_main(const char *url, const char *ref, int chan_fd, int status_fd)
{
	char commit[COMMIT_MAX + 1] = "";
	struct error err = {0};
	pid_t parent = getppid();

	/* A SIGKILL at the manager's death (peer.c) would leave what git
	 * started (upload-pack, blocked on a FIFO of the repository, say)
	 * running: a SIGTERM instead, and its handler kills our whole
	 * process group (child_setup made it ours). */
	signal(SIGTERM, on_parent_death);
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent ||
	    parent == 1)
		_exit(1);
	/* the checks of the recipe once more: this process trusts no
	 * argument it did not check itself */
	if (recipe_check_git_url(url, &err) < 0 ||
	    recipe_check_git_ref(ref, &err) < 0)
		child_die(status_fd, GITSRC_EXIT_RECIPE, "%s", err.msg);
	peer_check_repo(url, status_fd);
	peer_prepare(status_fd);
	peer_fetch(url, ref, status_fd);
	peer_resolve(url, ref, status_fd, commit);
	peer_checkout(commit, status_fd);
	if (send(chan_fd, commit, strlen(commit), MSG_NOSIGNAL) < 0)
		child_die(status_fd, 1, "sending to the server: %s",
			  strerror(errno));
	return 0;
}

/* ---- the manager's side ------------------------------------------------ */

static void
kill_all(struct gitsrc *g)
{
	/* its own session and process group (child_setup): git and what
	 * git started go with it; the leader is not reaped yet, so the
	 * group id cannot be anyone else's */
	if (g->pc.pid > 0 && !g->pc.reaped)
		kill(-g->pc.pid, SIGKILL);
}

static void
finish(struct gitsrc *g)
{
	struct error perr = {0};
	const char *who = g->git->where ? g->git->where : "recipe";
	char buf[COMMIT_MAX + 2];
	ssize_t n;

	loop_unwatch(g->w_pid);
	g->w_pid = NULL;
	loop_timer_cancel(g->t);
	g->t = NULL;
	g->ended = true;
	g->result = -1;
	if (g->timed_out) {
		error_set(&g->err, ETIMEDOUT,
			  "%s: source: fetching %s took "
			  "longer than %.0fs (limits.boot_timeout)",
			  who, g->git->url, g->timeout_ms / 1000.0);
		return;
	}
	if (peer_result(&g->pc, &perr) < 0) {
		g->recipe_fault =
			WIFEXITED(g->pc.wstatus) &&
			WEXITSTATUS(g->pc.wstatus) == GITSRC_EXIT_RECIPE;
		error_set(&g->err, perr.code, "%s: source: %s", who, perr.msg);
		return;
	}
	n = recv(g->pc.fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n <= 0 || !gitsrc_is_commit_id(buf, n)) {
		error_set(&g->err, EPROTO,
			  "%s: source: the fetch of %s sent "
			  "no commit id",
			  who, g->git->url);
		return;
	}
	memcpy(g->commit, buf, n);
	g->commit[n] = '\0';
	g->result = 0;
}

static void
on_child_exit(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct gitsrc *g = opaque;

	(void)l;
	(void)fd;
	(void)events;
	kill_all(g);
	if (peer_reap(&g->pc, false) <= 0)
		return;
	finish(g);
	g->done(g, g->opaque);
}

static void
on_deadline(struct loop *l, void *opaque)
{
	struct gitsrc *g = opaque;

	(void)l;
	g->t = NULL;
	g->timed_out = true;
	/* the pidfd fires once it is gone; on_exit ends it */
	kill_all(g);
}

static int
send_fd(int sock, int fd, struct error *err)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	char byte = 0;
	struct iovec iov = {&byte, 1};
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct cmsghdr *c;

	memset(&u, 0, sizeof(u));
	c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	/* a fresh socket has room for one byte: this does not block */
	if (sendmsg(sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != 1)
		return error_sys(err, errno,
				 "passing a directory to the "
				 "reader");
	return 0;
}

/*
 * In the child, still root: git resolves the real path of its directory,
 * which needs search rights on every directory above it, and the run
 * root is root's, 0700.  So the child gets a mount namespace of its own
 * in which GITSRC_DIR is mounted on the run root and is its working
 * directory: the same path for git, no other build's run directory in
 * sight, and nothing changed for anyone else.  (Not root: tests; the
 * directory as it is.)
 */
static int
git_setup(void *arg)
{
	const struct gitsrc *g = arg;

	if (unshare(CLONE_NEWNS) == 0) {
		if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
		    mount(g->bind_src, g->bind_dst, NULL, MS_BIND, NULL) < 0)
			return errno;
		return chdir(g->bind_dst) < 0 ? errno : 0;
	}
	if (errno != EPERM)
		return errno;
	return chdir(g->bind_src) < 0 ? errno : 0;
}

int
gitsrc_start(struct loop *loop, const struct recipe_git *git, int dir_fd,
	     const char *run_dir, const struct peer_creds *creds,
	     int64_t timeout_ms, gitsrc_done_fn done, void *opaque,
	     struct gitsrc **out, struct error *err)
{
	struct gitsrc *g = xcalloc(1, sizeof(*g));
	const char *args[] = {"git", git->url, git->ref, NULL};
	int r;

	g->loop = loop;
	g->git = git;
	g->dir_fd = dir_fd;
	g->work_fd = -1;
	g->timeout_ms = timeout_ms;
	g->bind_src = xasprintf("%s/%s", run_dir, GITSRC_DIR);
	g->bind_dst = xstrndup(run_dir, strrchr(run_dir, '/') - run_dir);
	if (!*g->bind_dst) {
		free(g->bind_dst);
		g->bind_dst = xstrdup("/");
	}
	g->done = done;
	g->opaque = opaque;
	peer_child_init(&g->pc);
	*out = NULL;
	r = rundir_mkdir(dir_fd, GITSRC_DIR, &g->work_fd, err);
	if (r < 0)
		goto fail;
	g->made = true;
	/* The submitter's git writes there and nowhere else: the run
	 * directory stays root's, and the child reaches this one only
	 * through the fd it is given. */
	if (creds && creds->drop && geteuid() == 0) {
		if (fchown(g->work_fd, creds->uid, creds->gid) < 0) {
			r = error_sys(err, errno, "chown %s", GITSRC_DIR);
			goto fail;
		}
	}
	r = peer_spawn_setup(creds, SOCK_SEQPACKET, args, git_setup, g, &g->pc,
			     err);
	if (r < 0)
		goto fail;
	g->w_pid = loop_watch_fd(loop, g->pc.pidfd, EPOLLIN, on_child_exit, g);
	g->t = loop_timer_at(loop, now_ms() + timeout_ms, on_deadline, g);
	if (!g->w_pid || !g->t) {
		r = error_sys(err, errno ? errno : ENOMEM, "epoll");
		goto fail;
	}
	*out = g;
	return 0;
fail:
	gitsrc_free(g);
	return r;
}

int
gitsrc_result(const struct gitsrc *g, struct error *err, bool *recipe_fault)
{
	*recipe_fault = false;
	if (!g->ended)
		return error_set(err, EINPROGRESS, "source: fetch not done");
	if (g->result == 0)
		return 0;
	*recipe_fault = g->recipe_fault;
	if (err)
		*err = g->err;
	return -1;
}

const char *
gitsrc_commit(const struct gitsrc *g)
{
	return g && g->ended && g->result == 0 ? g->commit : NULL;
}

json_t *
gitsrc_to_json(const struct gitsrc *g)
{
	const char *c = gitsrc_commit(g);

	return json_pack("{s:o, s:o, s:o}", "git",
			 json_string_lossy(g->git->url), "ref",
			 json_string_lossy(g->git->ref), "commit",
			 c ? json_string(c) : json_null());
}

int
gitsrc_send_tree(const struct gitsrc *g, int sock, struct error *err)
{
	_cleanup_close_ int fd = -1;

	if (!gitsrc_commit(g))
		return error_set(err, EINVAL, "source: nothing checked out");
	/* never through a link, whatever the submitter made of it */
	fd = openat(g->work_fd, GITSRC_TREE,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return error_sys(err, errno, "open %s/%s", GITSRC_DIR,
				 GITSRC_TREE);
	return send_fd(sock, fd, err);
}

void
gitsrc_free(struct gitsrc *g)
{
	if (!g)
		return;
	loop_unwatch(g->w_pid);
	loop_timer_cancel(g->t);
	kill_all(g);
	peer_free(&g->pc);
	if (g->work_fd >= 0)
		close(g->work_fd);
	/* by name under the run directory's fd; rm_rf follows no link
	 * the submitter's git could have made */
	if (g->made)
		rm_rf_at(g->dir_fd, GITSRC_DIR);
	free(g->bind_src);
	free(g->bind_dst);
	free(g);
}
