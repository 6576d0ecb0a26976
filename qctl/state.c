/* state.c - crash-recovery records of live builds, and their reaping */
#include "state.h"

#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "cgroup.h"
#include "json-util.h"
#include "netns.h"
#include "procstat.h"
#include "uidpool.h"

struct state_rec {
	char *path;
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

static int
state_write(struct state_rec *s)
{
	_cleanup_free_ char *tmp = xasprintf("%s.tmp", s->path);

	if (json_dump_file(s->j, tmp, JSON_COMPACT) < 0)
		return -EIO;
	if (rename(tmp, s->path) < 0) {
		unlink(tmp);
		return -errno;
	}
	return 0;
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
	/* 0700: the records name processes and paths of every build. */
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		error_sys(err, errno, "mkdir %s", dir);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->path = xasprintf("%s/%s.json", dir, id);
	s->j = json_pack("{s:s, s:o, s:s}", "id", id, "manager",
			 pid_json(getpid()), "run_dir", run_dir);
	if (state_write(s) < 0) {
		error_sys(err, errno, "write %s", s->path);
		json_decref(s->j);
		free(s->path);
		free(s);
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
	return state_write(s);
}

int
state_note_pid(struct state_rec *s, const char *key, pid_t pid)
{
	if (!s)
		return 0;
	json_object_set_new(s->j, key, pid_json(pid));
	return state_write(s);
}

int
state_note_uid(struct state_rec *s, uid_t uid)
{
	if (!s)
		return 0;
	json_object_set_new(s->j, "uid", json_integer(uid));
	return state_write(s);
}

void
state_close(struct state_rec *s)
{
	if (!s)
		return;
	unlink(s->path);
	json_decref(s->j);
	free(s->path);
	free(s);
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

/* Reap one record of a dead manager. */
static void
reap(const char *dir, json_t *j, const char *id, FILE *out)
{
	static const char *const procs[] = { "qemu", "helper", "proxy" };
	json_t *v;
	char msg[4200];

	for (size_t i = 0; i < ARRAY_SIZE(procs); i++)
		kill_rec(j, procs[i], id, out);
	/* QEMU's uid: free again once nothing runs as it */
	v = json_object_get(j, "uid");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		uidpool_gc(dir, json_integer_value(v), id, out);
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
	/* only what looks like one of ours: .../run-XXXXXX */
	if (json_is_string(v) && strstr(json_string_value(v), "/run-") &&
	    access(json_string_value(v), F_OK) == 0 &&
	    rm_rf(json_string_value(v)) == 0) {
		snprintf(msg, sizeof(msg), "removed run directory %s",
			 json_string_value(v));
		say(out, id, msg);
	}
}

static int state_gc_records(const char *dir, FILE *out, struct error *err);
static void gc_cgroups(FILE *out);

int
state_gc(const char *dir, FILE *out, struct error *err)
{
	int n = state_gc_records(dir, out, err);

	gc_cgroups(out);
	/* uids whose record was lost (a manager killed between taking the
	 * uid and noting it): their locks are free, and nothing else is */
	uidpool_gc(dir, -1, NULL, out);
	return n;
}

static int
state_gc_records(const char *dir, FILE *out, struct error *err)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return errno == ENOENT ? 0 : error_sys(err, errno, "%s", dir);
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		_cleanup_free_ char *p = NULL;
		_cleanup_json_ json_t *j = NULL;
		json_error_t je;
		pid_t pid;
		char id[256];

		if (len < 6 || strcmp(de->d_name + len - 5, ".json") ||
		    de->d_name[0] == '.' || len - 5 >= sizeof(id))
			continue;
		memcpy(id, de->d_name, len - 5);
		id[len - 5] = '\0';
		p = xasprintf("%s/%s", dir, de->d_name);
		j = json_load_file(p, 0, &je);
		if (!j || !json_is_object(j)) {
			/* a torn write cannot happen (rename), so this is
			 * junk: drop it */
			unlink(p);
			continue;
		}
		if (rec_alive(json_object_get(j, "manager"), &pid))
			continue;	/* its manager lives: not ours */
		reap(dir, j, id, out);
		unlink(p);
		n++;
	}
	closedir(d);
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
