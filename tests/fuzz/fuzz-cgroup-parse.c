/* fuzz-cgroup-parse.c - libFuzzer target for the cgroup and /proc parsers */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "procstat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(bool ok)
{
	if (!ok)
		abort();
}

static void
check_psi(const struct cgroup_psi *p)
{
	check(p->some_avg10 >= 0 && p->some_avg10 <= 100);
	check(p->some_avg60 >= 0 && p->some_avg60 <= 100);
	check(p->some_avg300 >= 0 && p->some_avg300 <= 100);
	check(p->full_avg10 >= 0 && p->full_avg10 <= 100);
}

/*
 * Every parser gets the same bytes (NUL-terminated, as read_at gives
 * them); any outcome but a crash, a leak or a broken promise is fine.
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = {"usage_usec", "populated", "max",
					   "oom_kill"};
	struct cgroup_stats st;
	struct cgroup_psi psi;
	struct proc_usage pu;
	struct error err;
	uint64_t vals[4], v;
	unsigned mask, found;
	pid_t *pids = NULL;
	size_t n;
	char *buf, *path = NULL;

	if (size > 1 << 16)
		return 0;
	buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';

	if (cgroup_find_mount(buf, &path, &err) == 0) {
		check(path && path[0] != '\0');
		free(path);
	}
	if (cgroup_parse_controllers(buf, &mask, &err) == 0)
		check((mask &
		       ~(unsigned)(CG_CPU | CG_MEMORY | CG_PIDS | CG_IO)) == 0);
	if (cgroup_parse_keyed(buf, keys, vals, 4, &found, &err) == 0)
		check(found < 16);
	memset(&st, 0, sizeof(st));
	if (cgroup_parse_cpu_stat(buf, &st, &err) == 0)
		check(st.have & CGS_CPU);
	memset(&st, 0, sizeof(st));
	if (cgroup_parse_memory_stat(buf, &st, &err) == 0)
		check(st.have == CGS_MEM_STAT);
	memset(&st, 0, sizeof(st));
	if (cgroup_parse_memory_events(buf, &st, &err) == 0)
		check(st.have == CGS_MEM_EVENTS);
	memset(&st, 0, sizeof(st));
	if (cgroup_parse_io_stat(buf, &st, &err) == 0)
		check(st.have == CGS_IO);
	if (cgroup_parse_pressure(buf, &psi, &err) == 0)
		check_psi(&psi);
	(void)cgroup_parse_u64(buf, &v, &err);
	if (cgroup_parse_pids(buf, &pids, &n, &err) == 0) {
		for (size_t i = 0; i < n; i++)
			check(pids[i] > 0);
		free(pids);
	}
	memset(&pu, 0, sizeof(pu));
	(void)procstat_parse_stat(buf, 100, &pu, &err);
	memset(&pu, 0, sizeof(pu));
	(void)procstat_parse_status(buf, &pu, &err);
	memset(&pu, 0, sizeof(pu));
	(void)procstat_parse_io(buf, &pu, &err);
	free(buf);
	return 0;
}
