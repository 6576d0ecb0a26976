/* uidpool.c - a uid/gid of its own for every running QEMU */
#include "uidpool.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#define LOCK_PREFIX "uid-"
#define LOCK_SUFFIX ".lock"

static bool
range_has(const struct uid_range *r, uint64_t id)
{
	return id >= r->first && id < (uint64_t)r->first + r->count;
}

int
uidpool_parse_range(const char *s, struct uid_range *r, struct error *err)
{
	const char *colon = s ? strchr(s, ':') : NULL;
	uint64_t first, count;

	if (!colon || parse_u64_dec(s, colon - s, &first) < 0 ||
	    parse_u64_dec(colon + 1, strlen(colon + 1), &count) < 0)
		return error_set(err, EINVAL,
				 "uid range \"%s\": expected FIRST:COUNT "
				 "(decimal)",
				 s ? s : "");
	if (count == 0 || first == 0 || first > UID_RANGE_MAX ||
	    count > UID_RANGE_MAX - first + 1)
		return error_set(err, EINVAL,
				 "uid range \"%s\": must be non-empty, above 0 "
				 "and end at %u or below",
				 s, UID_RANGE_MAX);
	r->first = first;
	r->count = count;
	/* nobody and (uint16_t)-1 are shared by everything that maps
	 * unknown ids: a QEMU must never be one of them */
	if (range_has(r, 65534) || range_has(r, 65535))
		return error_set(err, EINVAL,
				 "uid range \"%s\" holds 65534 (nobody) or "
				 "65535",
				 s);
	return 0;
}

int
uidpool_subid_overlap(const char *buf, const struct uid_range *r,
		      struct error *err)
{
	const char *line = buf;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);
		const char *c1 = memchr(line, ':', len);
		const char *c2 =
			c1 ? memchr(c1 + 1, ':', len - (c1 + 1 - line)) : NULL;
		uint64_t first, count;

		if (c2 && line[0] != '#' &&
		    parse_u64_dec(c1 + 1, c2 - c1 - 1, &first) == 0 &&
		    parse_u64_dec(c2 + 1, len - (c2 + 1 - line), &count) == 0 &&
		    count > 0 && first < (uint64_t)r->first + r->count &&
		    (uint64_t)r->first < first + count) {
			error_set(err, EEXIST,
				  "uid range %u:%u overlaps \"%.*s\"", r->first,
				  r->count, (int)len, line);
			return 1;
		}
		line = end ? end + 1 : NULL;
	}
	return 0;
}

int
uidpool_range_pick(const char *opt, const char *etc, struct uid_range *r,
		   struct error *err)
{
	static const char *const files[] = {"subuid", "subgid"};
	const char *env = getenv("QCTL_UID_RANGE");
	const char *from = opt ? "--uid-range" : "QCTL_UID_RANGE";
	int ret;

	r->first = UID_RANGE_DEFAULT_FIRST;
	r->count = UID_RANGE_DEFAULT_COUNT;
	if (!opt && env && *env)
		opt = env;
	if (opt) {
		ret = uidpool_parse_range(opt, r, err);
		if (ret < 0) {
			error_prefix(err, "%s", from);
			return ret;
		}
	}
	/* Ids of /etc/subuid are some user's container root and daemons:
	 * a QEMU escape must not land among them, nor they near it. */
	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		_cleanup_free_ char *path =
			xasprintf("%s/%s", etc ? etc : "/etc", files[i]);
		_cleanup_free_ char *buf = NULL;

