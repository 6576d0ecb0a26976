/*
 * test-cgroup.c - cgroup v2 parsers, a fake cgroup tree, and the real one.
 *
 * The parsers get kernel text from tests/unit/data/cgroup/ and hand-made
 * garbage.  The fake tree is a temporary directory laid out like a cgroup2
 * mount (cgroup.controllers, cgroup.subtree_control, limit files): what
 * cgroup.c writes there is read back.  The "real" tests run against this
 * machine's cgroup2 mount as root and skip elsewhere.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "cgroup.h"
#include "procstat.h"

#define DATA "tests/unit/data/cgroup/"
#define MIB (1024ull * 1024)

static char *
slurp(const char *path)
{
	char *buf = NULL;
	struct error err;

	cr_assert_eq(read_file(path, 1 << 20, &buf, NULL, &err), 0, "%s",
		     err.msg);
	return buf;
}

/* ---- mountinfo ------------------------------------------------------- */

static int
find_in(const char *file, char **path, struct error *err)
{
	char *mi = slurp(file);
	int r = cgroup_find_mount(mi, path, err);

	free(mi);
	return r;
}

Test(mountinfo, pure_v2)
{
	char *p = NULL;
	struct error err;

	cr_assert_eq(find_in(DATA "mountinfo-v2", &p, &err), 0, "%s", err.msg);
	cr_assert_str_eq(p, "/sys/fs/cgroup");
	free(p);
}

