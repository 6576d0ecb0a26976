/*
 * test-uidpool.c - QEMU's uid range and the allocator of uids from it.
 *
 * The allocator must never hand one uid to two live VMs, also across
 * processes; a dead holder's uid must come free again, but not while
 * something still runs as it.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "uidpool.h"

static char tmp[64];

static void
mk_tmp(void)
{
	strcpy(tmp, "/tmp/test-uidpool.XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
}

static void
rm_tmp(void)
{
	rm_rf(tmp);
}

static void
write_to(const char *dir, const char *name, const char *text)
{
	char *p = xasprintf("%s/%s", dir, name);
	FILE *f = fopen(p, "w");

	cr_assert_not_null(f, "%s", p);
	fputs(text, f);
	fclose(f);
	free(p);
}

static bool
exists(const char *dir, uid_t uid)
{
	char *p = xasprintf("%s/uid-%u.lock", dir, (unsigned)uid);
	bool r = access(p, F_OK) == 0;

	free(p);
	return r;
}

Test(uidpool, parse_good)
{
	struct uid_range r;
	struct error err = {0};

	cr_assert_eq(uidpool_parse_range("100000:10", &r, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(r.first, 100000);
	cr_assert_eq(r.count, 10);
	cr_assert_eq(uidpool_parse_range("2147483646:1", &r, &err), 0);
	cr_assert_eq(uidpool_parse_range("1:65533", &r, &err), 0);
	cr_assert_eq(r.first + r.count - 1, 65533);
	cr_assert_eq(uidpool_parse_range("65536:1", &r, &err), 0);
}

Test(uidpool, parse_bad)
{
	static const char *const bad[] = {
		"",
		"1",
		"1:",
		":5",
		"0:5",
		"5:0",
		"-1:5",
		"1 :5",
		"1: 5",
		"+1:5",
		"12:34:56",
		"0x10:5",
		"65530:10", /* holds nobody's 65534 */
		"65535:1",
		"2147483646:2",
		"2147483647:1",
		"4294967295:1",
		"18446744073709551616:1",
	};
	struct uid_range r;
	struct error err = {0};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_expect_eq(uidpool_parse_range(bad[i], &r, &err), -EINVAL,
			     "\"%s\" accepted", bad[i]);
	cr_assert_eq(uidpool_parse_range(NULL, &r, &err), -EINVAL);
}

Test(uidpool, subid_overlap)
{
	const char *subuid = "# comment\nalice:100000:65536\n"
			     "bob:165536:65536\njunk line\nx:1:\n";
	struct uid_range r;
	struct error err = {0};

	r = (struct uid_range){231072, 10};
	cr_assert_eq(uidpool_subid_overlap(subuid, &r, &err), 0);
	r = (struct uid_range){99990, 10}; /* ends at 99999 */
	cr_assert_eq(uidpool_subid_overlap(subuid, &r, &err), 0);
	r = (struct uid_range){99990, 11}; /* touches alice's first */
	cr_assert_eq(uidpool_subid_overlap(subuid, &r, &err), 1);
	cr_assert(strstr(err.msg, "alice"), "%s", err.msg);
	r = (struct uid_range){231071, 1}; /* bob's last */
	cr_assert_eq(uidpool_subid_overlap(subuid, &r, &err), 1);
	r = (struct uid_range){1, 2000000}; /* covers both */
	cr_assert_eq(uidpool_subid_overlap(subuid, &r, &err), 1);
	cr_assert_eq(uidpool_subid_overlap("", &r, &err), 0);
}

Test(uidpool, default_range_clear_of_shadow_defaults)
{
	/* useradd's defaults: SUB_UID_MIN 100000, SUB_UID_MAX 600100000,
	 * and systemd-nspawn's containers up to 1879048191 */
	struct uid_range r = {UID_RANGE_DEFAULT_FIRST, UID_RANGE_DEFAULT_COUNT};
	struct error err = {0};

	cr_assert_eq(uidpool_subid_overlap("u:100000:600000000\n", &r, &err),
		     0);
	cr_assert_gt(r.first, 1879048191u);
	cr_assert_leq((uint64_t)r.first + r.count - 1, UID_RANGE_MAX);
	cr_assert_eq(uidpool_parse_range("1879048192:65536", &r, &err), 0);
}

