/*
 * limit.c - resource limits on a QEMU process: sizing, enforcement, checks.
 *
 * Pure decisions only.  How much memory and how many tasks a QEMU of a
 * given size needs, which limits the kernel enforces given the cgroup
 * controllers there are, and which limit a usage sample exceeds.
 */
#include "limit.h"

#include <stdio.h>
#include <string.h>

#include "cgroup.h"
#include "procstat.h"

#define MIB (1024ull * 1024)

/* QEMU 7.2's own default translation cache for system emulation. */
#define QEMU_DEFAULT_TB_MIB 1024

/*
 * Measured here (QEMU 7.2, q35, TCG, 512 MiB guest, booted kernel): QEMU
 * itself (binary, libraries, heap, ROMs, device state) is about 55 MiB
 * resident beside guest RAM and the translation cache.  The base leaves
 * room for the block layer's bounce buffers and thread-pool stacks.
 */
#define BASE_MIB 96
/* Per vCPU: thread stack, kvm_run / softmmu TLBs, which under TCG grow
 * with the guest's working set (up to 2^20 entries per MMU mode). */
#define VCPU_KVM_MIB 16
#define VCPU_TCG_MIB 32

uint64_t
limit_qemu_overhead(uint64_t guest_ram, int cpus, bool tcg, uint64_t tb_mib)
{
	uint64_t o = BASE_MIB * MIB;

	if (cpus < 1)
		cpus = 1;
	/* Page tracking: dirty bitmaps, memslot rmaps, the TCG page table
	 * of guest RAM: about 2% of RAM, generously. */
	o += guest_ram / 50;
	o += (uint64_t)cpus * (tcg ? VCPU_TCG_MIB : VCPU_KVM_MIB) * MIB;
	/* The translation cache is touched as the guest runs new code:
	 * a long build fills all of it before the first flush. */
	if (tcg)
		o += (tb_mib ? tb_mib : QEMU_DEFAULT_TB_MIB) * MIB;
	return (o + MIB - 1) / MIB * MIB;
}

uint64_t
limit_qemu_pids(int cpus)
{
	if (cpus < 1)
		cpus = 1;
	/* main loop, RCU, signal and I/O threads, the block thread pool
	 * (64 workers at most per AioContext), one thread per vCPU, slack */
	return 128 + (uint64_t)cpus;
}

void
limit_for_vm(int cpus, uint64_t guest_ram, bool tcg, uint64_t tb_mib,
	     uint64_t cpu_time_usec, struct limit_set *l)
{
	memset(l, 0, sizeof(*l));
	l->cpus = cpus < 1 ? 1 : cpus;
	l->cpu_time_usec = cpu_time_usec;
	l->memory_bytes =
		guest_ram + limit_qemu_overhead(guest_ram, cpus, tcg, tb_mib);
	/* A throwaway VM never swaps: swapped guest RAM would make
	 * memory.max meaningless and thrash the host's disk. */
	l->swap_bytes = 0;
	l->pids = limit_qemu_pids(cpus);
}

void
limit_cpu_max(int cpus, uint64_t *quota, uint64_t *period)
{
	/* 100 ms is the kernel's default period; cpus of it per period
	 * caps the VM at cpus host CPUs, emulation threads included. */
	*period = 100000;
	*quota = (uint64_t)(cpus < 1 ? 1 : cpus) * *period;
}

void
limit_plan_make(const struct limit_set *l, unsigned controllers,
		struct limit_plan *p)
{
	enum limit_how *h = p->how;

	memset(p, 0, sizeof(*p));
	if (l->cpus > 0)
		/* A rate cannot be polled into shape: without the cpu
		 * controller only the vCPU count bounds the VM. */
		h[LIMIT_CPUS] =
			controllers & CG_CPU ? LIMIT_KERNEL : LIMIT_UNENFORCED;
	/* No kernel knob caps total CPU time of a cgroup: always polled,
	 * from cpu.stat (core, no controller needed) or /proc/PID/stat. */
	if (l->cpu_time_usec)
		h[LIMIT_CPU_TIME] = LIMIT_POLL;
	if (l->memory_bytes) {
		h[LIMIT_MEMORY] =
			controllers & CG_MEMORY ? LIMIT_KERNEL : LIMIT_POLL;
		/* Polled, swap counts as memory (RSS + VmSwap). */
		h[LIMIT_SWAP] = h[LIMIT_MEMORY];
	}
	if (l->pids)
		h[LIMIT_PIDS] =
			controllers & CG_PIDS ? LIMIT_KERNEL : LIMIT_POLL;
	if (l->io.major || l->io.minor)
		h[LIMIT_IO] =
			controllers & CG_IO ? LIMIT_KERNEL : LIMIT_UNENFORCED;
}

