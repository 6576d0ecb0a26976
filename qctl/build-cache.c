/*
 * build-cache.c - a build's use of the dependency cache (docs/cache.md).
 *
 * The build gets its own copy of the stored image (RUNDIR/cache.img, or an
 * empty ext4 when there is none), attached as the disk with serial
 * "qctl-cache".  The guest mounts it and binds a directory of it onto each
 * cached path.  When the last fetch step has ended, the guest syncs and
 * remounts it read-only, and the host copies the disk file to a pending
 * file: that copy is what may be kept, so nothing the guest does after
 * (its root can remount) reaches the cache.  The pending copy replaces the
 * stored image only if the whole build passes.
 */
#include "build-int.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include "cache.h"
#include "qmp.h"
#include "rundir.h"

/* where the guest mounts the disk; recipe paths cannot be under /run */
#define GUEST_CACHE_DIR "/run/qctl-cache"

struct build_cache {
	struct cache_use use;
	int disk_fd;		/* RUNDIR/cache.img, read-write */
	bool hit;		/* a stored image was copied */
	bool sealed;		/* the seal EXEC ran */
	size_t next_step;	/* the step that waits for the seal */
	build_step_fn cont;	/* starts it */
	char why[256];		/* why it is not kept */
};

/* An empty ext4 on fd (the scratch disk's options, build-disk.c). */
static int
mkfs_cache(struct build *b, int fd, uint64_t size, struct error *err)
{
	char sz[32];
	char *argv[] = { (char *)"mkfs.ext4", (char *)"-q", (char *)"-F",
			 (char *)"-m", (char *)"0", (char *)"-O",
			 (char *)"^has_journal,^resize_inode", (char *)"-E",
			 (char *)"lazy_itable_init=1,nodiscard", (char *)"-L",
			 (char *)"qctl-cache", (char *)"/dev/fd/3", sz, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	pid_t pid;
	int r, st;

	snprintf(sz, sizeof(sz), "%lluk", (unsigned long long)(size >> 10));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (b->log_fd >= 0)
		posix_spawn_file_actions_adddup2(&fa, b->log_fd, 2);
	posix_spawn_file_actions_adddup2(&fa, fd, 3);
	sigemptyset(&none);
	sigfillset(&all);
	posix_spawnattr_init(&at);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
					      POSIX_SPAWN_SETSIGDEF);
	r = posix_spawnp(&pid, "mkfs.ext4", &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r != 0)
		return error_sys(err, r, "cache: cannot run mkfs.ext4");
	/* Waited for: an empty file system of lazily initialized tables
	 * is made in well under a second, once per missing key. */
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return error_sys(err, errno, "cache: waitpid");
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		return error_set(err, EIO, "cache: mkfs.ext4 failed (its "
				 "messages are in build.log)");
	return 0;
}

/* The cache root: --cache-dir, else STATE/cache. */
static char *
cache_root_path(const struct build *b)
{
	if (b->opts.cache_dir)
		return xstrdup(b->opts.cache_dir);
	if (b->opts.state_dir)
		return xasprintf("%s/cache", b->opts.state_dir);
	return NULL;
}

int
build_cache_start(struct build *b, struct error *err)
{
	const struct recipe_cache *rc = &b->recipe->cache;
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int root_fd = -1, img = -1;
	struct build_cache *c;
	int r;

	if (!rc->key)
		return 0;
	path = cache_root_path(b);
	if (!path)
		return error_set(err, EINVAL, "cache: no state directory");
	c = b->cache = xcalloc(1, sizeof(*c));
	c->use = (struct cache_use)CACHE_USE_INIT;
	c->disk_fd = -1;
	r = cache_root_open(path, &root_fd, err);
	if (r == 0)
		r = cache_use_begin(root_fd, b->opts.cache_ns, rc->key,
				    &c->use, err);
	if (r == 0)
		r = cache_open_image(&c->use, rc->size, &img, err);
	if (r == 0)
		r = rundir_open_file(b->dir_fd, "cache.img", O_RDWR,
				     &c->disk_fd, err);
	if (r < 0)
		return r;
	c->hit = img >= 0;
	/* the build's own copy: the stored image is never written */
	if (c->hit)
		r = cache_copy_fd(img, c->disk_fd, err);
	else if (ftruncate(c->disk_fd, rc->size) < 0)
		r = error_sys(err, errno, "cache: size the disk");
	else
		r = mkfs_cache(b, c->disk_fd, rc->size, err);
	if (r < 0)
		return r;
	snprintf(c->why, sizeof(c->why), "%s",
		 build_cache_fetches(b) ? "the build did not pass"
					: "no fetch step: the cache is only "
					  "read");
	build_say(b, 1, "cache %s: %s (uid %u)", rc->key,
		  c->hit ? "hit" : "miss, starting empty",
		  (unsigned)b->opts.cache_ns);
	return 0;
}

