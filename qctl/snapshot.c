/* snapshot.c - saved VM states to start builds from */
#include "snapshot.h"
#include "rundir.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAGIC "qctl-snapshot 1\n"

void
snapshot_key(const char *desc, char out[17])
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (const unsigned char *p = (const void *)desc; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ull;
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

void
snapshot_init(struct snapshot *s, const char *state_dir, const char *desc)
{
	char key[17];

	memset(s, 0, sizeof(*s));
	s->lock_fd = s->tmp_fd = -1;
	s->dir = xasprintf("%s/snapshots", state_dir);
	s->desc = xstrdup(desc);
	snapshot_key(desc, key);
	snprintf(s->name, sizeof(s->name), "%s.vmstate", key);
	snprintf(s->tmp, sizeof(s->tmp), "%s.vmstate.tmp", key);
}

void
snapshot_free(struct snapshot *s)
{
	snapshot_abort(s);
	free(s->dir);
	free(s->desc);
	s->dir = s->desc = NULL;
}

/* STATE/snapshots, checked as the state directory is (rundir.h): a
 * state is code the next build's guest runs, so only ours counts */
static int
open_dir(const struct snapshot *s, bool create, struct error *err)
{
	int fd = -1, r;

	r = rundir_root_check(s->dir, "snapshot directory",
			      create ? RUNDIR_CREATE : 0, &fd, NULL, err);
	return r < 0 ? r : fd;
}

/* Read and check the header of f; 0 (offset after it), or -errno. */
static int
header_matches(int f, const char *desc)
{
	char head[sizeof(MAGIC) - 1 + 24], *nl;
	size_t want = strlen(desc), hlen;
	_cleanup_free_ char *got = NULL;
	ssize_t n;
	uint64_t len;

	n = pread(f, head, sizeof(head) - 1, 0);
	if (n < (ssize_t)sizeof(MAGIC))
		return -ENOENT;
	head[n] = '\0';
	if (memcmp(head, MAGIC, sizeof(MAGIC) - 1))
		return -ENOENT;
	nl = strchr(head + sizeof(MAGIC) - 1, '\n');
	if (!nl || parse_u64_dec(head + sizeof(MAGIC) - 1,
				 nl - head - (sizeof(MAGIC) - 1), &len) < 0 ||
	    len != want)
		return -ENOENT;
	hlen = nl + 1 - head;
	got = xmalloc(want + 1);
	if (pread(f, got, want, hlen) != (ssize_t)want ||
	    memcmp(got, desc, want))
		return -ENOENT;
	if (lseek(f, hlen + want, SEEK_SET) < 0)
		return -errno;
	return 0;
}

int
snapshot_open(struct snapshot *s, struct error *err)
{
	_cleanup_close_ int dfd = -1, f = -1;
	struct stat st;
	int r;

	dfd = open_dir(s, false, err);
	if (dfd < 0)
		return dfd;
	f = openat(dfd, s->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (f < 0)
		return errno == ENOENT ? -ENOENT
				       : error_sys(err, errno, "%s/%s",
						   s->dir, s->name);
	if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 022))
		return error_set(err, EPERM, "%s/%s: not ours alone", s->dir,
				 s->name);
	r = header_matches(f, s->desc);
	if (r < 0)
		return r;
	/* used now: the last to be pruned */
	(void)futimens(f, NULL);
	return steal_fd(&f);
}

