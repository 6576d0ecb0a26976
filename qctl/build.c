/*
 * build.c - the build engine: its state machine.
 *
 * One build is a state machine driven by the event loop: boot the VM
 * (paused, QMP, cont), wait for the agent's HELLO, upload the source as a
 * tar stream, run the steps one after another, fetch artifacts, power off.
 * Every wait has a deadline; every byte from the guest is bounded.
 *
 * Its parts share struct build through build-int.h: build-output.c (what
 * the user sees and the logs), build-net.c (the network of fetch steps),
 * build-sample.c (resource use and limits), build-disk.c (the scratch
 * disk).
 */
#include "build-int.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "agent.h"
#include "cgroup.h"
#include "gitsrc.h"
#include "image.h"
#include "limit.h"
#include "netns.h"
#include "peer.h"
#include "qmp.h"
#include "rundir.h"
#include "state.h"
#include "transfer.h"
#include "vm.h"

static void build_teardown(struct build *b);
static void build_shutdown(struct build *b);
static void start_step(struct build *b, size_t i);
static void start_upload(struct build *b);
static void upload_stop(struct build *b);
static int boot_vm(struct build *b, struct error *err);
static void on_boot_reset(struct loop *l, void *opaque);

int64_t
build_since_start(const struct build *b)
{
	return now_ms() - b->t0;
}

/* End the build with status s (the first cause wins) and tear down. */
void
build_fail(struct build *b, enum build_status s, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (result_finish(&b->res, s, "%s", reason))
		build_say(b, s == BUILD_CANCELLED ? 1 : 0, "%s: %s",
			  result_status_name(s), reason);
	build_teardown(b);
}

