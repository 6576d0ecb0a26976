/*
 * cache.c - the dependency cache's host side: images, locks, eviction.
 *
 * Layout: ROOT/<uid>/<key>.img (the stored image), <key>.lock (held
 * shared by every build using the key, tried exclusive by eviction), and
 * .<key>.pending.<run id> (a build's sealed copy until it passes).  Every
 * name is made here from a checked key and a number; nothing is followed.
 */
#include "cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rundir.h"

/*
 * The root at path, checked as the state directory is (rundir.h: ours,
 * no symlink, no ancestor others may write), and private besides: *fd.
 * -ENOENT when it is missing and flags lack RUNDIR_CREATE.
 */
static int
root_open(const char *path, unsigned flags, int *fd, struct error *err)
{
	struct stat st;
	int d = -1, r;

	r = rundir_root_check(path, "cache directory", flags, &d, NULL, err);
	if (r < 0)
		return r;
	/* the images are every submitter's dependencies: only we may
	 * read them (a planted directory would let others read them) */
	if (fstat(d, &st) < 0 || (st.st_mode & 077)) {
		close(d);
		return error_set(err, EPERM, "%s: not a private directory of "
				 "ours (mode 0700, our uid)", path);
	}
	*fd = d;
	return 0;
}

int
cache_root_open(const char *path, int *fd, struct error *err)
{
	return root_open(path, RUNDIR_CREATE, fd, err);
}

/* namespaces are uids: decimal names only */
static bool
ns_name_ok(const char *name)
{
	size_t n = strlen(name);

	return n && n <= 10 && strspn(name, "0123456789") == n;
}

static bool
key_ok(const char *key)
{
	size_t n = strlen(key);

	return n >= 1 && n <= 64 && strcmp(key, ".") && strcmp(key, "..") &&
	       strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVW"
			   "XYZ0123456789._-") == n;
}

int
cache_use_begin(int root_fd, uid_t ns, const char *key, struct cache_use *u,
		struct error *err)
{
	char name[32], f[96];

	*u = (struct cache_use)CACHE_USE_INIT;
	/* recipe.c checked it; it names files here, so once more */
	if (!key_ok(key))
		return error_set(err, EINVAL, "bad cache key");
	snprintf(u->key, sizeof(u->key), "%s", key);
	/* the namespace is the submitter's uid: a key of one never names
	 * a file of another */
	snprintf(name, sizeof(name), "%u", (unsigned)ns);
	if (mkdirat(root_fd, name, 0700) < 0 && errno != EEXIST)
		return error_sys(err, errno, "cache: mkdir %s", name);
	u->ns_fd = openat(root_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						 O_CLOEXEC);
	if (u->ns_fd < 0)
		return error_sys(err, errno, "cache: open %s", name);
	snprintf(f, sizeof(f), "%s.lock", key);
	u->lock_fd = openat(u->ns_fd, f, O_RDWR | O_CREAT | O_NOFOLLOW |
					   O_CLOEXEC, 0600);
	if (u->lock_fd < 0)
		return error_sys(err, errno, "cache: open %s/%s", name, f);
	/* shared: builds of one key run side by side; eviction waits */
	if (flock(u->lock_fd, LOCK_SH) < 0)
		return error_sys(err, errno, "cache: lock %s/%s", name, f);
	/* the last use, for the eviction order (not the content's time) */
	snprintf(f, sizeof(f), "%s.img", key);
	utimensat(u->ns_fd, f, NULL, AT_SYMLINK_NOFOLLOW);
	return 0;
}

int
cache_open_image(struct cache_use *u, uint64_t size, int *fd,
		 struct error *err)
{
	char f[96];
	struct stat st;
	int d;

