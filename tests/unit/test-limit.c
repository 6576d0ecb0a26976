/*
 * test-limit.c - sizing QEMU's limits, how each is enforced, and which
 * one a usage sample exceeds.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "cgroup.h"
#include "limit.h"
#include "procstat.h"

#define MIB (1024ull * 1024)
#define ALL (CG_CPU | CG_MEMORY | CG_PIDS | CG_IO)

Test(size, overhead)
{
	/* 96 base + 2% of 512 (10.24) + 32 per TCG vCPU + 256 cache */
	cr_assert_eq(limit_qemu_overhead(512 * MIB, 1, true, 256), 395 * MIB);
	/* KVM: no cache, 16 per vCPU */
	cr_assert_eq(limit_qemu_overhead(512 * MIB, 1, false, 256), 123 * MIB);
	/* TCG without tb-size: QEMU's own 1 GiB */
	cr_assert_eq(limit_qemu_overhead(512 * MIB, 1, true, 0),
		     (96 + 11 + 32 + 1024) * MIB);
	/* 4 vCPUs, 4 GiB: 96 + 81.92 + 128 + 256 */
	cr_assert_eq(limit_qemu_overhead(4096 * MIB, 4, true, 256), 562 * MIB);
	/* nonsense cpus count as one */
	cr_assert_eq(limit_qemu_overhead(512 * MIB, 0, false, 0),
		     limit_qemu_overhead(512 * MIB, 1, false, 0));
	/* always whole MiB, always more than the base */
	for (uint64_t ram = 16 * MIB; ram < 64 * 1024 * MIB;
	     ram = ram * 3 + 7) {
		uint64_t o = limit_qemu_overhead(ram, 2, true, 256);

		cr_assert_eq(o % MIB, 0);
		cr_assert_gt(o, 96 * MIB + ram / 50);
	}
}

Test(size, for_vm)
{
	struct limit_set l;
	uint64_t q, per;

	limit_for_vm(2, 1024 * MIB, true, 256, 300000000, &l);
	cr_assert_eq(l.cpus, 2);
	cr_assert_eq(l.cpu_time_usec, 300000000);
	cr_assert_eq(l.memory_bytes,
		     1024 * MIB +
			     limit_qemu_overhead(1024 * MIB, 2, true, 256));
	cr_assert_eq(l.swap_bytes, 0);
	cr_assert_eq(l.pids, 130);
	cr_assert_eq(l.io.major, 0);
	cr_assert_eq(limit_qemu_pids(64), 192);
	limit_cpu_max(2, &q, &per);
	cr_assert_eq(q, 200000);
	cr_assert_eq(per, 100000);
	limit_cpu_max(0, &q, &per);
	cr_assert_eq(q, 100000);
}

Test(plan, every_controller)
{
	struct limit_set l;
	struct limit_plan p;

	limit_for_vm(1, 512 * MIB, true, 256, 1000000, &l);
	l.io.major = 8;
	limit_plan_make(&l, ALL, &p);
	cr_assert_eq(p.how[LIMIT_CPUS], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_CPU_TIME], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_MEMORY], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_SWAP], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_PIDS], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_IO], LIMIT_KERNEL);
}

Test(plan, no_controller)
{
	struct limit_set l;
	struct limit_plan p;
	char buf[256];

	limit_for_vm(1, 512 * MIB, true, 256, 1000000, &l);
	l.io.minor = 1;
	limit_plan_make(&l, 0, &p);
	cr_assert_eq(p.how[LIMIT_CPUS], LIMIT_UNENFORCED);
	cr_assert_eq(p.how[LIMIT_CPU_TIME], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_MEMORY], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_SWAP], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_PIDS], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_IO], LIMIT_UNENFORCED);
	limit_plan_format(&p, buf, sizeof(buf));
	cr_assert_str_eq(buf, "cpus=unenforced cpu_time=poll memory=poll "
			      "swap=poll pids=poll io=unenforced");
	/* truncation is safe */
	limit_plan_format(&p, buf, 12);
	cr_assert_str_eq(buf, "");
	limit_plan_format(&p, buf, 17);
	cr_assert_str_eq(buf, "cpus=unenforced");
}

