/* state.c - crash-recovery records of live builds, and their reaping */
#include "state.h"
#include "snapshot.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "cache.h"
#include "cgroup.h"
#include "json-util.h"
#include "netns.h"
#include "procstat.h"
#include "rundir.h"

/* A record is a few hundred bytes; anything much larger is not one. */
#define STATE_REC_MAX 65536
#include "uidpool.h"

struct state_rec {
	char *dir;		/* the state directory, checked at each use */
	char *name;		/* "<id>.json" */
	json_t *j;
};

/* Start time of pid in clock ticks since boot, or 0 if it is gone. */
static uint64_t
proc_start(pid_t pid)
{
	char p[64];
	_cleanup_free_ char *buf = NULL;
	struct proc_usage u = { 0 };

	snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
	if (read_file(p, 4096, &buf, NULL, NULL) < 0)
		return 0;
	if (procstat_parse_stat(buf, sysconf(_SC_CLK_TCK), &u, NULL) < 0)
		return 0;
	return u.start_ticks;
}

static json_t *
pid_json(pid_t pid)
{
	return json_pack("{s:i, s:I}", "pid", (int)pid, "start",
			 (json_int_t)proc_start(pid));
}

/*
 * Replace the record atomically: a fresh temp file, then rename.  The
 * directory is walked and checked each time (a few system calls): no fd
 * is held for the life of a build.
 */
static int
state_write(struct state_rec *s, struct error *err)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", s->name);
	_cleanup_free_ char *text = json_dumps(s->j, JSON_COMPACT);
	_cleanup_close_ int dfd = -1, fd = -1;
	int r;

	if (!text)
		return error_set(err, ENOMEM, "cannot encode %s", s->name);
	r = rundir_root_check(s->dir, "state directory", RUNDIR_CREATE, &dfd,
			      NULL, err);
	if (r < 0)
		return r;
	/* what a manager killed between write and rename left */
	unlinkat(dfd, tmp, 0);
	r = rundir_open_file(dfd, tmp, O_WRONLY, &fd, err);
	if (r < 0) {
		error_prefix(err, "state directory %s", s->dir);
		return r;
	}
	r = write_in_full(fd, text, strlen(text));
	if (r >= 0 && close(steal_fd(&fd)) < 0)
		r = -errno;
	if (r >= 0 && renameat(dfd, tmp, dfd, s->name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
		return error_sys(err, -r, "write %s/%s", s->dir, s->name);
	}
	return 0;
}

static void
state_free(struct state_rec *s)
{
	json_decref(s->j);
	free(s->dir);
	free(s->name);
	free(s);
}

struct state_rec *
state_open(const char *dir, const char *id, const char *run_dir,
	   struct error *err)
{
	struct state_rec *s;

