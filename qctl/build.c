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
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent.h"
#include "image.h"
#include "qmp.h"
#include "transfer.h"
#include "vm.h"

/* ids of agent operations; steps use STEP_ID_BASE + index */
enum { UPLOAD_ID = 1, ARTIFACTS_ID = 2, SETUP_ID = 3, STEP_ID_BASE = 100 };

#define TICK_MS 250
#define QMP_TIMEOUT_MS 10000
#define POWEROFF_GRACE_MS 5000
#define QUIT_GRACE_MS 2000
#define UPLOAD_WINDOW (512u * 1024)
#define CONSOLE_LOG_MAX (1u << 20)
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
	int log_fd;
	int console_log_fd;
	uint64_t console_bytes;

	struct vm vm;
	struct qmp *qmp;
	struct agent_conn agent;
	bool agent_up;
	struct loop_watch *w_pid, *w_qmp, *w_agent, *w_console;
	struct loop_timer *t_phase, *t_wall, *t_tick;

	enum phase phase;
	int boot_attempt;
	int64_t t0, vm_t0;
	size_t step;
	int64_t step_t0;
	int upload_fd;
	bool upload_done;
	int disk_fd;
	char *disk_path;
	int art_fd;
	uint64_t art_bytes;
	struct buf line[2];
	bool killing;
	int shutdown_stage;

	struct build_result res;
};

static void build_teardown(struct build *b);
static void build_shutdown(struct build *b);
static void start_step(struct build *b, size_t i);
static void start_artifacts(struct build *b);
static void start_upload(struct build *b);
static int boot_vm(struct build *b, struct error *err);

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
		fprintf(b->opts.out, "qctl: %s", msg);
		fflush(b->opts.out);
	}
	if (b->log_fd >= 0 && write_in_full(b->log_fd, msg, n) < 0)
		(void)0;
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
	fail(b, BUILD_LIMIT, "%s", reason);
}

/* ---- output ---------------------------------------------------------- */

static void
emit_line(struct build *b, int stream, const char *s, size_t n)
{
	const char *name = b->recipe->steps[b->step].name;
	struct buf out = { 0 };

	buf_append(&out, name, strlen(name));
	buf_append(&out, "| ", 2);
	/* Guest bytes never reach a terminal raw: escape sequences could
	 * rewrite the screen or worse.  Tabs pass, the rest becomes '?'. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = s[i];
		char q = (c < 0x20 && c != '\t') || c == 0x7f ? '?' : c;

		buf_append(&out, &q, 1);
	}
	buf_append(&out, "\n", 1);
	(void)stream;
	if (b->opts.verbosity >= 1 && b->opts.out) {
		fwrite(out.data, 1, out.len, b->opts.out);
		fflush(b->opts.out);
	}
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
	unwatch_all(b);
	if (b->qmp) {
		qmp_free(b->qmp);
		b->qmp = NULL;
	}
	if (b->agent_up) {
		agent_conn_free(&b->agent);
		b->agent_up = false;
	}
	vm_destroy(&b->vm);
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
	if (b->upload_fd >= 0)
		close(b->upload_fd);
	if (b->art_fd >= 0)
		close(b->art_fd);
	b->upload_fd = b->art_fd = -1;
	if (b->res.status == BUILD_RUNNING)
		result_finish(&b->res, BUILD_ERROR, "VM ended unexpectedly");
	b->res.stats.wall_ms = since_start(b);
	b->phase = PH_DONE;
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
	if (b->vm.pid > 0 && !b->vm.reaped) {
		vm_kill(&b->vm);
		return;		/* finalized when the pidfd fires */
	}
	build_finalize(b);
}

/* ---- QMP ------------------------------------------------------------- */