Test(plan, mixed_and_unset)
{
	struct limit_set l = {0};
	struct limit_plan p;
	char buf[64];

	limit_plan_make(&l, ALL, &p);
	for (int r = 0; r < LIMIT__N; r++)
		cr_assert_eq(p.how[r], LIMIT_UNSET);
	limit_plan_format(&p, buf, sizeof(buf));
	cr_assert_str_eq(buf, "none");
	l.memory_bytes = 1 << 30;
	l.pids = 100;
	limit_plan_make(&l, CG_PIDS, &p);
	cr_assert_eq(p.how[LIMIT_MEMORY], LIMIT_POLL);
	cr_assert_eq(p.how[LIMIT_PIDS], LIMIT_KERNEL);
	cr_assert_eq(p.how[LIMIT_CPUS], LIMIT_UNSET);
	cr_assert_eq(p.how[LIMIT_CPU_TIME], LIMIT_UNSET);
}

Test(sample, sources)
{
	struct cgroup_stats cs = {0};
	struct proc_usage pu = {0};
	struct limit_sample s;

	/* nothing at all */
	limit_sample_fill(&s, NULL, NULL);
	cr_assert_eq(s.have, 0);

	/* this host: cpu.stat from the cgroup, memory and tasks from /proc */
	cs.have = CGS_CPU | CGS_CPU_PSI;
	cs.cpu_usec = 5000;
	pu.have = PU_CPU | PU_RSS | PU_SWAP | PU_HWM | PU_THREADS;
	pu.cpu_usec = 4000;
	pu.rss_bytes = 100 * MIB;
	pu.swap_bytes = 5 * MIB;
	pu.vm_hwm_bytes = 120 * MIB;
	pu.threads = 6;
	limit_sample_fill(&s, &cs, &pu);
	cr_assert_eq(s.have, LS_CPU | LS_MEMORY | LS_MEMORY_PEAK | LS_PIDS);
	cr_assert_eq(s.cpu_usec, 5000, "the cgroup counts more: it wins");
	cr_assert_eq(s.memory_bytes, 105 * MIB, "swap counts as memory");
	cr_assert_eq(s.memory_peak, 120 * MIB);
	cr_assert_eq(s.pids, 6);

	/* full v2: the cgroup's numbers everywhere */
	cs.have = CGS_CPU | CGS_MEM | CGS_MEM_PEAK | CGS_PIDS | CGS_MEM_EVENTS |
		  CGS_PIDS_EVENTS;
	cs.mem_current = 300 * MIB;
	cs.mem_peak = 310 * MIB;
	cs.pids_current = 9;
	cs.oom_kill = 1;
	cs.pids_denied = 2;
	limit_sample_fill(&s, &cs, &pu);
	cr_assert_eq(s.memory_bytes, 300 * MIB);
	cr_assert_eq(s.memory_peak, 310 * MIB);
	cr_assert_eq(s.pids, 9);
	cr_assert_eq(s.oom_kills, 1);
	cr_assert_eq(s.pids_denied, 2);

	/* /proc only (no cgroup at all) */
	limit_sample_fill(&s, NULL, &pu);
	cr_assert_eq(s.cpu_usec, 4000);
	cr_assert_eq(s.have & (LS_OOM_KILLS | LS_PIDS_DENIED), 0);
}

static void
setup(struct limit_set *l, struct limit_plan *p, unsigned controllers)
{
	limit_for_vm(1, 512 * MIB, true, 256, 10000000, l);
	limit_plan_make(l, controllers, p);
}

