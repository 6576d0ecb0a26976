/* limit.h - resource limits on a QEMU process: sizing, enforcement, checks */
#ifndef QCTL_LIMIT_H
#define QCTL_LIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Everything here is a pure function: no I/O, no clock.  cgroup.c writes
 * what limit_plan_make() says the kernel enforces; the manager samples
 * (cgroup_read_stats, procstat_read) and asks limit_check() what, if
 * anything, was exceeded.
 */

/* Controllers of cgroup v2 that qctl uses (cgroup.controllers names). */
enum {
	CG_CPU = 1 << 0,
	CG_MEMORY = 1 << 1,
	CG_PIDS = 1 << 2,
	CG_IO = 1 << 3,
};

/* Core cgroup v2 files (no controller needed) found in a cgroup. */
enum {
	CGF_CPU_STAT = 1 << 0, /* cpu.stat usage_usec (core since 4.15) */
	CGF_KILL = 1 << 1,     /* cgroup.kill (5.14) */
	CGF_FREEZE = 1 << 2,   /* cgroup.freeze (5.2) */
	CGF_PRESSURE = 1 << 3, /* cpu/memory/io.pressure (PSI) */
};

/* The resources a build is limited in. */
enum limit_res {
	LIMIT_CPUS,	/* rate: host CPUs (cpu.max) */
	LIMIT_CPU_TIME, /* total host CPU time */
	LIMIT_MEMORY,	/* guest RAM + QEMU overhead (memory.max) */
	LIMIT_SWAP,	/* memory.swap.max */
	LIMIT_PIDS,	/* tasks: processes and threads (pids.max) */
	LIMIT_IO,	/* io.max on one block device */
	LIMIT__N,
};

/* How one limit is enforced. */
enum limit_how {
	LIMIT_UNSET,	  /* not asked for */
	LIMIT_KERNEL,	  /* a cgroup controller enforces it */
	LIMIT_POLL,	  /* the manager samples usage and kills the VM */
	LIMIT_UNENFORCED, /* asked for, but nothing here can enforce it */
};

/* io.max for one whole-disk block device; major 0 = none. */
struct limit_io {
	unsigned major, minor;
	uint64_t rbps, wbps, riops, wiops; /* 0 = unlimited */
};

/* What to enforce on one VM; 0 means no limit unless said otherwise. */
struct limit_set {
	int cpus;		/* cpu.max: at most this many host CPUs */
	uint64_t cpu_time_usec; /* total CPU time of the QEMU process */
	uint64_t memory_bytes;	/* memory.max: guest RAM + overhead */
	uint64_t swap_bytes;	/* memory.swap.max; 0 = no swap at all */
	uint64_t pids;		/* pids.max: tasks, threads included */
	struct limit_io io;
};

struct limit_plan {
	enum limit_how how[LIMIT__N];
};

/* One usage sample, from the cgroup or else from /proc; LS_* in have. */
enum {
	LS_CPU = 1 << 0,
	LS_MEMORY = 1 << 1,
	LS_MEMORY_PEAK = 1 << 2,
	LS_PIDS = 1 << 3,
	LS_OOM_KILLS = 1 << 4,
	LS_PIDS_DENIED = 1 << 5,
};

struct limit_sample {
	unsigned have;
	uint64_t cpu_usec;     /* total CPU time */
	uint64_t memory_bytes; /* memory.current, or RSS + swap of QEMU */
	uint64_t memory_peak;  /* memory.peak, or VmHWM */
	uint64_t pids;	       /* pids.current, or QEMU's thread count */
	uint64_t oom_kills;    /* memory.events oom_kill */
	uint64_t pids_denied;  /* pids.events max: forks refused */
};

/* The limit that a sample exceeds, named as in the result JSON. */
struct limit_hit {
	const char *name; /* "cpu_time", "memory", "pids" */
	uint64_t value;
	uint64_t max;
	const char *unit; /* "usec", "bytes", "tasks" */
};

struct cgroup_stats;
struct proc_usage;

/* Default TCG translation cache qctl asks for (-accel tcg,tb-size=256). */
#define LIMIT_TCG_TB_MIB 256

/* Memory QEMU needs beyond guest RAM: base + 2% + per-vCPU + TCG cache. */
uint64_t limit_qemu_overhead(uint64_t guest_ram, int cpus, bool tcg,
			     uint64_t tb_mib);
/* Tasks QEMU needs: vCPU threads, thread pool, main loop, RCU, slack. */
uint64_t limit_qemu_pids(int cpus);
/* Fill l for a VM of cpus/guest_ram; cpu_time_usec 0 = unlimited. */
void limit_for_vm(int cpus, uint64_t guest_ram, bool tcg, uint64_t tb_mib,
		  uint64_t cpu_time_usec, struct limit_set *l);
/* cpu.max for cpus host CPUs: quota and period in usec. */
void limit_cpu_max(int cpus, uint64_t *quota, uint64_t *period);

/* Decide how each limit in l is enforced, given the controllers (CG_*)
 * of the VM's cgroup: 0 when there is no cgroup at all. */
void limit_plan_make(const struct limit_set *l, unsigned controllers,
		     struct limit_plan *p);
/* Turn cgroup stats and/or /proc usage (either may be NULL) into a sample:
 * cgroup values where present, /proc values for the rest. */
void limit_sample_fill(struct limit_sample *s, const struct cgroup_stats *cs,
		       const struct proc_usage *pu);
/*
 * The first limit of l (as enforced per p) that s shows exceeded: 1 and
 * hit filled, or 0.  A kernel-enforced limit counts as exceeded when the
 * kernel acted on it (an OOM kill, a refused fork).
 */
int limit_check(const struct limit_set *l, const struct limit_plan *p,
		const struct limit_sample *s, struct limit_hit *hit);

/* "cpus", "cpu_time", "memory", "swap", "pids", "io". */
const char *limit_res_name(enum limit_res r);
/* "unset", "kernel", "poll", "unenforced". */
const char *limit_how_name(enum limit_how h);
/* "memory=kernel pids=poll cpus=unenforced ..." (set limits only) */
void limit_plan_format(const struct limit_plan *p, char *buf, size_t len);

#endif