Test(uidpool, range_pick, .init = mk_tmp, .fini = rm_tmp)
{
	struct uid_range r;
	struct error err = {0};

	unsetenv("QCTL_UID_RANGE");
	/* no subuid/subgid files: the default */
	cr_assert_eq(uidpool_range_pick(NULL, tmp, &r, &err), 0, "%s", err.msg);
	cr_assert_eq(r.first, UID_RANGE_DEFAULT_FIRST);
	cr_assert_eq(r.count, UID_RANGE_DEFAULT_COUNT);
	/* the environment, then the option over it */
	setenv("QCTL_UID_RANGE", "200000:5", 1);
	cr_assert_eq(uidpool_range_pick(NULL, tmp, &r, &err), 0);
	cr_assert_eq(r.first, 200000);
	cr_assert_eq(uidpool_range_pick("300000:7", tmp, &r, &err), 0);
	cr_assert_eq(r.first, 300000);
	cr_assert_eq(r.count, 7);
	cr_assert_lt(uidpool_range_pick("300000", tmp, &r, &err), 0);
	cr_assert(strstr(err.msg, "--uid-range"), "%s", err.msg);
	setenv("QCTL_UID_RANGE", "bad", 1);
	cr_assert_lt(uidpool_range_pick(NULL, tmp, &r, &err), 0);
	cr_assert(strstr(err.msg, "QCTL_UID_RANGE"), "%s", err.msg);
	unsetenv("QCTL_UID_RANGE");
	/* a range some user's containers use is refused, from either file */
	write_to(tmp, "subgid", "carol:300000:65536\n");
	cr_assert_eq(uidpool_range_pick("300005:1", tmp, &r, &err), -EINVAL);
	cr_assert(strstr(err.msg, "subgid"), "%s", err.msg);
	cr_assert_eq(uidpool_range_pick("400000:1", tmp, &r, &err), 0);
	write_to(tmp, "subuid", "carol:400000:65536\n");
	cr_assert_eq(uidpool_range_pick("400000:1", tmp, &r, &err), -EINVAL);
	cr_assert(strstr(err.msg, "subuid"), "%s", err.msg);
}

Test(uidpool, status_uses)
{
	const char *live = "Name:\tqemu\nState:\tS (sleeping)\nTgid:\t7\n"
			   "Uid:\t1879048193\t1879048193\t1879048193\t"
			   "1879048193\nGid:\t5\t5\t5\t5\n";
	const char *saved = "Name:\tx\nState:\tR (running)\n"
			    "Uid:\t0\t0\t42\t0\n";
	const char *zombie = "Name:\tx\nState:\tZ (zombie)\n"
			     "Uid:\t42\t42\t42\t42\n";

	cr_assert_eq(uidpool_status_uses(live, 1879048193), 1);
	cr_assert_eq(uidpool_status_uses(live, 1879048194), 0);
	cr_assert_eq(uidpool_status_uses(live, 5), 0, "a gid is no uid");
	cr_assert_eq(uidpool_status_uses(saved, 42), 1);
	cr_assert_eq(uidpool_status_uses(zombie, 42), 0);
	cr_assert_eq(uidpool_status_uses("Name:\tx\n", 42), -EINVAL);
	cr_assert_eq(uidpool_status_uses("Name:\tx\nUid:\tzz\n", 42), -EINVAL);
}

Test(uidpool, uid_busy_fake_proc, .init = mk_tmp, .fini = rm_tmp)
{
	char *d = xasprintf("%s/123", tmp), *self = xasprintf("%s/self", tmp);

	cr_assert_eq(uidpool_uid_busy(tmp, 42), 0);
	mkdir(d, 0755);
	write_to(d, "status", "Name:\tx\nState:\tS\nUid:\t42\t42\t42\t42\n");
	mkdir(self, 0755); /* not a pid: skipped */
	cr_assert_eq(uidpool_uid_busy(tmp, 42), 1);
	cr_assert_eq(uidpool_uid_busy(tmp, 43), 0);
	free(self);
	free(d);
}

