/* cgroup.h - cgroup v2: one cgroup per VM, limits, stats, freeze, kill */
#ifndef QCTL_CGROUP_H
#define QCTL_CGROUP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "limit.h"
#include "util.h"

/* Every VM cgroup lives in ROOT/qctl/NAME. */
#define CGROUP_PARENT "qctl"

/* One VM's cgroup, open.  All I/O goes through dirfd, never a path. */
struct cgroup {
	int dirfd;     /* ROOT/qctl/NAME */
	int parent_fd; /* ROOT/qctl, for rmdir */
	char *path;    /* for messages */
	char *name;
	unsigned controllers; /* CG_* usable in this cgroup */
	unsigned missing;     /* CG_* qctl wants but the hierarchy lacks */
	unsigned features;    /* CGF_* core files present */
};

/* Pressure stall information of one resource (a *.pressure file). */
struct cgroup_psi {
	double some_avg10, some_avg60, some_avg300;
	uint64_t some_total; /* usec */
	double full_avg10, full_avg60, full_avg300;
	uint64_t full_total;
	bool has_full;
};

/* Which cgroup_stats fields were read (CGS_* in have). */
enum {
	CGS_CPU = 1 << 0,	  /* usage/user/system_usec */
	CGS_THROTTLE = 1 << 1,	  /* nr_throttled, throttled_usec */
	CGS_MEM = 1 << 2,	  /* mem_current */
	CGS_MEM_PEAK = 1 << 3,	  /* mem_peak (5.19+) */
	CGS_MEM_EVENTS = 1 << 4,  /* oom, oom_kill, mem_max_events */
	CGS_MEM_STAT = 1 << 5,	  /* anon, file, shmem, kernel */
	CGS_SWAP = 1 << 6,	  /* swap_current */
	CGS_PIDS = 1 << 7,	  /* pids_current */
	CGS_PIDS_EVENTS = 1 << 8, /* pids_denied */
	CGS_IO = 1 << 9,	  /* io_rbytes, io_wbytes */
	CGS_CPU_PSI = 1 << 10,
	CGS_MEM_PSI = 1 << 11,
	CGS_IO_PSI = 1 << 12,
};

struct cgroup_stats {
	unsigned have;
	uint64_t cpu_usec, user_usec, system_usec;
	uint64_t nr_throttled, throttled_usec;
	uint64_t mem_current, mem_peak;
	uint64_t oom, oom_kill, mem_max_events;
	uint64_t anon, file, shmem, kernel;
	uint64_t swap_current;
	uint64_t pids_current, pids_denied;
	uint64_t io_rbytes, io_wbytes;
	struct cgroup_psi cpu_psi, mem_psi, io_psi;
};

/* ---- pure parsers: NUL-terminated buffers, strict, no I/O ---------- */

/* The cgroup2 mount in /proc/self/mountinfo text: /sys/fs/cgroup first,
 * then /sys/fs/cgroup/unified, then any; -ENOENT if there is none. */
int cgroup_find_mount(const char *mountinfo, char **path, struct error *err);
/* "cpu io memory pids" (cgroup.controllers) into CG_* bits; others skipped. */
int cgroup_parse_controllers(const char *buf, unsigned *mask,
			     struct error *err);
/*
 * "key value" lines (cpu.stat, memory.stat, memory.events, cgroup.events):
 * fill vals[i] for each keys[i] found and set bit i in *found.  Unknown
 * keys are skipped; a wanted key twice or with a bad number is an error.
 */
int cgroup_parse_keyed(const char *buf, const char *const *keys, uint64_t *vals,
		       size_t n, unsigned *found, struct error *err);
/* cpu.stat into st: CGS_CPU, and CGS_THROTTLE with the cpu controller. */
int cgroup_parse_cpu_stat(const char *buf, struct cgroup_stats *st,
			  struct error *err);
/* memory.stat: anon, file, shmem, kernel (CGS_MEM_STAT). */
int cgroup_parse_memory_stat(const char *buf, struct cgroup_stats *st,
			     struct error *err);
/* memory.events: oom, oom_kill, max (CGS_MEM_EVENTS). */
int cgroup_parse_memory_events(const char *buf, struct cgroup_stats *st,
			       struct error *err);