/* The recipe's fetch steps, all before the others (recipe.c). */
size_t
build_cache_fetches(const struct build *b)
{
	size_t n = 0;

	while (n < b->recipe->n_steps && b->recipe->steps[n].fetch)
		n++;
	return n;
}

int
build_cache_disk_fd(const struct build *b)
{
	return b->cache ? b->cache->disk_fd : -1;
}

/*
 * Each path is a shell word of qctl's: recipe.c allowed only
 * [A-Za-z0-9/._+-@].  A path the cache has no directory for yet (a new
 * key, or a path added to the recipe) starts with the image's content
 * there, as a new volume does: a cache of apt's lists begins with the
 * image's lists, not with none.
 */
static void
add_path_binds(struct build *b, char **s)
{
	const struct recipe_cache *rc = &b->recipe->cache;

	for (size_t i = 0; i < rc->n_paths; i++) {
		const char *p = rc->paths[i];
		/* cp's first complaint only: a full cache gives hundreds */
		char *t = xasprintf("%s; if [ ! -d " GUEST_CACHE_DIR "/t%s ]; "
				    "then mkdir -p " GUEST_CACHE_DIR "/t%s; "
				    "if [ -d %s ] && ! busybox cp -a %s/. "
				    GUEST_CACHE_DIR "/t%s/ 2>" GUEST_CACHE_DIR
				    ".err; then echo \"cache: copying the "
				    "image's %s into the cache failed: $(busybox "
				    "head -n 1 " GUEST_CACHE_DIR ".err)\" >&2; "
				    "exit 1; fi; fi; "
				    "mkdir -p %s; busybox mount --bind "
				    GUEST_CACHE_DIR "/t%s %s",
				    *s, p, p, p, p, p, p, p, p, p);

		free(*s);
		*s = t;
	}
}

char *
build_cache_setup_text(struct build *b)
{
	char *s;

	if (!b->cache)
		return xstrdup("");
	/* the disk by its serial: the order of disks is not a contract */
	s = xstrdup("; d=; for s in /sys/block/vd*; do "
		    "[ \"$(cat $s/serial 2>/dev/null)\" = qctl-cache ] && "
		    "d=/dev/${s##*/}; done; [ -n \"$d\" ]; "
		    "mkdir -p " GUEST_CACHE_DIR "; "
		    "busybox mount -t ext4 -o nosuid,nodev,noatime \"$d\" "
		    GUEST_CACHE_DIR);
	add_path_binds(b, &s);
	/* no fetch step first: read-only from the start (the binds share
	 * the file system's read-only flag) */
	if (!build_cache_fetches(b)) {
		char *t = xasprintf("%s; busybox mount -o remount,ro "
				    GUEST_CACHE_DIR, s);

		free(s);
		s = t;
		b->cache->sealed = true;
	}
	return s;
}

/*
 * Before step i: when the fetch steps are over, seal the cache first (an
 * EXEC; the step starts when it exits, build_cache_sealed).  True when
 * that EXEC was sent.
 */
bool
build_cache_before_step(struct build *b, size_t i)
{
	static const char root[] =
		"busybox() { /run/qctl/busybox \"$@\"; }; ";
	struct build_cache *c = b->cache;
	struct error err = { 0 };
	char buf[256];
	char *argv[] = { buf };

	if (!c || c->sealed || i < build_cache_fetches(b))
		return false;
	c->sealed = true;
	c->next_step = i;
	/* the guest's last writes reach the disk file, and no more come
	 * through this mount (its root could remount: the host copies now,
	 * and keeps nothing written after) */
	snprintf(buf, sizeof(buf), "%ssync; busybox mount -o remount,ro "
		 GUEST_CACHE_DIR, b->img.root_fd >= 0 ? root : "");
	b->phase = PH_CACHE;
	b->job_started = false;
	b->setup_out = 0;
	if (agent_send_exec(&b->agent, CACHE_ID, AGENT_EXEC_SHELL, "/", argv, 1,
			    NULL, 0, &err) < 0) {
		build_fail(b, BUILD_ERROR, "cache: %s", err.msg);
		return true;
	}
	b->t_phase = loop_timer_at(b->loop,
				   now_ms() + b->recipe->limits.boot_timeout_ms,
				   build_cache_on_timeout, b);
	return true;
}

void
build_cache_on_timeout(struct loop *l, void *opaque)
{
	struct build *b = opaque;

	(void)l;
	b->t_phase = NULL;
	build_fail(b, BUILD_ERROR, "cache: sealing in the guest did not "
		   "finish within %.0fs (the boot timeout)",
		   b->recipe->limits.boot_timeout_ms / 1000.0);
}

