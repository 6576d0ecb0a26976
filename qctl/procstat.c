/*
 * procstat.c - CPU, memory and I/O of one process from /proc/PID.
 *
 * Where cgroup v2 lacks the memory or pids controller, the manager polls
 * QEMU's own numbers instead.  QEMU names its threads and may rename
 * itself (prctl PR_SET_NAME), so the comm in /proc/PID/stat is hostile
 * text: fields are counted from the last ')' of the line, never from the
 * first.
 */
#include "procstat.h"

#include <stdio.h>
#include <string.h>

#define PROC_FILE_MAX (64u * 1024)

/* A /proc number: at most 20 digits. */
static int
parse_u64_dec_20(const char *s, size_t n, uint64_t *out)
{
	return n > 20 ? -EINVAL : parse_u64_dec(s, n, out);
}

/* ticks of 1/clk_tck s in usec, or -ERANGE. */
static int
ticks_to_usec(uint64_t t, long clk_tck, uint64_t *usec)
{
	uint64_t whole = t / clk_tck, part = t % clk_tck;

	if (whole > UINT64_MAX / 1000000)
		return -ERANGE;
	*usec = whole * 1000000 + part * 1000000 / clk_tck;
	return 0;
}

/* Fields of /proc/PID/stat counted after the comm: state is index 0. */
enum {
	ST_UTIME = 11,	   /* field 14 */
	ST_STIME = 12,	   /* 15 */
	ST_CUTIME = 13,	   /* 16 */
	ST_CSTIME = 14,	   /* 17 */
	ST_THREADS = 17,   /* 20 */
	ST_STARTTIME = 19, /* 22 */
	ST_NEED = 20,
};

int
procstat_parse_stat(const char *buf, long clk_tck, struct proc_usage *u,
		    struct error *err)
{
	const char *rp = strrchr(buf, ')'), *p;
	const char *tok[ST_NEED];
	size_t tl[ST_NEED], nt = 0;
	uint64_t v[4], threads, start, sum = 0, usec;
	static const int cpu_fields[4] = {ST_UTIME, ST_STIME, ST_CUTIME,
					  ST_CSTIME};

	/* at most 1 GHz, so that ticks_to_usec cannot overflow */
	if (clk_tck <= 0 || clk_tck > 1000000000)
		return error_set(err, EINVAL, "bad clock tick %ld", clk_tck);
	/* "pid (comm) S ..." */
	p = buf + strspn(buf, "0123456789");
	if (p == buf || p[0] != ' ' || p[1] != '(' || !rp || rp <= p + 1)
		return error_set(err, EBADMSG, "stat: no \"pid (comm)\"");
	p = rp + 1;
	while (nt < ST_NEED) {
		p += strspn(p, " ");
		if (!*p || *p == '\n')
			break;
		tok[nt] = p;
		tl[nt] = strcspn(p, " \n");
		p += tl[nt];
		nt++;
	}
	if (nt < ST_NEED)
		return error_set(err, EBADMSG,
				 "stat: %zu fields after the comm, want %d", nt,
				 ST_NEED);
	for (int i = 0; i < 4; i++) {
		int f = cpu_fields[i];

		if (parse_u64_dec_20(tok[f], tl[f], &v[i]) < 0 ||
		    v[i] > UINT64_MAX - sum)
			return error_set(
				err, EBADMSG, "stat: bad CPU time \"%.*s\"",
				(int)(tl[f] > 24 ? 24 : tl[f]), tok[f]);
		sum += v[i];
	}
	if (parse_u64_dec_20(tok[ST_THREADS], tl[ST_THREADS], &threads) < 0 ||
	    threads > UINT32_MAX ||
	    parse_u64_dec_20(tok[ST_STARTTIME], tl[ST_STARTTIME], &start) < 0)
		return error_set(err, EBADMSG,
				 "stat: bad thread count or start time");
	if (ticks_to_usec(sum, clk_tck, &usec) < 0)
		return error_set(err, ERANGE, "stat: CPU time out of range");
	u->cpu_usec = usec;
	u->start_ticks = start;
	u->threads = (uint32_t)threads;
	u->have |= PU_CPU | PU_THREADS;
	return 0;
}

/*
 * "Key:<blanks>value[ kB]" lines.  Unknown keys are skipped; a wanted key
 * twice, without a number, or too large in bytes is an error.  Bit i of
 * kb says keys[i] is in kB and becomes bytes.
 */