Test(mountinfo, hybrid_unified)
{
	char *p = NULL;
	struct error err;

	cr_assert_eq(find_in(DATA "mountinfo-hybrid", &p, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(p, "/sys/fs/cgroup/unified");
	free(p);
}

Test(mountinfo, none)
{
	char *p = NULL;
	struct error err;

	cr_assert_eq(find_in(DATA "mountinfo-none", &p, &err), -ENOENT);
	cr_assert_null(p);
	cr_assert(strstr(err.msg, "no cgroup2"));
	cr_assert_eq(cgroup_find_mount("", &p, &err), -ENOENT);
}

Test(mountinfo, escaped_mount_point)
{
	char *p = NULL;
	struct error err;

	cr_assert_eq(find_in(DATA "mountinfo-escaped", &p, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(p, "/mnt/my cgroups\tv2");
	free(p);
}

Test(mountinfo, shadowed_by_later_mount)
{
	char *p = NULL;
	struct error err;

	cr_assert_eq(find_in(DATA "mountinfo-shadowed", &p, &err), 0, "%s",
		     err.msg);
	cr_assert_str_eq(p, "/sys/fs/cgroup/unified");
	free(p);
}

Test(mountinfo, prefers_sys_fs_cgroup)
{
	const char *mi =
		"30 1 0:40 / /opt/cg rw - cgroup2 cgroup2 rw\n"
		"31 1 0:41 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
		"32 1 0:42 / /sys/fs/cgroup rw shared:3 master:4 - cgroup2 "
		"cgroup2 rw\n";
	char *p = NULL;

	cr_assert_eq(cgroup_find_mount(mi, &p, NULL), 0);
	cr_assert_str_eq(p, "/sys/fs/cgroup");
	free(p);
	/* Only an unusual place: take it. */
	cr_assert_eq(cgroup_find_mount("30 1 0:40 / /opt/cg rw - cgroup2 x "
				       "rw\n",
				       &p, NULL),
		     0);
	cr_assert_str_eq(p, "/opt/cg");
	free(p);
}

Test(mountinfo, malformed)
{
	char *p = NULL;
	struct error err;

	/* no " - " separator */
	cr_assert_eq(cgroup_find_mount("41 31 0:38 / /sys/fs/cgroup rw "
				       "cgroup2 cgroup2 rw\n",
				       &p, &err),
		     -EBADMSG);
	cr_assert(strstr(err.msg, "line 1"), "%s", err.msg);
	/* separator but no fstype */
	cr_assert_eq(cgroup_find_mount("41 31 0:38 / /x rw -\n", &p, &err),
		     -EBADMSG);
	/* an escape that makes a NUL */
	cr_assert_eq(cgroup_find_mount("41 31 0:38 / /x\\000y rw - cgroup2 "
				       "c rw\n",
				       &p, &err),
		     -EBADMSG);
	cr_assert_null(p);
}

/* ---- cgroup.controllers ---------------------------------------------- */

Test(controllers, parse)
{
	unsigned m = 99;

	cr_assert_eq(cgroup_parse_controllers("cpuset cpu io memory hugetlb "
					      "pids rdma misc\n",
					      &m, NULL),
		     0);
	cr_assert_eq(m, CG_CPU | CG_IO | CG_MEMORY | CG_PIDS);
	cr_assert_eq(cgroup_parse_controllers("", &m, NULL), 0);
	cr_assert_eq(m, 0);
	/* this host's root: only hugetlb in v2 */
	cr_assert_eq(cgroup_parse_controllers("hugetlb\n", &m, NULL), 0);
	cr_assert_eq(m, 0);
	/* cpuset is not cpu, iommu is not io */
	cr_assert_eq(
		cgroup_parse_controllers("cpuset iommu memoryx\n", &m, NULL),
		0);
	cr_assert_eq(m, 0);
	cr_assert_lt(cgroup_parse_controllers("cpu\nmemory\n", &m, NULL), 0);
}

/* ---- keyed files ----------------------------------------------------- */

Test(cpu_stat, without_cpu_controller)
{
	struct cgroup_stats st = {0};
	char *b = slurp(DATA "cpu.stat-nocontroller");
	struct error err;

	cr_assert_eq(cgroup_parse_cpu_stat(b, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(st.have, CGS_CPU);
	cr_assert_eq(st.cpu_usec, 1855123349);
	cr_assert_eq(st.user_usec, 1587429750);
	cr_assert_eq(st.system_usec, 267693599);
	free(b);
}

Test(cpu_stat, with_cpu_controller)
{
	struct cgroup_stats st = {0};
	char *b = slurp(DATA "cpu.stat-controller");

	cr_assert_eq(cgroup_parse_cpu_stat(b, &st, NULL), 0);
	cr_assert_eq(st.have, CGS_CPU | CGS_THROTTLE);
	cr_assert_eq(st.cpu_usec, 8133476000ull);
	cr_assert_eq(st.nr_throttled, 77);
	cr_assert_eq(st.throttled_usec, 4562311);
	free(b);
}

Test(cpu_stat, garbage)
{
	static const struct {
		const char *text;
		int code;
	} cases[] = {
		{"usage_usec abc\nuser_usec 1\nsystem_usec 1\n", -EBADMSG},
		{"usage_usec 18446744073709551616\nuser_usec 1\n"
		 "system_usec 1\n",
		 -ERANGE},
		{"usage_usec 99999999999999999999999\nuser_usec 1\n"
		 "system_usec 1\n",
		 -ERANGE},
		{"usage_usec -1\nuser_usec 1\nsystem_usec 1\n", -EBADMSG},
		{"usage_usec 1 2\nuser_usec 1\nsystem_usec 1\n", -EBADMSG},
		{"usage_usec\nuser_usec 1\nsystem_usec 1\n", -EBADMSG},
		{"usage_usec 1\nusage_usec 2\nuser_usec 1\nsystem_usec 1\n",
		 -EBADMSG},
		{"usage_usec 1\nsystem_usec 1\n", -EBADMSG}, /* no user */
		{"", -EBADMSG},
		{"\n\n", -EBADMSG},
		{"usage_usec 0x10\nuser_usec 1\nsystem_usec 1\n", -EBADMSG},
		{"usage_usec +5\nuser_usec 1\nsystem_usec 1\n", -EBADMSG},
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct cgroup_stats st = {0};
		struct error err;

		cr_assert_eq(cgroup_parse_cpu_stat(cases[i].text, &st, &err),
			     cases[i].code, "case %zu: %s", i, err.msg);
		cr_assert_eq(st.have, 0, "case %zu", i);
		cr_assert(strstr(err.msg, "cpu.stat"), "case %zu: %s", i,
			  err.msg);
	}
}

Test(cpu_stat, limits_of_numbers)
{
	struct cgroup_stats st = {0};

	cr_assert_eq(cgroup_parse_cpu_stat("usage_usec 18446744073709551615\n"
					   "user_usec 0\nsystem_usec 00\n"
					   "future_key what ever\n",
					   &st, NULL),
		     0);
	cr_assert_eq(st.cpu_usec, UINT64_MAX);
	/* no newline at the end, tabs between */
	cr_assert_eq(cgroup_parse_cpu_stat("usage_usec\t7\nuser_usec 3\n"
					   "system_usec 4",
					   &st, NULL),
		     0);
	cr_assert_eq(st.cpu_usec, 7);
	cr_assert_eq(st.system_usec, 4);
}

Test(memory_stat, parse)
{
	struct cgroup_stats st = {0};
	char *b = slurp(DATA "memory.stat");

	cr_assert_eq(cgroup_parse_memory_stat(b, &st, NULL), 0);
	cr_assert_eq(st.have, CGS_MEM_STAT);
	cr_assert_eq(st.anon, 225832960);
	cr_assert_eq(st.file, 1114112000);
	cr_assert_eq(st.shmem, 4096);
	cr_assert_eq(st.kernel, 18845696);
	free(b);
	/* before 5.18 there is no "kernel" line */
	memset(&st, 0, sizeof(st));
	cr_assert_eq(cgroup_parse_memory_stat("anon 1\nfile 2\nshmem 3\n", &st,
					      NULL),
		     0);
	cr_assert_eq(st.kernel, 0);
	cr_assert_eq(cgroup_parse_memory_stat("anon 1\nfile x\nshmem 3\n", &st,
					      NULL),
		     -EBADMSG);
	cr_assert_eq(cgroup_parse_memory_stat("file 2\nshmem 3\n", &st, NULL),
		     -EBADMSG);
}

Test(memory_events, parse)
{
	struct cgroup_stats st = {0};
	char *b = slurp(DATA "memory.events");
	struct error err;

	cr_assert_eq(cgroup_parse_memory_events(b, &st, NULL), 0);
	cr_assert_eq(st.oom_kill, 1);
	cr_assert_eq(st.oom, 1);
	cr_assert_eq(st.mem_max_events, 12);
	free(b);
	cr_assert_eq(cgroup_parse_memory_events("low 0\nhigh 0\nmax 0\noom 0\n",
						&st, &err),
		     -EBADMSG);
	cr_assert(strstr(err.msg, "oom_kill"), "%s", err.msg);
}

Test(keyed, too_many_keys)
{
	const char *keys[33];
	uint64_t v[33];
	unsigned found;

	for (int i = 0; i < 33; i++)
		keys[i] = "k";
	cr_assert_eq(cgroup_parse_keyed("k 1\n", keys, v, 33, &found, NULL),
		     -EINVAL);
}

/* ---- pressure -------------------------------------------------------- */

Test(pressure, real_file)
{
	struct cgroup_psi psi;
	char *b = slurp(DATA "cpu.pressure");

	cr_assert_eq(cgroup_parse_pressure(b, &psi, NULL), 0);
	cr_assert_float_eq(psi.some_avg10, 1.74, 1e-9);
	cr_assert_float_eq(psi.some_avg60, 18.20, 1e-9);
	cr_assert_float_eq(psi.some_avg300, 16.50, 1e-9);
	cr_assert_eq(psi.some_total, 284974248);
	cr_assert(psi.has_full);
	cr_assert_eq(psi.full_total, 0);
	free(b);
}

Test(pressure, some_only_and_full)
{
	struct cgroup_psi psi;

	cr_assert_eq(cgroup_parse_pressure("some avg10=100.00 avg60=0.5 "
					   "avg300=0.00 total=1\n",
					   &psi, NULL),
		     0);
	cr_assert_not(psi.has_full);
	cr_assert_float_eq(psi.some_avg10, 100.0, 1e-9);
	cr_assert_float_eq(psi.some_avg60, 0.5, 1e-9);
	cr_assert_eq(cgroup_parse_pressure("full avg10=0.00 avg60=0.00 "
					   "avg300=0.00 total=9\n"
					   "some avg10=3.25 avg60=0.00 "
					   "avg300=0.00 total=10\n",
					   &psi, NULL),
		     0);
	cr_assert(psi.has_full);
	cr_assert_eq(psi.full_total, 9);
	cr_assert_float_eq(psi.some_avg10, 3.25, 1e-9);
}

Test(pressure, garbage)
{
	static const char *const bad[] = {
		"",
		"\n",
		"some avg10=0.00 avg60=0.00 avg300=0.00\n", /* no total */
		"some avg10=0.00 avg60=0.00 total=5\n",	    /* no avg300 */
		"some\n",
		"some avg10= avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=1.2.3 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=abc avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=100.01 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=1000 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=.5 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=5. avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=-1.00 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",
		"some avg10=0.00 avg60=0.00 avg300=0.00 "
		"total=18446744073709551616\n",
		"some avg10=0.00 avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
		"some avg10 avg60=0.00 avg300=0.00 total=1\n",
		"full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", /* no some
								     */
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n"
		"some avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
		"half avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct cgroup_psi psi = {.some_total = 42};
		struct error err;

		cr_assert_lt(cgroup_parse_pressure(bad[i], &psi, &err), 0,
			     "case %zu accepted", i);
		cr_assert_eq(psi.some_total, 42, "case %zu wrote", i);
	}
}

/* ---- io.stat, single numbers, pids ----------------------------------- */

Test(io_stat, parse)
{
	struct cgroup_stats st = {0};
	char *b = slurp(DATA "io.stat");

	cr_assert_eq(cgroup_parse_io_stat(b, &st, NULL), 0);
	cr_assert_eq(st.io_rbytes, 1462272 + 4096);
	cr_assert_eq(st.io_wbytes, 8192 + 1048576);
	cr_assert_eq(st.have, CGS_IO);
	free(b);
	memset(&st, 0, sizeof(st));
	cr_assert_eq(cgroup_parse_io_stat("", &st, NULL), 0);
	cr_assert_eq(st.have, CGS_IO);
	cr_assert_eq(cgroup_parse_io_stat("sda rbytes=1 wbytes=2\n", &st, NULL),
		     -EBADMSG);
	cr_assert_eq(cgroup_parse_io_stat("8:0 rbytes=1\n", &st, NULL),
		     -EBADMSG);
	cr_assert_eq(cgroup_parse_io_stat("8:0 rbytes=1 wbytes=x\n", &st, NULL),
		     -EBADMSG);
	cr_assert_eq(cgroup_parse_io_stat("8:0 rbytes=18446744073709551615 "
					  "wbytes=0\n8:1 rbytes=1 wbytes=0\n",
					  &st, NULL),
		     -ERANGE);
}

Test(single, u64)
{
	uint64_t v;

	cr_assert_eq(cgroup_parse_u64("123\n", &v, NULL), 0);
	cr_assert_eq(v, 123);
	cr_assert_eq(cgroup_parse_u64("max\n", &v, NULL), 0);
	cr_assert_eq(v, UINT64_MAX);
	cr_assert_eq(cgroup_parse_u64("0", &v, NULL), 0);
	cr_assert_eq(v, 0);
	cr_assert_eq(cgroup_parse_u64("", &v, NULL), -EINVAL);
	cr_assert_eq(cgroup_parse_u64("\n", &v, NULL), -EINVAL);
	cr_assert_eq(cgroup_parse_u64("12a\n", &v, NULL), -EINVAL);
	cr_assert_eq(cgroup_parse_u64("12\n\n", &v, NULL), -EINVAL);
	cr_assert_eq(cgroup_parse_u64(" 12\n", &v, NULL), -EINVAL);
	cr_assert_eq(cgroup_parse_u64("18446744073709551616\n", &v, NULL),
		     -ERANGE);
}

Test(pids, parse)
{
	pid_t *p = NULL;
	size_t n = 9;

	cr_assert_eq(cgroup_parse_pids("", &p, &n, NULL), 0);
	cr_assert_eq(n, 0);
	cr_assert_null(p);
	cr_assert_eq(cgroup_parse_pids("1\n4242\n", &p, &n, NULL), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(p[1], 4242);
	free(p);
	cr_assert_lt(cgroup_parse_pids("0\n", &p, &n, NULL), 0);
	cr_assert_lt(cgroup_parse_pids("-1\n", &p, &n, NULL), 0);
	cr_assert_lt(cgroup_parse_pids("12 13\n", &p, &n, NULL), 0);
	cr_assert_lt(cgroup_parse_pids("2147483648\n", &p, &n, NULL), 0);
}

/* ---- a fake cgroup tree ---------------------------------------------- */

static char fake[64];

static void
put(const char *rel, const char *content)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", fake, rel);
	f = fopen(path, "w");
	cr_assert_not_null(f, "%s", path);
	fputs(content, f);
	fclose(f);
}

static void
mkd(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fake, rel);
	cr_assert_eq(mkdir(path, 0755), 0, "%s", path);
}

static char *
get(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fake, rel);
	return slurp(path);
}

static bool
exists(const char *rel)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", fake, rel);
	return access(path, F_OK) == 0;
}

static void
fake_setup(void)
{
	strcpy(fake, "/tmp/qctl-fakecg-XXXXXX");
	cr_assert_not_null(mkdtemp(fake));
}

static void
fake_teardown(void)
{
	rm_rf(fake);
}

/* A root that offers cpu, memory, pids, io; qctl/ already made (as the
 * kernel would fill it). */
static void
fake_full_root(void)
{
	put("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma\n");
	put("cgroup.subtree_control", "");
	mkd("qctl");
	put("qctl/cgroup.controllers", "");
	put("qctl/cgroup.subtree_control", "");
}

/* The kernel's files of a fresh VM cgroup with every controller. */
static void
fake_child_files(const char *name)
{
	static const char *const files[] = {
		"cgroup.procs", "cgroup.kill",	    "cgroup.freeze",
		"cpu.max",	"memory.max",	    "memory.swap.max",
		"pids.max",	"memory.oom.group", "io.max",
	};
	char rel[256];

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		snprintf(rel, sizeof(rel), "qctl/%s/%s", name, files[i]);
		put(rel, "");
	}
}

TestSuite(fake, .init = fake_setup, .fini = fake_teardown);

Test(fake, create_enables_controllers)
{
	struct cgroup cg;
	struct error err;
	char *s;

	fake_full_root();
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, &err), 0, "%s", err.msg);
	s = get("cgroup.subtree_control");
	cr_assert_str_eq(s, "+cpu +memory +pids +io");
	free(s);
	s = get("qctl/cgroup.subtree_control");
	cr_assert_str_eq(s, "+cpu +memory +pids +io");
	free(s);
	cr_assert_eq(cg.controllers, CG_CPU | CG_MEMORY | CG_PIDS | CG_IO);
	cr_assert_eq(cg.missing, 0);
	cr_assert(exists("qctl/1-vm"));
	cr_assert(strstr(cg.path, "/qctl/1-vm"));
	cr_assert_str_eq(cg.name, "1-vm");
	cgroup_close(&cg);
	cr_assert_eq(cg.dirfd, -1);
}

