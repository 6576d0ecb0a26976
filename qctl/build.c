/*
 * build.c - the build engine.
 *
 * One build is a state machine driven by the event loop: boot the VM
 * (paused, QMP, cont), wait for the agent's HELLO, upload the source as a
 * tar stream, run the steps one after another, fetch artifacts, power off.
 * Every wait has a deadline; every byte from the guest is bounded.
 */
#include "build.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "agent.h"
#include "cgroup.h"
#include "gitsrc.h"
#include "image.h"
#include "limit.h"
#include "netfilter.h"
#include "netns.h"
#include "peer.h"
#include "procstat.h"
#include "proxy.h"
#include "qmp.h"
#include "rundir.h"
#include "state.h"
#include "transfer.h"
#include "vm.h"

/* ids of agent operations; steps use STEP_ID_BASE + index */
enum { UPLOAD_ID = 1, ARTIFACTS_ID = 2, SETUP_ID = 3, STEP_ID_BASE = 100 };

#define TICK_MS 250
#define QMP_TIMEOUT_MS 10000
#define POWEROFF_GRACE_MS 5000
#define QUIT_GRACE_MS 2000
/* After the guest closed the agent's port: time for a SHUTDOWN to name
 * the cause (a power off or reset closes it a moment before). */
#define AGENT_CLOSED_GRACE_MS 2000
#define UPLOAD_WINDOW (512u * 1024)
#define CONSOLE_LOG_MAX (1u << 20)
/* qctl's own setup command says little; more is a broken guest. */
#define SETUP_OUTPUT_MAX (16u * 1024)
#define LINE_MAX_BYTES 4096
/* The artifacts tar may carry headers and padding beyond the payload. */
#define ARTIFACT_TAR_SLACK (16u << 20)

enum phase {
	PH_INIT,
	PH_BOOT,
	PH_SETUP,
	PH_UPLOAD,
	PH_STEP,
	PH_ARTIFACTS,
	PH_SHUTDOWN,
	PH_DONE,
};

struct build {
	struct loop *loop;
	const struct recipe *recipe;
	struct build_opts opts;
	build_done_fn done;
	void *opaque;

	struct image img;
	char *run_dir;
	char *artifacts_dir;
	/* Every file of the build is created under dir_fd (rundir.h). */
	int root_fd;		/* the checked run root */
	int dir_fd;		/* the run directory */
	int log_fd;
	int console_log_fd;
	int qemu_log_fd;
	uint64_t console_bytes;

	struct vm vm;
	struct qmp *qmp;
	struct agent_conn agent;
	bool agent_up;
	struct loop_watch *w_pid, *w_qmp, *w_agent, *w_console;
	struct loop_timer *t_phase, *t_wall, *t_tick;
	struct loop_timer *t_closed;	/* the agent's port closed */

	enum phase phase;
	int boot_attempt;
	int64_t t0, vm_t0;
	size_t step;
	int64_t step_t0;
	int upload_fd;		/* the packer's tar stream */
	bool upload_done;	/* DATA_END sent */
	bool upload_eof;	/* the stream ended */
	int64_t xfer_seen;	/* last progress of the upload, artifacts */
	struct peer_child packer;	/* packs the source, as its owner */
	struct loop_watch *w_upload, *w_packer;
	struct gitsrc *git;	/* a git source's fetch and checkout */
	int disk_fd;
	char *disk_path;
	/* mkfs.ext4 making the scratch disk: a child watched by the loop */
	pid_t mkfs_pid;
	int mkfs_pidfd;
	struct loop_watch *w_mkfs;
	int art_fd;
	uint64_t art_bytes;
	struct buf line[2];
	bool killing;
	int shutdown_stage;
	bool job_started;	/* STARTED came for the EXEC (setup, step) */
	uint64_t setup_out;	/* bytes of output of the setup EXEC */

	/* resources: the VM's cgroup where there is one, /proc otherwise */
	struct cgroup cg;
	bool cg_up;
	struct limit_set lim;
	struct limit_plan plan;
	bool said_plan;

	/* network: only for recipes with a fetch step */
	bool net;
	struct netns ns;
	struct nf_client *nf;
	struct proxy *proxy;
	struct loop_watch *w_nf, *w_proxy;
	struct loop_timer *t_proxy;	/* deadline of the proxy's "ready" */
	bool window_open;
	int net_log_fd;
	unsigned ticks;

	struct state_rec *state;
	bool paused;
	bool tty;		/* opts.out is a terminal: live status line */
	bool status_shown;

	struct build_result res;
};

static void build_teardown(struct build *b);
static void build_shutdown(struct build *b);
static void start_step(struct build *b, size_t i);
static void start_artifacts(struct build *b);
static void start_upload(struct build *b);
static void upload_stop(struct build *b);
static void net_stop(struct build *b);
static void res_sample(struct build *b);
static void net_sample(struct build *b);
static int net_window(struct build *b, bool open, const char *step,
		      struct error *err);
static int boot_vm(struct build *b, struct error *err);
static void on_boot_reset(struct loop *l, void *opaque);
static int boot_qemu(struct build *b, struct error *err);
static void mkfs_stop(struct build *b);

static void status_clear(struct build *b);
static int64_t since_start(const struct build *b);

