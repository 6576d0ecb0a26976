/*
 * test-procstat.c - /proc/PID/stat, status and io parsing.
 *
 * The comm field is chosen by the process itself (QEMU renames threads; a
 * compromised QEMU could pick any name), so it is where a naive parser is
 * fooled: parens, spaces and fake fields inside the name.
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "procstat.h"

#define DATA "tests/unit/data/cgroup/"

static char *
slurp(const char *path)
{
	char *buf = NULL;
	struct error err;

	cr_assert_eq(read_file(path, 1 << 20, &buf, NULL, &err), 0, "%s",
		     err.msg);
	return buf;
}

/* A stat line with the given comm; utime 150, stime 50, cutime 7,
 * cstime 3 ticks, 4 threads, started at tick 110918. */
static char *
stat_line(const char *comm)
{
	return xasprintf("4242 (%s) S 4200 4242 4242 0 -1 4194560 9607 266342 "
			 "0 105 150 50 7 3 20 0 4 0 110918 5255168 990 "
			 "18446744073709551615 1 1 0 0 0 0 65536 4 0 1 0 0 "
			 "17 0 0 0 0 0 0 1 1 1 1 1 1 1 0\n",
			 comm);
}

Test(stat, fixture)
{
	struct proc_usage u = {0};
	char *b = slurp(DATA "proc-stat");
	struct error err;

	cr_assert_eq(procstat_parse_stat(b, 100, &u, &err), 0, "%s", err.msg);
	/* utime 3 + stime 4 + cutime 4980 + cstime 162 = 5149 ticks */
	cr_assert_eq(u.cpu_usec, 51490000);
	cr_assert_eq(u.threads, 1);
	cr_assert_eq(u.start_ticks, 110918);
	cr_assert_eq(u.have, PU_CPU | PU_THREADS);
	free(b);
}

Test(stat, hostile_comms)
{
	static const char *const comms[] = {
		"qemu-system-x86",
		"(qemu) x)",
		") R 1 1 1 1 1 1 1 1 1 1 999999 999999 9 9 20 0 77 0 1",
		"a b c",
		"))))",
		"(",
		"",
		"x\ny",
	};

	for (size_t i = 0; i < ARRAY_SIZE(comms); i++) {
		struct proc_usage u = {0};
		struct error err;
		char *line = stat_line(comms[i]);

		cr_assert_eq(procstat_parse_stat(line, 100, &u, &err), 0,
			     "comm \"%s\": %s", comms[i], err.msg);
		cr_assert_eq(u.cpu_usec, 2100000, "comm \"%s\"", comms[i]);
		cr_assert_eq(u.threads, 4, "comm \"%s\"", comms[i]);
		cr_assert_eq(u.start_ticks, 110918);
		free(line);
	}
}

Test(stat, clock_ticks)
{
	struct proc_usage u = {0};
	char *line = stat_line("q");

	/* 210 ticks at 1000 Hz is 210 ms; at 3 Hz, 70 s */
	cr_assert_eq(procstat_parse_stat(line, 1000, &u, NULL), 0);
	cr_assert_eq(u.cpu_usec, 210000);
	cr_assert_eq(procstat_parse_stat(line, 3, &u, NULL), 0);
	cr_assert_eq(u.cpu_usec, 70000000);
	cr_assert_eq(procstat_parse_stat(line, 0, &u, NULL), -EINVAL);
	cr_assert_eq(procstat_parse_stat(line, -1, &u, NULL), -EINVAL);
	free(line);
}

Test(stat, garbage)
{
	static const char *const bad[] = {
		"",
		"\n",
		"4242",
		"4242 (q",
		"(q) S 1 2 3",
		"x (q) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 1 0 0\n",
		"4242(q) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 1 0 0\n",
		/* too few fields after the comm */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0\n",
		/* utime not a number */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 x 1 1 1 20 0 1 0 1 0 0\n",
		/* negative cutime */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 1 1 -1 1 20 0 1 0 1 0 0\n",
		/* utime overflows u64 */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551616 1 1 1 "
		"20 0 1 0 1 0 0\n",
		/* the sum overflows */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 1 0 0 "
		"20 0 1 0 1 0 0\n",
		/* thread count garbage */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 many 0 1 0 0\n",
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 4294967296 0 1 "
		"0 0\n",
		/* fields on the next line do not count */
		"4242 (q) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1\n20 0 1 0 1 0 0\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_usage u = {0};
		struct error err;

		cr_assert_lt(procstat_parse_stat(bad[i], 100, &u, &err), 0,
			     "case %zu accepted", i);
		cr_assert_eq(u.have, 0, "case %zu", i);
	}
}

Test(stat, huge_but_valid)
{
	struct proc_usage u = {0};
	const char *line = "1 (q) S 1 1 1 0 -1 0 0 0 0 0 18446744073709551615 "
			   "0 0 0 20 0 1 0 1 0 0\n";

	/* 2^64-1 ticks at 100 Hz is more usec than u64 holds */
	cr_assert_eq(procstat_parse_stat(line, 100, &u, NULL), -ERANGE);
	/* at 1 GHz it fits */
	cr_assert_eq(procstat_parse_stat(line, 1000000000, &u, NULL), 0);
	cr_assert_eq(u.cpu_usec, 18446744073709551ull);
}