void
limit_sample_fill(struct limit_sample *s, const struct cgroup_stats *cs,
		  const struct proc_usage *pu)
{
	unsigned ch = cs ? cs->have : 0, ph = pu ? pu->have : 0;

	memset(s, 0, sizeof(*s));
	/* The cgroup counts every task QEMU ever had; /proc only QEMU. */
	if (ch & CGS_CPU) {
		s->cpu_usec = cs->cpu_usec;
		s->have |= LS_CPU;
	} else if (ph & PU_CPU) {
		s->cpu_usec = pu->cpu_usec;
		s->have |= LS_CPU;
	}
	if (ch & CGS_MEM) {
		s->memory_bytes = cs->mem_current;
		s->have |= LS_MEMORY;
	} else if (ph & PU_RSS) {
		s->memory_bytes =
			pu->rss_bytes + (ph & PU_SWAP ? pu->swap_bytes : 0);
		s->have |= LS_MEMORY;
	}
	if (ch & CGS_MEM_PEAK) {
		s->memory_peak = cs->mem_peak;
		s->have |= LS_MEMORY_PEAK;
	} else if (ph & PU_HWM) {
		s->memory_peak = pu->vm_hwm_bytes;
		s->have |= LS_MEMORY_PEAK;
	}
	if (ch & CGS_PIDS) {
		s->pids = cs->pids_current;
		s->have |= LS_PIDS;
	} else if (ph & PU_THREADS) {
		s->pids = pu->threads;
		s->have |= LS_PIDS;
	}
	if (ch & CGS_MEM_EVENTS) {
		s->oom_kills = cs->oom_kill;
		s->have |= LS_OOM_KILLS;
	}
	if (ch & CGS_PIDS_EVENTS) {
		s->pids_denied = cs->pids_denied;
		s->have |= LS_PIDS_DENIED;
	}
}

static int
hit_set(struct limit_hit *hit, const char *name, uint64_t value, uint64_t max,
	const char *unit)
{
	hit->name = name;
	hit->value = value;
	hit->max = max;
	hit->unit = unit;
	return 1;
}

int
limit_check(const struct limit_set *l, const struct limit_plan *p,
	    const struct limit_sample *s, struct limit_hit *hit)
{
	const enum limit_how *h = p->how;

	/* Memory first: an OOM kill is what ends QEMU, and the result
	 * must name it rather than "QEMU died". */
	if (h[LIMIT_MEMORY] == LIMIT_KERNEL && (s->have & LS_OOM_KILLS) &&
	    s->oom_kills > 0)
		return hit_set(hit, "memory",
			       s->have & LS_MEMORY_PEAK ? s->memory_peak
							: l->memory_bytes,
			       l->memory_bytes, "bytes");
	if (h[LIMIT_MEMORY] == LIMIT_POLL && (s->have & LS_MEMORY) &&
	    s->memory_bytes > l->memory_bytes)
		return hit_set(hit, "memory", s->memory_bytes, l->memory_bytes,
			       "bytes");
	/* A refused fork or thread makes QEMU abort: name the limit. */
	if (h[LIMIT_PIDS] == LIMIT_KERNEL && (s->have & LS_PIDS_DENIED) &&
	    s->pids_denied > 0)
		return hit_set(hit, "pids",
			       s->have & LS_PIDS ? s->pids : l->pids, l->pids,
			       "tasks");
	if (h[LIMIT_PIDS] == LIMIT_POLL && (s->have & LS_PIDS) &&
	    s->pids > l->pids)
		return hit_set(hit, "pids", s->pids, l->pids, "tasks");
	if (h[LIMIT_CPU_TIME] == LIMIT_POLL && (s->have & LS_CPU) &&
	    s->cpu_usec > l->cpu_time_usec)
		return hit_set(hit, "cpu_time", s->cpu_usec, l->cpu_time_usec,
			       "usec");
	return 0;
}

const char *
limit_res_name(enum limit_res r)
{
	static const char *const names[LIMIT__N] = {
		[LIMIT_CPUS] = "cpus",	   [LIMIT_CPU_TIME] = "cpu_time",
		[LIMIT_MEMORY] = "memory", [LIMIT_SWAP] = "swap",
		[LIMIT_PIDS] = "pids",	   [LIMIT_IO] = "io",
	};

	return (unsigned)r < LIMIT__N ? names[r] : "?";
}

const char *
limit_how_name(enum limit_how h)
{
	switch (h) {
	case LIMIT_UNSET:
		return "unset";
	case LIMIT_KERNEL:
		return "kernel";
	case LIMIT_POLL:
		return "poll";
	case LIMIT_UNENFORCED:
		return "unenforced";
	}
	return "?";
}

void
limit_plan_format(const struct limit_plan *p, char *buf, size_t len)
{
	size_t o = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (int r = 0; r < LIMIT__N; r++) {
		int n;

		if (p->how[r] == LIMIT_UNSET)
			continue;
		n = snprintf(buf + o, len - o, "%s%s=%s", o ? " " : "",
			     limit_res_name(r), limit_how_name(p->how[r]));
		if (n < 0 || (size_t)n >= len - o) {
			buf[o] = '\0'; /* whole entries or none */
			return;
		}
		o += n;
	}
	if (!o)
		snprintf(buf, len, "none");
}