Test(check, nothing_exceeded)
{
	struct limit_set l;
	struct limit_plan p;
	struct limit_sample s = {.have = LS_CPU | LS_MEMORY | LS_PIDS};
	struct limit_hit h;

	setup(&l, &p, 0);
	s.cpu_usec = l.cpu_time_usec; /* equal is not over */
	s.memory_bytes = l.memory_bytes;
	s.pids = l.pids;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 0);
	/* missing numbers prove nothing */
	s.have = 0;
	s.cpu_usec = s.memory_bytes = s.pids = UINT64_MAX;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 0);
}

Test(check, polled)
{
	struct limit_set l;
	struct limit_plan p;
	struct limit_sample s = {.have = LS_CPU | LS_MEMORY | LS_PIDS};
	struct limit_hit h;

	setup(&l, &p, 0);
	s.cpu_usec = l.cpu_time_usec + 1;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 1);
	cr_assert_str_eq(h.name, "cpu_time");
	cr_assert_str_eq(h.unit, "usec");
	cr_assert_eq(h.value, 10000001);
	cr_assert_eq(h.max, 10000000);
	/* memory is named first when both are over */
	s.memory_bytes = l.memory_bytes + 1;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 1);
	cr_assert_str_eq(h.name, "memory");
	cr_assert_str_eq(h.unit, "bytes");
	cr_assert_eq(h.value, l.memory_bytes + 1);
	s.memory_bytes = 0;
	s.pids = l.pids + 1;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 1);
	cr_assert_str_eq(h.name, "pids");
	cr_assert_str_eq(h.unit, "tasks");
}

Test(check, kernel)
{
	struct limit_set l;
	struct limit_plan p;
	struct limit_sample s = {0};
	struct limit_hit h;

	setup(&l, &p, ALL);
	/* memory.current over max cannot last; only the kernel's act counts */
	s.have = LS_MEMORY | LS_OOM_KILLS | LS_PIDS | LS_PIDS_DENIED;
	s.memory_bytes = l.memory_bytes * 2;
	s.pids = l.pids * 2;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 0);
	s.oom_kills = 1;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 1);
	cr_assert_str_eq(h.name, "memory");
	cr_assert_eq(h.value, l.memory_bytes, "no peak: the max was reached");
	s.have |= LS_MEMORY_PEAK;
	s.memory_peak = l.memory_bytes - 4096;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 1);
	cr_assert_eq(h.value, l.memory_bytes - 4096);
	s.oom_kills = 0;
	s.pids_denied = 3;
	s.pids = l.pids;
	cr_assert_eq(limit_check(&l, &p, &s, &h), 1);
	cr_assert_str_eq(h.name, "pids");
	cr_assert_eq(h.value, l.pids);
	cr_assert_eq(h.max, l.pids);
}

Test(check, oom_without_memory_limit_is_not_ours)
{
	struct limit_set l = {.cpus = 1};
	struct limit_plan p;
	struct limit_sample s = {.have = LS_OOM_KILLS, .oom_kills = 1};
	struct limit_hit h;

	/* a host-wide OOM killed QEMU: an infrastructure error, no limit */
	limit_plan_make(&l, ALL, &p);
	cr_assert_eq(limit_check(&l, &p, &s, &h), 0);
}

Test(names, all)
{
	cr_assert_str_eq(limit_res_name(LIMIT_CPUS), "cpus");
	cr_assert_str_eq(limit_res_name(LIMIT_CPU_TIME), "cpu_time");
	cr_assert_str_eq(limit_res_name(LIMIT_MEMORY), "memory");
	cr_assert_str_eq(limit_res_name(LIMIT_SWAP), "swap");
	cr_assert_str_eq(limit_res_name(LIMIT_PIDS), "pids");
	cr_assert_str_eq(limit_res_name(LIMIT_IO), "io");
	cr_assert_str_eq(limit_res_name(LIMIT__N), "?");
	cr_assert_str_eq(limit_how_name(LIMIT_UNSET), "unset");
	cr_assert_str_eq(limit_how_name(LIMIT_KERNEL), "kernel");
	cr_assert_str_eq(limit_how_name(LIMIT_POLL), "poll");
	cr_assert_str_eq(limit_how_name(LIMIT_UNENFORCED), "unenforced");
}
