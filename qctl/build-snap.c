/*
 * build-snap.c - a build's VM started from a snapshot, or the snapshot
 * made by a build's cold boot (docs/snapshots.md).
 *
 * A build whose VM shape has a saved state (snapshot.h) starts QEMU with
 * -incoming: it resumes where the agent had just said HELLO, with this
 * build's own disks and channels.  A build without one boots cold; at its
 * HELLO, before anything of the build has run in the guest, its VM is
 * migrated to a file, which becomes the state later builds start from,
 * and then goes on.  Either way the VM that resumes from that moment is
 * sent IDENTITY (fresh entropy, the clock, the hostname) and answers with
 * a second HELLO; only then does the build go on (build.c's start_setup).
 * Anything that goes wrong on the way is a cold boot, never a failed
 * build: a state that will not load is removed and the boot retried cold.
 */
#include "build-int.h"

#include <sys/random.h>
#include <time.h>

#include "qmp.h"
#include "snapshot.h"

/* query-migrate's pace while the state is written */
#define SNAP_POLL_MS 20
/* the hostname every build's guest has: builds see no run id in it */
#define SNAP_HOSTNAME "builder"

static void
snap_drop(struct build *b)
{
	if (b->snap) {
		snapshot_free(b->snap);
		free(b->snap);
		b->snap = NULL;
	}
	loop_timer_cancel(b->t_snap);
	b->t_snap = NULL;
}

int
build_snap_prepare(struct build *b, const struct qemu_config *cfg, int tap_fd,
		   int *incoming_fd)
{
	_cleanup_free_ char *desc = NULL;
	struct error err = { 0 };
	int fd;

	*incoming_fd = -1;
	b->snap_mode = SNAP_NONE;
	b->identity_sent = false;
	snap_drop(b);
	/* a root disk is mounted before HELLO, an ssh image's init runs
	 * sshd: neither is a guest that waits for its build untouched; a
	 * recipe cache's disk is another build's content to a restored
	 * kernel (it read its first blocks at probe), and changes the VM */
	if (b->opts.no_snapshots || !b->opts.state_dir || b->img.root_fd >= 0 ||
	    b->ssh || b->boot_attempt > 1 || b->cache)
		return 0;
	if (vm_describe(cfg, tap_fd, b->disk_fd, &desc, &err) < 0) {
		build_say(b, 2, "no snapshot: %s", err.msg);
		return 0;
	}
	b->snap = xcalloc(1, sizeof(*b->snap));
	snapshot_init(b->snap, b->opts.state_dir, desc);
	fd = snapshot_open(b->snap, &err);
	if (fd >= 0) {
		b->snap_mode = SNAP_RESTORE;
		*incoming_fd = fd;
		build_say(b, 2, "starting from snapshot %s", b->snap->name);
		return 0;
	}
	if (fd != -ENOENT)
		build_say(b, 0, "warning: snapshot %s: %s", b->snap->name,
			  err.msg);
	fd = snapshot_begin(b->snap, &err);
	if (fd < 0) {
		build_say(b, 2, "not saving a snapshot: %s", err.msg);
		snap_drop(b);
		return 0;
	}
	b->snap_mode = SNAP_SAVE;
	build_say(b, 2, "booting cold; will save snapshot %s", b->snap->name);
	return 0;
}

/* The VM runs from the snapshot's moment: it becomes this build's. */
static void
send_identity(struct build *b)
{
	unsigned char seed[64];
	struct timespec now;
	struct error err = { 0 };

	if (b->identity_sent)
		return;
	if (getrandom(seed, sizeof(seed), 0) != sizeof(seed)) {
		build_fail(b, BUILD_ERROR, "getrandom: %s", strerror(errno));
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (agent_send_identity(&b->agent, 0, &now, seed, sizeof(seed),
				SNAP_HOSTNAME, &err) < 0) {
		explicit_bzero(seed, sizeof(seed));
		build_fail(b, BUILD_ERROR, "%s", err.msg);
		return;
	}
	explicit_bzero(seed, sizeof(seed));
	b->identity_sent = true;
	build_update_watches(b);
}

void
build_snap_resumed(struct build *b)
{
	/* a restored VM: RESUME is the moment its clock must be right */
	if (b->snap_mode == SNAP_RESTORE || b->snap_mode == SNAP_SAVED)
		send_identity(b);
}

/* Saving failed: the VM goes on as a cold boot that saved nothing. */
static void
save_failed(struct build *b, const char *why)
{
	build_say(b, 0, "warning: snapshot not saved: %s", why);
	snap_drop(b);
	b->snap_mode = SNAP_SAVED;
	/* paused if the stream was complete; a no-op if running (and a
	 * client's pause stays) */
	if (b->qmp && !b->paused)
		qmp_execute(b->qmp, "cont", NULL, QMP_TIMEOUT_MS, NULL, NULL,
			    NULL);
	/* nobody shares its state, but one path for both is simpler */
	send_identity(b);
}

static void on_snap_poll(struct loop *l, void *opaque);

static void
on_cont_saved(struct qmp *q, json_t *ret, const struct error *err,
	      void *opaque)
{
	struct build *b = opaque;

	(void)q;
	(void)ret;
	if (err)
		build_fail(b, BUILD_ERROR, "QEMU would not resume the VM "
			   "after saving it: %s", err->msg);
}

static void
on_query_migrate(struct qmp *q, json_t *ret, const struct error *err,
		 void *opaque)
{
	struct build *b = opaque;
	const char *st = json_string_value(json_object_get(ret, "status"));
	struct error e2 = { 0 };
	uint64_t bytes = 0;

	(void)q;
	if (b->snap_mode != SNAP_SAVING)
		return;
	if (err || !st) {
		save_failed(b, err ? err->msg : "query-migrate: no status");
		return;
	}
	if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
		const char *d = json_string_value(json_object_get(ret,
							"error-desc"));

		save_failed(b, d ? d : st);
		return;
	}
	if (strcmp(st, "completed")) {
		b->t_snap = loop_timer_at(b->loop, now_ms() + SNAP_POLL_MS,
					  on_snap_poll, b);
		return;
	}
	/* the VM is paused with everything written: copy it out of
	 * QEMU's reach before any of the build runs */
	if (snapshot_commit(b->snap, &bytes, &e2) < 0) {
		save_failed(b, e2.msg);
		return;
	}
	build_say(b, 1, "snapshot saved in %lld ms (%llu MiB)",
		  (long long)(now_ms() - b->snap_t0),
		  (unsigned long long)(bytes >> 20));
	b->snap_mode = SNAP_SAVED;
	b->res.snapshot_saved = true;
	/* paused by a client meanwhile (build_pause): its resume runs it */
	if (!b->paused)
		qmp_execute(b->qmp, "cont", NULL, QMP_TIMEOUT_MS,
			    on_cont_saved, b, NULL);
	/* RESUME sends its identity (build_snap_resumed) */
}