static void
say(struct build *b, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Progress for the user: on opts.out at verbosity >= level, and the log. */
static void
say(struct build *b, int level, const char *fmt, ...)
{
	char msg[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	msg[n] = '\0';
	if (b->opts.verbosity >= level && b->opts.out) {
		struct buf vis = { 0 };

		/* messages carry guest-chosen text (artifact names, agent
		 * errors): the terminal gets it with controls made visible */
		term_sanitize(msg, n - 1, &vis);
		status_clear(b);
		fprintf(b->opts.out, "qctl: %s\n", vis.data);
		fflush(b->opts.out);
		buf_free(&vis);
	}
	if (b->log_fd >= 0 && write_in_full(b->log_fd, msg, n) < 0)
		(void)0;
}

/* Wipe the live status line before anything else is printed. */
static void
status_clear(struct build *b)
{
	if (b->status_shown) {
		fputs("\r\033[K", b->opts.out);
		b->status_shown = false;
	}
}

/* One compact line, redrawn in place: step, time and resource use. */
static void
status_draw(struct build *b)
{
	const char *what = b->phase == PH_STEP
				   ? b->recipe->steps[b->step].name
				   : b->phase == PH_BOOT ? "booting"
							 : b->phase < PH_STEP
								   ? "setup"
								   : "ending";

	if (!b->tty || b->opts.verbosity < 1 || b->phase == PH_DONE)
		return;
	fprintf(b->opts.out,
		"\r\033[K[%s] %.0fs  cpu %.1fs  mem %lluM  disk %lluM  "
		"net %lluK  log %lluK",
		what, since_start(b) / 1000.0, b->res.stats.cpu_usec / 1e6,
		(unsigned long long)(b->res.stats.mem_peak_bytes >> 20),
		(unsigned long long)(b->res.stats.disk_written_bytes >> 20),
		(unsigned long long)((b->res.stats.net_rx_bytes +
				      b->res.stats.net_tx_bytes) >> 10),
		(unsigned long long)(b->res.stats.log_bytes >> 10));
	fflush(b->opts.out);
	b->status_shown = true;
}

static void
emit(struct build *b, const char *event, json_t *data)
{
	if (b->opts.event)
		b->opts.event(b, event, data, b->opts.event_opaque);
	json_decref(data);
}

static int64_t
since_start(const struct build *b)
{
	return now_ms() - b->t0;
}

static void
fail(struct build *b, enum build_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* End the build with status s (the first cause wins) and tear down. */
static void
fail(struct build *b, enum build_status s, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (result_finish(&b->res, s, "%s", reason))
		say(b, s == BUILD_CANCELLED ? 1 : 0, "%s: %s",
		    result_status_name(s), reason);
	build_teardown(b);
}

static void
limit_exceeded(struct build *b, const char *name, int64_t value,
	       int64_t max, const char *unit, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

static void
limit_exceeded(struct build *b, const char *name, int64_t value, int64_t max,
	       const char *unit, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	if (b->res.status != BUILD_RUNNING)
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	result_set_limit(&b->res, name, value, max, unit);
	say(b, 0, "LIMIT_EXCEEDED %s: %lld > %lld %s", name, (long long)value,
	    (long long)max, unit);
	emit(b, "LIMIT_EXCEEDED",
	     json_pack("{s:s, s:I, s:I, s:s}", "name", name, "value",
		       (json_int_t)value, "max", (json_int_t)max, "unit",
		       unit));
	fail(b, BUILD_LIMIT, "%s", reason);
}

/* ---- output ---------------------------------------------------------- */

static void
emit_line(struct build *b, int stream, const char *s, size_t n)
{
	const char *name = b->recipe->steps[b->step].name;
	struct buf out = { 0 }, vis = { 0 };

	buf_append(&out, name, strlen(name));
	buf_append(&out, "| ", 2);
	buf_append(&out, s, n);
	(void)stream;
	if (b->opts.verbosity >= 1 && b->opts.out) {
		/* Guest bytes never reach a terminal raw: ESC and C1 (raw or
		 * UTF-8 encoded) sequences could rewrite the screen or worse.
		 * build.log keeps them as they were: it is the record. */
		term_sanitize(out.data, out.len, &vis);
		buf_append(&vis, "\n", 1);
		status_clear(b);
		fwrite(vis.data, 1, vis.len, b->opts.out);
		fflush(b->opts.out);
		buf_free(&vis);
	}
	buf_append(&out, "\n", 1);
	if (b->log_fd >= 0 && write_in_full(b->log_fd, out.data, out.len) < 0)
		(void)0;
	buf_free(&out);
}

static void
flush_lines(struct build *b)
{
	for (int s = 0; s < 2; s++) {
		if (b->line[s].len)
			emit_line(b, s, b->line[s].data, b->line[s].len);
		b->line[s].len = 0;
	}
}

static void
step_output(struct build *b, int stream, const char *p, size_t n)
{
	struct buf *l = &b->line[stream];
	uint64_t max = b->recipe->limits.log_bytes;

	b->res.stats.log_bytes += n;
	if (max && (uint64_t)b->res.stats.log_bytes > max) {
		/* Keep the log at the cap: only the part that fits. */
		size_t over = b->res.stats.log_bytes - max;

		n = over >= n ? 0 : n - over;
	}
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\n') {
			emit_line(b, stream, l->data ? l->data : "", l->len);
			l->len = 0;
		} else {
			buf_append(l, &p[i], 1);
			if (l->len >= LINE_MAX_BYTES) {
				emit_line(b, stream, l->data, l->len);
				l->len = 0;
			}
		}
	}
	if (max && (uint64_t)b->res.stats.log_bytes > max) {
		flush_lines(b);
		limit_exceeded(b, "log_bytes", b->res.stats.log_bytes, max,
			       "bytes", "step \"%s\" wrote more than %llu "
			       "bytes of output",
			       b->recipe->steps[b->step].name,
			       (unsigned long long)max);
	}
}

/* ---- watches --------------------------------------------------------- */

static void
update_watches(struct build *b)
{
	if (b->w_qmp && b->qmp)
		loop_watch_set(b->w_qmp, EPOLLIN | (qmp_want_write(b->qmp)
							    ? EPOLLOUT
							    : 0));
	if (b->w_agent)
		loop_watch_set(b->w_agent,
			       EPOLLIN | (agent_pending(&b->agent) ? EPOLLOUT
								   : 0));
}

static void
unwatch_all(struct build *b)
{
	loop_unwatch(b->w_pid);
	loop_unwatch(b->w_qmp);
	loop_unwatch(b->w_agent);
	loop_unwatch(b->w_console);
	b->w_pid = b->w_qmp = b->w_agent = b->w_console = NULL;
}

static void
cancel_phase_timer(struct build *b)
{
	loop_timer_cancel(b->t_phase);
	b->t_phase = NULL;
}

static void
release_vm(struct build *b)
{
	mkfs_stop(b);
	unwatch_all(b);
	loop_timer_cancel(b->t_closed);
	b->t_closed = NULL;
	if (b->qmp) {
		qmp_free(b->qmp);
		b->qmp = NULL;
	}
	if (b->agent_up) {
		agent_conn_free(&b->agent);
		b->agent_up = false;
	}
	vm_destroy(&b->vm);
	if (b->cg_up) {
		struct error err = { 0 };

		if (cgroup_destroy(&b->cg, 5000, &err) < 0)
			say(b, 0, "warning: %s", err.msg);
		b->cg_up = false;
	}
}

/* ---- the end --------------------------------------------------------- */

static void
build_finalize(struct build *b)
{
	if (b->phase == PH_DONE)
		return;
	cancel_phase_timer(b);
	loop_timer_cancel(b->t_wall);
	loop_timer_cancel(b->t_tick);
	b->t_wall = b->t_tick = NULL;
	release_vm(b);
	net_stop(b);
	upload_stop(b);
	/* the checkout goes on every path; the run directory may stay */
	gitsrc_free(b->git);
	b->git = NULL;
	if (b->art_fd >= 0)
		close(b->art_fd);
	b->art_fd = -1;
	if (b->res.status == BUILD_RUNNING)
		result_finish(&b->res, BUILD_ERROR, "VM ended unexpectedly");
	b->res.stats.wall_ms = since_start(b);
	b->phase = PH_DONE;
	if (b->opts.out)
		status_clear(b);
	say(b, 1, "build %s in %.1fs: %s", result_status_name(b->res.status),
	    b->res.stats.wall_ms / 1000.0, b->res.reason ? b->res.reason : "");
	if (b->done)
		b->done(b, b->opaque);
}

static void
on_shutdown_deadline(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	if (b->shutdown_stage == 0 && b->qmp && !qmp_dead(b->qmp)) {
		say(b, 2, "guest did not power off; asking QEMU to quit");
		b->shutdown_stage = 1;
		qmp_execute(b->qmp, "quit", NULL, QUIT_GRACE_MS, NULL, NULL,
			    NULL);
		update_watches(b);
		b->t_phase = loop_timer_at(b->loop, now_ms() + QUIT_GRACE_MS,
					   on_shutdown_deadline, b);
		return;
	}
	/* Last resort: QEMU ignored both the guest and QMP. */
	say(b, 1, "QEMU did not exit; killing it");
	b->shutdown_stage = 2;
	vm_kill(&b->vm);
}

/* Graceful end: the agent powers the guest off. */
static void
build_shutdown(struct build *b)
{
	if (b->phase >= PH_SHUTDOWN)
		return;
	b->phase = PH_SHUTDOWN;
	cancel_phase_timer(b);
	if (b->agent_up && !b->agent.dead &&
	    agent_send(&b->agent, AGENT_POWEROFF, 0, NULL, 0, NULL) == 0) {
		update_watches(b);
		b->t_phase = loop_timer_at(b->loop,
					   now_ms() + POWEROFF_GRACE_MS,
					   on_shutdown_deadline, b);
	} else {
		b->shutdown_stage = 2;
		vm_kill(&b->vm);
	}
}

/* Fast end (limit, error, cancel): the VM is killed, nothing is asked of it. */
static void
build_teardown(struct build *b)
{
	if (b->phase == PH_DONE || b->killing)
		return;
	b->killing = true;
	b->phase = PH_SHUTDOWN;
	cancel_phase_timer(b);
	/* a frozen QEMU would not die of SIGKILL until thawed */
	if (b->paused && b->cg_up)
		cgroup_freeze(&b->cg, false, NULL);
	if (b->window_open)
		net_window(b, false, NULL, NULL);
	if (b->vm.pid > 0 && !b->vm.reaped) {
		vm_kill(&b->vm);
		return;		/* finalized when the pidfd fires */
	}
	if (b->mkfs_pid > 0) {
		/* its whole process group; finalized when its pidfd fires */
		kill(-b->mkfs_pid, SIGKILL);
		return;
	}
	build_finalize(b);
}

/* ---- QMP ------------------------------------------------------------- */

static void on_blockstats(struct qmp *q, json_t *ret, const struct error *err,
			  void *opaque);
static void on_shutdown_deadline(struct loop *l, void *opaque);

static void
on_agent_closed(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_closed = NULL;
	fail(b, BUILD_ERROR, "guest agent closed its channel");
}

static void
on_qmp_event(struct qmp *q, const char *event, json_t *data, void *opaque)
{
	struct build *b = opaque;

	(void)q;
	say(b, 2, "QMP event %s", event);
	if (!strcmp(event, "GUEST_PANICKED"))
		fail(b, BUILD_ERROR, "guest kernel panicked");
	else if (!strcmp(event, "BLOCK_IO_ERROR"))
		fail(b, BUILD_ERROR, "VM disk I/O error");
	else if (!strcmp(event, "SHUTDOWN") && b->phase == PH_BOOT &&
		 b->boot_attempt < 2 && !b->killing) {
		/* Before HELLO nothing of the build has run in the guest:
		 * an emulated boot that went down (under TCG on a loaded
		 * host, most often an early panic, which panic=-1 makes a
		 * reset) gets the same one retry as a boot that hangs. */
		say(b, 0, "guest went down while booting (%s); retrying with "
		    "a fresh VM", qmp_shutdown_cause(data));
		cancel_phase_timer(b);
		b->t_phase = loop_timer_at(b->loop, now_ms(), on_boot_reset,
					   b);
	} else if (!strcmp(event, "SHUTDOWN") && b->phase < PH_SHUTDOWN)
		fail(b, BUILD_ERROR, "guest shut down unexpectedly: %s",
		     qmp_shutdown_cause(data));
	else if (!strcmp(event, "VSERPORT_CHANGE") && b->phase < PH_SHUTDOWN &&
		 qmp_vserport_closed(data, QEMU_AGENT_PORT_ID) && !b->t_closed)
		/* The agent never closes its port: it died, went rogue, or
		 * the guest is going down (then SHUTDOWN follows at once and
		 * is the better reason).  Nothing more will come through. */
		b->t_closed = loop_timer_at(b->loop,
					    now_ms() + AGENT_CLOSED_GRACE_MS,
					    on_agent_closed, b);
	else if (!strcmp(event, "SHUTDOWN") && !b->killing &&
		 b->shutdown_stage == 0) {
		/* The guest is off and its writes are flushed: a last look
		 * at the disk counters, then QEMU may go. */
		b->shutdown_stage = 1;
		qmp_execute(b->qmp, "query-blockstats", NULL, QUIT_GRACE_MS,
			    on_blockstats, b, NULL);
		qmp_execute(b->qmp, "quit", NULL, QUIT_GRACE_MS, NULL, NULL,
			    NULL);
		cancel_phase_timer(b);
		b->t_phase = loop_timer_at(b->loop, now_ms() + QUIT_GRACE_MS,
					   on_shutdown_deadline, b);
	}
}

static void
on_cont(struct qmp *q, json_t *ret, const struct error *err, void *opaque)
{
	struct build *b = opaque;

	(void)q;
	(void)ret;
	if (err && b->phase == PH_BOOT)
		fail(b, BUILD_ERROR, "QEMU would not start the VM: %s",
		     err->msg);
	else if (!err)
		say(b, 2, "VM running (%lld ms after spawn)",
		    (long long)(now_ms() - b->vm_t0));
}

static void
on_qmp_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };

	(void)l;
	(void)fd;
	if (qmp_handle_io(b->qmp, events, &err) < 0) {
		loop_unwatch(b->w_qmp);
		b->w_qmp = NULL;
		if (b->phase < PH_SHUTDOWN)
			fail(b, BUILD_ERROR, "QMP connection lost: %s",
			     err.msg);
		return;
	}
	update_watches(b);
}