static void
on_qmp_event(struct qmp *q, const char *event, json_t *data, void *opaque)
{
	struct build *b = opaque;

	(void)q;
	(void)data;
	say(b, 2, "QMP event %s", event);
	if (!strcmp(event, "GUEST_PANICKED"))
		fail(b, BUILD_ERROR, "guest kernel panicked");
	else if (!strcmp(event, "BLOCK_IO_ERROR"))
		fail(b, BUILD_ERROR, "VM disk I/O error");
	else if (!strcmp(event, "SHUTDOWN") && b->phase < PH_SHUTDOWN)
		fail(b, BUILD_ERROR, "guest shut down unexpectedly");
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

/* ---- guest setup ----------------------------------------------------- */

/*
 * One shell command prepares the guest: the scratch disk becomes /src.  It
 * is qctl's own fixed text, never anything from the recipe or the guest.
 */
static void
start_setup(struct build *b)
{
	static const char script[] =
		"set -e; mkdir -p /src; "
		"busybox mount -t ext4 -o nosuid,nodev,noatime /dev/vda /src";
	char buf[sizeof(script)];
	char *argv[] = { buf };
	struct error err = { 0 };

	memcpy(buf, script, sizeof(script));
	b->phase = PH_SETUP;
	if (agent_send_exec(&b->agent, SETUP_ID, AGENT_EXEC_SHELL, "/", argv,
			    1, NULL, 0, &err) < 0)
		fail(b, BUILD_ERROR, "%s", err.msg);
}

/* ---- upload ---------------------------------------------------------- */

static void
pump_upload(struct build *b)
{
	char chunk[65536];
	struct error err = { 0 };

	while (b->phase == PH_UPLOAD && !b->upload_done &&
	       agent_pending(&b->agent) < UPLOAD_WINDOW) {
		ssize_t n = read(b->upload_fd, chunk, sizeof(chunk));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail(b, BUILD_ERROR, "reading source tar: %s",
			     strerror(errno));
			return;
		}
		if (n == 0) {
			agent_send(&b->agent, AGENT_DATA_END, UPLOAD_ID, NULL,
				   0, &err);
			b->upload_done = true;
			close(b->upload_fd);
			b->upload_fd = -1;
			break;
		}
		if (agent_send(&b->agent, AGENT_DATA, UPLOAD_ID, chunk, n,
			       &err) < 0) {
			fail(b, BUILD_ERROR, "%s", err.msg);
			return;
		}
	}
}

