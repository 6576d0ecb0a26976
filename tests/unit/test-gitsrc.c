/* test-gitsrc.c - git sources: the pure parts (the fetch itself is
 * tests/integration/t-git-source.sh) */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>

#include "gitsrc.h"

Test(gitsrc, commit_ids)
{
	const char *sha1 = "0123456789abcdef0123456789abcdef01234567";
	char sha256[65];

	cr_assert(gitsrc_is_commit_id(sha1, 40));
	cr_assert_not(gitsrc_is_commit_id(sha1, 39));
	cr_assert_not(gitsrc_is_commit_id(
		"0123456789ABCDEF0123456789abcdef01234567", 40));
	cr_assert_not(gitsrc_is_commit_id(
		"0123456789abcdef0123456789abcdef0123456g", 40));
	memset(sha256, 'f', 64);
	sha256[64] = '\0';
	cr_assert(gitsrc_is_commit_id(sha256, 64));
	cr_assert_not(gitsrc_is_commit_id("", 0));
}

static void
check_cands(const char *ref, const char *const *want)
{
	char **v = gitsrc_candidates(ref);
	size_t i;

	for (i = 0; want[i]; i++) {
		cr_assert_not_null(v[i], "%s: candidate %zu missing", ref, i);
		cr_assert_str_eq(v[i], want[i]);
	}
	cr_assert_null(v[i], "%s: extra candidate %s", ref, v[i]);
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

Test(gitsrc, candidates)
{
	check_cands("HEAD", (const char *const[]){"refs/qctl/HEAD", NULL});
	/* git's order: a tag before a branch */
	check_cands("main",
		    (const char *const[]){"refs/qctl/tags/main",
					  "refs/qctl/heads/main", NULL});
	check_cands("refs/heads/a/b",
		    (const char *const[]){"refs/qctl/heads/a/b", NULL});
	check_cands("refs/tags/v1",
		    (const char *const[]){"refs/qctl/tags/v1", NULL});
	/* other refs are not fetched */
	check_cands("refs/pull/1/head", (const char *const[]){NULL});
	check_cands("0123456789abcdef0123456789abcdef01234567",
		    (const char *const[]){
			    "0123456789abcdef0123456789abcdef01234567", NULL});
}

static void
check_sanitize(const char *in, size_t cap, const char *want)
{
	char out[512];

	cr_assert_leq(cap, sizeof(out));
	memset(out, 'X', sizeof(out));
	gitsrc_sanitize(in, strlen(in), out, cap);
	cr_assert_str_eq(out, want);
	cr_assert_lt(strlen(out), cap);
}

Test(gitsrc, sanitize)
{
	check_sanitize("fatal: '/x' does not appear to be a git repository\n"
		       "fatal: Could not read from remote repository.\n\n"
		       "Please make sure you have the correct access rights\n"
		       "and the repository exists.\n",
		       512,
		       "fatal: '/x' does not appear to be a git repository; "
		       "fatal: Could not read from remote repository.; Please "
		       "make sure you have the correct access rights; and the "
		       "repository exists.");
	/* advice lines go; controls become spaces, runs one */
	check_sanitize("error: x\nhint: do this\nhint: and that\n", 512,
		       "error: x");
	check_sanitize("a\x1b[31mred\x07\r\n\tb  c\x7f\xc3\xa9", 512,
		       "a [31mred; b c");
	check_sanitize("", 512, "");
	check_sanitize("\n\n\n", 512, "");
	/* cut, with "..." */
	check_sanitize("0123456789abcdef", 10, "012345...");
	check_sanitize("0123456789", 11, "0123456789");
	check_sanitize("abc", 1, "");
	/* found by fuzz-gitsrc: a cut right after a space left it last */
	check_sanitize("\xff~\xfd\x0ffi", 3, "~");
	check_sanitize("abc def ghi", 8, "abc...");
}

/* ---- the fetch itself: `qctl __peer git` (QCTL_PEER_EXE) on a local
 * repository, driven by a loop; no VM ---- */

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loop.h"
#include "rundir.h"

static char tmp[64];
static char c1[41], c2[41];

static void
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert_eq(system(cmd), 0, "%s", cmd);
}