/* ---- console --------------------------------------------------------- */

static void
on_console(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	char tmp[16384];
	ssize_t n;

	(void)l;
	(void)events;
	n = read(fd, tmp, sizeof(tmp));
	if (n <= 0) {
		if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			loop_unwatch(b->w_console);
			b->w_console = NULL;
		}
		return;
	}
	/* The console is guest-controlled: keep only the first MiB. */
	if (b->console_log_fd >= 0 && b->console_bytes < CONSOLE_LOG_MAX) {
		size_t keep = CONSOLE_LOG_MAX - b->console_bytes;

		if ((size_t)n < keep)
			keep = n;
		if (write_in_full(b->console_log_fd, tmp, keep) < 0)
			(void)0;
	}
	b->console_bytes += n;
}

/* ---- QEMU's exit ----------------------------------------------------- */

static void
on_pidfd(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	int st;

	(void)l;
	(void)fd;
	(void)events;
	/* One last look before the reap: an OOM kill is a limit, not an
	 * infrastructure failure. */
	res_sample(b);
	if (vm_try_reap(&b->vm) <= 0)
		return;
	st = b->vm.wstatus;
	if (b->phase < PH_SHUTDOWN) {
		if (WIFSIGNALED(st))
			result_finish(&b->res, BUILD_ERROR,
				      "QEMU died with signal %d (see "
				      "qemu.log)", WTERMSIG(st));
		else
			result_finish(&b->res, BUILD_ERROR,
				      "QEMU exited with status %d (see "
				      "qemu.log)", WEXITSTATUS(st));
		say(b, 0, "error: %s", b->res.reason);
	}
	say(b, 2, "QEMU exited (%s %d)",
	    WIFSIGNALED(st) ? "signal" : "status",
	    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	build_finalize(b);
}

/* ---- resources ------------------------------------------------------- */

/* Sample QEMU's use; end the build on the first limit it exceeds. */
static void
res_sample(struct build *b)
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

		limit_exceeded(b, hit.name, v, m, hit.unit,
			       "the VM exceeded its %s limit", hit.name);
	}
}

static void
on_blockstats(struct qmp *q, json_t *ret, const struct error *err,
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
static void
res_prepare(struct build *b, struct vm_confine *confine)
{
	char note[256], plan[256];
	_cleanup_free_ char *root = NULL;
	_cleanup_free_ char *name = NULL;
	struct error err = { 0 };

	limit_for_vm(b->recipe->cpus, b->recipe->memory,
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
			say(b, 0, "warning: cgroup limits: %s", err.msg);
		confine->cgroup_procs_fd = cgroup_open_procs(&b->cg, &err);
		if (confine->cgroup_procs_fd < 0)
			say(b, 0, "warning: %s", err.msg);
		if (!b->said_plan && cgroup_missing_note(&b->cg, note,
							 sizeof(note)))
			say(b, 1, "%s", note);
	} else {
		if (!b->said_plan)
			say(b, 1, "no usable cgroup v2 (%s): limits by polling",
			    err.msg);
		limit_plan_make(&b->lim, 0, &b->plan);
	}
	if (!b->said_plan) {
		limit_plan_format(&b->plan, plan, sizeof(plan));
		say(b, 2, "limits: %s", plan);
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

/* ---- network --------------------------------------------------------- */

static void
on_proxy_record(const struct proxy_record *r, void *opaque)
{
	struct build *b = opaque;
	json_t *j = proxy_record_to_json(r);
	char *line;

	say(b, 1, "net: %s %s:%u %s%s%s", r->method, r->host, r->port,
	    r->allowed ? "allowed" : "REFUSED", r->reason ? ": " : "",
	    r->reason ? r->reason : "");
	if (!b->res.network)
		b->res.network = json_array();
	/* A runaway build must not grow the result without bound. */
	if (json_array_size(b->res.network) < 10000)
		json_array_append(b->res.network, j);
	line = json_dumps(j, JSON_COMPACT);
	if (line && b->net_log_fd >= 0) {
		if (write_in_full(b->net_log_fd, line, strlen(line)) < 0 ||
		    write_in_full(b->net_log_fd, "\n", 1) < 0)
			(void)0;
	}
	free(line);
	json_decref(j);
}

/* A fetch step that started before the proxy was ready gets its window
 * now (see net_window). */
static void
net_proxy_ready(struct build *b)
{
	const struct recipe_step *s;
	struct error err = { 0 };

	loop_timer_cancel(b->t_proxy);
	b->t_proxy = NULL;
	say(b, 2, "network: proxy ready");
	if (b->phase != PH_STEP)
		return;
	s = &b->recipe->steps[b->step];
	if (!s->fetch || b->window_open)
		return;
	if (net_window(b, true, s->name, &err) < 0)
		fail(b, BUILD_ERROR, "opening the network for \"%s\": %s",
		     s->name, err.msg);
}

static void
on_proxy_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };
	bool was_ready = proxy_ready(b->proxy);

	(void)l;
	(void)fd;
	(void)events;
	if (proxy_handle_io(b->proxy, on_proxy_record, b, &err) < 0) {
		loop_unwatch(b->w_proxy);
		b->w_proxy = NULL;
		loop_timer_cancel(b->t_proxy);
		b->t_proxy = NULL;
		if (b->phase < PH_SHUTDOWN)
			fail(b, BUILD_ERROR, "%s%s",
			     was_ready ? "proxy lost: " : "", err.msg);
		return;
	}
	if (!was_ready && proxy_ready(b->proxy))
		net_proxy_ready(b);
	/* fresh byte counts: check the budget now, not at the next tick */
	net_sample(b);
}

/* The proxy did not say "ready" in time: a stuck start fails the build
 * rather than leaving its fetch steps waiting. */
static void
on_proxy_deadline(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	b->t_proxy = NULL;
	if (!b->w_proxy)
		return;
	/* What is already queued counts. */
	on_proxy_io(l, -1, 0, b);
	if (b->w_proxy && !proxy_ready(b->proxy) && b->phase < PH_SHUTDOWN)
		fail(b, BUILD_ERROR, "proxy: not ready after %d ms",
		     PROXY_START_TIMEOUT_MS);
}

static void
on_nf_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	(void)fd;
	(void)events;
	/* The helper only ever answers requests: anything unasked-for is
	 * its death (EOF) or a broken helper.  Fail closed. */
	loop_unwatch(b->w_nf);
	b->w_nf = NULL;
	if (b->phase < PH_SHUTDOWN)
		fail(b, BUILD_ERROR, "network helper died (pid %d)",
		     (int)nf_pid(b->nf));
}

/* Guest and proxy byte counts; ends the build past net_bytes. */
static void
net_sample(struct build *b)
{
	struct nf_counters c;
	struct error err = { 0 };
	uint64_t up = 0, down = 0, total;
	uint64_t max = b->recipe->limits.net_bytes;

	if (!b->net || !b->nf || b->phase >= PH_SHUTDOWN)
		return;
	if (nf_read_counters(b->nf, &c, &err) < 0) {
		fail(b, BUILD_ERROR, "network helper: %s", err.msg);
		return;
	}
	if (b->proxy)
		proxy_totals(b->proxy, &up, &down);
	/* from the guest's point of view */
	b->res.stats.net_tx_bytes = c.rx_bytes;
	b->res.stats.net_rx_bytes = c.tx_bytes;
	total = c.rx_bytes + c.tx_bytes;
	if (up + down > total)
		total = up + down;
	if (c.quota_used > total)
		total = c.quota_used;
	/* The proxy stops relaying when its share reaches the budget: the
	 * build then wanted more than it may have. */
	if (max && (total > max || up + down >= max))
		limit_exceeded(b, "net_bytes", total, max, "bytes",
			       "network traffic exceeded %llu bytes",
			       (unsigned long long)max);
}

static int
net_window(struct build *b, bool open, const char *step, struct error *err)
{
	int r;

	if (!b->net || b->window_open == open)
		return 0;
	if (open && !proxy_ready(b->proxy)) {
		/* No door opens before the proxy behind it is confined and
		 * serving: net_proxy_ready opens it then.  Until then the
		 * guest's connection attempts are dropped (and retried). */
		say(b, 1, "network: waiting for the proxy to be ready");
		return 0;
	}
	if (open) {
		r = proxy_set_window(b->proxy, true, step, err);
		if (r == 0)
			r = nf_open_window(b->nf, err);
		if (r == 0) {
			b->window_open = true;
			emit(b, "NET_WINDOW", json_pack("{s:s, s:b}", "step",
							step, "open", 1));
		}
		return r;
	}
	/* Close the kernel's door first: it is the one that matters. */
	r = nf_close_window(b->nf, err);
	if (r == 0) {
		b->window_open = false;
		emit(b, "NET_WINDOW", json_pack("{s:s, s:b}", "step",
						b->recipe->steps[b->step].name,
						"open", 0));
	}
	if (b->proxy && proxy_set_window(b->proxy, false, NULL,
					 r < 0 ? NULL : err) < 0 && r == 0)
		r = -1;
	net_sample(b);
	return r;
}