		ret = read_file(path, 1 << 20, &buf, NULL, err);
		if (ret < 0) {
			if (err->code == ENOENT) {
				error_clear(err);
				continue;
			}
			return ret;
		}
		if (uidpool_subid_overlap(buf, r, err)) {
			error_prefix(err,
				     "%s (set QCTL_UID_RANGE or "
				     "--uid-range)",
				     path);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- what runs as a uid ---------------------------------------------------
 */

int
uidpool_status_uses(const char *status, uid_t uid)
{
	const char *u = strstr(status, "\nUid:");
	const char *st = strstr(status, "\nState:");
	char *end;

	if (!u)
		return -EINVAL;
	/* a zombie runs nothing: it waits for its parent to reap it */
	if (st) {
		for (st += 7; *st == ' ' || *st == '\t'; st++)
			;
		if (*st == 'Z' || *st == 'X')
			return 0;
	}
	u += 5;
	/* real, effective, saved, filesystem */
	for (int i = 0; i < 4; i++) {
		unsigned long v;

		while (*u == ' ' || *u == '\t')
			u++;
		if (*u < '0' || *u > '9')
			return -EINVAL;
		v = strtoul(u, &end, 10);
		if (v == uid)
			return 1;
		u = end;
	}
	return 0;
}

int
uidpool_uid_busy(const char *proc, uid_t uid)
{
	DIR *d = opendir(proc ? proc : "/proc");
	struct dirent *de;
	int busy = 0;

	if (!d)
		return -errno;
	/* /proc/PID's owner would not do: a process that made itself
	 * non-dumpable shows as root's there */
	while (!busy && (de = readdir(d))) {
		_cleanup_free_ char *p = NULL, *buf = NULL;

		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		p = xasprintf("%s/%s/status", proc ? proc : "/proc",
			      de->d_name);
		if (read_file(p, 1 << 16, &buf, NULL, NULL) < 0)
			continue; /* gone meanwhile */
		busy = uidpool_status_uses(buf, uid) == 1;
	}
	closedir(d);
	return busy;
}

int
uidpool_kill_uid(uid_t uid)
{
	struct timespec ts = {0, 10 * 1000 * 1000};

	if (uid == 0)
		return -EINVAL;
	for (int round = 0; round < 100; round++) {
		pid_t pid;
		int st, busy = uidpool_uid_busy(NULL, uid);

		if (busy <= 0)
			return busy;
		pid = fork();
		if (pid < 0)
			return -errno;
		if (pid == 0) {
			/* kill(-1) reaches every process whose real or
			 * saved uid is ours (and no other): so become
			 * exactly uid, with no group or capability that
			 * would widen it */
			if (setgroups(0, NULL) < 0 ||
			    setresgid(uid, uid, uid) < 0 ||
			    setresuid(uid, uid, uid) < 0)
				_exit(2);
			kill(-1, SIGKILL);
			_exit(0);
		}
		while (waitpid(pid, &st, 0) < 0)
			if (errno != EINTR)
				return -errno;
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
			return -EPERM;
		/* the killed leave /proc once their parents reap them */
		nanosleep(&ts, NULL);
	}
	return -EBUSY;
}

/* ---- lock files ---------------------------------------------------------- */

/*
 * Open and flock path without waiting.  1: ours (and still the file at
 * path: a lock on a file unlinked in between would guard nothing),
 * 0: someone holds it or it went away, -errno.
 */
static int
lock_take(const char *path, bool create, int *fdp)
{
	struct stat a, b;
	int fd;

	fd = open(path,
		  O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0),
		  0600);
	if (fd < 0)
		return errno == ENOENT && !create ? 0 : -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = errno;

		close(fd);
		return e == EWOULDBLOCK ? 0 : -e;
	}
	if (fstat(fd, &a) < 0 || lstat(path, &b) < 0 || a.st_ino != b.st_ino ||
	    a.st_dev != b.st_dev || !S_ISREG(a.st_mode)) {
		close(fd);
		return 0;
	}
	*fdp = fd;
	return 1;
}

/* Remove a lock file we hold, then let go of it. */
static void
lock_drop(const char *path, int fd, bool remove)
{
	if (remove)
		unlink(path);
	close(fd);
}

static bool
id_has_entry(uint32_t id)
{
	/* a named user or group there is someone's, whatever the range */
	return getpwuid(id) != NULL || getgrgid(id) != NULL;
}

int
uidpool_acquire(const char *dir, const struct uid_range *r, struct uid_lease *l,
		struct error *err)
{
	uint32_t start = 0;

