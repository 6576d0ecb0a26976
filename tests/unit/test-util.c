/*
 * test-util.c - term_sanitize (guest text on a terminal) and rm_rf (run as
 * root on trees a guest filled: deep, with links, next to mounts).
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "util.h"

/* ---- term_sanitize --------------------------------------------------- */

static void
expect_sanitized(const char *in, size_t n, const char *want)
{
	struct buf b = { 0 };

	term_sanitize(in, n, &b);
	cr_assert_not_null(b.data);
	cr_assert_eq(b.len, strlen(want));
	cr_assert_str_eq(b.data, want);
	buf_free(&b);
}

#define SAN(in, want) expect_sanitized(in, sizeof(in) - 1, want)

Test(term_sanitize, text_passes)
{
	SAN("", "");
	SAN("plain text", "plain text");
	SAN("tab\there", "tab\there");
	SAN("r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
	    "r\xc3\xa9sum\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	/* U+00A0, the first code point after C1 */
	SAN("\xc2\xa0", "\xc2\xa0");
}

Test(term_sanitize, controls_become_visible)
{
	SAN("a\x1b[2Jb", "a?[2Jb");
	SAN("\x1b]0;title\x07", "?]0;title?");
	SAN("cr\rlf\nnul\0end", "cr?lf?nul?end");
	SAN("del\x7f", "del?");
	/* C1 raw (CSI as one byte) and UTF-8 encoded (U+009B, U+0085) */
	SAN("\x9b" "31m", "?31m");
	SAN("\xc2\x9b" "31m", "?31m");
	SAN("\xc2\x80\xc2\x85\xc2\x9f", "???");
}

Test(term_sanitize, invalid_utf8_becomes_visible)
{
	SAN("\xff\xfe", "??");
	SAN("\xc0\xaf", "??");		   /* overlong '/' */
	SAN("\xe0\x80\x9b", "???");	   /* overlong U+001B */
	SAN("\xed\xa0\x80", "???");	   /* surrogate */
	SAN("\xf4\x90\x80\x80", "????");   /* past U+10FFFF */
	SAN("cut \xe2\x82", "cut ??");	   /* truncated at the end */
	SAN("\xe2\x82x", "??x");
}

/* ---- rm_rf ----------------------------------------------------------- */

static char tmp[64];

static void
mktmp(void)
{
	strcpy(tmp, "/tmp/qctl-util-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static void
rmtmp(void)
{
	/* the test may have left mounts: they go with its mount namespace */
	if (tmp[0])
		rm_rf(tmp);
}

TestSuite(rm_rf, .init = mktmp, .fini = rmtmp);

static char *
at(const char *rel)
{
	static char p[4][700];
	static int k;

	k = (k + 1) % 4;
	snprintf(p[k], sizeof(p[k]), "%s/%s", tmp, rel);
	return p[k];
}

static void
touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	cr_assert_geq(fd, 0, "%s", path);
	cr_assert_eq(write(fd, "x", 1), 1);
	close(fd);
}

static int
open_fds(void)
{
	char p[64];
	int n = 0;

	for (int fd = 0; fd < 1024; fd++) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		n += access(p, F_OK) == 0;
	}
	return n;
}

/* 10,000 levels with a file at each, made one fd at a time */
/* (a hang guard: a loaded host's disk is slow) */
Test(rm_rf, deep_tree_with_few_fds, .timeout = 600)
{
	struct rlimit rl = { 16, 16 };
	int fd = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC), before;

	cr_assert_geq(fd, 0);
	for (int i = 0; i < 10000; i++) {
		int nfd;

		cr_assert_eq(mkdirat(fd, "d", 0755), 0, "level %d", i);
		close(openat(fd, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
		nfd = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cr_assert_geq(nfd, 0);
		close(fd);
		fd = nfd;
	}
	close(fd);
	before = open_fds();
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
	cr_assert_eq(rm_rf(at("d")), 0);
	cr_assert_neq(access(at("d"), F_OK), 0, "deep tree left");
	cr_assert_eq(open_fds(), before, "rm_rf leaked fds");
}

/* many names in one directory, and many directories in one */
Test(rm_rf, wide_tree)
{
	char p[64];

	cr_assert_eq(mkdir(at("w"), 0755), 0);
	for (int i = 0; i < 2000; i++) {
		snprintf(p, sizeof(p), "w/f%d", i);
		touch(at(p));
		snprintf(p, sizeof(p), "w/d%d", i);
		cr_assert_eq(mkdir(at(p), 0755), 0);
		snprintf(p, sizeof(p), "w/d%d/x", i);
		touch(at(p));
	}
	cr_assert_eq(rm_rf(at("w")), 0);
	cr_assert_neq(access(at("w"), F_OK), 0);
}

Test(rm_rf, never_follows_links)
{
	cr_assert_eq(mkdir(at("outside"), 0755), 0);
	touch(at("outside/precious"));
	cr_assert_eq(mkdir(at("t"), 0755), 0);
	cr_assert_eq(mkdir(at("t/sub"), 0755), 0);
	cr_assert_eq(symlink(at("outside"), at("t/dirlink")), 0);
	cr_assert_eq(symlink(at("outside/precious"), at("t/sub/filelink")),
		     0);
	cr_assert_eq(rm_rf(at("t")), 0);
	cr_assert_neq(access(at("t"), F_OK), 0);
	cr_assert_eq(access(at("outside/precious"), F_OK), 0);
	/* a link given as the top is removed itself, not its target */
	cr_assert_eq(symlink(at("outside"), at("top")), 0);
	cr_assert_eq(rm_rf(at("top")), 0);
	cr_assert_eq(access(at("outside/precious"), F_OK), 0);
	/* and what does not exist is already removed */
	cr_assert_eq(rm_rf(at("nothing")), 0);
}

/* Mounts inside the tree (another fs, and a bind mount of the same fs)
 * are not entered: their files stay, the error says why. */
Test(rm_rf, never_crosses_mounts)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0)
		cr_skip_test("needs root for a mount namespace");
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mkdir(at("outside"), 0755), 0);
	touch(at("outside/precious"));
	cr_assert_eq(mkdir(at("t"), 0755), 0);
	cr_assert_eq(mkdir(at("t/tmpfs"), 0755), 0);
	cr_assert_eq(mkdir(at("t/a"), 0755), 0);
	cr_assert_eq(mkdir(at("t/a/bind"), 0755), 0);
	touch(at("t/a/mine"));
	cr_assert_eq(mount("qctl-test", at("t/tmpfs"), "tmpfs", 0, "size=1M"),
		     0);
	touch(at("t/tmpfs/other-fs"));
	cr_assert_eq(mount(at("outside"), at("t/a/bind"), NULL, MS_BIND, NULL),
		     0);
	cr_assert_eq(rm_rf(at("t")), -EXDEV);
	cr_assert_eq(access(at("t/tmpfs/other-fs"), F_OK), 0);
	cr_assert_eq(access(at("outside/precious"), F_OK), 0);
	cr_assert_neq(access(at("t/a/mine"), F_OK), 0, "own files removed");
	cr_assert_eq(umount(at("t/tmpfs")), 0);
	cr_assert_eq(umount(at("t/a/bind")), 0);
	cr_assert_eq(rm_rf(at("t")), 0);
}