/* A helper program: $env if set, else name beside our own binary. */
static char *
helper_path(const char *env_name, const char *name)
{
	const char *env = getenv(env_name);
	char exe[4096];
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			return xasprintf("%s/%s", exe, name);
		}
	}
	return xstrdup(name);
}

/*
 * The builder's network: its own namespace with one tap, the nftables
 * helper inside it (window closed), and the proxy on the tap's address.
 */
static int
net_start(struct build *b, struct error *err)
{
	_cleanup_free_ char *name = xasprintf("qctl-%s",
					      strrchr(b->run_dir, '/') + 1);
	_cleanup_free_ char *helper = helper_path("QCTL_NETFILTER",
						  "qctl-netfilter");
	_cleanup_free_ char *proxy = helper_path("QCTL_PROXY", "qctl-proxy");
	_cleanup_free_ char *logp = xasprintf("%s/network.jsonl", b->run_dir);
	struct proxy_config pc = { 0 };
	int r;

	state_note_str(b->state, "netns", name);
	r = netns_create(name, &b->ns, err);
	if (r < 0)
		return r;
	r = nf_start(helper, b->ns.fd, &b->nf, err);
	if (r == 0)
		state_note_pid(b->state, "helper", nf_pid(b->nf));
	if (r == 0)
		r = nf_setup(b->nf, NETNS_TAP, NETNS_HOST_IP, NETNS_GUEST_IP,
			     NETNS_PROXY_PORT, b->recipe->limits.net_bytes,
			     err);
	if (r < 0) {
		error_prefix(err, "network helper");
		return r;
	}
	pc.path = proxy;
	pc.listen_fd = b->ns.listen_fd;
	pc.allow = b->recipe->allow;
	pc.n_allow = b->recipe->n_allow;
	pc.max_bytes = b->recipe->limits.net_bytes;
	/* Returns at once: "ready" comes through on_proxy_io, within the
	 * deadline, and no window opens before it. */
	r = proxy_start(&pc, &b->proxy, err);
	if (r < 0)
		return r;
	state_note_pid(b->state, "proxy", proxy_pid(b->proxy));
	b->t_proxy = loop_timer_at(b->loop, now_ms() + PROXY_START_TIMEOUT_MS,
				   on_proxy_deadline, b);
	/* Only the proxy needs the listener. */
	close(b->ns.listen_fd);
	b->ns.listen_fd = -1;
	r = rundir_open_file(b->dir_fd, "network.jsonl", O_WRONLY,
			     &b->net_log_fd, err);
	if (r < 0)
		return r;
	b->res.net_log = steal_pointer(&logp);
	b->w_nf = loop_watch_fd(b->loop, nf_fd(b->nf), EPOLLIN, on_nf_io, b);
	b->w_proxy = loop_watch_fd(b->loop, proxy_fd(b->proxy), EPOLLIN,
				   on_proxy_io, b);
	if (!b->w_nf || !b->w_proxy)
		return error_sys(err, errno, "epoll");
	say(b, 2, "network: namespace %s, helper pid %d, proxy pid %d",
	    b->ns.name, (int)nf_pid(b->nf), (int)proxy_pid(b->proxy));
	return 0;
}

static void
net_stop(struct build *b)
{
	struct error err = { 0 };

	loop_unwatch(b->w_nf);
	loop_unwatch(b->w_proxy);
	b->w_nf = b->w_proxy = NULL;
	loop_timer_cancel(b->t_proxy);
	b->t_proxy = NULL;
	if (b->proxy) {
		/* a last look at what it counted */
		proxy_handle_io(b->proxy, on_proxy_record, b, NULL);
		proxy_stop(b->proxy);
		b->proxy = NULL;
	}
	if (b->nf) {
		/* QEMU is gone: deleting the table opens nothing. */
		if (nf_alive(b->nf))
			nf_teardown(b->nf, &err);
		nf_stop(b->nf);
		b->nf = NULL;
	}
	netns_destroy(&b->ns);
	if (b->net_log_fd >= 0)
		close(b->net_log_fd);
	b->net_log_fd = -1;
}

/* ---- guest setup ----------------------------------------------------- */

static void
on_setup_timeout(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	fail(b, BUILD_ERROR, "guest setup did not finish within %.0fs (the "
	     "boot timeout)", b->recipe->limits.boot_timeout_ms / 1000.0);
}

/*
 * One shell command prepares the guest: the scratch disk becomes /src.  It
 * is qctl's own fixed text, never anything from the recipe or the guest.
 * It is part of getting the guest ready, so the boot timeout bounds it.
 */
static void
start_setup(struct build *b)
{
	static const char disk[] =
		"set -e; mkdir -p /src; "
		"busybox mount -t ext4 -o nosuid,nodev,noatime /dev/vda /src";
	static const char net[] =
		"; busybox ip link set lo up; busybox ip link set eth0 up; "
		"busybox ip addr add " NETNS_GUEST_IP "/30 dev eth0";
	char buf[sizeof(disk) + sizeof(net)];
	char *argv[] = { buf };
	struct error err = { 0 };

	snprintf(buf, sizeof(buf), "%s%s", disk, b->net ? net : "");
	b->phase = PH_SETUP;
	b->job_started = false;
	if (agent_send_exec(&b->agent, SETUP_ID, AGENT_EXEC_SHELL, "/", argv,
			    1, NULL, 0, &err) < 0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_setup_timeout, b);
}

/* ---- upload ---------------------------------------------------------- */

/* The packer and its stream: gone (killed if it still runs). */
static void
upload_stop(struct build *b)
{
	loop_unwatch(b->w_upload);
	loop_unwatch(b->w_packer);
	b->w_upload = b->w_packer = NULL;
	/* its fd is the packer's channel, closed with it */
	b->upload_fd = -1;
	peer_free(&b->packer);
}

/* The stream has ended and the packer has exited: was it whole? */
static void
upload_finish(struct build *b)
{
	struct error err = { 0 };

	if (!b->upload_eof || !b->packer.reaped || b->upload_done)
		return;
	if (peer_result(&b->packer, &err) < 0) {
		fail(b, BUILD_ERROR, "packing the source: %s", err.msg);
		return;
	}
	if (agent_send(&b->agent, AGENT_DATA_END, UPLOAD_ID, NULL, 0, &err) <
	    0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	b->upload_done = true;
	upload_stop(b);
	update_watches(b);
}

/*
 * Move the tar stream into the agent channel while the channel has room;
 * wait for the packer (never block on it) when it has nothing yet.
 */
static void
pump_upload(struct build *b)
{
	char chunk[65536];
	struct error err = { 0 };
	bool want = false;

	while (b->phase == PH_UPLOAD && !b->upload_eof &&
	       b->upload_fd >= 0) {
		ssize_t n;

		if (agent_pending(&b->agent) >= UPLOAD_WINDOW)
			break;	/* the agent's write watch calls us again */
		n = read(b->upload_fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				want = true;
				break;
			}
			fail(b, BUILD_ERROR, "reading the source stream: %s",
			     strerror(errno));
			return;
		}
		if (n == 0) {
			b->upload_eof = true;
			break;
		}
		b->xfer_seen = now_ms();
		if (agent_send(&b->agent, AGENT_DATA, UPLOAD_ID, chunk, n,
			       &err) < 0) {
			fail(b, BUILD_ERROR, "%s", err.msg);
			return;
		}
	}
	if (b->w_upload)
		loop_watch_set(b->w_upload, want ? EPOLLIN : 0);
	if (b->upload_eof)
		upload_finish(b);
}

static void
on_upload_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	(void)fd;
	(void)events;
	pump_upload(b);
	update_watches(b);
}

static void
on_packer_exit(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };

	(void)l;
	(void)fd;
	(void)events;
	if (peer_reap(&b->packer, false) <= 0)
		return;
	loop_unwatch(b->w_packer);
	b->w_packer = NULL;
	/* a failed packer ends the build now; a good one once its stream
	 * has been read to the end */
	if (peer_result(&b->packer, &err) < 0) {
		fail(b, BUILD_ERROR, "packing the source: %s", err.msg);
		return;
	}
	upload_finish(b);
}

/*
 * The upload and the artifacts may take as long as they need, but not
 * stand still: without progress (upload: bytes taken by the channel or
 * read from the packer; artifacts: DATA) for the boot timeout, and with
 * no FILE_DONE after it, the transfer has failed.
 */
static void
on_xfer_deadline(struct loop *l, void *opaque)
{
	struct build *b = opaque;
	int64_t due = b->xfer_seen + b->recipe->limits.boot_timeout_ms;

	b->t_phase = NULL;
	if (now_ms() < due) {
		b->t_phase = loop_timer_at(l, due, on_xfer_deadline, b);
		return;
	}
	/* a passed build has not passed without its artifacts */
	if (b->phase == PH_ARTIFACTS && b->res.status == BUILD_PASSED)
		b->res.status = BUILD_RUNNING;
	fail(b, BUILD_ERROR, "%s made no progress for %.0fs (the boot "
	     "timeout)", b->phase == PH_UPLOAD ? "source upload"
					       : "artifact collection",
	     b->recipe->limits.boot_timeout_ms / 1000.0);
}