Test(status, fixture)
{
	struct proc_usage u = {0};
	char *b = slurp(DATA "proc-status");
	struct error err;

	cr_assert_eq(procstat_parse_status(b, &u, &err), 0, "%s", err.msg);
	cr_assert_eq(u.rss_bytes, 217376ull * 1024);
	cr_assert_eq(u.vm_hwm_bytes, 224004ull * 1024);
	cr_assert_eq(u.swap_bytes, 0);
	cr_assert_eq(u.threads, 4);
	cr_assert_eq(u.have, PU_RSS | PU_HWM | PU_SWAP | PU_THREADS);
	free(b);
}

Test(status, kernel_thread_or_zombie)
{
	struct proc_usage u = {0};

	cr_assert_eq(procstat_parse_status("Name:\tkthreadd\nState:\tS\n"
					   "Threads:\t1\n",
					   &u, NULL),
		     0);
	cr_assert_eq(u.have, PU_THREADS);
	cr_assert_eq(u.threads, 1);
	memset(&u, 0, sizeof(u));
	cr_assert_eq(procstat_parse_status("", &u, NULL), 0);
	cr_assert_eq(u.have, 0);
}

Test(status, garbage)
{
	static const char *const bad[] = {
		"VmRSS:\tabc kB\n",
		"VmRSS:\t12\n",	   /* unit missing */
		"VmRSS:\t12 MB\n", /* wrong unit */
		"VmRSS:\t12 kB extra\n",
		"VmRSS:\t-12 kB\n",
		"VmRSS:\t\n",
		"VmRSS:\n12 kB\n",
		"VmRSS:\t18014398509481984 kB\n", /* bytes overflow u64 */
		"VmRSS:\t99999999999999999999999 kB\n",
		"VmRSS:\t1 kB\nVmRSS:\t2 kB\n",
		"Threads:\tmany\n",
		"Threads:\t4294967296\n",
		"Threads:\t4 kB\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct proc_usage u = {0};
		struct error err;

		cr_assert_lt(procstat_parse_status(bad[i], &u, &err), 0,
			     "case %zu accepted", i);
		cr_assert_eq(u.have, 0, "case %zu", i);
	}
}

Test(status, name_cannot_inject)
{
	struct proc_usage u = {0};

	/* the kernel escapes Name:, but even a raw one is only a value */
	cr_assert_eq(procstat_parse_status("Name:\tVmRSS: 1 kB\n"
					   "VmRSS:\t5 kB\n",
					   &u, NULL),
		     0);
	cr_assert_eq(u.rss_bytes, 5120);
}

Test(io, parse)
{
	struct proc_usage u = {0};

	cr_assert_eq(procstat_parse_io("rchar: 217507289\nwchar: 242920555\n"
				       "syscr: 69417\nsyscw: 18444\n"
				       "read_bytes: 51662848\n"
				       "write_bytes: 114069504\n"
				       "cancelled_write_bytes: 540672\n",
				       &u, NULL),
		     0);
	cr_assert_eq(u.read_bytes, 51662848);
	cr_assert_eq(u.write_bytes, 114069504);
	cr_assert_eq(u.have, PU_IO);
	cr_assert_lt(procstat_parse_io("rchar: 1\n", &u, NULL), 0);
	cr_assert_lt(
		procstat_parse_io("read_bytes: 1\nwrite_bytes: x\n", &u, NULL),
		0);
}

Test(read, self)
{
	struct proc_usage u;
	struct error err;

	/* burn a little CPU so that the count is not zero */
	for (volatile unsigned long i = 0; i < 50000000; i++)
		;
	cr_assert_eq(procstat_read(NULL, getpid(), &u, &err), 0, "%s", err.msg);
	cr_assert(u.have & PU_CPU);
	cr_assert(u.have & PU_RSS);
	cr_assert_gt(u.cpu_usec, 0);
	cr_assert_gt(u.rss_bytes, 0);
	cr_assert_geq(u.vm_hwm_bytes, u.rss_bytes);
	cr_assert_geq(u.threads, 1);
}

Test(read, gone)
{
	struct proc_usage u;
	struct error err;
	pid_t pid = fork();

	cr_assert_geq(pid, 0);
	if (pid == 0)
		_exit(0);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
	cr_assert_eq(procstat_read(NULL, pid, &u, &err), -ENOENT);
}

Test(read, fake_procroot)
{
	char dir[] = "/tmp/qctl-fakeproc-XXXXXX";
	char path[256];
	struct proc_usage u;
	struct error err;
	FILE *f;
	char *b;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/77", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/77/stat", dir);
	f = fopen(path, "w");
	b = slurp(DATA "proc-stat");
	fputs(b, f);
	free(b);
	fclose(f);
	/* status missing: an error naming the file */
	cr_assert_eq(procstat_read(dir, 77, &u, &err), -ENOENT);
	cr_assert(strstr(err.msg, "77/status"), "%s", err.msg);
	snprintf(path, sizeof(path), "%s/77/status", dir);
	f = fopen(path, "w");
	b = slurp(DATA "proc-status");
	fputs(b, f);
	free(b);
	fclose(f);
	/* io is optional */
	cr_assert_eq(procstat_read(dir, 77, &u, &err), 0, "%s", err.msg);
	cr_assert_eq(u.have, PU_CPU | PU_THREADS | PU_RSS | PU_HWM | PU_SWAP);
	cr_assert_eq(u.threads, 4, "status wins over stat for threads");
	cr_assert_eq(u.rss_bytes, 217376ull * 1024);
	/* garbage status: an error naming the file */
	f = fopen(path, "w");
	fputs("VmRSS:\tlots kB\n", f);
	fclose(f);
	cr_assert_eq(procstat_read(dir, 77, &u, &err), -EBADMSG);
	cr_assert(strstr(err.msg, "77/status"), "%s", err.msg);
	rm_rf(dir);
}