static void
on_snap_poll(struct loop *l, void *opaque)
{
	struct build *b = opaque;
	struct error err = { 0 };

	(void)l;
	b->t_snap = NULL;
	if (qmp_execute(b->qmp, "query-migrate", NULL, QMP_TIMEOUT_MS,
			on_query_migrate, b, &err) < 0)
		save_failed(b, err.msg);
}

static void
on_migrate(struct qmp *q, json_t *ret, const struct error *err, void *opaque)
{
	struct build *b = opaque;

	(void)q;
	(void)ret;
	if (b->snap_mode != SNAP_SAVING)
		return;
	if (err) {
		save_failed(b, err->msg);
		return;
	}
	b->t_snap = loop_timer_at(b->loop, now_ms() + SNAP_POLL_MS,
				  on_snap_poll, b);
}

/* Start writing the state: QEMU gets the file over QMP, not a path. */
static int
start_save(struct build *b, struct error *err)
{
	b->snap_t0 = now_ms();
	/* the default bandwidth cap is for a network, not a file */
	if (qmp_execute(b->qmp, "migrate-set-parameters",
			json_pack("{s:I}", "max-bandwidth",
				  (json_int_t)1 << 40),
			QMP_TIMEOUT_MS, NULL, NULL, err) < 0 ||
	    qmp_execute_fd(b->qmp, "getfd",
			   json_pack("{s:s}", "fdname", "qctl-snapshot"),
			   b->snap->tmp_fd, QMP_TIMEOUT_MS, NULL, NULL,
			   err) < 0 ||
	    qmp_execute(b->qmp, "migrate",
			json_pack("{s:s}", "uri", "fd:qctl-snapshot"),
			QMP_TIMEOUT_MS, on_migrate, b, err) < 0)
		return -1;
	b->snap_mode = SNAP_SAVING;
	return 0;
}

bool
build_snap_hello(struct build *b, unsigned version)
{
	struct error err = { 0 };

	switch (b->snap_mode) {
	case SNAP_NONE:
		return false;
	case SNAP_SAVE:
		/* an agent that cannot take an identity is not saved */
		if (version < 3) {
			build_say(b, 2, "no snapshot: agent protocol %u",
				  version);
			snap_drop(b);
			b->snap_mode = SNAP_NONE;
			return false;
		}
		if (start_save(b, &err) < 0) {
			save_failed(b, err.msg);
			return true;
		}
		return true;
	case SNAP_SAVING:
		build_fail(b, BUILD_ERROR, "agent: HELLO while its VM was "
			   "being saved");
		return true;
	case SNAP_RESTORE:
	case SNAP_SAVED:
		if (!b->identity_sent) {
			/* the HELLO of a snapshot's agent was said before
			 * it was saved: another one is not in the protocol */
			build_fail(b, BUILD_ERROR, "agent: HELLO before its "
				   "identity");
			return true;
		}
		/* the answer to IDENTITY: on with the build */
		if (b->snap_mode == SNAP_RESTORE) {
			build_say(b, 1, "started from snapshot %s",
				  b->snap->name);
			b->res.boot = "snapshot";
		}
		snap_drop(b);
		b->snap_mode = SNAP_DONE;
		return false;
	case SNAP_DONE:
		return false;
	}
	return false;
}

bool
build_snap_restoring(const struct build *b)
{
	return b->phase == PH_BOOT && b->snap_mode == SNAP_RESTORE &&
	       !b->killing;
}

bool
build_snap_boot_failed(struct build *b)
{
	bool restored = b->snap_mode == SNAP_RESTORE && b->snap;

	if (restored) {
		build_say(b, 0, "snapshot %s did not start: removed; booting "
			  "cold", b->snap->name);
		snapshot_invalidate(b->snap);
	}
	snap_drop(b);
	b->snap_mode = SNAP_NONE;
	return restored;
}

void
build_snap_free(struct build *b)
{
	snap_drop(b);
}