static void
start_upload(struct build *b)
{
	const char *src = b->opts.source ? b->opts.source
					 : b->recipe->source;
	const char *args[] = { "pack", src, NULL };
	struct error err = { 0 };

	if (b->git) {
		/* the checkout, as an fd: see gitsrc.h */
		args[0] = "pack-fd";
		args[1] = NULL;
		src = b->recipe->git.url;
	}

	b->phase = PH_UPLOAD;
	cancel_phase_timer(b);	/* the setup's */
	b->xfer_seen = now_ms();
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_xfer_deadline, b);
	/* The tree is read by a process of its own (the loop never waits on
	 * a file system), with its owner's rights under qctl serve: root
	 * never reads a client's files for it. */
	if (peer_spawn(b->opts.creds, SOCK_STREAM, args, &b->packer, &err) <
	    0) {
		fail(b, BUILD_ERROR, "source %s: %s", src, err.msg);
		return;
	}
	if (b->git && gitsrc_send_tree(b->git, b->packer.fd, &err) < 0) {
		fail(b, BUILD_ERROR, "source %s: %s", src, err.msg);
		return;
	}
	b->upload_fd = b->packer.fd;
	b->w_upload = loop_watch_fd(b->loop, b->upload_fd, 0, on_upload_io, b);
	b->w_packer = loop_watch_fd(b->loop, b->packer.pidfd, EPOLLIN,
				    on_packer_exit, b);
	if (!b->w_upload || !b->w_packer) {
		fail(b, BUILD_ERROR, "epoll: %s", strerror(errno));
		return;
	}
	if (agent_send(&b->agent, AGENT_FILE_IN, UPLOAD_ID, "/src", 5, &err) <
	    0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	say(b, 2, "uploading source from %s", src);
	pump_upload(b);
}

/* ---- steps ----------------------------------------------------------- */

static void
on_step_timeout(struct loop *l, void *opaque)
{
	struct build *b = opaque;
	const struct recipe_step *s = &b->recipe->steps[b->step];
	struct step_result *sr = &b->res.steps[b->step];

	(void)l;
	b->t_phase = NULL;
	flush_lines(b);
	sr->signal = SIGKILL;
	sr->exit_code = -1;
	sr->duration_ms = now_ms() - b->step_t0;
	limit_exceeded(b, "timeout", sr->duration_ms, s->timeout_ms, "ms",
		       "step \"%s\" timed out after %.1fs", s->name,
		       s->timeout_ms / 1000.0);
}

static void
start_step(struct build *b, size_t i)
{
	const struct recipe *r = b->recipe;
	const struct recipe_step *s;
	struct step_result *sr;
	struct error err = { 0 };
	char **env;
	size_t n_env = 0;
	char *argv[1];
	int rc;

	/* no deadline of the phase before (setup, upload) runs on */
	cancel_phase_timer(b);
	if (i >= r->n_steps) {
		result_finish(&b->res, BUILD_PASSED, "all %zu steps passed",
			      r->n_steps);
		start_artifacts(b);
		return;
	}
	s = &r->steps[i];
	sr = &b->res.steps[i];
	b->phase = PH_STEP;
	b->step = i;
	b->job_started = false;
	b->step_t0 = now_ms();
	sr->ran = true;
	sr->started_ms = since_start(b);
	env = xcalloc(r->n_env + 8, sizeof(*env));
	for (size_t k = 0; k < r->n_env; k++)
		env[n_env++] = xstrdup(r->env[k]);
	env[n_env++] = xasprintf("QCTL_STEP=%s", s->name);
	if (s->fetch) {
		static const char *const vars[] = { "http_proxy", "HTTP_PROXY",
						    "https_proxy",
						    "HTTPS_PROXY" };

		for (size_t k = 0; k < ARRAY_SIZE(vars); k++)
			env[n_env++] = xasprintf("%s=http://%s:%d", vars[k],
						 NETNS_HOST_IP,
						 NETNS_PROXY_PORT);
		env[n_env++] = xstrdup("no_proxy=");
		if (net_window(b, true, s->name, &err) < 0) {
			for (size_t k = 0; k < n_env; k++)
				free(env[k]);
			free(env);
			fail(b, BUILD_ERROR, "opening the network for \"%s\": "
			     "%s", s->name, err.msg);
			return;
		}
	}
	argv[0] = s->run;
	say(b, 1, "step %s: started%s", s->name,
	    s->fetch ? " (network: fetch)" : "");
	emit(b, "STEP_STARTED",
	     json_pack("{s:s, s:I, s:s}", "step", s->name, "index",
		       (json_int_t)i, "network", s->fetch ? "fetch" : "none"));
	rc = agent_send_exec(&b->agent, STEP_ID_BASE + i, AGENT_EXEC_SHELL,
			     "/src", argv, 1, env, n_env, &err);
	for (size_t k = 0; k < n_env; k++)
		free(env[k]);
	free(env);
	if (rc < 0) {
		fail(b, BUILD_ERROR, "step \"%s\": %s", s->name, err.msg);
		return;
	}
	if (s->timeout_ms > 0)
		b->t_phase = loop_timer_at(b->loop, b->step_t0 + s->timeout_ms,
					   on_step_timeout, b);
}

static void
step_exited(struct build *b, int32_t code, int32_t sig)
{
	const struct recipe_step *s = &b->recipe->steps[b->step];
	struct step_result *sr = &b->res.steps[b->step];
	struct error err = { 0 };

	cancel_phase_timer(b);
	flush_lines(b);
	if (net_window(b, false, NULL, &err) < 0) {
		fail(b, BUILD_ERROR, "closing the network after \"%s\": %s",
		     s->name, err.msg);
		return;
	}
	sr->exit_code = sig ? -1 : code;
	sr->signal = sig;
	sr->duration_ms = now_ms() - b->step_t0;
	emit(b, "STEP_FINISHED",
	     json_pack("{s:s, s:I, s:o, s:o, s:I}", "step", s->name, "index",
		       (json_int_t)b->step, "exit_code",
		       sig ? json_null() : json_integer(code), "signal",
		       sig ? json_integer(sig) : json_null(), "duration_ms",
		       (json_int_t)sr->duration_ms));
	if (sig || code != 0) {
		say(b, 1, "step %s: failed (%s %d) after %.1fs", s->name,
		    sig ? "signal" : "exit code", sig ? sig : code,
		    sr->duration_ms / 1000.0);
		if (sig)
			result_finish(&b->res, BUILD_FAILED,
				      "step \"%s\" was killed by signal %d",
				      s->name, sig);
		else
			result_finish(&b->res, BUILD_FAILED,
				      "step \"%s\" failed with exit code %d",
				      s->name, code);
		start_artifacts(b);
		return;
	}
	say(b, 1, "step %s: passed in %.1fs", s->name,
	    sr->duration_ms / 1000.0);
	start_step(b, b->step + 1);
}

/* ---- artifacts ------------------------------------------------------- */

static void
start_artifacts(struct build *b)
{
	struct error err = { 0 };

	if (!b->recipe->n_artifacts) {
		build_shutdown(b);
		return;
	}
	b->phase = PH_ARTIFACTS;
	if (rundir_open_file(b->dir_fd, "artifacts.tar", O_WRONLY, &b->art_fd,
			     &err) < 0) {
		fail(b, BUILD_ERROR, "%s: %s", b->run_dir, err.msg);
		return;
	}
	if (agent_send_file_out(&b->agent, ARTIFACTS_ID, "/src",
				b->recipe->artifacts,
				b->recipe->n_artifacts, &err) < 0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	b->xfer_seen = now_ms();
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_xfer_deadline, b);
	say(b, 2, "collecting artifacts");
}

static void
artifacts_data(struct build *b, const void *p, size_t n)
{
	uint64_t max = b->recipe->limits.artifacts_bytes;

	b->xfer_seen = now_ms();
	b->art_bytes += n;
	if (max && b->art_bytes > max + ARTIFACT_TAR_SLACK) {
		limit_exceeded(b, "artifacts_bytes", b->art_bytes, max, "bytes",
			       "artifacts exceed %llu bytes",
			       (unsigned long long)max);
		return;
	}
	if (write_in_full(b->art_fd, p, n) < 0)
		fail(b, BUILD_ERROR, "writing artifacts: %s", strerror(errno));
}