Test(fake, create_keeps_enabled_ones)
{
	struct cgroup cg;
	char *s;

	fake_full_root();
	put("cgroup.subtree_control", "cpu memory\n");
	put("qctl/cgroup.subtree_control", "cpu memory pids io\n");
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, NULL), 0);
	s = get("cgroup.subtree_control");
	cr_assert_str_eq(s, "+pids +io");
	free(s);
	/* nothing to do one level down: untouched */
	s = get("qctl/cgroup.subtree_control");
	cr_assert_str_eq(s, "cpu memory pids io\n");
	free(s);
	cr_assert_eq(cg.missing, 0);
	cgroup_close(&cg);
}

/* This host: v2 offers none of cpu, memory, pids, io. */
Test(fake, create_without_controllers)
{
	struct cgroup cg;
	char note[512];
	char *s;

	put("cgroup.controllers", "hugetlb\n");
	put("cgroup.subtree_control", "");
	cr_assert_eq(cgroup_create(fake, "7-vm", &cg, NULL), 0);
	s = get("cgroup.subtree_control");
	cr_assert_str_eq(s, "", "nothing may be written: \"%s\"", s);
	free(s);
	cr_assert_eq(cg.controllers, 0);
	cr_assert_eq(cg.missing, CG_CPU | CG_MEMORY | CG_PIDS | CG_IO);
	cr_assert(cgroup_missing_note(&cg, note, sizeof(note)));
	cr_assert(strstr(note, "cpu, memory, pids, io controllers"), "%s",
		  note);
	/* said once */
	cr_assert_not(cgroup_missing_note(&cg, note, sizeof(note)));
	cgroup_close(&cg);
}