Test(uidpool, acquire_release, .init = mk_tmp, .fini = rm_tmp)
{
	struct uid_range r = {UID_RANGE_DEFAULT_FIRST + 1000, 3};
	struct uid_lease l[4];
	struct error err = {0};

	for (int i = 0; i < 3; i++) {
		cr_assert_eq(uidpool_acquire(tmp, &r, &l[i], &err), 0, "%s",
			     err.msg);
		cr_assert(l[i].held);
		cr_assert_geq(l[i].uid, r.first);
		cr_assert_lt(l[i].uid, r.first + r.count);
		cr_assert(exists(tmp, l[i].uid));
		for (int k = 0; k < i; k++)
			cr_assert_neq(l[i].uid, l[k].uid, "uid given twice");
	}
	/* every uid held, by this very process too: none left */
	cr_assert_eq(uidpool_acquire(tmp, &r, &l[3], &err), -EAGAIN);
	cr_assert(!l[3].held);
	uidpool_release(&l[1]);
	cr_assert(!l[1].held);
	cr_assert(!exists(tmp, l[1].uid), "lock file left after release");
	uidpool_release(&l[1]); /* twice: no-op */
	cr_assert_eq(uidpool_acquire(tmp, &r, &l[3], &err), 0, "%s", err.msg);
	cr_assert_eq(l[3].uid, l[1].uid);
	uidpool_release(&l[0]);
	uidpool_release(&l[2]);
	uidpool_release(&l[3]);
	cr_assert_eq(uidpool_gc(tmp, -1, NULL, NULL), 0);
}

/* A holder in another process: exclusive while it lives; once it died
 * without releasing, its lock file stays until gc (or the next taker). */
Test(uidpool, other_process, .init = mk_tmp, .fini = rm_tmp)
{
	struct uid_range r = {UID_RANGE_DEFAULT_FIRST + 2000, 1};
	struct uid_lease l;
	struct error err = {0};
	int ready[2], go[2], st;
	char c = 0;
	pid_t pid;
	char *path;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(go), 0);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* EOF on go if the test dies: never left behind */
		close(go[1]);
		close(ready[0]);
		if (uidpool_acquire(tmp, &r, &l, NULL) < 0)
			_exit(1);
		write(ready[1], "x", 1);
		read(go[0], &c, 1);
		_exit(0); /* "dies" holding it */
	}
	close(go[0]);
	close(ready[1]);
	cr_assert_eq(read(ready[0], &c, 1), 1, "child could not acquire");
	cr_assert_eq(uidpool_acquire(tmp, &r, &l, &err), -EAGAIN,
		     "a uid held by a live process was given out");
	cr_assert_eq(uidpool_gc(tmp, -1, NULL, NULL), 0,
		     "gc freed a live holder's uid");
	write(go[1], "x", 1);
	waitpid(pid, &st, 0);
	cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	cr_assert(exists(tmp, r.first), "dead holder's file vanished");
	/* only that uid's file, if asked for another */
	cr_assert_eq(uidpool_gc(tmp, r.first + 1, NULL, NULL), 0);
	cr_assert_eq(uidpool_gc(tmp, -1, NULL, NULL), 1);
	cr_assert(!exists(tmp, r.first));
	/* not a lock file: left alone */
	path = xasprintf("%s/uid-junk.lock", tmp);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(uidpool_gc(tmp, -1, NULL, NULL), 0);
	cr_assert_eq(access(path, F_OK), 0);
	free(path);
}

static pid_t stray = -1;

static void
kill_stray(void)
{
	if (stray > 0)
		kill(stray, SIGKILL);
	rm_tmp();
}

/* A process left running as a uid (a QEMU escape) keeps the uid from
 * being handed out, and gc kills it. */
Test(uidpool, kill_uid, .init = mk_tmp, .fini = kill_stray)
{
	struct uid_range r = {UID_RANGE_DEFAULT_FIRST + 3000, 1};
	struct uid_lease l, l2;
	struct error err = {0};
	int st;
	pid_t pid;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	cr_assert_eq(uidpool_acquire(tmp, &r, &l, &err), 0, "%s", err.msg);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* as QEMU does (child_setup): the lock is the manager's */
		close(l.fd);
		if (setresgid(l.uid, l.uid, l.uid) < 0 ||
		    setresuid(l.uid, l.uid, l.uid) < 0)
			_exit(1);
		pause();
		_exit(0);
	}
	stray = pid;
	for (int i = 0; i < 200 && uidpool_uid_busy(NULL, l.uid) != 1; i++)
		usleep(10000);
	cr_assert_eq(uidpool_uid_busy(NULL, l.uid), 1);
	/* a lock nobody holds, but a process of that uid lives on */
	close(l.fd);
	l.held = false;
	cr_assert_eq(uidpool_acquire(tmp, &r, &l2, &err), -EAGAIN,
		     "a uid with a live process was handed out");
	/* gc kills it and frees the uid */
	cr_assert_eq(uidpool_gc(tmp, -1, NULL, NULL), 1);
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	stray = -1;
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	cr_assert_eq(uidpool_acquire(tmp, &r, &l2, &err), 0, "%s", err.msg);
	uidpool_release(&l2);
}