	*fd = -1;
	snprintf(f, sizeof(f), "%s.img", u->key);
	d = openat(u->ns_fd, f, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (d < 0 && errno == ENOENT)
		return 0;
	if (d < 0)
		return error_sys(err, errno, "cache: open %s", f);
	if (fstat(d, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (uint64_t)st.st_size != size) {
		close(d);	/* another size: start empty */
		return 0;
	}
	*fd = d;
	return 0;
}

int
cache_copy_fd(int src, int dst, struct error *err)
{
	struct stat st;
	off_t data, hole;

	if (fstat(src, &st) < 0)
		return error_sys(err, errno, "cache: stat");
	if (ftruncate(dst, 0) < 0)
		return error_sys(err, errno, "cache: truncate");
	/* a reflink shares the blocks until either side writes */
	if (ioctl(dst, FICLONE, src) == 0)
		return 0;
	if (ftruncate(dst, st.st_size) < 0)
		return error_sys(err, errno, "cache: size copy");
	/* only the data: an image is mostly holes, and stays so */
	for (data = 0; data < st.st_size; data = hole) {
		data = lseek(src, data, SEEK_DATA);
		if (data < 0 && errno == ENXIO)
			break;
		if (data < 0)
			return error_sys(err, errno, "cache: seek data");
		hole = lseek(src, data, SEEK_HOLE);
		if (hole < 0)
			return error_sys(err, errno, "cache: seek hole");
		for (off_t in = data, out = data; in < hole;) {
			ssize_t n = copy_file_range(src, &in, dst, &out,
						    hole - in, 0);

			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0)
				return error_sys(err, errno, "cache: copy");
			if (n == 0)
				return error_set(err, EIO, "cache: the image "
						 "shrank while copied");
		}
	}
	return 0;
}

int
cache_pending_write(struct cache_use *u, int disk_fd, const char *id,
		    struct error *err)
{
	int fd, r;

	snprintf(u->pending, sizeof(u->pending), ".%s.pending.%s", u->key, id);
	unlinkat(u->ns_fd, u->pending, 0);
	fd = openat(u->ns_fd, u->pending, O_RDWR | O_CREAT | O_EXCL |
						  O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		r = error_sys(err, errno, "cache: create %s", u->pending);
		u->pending[0] = '\0';
		return r;
	}
	r = cache_copy_fd(disk_fd, fd, err);
	if (r == 0 && fsync(fd) < 0)
		r = error_sys(err, errno, "cache: fsync");
	close(fd);
	if (r < 0) {
		unlinkat(u->ns_fd, u->pending, 0);
		u->pending[0] = '\0';
	}
	return r;
}

int
cache_commit(struct cache_use *u, struct error *err)
{
	char f[96];

	if (!u->pending[0])
		return error_set(err, ENOENT, "cache: nothing to keep");
	snprintf(f, sizeof(f), "%s.img", u->key);
	/* under our shared lock: no eviction can race the rename; two
	 * builds of one key: the last to pass wins, whole */
	if (renameat(u->ns_fd, u->pending, u->ns_fd, f) < 0)
		return error_sys(err, errno, "cache: rename to %s", f);
	u->pending[0] = '\0';
	fsync(u->ns_fd);
	return 0;
}

void
cache_use_end(struct cache_use *u)
{
	if (u->ns_fd >= 0 && u->pending[0])
		unlinkat(u->ns_fd, u->pending, 0);
	u->pending[0] = '\0';
	if (u->lock_fd >= 0)
		close(u->lock_fd);	/* the lock goes with it */
	if (u->ns_fd >= 0)
		close(u->ns_fd);
	u->lock_fd = u->ns_fd = -1;
}

/* ---- eviction ---------------------------------------------------------- */

struct cache_img {
	char ns[16];
	char key[72];
	uint64_t bytes;
	struct timespec used;
};

static int
img_cmp(const void *a, const void *b)
{
	const struct cache_img *x = a, *y = b;

	if (x->used.tv_sec != y->used.tv_sec)
		return x->used.tv_sec < y->used.tv_sec ? -1 : 1;
	if (x->used.tv_nsec != y->used.tv_nsec)
		return x->used.tv_nsec < y->used.tv_nsec ? -1 : 1;
	return strcmp(x->key, y->key);
}

/*
 * A pending copy whose key no build holds was left by a manager that died
 * between the seal and its end: never to be renamed, so removed.  (A live
 * build of that key holds its lock shared: then it stays.)
 */
static bool
drop_stale_pending(int ns_fd, const char *name)
{
	char key[80], f[96];
	const char *end = strstr(name, ".pending.");
	bool gone = false;
	int lock_fd;

	if ((size_t)(end - name - 1) >= sizeof(key))
		return false;
	memcpy(key, name + 1, end - name - 1);
	key[end - name - 1] = '\0';
	if (!key_ok(key))
		return false;
	snprintf(f, sizeof(f), "%s.lock", key);
	lock_fd = openat(ns_fd, f, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (lock_fd < 0)
		return false;
	if (flock(lock_fd, LOCK_EX | LOCK_NB) == 0)
		gone = unlinkat(ns_fd, name, 0) == 0;
	close(lock_fd);
	return gone;
}

/* The images of one namespace directory, appended to *v. */
static int
scan_ns(int root_fd, const char *ns, struct cache_img **v, size_t *n,
	size_t *cap, uint64_t *total)
{
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(root_fd, ns, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					 O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		struct stat st;

		if (de->d_name[0] == '.' && strstr(de->d_name, ".pending."))
			drop_stale_pending(dirfd(d), de->d_name);
		if (len < 5 || len - 4 >= sizeof((*v)->key) ||
		    strcmp(de->d_name + len - 4, ".img") ||
		    de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) <
			    0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*v = xrealloc(*v, *cap * sizeof(**v));
		}
		snprintf((*v)[*n].ns, sizeof((*v)[*n].ns), "%s", ns);
		memcpy((*v)[*n].key, de->d_name, len - 4);
		(*v)[*n].key[len - 4] = '\0';
		(*v)[*n].bytes = (uint64_t)st.st_blocks * 512;
		(*v)[*n].used = st.st_mtim;
		*total += (*v)[*n].bytes;
		(*n)++;
	}
	closedir(d);
	return 0;
}

/* Remove one image unless a build holds its lock: 1 gone, 0 in use. */
static int
evict_one(int root_fd, const struct cache_img *c)
{
	char f[96];
	int ns_fd, lock_fd, r = 0;

	ns_fd = openat(root_fd, c->ns, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					       O_CLOEXEC);
	if (ns_fd < 0)
		return 0;
	snprintf(f, sizeof(f), "%s.lock", c->key);
	lock_fd = openat(ns_fd, f, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
			 0600);
	/* exclusive and not waiting: a build using the key keeps it */
	if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) == 0) {
		snprintf(f, sizeof(f), "%s.img", c->key);
		r = unlinkat(ns_fd, f, 0) == 0;
	}
	if (lock_fd >= 0)
		close(lock_fd);
	close(ns_fd);
	return r;
}

