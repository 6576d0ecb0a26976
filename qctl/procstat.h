/* procstat.h - CPU, memory and I/O of one process from /proc/PID */
#ifndef QCTL_PROCSTAT_H
#define QCTL_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Which proc_usage fields were read (PU_* in have). */
enum {
	PU_CPU = 1 << 0,     /* cpu_usec, start_ticks (stat) */
	PU_RSS = 1 << 1,     /* rss_bytes (status VmRSS) */
	PU_HWM = 1 << 2,     /* vm_hwm_bytes (status VmHWM) */
	PU_SWAP = 1 << 3,    /* swap_bytes (status VmSwap) */
	PU_THREADS = 1 << 4, /* threads (stat, or status Threads) */
	PU_IO = 1 << 5,	     /* read_bytes, write_bytes (io) */
};

struct proc_usage {
	unsigned have;
	uint64_t cpu_usec;    /* utime + stime + waited-for children */
	uint64_t start_ticks; /* start time: tells a recycled pid apart */
	uint64_t rss_bytes;
	uint64_t vm_hwm_bytes;
	uint64_t swap_bytes;
	uint32_t threads;
	uint64_t read_bytes, write_bytes; /* storage I/O caused */
};

/* /proc/PID/stat: the comm may hold spaces and ')', so fields are counted
 * from the last ')'.  clk_tck is sysconf(_SC_CLK_TCK). */
int procstat_parse_stat(const char *buf, long clk_tck, struct proc_usage *u,
			struct error *err);
/* /proc/PID/status: VmRSS, VmHWM, VmSwap, Threads (absent ones stay unset;
 * a kernel thread or zombie has no Vm* lines). */
int procstat_parse_status(const char *buf, struct proc_usage *u,
			  struct error *err);
/* /proc/PID/io: read_bytes, write_bytes. */
int procstat_parse_io(const char *buf, struct proc_usage *u, struct error *err);
/* Read stat, status and (if permitted) io of pid under procroot (NULL:
 * "/proc").  stat and status are required; io is optional. */
int procstat_read(const char *procroot, pid_t pid, struct proc_usage *u,
		  struct error *err);

#endif