Test(fake, create_partial)
{
	struct cgroup cg;
	char note[512];

	put("cgroup.controllers", "memory pids\n");
	put("cgroup.subtree_control", "");
	/* qctl/ made by cgroup_create has no subtree_control in a fake
	 * tree: the controllers cannot pass it, and that is reported. */
	cr_assert_eq(cgroup_create(fake, "7-vm", &cg, NULL), 0);
	cr_assert_eq(cg.controllers, 0);
	cgroup_close(&cg);

	rm_rf(fake);
	mkdir(fake, 0700);
	put("cgroup.controllers", "memory pids\n");
	put("cgroup.subtree_control", "");
	mkd("qctl");
	put("qctl/cgroup.subtree_control", "");
	cr_assert_eq(cgroup_create(fake, "7-vm", &cg, NULL), 0);
	cr_assert_eq(cg.controllers, CG_MEMORY | CG_PIDS);
	cr_assert_eq(cg.missing, CG_CPU | CG_IO);
	cr_assert(cgroup_missing_note(&cg, note, sizeof(note)));
	cr_assert(strstr(note, "no cpu, io controllers"), "%s", note);
	cgroup_close(&cg);
}

Test(fake, create_errors)
{
	struct cgroup cg;
	struct error err;

	/* not a cgroup2 hierarchy */
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, &err), -ENOENT);
	cr_assert(strstr(err.msg, "not a cgroup2"), "%s", err.msg);
	cr_assert_eq(cg.dirfd, -1);
	fake_full_root();
	cr_assert_eq(cgroup_create(fake, "../x", &cg, &err), -EINVAL);
	cr_assert_eq(cgroup_create(fake, "", &cg, &err), -EINVAL);
	cr_assert_eq(cgroup_create(fake, "a/b", &cg, &err), -EINVAL);
	cr_assert_eq(cgroup_create(fake, "..", &cg, &err), -EINVAL);
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, &err), 0);
	cgroup_close(&cg);
	/* a leftover of the same name */
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, &err), -EEXIST);
	cr_assert(strstr(err.msg, "qctl gc"), "%s", err.msg);
	/* garbage where the controller list should be */
	put("cgroup.controllers", "cpu\nmemory\n");
	cr_assert_lt(cgroup_create(fake, "2-vm", &cg, &err), 0);
	/* a root that is no directory */
	cr_assert_eq(cgroup_create("/dev/null", "1-vm", &cg, &err), -ENOTDIR);
}