static void
artifacts_done(struct build *b, int32_t status, const char *msg)
{
	_cleanup_free_ char *tar = xasprintf("%s/artifacts.tar", b->run_dir);
	struct transfer_limit lim = { 0 };
	struct error err = { 0 };
	int r;

	close(b->art_fd);
	b->art_fd = -1;
	if (status != 0) {
		/* A failed build may not have made its artifacts: that
		 * must not hide the step's own failure. */
		say(b, 0, "artifacts: guest could not pack them (%d): %s",
		    status, msg);
		if (b->res.status == BUILD_PASSED) {
			b->res.status = BUILD_RUNNING;
			fail(b, BUILD_ERROR, "collecting artifacts failed: %s",
			     msg);
			return;
		}
		build_shutdown(b);
		return;
	}
	if (b->opts.artifacts_dir)
		r = transfer_unpack_artifacts(tar, b->artifacts_dir,
					      b->recipe->limits.artifacts_bytes,
					      &b->res.artifacts,
					      &b->res.n_artifacts, &lim, &err);
	else	/* the run directory's own: made there, never followed */
		r = transfer_unpack_artifacts_at(
			tar, b->dir_fd, "artifacts",
			b->recipe->limits.artifacts_bytes, &b->res.artifacts,
			&b->res.n_artifacts, &lim, &err);
	unlinkat(b->dir_fd, "artifacts.tar", 0);
	if (r == -EFBIG) {
		if (b->res.status == BUILD_PASSED)
			b->res.status = BUILD_RUNNING;
		limit_exceeded(b, lim.name, lim.value, lim.max, lim.unit, "%s",
			       err.msg);
		return;
	}
	if (r < 0) {
		if (b->res.status == BUILD_PASSED)
			b->res.status = BUILD_RUNNING;
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	for (size_t i = 0; i < b->res.n_artifacts; i++)
		say(b, 1, "artifact %s (%llu bytes, sha256 %.16s...)",
		    b->res.artifacts[i].path,
		    (unsigned long long)b->res.artifacts[i].bytes,
		    b->res.artifacts[i].sha256);
	build_shutdown(b);
}

/* ---- agent ----------------------------------------------------------- */

static int
on_agent_frame(const struct agent_hdr *h, const void *p, void *opaque,
	       struct error *err)
{
	struct build *b = opaque;
	uint32_t step_id = STEP_ID_BASE + b->step;
	/* a frame of the EXEC the host waits for (setup or step) */
	bool job = (b->phase == PH_STEP && h->id == step_id) ||
		   (b->phase == PH_SETUP && h->id == SETUP_ID);
	/* ... after its STARTED: output and EXIT come only then */
	bool live = job && b->job_started;
	char msg[512];
	int32_t code, sig;

	if (b->phase >= PH_SHUTDOWN)
		return 0;	/* whatever the guest says now is moot */
	/* Output and data carry at least a byte: empty frames would be
	 * traffic that no limit counts. */
	if ((h->type == AGENT_STDOUT || h->type == AGENT_STDERR ||
	     h->type == AGENT_DATA) && h->len == 0)
		return error_set(err, EPROTO, "agent: empty %s frame for id %u",
				 agent_type_name(h->type), h->id);
	switch (h->type) {
	case AGENT_HELLO: {
		struct agent_hello hello;

		if (b->phase != PH_BOOT)
			return error_set(err, EPROTO, "agent: HELLO twice");
		if (agent_decode_hello(p, h->len, &hello, err) < 0)
			return -1;
		if (hello.version != AGENT_PROTO_VERSION)
			return error_set(err, EPROTO,
					 "agent speaks protocol %u, not %u",
					 hello.version, AGENT_PROTO_VERSION);
		cancel_phase_timer(b);
		b->res.stats.boot_ms = now_ms() - b->vm_t0;
		say(b, 1, "guest up in %.1fs: %s",
		    b->res.stats.boot_ms / 1000.0, hello.uname);
		start_setup(b);
		return 0;
	}
	case AGENT_FILE_DONE:
		if (agent_decode_status(p, h->len, &code, msg, sizeof(msg),
					err) < 0)
			return -1;
		if (h->id == UPLOAD_ID && b->phase == PH_UPLOAD &&
		    b->upload_done) {
			if (code != 0) {
				fail(b, BUILD_ERROR, "source upload failed "
				     "in the guest (%d): %s", code, msg);
				return 0;
			}
			start_step(b, 0);
			return 0;
		}
		if (h->id == ARTIFACTS_ID && b->phase == PH_ARTIFACTS) {
			artifacts_done(b, code, msg);
			return 0;
		}
		break;
	case AGENT_DATA:
		if (h->id == ARTIFACTS_ID && b->phase == PH_ARTIFACTS) {
			artifacts_data(b, p, h->len);
			return 0;
		}
		break;
	case AGENT_STARTED:
		if (!job)
			break;
		/* exactly one per EXEC, with its u32 pid */
		if (b->job_started || h->len != 4)
			return error_set(err, EPROTO,
					 "agent: %s STARTED (%u bytes) for id %u",
					 b->job_started ? "second" : "malformed",
					 h->len, h->id);
		b->job_started = true;
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		if (live && b->phase == PH_SETUP) {
			b->setup_out += h->len;
			if (b->setup_out > SETUP_OUTPUT_MAX) {
				fail(b, BUILD_ERROR, "guest setup wrote more "
				     "than %u bytes of output",
				     SETUP_OUTPUT_MAX);
				return 0;
			}
			agent_sanitize(p, h->len, msg, sizeof(msg));
			say(b, 1, "setup: %s", msg);
			return 0;
		}
		if (live && b->phase == PH_STEP) {
			step_output(b, h->type == AGENT_STDERR, p, h->len);
			return 0;
		}
		break;
	case AGENT_EXIT:
		if (live && b->phase == PH_SETUP) {
			if (agent_decode_exit(p, h->len, &code, &sig, err) <
			    0)
				return -1;
			if (code != 0 || sig != 0) {
				fail(b, BUILD_ERROR, "guest setup failed "
				     "(exit %d, signal %d)", code, sig);
				return 0;
			}
			/* /src exists (setup made it): no source, no upload */
			if (!b->opts.source && !b->recipe->source && !b->git)
				start_step(b, 0);
			else
				start_upload(b);
			return 0;
		}
		if (live && b->phase == PH_STEP) {
			if (agent_decode_exit(p, h->len, &code, &sig, err) <
			    0)
				return -1;
			step_exited(b, code, sig);
			return 0;
		}
		break;
	case AGENT_ERROR:
		if (agent_decode_status(p, h->len, &code, msg, sizeof(msg),
					err) < 0)
			return -1;
		/* ERROR ends an EXEC only in place of its STARTED */
		if (job && !b->job_started) {
			fail(b, BUILD_ERROR, "%s could not start: %s",
			     b->phase == PH_SETUP ? "guest setup" : "step",
			     msg);
			return 0;
		}
		return error_set(err, EPROTO, "agent error %d: %s", code, msg);
	default:	/* PONG too: the host sends no PING */
		break;
	}
	/* The guest broke the protocol: nothing it says can be trusted. */
	return error_set(err, EPROTO,
			 "agent: unexpected %s frame (type %u, %u bytes) for "
			 "id %u%s",
			 agent_type_name(h->type), h->type, h->len, h->id,
			 job && !b->job_started ? " before STARTED" : "");
}

static void
on_agent_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };
	size_t pending = agent_pending(&b->agent);

	(void)l;
	(void)fd;
	if (agent_handle_io(&b->agent, events, &err) < 0) {
		loop_unwatch(b->w_agent);
		b->w_agent = NULL;
		if (b->phase < PH_SHUTDOWN)
			fail(b, BUILD_ERROR, "guest agent %s: %s",
			     err.code == EPROTO ? "broke the protocol" : "lost",
			     strncmp(err.msg, "agent: ", 7) ? err.msg
							    : err.msg + 7);
		return;
	}
	if (b->phase == PH_UPLOAD && agent_pending(&b->agent) < pending)
		b->xfer_seen = now_ms();	/* the guest is reading */
	if (b->phase == PH_UPLOAD)
		pump_upload(b);
	update_watches(b);
}

/* ---- scratch disk ---------------------------------------------------- */

/* Kill and reap mkfs.ext4 if it runs (synchronously: teardown, free). */
static void
mkfs_stop(struct build *b)
{
	loop_unwatch(b->w_mkfs);
	b->w_mkfs = NULL;
	if (b->mkfs_pid > 0) {
		/* its process group: whatever it started goes too */
		kill(-b->mkfs_pid, SIGKILL);
		while (waitpid(b->mkfs_pid, NULL, 0) < 0 && errno == EINTR)
			;
		b->mkfs_pid = -1;
	}
	if (b->mkfs_pidfd >= 0)
		close(b->mkfs_pidfd);
	b->mkfs_pidfd = -1;
}

static void
on_mkfs_exit(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };
	pid_t pid = b->mkfs_pid;
	int st = 0;
	pid_t r;

	(void)l;
	(void)fd;
	(void)events;
	/* The leader is a zombie until reaped, so its group id is still
	 * ours: anything it left running goes with it. */
	kill(-pid, SIGKILL);
	do
		r = waitpid(pid, &st, WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return;		/* not yet */
	b->mkfs_pid = -1;
	mkfs_stop(b);
	cancel_phase_timer(b);
	if (b->killing) {
		build_finalize(b);	/* teardown waited for it */
		return;
	}
	if (r < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		if (r > 0 && WIFSIGNALED(st))
			fail(b, BUILD_ERROR, "making the scratch disk: "
			     "mkfs.ext4 died of signal %d", WTERMSIG(st));
		else
			fail(b, BUILD_ERROR, "making the scratch disk: "
			     "mkfs.ext4 exited with status %d (its messages "
			     "are in build.log)", r > 0 ? WEXITSTATUS(st) : -1);
		return;
	}
	say(b, 2, "scratch disk of %llu MiB ready after %lld ms",
	    (unsigned long long)(b->recipe->limits.disk >> 20),
	    (long long)(now_ms() - b->vm_t0));
	if (boot_qemu(b, &err) < 0)
		fail(b, BUILD_ERROR, "%s", err.msg);
}

static void
on_mkfs_deadline(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	/* teardown kills it and waits for its pidfd */
	fail(b, BUILD_ERROR, "making the scratch disk: mkfs.ext4 did not "
	     "finish within %.0fs (the boot timeout)",
	     b->recipe->limits.boot_timeout_ms / 1000.0);
}