static void
start_upload(struct build *b)
{
	_cleanup_free_ char *tar = xasprintf("%s/source.tar", b->run_dir);
	const char *src = b->opts.source ? b->opts.source
					 : b->recipe->source;
	struct error err = { 0 };

	b->phase = PH_UPLOAD;
	if (transfer_pack_source(src, tar, &err) < 0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	b->upload_fd = open(tar, O_RDONLY | O_CLOEXEC);
	if (b->upload_fd < 0) {
		fail(b, BUILD_ERROR, "open %s: %s", tar, strerror(errno));
		return;
	}
	/* The tar file is only read from here on; drop its name. */
	unlink(tar);
	if (agent_send(&b->agent, AGENT_FILE_IN, UPLOAD_ID, "/src", 5, &err) <
	    0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	say(b, 2, "uploading source%s%s", src ? " from " : "", src ? src : "");
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
	b->step_t0 = now_ms();
	sr->ran = true;
	sr->started_ms = since_start(b);
	env = xcalloc(r->n_env + 2, sizeof(*env));
	for (size_t k = 0; k < r->n_env; k++)
		env[n_env++] = r->env[k];
	env[n_env++] = xasprintf("QCTL_STEP=%s", s->name);
	argv[0] = s->run;
	say(b, 1, "step %s: started", s->name);
	rc = agent_send_exec(&b->agent, STEP_ID_BASE + i, AGENT_EXEC_SHELL,
			     "/src", argv, 1, env, n_env, &err);
	free(env[n_env - 1]);
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

	cancel_phase_timer(b);
	flush_lines(b);
	sr->exit_code = sig ? -1 : code;
	sr->signal = sig;
	sr->duration_ms = now_ms() - b->step_t0;
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
	_cleanup_free_ char *tar = NULL;
	struct error err = { 0 };

	if (!b->recipe->n_artifacts) {
		build_shutdown(b);
		return;
	}
	b->phase = PH_ARTIFACTS;
	tar = xasprintf("%s/artifacts.tar", b->run_dir);
	b->art_fd = open(tar, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
				      O_NOFOLLOW, 0600);
	if (b->art_fd < 0) {
		fail(b, BUILD_ERROR, "create %s: %s", tar, strerror(errno));
		return;
	}
	if (agent_send_file_out(&b->agent, ARTIFACTS_ID, "/src",
				b->recipe->artifacts,
				b->recipe->n_artifacts, &err) < 0) {
		fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	say(b, 2, "collecting artifacts");
}

static void
artifacts_data(struct build *b, const void *p, size_t n)
{
	uint64_t max = b->recipe->limits.artifacts_bytes;

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
	r = transfer_unpack_artifacts(tar, b->artifacts_dir,
				      b->recipe->limits.artifacts_bytes,
				      &b->res.artifacts, &b->res.n_artifacts,
				      &err);
	unlink(tar);
	if (r == -EFBIG) {
		if (b->res.status == BUILD_PASSED)
			b->res.status = BUILD_RUNNING;
		limit_exceeded(b, "artifacts_bytes", b->art_bytes,
			       b->recipe->limits.artifacts_bytes, "bytes",
			       "%s", err.msg);
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
	char msg[512];
	int32_t code, sig;

	if (b->phase >= PH_SHUTDOWN)
		return 0;	/* whatever the guest says now is moot */
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
		if ((b->phase == PH_STEP && h->id == step_id) ||
		    (b->phase == PH_SETUP && h->id == SETUP_ID))
			return 0;
		break;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		if (b->phase == PH_SETUP && h->id == SETUP_ID) {
			agent_sanitize(p, h->len, msg, sizeof(msg));
			say(b, 1, "setup: %s", msg);
			return 0;
		}
		if (b->phase == PH_STEP && h->id == step_id) {
			step_output(b, h->type == AGENT_STDERR, p, h->len);
			return 0;
		}
		break;
	case AGENT_EXIT:
		if (b->phase == PH_SETUP && h->id == SETUP_ID) {
			if (agent_decode_exit(p, h->len, &code, &sig, err) <
			    0)
				return -1;
			if (code != 0 || sig != 0) {
				fail(b, BUILD_ERROR, "guest setup failed "
				     "(exit %d, signal %d)", code, sig);
				return 0;
			}
			start_upload(b);
			return 0;
		}
		if (b->phase == PH_STEP && h->id == step_id) {
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
		if ((h->id == step_id && b->phase == PH_STEP) ||
		    (h->id == SETUP_ID && b->phase == PH_SETUP)) {
			fail(b, BUILD_ERROR, "%s could not start: %s",
			     b->phase == PH_SETUP ? "guest setup" : "step",
			     msg);
			return 0;
		}
		return error_set(err, EPROTO, "agent error %d: %s", code, msg);
	case AGENT_PONG:
		return 0;
	default:
		break;
	}
	/* The guest broke the protocol: nothing it says can be trusted. */
	return error_set(err, EPROTO,
			 "agent: unexpected frame type %u id %u in phase %d",
			 h->type, h->id, b->phase);
}

static void
on_agent_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };

	(void)l;
	(void)fd;
	if (agent_handle_io(&b->agent, events, &err) < 0) {
		loop_unwatch(b->w_agent);
		b->w_agent = NULL;
		if (b->phase < PH_SHUTDOWN)
			fail(b, BUILD_ERROR, "guest agent lost: %s", err.msg);
		return;
	}
	if (b->phase == PH_UPLOAD)
		pump_upload(b);
	update_watches(b);
}

/* ---- scratch disk ---------------------------------------------------- */

/*
 * A fresh raw file of exactly the `disk` size with an empty ext4 made on
 * the host (never mounted here): the guest can allocate no more than that,
 * and nothing of an earlier build survives.
 */
static int
make_disk(struct build *b, struct error *err)
{
	char size[32];
	char *argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F",
			 (char *)"-m", (char *)"0", (char *)"-O",
			 (char *)"^has_journal,^resize_inode", (char *)"-E",
			 (char *)"lazy_itable_init=1,nodiscard", (char *)"-L",
			 (char *)"scratch", b->disk_path, size, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, r;

	if (b->disk_fd >= 0)
		close(b->disk_fd);
	unlink(b->disk_path);
	b->disk_fd = open(b->disk_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC |
						O_NOFOLLOW, 0600);
	if (b->disk_fd < 0)
		return error_sys(err, errno, "create %s", b->disk_path);
	if (ftruncate(b->disk_fd, b->recipe->limits.disk) < 0)
		return error_sys(err, errno, "size %s", b->disk_path);
	snprintf(size, sizeof(size), "%lluk",
		 (unsigned long long)(b->recipe->limits.disk >> 10));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, "mkfs.ext4", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return error_sys(err, r, "cannot run mkfs.ext4");
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return error_sys(err, errno, "waitpid mkfs.ext4");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return error_set(err, EIO, "mkfs.ext4 %s failed", b->disk_path);
	return 0;
}

/* ---- boot ------------------------------------------------------------ */

static void
on_boot_timeout(struct loop *l, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };

	(void)l;
	b->t_phase = NULL;
	if (b->boot_attempt < 2) {
		/* A rare early hang of the emulated boot must not fail a
		 * user's build: one retry with a fresh VM. */
		say(b, 0, "guest did not answer within %.0fs; retrying with "
		    "a fresh VM", b->recipe->limits.boot_timeout_ms / 1000.0);
		release_vm(b);
		if (boot_vm(b, &err) < 0)
			fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	fail(b, BUILD_ERROR, "guest agent did not answer within %.0fs "
	     "(%d attempts)", b->recipe->limits.boot_timeout_ms / 1000.0,
	     b->boot_attempt);
}

static int
boot_vm(struct build *b, struct error *err)
{
	struct qemu_config cfg = {
		.binary = b->opts.qemu_binary,
		.accel = b->opts.accel,
		.machine = b->opts.machine,
		.cpus = b->recipe->cpus,
		.memory = b->recipe->memory,
		.kernel = b->img.kernel,
		.initrd = b->img.initrd,
		.cmdline = b->img.cmdline,
		.name = NULL,
		.sandbox = true,
	};
	struct vm_confine confine;
	_cleanup_free_ char *qlog = xasprintf("%s/qemu.log", b->run_dir);
	/* The VM's name carries the run id, so ps shows whose QEMU it is. */
	_cleanup_free_ char *name = xasprintf("qctl-%s",
					      strrchr(b->run_dir, '/') + 1);
	int r;

	cfg.name = name;
	b->boot_attempt++;
	b->phase = PH_BOOT;
	b->vm_t0 = now_ms();
	r = make_disk(b, err);
	if (r < 0)
		return r;
	say(b, 2, "scratch disk of %llu MiB ready after %lld ms",
	    (unsigned long long)(b->recipe->limits.disk >> 20),
	    (long long)(now_ms() - b->vm_t0));
	r = vm_confine_default(&confine, err);
	if (r < 0)
		return r;
	r = vm_spawn(&cfg, -1, b->disk_fd, qlog, &confine, &b->vm, err);
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
	limit_exceeded(b, "wall_time", since_start(b),
		       b->recipe->limits.wall_time_ms, "ms",
		       "build exceeded its wall time of %.0fs",
		       b->recipe->limits.wall_time_ms / 1000.0);
}

static void
on_tick(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	b->t_tick = NULL;
	if (b->qmp)
		qmp_check_timeouts(b->qmp, now_ms());
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
	b->disk_fd = -1;
	b->vm.pid = -1;
	b->vm.pidfd = b->vm.qmp_fd = b->vm.agent_fd = b->vm.console_fd = -1;
	b->res.status = BUILD_RUNNING;
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

int
build_start(struct build *b, struct error *err)
{
	const char *root = b->opts.run_root ? b->opts.run_root
					    : "/var/tmp/qctl";
	_cleanup_free_ char *tmpl = NULL, *p = NULL;
	int r;

	b->t0 = now_ms();
	if (mkdir(root, 0700) < 0 && errno != EEXIST)
		return error_sys(err, errno, "mkdir %s", root);
	tmpl = xasprintf("%s/run-XXXXXX", root);
	/* 0700: the run directory holds the build's log and transfers. */
	if (!mkdtemp(tmpl))
		return error_sys(err, errno, "mkdtemp %s", tmpl);
	b->run_dir = steal_pointer(&tmpl);
	b->res.run_dir = xstrdup(b->run_dir);
	b->disk_path = xasprintf("%s/disk.img", b->run_dir);
	b->artifacts_dir = b->opts.artifacts_dir
				   ? xstrdup(b->opts.artifacts_dir)
				   : xasprintf("%s/artifacts", b->run_dir);
	p = xasprintf("%s/build.log", b->run_dir);
	b->log_fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (b->log_fd < 0)
		return error_sys(err, errno, "create %s", p);
	free(p);
	p = xasprintf("%s/console.log", b->run_dir);
	b->console_log_fd =
		open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (b->console_log_fd < 0)
		return error_sys(err, errno, "create %s", p);
	r = image_open(b->opts.image ? b->opts.image : b->recipe->image,
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
	r = boot_vm(b, err);
	if (r < 0) {
		release_vm(b);
		return r;
	}
	return 0;
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
	if (b->upload_fd >= 0)
		close(b->upload_fd);
	if (b->art_fd >= 0)
		close(b->art_fd);
	if (b->log_fd >= 0)
		close(b->log_fd);
	if (b->disk_fd >= 0)
		close(b->disk_fd);
	if (b->console_log_fd >= 0)
		close(b->console_log_fd);
	for (int s = 0; s < 2; s++)
		buf_free(&b->line[s]);
	if (b->run_dir && !b->opts.keep)
		rm_rf(b->run_dir);
	image_close(&b->img);
	result_clear(&b->res);
	free(b->run_dir);
	free(b->artifacts_dir);
	free(b->disk_path);
	free(b);
}