/* A *.pressure file: a "some" line and an optional "full" line. */
int cgroup_parse_pressure(const char *buf, struct cgroup_psi *psi,
			  struct error *err);
/* io.stat: rbytes and wbytes summed over devices (CGS_IO). */
int cgroup_parse_io_stat(const char *buf, struct cgroup_stats *st,
			 struct error *err);
/* cgroup.procs: one pid a line (*pids allocated, NULL when empty). */
int cgroup_parse_pids(const char *buf, pid_t **pids, size_t *n,
		      struct error *err);
/* A file holding one number ("max" gives UINT64_MAX), e.g. memory.current. */
int cgroup_parse_u64(const char *buf, uint64_t *val, struct error *err);

/* ---- the hierarchy --------------------------------------------------- */

/* The cgroup2 mount: override if given (a test's fake tree), else from
 * /proc/self/mountinfo.  *root is allocated. */
int cgroup_discover(const char *override, char **root, struct error *err);
/*
 * Make ROOT/qctl (enabling cpu, memory, pids, io in subtree_control where
 * ROOT offers them) and ROOT/qctl/NAME.  A missing controller is no
 * error: it shows in cg->missing.  NAME must not exist yet; qctl uses
 * "<manager pid>-<vm>" so that cgroup_gc can tell whose it is.
 */
int cgroup_create(const char *root, const char *name, struct cgroup *cg,
		  struct error *err);
/* Open an existing ROOT/qctl/NAME (tests, gc); controllers as it has them. */
int cgroup_open(const char *root, const char *name, struct cgroup *cg,
		struct error *err);
/*
 * Write the limits that p says the kernel enforces.  A limit file that
 * does not exist (memory.swap.max without swap accounting) is no error:
 * p is changed to poll or unenforced for it.  Other write errors are.
 */
int cgroup_apply_limits(struct cgroup *cg, const struct limit_set *l,
			struct limit_plan *p, struct error *err);

/* Before fork: an O_WRONLY|O_CLOEXEC fd of cgroup.procs for the child. */
int cgroup_open_procs(const struct cgroup *cg, struct error *err);
/* In the child, before exec: move the caller in; async-signal-safe, no
 * allocation.  0 or -errno. */
int cgroup_enter_self(int procs_fd);

/*
 * Read every stat file there is.  A missing file leaves its CGS_* bit
 * clear; a file that is there but unreadable or garbage also leaves the
 * bit clear, and the first such problem is returned as an error after all
 * files were tried, so st is usable either way.
 */
int cgroup_read_stats(const struct cgroup *cg, struct cgroup_stats *st,
		      struct error *err);
/* cgroup.events: populated and frozen (each may be NULL). */
int cgroup_read_events(const struct cgroup *cg, bool *populated, bool *frozen,
		       struct error *err);
/* The pids in cgroup.procs (*pids allocated, may be empty). */
int cgroup_read_pids(const struct cgroup *cg, pid_t **pids, size_t *n,
		     struct error *err);
/* Ask the kernel to freeze or thaw every task; -EOPNOTSUPP without
 * cgroup.freeze.  The change is asynchronous: cgroup.events says frozen. */
int cgroup_freeze(const struct cgroup *cg, bool frozen, struct error *err);
/* A one-line note of what the hierarchy lacks, or false if nothing lacks;
 * true only the first time per process, so that it is said once. */
bool cgroup_missing_note(const struct cgroup *cg, char *buf, size_t len);
/*
 * SIGKILL everything in the cgroup (cgroup.kill, else each pid of
 * cgroup.procs), wait at most timeout_ms for it to empty, rmdir it and
 * close cg.  ENOENT is success; cg is released even on error.
 */
int cgroup_destroy(struct cgroup *cg, int timeout_ms, struct error *err);
/* Close cg's fds and free it, leaving the cgroup as it is. */
void cgroup_close(struct cgroup *cg);
/*
 * Destroy ROOT/qctl/<pid>-* cgroups whose manager pid is gone (a crashed
 * manager's leftovers).  *reaped counts them (may be NULL).
 */
int cgroup_gc(const char *root, int timeout_ms, unsigned *reaped,
	      struct error *err);

#endif