	memset(l, 0, sizeof(*l));
	l->fd = -1;
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return error_sys(err, errno, "mkdir %s", dir);
	/* a random start: concurrent managers seldom probe the same ids,
	 * and an id is seldom reused soon */
	if (getrandom(&start, sizeof(start), 0) != sizeof(start))
		start = (uint32_t)getpid() * 2654435761u;
	for (uint32_t i = 0; i < r->count; i++) {
		uint32_t id = r->first + (start + i) % r->count;
		char path[sizeof(l->path)];
		char owner[64];
		int fd = -1, ret;

		if (id_has_entry(id))
			continue;
		if (snprintf(path, sizeof(path),
			     "%s/" LOCK_PREFIX "%u" LOCK_SUFFIX, dir,
			     id) >= (int)sizeof(path))
			return error_set(err, ENAMETOOLONG,
					 "state directory "
					 "path too long: %s",
					 dir);
		ret = lock_take(path, true, &fd);
		if (ret < 0)
			return error_sys(err, -ret, "lock %s", path);
		if (ret == 0)
			continue;
		/* A free lock may be a dead manager's whose QEMU escape
		 * lives on: such an id waits for `qctl gc`. */
		ret = uidpool_uid_busy(NULL, id);
		if (ret != 0) {
			lock_drop(path, fd, false);
			if (ret > 0)
				continue;
			return error_sys(err, -ret, "probe uid %u", id);
		}
		/* who holds it, for a human reading the directory */
		snprintf(owner, sizeof(owner), "%d\n", (int)getpid());
		if (ftruncate(fd, 0) < 0 ||
		    pwrite(fd, owner, strlen(owner), 0) < 0) {
			ret = errno;
			lock_drop(path, fd, true);
			return error_sys(err, ret, "write %s", path);
		}
		l->held = true;
		l->uid = id;
		l->fd = fd;
		memcpy(l->path, path, sizeof(path));
		return 0;
	}
	return error_set(err, EAGAIN, "every uid of %u:%u is in use", r->first,
			 r->count);
}

void
uidpool_release(struct uid_lease *l)
{
	if (!l->held)
		return;
	/* the id is reused only once nothing runs as it any more */
	lock_drop(l->path, l->fd, uidpool_kill_uid(l->uid) == 0);
	l->held = false;
	l->fd = -1;
}

/* "uid-N.lock" -> N, or -1. */
static long long
lock_name_id(const char *name)
{
	size_t len = strlen(name), pl = strlen(LOCK_PREFIX),
	       sl = strlen(LOCK_SUFFIX);
	uint64_t id;

	if (len <= pl + sl || strncmp(name, LOCK_PREFIX, pl) ||
	    strcmp(name + len - sl, LOCK_SUFFIX) ||
	    parse_u64_dec(name + pl, len - pl - sl, &id) < 0 || id == 0 ||
	    id > UID_RANGE_MAX)
		return -1;
	return (long long)id;
}

int
uidpool_gc(const char *dir, long long only_uid, const char *who, FILE *out)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		long long id = lock_name_id(de->d_name);
		_cleanup_free_ char *path = NULL;
		int fd = -1;

		if (id < 0 || (only_uid >= 0 && id != only_uid))
			continue;
		path = xasprintf("%s/%s", dir, de->d_name);
		/* held: its manager lives (or it was taken just now) */
		if (lock_take(path, false, &fd) != 1)
			continue;
		if (uidpool_kill_uid(id) < 0) {
			lock_drop(path, fd, false);
			if (out)
				fprintf(out,
					"qctl gc: %s%suid %lld: processes "
					"survive SIGKILL, kept\n",
					who ? who : "", who ? ": " : "", id);
			continue;
		}
		lock_drop(path, fd, true);
		if (out)
			fprintf(out, "qctl gc: %s%sfreed uid %lld\n",
				who ? who : "", who ? ": " : "", id);
		n++;
	}
	closedir(d);
	return n;
}