Test(fake, apply_all_kernel)
{
	struct cgroup cg;
	struct limit_set l;
	struct limit_plan p;
	char *s, want[64];

	fake_full_root();
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, NULL), 0);
	fake_child_files("1-vm");
	limit_for_vm(2, 512 * MIB, true, LIMIT_TCG_TB_MIB, 5000000, &l);
	l.io = (struct limit_io){.major = 8, .minor = 16, .wbps = 1 << 20};
	limit_plan_make(&l, cg.controllers, &p);
	cr_assert_eq(cgroup_apply_limits(&cg, &l, &p, NULL), 0);
	for (int r = 0; r < LIMIT__N; r++)
		cr_assert_eq(p.how[r],
			     r == LIMIT_CPU_TIME ? LIMIT_POLL : LIMIT_KERNEL,
			     "%s", limit_res_name(r));
	s = get("qctl/1-vm/cpu.max");
	cr_assert_str_eq(s, "200000 100000");
	free(s);
	s = get("qctl/1-vm/memory.max");
	snprintf(want, sizeof(want), "%" PRIu64, l.memory_bytes);
	cr_assert_str_eq(s, want);
	free(s);
	s = get("qctl/1-vm/memory.swap.max");
	cr_assert_str_eq(s, "0");
	free(s);
	s = get("qctl/1-vm/memory.oom.group");
	cr_assert_str_eq(s, "1");
	free(s);
	s = get("qctl/1-vm/pids.max");
	cr_assert_str_eq(s, "130");
	free(s);
	s = get("qctl/1-vm/io.max");
	cr_assert_str_eq(s, "8:16 rbps=max wbps=1048576 riops=max wiops=max");
	free(s);
	cgroup_close(&cg);
}

/* Controller there, some knob file not (no swap accounting, say). */
Test(fake, apply_missing_files_demote)
{
	struct cgroup cg;
	struct limit_set l;
	struct limit_plan p;
	char *s;

	fake_full_root();
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, NULL), 0);
	put("qctl/1-vm/memory.max", "");
	put("qctl/1-vm/cpu.max", "");
	limit_for_vm(1, 256 * MIB, false, 0, 0, &l);
	limit_plan_make(&l, cg.controllers, &p);
	cr_assert_eq(cgroup_apply_limits(&cg, &l, &p, NULL), 0);
	cr_assert_eq(p.how[LIMIT_CPUS], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_MEMORY], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_SWAP], LIMIT_UNENFORCED);
	cr_assert_eq(p.how[LIMIT_PIDS], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_CPU_TIME], LIMIT_UNSET);
	cr_assert_eq(p.how[LIMIT_IO], LIMIT_UNSET);
	cr_assert_not(exists("qctl/1-vm/pids.max"), "created a knob");
	s = get("qctl/1-vm/cpu.max");
	cr_assert_str_eq(s, "100000 100000");
	free(s);
	cgroup_close(&cg);

	/* memory.max itself missing: memory and swap polled */
	mkd("qctl/2-vm");
	fake_child_files("2-vm");
	cr_assert_eq(cgroup_open(fake, "2-vm", &cg, NULL), 0);
	cr_assert_eq(unlink(strcat(strcpy((char[600]){0}, fake),
				   "/qctl/2-vm/memory.max")),
		     0);
	limit_plan_make(&l, CG_MEMORY | CG_PIDS, &p);
	cr_assert_eq(cgroup_apply_limits(&cg, &l, &p, NULL), 0);
	cr_assert_eq(p.how[LIMIT_MEMORY], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_SWAP], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_PIDS], LIMIT_KERNEL);
	s = get("qctl/2-vm/memory.swap.max");
	cr_assert_str_eq(s, "", "swap written without memory.max: %s", s);
	free(s);
	cgroup_close(&cg);
}

Test(fake, apply_nothing_without_controllers)
{
	struct cgroup cg;
	struct limit_set l;
	struct limit_plan p;
	char fmt[256];
	char *s;

	put("cgroup.controllers", "\n");
	put("cgroup.subtree_control", "");
	cr_assert_eq(cgroup_create(fake, "3-vm", &cg, NULL), 0);
	fake_child_files("3-vm");
	limit_for_vm(4, 1024 * MIB, true, 256, 60000000, &l);
	limit_plan_make(&l, cg.controllers, &p);
	cr_assert_eq(cgroup_apply_limits(&cg, &l, &p, NULL), 0);
	limit_plan_format(&p, fmt, sizeof(fmt));
	cr_assert_str_eq(fmt, "cpus=unenforced cpu_time=poll memory=poll "
			      "swap=poll pids=poll");
	s = get("qctl/3-vm/memory.max");
	cr_assert_str_eq(s, "");
	free(s);
	s = get("qctl/3-vm/cpu.max");
	cr_assert_str_eq(s, "");
	free(s);
	cgroup_close(&cg);
}

Test(fake, apply_write_error)
{
	struct cgroup cg;
	struct limit_set l;
	struct limit_plan p;
	struct error err;

	fake_full_root();
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, NULL), 0);
	/* a knob the kernel refuses (here: a directory) is an error */
	mkd("qctl/1-vm/memory.max");
	limit_for_vm(1, 256 * MIB, false, 0, 0, &l);
	limit_plan_make(&l, cg.controllers, &p);
	cr_assert_lt(cgroup_apply_limits(&cg, &l, &p, &err), 0);
	cr_assert(strstr(err.msg, "memory.max"), "%s", err.msg);
	cgroup_close(&cg);
}

static void
fake_vm_with_stats(void)
{
	fake_full_root();
	mkd("qctl/5-vm");
}