static int
parse_colon_keyed(const char *buf, const char *what, const char *const *keys,
		  size_t n, unsigned kb, uint64_t *vals, unsigned *found,
		  struct error *err)
{
	const char *p = buf;
	unsigned seen = 0, lineno = 0;

	while (*p) {
		const char *line = p, *colon, *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p), i, dl;
		uint64_t v;

		p = nl ? nl + 1 : p + len;
		lineno++;
		colon = memchr(line, ':', len);
		if (!colon)
			continue;
		for (i = 0; i < n; i++)
			if ((size_t)(colon - line) == strlen(keys[i]) &&
			    !memcmp(line, keys[i], colon - line))
				break;
		if (i == n)
			continue;
		if (seen & (1u << i))
			return error_set(err, EBADMSG, "%s line %u: second %s",
					 what, lineno, keys[i]);
		colon++;
		colon += strspn(colon, " \t");
		dl = strspn(colon, "0123456789");
		if (colon + dl > line + len || parse_u64_dec_20(colon, dl, &v) < 0 ||
		    ((kb & (1u << i)) ? (colon + dl + 3 != line + len ||
					 memcmp(colon + dl, " kB", 3))
				      : colon + dl != line + len))
			return error_set(err, EBADMSG,
					 "%s line %u: bad %s: \"%.*s\"", what,
					 lineno, keys[i],
					 (int)(len > 60 ? 60 : len), line);
		if (kb & (1u << i)) {
			if (v > UINT64_MAX / 1024)
				return error_set(err, ERANGE,
						 "%s line %u: %s out of range",
						 what, lineno, keys[i]);
			v *= 1024;
		}
		vals[i] = v;
		seen |= 1u << i;
	}
	*found = seen;
	return 0;
}

int
procstat_parse_status(const char *buf, struct proc_usage *u, struct error *err)
{
	static const char *const keys[] = {"VmRSS", "VmHWM", "VmSwap",
					   "Threads"};
	static const unsigned bits[] = {PU_RSS, PU_HWM, PU_SWAP, PU_THREADS};
	uint64_t v[4] = {0};
	unsigned found;
	int r;

	r = parse_colon_keyed(buf, "status", keys, 4, 7, v, &found, err);
	if (r < 0)
		return r;
	if ((found & 8) && v[3] > UINT32_MAX)
		return error_set(err, EBADMSG, "status: bad Threads");
	if (found & 1)
		u->rss_bytes = v[0];
	if (found & 2)
		u->vm_hwm_bytes = v[1];
	if (found & 4)
		u->swap_bytes = v[2];
	if (found & 8)
		u->threads = (uint32_t)v[3];
	for (int i = 0; i < 4; i++)
		if (found & (1u << i))
			u->have |= bits[i];
	return 0;
}

int
procstat_parse_io(const char *buf, struct proc_usage *u, struct error *err)
{
	static const char *const keys[] = {"read_bytes", "write_bytes"};
	uint64_t v[2] = {0, 0};
	unsigned found;
	int r;

	r = parse_colon_keyed(buf, "io", keys, 2, 0, v, &found, err);
	if (r < 0)
		return r;
	if (found != 3)
		return error_set(err, EBADMSG, "io: no read_bytes/write_bytes");
	u->read_bytes = v[0];
	u->write_bytes = v[1];
	u->have |= PU_IO;
	return 0;
}

int
procstat_read(const char *procroot, pid_t pid, struct proc_usage *u,
	      struct error *err)
{
	static long clk_tck;
	const char *root = procroot ? procroot : "/proc";
	char path[4096];
	int r;

	memset(u, 0, sizeof(*u));
	if (!clk_tck)
		clk_tck = sysconf(_SC_CLK_TCK);
	for (int i = 0; i < 3; i++) {
		static const char *const files[] = {"stat", "status", "io"};
		_cleanup_free_ char *buf = NULL;

		snprintf(path, sizeof(path), "%s/%d/%s", root, (int)pid,
			 files[i]);
		r = read_file(path, PROC_FILE_MAX, &buf, NULL,
			      i < 2 ? err : NULL);
		/* /proc/PID/io needs ptrace rights: nice to have only. */
		if (r < 0 && i == 2)
			break;
		if (r < 0)
			return r;
		if (i == 0)
			r = procstat_parse_stat(buf, clk_tck, u, err);
		else if (i == 1)
			r = procstat_parse_status(buf, u, err);
		else
			(void)procstat_parse_io(buf, u, NULL);
		if (r < 0) {
			error_prefix(err, "%s", path);
			return r;
		}
	}
	return 0;
}