int
cache_evict(int root_fd, uint64_t max, cache_evict_fn fn, void *opaque,
	    uint64_t *total, struct error *err)
{
	_cleanup_free_ struct cache_img *v = NULL;
	size_t n = 0, cap = 0;
	uint64_t sum = 0;
	struct dirent *de;
	int fd, gone = 0;
	DIR *d;

	fd = dup(root_fd);
	if (fd < 0)
		return error_sys(err, errno, "cache: dup");
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return error_sys(err, errno, "cache: fdopendir");
	}
	rewinddir(d);
	while ((de = readdir(d))) {
		if (!ns_name_ok(de->d_name))
			continue;
		scan_ns(root_fd, de->d_name, &v, &n, &cap, &sum);
	}
	closedir(d);
	qsort(v, n, sizeof(*v), img_cmp);
	for (size_t i = 0; i < n && sum > max; i++) {
		if (!evict_one(root_fd, &v[i]))
			continue;
		sum -= v[i].bytes;
		gone++;
		if (fn)
			fn(v[i].ns, v[i].key, v[i].bytes, opaque);
	}
	if (total)
		*total = sum;
	return gone;
}

int
cache_gc(const char *path, FILE *out)
{
	struct error err = { 0 };
	struct dirent *de;
	int root_fd, n = 0;
	DIR *d;
	int r = root_open(path, 0, &root_fd, &err);

	if (r < 0) {
		if (r != -ENOENT && out)
			fprintf(out, "qctl gc: cache: %s\n", err.msg);
		return r == -ENOENT ? 0 : r;
	}
	d = fdopendir(root_fd);
	if (!d) {
		close(root_fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		struct dirent *e;
		DIR *nd;
		int fd;

		if (!ns_name_ok(de->d_name))
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY |
						  O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		nd = fdopendir(fd);
		if (!nd) {
			close(fd);
			continue;
		}
		while ((e = readdir(nd)))
			if (e->d_name[0] == '.' &&
			    strstr(e->d_name, ".pending.") &&
			    drop_stale_pending(dirfd(nd), e->d_name))
				n++;
		closedir(nd);
	}
	closedir(d);
	if (n && out)
		fprintf(out, "qctl gc: removed %d pending cache cop%s of builds "
			"whose manager died (%s)\n", n, n == 1 ? "y" : "ies",
			path);
	return n;
}
