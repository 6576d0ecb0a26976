/*
 * build-sample.c - a build's resource use and its limits.
 *
 * Before QEMU starts: its cgroup made and the limits applied (or, without
 * a usable cgroup, left to polling).  While it runs: its use sampled from
 * the cgroup, /proc and QMP's block stats into the result, and the first
 * limit it exceeds ends the build.  The tick in build.c calls the samples.
 */
#include "build-int.h"

#include <string.h>

#include "procstat.h"
#include "state.h"

/* ---- resources ------------------------------------------------------- */

/* Sample QEMU's use; end the build on the first limit it exceeds. */
void
build_res_sample(struct build *b)
{
	struct cgroup_stats cs = { 0 };
	struct proc_usage pu = { 0 };
	struct limit_sample smp = { 0 };
	struct limit_hit hit;
	bool have_cg = false, have_proc = false;

	if (b->vm.pid <= 0 || b->vm.reaped)
		return;
	if (b->cg_up)
		have_cg = cgroup_read_stats(&b->cg, &cs, NULL) == 0 ||
			  cs.have != 0;
	have_proc = procstat_read(NULL, b->vm.pid, &pu, NULL) == 0;
	limit_sample_fill(&smp, have_cg ? &cs : NULL, have_proc ? &pu : NULL);
	if (smp.cpu_usec > (uint64_t)b->res.stats.cpu_usec)
		b->res.stats.cpu_usec = smp.cpu_usec;
	if (smp.memory_peak > (uint64_t)b->res.stats.mem_peak_bytes)
		b->res.stats.mem_peak_bytes = smp.memory_peak;
	if (smp.memory_bytes > (uint64_t)b->res.stats.mem_peak_bytes)
		b->res.stats.mem_peak_bytes = smp.memory_bytes;
	if (b->phase >= PH_SHUTDOWN)
		return;
	if (limit_check(&b->lim, &b->plan, &smp, &hit)) {
		int64_t v = hit.value > INT64_MAX ? INT64_MAX : hit.value;
		int64_t m = hit.max > INT64_MAX ? INT64_MAX : hit.max;

		build_limit_exceeded(b, hit.name, v, m, hit.unit,
				     "the VM exceeded its %s limit", hit.name);
	}
}

void
build_on_blockstats(struct qmp *q, json_t *ret, const struct error *err,
		    void *opaque)
{
	struct build *b = opaque;
	size_t i;
	json_t *dev;

	(void)q;
	if (err || !json_is_array(ret))
		return;
	json_array_foreach(ret, i, dev) {
		json_t *st = json_object_get(dev, "stats");
		json_t *wr = json_object_get(st, "wr_bytes");

		if (json_is_integer(wr) && json_integer_value(wr) >= 0)
			b->res.stats.disk_written_bytes = json_integer_value(wr);
	}
}

/* Where the VM's cgroup is, and how each limit will be enforced. */
void
build_res_prepare(struct build *b, struct vm_confine *confine)
{
	char note[256], plan[256];
	_cleanup_free_ char *root = NULL;
	_cleanup_free_ char *name = NULL;
	struct error err = { 0 };

	limit_for_vm(b->cpus, b->memory,
		     b->opts.accel == ACCEL_TCG, LIMIT_TCG_TB_MIB,
		     (uint64_t)b->recipe->limits.cpu_time_ms * 1000, &b->lim);
	/* the manager's pid first: a gc can tell live owners from dead */
	name = xasprintf("%d-%s-%d", (int)getpid(),
			 strrchr(b->run_dir, '/') + 1, b->boot_attempt);
	if (cgroup_discover(getenv("QCTL_CGROUP_ROOT"), &root, &err) == 0 &&
	    state_note_str(b->state, "cgroup_root", root) >= 0 &&
	    state_note_str(b->state, "cgroup_name", name) >= 0 &&
	    cgroup_create(root, name, &b->cg, &err) == 0) {
		b->cg_up = true;
		limit_plan_make(&b->lim, b->cg.controllers, &b->plan);
		if (cgroup_apply_limits(&b->cg, &b->lim, &b->plan, &err) < 0)
			build_say(b, 0, "warning: cgroup limits: %s", err.msg);
		confine->cgroup_procs_fd = cgroup_open_procs(&b->cg, &err);
		if (confine->cgroup_procs_fd < 0)
			build_say(b, 0, "warning: %s", err.msg);
		if (!b->said_plan && cgroup_missing_note(&b->cg, note,
							 sizeof(note)))
			build_say(b, 1, "%s", note);
	} else {
		if (!b->said_plan)
			build_say(b, 1,
				  "no usable cgroup v2 (%s): limits by polling",
				  err.msg);
		limit_plan_make(&b->lim, 0, &b->plan);
	}
	if (!b->said_plan) {
		limit_plan_format(&b->plan, plan, sizeof(plan));
		build_say(b, 2, "limits: %s", plan);
		json_decref(b->res.enforcement);
		b->res.enforcement = json_object();
		for (int i = 0; i < LIMIT__N; i++)
			if (b->plan.how[i] != LIMIT_UNSET)
				json_object_set_new(
					b->res.enforcement,
					limit_res_name(i),
					json_string(limit_how_name(
						b->plan.how[i])));
	}
	b->said_plan = true;
}