void
build_limit_exceeded(struct build *b, const char *name, int64_t value,
		     int64_t max, const char *unit, const char *fmt, ...)
{
	char reason[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	/* a held build's limits still count: one ends the hold and the
	 * build, whose result is the failed step's */
	if (b->phase == PH_HOLD) {
		build_say(b, 0, "hold ended by a limit: %s", reason);
		build_hold_release(b, reason);
		build_teardown(b);
		return;
	}
	if (b->res.status != BUILD_RUNNING)
		return;
	result_set_limit(&b->res, name, value, max, unit);
	build_say(b, 0, "LIMIT_EXCEEDED %s: %lld > %lld %s", name,
		  (long long)value, (long long)max, unit);
	build_emit(b, "LIMIT_EXCEEDED",
		   json_pack("{s:s, s:I, s:I, s:s}", "name", name, "value",
			     (json_int_t)value, "max", (json_int_t)max, "unit",
			     unit));
	build_fail(b, BUILD_LIMIT, "%s", reason);
}

/* ---- watches --------------------------------------------------------- */

void
build_update_watches(struct build *b)
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

void
build_cancel_phase_timer(struct build *b)
{
	loop_timer_cancel(b->t_phase);
	b->t_phase = NULL;
}

static void
release_vm(struct build *b)
{
	build_mkfs_stop(b);
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
	build_ssh_stop(b);
	build_snap_free(b);
	vm_destroy(&b->vm);
	if (b->cg_up) {
		struct error err = { 0 };

		if (cgroup_destroy(&b->cg, 5000, &err) < 0)
			build_say(b, 0, "warning: %s", err.msg);
		b->cg_up = false;
	}
}

/* ---- the end --------------------------------------------------------- */

void
build_finalize(struct build *b)
{
	if (b->phase == PH_DONE)
		return;
	build_cancel_phase_timer(b);
	loop_timer_cancel(b->t_wall);
	loop_timer_cancel(b->t_tick);
	b->t_wall = b->t_tick = NULL;
	build_hold_release(b, b->res.status == BUILD_CANCELLED
				      ? "the build was cancelled"
				      : "the build ended");
	release_vm(b);
	build_net_stop(b);
	upload_stop(b);
	/* the checkout goes on every path; the run directory may stay */
	gitsrc_free(b->git);
	b->git = NULL;
	if (b->art_fd >= 0)
		close(b->art_fd);
	b->art_fd = -1;
	if (b->res.status == BUILD_RUNNING)
		result_finish(&b->res, BUILD_ERROR, "VM ended unexpectedly");
	/* the status is final: the cache keeps a passed build's fetch */
	build_cache_end(b);
	b->res.stats.wall_ms = build_since_start(b);
	b->phase = PH_DONE;
	if (b->opts.out)
		build_statusline_clear(b);
	build_say(b, 1, "build %s in %.1fs: %s",
		  result_status_name(b->res.status),
		  b->res.stats.wall_ms / 1000.0,
		  b->res.reason ? b->res.reason : "");
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
		build_say(b, 2, "guest did not power off; asking QEMU to quit");
		b->shutdown_stage = 1;
		qmp_execute(b->qmp, "quit", NULL, QUIT_GRACE_MS, NULL, NULL,
			    NULL);
		build_update_watches(b);
		b->t_phase = loop_timer_at(b->loop, now_ms() + QUIT_GRACE_MS,
					   on_shutdown_deadline, b);
		return;
	}
	/* Last resort: QEMU ignored both the guest and QMP. */
	build_say(b, 1, "QEMU did not exit; killing it");
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
	build_cancel_phase_timer(b);
	if (b->agent_up && !b->agent.dead &&
	    agent_send(&b->agent, AGENT_POWEROFF, 0, NULL, 0, NULL) == 0) {
		build_update_watches(b);
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
	build_cancel_phase_timer(b);
	/* a frozen QEMU would not die of SIGKILL until thawed */
	if (b->paused && b->cg_up)
		cgroup_freeze(&b->cg, false, NULL);
	if (b->window_open)
		build_net_window(b, false, NULL, NULL);
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

static void on_shutdown_deadline(struct loop *l, void *opaque);

static void
on_agent_closed(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_closed = NULL;
	build_fail(b, BUILD_ERROR, "guest agent closed its channel");
}

static void
on_qmp_event(struct qmp *q, const char *event, json_t *data, void *opaque)
{
	struct build *b = opaque;

	(void)q;
	build_say(b, 2, "QMP event %s", event);
	if (!strcmp(event, "RESUME"))
		build_snap_resumed(b);
	else if (!strcmp(event, "GUEST_PANICKED"))
		build_fail(b, BUILD_ERROR, "guest kernel panicked");
	else if (!strcmp(event, "BLOCK_IO_ERROR"))
		build_fail(b, BUILD_ERROR, "VM disk I/O error");
	else if (!strcmp(event, "SHUTDOWN") && b->phase == PH_BOOT &&
		 b->boot_attempt < 2 && !b->killing) {
		/* Before HELLO nothing of the build has run in the guest:
		 * an emulated boot that went down (under TCG on a loaded
		 * host, most often an early panic, which panic=-1 makes a
		 * reset) gets the same one retry as a boot that hangs. */
		build_say(b, 0, "guest went down while booting (%s); "
			  "retrying with a fresh VM", qmp_shutdown_cause(data));
		build_cancel_phase_timer(b);
		b->t_phase = loop_timer_at(b->loop, now_ms(), on_boot_reset,
					   b);
	} else if (!strcmp(event, "SHUTDOWN") && b->phase < PH_SHUTDOWN)
		build_fail(b, BUILD_ERROR, "guest shut down unexpectedly: %s",
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
			    build_on_blockstats, b, NULL);
		qmp_execute(b->qmp, "quit", NULL, QUIT_GRACE_MS, NULL, NULL,
			    NULL);
		build_cancel_phase_timer(b);
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
	if (err && b->phase == PH_BOOT && !build_snap_restoring(b))
		build_fail(b, BUILD_ERROR, "QEMU would not start the VM: %s",
			   err->msg);
	else if (!err)
		build_say(b, 2, "VM running (%lld ms after spawn)",
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
		/* QEMU gone with a state that would not load: the
		 * boot is retried cold (on_pidfd) */
		if (build_snap_restoring(b) && err.code != EPROTO)
			return;
		if (b->phase < PH_SHUTDOWN)
			build_fail(b, BUILD_ERROR, "QMP connection lost: %s",
				   err.msg);
		return;
	}
	build_update_watches(b);
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
	build_res_sample(b);
	if (vm_try_reap(&b->vm) <= 0)
		return;
	st = b->vm.wstatus;
	if (b->phase == PH_BOOT && !b->killing && build_snap_boot_failed(b)) {
		/* a state that would not load (see qemu.log): cold, now */
		build_cancel_phase_timer(b);
		b->t_phase = loop_timer_at(b->loop, now_ms(), on_boot_reset,
					   b);
		return;
	}
	if (b->phase < PH_SHUTDOWN) {
		if (WIFSIGNALED(st))
			result_finish(&b->res, BUILD_ERROR,
				      "QEMU died with signal %d (see "
				      "qemu.log)", WTERMSIG(st));
		else
			result_finish(&b->res, BUILD_ERROR,
				      "QEMU exited with status %d (see "
				      "qemu.log)", WEXITSTATUS(st));
		build_say(b, 0, "error: %s", b->res.reason);
	}
	build_say(b, 2, "QEMU exited (%s %d)",
		  WIFSIGNALED(st) ? "signal" : "status",
		  WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
	build_finalize(b);
}

/* ---- guest setup ----------------------------------------------------- */

static void
on_setup_timeout(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	build_fail(b, BUILD_ERROR,
		   "guest setup did not finish within %.0fs (the boot timeout)",
		   b->recipe->limits.boot_timeout_ms / 1000.0);
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
	/* an image with a root: the scratch disk is its overlay's upper
	 * layer already, /src a directory there; busybox is the
	 * initramfs's, kept for this (guestagent/root.c) */
	static const char root[] =
		"set -e; mkdir -p /src; busybox() { /run/qctl/busybox \"$@\"; }";
	static const char net[] =
		"; busybox ip link set lo up; busybox ip link set eth0 up; "
		"busybox ip addr add " NETNS_GUEST_IP "/30 dev eth0";
	/* the recipe's cache: mounted and bound (build-cache.c) */
	_cleanup_free_ char *cache = build_cache_setup_text(b);
	_cleanup_free_ char *buf = NULL;
	char *argv[1];
	struct error err = { 0 };

	/* over ssh, the guest's init configured eth0 already */
	buf = xasprintf("%s%s%s", b->img.root_fd >= 0 ? root : disk,
			b->net && !b->ssh ? net : "", cache);
	argv[0] = buf;
	b->phase = PH_SETUP;
	b->job_started = false;
	if (agent_send_exec(&b->agent, SETUP_ID, AGENT_EXEC_SHELL, "/", argv,
			    1, NULL, 0, &err) < 0) {
		build_fail(b, BUILD_ERROR, "%s", err.msg);
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
		build_fail(b, BUILD_ERROR, "packing the source: %s", err.msg);
		return;
	}
	if (agent_send(&b->agent, AGENT_DATA_END, UPLOAD_ID, NULL, 0, &err) <
	    0) {
		build_fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	b->upload_done = true;
	upload_stop(b);
	build_update_watches(b);
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
			build_fail(b, BUILD_ERROR,
				   "reading the source stream: %s",
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
			build_fail(b, BUILD_ERROR, "%s", err.msg);
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
	build_update_watches(b);
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
		build_fail(b, BUILD_ERROR, "packing the source: %s", err.msg);
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
	build_fail(b, BUILD_ERROR,
		   "%s made no progress for %.0fs (the boot timeout)",
		   b->phase == PH_UPLOAD ? "source upload"
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
	build_cancel_phase_timer(b); /* the setup's */
	b->xfer_seen = now_ms();
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_xfer_deadline, b);
	/* The tree is read by a process of its own (the loop never waits on
	 * a file system), with its owner's rights under qctl serve: root
	 * never reads a client's files for it. */
	if (peer_spawn(b->opts.creds, SOCK_STREAM, args, &b->packer, &err) <
	    0) {
		build_fail(b, BUILD_ERROR, "source %s: %s", src, err.msg);
		return;
	}
	if (b->git && gitsrc_send_tree(b->git, b->packer.fd, &err) < 0) {
		build_fail(b, BUILD_ERROR, "source %s: %s", src, err.msg);
		return;
	}
	b->upload_fd = b->packer.fd;
	b->w_upload = loop_watch_fd(b->loop, b->upload_fd, 0, on_upload_io, b);
	b->w_packer = loop_watch_fd(b->loop, b->packer.pidfd, EPOLLIN,
				    on_packer_exit, b);
	if (!b->w_upload || !b->w_packer) {
		build_fail(b, BUILD_ERROR, "epoll: %s", strerror(errno));
		return;
	}
	if (agent_send(&b->agent, AGENT_FILE_IN, UPLOAD_ID, "/src", 5, &err) <
	    0) {
		build_fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	build_say(b, 2, "uploading source from %s", src);
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
	build_flush_lines(b);
	sr->signal = SIGKILL;
	sr->exit_code = -1;
	sr->duration_ms = now_ms() - b->step_t0;
	build_limit_exceeded(b, "timeout", sr->duration_ms, s->timeout_ms, "ms",
			     "step \"%s\" timed out after %.1fs", s->name,
			     s->timeout_ms / 1000.0);
}

char **
build_step_env(struct build *b, const struct recipe_step *s, bool fetch,
	       size_t *n)
{
	const struct recipe *r = b->recipe;
	char **env;
	size_t n_env = 0;

	env = xcalloc(b->img.n_step_env[fetch] + r->n_env + 8, sizeof(*env));
	/* the image's for this network first: the recipe's env wins */
	for (size_t k = 0; k < b->img.n_step_env[fetch]; k++)
		env[n_env++] = xstrdup(b->img.step_env[fetch][k]);
	for (size_t k = 0; k < r->n_env; k++)
		env[n_env++] = xstrdup(r->env[k]);
	env[n_env++] = xasprintf("QCTL_STEP=%s", s->name);
	if (fetch) {
		static const char *const vars[] = { "http_proxy", "HTTP_PROXY",
						    "https_proxy",
						    "HTTPS_PROXY" };

		for (size_t k = 0; k < ARRAY_SIZE(vars); k++)
			env[n_env++] = xasprintf("%s=http://%s:%d", vars[k],
						 NETNS_HOST_IP,
						 NETNS_PROXY_PORT);
		env[n_env++] = xstrdup("no_proxy=");
	}
	*n = n_env;
	return env;
}

void
build_free_env(char **env, size_t n)
{
	for (size_t k = 0; k < n; k++)
		free(env[k]);
	free(env);
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
	build_cancel_phase_timer(b);
	if (i >= r->n_steps && build_cache_before_step(b, i))
		return;
	if (i >= r->n_steps) {
		result_finish(&b->res, BUILD_PASSED, "all %zu steps passed",
			      r->n_steps);
		if (b->opts.hold_ms > 0 && b->opts.hold_always)
			build_hold_start(b);
		else
			build_start_artifacts(b);
		return;
	}
	s = &r->steps[i];
	sr = &b->res.steps[i];
	/* the fetch steps are over: the cache is sealed first */
	if (build_cache_before_step(b, i))
		return;
	b->phase = PH_STEP;
	b->step = i;
	b->job_started = false;
	b->step_t0 = now_ms();
	sr->ran = true;
	sr->started_ms = build_since_start(b);
	env = build_step_env(b, s, s->fetch, &n_env);
	if (s->fetch &&
	    build_net_window(b, true, s->name, &err) < 0) {
		build_free_env(env, n_env);
		build_fail(b, BUILD_ERROR, "opening the network for \"%s\": %s",
			   s->name, err.msg);
		return;
	}
	argv[0] = s->run;
	build_say(b, 1, "step %s: started%s", s->name,
		  s->fetch ? " (network: fetch)" : "");
	build_emit(b, "STEP_STARTED",
		   json_pack("{s:s, s:I, s:s}", "step", s->name, "index",
			     (json_int_t)i, "network",
			     s->fetch ? "fetch" : "none"));
	rc = agent_send_exec(&b->agent, STEP_ID_BASE + i, AGENT_EXEC_SHELL,
			     "/src", argv, 1, env, n_env, &err);
	build_free_env(env, n_env);
	if (rc < 0) {
		build_fail(b, BUILD_ERROR, "step \"%s\": %s", s->name, err.msg);
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

	build_cancel_phase_timer(b);
	build_flush_lines(b);
	if (build_net_window(b, false, NULL, &err) < 0) {
		build_fail(b, BUILD_ERROR,
			   "closing the network after \"%s\": %s", s->name,
			   err.msg);
		return;
	}
	sr->exit_code = sig ? -1 : code;
	sr->signal = sig;
	sr->duration_ms = now_ms() - b->step_t0;
	build_emit(b, "STEP_FINISHED",
		   json_pack("{s:s, s:I, s:o, s:o, s:I}", "step", s->name,
			     "index", (json_int_t)b->step, "exit_code",
			     sig ? json_null() : json_integer(code), "signal",
			     sig ? json_integer(sig) : json_null(),
			     "duration_ms", (json_int_t)sr->duration_ms));
	if (sig || code != 0) {
		build_say(b, 1, "step %s: failed (%s %d) after %.1fs", s->name,
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
		if (b->opts.hold_ms > 0)
			build_hold_start(b);
		else
			build_start_artifacts(b);
		return;
	}
	build_say(b, 1, "step %s: passed in %.1fs", s->name,
		  sr->duration_ms / 1000.0);
	start_step(b, b->step + 1);
}

/* ---- artifacts ------------------------------------------------------- */

void
build_start_artifacts(struct build *b)
{
	struct error err = { 0 };

	if (!b->recipe->n_artifacts) {
		build_shutdown(b);
		return;
	}
	b->phase = PH_ARTIFACTS;
	if (rundir_open_file(b->dir_fd, "artifacts.tar", O_WRONLY, &b->art_fd,
			     &err) < 0) {
		build_fail(b, BUILD_ERROR, "%s: %s", b->run_dir, err.msg);
		return;
	}
	if (agent_send_file_out(&b->agent, ARTIFACTS_ID, "/src",
				b->recipe->artifacts,
				b->recipe->n_artifacts, &err) < 0) {
		build_fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	b->xfer_seen = now_ms();
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   on_xfer_deadline, b);
	build_say(b, 2, "collecting artifacts");
}

static void
artifacts_data(struct build *b, const void *p, size_t n)
{
	uint64_t max = b->recipe->limits.artifacts_bytes;

	b->xfer_seen = now_ms();
	b->art_bytes += n;
	if (max && b->art_bytes > max + ARTIFACT_TAR_SLACK) {
		build_limit_exceeded(b, "artifacts_bytes", b->art_bytes, max,
				     "bytes", "artifacts exceed %llu bytes",
				     (unsigned long long)max);
		return;
	}
	if (write_in_full(b->art_fd, p, n) < 0)
		build_fail(b, BUILD_ERROR, "writing artifacts: %s",
			   strerror(errno));
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
		build_say(b, 0, "artifacts: guest could not pack them (%d): %s",
			  status, msg);
		if (b->res.status == BUILD_PASSED) {
			b->res.status = BUILD_RUNNING;
			build_fail(b, BUILD_ERROR,
				   "collecting artifacts failed: %s", msg);
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
		build_limit_exceeded(b, lim.name, lim.value, lim.max, lim.unit,
				     "%s", err.msg);
		return;
	}
	if (r < 0) {
		if (b->res.status == BUILD_PASSED)
			b->res.status = BUILD_RUNNING;
		build_fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	for (size_t i = 0; i < b->res.n_artifacts; i++)
		build_say(b, 1, "artifact %s (%llu bytes, sha256 %.16s...)",
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
		   (b->phase == PH_SETUP && h->id == SETUP_ID) ||
		   (b->phase == PH_CACHE && h->id == CACHE_ID);
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
	/* a held build's shells (and, after the hold, their last words) */
	if (h->id >= SHELL_ID_BASE && h->type != AGENT_HELLO)
		return build_shell_frame(b, h, p, err);
	switch (h->type) {
	case AGENT_HELLO: {
		struct agent_hello hello;

		if (b->phase != PH_BOOT)
			return error_set(err, EPROTO, "agent: HELLO twice");
		if (agent_decode_hello(p, h->len, &hello, err) < 0)
			return -1;
		/* version 2 lacks only IDENTITY: images made before it
		 * boot, cold */
		if (hello.version < 2 || hello.version > AGENT_PROTO_VERSION)
			return error_set(err, EPROTO,
					 "agent speaks protocol %u, not 2..%u",
					 hello.version, AGENT_PROTO_VERSION);
		b->res.boot = "cold";
		if (build_snap_hello(b, hello.version))
			return 0;
		build_cancel_phase_timer(b);
		b->res.stats.boot_ms = now_ms() - b->vm_t0;
		build_say(b, 1, "guest up in %.1fs: %s",
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
				build_fail(b, BUILD_ERROR, "source upload "
					   "failed in the guest (%d): %s",
					   code, msg);
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
		if (live && (b->phase == PH_SETUP || b->phase == PH_CACHE)) {
			b->setup_out += h->len;
			if (b->setup_out > SETUP_OUTPUT_MAX) {
				build_fail(b, BUILD_ERROR, "guest setup wrote "
					   "more than %u bytes of output",
					   SETUP_OUTPUT_MAX);
				return 0;
			}
			/* one line, as a step's: no newline shown as '?' */
			const char *c = p;
			size_t n = h->len;

			while (n > 0 && (c[n - 1] == '\n' || c[n - 1] == '\r'))
				n--;
			agent_sanitize(c, n, msg, sizeof(msg));
			build_say(b, 1, "setup: %s", msg);
			if (msg[0])
				snprintf(b->setup_last, sizeof(b->setup_last),
					 "%s", msg);
			return 0;
		}
		if (live && b->phase == PH_STEP) {
			build_step_output(b, h->type == AGENT_STDERR, p,
					  h->len);
			return 0;
		}
		break;
	case AGENT_EXIT:
		if (live && b->phase == PH_SETUP) {
			if (agent_decode_exit(p, h->len, &code, &sig, err) <
			    0)
				return -1;
			if (code != 0 || sig != 0) {
				build_fail(b, BUILD_ERROR, "guest setup failed "
					   "(exit %d, signal %d)%s%s", code, sig,
					   b->setup_last[0] ? ": " : "",
					   b->setup_last);
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
		if (live && b->phase == PH_CACHE) {
			if (agent_decode_exit(p, h->len, &code, &sig, err) <
			    0)
				return -1;
			build_cache_sealed(b, code, sig, start_step);
			return 0;
		}
		break;
	case AGENT_ERROR:
		if (agent_decode_status(p, h->len, &code, msg, sizeof(msg),
					err) < 0)
			return -1;
		/* the ssh bridge gives up before HELLO saying why (a host key
		 * that is not the build's, a refused login) */
		if (b->ssh && b->phase == PH_BOOT && h->id == 0) {
			build_fail(b, BUILD_ERROR, "ssh transport: %s", msg);
			return 0;
		}
		if (b->phase == PH_BOOT && h->id == 0 && b->identity_sent) {
			build_fail(b, BUILD_ERROR, "the guest could not take "
				   "its identity: %s", msg);
			return 0;
		}
		/* ERROR ends an EXEC only in place of its STARTED */
		if (job && !b->job_started) {
			build_fail(b, BUILD_ERROR, "%s could not start: %s",
				   b->phase == PH_SETUP ? "guest setup"
							: "step",
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
		/* a state that would not load: QEMU exits, and the
		 * boot is retried cold (on_pidfd) */
		if (build_snap_restoring(b) && err.code != EPROTO)
			return;
		/* over ssh the channel is the bridge's: its end is the
		 * ssh connection's (the guest's sshd gone, or the bridge) */
		if (b->phase < PH_SHUTDOWN)
			build_fail(b, BUILD_ERROR, "%s %s: %s",
				   b->ssh ? "ssh transport" : "guest agent",
				   err.code == EPROTO ? "broke the protocol"
						      : "lost",
				   strncmp(err.msg, "agent: ", 7)
					   ? err.msg
					   : err.msg + 7);
		return;
	}
	if (b->phase == PH_UPLOAD && agent_pending(&b->agent) < pending)
		b->xfer_seen = now_ms();	/* the guest is reading */
	if (b->phase == PH_UPLOAD)
		pump_upload(b);
	build_update_watches(b);
}

/* ---- boot ------------------------------------------------------------ */

static void
retry_boot(struct build *b)
{
	struct error err = { 0 };

	/* a VM from a snapshot that hung or went down: the state goes */
	build_snap_boot_failed(b);
	release_vm(b);
	if (boot_vm(b, &err) < 0)
		build_fail(b, BUILD_ERROR, "%s", err.msg);
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
		build_say(b, 0, "guest did not answer within %.0fs; "
			  "retrying with a fresh VM",
			  b->recipe->limits.boot_timeout_ms / 1000.0);
		retry_boot(b);
		return;
	}
	build_fail(b, BUILD_ERROR,
		   "guest agent did not answer within %.0fs (%d attempts)",
		   b->recipe->limits.boot_timeout_ms / 1000.0, b->boot_attempt);
}

/* Boot a fresh VM: first its scratch disk, then (build_boot_qemu) QEMU. */
static int
boot_vm(struct build *b, struct error *err)
{
	b->boot_attempt++;
	b->phase = PH_BOOT;
	b->vm_t0 = now_ms();
	return build_disk_start(b, err);
}

int
build_boot_qemu(struct build *b, struct error *err)
{
	struct qemu_config cfg = {
		.binary = b->opts.qemu_binary,
		.accel = b->opts.accel,
		.machine = b->opts.machine,
		.cpus = b->cpus,
		.memory = b->memory,
		.root_file = b->img.root_fd,
		.cache_file = build_cache_disk_fd(b),
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
		"%s qctl.skip_modules=%s%s%s%s", b->img.cmdline,
		microvm ? "virtio_pci,virtio_pci_modern_dev,"
			  "virtio_pci_legacy_dev"
			: "virtio_mmio",
		b->net ? "" : ",virtio_net,net_failover,failover",
		/* the agent overlays the root disk (guestagent/root.c) */
		b->img.root_fd >= 0 ? " qctl.root" : "",
		/* ... and hands PID 1 to the image's init (sshd) */
		b->ssh ? " qctl.ssh" : "");
	/* The VM's name carries the run id, so ps shows whose QEMU it is. */
	_cleanup_free_ char *name = xasprintf("qctl-%s",
					      strrchr(b->run_dir, '/') + 1);
	int r, incoming = -1;

	cfg.name = name;
	cfg.cmdline = cmdline;
	r = vm_confine_default(&confine, b->opts.state_dir, &b->opts.uids,
			       err);
	if (r < 0)
		return r;
	build_res_prepare(b, &confine);
	cfg.tb_size_mib = LIMIT_TCG_TB_MIB;
	build_snap_prepare(b, &cfg, b->net ? b->ns.tap_fd : -1, &incoming);
	r = vm_spawn(&cfg, b->net ? b->ns.tap_fd : -1, b->disk_fd, incoming,
		     b->qemu_log_fd, &confine, &b->vm, err);
	if (incoming >= 0)
		close(incoming);
	if (confine.cgroup_procs_fd >= 0)
		close(confine.cgroup_procs_fd);
	if (r == 0)
		state_note_pid(b->state, "qemu", b->vm.pid);
	if (r == 0 && b->vm.lease.held)
		state_note_uid(b->state, b->vm.lease.uid);
	if (r < 0)
		return r;
	build_say(b, 2, "QEMU pid %d (attempt %d)", b->vm.pid, b->boot_attempt);
	b->w_pid = loop_watch_fd(b->loop, b->vm.pidfd, EPOLLIN, on_pidfd, b);
	b->qmp = qmp_new(b->vm.qmp_fd, on_qmp_event, b);
	b->vm.qmp_fd = -1;	/* owned by the QMP client now */
	/* Over ssh the agent channel is the bridge's socket, used exactly
	 * as the virtio-serial one (QEMU's port stays unopened). */
	if (b->ssh && build_ssh_start(b, err) < 0)
		return -1;
	agent_conn_init(&b->agent, b->ssh ? b->bridge_fd : b->vm.agent_fd,
			on_agent_frame, b);
	b->agent_up = true;
	fd_set_nonblock(b->vm.console_fd);
	if (!b->qmp)
		return error_set(err, EIO, "QMP socket unusable");
	b->w_qmp = loop_watch_fd(b->loop, qmp_fd(b->qmp), EPOLLIN, on_qmp_io,
				 b);
	b->w_agent = loop_watch_fd(b->loop, b->agent.fd, EPOLLIN,
				   on_agent_io, b);
	b->w_console = loop_watch_fd(b->loop, b->vm.console_fd, EPOLLIN,
				     build_on_console, b);
	if (!b->w_pid || !b->w_qmp || !b->w_agent || !b->w_console)
		return error_sys(err, errno, "epoll");
	/* The only QMP traffic before the guest runs: capabilities, cont. */
	r = qmp_execute(b->qmp, "cont", NULL, QMP_TIMEOUT_MS, on_cont, b, err);
	if (r < 0)
		return r;
	build_update_watches(b);
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
	build_limit_exceeded(b, "wall_time", build_since_start(b),
			     b->recipe->limits.wall_time_ms, "ms",
			     "build exceeded its wall time of %.0fs",
			     b->recipe->limits.wall_time_ms / 1000.0);
	/* A failed step's result stands, but the wait for its artifacts
	 * ends here too: the wall time ends every build. */
	if (b->phase < PH_SHUTDOWN) {
		build_say(b, 0, "wall time of %.0fs exceeded while collecting "
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
	build_res_sample(b);
	if (b->qmp && qmp_ready(b->qmp) && b->phase < PH_SHUTDOWN &&
	    !b->paused && b->ticks % 4 == 0)
		qmp_execute(b->qmp, "query-blockstats", NULL, QMP_TIMEOUT_MS,
			    build_on_blockstats, b, NULL);
	/* Counters every second, every tick while the network is open. */
	if (b->net && (b->window_open || b->ticks % 4 == 0))
		build_net_sample(b);
	if (b->ticks % 4 == 0)
		build_statusline_draw(b);
	b->ticks++;
	if (b->qmp)
		build_update_watches(b);
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
	b->bridge_pid = b->bridge_fd = -1;
	b->mkfs_pid = -1;
	b->mkfs_pidfd = -1;
	b->net_log_fd = -1;
	b->ns.fd = b->ns.tap_fd = b->ns.listen_fd = -1;
	b->img.kernel_fd = b->img.initrd_fd = b->img.root_fd = -1;
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

/*
 * What the image decides for a recipe: cpus and memory the recipe left
 * unsaid (within the server's ceilings), and its allow entries with each
 * "image:NAME" replaced by the image's host list NAME.
 */
static int
resolve_image_defaults(struct build *b, struct error *err)
{
	const struct recipe *rc = b->recipe;

	b->cpus = rc->cpus_set || !b->img.cpus ? rc->cpus : b->img.cpus;
	b->memory = rc->memory_set || !b->img.memory ? rc->memory
						       : b->img.memory;
	if (!rc->cpus_set && b->opts.max_cpus && b->cpus > b->opts.max_cpus)
		b->cpus = b->opts.max_cpus;
	if (!rc->memory_set && b->opts.max_memory &&
	    b->memory > b->opts.max_memory)
		b->memory = b->opts.max_memory;
	/* the recipe may name the transport; the image decides what it has */
	if (rc->transport == RECIPE_TRANSPORT_SSH && !b->img.ssh)
		return error_set(err, EINVAL, "transport ssh: image %s has "
				 "none (its image.json says no \"transport\": "
				 "\"ssh\")", b->img.name);
	if (rc->transport == RECIPE_TRANSPORT_AGENT && b->img.ssh)
		return error_set(err, EINVAL, "transport agent: image %s runs "
				 "no qctl agent (its transport is ssh)",
				 b->img.name);
	b->ssh = b->img.ssh;
	b->allow = xcalloc(1, sizeof(*b->allow));
	for (size_t i = 0; i < rc->n_allow; i++) {
		const char *e = rc->allow[i];
		const struct image_hosts *h;
		size_t n;

		if (strncmp(e, RECIPE_ALLOW_IMAGE, strlen(RECIPE_ALLOW_IMAGE))) {
			b->allow = xrealloc(b->allow, (b->n_allow + 2) *
						      sizeof(*b->allow));
			b->allow[b->n_allow++] = xstrdup(e);
			continue;
		}
		h = image_hosts_get(&b->img, e + strlen(RECIPE_ALLOW_IMAGE));
		if (h && !h->n)
			return error_set(err, EINVAL, "allow \"%s\": image %s "
					 "recorded no %s hosts (its host had "
					 "none configured when it was built)",
					 e, b->img.name, h->name);
		if (!h)
			return error_set(err, EINVAL, "allow \"%s\": image %s "
					 "recorded no such host list (%s)", e,
					 b->img.name,
					 b->img.n_hosts ? "see its image.json "
							  "\"hosts\""
							: "it has none");
		n = h->n;
		b->allow = xrealloc(b->allow, (b->n_allow + n + 1) *
					      sizeof(*b->allow));
		for (size_t k = 0; k < n; k++)
			b->allow[b->n_allow++] = xstrdup(h->entries[k]);
		build_say(b, 2, "allow %s: %zu host%s", e, n,
			  n == 1 ? "" : "s");
	}
	return 0;
}

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
		build_fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	build_say(b, 1, "source: %s at %s (%s)", b->recipe->git.url,
	    gitsrc_commit(g), b->recipe->git.ref);
	if (boot_vm(b, &err) < 0)
		build_fail(b, BUILD_ERROR, "%s", err.msg);
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
	r = resolve_image_defaults(b, err);
	if (r < 0) {
		/* the recipe asked the image for what it has not: exit 2 */
		b->res.recipe_error = true;
		return r;
	}
	r = build_cache_start(b, err);
	if (r < 0)
		return r;
	build_say(b, 1, "booting %s (%s, %d cpu, %llu MiB) in %s", b->img.name,
		  accel_name(b->opts.accel), b->cpus,
		  (unsigned long long)(b->memory >> 20), b->run_dir);
	b->t_wall = loop_timer_at(b->loop,
				  b->t0 + b->recipe->limits.wall_time_ms,
				  on_wall_time, b);
	b->t_tick = loop_timer_at(b->loop, now_ms() + TICK_MS, on_tick, b);
	/* the ssh transport reaches the guest through its tap, fetch
	 * steps or not; its keys and the guest's files come first */
	if (b->ssh) {
		b->net = true;
		r = build_ssh_prepare(b, err);
		if (r < 0)
			return r;
	}
	if (b->net) {
		r = build_net_start(b, err);
		if (r < 0) {
			build_net_stop(b);
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
		build_net_stop(b);
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
	build_update_watches(b);
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
	/* a held build keeps its failure; the hold records the cancel */
	if (b->phase == PH_HOLD)
		build_hold_release(b, why);
	build_fail(b, BUILD_CANCELLED, "%s", why);
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
	build_hold_release(b, "the build was freed");
	release_vm(b);
	build_ssh_free(b);
	build_net_stop(b);
	upload_stop(b);
	if (b->art_fd >= 0)
		close(b->art_fd);
	if (b->log_fd >= 0)
		close(b->log_fd);
	if (b->disk_fd >= 0)
		close(b->disk_fd);
	build_cache_free(b);
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
	for (size_t i = 0; i < b->n_allow; i++)
		free(b->allow[i]);
	free(b->allow);
	free(b->run_dir);
	free(b->artifacts_dir);
	free(b->disk_path);
	free(b);
}