/*
 * A fresh raw file of exactly the `disk` size with an empty ext4 made on
 * the host (never mounted here): the guest can allocate no more than that,
 * and nothing of an earlier build survives.  mkfs.ext4 is a child watched
 * by the loop, never waited for; the boot timeout is its deadline too.
 * The boot goes on (boot_qemu) when it exits 0.
 */
static int
disk_start(struct build *b, struct error *err)
{
	char size[32];
	/* The disk goes in as fd 3: mkfs looks up no path of ours. */
	char *argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F",
			 (char *)"-m", (char *)"0", (char *)"-O",
			 (char *)"^has_journal,^resize_inode", (char *)"-E",
			 (char *)"lazy_itable_init=1,nodiscard", (char *)"-L",
			 (char *)"scratch", (char *)"/dev/fd/3", size, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int r;

	if (b->disk_fd >= 0)
		close(b->disk_fd);
	b->disk_fd = -1;
	/* a retry's fresh VM gets a fresh disk */
	if (unlinkat(b->dir_fd, "disk.img", 0) < 0 && errno != ENOENT)
		return error_sys(err, errno, "remove %s", b->disk_path);
	r = rundir_open_file(b->dir_fd, "disk.img", O_RDWR, &b->disk_fd, err);
	if (r < 0)
		return r;
	if (ftruncate(b->disk_fd, b->recipe->limits.disk) < 0)
		return error_sys(err, errno, "size %s", b->disk_path);
	snprintf(size, sizeof(size), "%lluk",
		 (unsigned long long)(b->recipe->limits.disk >> 10));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	/* its complaints go to build.log, where the reason points */
	if (b->log_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, b->log_fd, 2);
	posix_spawn_file_actions_adddup2(&fa, b->disk_fd, 3);
	/* Signals as a fresh process has them (the manager blocks some for
	 * its signalfd and ignores SIGPIPE); a group of its own, so that a
	 * ^C is the manager's to handle and one kill reaches all of it. */
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setpgroup(&at, 0);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF |
					      POSIX_SPAWN_SETPGROUP);
	r = posix_spawnp(&b->mkfs_pid, "mkfs.ext4", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0) {
		b->mkfs_pid = -1;
		return error_sys(err, r, "cannot run mkfs.ext4");
	}
	state_note_pid(b->state, "mkfs", b->mkfs_pid);
	/* our child, not reaped yet: the pid cannot name another process */
	b->mkfs_pidfd = syscall(SYS_pidfd_open, b->mkfs_pid, 0);
	if (b->mkfs_pidfd < 0) {
		r = error_sys(err, errno, "pidfd_open mkfs.ext4");
		mkfs_stop(b);
		return r;
	}
	b->w_mkfs = loop_watch_fd(b->loop, b->mkfs_pidfd, EPOLLIN, on_mkfs_exit,
				  b);
	if (!b->w_mkfs) {
		r = error_sys(err, errno, "epoll");
		mkfs_stop(b);
		return r;
	}
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_mkfs_deadline, b);
	return 0;
}

/* ---- boot ------------------------------------------------------------ */

static void
retry_boot(struct build *b)
{
	struct error err = { 0 };

	release_vm(b);
	if (boot_vm(b, &err) < 0)
		fail(b, BUILD_ERROR, "%s", err.msg);
}

/* Timer set by on_qmp_event: the VM that reset is freed from the loop,
 * not from inside its own QMP callback. */
static void
on_boot_reset(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	retry_boot(b);
}

static void
on_boot_timeout(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	if (b->boot_attempt < 2) {
		/* A rare early hang of the emulated boot must not fail a
		 * user's build: one retry with a fresh VM. */
		say(b, 0, "guest did not answer within %.0fs; retrying with "
		    "a fresh VM", b->recipe->limits.boot_timeout_ms / 1000.0);
		retry_boot(b);
		return;
	}
	fail(b, BUILD_ERROR, "guest agent did not answer within %.0fs "
	     "(%d attempts)", b->recipe->limits.boot_timeout_ms / 1000.0,
	     b->boot_attempt);
}

/* Boot a fresh VM: first its scratch disk, then (boot_qemu) QEMU. */
static int
boot_vm(struct build *b, struct error *err)
{
	b->boot_attempt++;
	b->phase = PH_BOOT;
	b->vm_t0 = now_ms();
	return disk_start(b, err);
}

static int
boot_qemu(struct build *b, struct error *err)
{
	struct qemu_config cfg = {
		.binary = b->opts.qemu_binary,
		.accel = b->opts.accel,
		.machine = b->opts.machine,
		.cpus = b->recipe->cpus,
		.memory = b->recipe->memory,
		.kernel = b->img.kernel,
		.initrd = b->img.initrd,
		.kernel_file = b->img.kernel_fd,
		.initrd_file = b->img.initrd_fd,
		.cmdline = NULL,
		.name = NULL,
		.sandbox = true,
	};
	struct vm_confine confine;
	bool microvm = b->opts.machine && !strcmp(b->opts.machine, "microvm");
	/* Modules for devices this VM lacks only cost boot time. */
	_cleanup_free_ char *cmdline = xasprintf(
		"%s qctl.skip_modules=%s%s", b->img.cmdline,
		microvm ? "virtio_pci,virtio_pci_modern_dev,"
			  "virtio_pci_legacy_dev"
			: "virtio_mmio",
		b->net ? "" : ",virtio_net,net_failover,failover");
	/* The VM's name carries the run id, so ps shows whose QEMU it is. */
	_cleanup_free_ char *name = xasprintf("qctl-%s",
					      strrchr(b->run_dir, '/') + 1);
	int r;

	cfg.name = name;
	cfg.cmdline = cmdline;
	r = vm_confine_default(&confine, b->opts.state_dir, &b->opts.uids,
			       err);
	if (r < 0)
		return r;
	res_prepare(b, &confine);
	cfg.tb_size_mib = LIMIT_TCG_TB_MIB;
	r = vm_spawn(&cfg, b->net ? b->ns.tap_fd : -1, b->disk_fd,
		     b->qemu_log_fd, &confine, &b->vm, err);
	if (confine.cgroup_procs_fd >= 0)
		close(confine.cgroup_procs_fd);
	if (r == 0)
		state_note_pid(b->state, "qemu", b->vm.pid);
	if (r == 0 && b->vm.lease.held)
		state_note_uid(b->state, b->vm.lease.uid);
	if (r < 0)
		return r;
	say(b, 2, "QEMU pid %d (attempt %d)", b->vm.pid, b->boot_attempt);
	b->w_pid = loop_watch_fd(b->loop, b->vm.pidfd, EPOLLIN, on_pidfd, b);
	b->qmp = qmp_new(b->vm.qmp_fd, on_qmp_event, b);
	b->vm.qmp_fd = -1;	/* owned by the QMP client now */
	agent_conn_init(&b->agent, b->vm.agent_fd, on_agent_frame, b);
	b->agent_up = true;
	fd_set_nonblock(b->vm.console_fd);
	if (!b->qmp)
		return error_set(err, EIO, "QMP socket unusable");
	b->w_qmp = loop_watch_fd(b->loop, qmp_fd(b->qmp), EPOLLIN, on_qmp_io,
				 b);
	b->w_agent = loop_watch_fd(b->loop, b->vm.agent_fd, EPOLLIN,
				   on_agent_io, b);
	b->w_console = loop_watch_fd(b->loop, b->vm.console_fd, EPOLLIN,
				     on_console, b);
	if (!b->w_pid || !b->w_qmp || !b->w_agent || !b->w_console)
		return error_sys(err, errno, "epoll");
	/* The only QMP traffic before the guest runs: capabilities, cont. */
	r = qmp_execute(b->qmp, "cont", NULL, QMP_TIMEOUT_MS, on_cont, b, err);
	if (r < 0)
		return r;
	update_watches(b);
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_boot_timeout, b);
	return 0;
}

static void
on_wall_time(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_wall = NULL;
	/* collecting the artifacts of a passed build: not passed yet */
	if (b->phase == PH_ARTIFACTS && b->res.status == BUILD_PASSED)
		b->res.status = BUILD_RUNNING;
	limit_exceeded(b, "wall_time", since_start(b),
		       b->recipe->limits.wall_time_ms, "ms",
		       "build exceeded its wall time of %.0fs",
		       b->recipe->limits.wall_time_ms / 1000.0);
	/* A failed step's result stands, but the wait for its artifacts
	 * ends here too: the wall time ends every build. */
	if (b->phase < PH_SHUTDOWN) {
		say(b, 0, "wall time of %.0fs exceeded while collecting "
		    "artifacts", b->recipe->limits.wall_time_ms / 1000.0);
		build_teardown(b);
	}
}

static void
on_tick(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	b->t_tick = NULL;
	if (b->qmp)
		qmp_check_timeouts(b->qmp, now_ms());
	res_sample(b);
	if (b->qmp && qmp_ready(b->qmp) && b->phase < PH_SHUTDOWN &&
	    !b->paused && b->ticks % 4 == 0)
		qmp_execute(b->qmp, "query-blockstats", NULL, QMP_TIMEOUT_MS,
			    on_blockstats, b, NULL);
	/* Counters every second, every tick while the network is open. */
	if (b->net && (b->window_open || b->ticks % 4 == 0))
		net_sample(b);
	if (b->ticks % 4 == 0)
		status_draw(b);
	b->ticks++;
	if (b->qmp)
		update_watches(b);
	if (b->phase != PH_DONE)
		b->t_tick = loop_timer_at(l, now_ms() + TICK_MS, on_tick, b);
}

