/* test-rundir.c - root's directories checked, files created under an fd */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "rundir.h"

/* Somebody else: the tests chown to this uid (they run as root). */
#define OTHER_UID 65534

static char *base;

static void
setup(void)
{
	char tmpl[] = "/tmp/qctl-test-rundir-XXXXXX";

	cr_assert_not_null(mkdtemp(tmpl));
	base = strdup(tmpl);
}

static void
teardown(void)
{
	rm_rf(base);
	free(base);
}

TestSuite(rundir, .init = setup, .fini = teardown);

static char *
at(const char *rel)
{
	return xasprintf("%s/%s", base, rel);
}

static void
mkdir_mode(const char *rel, mode_t mode)
{
	_cleanup_free_ char *p = at(rel);

	cr_assert_eq(mkdir(p, 0700), 0, "mkdir %s: %s", p, strerror(errno));
	cr_assert_eq(chmod(p, mode), 0);
}

static bool
empty_dir(const char *rel)
{
	_cleanup_free_ char *p = at(rel);
	_cleanup_free_ char *cmd = xasprintf("[ -z \"$(ls -A '%s')\" ]", p);

	return system(cmd) == 0;
}

/* The check of rel (under base); fd closed, canon returned (or NULL). */
static int
check(const char *rel, unsigned flags, char **canon, struct error *err)
{
	_cleanup_free_ char *p = at(rel);
	int fd = -1, r;

	r = rundir_root_check(p, "run root", flags, &fd, canon, err);
	if (r == 0) {
		cr_assert_geq(fd, 0);
		close(fd);
	} else {
		cr_assert_eq(fd, -1);
	}
	return r;
}