int
snapshot_begin(struct snapshot *s, struct error *err)
{
	_cleanup_close_ int dfd = -1, lk = -1, f = -1;
	char lock[40], len[24];
	size_t n = strlen(s->desc);

	if (n > SNAPSHOT_DESC_MAX)
		return error_set(err, E2BIG, "snapshot descriptor too long");
	dfd = open_dir(s, true, err);
	if (dfd < 0)
		return dfd;
	snprintf(lock, sizeof(lock), "%.16s.lock", s->name);
	lk = openat(dfd, lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (lk < 0)
		return error_sys(err, errno, "%s/%s", s->dir, lock);
	if (flock(lk, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK
			       ? error_set(err, EBUSY, "another build saves "
					   "this snapshot")
			       : error_sys(err, errno, "flock %s", lock);
	(void)unlinkat(dfd, s->tmp, 0);
	f = openat(dfd, s->tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
				O_CLOEXEC, 0600);
	if (f < 0)
		return error_sys(err, errno, "%s/%s", s->dir, s->tmp);
	snprintf(len, sizeof(len), "%zu\n", n);
	if (write_in_full(f, MAGIC, sizeof(MAGIC) - 1) < 0 ||
	    write_in_full(f, len, strlen(len)) < 0 ||
	    write_in_full(f, s->desc, n) < 0) {
		int e = errno;

		(void)unlinkat(dfd, s->tmp, 0);
		return error_sys(err, e, "%s/%s", s->dir, s->tmp);
	}
	s->lock_fd = steal_fd(&lk);
	s->tmp_fd = steal_fd(&f);
	return s->tmp_fd;
}

struct aged {
	char name[32];
	struct timespec t;
};

static int
newer_first(const void *a, const void *b)
{
	const struct aged *x = a, *y = b;

	if (x->t.tv_sec != y->t.tv_sec)
		return x->t.tv_sec > y->t.tv_sec ? -1 : 1;
	if (x->t.tv_nsec != y->t.tv_nsec)
		return x->t.tv_nsec > y->t.tv_nsec ? -1 : 1;
	return strcmp(x->name, y->name);
}

/* Remove the least recently used states beyond SNAPSHOT_KEEP (keep, the
 * one just made, counts as the newest).  Used is futimens'd on open. */
static void
prune(int dfd, const char *keep)
{
	struct aged all[256];
	size_t n = 0;
	struct dirent *de;
	int d2 = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	DIR *d = d2 >= 0 ? fdopendir(d2) : NULL;

	if (!d) {
		if (d2 >= 0)
			close(d2);
		return;
	}
	while ((de = readdir(d)) && n < ARRAY_SIZE(all)) {
		struct stat st;

		if (strlen(de->d_name) != 24 ||
		    strcmp(de->d_name + 16, ".vmstate") ||
		    !strcmp(de->d_name, keep) ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		snprintf(all[n].name, sizeof(all[n].name), "%s", de->d_name);
		all[n++].t = st.st_mtim;
	}
	closedir(d);
	qsort(all, n, sizeof(all[0]), newer_first);
	for (size_t i = SNAPSHOT_KEEP - 1; i < n; i++)
		(void)unlinkat(dfd, all[i].name, 0);
}

int
snapshot_commit(struct snapshot *s, uint64_t *bytes, struct error *err)
{
	_cleanup_close_ int dfd = -1, f = -1;
	char fresh[48];
	struct stat st;
	off_t in = 0, out = 0;
	int r = 0;

	if (s->tmp_fd < 0)
		return error_set(err, EINVAL, "no snapshot being written");
	dfd = open_dir(s, false, err);
	if (dfd < 0)
		goto fail;
	if (fstat(s->tmp_fd, &st) < 0) {
		r = error_sys(err, errno, "%s", s->tmp);
		goto fail;
	}
	snprintf(fresh, sizeof(fresh), "%.16s.vmstate.new", s->name);
	(void)unlinkat(dfd, fresh, 0);
	f = openat(dfd, fresh, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			       O_CLOEXEC, 0600);
	if (f < 0) {
		r = error_sys(err, errno, "%s/%s", s->dir, fresh);
		goto fail;
	}
	while (in < st.st_size) {
		ssize_t n = copy_file_range(s->tmp_fd, &in, f, &out,
					    st.st_size - in, 0);

		if (n <= 0) {
			r = error_sys(err, n < 0 ? errno : EIO,
				      "copying the snapshot");
			(void)unlinkat(dfd, fresh, 0);
			goto fail;
		}
	}
	if (renameat(dfd, fresh, dfd, s->name) < 0) {
		r = error_sys(err, errno, "%s/%s", s->dir, s->name);
		(void)unlinkat(dfd, fresh, 0);
		goto fail;
	}
	*bytes = st.st_size;
	prune(dfd, s->name);
fail:
	if (r == 0 && dfd < 0)
		r = dfd;
	snapshot_abort(s);
	return r;
}

void
snapshot_abort(struct snapshot *s)
{
	if (s->tmp_fd >= 0) {
		_cleanup_close_ int dfd = open(s->dir, O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC);

		if (dfd >= 0)
			(void)unlinkat(dfd, s->tmp, 0);
		close(s->tmp_fd);
		s->tmp_fd = -1;
	}
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	s->lock_fd = -1;
}

void
snapshot_invalidate(struct snapshot *s)
{
	_cleanup_close_ int dfd = open(s->dir, O_RDONLY | O_DIRECTORY |
					       O_NOFOLLOW | O_CLOEXEC);

	if (dfd >= 0)
		(void)unlinkat(dfd, s->name, 0);
}

void
snapshot_gc(const char *state_dir, FILE *out)
{
	_cleanup_free_ char *path = xasprintf("%s/snapshots", state_dir);
	_cleanup_close_ int dfd = open(path, O_RDONLY | O_DIRECTORY |
					       O_NOFOLLOW | O_CLOEXEC);
	struct dirent *de;
	unsigned n = 0;
	int d2;
	DIR *d;

	if (dfd < 0 || (d2 = fcntl(dfd, F_DUPFD_CLOEXEC, 3)) < 0)
		return;
	if (!(d = fdopendir(d2))) {
		close(d2);
		return;
	}
	while ((de = readdir(d))) {
		char lock[40];
		size_t len = strlen(de->d_name);
		int lk;

		/* KEY.vmstate.tmp (QEMU's) and KEY.vmstate.new (the copy) */
		if (len != 28 || (strcmp(de->d_name + 16, ".vmstate.tmp") &&
				  strcmp(de->d_name + 16, ".vmstate.new")))
			continue;
		snprintf(lock, sizeof(lock), "%.16s.lock", de->d_name);
		lk = openat(dfd, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		/* a save under way holds it */
		if (lk >= 0 && flock(lk, LOCK_EX | LOCK_NB) < 0) {
			close(lk);
			continue;
		}
		if (unlinkat(dfd, de->d_name, 0) == 0)
			n++;
		if (lk >= 0)
			close(lk);
	}
	closedir(d);
	if (n && out)
		fprintf(out, "qctl gc: removed %u half-written snapshot "
			"file%s under %s\n", n, n == 1 ? "" : "s", path);
}