Test(fake, stats_all_present)
{
	struct cgroup cg;
	struct cgroup_stats st;
	struct error err;
	char *b;

	fake_vm_with_stats();
	b = slurp(DATA "cpu.stat-controller");
	put("qctl/5-vm/cpu.stat", b);
	free(b);
	b = slurp(DATA "memory.stat");
	put("qctl/5-vm/memory.stat", b);
	free(b);
	b = slurp(DATA "memory.events");
	put("qctl/5-vm/memory.events", b);
	free(b);
	b = slurp(DATA "io.stat");
	put("qctl/5-vm/io.stat", b);
	free(b);
	b = slurp(DATA "cpu.pressure");
	put("qctl/5-vm/cpu.pressure", b);
	put("qctl/5-vm/memory.pressure", b);
	put("qctl/5-vm/io.pressure", b);
	free(b);
	put("qctl/5-vm/memory.current", "123456\n");
	put("qctl/5-vm/memory.peak", "234567\n");
	put("qctl/5-vm/memory.swap.current", "0\n");
	put("qctl/5-vm/pids.current", "5\n");
	put("qctl/5-vm/pids.events", "max 2\n");
	put("qctl/5-vm/cgroup.controllers", "cpu memory pids\n");
	cr_assert_eq(cgroup_open(fake, "5-vm", &cg, NULL), 0);
	cr_assert_eq(cg.controllers, CG_CPU | CG_MEMORY | CG_PIDS);
	cr_assert_eq(cgroup_read_stats(&cg, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(st.have, (1u << 13) - 1, "have %#x", st.have);
	cr_assert_eq(st.cpu_usec, 8133476000ull);
	cr_assert_eq(st.mem_current, 123456);
	cr_assert_eq(st.mem_peak, 234567);
	cr_assert_eq(st.oom_kill, 1);
	cr_assert_eq(st.pids_current, 5);
	cr_assert_eq(st.pids_denied, 2);
	cr_assert_eq(st.io_wbytes, 8192 + 1048576);
	cr_assert_float_eq(st.io_psi.some_avg10, 1.74, 1e-9);
	cgroup_close(&cg);
}

Test(fake, stats_missing_files)
{
	struct cgroup cg;
	struct cgroup_stats st;
	struct error err;

	fake_vm_with_stats();
	cr_assert_eq(cgroup_open(fake, "5-vm", &cg, NULL), 0);
	cr_assert_eq(cg.controllers, 0); /* no cgroup.controllers */
	cr_assert_eq(cgroup_read_stats(&cg, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(st.have, 0);
	/* only what this host offers: cpu.stat and pressure */
	put("qctl/5-vm/cpu.stat", "usage_usec 10\nuser_usec 6\n"
				  "system_usec 4\nnice_usec 0\n");
	put("qctl/5-vm/cpu.pressure",
	    "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
	    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	cr_assert_eq(cgroup_read_stats(&cg, &st, &err), 0, "%s", err.msg);
	cr_assert_eq(st.have, CGS_CPU | CGS_CPU_PSI);
	cr_assert_eq(st.cpu_usec, 10);
	cgroup_close(&cg);
}

Test(fake, stats_garbage_costs_one_field)
{
	struct cgroup cg;
	struct cgroup_stats st;
	struct error err;

	fake_vm_with_stats();
	put("qctl/5-vm/cpu.stat", "usage_usec 10\nuser_usec 6\n"
				  "system_usec 4\n");
	put("qctl/5-vm/memory.current", "lots\n");
	put("qctl/5-vm/memory.peak", "");
	put("qctl/5-vm/pids.current", "3\n");
	put("qctl/5-vm/memory.events", "oom_kill 99999999999999999999999\n");
	put("qctl/5-vm/memory.pressure", "some avg10=0.00 total=0\n");
	put("qctl/5-vm/io.pressure",
	    "some avg10=0.50 avg60=0.25 avg300=0.00 total=77\n");
	cr_assert_eq(cgroup_open(fake, "5-vm", &cg, NULL), 0);
	cr_assert_lt(cgroup_read_stats(&cg, &st, &err), 0);
	/* the first bad file is named (files are read in a fixed order) */
	cr_assert(strstr(err.msg, "memory.events"), "%s", err.msg);
	cr_assert(strstr(err.msg, "5-vm"), "%s", err.msg);
	cr_assert_eq(st.have, CGS_CPU | CGS_PIDS | CGS_IO_PSI, "have %#x",
		     st.have);
	cr_assert_eq(st.cpu_usec, 10);
	cr_assert_eq(st.pids_current, 3);
	cr_assert_eq(st.io_psi.some_total, 77);
	cgroup_close(&cg);
}

Test(fake, stats_empty_files)
{
	struct cgroup cg;
	struct cgroup_stats st;
	struct error err;

	fake_vm_with_stats();
	put("qctl/5-vm/cpu.stat", "");
	put("qctl/5-vm/memory.current", "");
	put("qctl/5-vm/cpu.pressure", "");
	cr_assert_eq(cgroup_open(fake, "5-vm", &cg, NULL), 0);
	cr_assert_lt(cgroup_read_stats(&cg, &st, &err), 0);
	cr_assert(strstr(err.msg, "cpu.stat"), "%s", err.msg);
	cr_assert_eq(st.have, 0);
	cgroup_close(&cg);
}

Test(fake, stats_oversized_file)
{
	struct cgroup cg;
	struct cgroup_stats st;
	struct error err;
	char *big = xmalloc(200000);

	fake_vm_with_stats();
	memset(big, '1', 199999);
	big[199999] = '\0';
	put("qctl/5-vm/memory.current", big);
	free(big);
	cr_assert_eq(cgroup_open(fake, "5-vm", &cg, NULL), 0);
	cr_assert_eq(cgroup_read_stats(&cg, &st, &err), -EFBIG);
	cr_assert_eq(st.have, 0);
	cgroup_close(&cg);
}

Test(fake, events_freeze_pids)
{
	struct cgroup cg;
	struct error err;
	bool populated, frozen;
	pid_t *pids;
	size_t n;
	char *s;

	fake_vm_with_stats();
	cr_assert_eq(cgroup_open(fake, "5-vm", &cg, NULL), 0);
	/* no cgroup.freeze: not supported, said so */
	cr_assert_eq(cgroup_freeze(&cg, true, &err), -EOPNOTSUPP);
	cr_assert_lt(cgroup_read_events(&cg, &populated, &frozen, &err), 0);
	put("qctl/5-vm/cgroup.freeze", "0\n");
	put("qctl/5-vm/cgroup.events", "populated 1\nfrozen 1\n");
	put("qctl/5-vm/cgroup.procs", "10\n11\n");
	cr_assert_eq(cgroup_freeze(&cg, true, &err), 0, "%s", err.msg);
	s = get("qctl/5-vm/cgroup.freeze");
	cr_assert_str_eq(s, "1");
	free(s);
	cr_assert_eq(cgroup_freeze(&cg, false, NULL), 0);
	s = get("qctl/5-vm/cgroup.freeze");
	cr_assert_str_eq(s, "0");
	free(s);
	cr_assert_eq(cgroup_read_events(&cg, &populated, &frozen, NULL), 0);
	cr_assert(populated);
	cr_assert(frozen);
	/* before 5.2 there is no "frozen" */
	put("qctl/5-vm/cgroup.events", "populated 0\n");
	cr_assert_eq(cgroup_read_events(&cg, &populated, &frozen, NULL), 0);
	cr_assert_not(populated);
	cr_assert_not(frozen);
	put("qctl/5-vm/cgroup.events", "frozen 0\n");
	cr_assert_lt(cgroup_read_events(&cg, &populated, &frozen, NULL), 0);
	cr_assert_eq(cgroup_read_pids(&cg, &pids, &n, NULL), 0);
	cr_assert_eq(n, 2);
	cr_assert_eq(pids[0], 10);
	free(pids);
	cgroup_close(&cg);
}

Test(fake, destroy)
{
	struct cgroup cg;
	struct error err;
	char *s;

	fake_full_root();
	/* an empty directory: nothing to kill, rmdir works */
	cr_assert_eq(cgroup_create(fake, "1-vm", &cg, NULL), 0);
	cr_assert_eq(cgroup_destroy(&cg, 1000, &err), 0, "%s", err.msg);
	cr_assert_not(exists("qctl/1-vm"));
	cr_assert_eq(cg.dirfd, -1);
	cr_assert_null(cg.path);
	/* twice is fine */
	cr_assert_eq(cgroup_destroy(&cg, 1000, &err), 0);

	/* cgroup.kill is written; a plain directory with files cannot be
	 * removed (ENOTEMPTY), which is reported, not waited on */
	cr_assert_eq(cgroup_create(fake, "2-vm", &cg, NULL), 0);
	put("qctl/2-vm/cgroup.kill", "");
	put("qctl/2-vm/cgroup.events", "populated 0\nfrozen 0\n");
	s = cg.path;
	cr_assert_eq(cgroup_destroy(&cg, 1000, &err), -ENOTEMPTY);
	cr_assert(strstr(err.msg, "rmdir"), "%s", err.msg);
	cr_assert_eq(cg.dirfd, -1, "released even on error");
	(void)s;
	s = get("qctl/2-vm/cgroup.kill");
	cr_assert_str_eq(s, "1");
	free(s);
}

Test(fake, gc)
{
	struct cgroup cg;
	unsigned n = 99;
	char live[64];

	cr_assert_eq(cgroup_gc(fake, 100, &n, NULL), 0, "no qctl/ is fine");
	cr_assert_eq(n, 0);
	fake_full_root();
	/* pid 2^31-1 does not exist (pid_max is at most 2^22) */
	cr_assert_eq(cgroup_create(fake, "2147483647-vm", &cg, NULL), 0);
	cgroup_close(&cg);
	snprintf(live, sizeof(live), "%d-vm", (int)getpid());
	cr_assert_eq(cgroup_create(fake, live, &cg, NULL), 0);
	cgroup_close(&cg);
	mkd("qctl/not-ours");
	cr_assert_eq(cgroup_gc(fake, 100, &n, NULL), 0);
	cr_assert_eq(n, 1);
	cr_assert_not(exists("qctl/2147483647-vm"));
	cr_assert(exists("qctl/not-ours"));
	snprintf(live, sizeof(live), "qctl/%d-vm", (int)getpid());
	cr_assert(exists(live), "a live manager's cgroup was reaped");
}

Test(fake, discover_override)
{
	char *root = NULL;
	struct error err;

	cr_assert_eq(cgroup_discover(fake, &root, &err), 0);
	cr_assert_str_eq(root, fake);
	free(root);
	cr_assert_eq(cgroup_discover("/dev/null", &root, &err), -ENOTDIR);
	cr_assert_eq(cgroup_discover("/nonexistent/cg", &root, &err), -ENOENT);
}

/* ---- this machine's cgroup2 ------------------------------------------ */

static struct {
	char *root;
	char name[64];
	bool made_parent;
	struct cgroup cg;
	pid_t child;
} real = {.cg = {.dirfd = -1, .parent_fd = -1}, .child = -1};

static void
real_setup(void)
{
	char *p;
	struct stat st;

	if (geteuid() != 0)
		cr_skip_test("needs root");
	if (cgroup_discover(NULL, &real.root, NULL) < 0)
		cr_skip_test("no cgroup2 mount");
	p = xasprintf("%s/%s", real.root, CGROUP_PARENT);
	real.made_parent = stat(p, &st) < 0;
	free(p);
	snprintf(real.name, sizeof(real.name), "%d-unit-test", (int)getpid());
}

/* Whatever happened, leave no process and no cgroup behind. */
static void
real_teardown(void)
{
	char *p;

	if (real.child > 0) {
		kill(real.child, SIGKILL);
		waitpid(real.child, NULL, 0);
	}
	if (real.cg.dirfd >= 0)
		cgroup_destroy(&real.cg, 2000, NULL);
	if (!real.root)
		return;
	p = xasprintf("%s/%s/%s", real.root, CGROUP_PARENT, real.name);
	rmdir(p);
	free(p);
	if (real.made_parent) {
		p = xasprintf("%s/%s", real.root, CGROUP_PARENT);
		rmdir(p); /* EBUSY if another run uses it: fine */
		free(p);
	}
	free(real.root);
}

static bool
wait_frozen(bool want)
{
	for (int i = 0; i < 200; i++) {
		bool frozen;

		cr_assert_eq(cgroup_read_events(&real.cg, NULL, &frozen, NULL),
			     0);
		if (frozen == want)
			return true;
		poll(NULL, 0, 10);
	}
	return false;
}

static uint64_t
cpu_now(void)
{
	struct cgroup_stats st;
	struct error err;

	cr_assert_eq(cgroup_read_stats(&real.cg, &st, &err), 0, "%s", err.msg);
	cr_assert(st.have & CGS_CPU);
	return st.cpu_usec;
}

TestSuite(real, .init = real_setup, .fini = real_teardown);

Test(real, lifecycle, .timeout = 30)
{
	struct error err;
	struct limit_set l;
	struct limit_plan p;
	struct proc_usage pu;
	pid_t *pids = NULL;
	size_t n = 0;
	int fd, ws;
	uint64_t c0, c1, c2;
	char *buf, *dir;
	unsigned file_mask;
	char plan[256], note[512];

	cr_assert_eq(cgroup_create(real.root, real.name, &real.cg, &err), 0,
		     "%s", err.msg);
	/* our computed controllers agree with the kernel's file */
	dir = xasprintf("%s/cgroup.controllers", real.cg.path);
	cr_assert_eq(read_file(dir, 4096, &buf, NULL, NULL), 0);
	free(dir);
	cr_assert_eq(cgroup_parse_controllers(buf, &file_mask, NULL), 0);
	free(buf);
	cr_assert_eq(real.cg.controllers, file_mask);
	cr_assert(real.cg.features & CGF_CPU_STAT);
	cr_assert(real.cg.features & CGF_KILL);
	cr_assert(real.cg.features & CGF_FREEZE);

	limit_for_vm(1, 256 * MIB, true, LIMIT_TCG_TB_MIB, 1000000, &l);
	limit_plan_make(&l, real.cg.controllers, &p);
	cr_assert_eq(cgroup_apply_limits(&real.cg, &l, &p, &err), 0, "%s",
		     err.msg);
	limit_plan_format(&p, plan, sizeof(plan));
	if (cgroup_missing_note(&real.cg, note, sizeof(note)))
		cr_log_info("%s", note);
	cr_log_info("plan: %s", plan);

	fd = cgroup_open_procs(&real.cg, &err);
	cr_assert_geq(fd, 0, "%s", err.msg);
	real.child = fork();
	cr_assert_geq(real.child, 0);
	if (real.child == 0) {
		/* as vm.c's child: enter, then (here) spin instead of exec */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (cgroup_enter_self(fd) < 0)
			_exit(3);
		for (volatile unsigned long i = 0;; i++)
			;
	}
	close(fd);
	for (int i = 0; i < 200 && n == 0; i++) {
		free(pids);
		cr_assert_eq(cgroup_read_pids(&real.cg, &pids, &n, NULL), 0);
		if (n == 0)
			poll(NULL, 0, 10);
	}
	cr_assert_eq(n, 1);
	cr_assert_eq(pids[0], real.child);
	free(pids);

	poll(NULL, 0, 300);
	c0 = cpu_now();
	cr_assert_gt(c0, 50000, "spinning child used %" PRIu64 " usec", c0);
	cr_assert_eq(procstat_read(NULL, real.child, &pu, &err), 0, "%s",
		     err.msg);
	cr_assert_gt(pu.cpu_usec, 0);
	cr_assert_eq(pu.threads, 1);

	/* frozen: no CPU at all; thawed: spinning again */
	cr_assert_eq(cgroup_freeze(&real.cg, true, &err), 0, "%s", err.msg);
	cr_assert(wait_frozen(true), "never frozen");
	c1 = cpu_now();
	poll(NULL, 0, 200);
	cr_assert_lt(cpu_now() - c1, 5000, "frozen child still ran");
	cr_assert_eq(cgroup_freeze(&real.cg, false, &err), 0, "%s", err.msg);
	cr_assert(wait_frozen(false), "never thawed");
	poll(NULL, 0, 200);
	c2 = cpu_now();
	cr_assert_gt(c2 - c1, 50000, "thawed child did not run");

	/* destroy: cgroup.kill, the child dies, the directory goes, and
	 * it works without reaping the child first (a zombie is empty) */
	dir = xstrdup(real.cg.path);
	cr_assert_eq(cgroup_destroy(&real.cg, 5000, &err), 0, "%s", err.msg);
	cr_assert_eq(access(dir, F_OK), -1);
	cr_assert_eq(errno, ENOENT);
	free(dir);
	cr_assert_eq(waitpid(real.child, &ws, 0), real.child);
	real.child = -1;
	cr_assert(WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL, "status %#x", ws);
}

/* The plan matches what the hierarchy offers, whatever host this is. */
Test(real, plan_matches_host)
{
	struct error err;
	struct limit_set l;
	struct limit_plan p;

	cr_assert_eq(cgroup_create(real.root, real.name, &real.cg, &err), 0,
		     "%s", err.msg);
	limit_for_vm(2, 512 * MIB, false, 0, 0, &l);
	limit_plan_make(&l, real.cg.controllers, &p);
	cr_assert_eq(cgroup_apply_limits(&real.cg, &l, &p, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(p.how[LIMIT_MEMORY], real.cg.controllers & CG_MEMORY
						  ? LIMIT_KERNEL
						  : LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_CPUS], real.cg.controllers & CG_CPU
						? LIMIT_KERNEL
						: LIMIT_UNENFORCED);
	if (real.cg.controllers & CG_MEMORY) {
		char *buf;

		cr_assert_eq(read_file(xasprintf("%s/memory.max", real.cg.path),
				       64, &buf, NULL, NULL),
			     0);
		cr_assert_eq(strtoull(buf, NULL, 10), l.memory_bytes);
		free(buf);
	}
	cr_assert_eq(cgroup_destroy(&real.cg, 2000, &err), 0, "%s", err.msg);
}