static void
read_line(const char *path, char *out, size_t n)
{
	FILE *f = fopen(path, "r");

	cr_assert_not_null(f, "%s", path);
	cr_assert_not_null(fgets(out, n, f));
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* $tmp/repo: two commits of f.txt ("one", "two"), tag v1 on the first;
 * $tmp/root/run: a run directory (a repository under the run root
 * would be out of the fetch's sight: its namespace mounts the checkout
 * there). */
static void
setup_repo(void)
{
	char p[128];

	strcpy(tmp, "/tmp/test-gitsrc.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	sh("cd %s && G='git -c user.name=t -c user.email=t@invalid -c "
	   "init.defaultBranch=main' && $G init -q repo && cd repo && "
	   "echo one >f.txt && $G add f.txt && $G commit -q -m 1 && "
	   "$G rev-parse HEAD >../c1 && $G tag v1 && echo two >f.txt && "
	   "$G commit -q -a -m 2 && $G rev-parse HEAD >../c2 && "
	   "mkdir -p ../root/run",
	   tmp);
	snprintf(p, sizeof(p), "%s/c1", tmp);
	read_line(p, c1, sizeof(c1));
	snprintf(p, sizeof(p), "%s/c2", tmp);
	read_line(p, c2, sizeof(c2));
}

static void
teardown_repo(void)
{
	rm_rf(tmp);
}

struct fetch {
	struct loop *loop;
	struct gitsrc *g;
	bool done;
	int rc;
	bool recipe_fault;
	struct error err;
	char tree_file[64];
};

static void
on_done(struct gitsrc *g, void *opaque)
{
	struct fetch *f = opaque;
	int fd;

	f->done = true;
	f->rc = gitsrc_result(g, &f->err, &f->recipe_fault);
	/* the checkout, read through the fd the packer would get */
	if (f->rc == 0) {
		int sv[2];
		char byte;
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = {&byte, 1};
		struct msghdr mh = {.msg_iov = &iov,
				    .msg_iovlen = 1,
				    .msg_control = u.buf,
				    .msg_controllen = sizeof(u.buf)};
		ssize_t n;

		cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		cr_assert_eq(gitsrc_send_tree(g, sv[0], &f->err), 0, "%s",
			     f->err.msg);
		cr_assert_eq(recvmsg(sv[1], &mh, 0), 1);
		memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof(int));
		{
			int ffd = openat(fd, "f.txt", O_RDONLY);

			cr_assert_geq(ffd, 0);
			n = read(ffd, f->tree_file, sizeof(f->tree_file) - 1);
			cr_assert_gt(n, 0);
			f->tree_file[n] = '\0';
			close(ffd);
		}
		/* no .git in the tree */
		cr_assert_lt(faccessat(fd, ".git", F_OK, AT_SYMLINK_NOFOLLOW),
			     0);
		close(fd);
		close(sv[0]);
		close(sv[1]);
	}
	loop_quit(f->loop, 0);
}