/* ---- helper_path ------------------------------------------------------ */

/* The directory of this test binary, where "beside qctl" looks. */
static char *
self_dir(void)
{
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	cr_assert(n > 0);
	exe[n] = '\0';
	*strrchr(exe, '/') = '\0';
	return xstrdup(exe);
}

Test(helper_path, environment_wins)
{
	_cleanup_free_ char *p = NULL;

	setenv("QCTL_TEST_HELPER", "/somewhere/else", 1);
	p = helper_path("QCTL_TEST_HELPER", "test-util");
	cr_assert_str_eq(p, "/somewhere/else");
	unsetenv("QCTL_TEST_HELPER");
}

Test(helper_path, beside_the_binary_first)
{
	_cleanup_free_ char *dir = self_dir(), *p = NULL, *want = NULL;

	/* this very binary is beside itself; an empty variable is unset */
	setenv("QCTL_TEST_HELPER", "", 1);
	p = helper_path("QCTL_TEST_HELPER", "test-util");
	want = xasprintf("%s/test-util", dir);
	cr_assert_str_eq(p, want);
	unsetenv("QCTL_TEST_HELPER");
}

Test(helper_path, missing_everywhere_names_the_one_beside)
{
	_cleanup_free_ char *dir = self_dir(), *p = NULL, *want = NULL;

	/* neither beside us nor in QCTL_LIBEXECDIR: the message names the
	 * build tree's path, which is what a developer looks for */
	p = helper_path(NULL, "qctl-no-such-helper");
	want = xasprintf("%s/qctl-no-such-helper", dir);
	cr_assert_str_eq(p, want);
}