/* The pending copy of the disk as the fetch steps left it. */
static void
seal_copy(struct build *b)
{
	struct build_cache *c = b->cache;
	struct error err = { 0 };

	if (cache_pending_write(&c->use, c->disk_fd,
				strrchr(b->run_dir, '/') + 1, &err) < 0) {
		snprintf(c->why, sizeof(c->why), "%.200s", err.msg);
		build_say(b, 0, "cache %s: not kept: %s", b->recipe->cache.key,
			  err.msg);
		return;
	}
	build_say(b, 2, "cache %s: sealed after the fetch steps",
		  b->recipe->cache.key);
}

static void
on_stopped(struct qmp *q, json_t *ret, const struct error *qerr,
	   void *opaque)
{
	struct build *b = opaque;
	struct build_cache *c = b->cache;

	(void)q;
	(void)ret;
	if (b->phase != PH_CACHE)
		return;		/* the build ended meanwhile */
	if (qerr)
		snprintf(c->why, sizeof(c->why), "QEMU would not stop the VM "
			 "for the copy: %.160s", qerr->msg);
	else
		seal_copy(b);
	qmp_execute(b->qmp, "cont", NULL, QMP_TIMEOUT_MS, NULL, NULL, NULL);
	build_update_watches(b);
	c->cont(b, c->next_step);
}

/*
 * The seal EXEC exited: copy what the fetch steps left, with the vCPUs
 * stopped (QMP stop), so that nothing the guest still runs (a process a
 * fetch step left behind, its root remounting) writes during the copy;
 * then cont(b, the waiting step).
 */
void
build_cache_sealed(struct build *b, int32_t code, int32_t sig,
		   build_step_fn cont)
{
	struct build_cache *c = b->cache;

	build_cancel_phase_timer(b);
	c->cont = cont;
	if (code != 0 || sig != 0) {
		/* a writer still open, say: what the disk holds may be torn */
		snprintf(c->why, sizeof(c->why), "the guest could not make it "
			 "read-only (exit %d, signal %d)", code, sig);
		build_say(b, 1, "cache %s: not kept: %s", b->recipe->cache.key,
			  c->why);
		cont(b, c->next_step);
		return;
	}
	if (b->paused) {	/* stopped already (build_pause) */
		seal_copy(b);
		cont(b, c->next_step);
		return;
	}
	if (qmp_execute(b->qmp, "stop", NULL, QMP_TIMEOUT_MS, on_stopped, b,
			NULL) < 0) {
		snprintf(c->why, sizeof(c->why), "QEMU would not stop the VM "
			 "for the copy");
		cont(b, c->next_step);
		return;
	}
	build_update_watches(b);
}

static void
on_evicted(const char *ns, const char *key, uint64_t bytes, void *opaque)
{
	struct build *b = opaque;

	build_say(b, 1, "cache: evicted %s of uid %s (%llu KiB, least "
		  "recently used)", key, ns, (unsigned long long)(bytes >> 10));
}

/* The build's end: keep the sealed copy if it passed, else drop it; its
 * own copy goes in every case.  Eviction follows a commit. */
void
build_cache_end(struct build *b)
{
	struct build_cache *c = b->cache;
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int root_fd = -1;
	struct error err = { 0 };
	bool kept = false;
	int r;

	if (!c || b->res.cache)
		return;
	if (b->res.status == BUILD_PASSED && c->use.pending[0]) {
		if (cache_commit(&c->use, &err) == 0)
			kept = true;
		else
			snprintf(c->why, sizeof(c->why), "%.200s", err.msg);
	}
	cache_use_end(&c->use);
	if (c->disk_fd >= 0)
		close(c->disk_fd);
	c->disk_fd = -1;
	unlinkat(b->dir_fd, "cache.img", 0);
	build_say(b, 1, "cache %s: %s%s", b->recipe->cache.key,
		  kept ? "kept" : "not kept: ", kept ? "" : c->why);
	b->res.cache = json_pack("{s:s, s:s, s:b, s:s?}", "key",
				 b->recipe->cache.key, "lookup",
				 c->hit ? "hit" : "miss", "kept", kept,
				 "reason", kept ? NULL : c->why);
	if (!kept)
		return;
	path = cache_root_path(b);
	if (cache_root_open(path, &root_fd, &err) == 0)
		r = cache_evict(root_fd, b->opts.cache_max ? b->opts.cache_max
							   : CACHE_MAX_DEFAULT,
				on_evicted, b, NULL, &err);
	else
		r = -1;
	if (r < 0)
		build_say(b, 0, "warning: cache eviction: %s", err.msg);
}

void
build_cache_free(struct build *b)
{
	if (!b->cache)
		return;
	cache_use_end(&b->cache->use);
	if (b->cache->disk_fd >= 0)
		close(b->cache->disk_fd);
	free(b->cache);
	b->cache = NULL;
}