Test(rundir, creates_missing_parts)
{
	_cleanup_free_ char *canon = NULL, *want = at("a/b/runs");
	_cleanup_free_ char *pa = at("a"), *pr = at("a/b/runs");
	struct error err = { 0 };
	struct stat st;

	cr_assert_eq(check("a/b/runs", RUNDIR_CREATE, &canon, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(canon, want);
	cr_assert_eq(stat(pr, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0700, "the run root is root's alone");
	cr_assert_eq(stat(pa, &st), 0);
	cr_assert_eq(st.st_mode & 022, 0, "no parent writable by others");
	/* and as it is now, it passes without creating */
	cr_assert_eq(check("a/b/runs", 0, NULL, &err), 0, "%s", err.msg);
	/* "." and repeated slashes are not part of the canonical path */
	free(canon);
	canon = NULL;
	cr_assert_eq(check("./a//b/./runs/", 0, &canon, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(canon, want);
}

Test(rundir, missing_without_create)
{
	struct error err = { 0 };

	cr_assert_eq(check("nothere", 0, NULL, &err), -ENOENT);
	cr_assert(strstr(err.msg, "nothere"), "%s", err.msg);
}

Test(rundir, symlink_root_refused)
{
	_cleanup_free_ char *real = at("real"), *link = at("link");
	struct error err = { 0 };

	mkdir_mode("real", 0700);
	cr_assert_eq(symlink(real, link), 0);
	cr_assert_eq(check("link", RUNDIR_CREATE, NULL, &err), -ELOOP);
	cr_assert(strstr(err.msg, link) && strstr(err.msg, "symlink"), "%s",
		  err.msg);
	cr_assert(empty_dir("real"));
	/* a dangling one is not followed to create its target either */
	cr_assert_eq(rmdir(real), 0);
	cr_assert_eq(check("link", RUNDIR_CREATE, NULL, &err), -ELOOP);
	cr_assert_eq(access(real, F_OK), -1, "target created through a link");
}

Test(rundir, world_writable_root_refused)
{
	_cleanup_free_ char *p = at("runs");
	struct error err = { 0 };

	mkdir_mode("runs", 0777);
	cr_assert_eq(check("runs", RUNDIR_CREATE, NULL, &err), -EPERM);
	cr_assert(strstr(err.msg, p) && strstr(err.msg, "writable") &&
			  strstr(err.msg, "0777"),
		  "%s", err.msg);
	/* writable by group only: the same */
	cr_assert_eq(chmod(p, 0770), 0);
	cr_assert_eq(check("runs", 0, NULL, &err), -EPERM);
	/* sticky does not make the run root itself acceptable */
	cr_assert_eq(chmod(p, 01777), 0);
	cr_assert_eq(check("runs", 0, NULL, &err), -EPERM);
	/* readable is fine (0755 from mkdir -p) */
	cr_assert_eq(chmod(p, 0755), 0);
	cr_assert_eq(check("runs", 0, NULL, &err), 0, "%s", err.msg);
}

Test(rundir, root_of_another_uid_refused)
{
	_cleanup_free_ char *p = at("runs");
	struct error err = { 0 };

	mkdir_mode("runs", 0700);
	cr_assert_eq(chown(p, OTHER_UID, OTHER_UID), 0);
	cr_assert_eq(check("runs", RUNDIR_CREATE, NULL, &err), -EPERM);
	cr_assert(strstr(err.msg, p) && strstr(err.msg, "uid 65534"), "%s",
		  err.msg);
	cr_assert(empty_dir("runs"));
}

Test(rundir, unsafe_ancestor_refused_before_creating)
{
	_cleanup_free_ char *runs = at("open/runs"), *open = at("open");
	struct error err = { 0 };

	/* world-writable, not sticky: anyone could rename "runs" away */
	mkdir_mode("open", 0777);
	cr_assert_eq(check("open/runs", RUNDIR_CREATE, NULL, &err), -EPERM);
	cr_assert(strstr(err.msg, open) && strstr(err.msg, "not sticky"),
		  "%s", err.msg);
	cr_assert_eq(access(runs, F_OK), -1, "created under a bad parent");
	/* an ancestor of another owner */
	cr_assert_eq(chmod(open, 0755), 0);
	cr_assert_eq(chown(open, OTHER_UID, OTHER_UID), 0);
	cr_assert_eq(check("open/runs", RUNDIR_CREATE, NULL, &err), -EPERM);
	cr_assert(strstr(err.msg, "uid 65534"), "%s", err.msg);
	cr_assert_eq(access(runs, F_OK), -1, "created under a bad parent");
}

Test(rundir, sticky_ancestor_accepted)
{
	_cleanup_free_ char *runs = at("tmp/runs");
	struct error err = { 0 };
	struct stat st;

	/* like /tmp, where the test suite makes its run roots */
	mkdir_mode("tmp", 01777);
	cr_assert_eq(check("tmp/runs", RUNDIR_CREATE, NULL, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(stat(runs, &st), 0);
	/* but what another user made there first is theirs */
	cr_assert_eq(chown(runs, OTHER_UID, OTHER_UID), 0);
	cr_assert_eq(check("tmp/runs", RUNDIR_CREATE, NULL, &err), -EPERM);
}

Test(rundir, symlinked_ancestor)
{
	_cleanup_free_ char *canon = NULL, *link = at("link");
	_cleanup_free_ char *real = at("real"), *want = at("real/runs");
	struct error err = { 0 };

	mkdir_mode("real", 0755);
	cr_assert_eq(symlink("real", link), 0);
	/* root's own link in a safe directory: followed, and the canonical
	 * path is the physical one */
	cr_assert_eq(check("link/runs", RUNDIR_CREATE, &canon, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(canon, want);
	/* a link of another user (its owner could replace it in a sticky
	 * directory): refused */
	cr_assert_eq(lchown(link, OTHER_UID, OTHER_UID), 0);
	cr_assert_eq(check("link/runs", 0, NULL, &err), -EPERM);
	cr_assert(strstr(err.msg, link) && strstr(err.msg, "symlink"), "%s",
		  err.msg);
	/* root's link into an unsafe directory: the target is walked and
	 * checked like any other path */
	cr_assert_eq(unlink(link), 0);
	mkdir_mode("open", 0777);
	cr_assert_eq(symlink("open", link), 0);
	cr_assert_eq(check("link/runs", RUNDIR_CREATE, NULL, &err), -EPERM);
	cr_assert(strstr(err.msg, "not sticky"), "%s", err.msg);
	cr_assert(empty_dir("open"));
}

Test(rundir, dotdot_walked_physically)
{
	_cleanup_free_ char *canon = NULL, *want = at("runs");
	struct error err = { 0 };

	mkdir_mode("a", 0755);
	mkdir_mode("runs", 0700);
	cr_assert_eq(check("a/../runs", 0, &canon, &err), 0, "%s", err.msg);
	cr_assert_str_eq(canon, want);
	/* .. through an unsafe directory is still refused */
	mkdir_mode("open", 0777);
	cr_assert_eq(check("open/../runs", 0, NULL, &err), -EPERM);
}

Test(rundir, names)
{
	cr_assert(rundir_name_ok("run-AbC123"));
	cr_assert(!rundir_name_ok("run-AbC12"));
	cr_assert(!rundir_name_ok("run-AbC1234"));
	cr_assert(!rundir_name_ok("run-../../"));
	cr_assert(!rundir_name_ok("run-a/b.cd"));
	cr_assert(!rundir_name_ok("xun-AbC123"));
	cr_assert(!rundir_name_ok(""));
}

Test(rundir, direct_child_only)
{
	const char *name = NULL;

	cr_assert_eq(rundir_child_name("/r", "/r/run-AbC123", &name, NULL), 0);
	cr_assert_str_eq(name, "run-AbC123");
	cr_assert_eq(rundir_child_name("/", "/run-AbC123", &name, NULL), 0);
	/* the gc bug: "/run-" anywhere in the path was enough */
	cr_assert_lt(rundir_child_name("/r", "/r/run-x/../../../etc", &name,
				       NULL),
		     0);
	cr_assert_lt(rundir_child_name("/r", "/r/run-AbC123/../run-XyZ789",
				       &name, NULL),
		     0);
	cr_assert_lt(rundir_child_name("/r", "/r/../run-AbC123", &name, NULL),
		     0);
	cr_assert_lt(rundir_child_name("/r", "/rr/run-AbC123", &name, NULL), 0);
	cr_assert_lt(rundir_child_name("/r", "/r//run-AbC123", &name, NULL), 0);
	cr_assert_lt(rundir_child_name("/r", "/r/x/run-AbC123", &name, NULL),
		     0);
	cr_assert_lt(rundir_child_name("/r", "/etc/run-AbC123", &name, NULL),
		     0);
	cr_assert_lt(rundir_child_name("/r", "/r", &name, NULL), 0);
}

Test(rundir, create_and_files)
{
	_cleanup_free_ char *canon = NULL, *name = NULL, *victim = at("victim");
	_cleanup_close_ int root = -1, dir = -1, fd = -1, fd2 = -1;
	struct error err = { 0 };
	struct stat st;

	cr_assert_eq(rundir_root_check(base, "run root", 0, &root, &canon,
				       &err),
		     0, "%s", err.msg);
	cr_assert_eq(rundir_create(root, &name, &dir, &err), 0, "%s", err.msg);
	cr_assert(rundir_name_ok(name), "%s", name);
	cr_assert_eq(fstat(dir, &st), 0);
	cr_assert(S_ISDIR(st.st_mode));
	cr_assert_eq(st.st_mode & 07777, 0700);

	cr_assert_eq(rundir_open_file(dir, "build.log", O_WRONLY, &fd, &err), 0,
		     "%s", err.msg);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
	cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	/* never an existing file: not even our own */
	cr_assert_eq(rundir_open_file(dir, "build.log", O_WRONLY, &fd2, &err),
		     -EEXIST);
	cr_assert_eq(fd2, -1);
	/* never through a symlink: qemu.log -> victim stays untouched */
	cr_assert_eq(close(open(victim, O_WRONLY | O_CREAT, 0644)), 0);
	cr_assert_eq(symlinkat(victim, dir, "qemu.log"), 0);
	cr_assert_eq(rundir_open_file(dir, "qemu.log", O_WRONLY | O_APPEND,
				      &fd2, &err),
		     -EEXIST);
	cr_assert_eq(stat(victim, &st), 0);
	cr_assert_eq(st.st_size, 0);
	/* nor a dangling one, which O_CREAT alone would create */
	cr_assert_eq(symlinkat("dangling-target", dir, "disk.img"), 0);
	cr_assert_eq(rundir_open_file(dir, "disk.img", O_RDWR, &fd2, &err),
		     -EEXIST);
	cr_assert_eq(faccessat(dir, "dangling-target", F_OK, 0), -1);

	/* directories: artifacts -> /etc is not made nor followed */
	cr_assert_eq(symlinkat(base, dir, "artifacts"), 0);
	cr_assert_eq(rundir_mkdir(dir, "artifacts", &fd2, &err), -EEXIST);
	cr_assert_eq(rundir_mkdir(dir, "out", &fd2, &err), 0, "%s", err.msg);
	close(fd2);
	cr_assert_eq(rundir_mkdir(dir, "out", &fd2, &err), -EEXIST);

	/* reopened by path: only as it was made */
	{
		_cleanup_free_ char *p = xasprintf("%s/%s", canon, name);
		_cleanup_free_ char *l = at("rundir-link");
		_cleanup_close_ int d2 = -1;

		cr_assert_eq(rundir_open_dir(p, &d2, &err), 0, "%s", err.msg);
		cr_assert_eq(symlink(p, l), 0);
		cr_assert_lt(rundir_open_dir(l, &d2, &err), 0);
		cr_assert_eq(chmod(p, 0777), 0);
		cr_assert_lt(rundir_open_dir(p, &d2, &err), 0);
		cr_assert_eq(chmod(p, 0700), 0);
	}

	/* removal: a run directory of ours, by name, nothing else */
	cr_assert_eq(write(fd, "x", 1), 1);
	cr_assert_lt(rundir_remove(root, "victim", &err), 0);
	cr_assert_eq(access(victim, F_OK), 0);
	cr_assert_eq(symlinkat(base, root, "run-LinkMe"), 0);
	cr_assert_lt(rundir_remove(root, "run-LinkMe", &err), 0);
	cr_assert_eq(access(victim, F_OK), 0, "removed through a symlink");
	cr_assert_eq(rundir_remove(root, "run-NoSuch", &err), 0);
	cr_assert_eq(rundir_remove(root, name, &err), 0, "%s", err.msg);
	cr_assert_eq(faccessat(root, name, F_OK, AT_SYMLINK_NOFOLLOW), -1);
	cr_assert_eq(access(victim, F_OK), 0);
}

Test(rundir, remove_refuses_other_owner)
{
	_cleanup_close_ int root = -1;
	_cleanup_free_ char *p = at("run-Theirs");
	struct error err = { 0 };

	cr_assert_eq(rundir_root_check(base, "run root", 0, &root, NULL, &err),
		     0, "%s", err.msg);
	mkdir_mode("run-Theirs", 0700);
	cr_assert_eq(chown(p, OTHER_UID, OTHER_UID), 0);
	cr_assert_lt(rundir_remove(root, "run-Theirs", &err), 0);
	cr_assert_eq(access(p, F_OK), 0);
}