	if (!dir)
		return NULL;
	if (strchr(id, '/') || id[0] == '.') {
		error_set(err, EINVAL, "bad build id for state record");
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	/* 0700 and root's alone (state_write): the records name processes
	 * that gc kills and directories that it removes. */
	s->dir = xstrdup(dir);
	s->name = xasprintf("%s.json", id);
	s->j = json_pack("{s:s, s:o, s:s}", "id", id, "manager",
			 pid_json(getpid()), "run_dir", run_dir);
	if (state_write(s, err) < 0) {
		state_free(s);
		return NULL;
	}
	return s;
}

int
state_note_str(struct state_rec *s, const char *key, const char *val)
{
	if (!s)
		return 0;
	json_object_set_new(s->j, key, json_string(val));
	return state_write(s, NULL);
}

int
state_note_pid(struct state_rec *s, const char *key, pid_t pid)
{
	if (!s)
		return 0;
	json_object_set_new(s->j, key, pid_json(pid));
	return state_write(s, NULL);
}

int
state_note_uid(struct state_rec *s, uid_t uid)
{
	if (!s)
		return 0;
	json_object_set_new(s->j, "uid", json_integer(uid));
	return state_write(s, NULL);
}

void
state_close(struct state_rec *s)
{
	_cleanup_close_ int dfd = -1;

	if (!s)
		return;
	if (rundir_root_check(s->dir, "state directory", 0, &dfd, NULL,
			      NULL) == 0)
		unlinkat(dfd, s->name, 0);
	state_free(s);
}

/* Is the process recorded as {pid, start} still that process? */
static bool
rec_alive(json_t *o, pid_t *pid_out)
{
	json_t *p = json_object_get(o, "pid"), *st = json_object_get(o, "start");
	pid_t pid;

	if (!json_is_integer(p) || !json_is_integer(st))
		return false;
	pid = json_integer_value(p);
	if (pid <= 1)
		return false;
	*pid_out = pid;
	/* a recycled pid has another start time: never kill a stranger */
	return proc_start(pid) == (uint64_t)json_integer_value(st) &&
	       json_integer_value(st) != 0;
}

static void
say(FILE *out, const char *id, const char *what)
{
	if (out)
		fprintf(out, "qctl gc: %s: %s\n", id, what);
}

static void
kill_rec(json_t *j, const char *key, const char *id, FILE *out)
{
	pid_t pid;
	char msg[128];

	if (!rec_alive(json_object_get(j, key), &pid))
		return;
	kill(pid, SIGKILL);
	/* not our child: wait for /proc to let go of it, briefly */
	for (int i = 0; i < 200 && proc_start(pid) != 0; i++)
		usleep(10000);
	snprintf(msg, sizeof(msg), "killed %s (pid %d)", key, (int)pid);
	say(out, id, msg);
}

/* The run root as gc found it: only its direct children are removed. */
struct gc_root {
	const char *state_dir;	/* for the uid locks */
	int fd;			/* -1: it does not exist */
	const char *path;	/* canonical */
};

/* Remove the record's run directory; false if it had to be left. */
static bool
reap_run_dir(const char *run_dir, const char *id, const struct gc_root *gr,
	     FILE *out)
{
	struct error e = { 0 };
	const char *name;
	char msg[4200];

	/* By name under the checked run root's fd: a record that names
	 * "<root>/run-x/../../etc", or any other place, is not obeyed. */
	if (rundir_child_name(gr->path, run_dir, &name, &e) < 0) {
		snprintf(msg, sizeof(msg), "not removed: %.4000s", e.msg);
		say(out, id, msg);
		return false;
	}
	if (gr->fd < 0 ||
	    faccessat(gr->fd, name, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return true;
	if (rundir_remove(gr->fd, name, &e) < 0) {
		snprintf(msg, sizeof(msg), "not removed: %.1000s: %.3000s",
			 run_dir, e.msg);
		say(out, id, msg);
		return false;
	}
	snprintf(msg, sizeof(msg), "removed run directory %.4000s", run_dir);
	say(out, id, msg);
	return true;
}

/*
 * Reap one record of a dead manager; false if its run directory had to be
 * left: the record then stays, so that a gc told the run root that the
 * build used (--run-root) can finish, and the operator hears of it again.
 */
static bool
reap(json_t *j, const char *id, const struct gc_root *gr, FILE *out)
{
	static const char *const procs[] = { "mkfs", "qemu", "helper",
					     "proxy", "sshbridge" };
	json_t *v;
	char msg[4200];

	for (size_t i = 0; i < ARRAY_SIZE(procs); i++)
		kill_rec(j, procs[i], id, out);
	/* QEMU's uid: free again once nothing runs as it */
	v = json_object_get(j, "uid");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		uidpool_gc(gr->state_dir, json_integer_value(v), id, out);
	v = json_object_get(j, "netns");
	if (json_is_string(v)) {
		_cleanup_free_ char *pin = xasprintf("%s/%s", NETNS_DIR,
						     json_string_value(v));

		if (access(pin, F_OK) == 0 &&
		    netns_remove(json_string_value(v), NULL) == 0) {
			snprintf(msg, sizeof(msg), "removed namespace %s",
				 json_string_value(v));
			say(out, id, msg);
		}
	}
	v = json_object_get(j, "cgroup_name");
	if (json_is_string(v) &&
	    json_is_string(json_object_get(j, "cgroup_root"))) {
		struct cgroup cg;
		const char *root =
			json_string_value(json_object_get(j, "cgroup_root"));

		if (cgroup_open(root, json_string_value(v), &cg, NULL) == 0) {
			if (cgroup_destroy(&cg, 5000, NULL) == 0) {
				snprintf(msg, sizeof(msg),
					 "removed cgroup %s/qctl/%s", root,
					 json_string_value(v));
				say(out, id, msg);
			}
		}
	}
	v = json_object_get(j, "run_dir");
	if (json_is_string(v) &&
	    !reap_run_dir(json_string_value(v), id, gr, out)) {
		say(out, id, "record kept");
		return false;
	}
	return true;
}

/*
 * Load record name.  Records are root's own regular files in root's own
 * directory: anything else was put there by someone else, and gc acts on
 * nothing it says (-EPERM, left in place).  0 with *j NULL: junk.
 */
static int
record_load(int dfd, const char *name, const char *id, json_t **j,
	    FILE *out)
{
	_cleanup_close_ int fd = -1;
	json_error_t je;
	struct stat st;
	char msg[512];

	*j = NULL;
	fd = openat(dfd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		snprintf(msg, sizeof(msg), "record %s %s: left alone", name,
			 errno == ELOOP ? "is not a regular file (a symlink)"
					: strerror(errno));
	else if (!S_ISREG(st.st_mode))
		snprintf(msg, sizeof(msg), "record %s is not a regular file: "
			 "left alone", name);
	else if (st.st_uid != geteuid())
		snprintf(msg, sizeof(msg), "record %s is owned by uid %u, not "
			 "by uid %u: left alone", name, (unsigned)st.st_uid,
			 (unsigned)geteuid());
	else if (st.st_size > STATE_REC_MAX)
		snprintf(msg, sizeof(msg), "record %s is larger than %d bytes: "
			 "left alone", name, STATE_REC_MAX);
	else {
		*j = json_loadfd(fd, 0, &je);
		return 0;
	}
	say(out, id, msg);
	return -EPERM;
}

static int
state_gc_records(int dfd, const struct gc_root *gr, FILE *out,
		 struct error *err)
{
	DIR *d;
	struct dirent *de;
	int n = 0, fd = dup(dfd);

	if (fd < 0)
		return error_sys(err, errno, "dup");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return error_sys(err, errno, "fdopendir");
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		_cleanup_json_ json_t *j = NULL;
		pid_t pid;
		char id[256];

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") ||
		    de->d_name[0] == '.' || len - 5 >= sizeof(id))
			continue;
		memcpy(id, de->d_name, len - 5);
		id[len - 5] = '\0';
		if (record_load(dfd, de->d_name, id, &j, out) < 0)
			continue;
		if (!j || !json_is_object(j)) {
			/* a torn write cannot happen (rename), so this is
			 * junk: drop it */
			unlinkat(dfd, de->d_name, 0);
			continue;
		}
		if (rec_alive(json_object_get(j, "manager"), &pid))
			continue;	/* its manager lives: not ours */
		if (!reap(j, id, gr, out))
			continue;
		unlinkat(dfd, de->d_name, 0);
		n++;
	}
	closedir(d);
	return n;
}

static void gc_cgroups(FILE *out);

int
state_gc(const char *dir, const char *run_root, FILE *out, struct error *err)
{
	_cleanup_close_ int dfd = -1, rfd = -1;
	_cleanup_free_ char *canon = NULL;
	struct gc_root gr = { .state_dir = dir, .fd = -1, .path = NULL };
	int n = 0, r;

	if (!run_root || !*run_root)
		run_root = RUN_ROOT_DEFAULT;
	/* The checks of their making, again: gc kills what the records
	 * name and removes directories, so both must be root's alone. */
	r = rundir_root_check(dir, "state directory", 0, &dfd, NULL, err);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0) {
		r = rundir_root_check(run_root, "run root", 0, &rfd, &canon,
				      err);
		if (r < 0 && r != -ENOENT)
			return r;
		gr.fd = rfd;
		gr.path = canon ? canon : run_root;
		n = state_gc_records(dfd, &gr, out, err);
		if (n < 0)
			return n;
	}
	error_clear(err);
	gc_cgroups(out);
	/* uids whose record was lost (a manager killed between taking the
	 * uid and noting it): their locks are free, and nothing else is */
	if (dfd >= 0)
		uidpool_gc(dir, -1, NULL, out);
	/* states half written by a manager that died while saving */
	if (dfd >= 0)
		snapshot_gc(dir, out);
	/* cache copies sealed by one that died before its build ended
	 * (the default cache root; a run's --cache-dir is its own) */
	if (dfd >= 0) {
		_cleanup_free_ char *cache = xasprintf("%s/cache", dir);

		cache_gc(cache, out);
	}
	return n;
}

/* Cgroups of dead managers that no record names (a record lost with its
 * state directory, say): qctl/<manager pid>-... with that pid gone. */
static void
gc_cgroups(FILE *out)
{
	_cleanup_free_ char *root = NULL;
	unsigned reaped = 0;

	if (cgroup_discover(getenv("QCTL_CGROUP_ROOT"), &root, NULL) < 0)
		return;
	if (cgroup_gc(root, 5000, &reaped, NULL) == 0 && reaped && out)
		fprintf(out, "qctl gc: removed %u orphaned cgroup%s under "
			"%s/qctl\n", reaped, reaped == 1 ? "" : "s", root);
}