static void
fetch(const char *url, const char *ref, int64_t timeout_ms, struct fetch *f)
{
	struct recipe_git git = {(char *)url, (char *)ref, (char *)"t.yaml:3"};
	char run[128];
	int dfd;

	memset(f, 0, sizeof(*f));
	snprintf(run, sizeof(run), "%s/root/run", tmp);
	dfd = open(run, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(dfd, 0);
	f->loop = loop_new();
	cr_assert_eq(gitsrc_start(f->loop, &git, dfd, run, NULL, timeout_ms,
				  on_done, f, &f->g, &f->err),
		     0, "%s", f->err.msg);
	/* the work directory exists while it runs */
	cr_assert_eq(faccessat(dfd, GITSRC_DIR, F_OK, 0), 0);
	loop_run(f->loop);
	cr_assert(f->done);
	gitsrc_free(f->g);
	/* and is gone after, whatever the end */
	cr_assert_lt(faccessat(dfd, GITSRC_DIR, F_OK, 0), 0,
		     "checkout left behind");
	loop_free(f->loop);
	close(dfd);
}

Test(gitsrc_fetch, refs, .init = setup_repo, .fini = teardown_repo,
     .timeout = 120)
{
	char url[128];
	struct fetch f;

	snprintf(url, sizeof(url), "%s/repo", tmp);
	fetch(url, c1, 60000, &f);
	cr_assert_eq(f.rc, 0, "%s", f.err.msg);
	cr_assert_str_eq(f.tree_file, "one\n");
	fetch(url, "main", 60000, &f);
	cr_assert_eq(f.rc, 0, "%s", f.err.msg);
	cr_assert_str_eq(f.tree_file, "two\n");
	fetch(url, "v1", 60000, &f);
	cr_assert_eq(f.rc, 0, "%s", f.err.msg);
	cr_assert_str_eq(f.tree_file, "one\n");
	snprintf(url, sizeof(url), "file://%s/repo", tmp);
	fetch(url, "HEAD", 60000, &f);
	cr_assert_eq(f.rc, 0, "%s", f.err.msg);
	cr_assert_str_eq(f.tree_file, "two\n");
}

Test(gitsrc_fetch, errors, .init = setup_repo, .fini = teardown_repo,
     .timeout = 120)
{
	char url[128];
	struct fetch f;

	snprintf(url, sizeof(url), "%s/repo", tmp);
	fetch(url, "nope", 60000, &f);
	cr_assert_lt(f.rc, 0);
	cr_assert(f.recipe_fault);
	cr_assert(strstr(f.err.msg, "t.yaml:3: source: ref \"nope\" is not "
				    "a branch, tag or commit of"),
		  "%s", f.err.msg);
	/* a commit id that is in no branch or tag */
	fetch(url, "0123456789abcdef0123456789abcdef01234567", 60000, &f);
	cr_assert(f.recipe_fault && strstr(f.err.msg, "reachable"), "%s",
		  f.err.msg);
	/* a tag and a branch of one name, on different commits */
	sh("cd %s/repo && git tag main %s", tmp, c1);
	fetch(url, "main", 60000, &f);
	cr_assert(f.recipe_fault && strstr(f.err.msg, "both a tag and a "
						      "branch"),
		  "%s", f.err.msg);
	fetch(url, "refs/heads/main", 60000, &f);
	cr_assert_eq(f.rc, 0, "%s", f.err.msg);
	cr_assert_str_eq(f.tree_file, "two\n");
	snprintf(url, sizeof(url), "%s/none", tmp);
	fetch(url, "main", 60000, &f);
	cr_assert(f.recipe_fault && strstr(f.err.msg, "cannot read "
						      "repository"),
		  "%s", f.err.msg);
	/* a directory that is no repository: git's own words, one line */
	sh("mkdir %s/plain", tmp);
	snprintf(url, sizeof(url), "%s/plain", tmp);
	fetch(url, "main", 60000, &f);
	cr_assert(f.recipe_fault && strstr(f.err.msg, "cannot fetch from") &&
			  !strchr(f.err.msg, '\n'),
		  "%s", f.err.msg);
}

Test(gitsrc_fetch, deadline, .init = setup_repo, .fini = teardown_repo,
     .timeout = 60)
{
	char url[128];
	struct fetch f;
	int64_t t0;

	/* reading its refs blocks for ever */
	sh("cd %s && git clone -q --bare repo slow && cd slow && "
	   "git pack-refs --all && rm -f packed-refs && mkfifo packed-refs",
	   tmp);
	snprintf(url, sizeof(url), "%s/slow", tmp);
	t0 = now_ms();
	fetch(url, "main", 1000, &f);
	cr_assert_lt(f.rc, 0);
	cr_assert_not(f.recipe_fault);
	cr_assert(strstr(f.err.msg, "took longer than 1s"), "%s", f.err.msg);
	cr_assert_lt(now_ms() - t0, 10000);
}