/* ---- public ---------------------------------------------------------- */

struct build *
build_new(struct loop *loop, const struct recipe *recipe,
	  const struct build_opts *opts, build_done_fn done, void *opaque)
{
	struct build *b = xcalloc(1, sizeof(*b));

	b->loop = loop;
	b->recipe = recipe;
	b->opts = *opts;
	b->done = done;
	b->opaque = opaque;
	b->log_fd = b->console_log_fd = b->upload_fd = b->art_fd = -1;
	b->root_fd = b->dir_fd = b->qemu_log_fd = -1;
	b->disk_fd = -1;
	b->mkfs_pid = -1;
	b->mkfs_pidfd = -1;
	b->net_log_fd = -1;
	b->ns.fd = b->ns.tap_fd = b->ns.listen_fd = -1;
	b->img.kernel_fd = b->img.initrd_fd = -1;
	peer_child_init(&b->packer);
	for (size_t i = 0; i < recipe->n_steps; i++)
		if (recipe->steps[i].fetch)
			b->net = true;
	b->vm.pid = -1;
	b->vm.pidfd = b->vm.qmp_fd = b->vm.agent_fd = b->vm.console_fd = -1;
	b->res.status = BUILD_RUNNING;
	b->tty = opts->out && isatty(fileno(opts->out));
	b->res.accel = accel_name(opts->accel);
	b->res.n_steps = recipe->n_steps;
	b->res.steps = xcalloc(recipe->n_steps, sizeof(*b->res.steps));
	for (size_t i = 0; i < recipe->n_steps; i++) {
		b->res.steps[i].name = xstrdup(recipe->steps[i].name);
		b->res.steps[i].fetch = recipe->steps[i].fetch;
		b->res.steps[i].exit_code = -1;
	}
	return b;
}

static int build_start_inner(struct build *b, struct error *err);

/* The git source is checked out (or not): boot, or end here. */
static void
on_git_done(struct gitsrc *g, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };
	bool recipe_fault;

	/* what was asked for, and (null when it failed) what was got */
	b->res.source = gitsrc_to_json(g);
	if (gitsrc_result(g, &err, &recipe_fault) < 0) {
		b->res.recipe_error = recipe_fault;
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	say(b, 1, "source: %s at %s (%s)", b->recipe->git.url,
	    gitsrc_commit(g), b->recipe->git.ref);
	if (boot_vm(b, &err) < 0)
		fail(b, BUILD_ERROR, "%s", err.msg);
}

int
build_start(struct build *b, struct error *err)
{
	int r = build_start_inner(b, err);

	if (r < 0) {
		/* a build that never ran has no timers left behind */
		loop_timer_cancel(b->t_wall);
		loop_timer_cancel(b->t_tick);
		b->t_wall = b->t_tick = NULL;
	}
	return r;
}

static int
build_start_inner(struct build *b, struct error *err)
{
	const struct {
		const char *name;
		int flags;
		int *fd;
	} files[] = {
		{ "build.log", O_WRONLY, &b->log_fd },
		{ "console.log", O_WRONLY, &b->console_log_fd },
		/* both attempts of a boot retry */
		{ "qemu.log", O_WRONLY | O_APPEND, &b->qemu_log_fd },
	};
	const char *root = b->opts.run_root ? b->opts.run_root
					    : RUN_ROOT_DEFAULT;
	_cleanup_free_ char *canon = NULL, *name = NULL;
	int r;

	b->t0 = now_ms();
	/* Root writes there: a run root someone else made, or may write,
	 * or that is a symlink, could send its writes anywhere. */
	r = rundir_root_check(root, "run root", RUNDIR_CREATE, &b->root_fd,
			      &canon, err);
	if (r < 0)
		return r;
	/* 0700: the run directory holds the build's log and transfers. */
	r = rundir_create(b->root_fd, &name, &b->dir_fd, err);
	if (r < 0) {
		error_prefix(err, "run root %s", canon);
		return r;
	}
	b->run_dir = xasprintf("%s/%s", strcmp(canon, "/") ? canon : "", name);
	b->res.run_dir = xstrdup(b->run_dir);
	/* The record exists before any resource does (see state.h). */
	if (b->opts.state_dir) {
		b->state = state_open(b->opts.state_dir,
				      strrchr(b->run_dir, '/') + 1, b->run_dir,
				      err);
		if (!b->state)
			return -1;
	}
	b->disk_path = xasprintf("%s/disk.img", b->run_dir);
	b->artifacts_dir = b->opts.artifacts_dir
				   ? xstrdup(b->opts.artifacts_dir)
				   : xasprintf("%s/artifacts", b->run_dir);
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		r = rundir_open_file(b->dir_fd, files[i].name, files[i].flags,
				     files[i].fd, err);
		if (r < 0) {
			error_prefix(err, "%s", b->run_dir);
			return r;
		}
	}
	/* a client's image was opened with its rights when submitted */
	if (b->opts.image_pre)
		r = image_dup(b->opts.image_pre, &b->img, err);
	else
		r = image_open(b->opts.image ? b->opts.image
					     : b->recipe->image,
			       &b->img, err);
	if (r < 0)
		return r;
	say(b, 1, "booting %s (%s, %d cpu, %llu MiB) in %s", b->img.name,
	    accel_name(b->opts.accel), b->recipe->cpus,
	    (unsigned long long)(b->recipe->memory >> 20), b->run_dir);
	b->t_wall = loop_timer_at(b->loop,
				  b->t0 + b->recipe->limits.wall_time_ms,
				  on_wall_time, b);
	b->t_tick = loop_timer_at(b->loop, now_ms() + TICK_MS, on_tick, b);
	if (b->net) {
		r = net_start(b, err);
		if (r < 0) {
			net_stop(b);
			return r;
		}
	}
	if (b->opts.source || b->recipe->source)
		b->res.source = json_pack("{s:s}", "dir", b->opts.source
					  ? b->opts.source : b->recipe->source);
	/* a git source is fetched before the VM boots (on_git_done) */
	if (b->recipe->git.url && !b->opts.source)
		r = gitsrc_start(b->loop, &b->recipe->git, b->dir_fd,
				 b->run_dir, b->opts.creds,
				 b->recipe->limits.boot_timeout_ms, on_git_done,
				 b, &b->git, err);
	else
		r = boot_vm(b, err);
	if (r < 0) {
		release_vm(b);
		net_stop(b);
		return r;
	}
	return 0;
}

int
build_pause(struct build *b, bool pause, struct error *err)
{
	if (!b->qmp || b->phase >= PH_SHUTDOWN || b->phase < PH_BOOT)
		return error_set(err, EINVAL, "no running VM");
	if (pause == b->paused)
		return 0;
	/* Thaw before asking QEMU anything: a frozen QEMU reads no QMP. */
	if (!pause && b->cg_up && (b->cg.features & CGF_FREEZE) &&
	    cgroup_freeze(&b->cg, false, err) < 0)
		return -1;
	/* QMP stop/cont: the vCPUs stop, QEMU and the guest's state stay;
	 * commands are handled in order, so a stop sent just before the
	 * freeze still takes effect at the thaw. */
	if (qmp_execute(b->qmp, pause ? "stop" : "cont", NULL, QMP_TIMEOUT_MS,
			NULL, NULL, err) < 0)
		return -1;
	update_watches(b);
	/* and with a cgroup, all of QEMU stops: no CPU at all while paused */
	if (pause && b->cg_up && (b->cg.features & CGF_FREEZE) &&
	    cgroup_freeze(&b->cg, true, err) < 0)
		return -1;
	b->paused = pause;
	return 0;
}

const char *
build_current_step(const struct build *b)
{
	return b->phase == PH_STEP ? b->recipe->steps[b->step].name : NULL;
}

int
build_qemu_pid(const struct build *b)
{
	return b->vm.pid > 0 && !b->vm.reaped ? b->vm.pid : -1;
}

void
build_cancel(struct build *b, const char *why)
{
	if (b->phase == PH_DONE)
		return;
	fail(b, BUILD_CANCELLED, "%s", why);
}

struct build_result *
build_result(struct build *b)
{
	return &b->res;
}

const char *
build_run_dir(const struct build *b)
{
	return b->run_dir;
}

void
build_free(struct build *b)
{
	if (!b)
		return;
	loop_timer_cancel(b->t_phase);
	loop_timer_cancel(b->t_wall);
	loop_timer_cancel(b->t_tick);
	release_vm(b);
	net_stop(b);
	upload_stop(b);
	if (b->art_fd >= 0)
		close(b->art_fd);
	if (b->log_fd >= 0)
		close(b->log_fd);
	if (b->disk_fd >= 0)
		close(b->disk_fd);
	if (b->console_log_fd >= 0)
		close(b->console_log_fd);
	if (b->qemu_log_fd >= 0)
		close(b->qemu_log_fd);
	for (int s = 0; s < 2; s++)
		buf_free(&b->line[s]);
	gitsrc_free(b->git);
	if (b->dir_fd >= 0)
		close(b->dir_fd);
	/* by name under the run root's fd, as it was made */
	if (b->run_dir && !b->opts.keep)
		rundir_remove(b->root_fd, strrchr(b->run_dir, '/') + 1, NULL);
	if (b->root_fd >= 0)
		close(b->root_fd);
	/* everything the record named is gone now */
	state_close(b->state);
	image_close(&b->img);
	result_clear(&b->res);
	free(b->run_dir);
	free(b->artifacts_dir);
	free(b->disk_path);
	free(b);
}
