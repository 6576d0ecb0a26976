/*
 * rundir.c - root's directories and the files it creates in them.
 *
 * The manager runs as root and writes logs, disk images, tars and results
 * into directories whose names are known in advance.  If anyone else can
 * create or swap one of those directories (or a directory above it), a
 * symlink planted there turns root's write into a write to /etc/passwd.
 * So: every directory on the way is checked as it is walked, fd by fd,
 * and every file is created relative to an fd of its checked directory,
 * exclusively and without following symlinks.
 */
#include "rundir.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>

/* As the kernel's own limit on symlinks in one lookup. */
#define MAX_LINKS 40

static const char name_chars[] =
	"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

static void
cleanup_bufp(struct buf *b)
{
	buf_free(b);
}

#define _cleanup_buf_ __attribute__((cleanup(cleanup_bufp)))

static const char *
shown(const struct buf *b)
{
	return b->len ? b->data : "/";
}

/*
 * The check of one directory: dir is the one asked for, else an ancestor
 * (a directory walked through on the way to it).
 */
static int
check_dir(const struct stat *st, bool dir, const char *what, const char *path,
	  const char *here, struct error *err)
{
	uid_t me = geteuid();
	unsigned mode = st->st_mode & 07777;

	if (!S_ISDIR(st->st_mode))
		return error_set(err, ENOTDIR, "%s %s: %s is not a directory",
				 what, path, here);
	if (dir) {
		/* only root may create, rename or remove entries in it */
		if (st->st_uid != me)
			return error_set(err, EPERM,
					 "%s %s is owned by uid "
					 "%u, not by uid %u: refusing it",
					 what, here, (unsigned)st->st_uid,
					 (unsigned)me);
		if (mode & (S_IWGRP | S_IWOTH))
			return error_set(err, EPERM,
					 "%s %s is writable by "
					 "group or other (mode %04o): "
					 "refusing it",
					 what, here, mode);
		return 0;
	}
	/* Whoever may rename an entry of an ancestor may redirect the
	 * whole path; a sticky directory (/tmp) lets each user rename
	 * only their own entries, and the next step checks that owner. */
	if (st->st_uid != 0 && st->st_uid != me)
		return error_set(err, EPERM,
				 "%s %s: %s is owned by uid %u, "
				 "not by root: refusing it",
				 what, path, here, (unsigned)st->st_uid);
	if ((mode & (S_IWGRP | S_IWOTH)) && !(mode & S_ISVTX))
		return error_set(err, EPERM,
				 "%s %s: %s is writable by group "
				 "or other and not sticky (mode %04o): "
				 "refusing it",
				 what, path, here, mode);
	return 0;
}

/* The next path component, skipping '/'s and "."; NULL at the end. */
static const char *
next_comp(const char *p, size_t *len)
{
	for (;;) {
		while (*p == '/')
			p++;
		if (!*p)
			return NULL;
		*len = strcspn(p, "/");
		if (*len == 1 && p[0] == '.') {
			p++;
			continue;
		}
		return p;
	}
}

static void
canon_pop(struct buf *c)
{
	char *slash = c->len ? strrchr(c->data, '/') : NULL;

	if (slash)
		c->len = slash - c->data;
	if (c->data)
		c->data[c->len] = '\0';
}

static int
open_root(const char *what, const char *path, int *fd, struct error *err)
{
	struct stat st;

	if (*fd >= 0)
		close(*fd);
	*fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*fd < 0 || fstat(*fd, &st) < 0)
		return error_sys(err, errno, "%s %s: open /", what, path);
	return check_dir(&st, false, what, path, "/", err);
}

int
rundir_root_check(const char *path, const char *what, unsigned flags,
		  int *dirfd, char **canon, struct error *err)
{
	_cleanup_free_ char *rest = NULL;
	_cleanup_close_ int fd = -1;
	_cleanup_buf_ struct buf c = { 0 };
	const char *p;
	size_t len, dummy;
	bool checked_last = false;
	int links = 0, r;

	*dirfd = -1;
	if (!path || !*path)
		return error_set(err, EINVAL, "%s: empty path", what);
	if (path[0] == '/') {
		rest = xstrdup(path);
	} else {
		_cleanup_free_ char *cwd = getcwd(NULL, 0);

		if (!cwd)
			return error_sys(err, errno, "%s %s: getcwd", what,
					 path);
		rest = xasprintf("%s/%s", cwd, path);
	}
	r = open_root(what, path, &fd, err);
	if (r < 0)
		return r;
	p = rest;
	while ((p = next_comp(p, &len))) {
		_cleanup_free_ char *name = xstrndup(p, len);
		const char *after = p + len;
		bool last = next_comp(after, &dummy) == NULL;
		struct stat st;
		int nfd;

		if (!strcmp(name, ".."))
			canon_pop(&c);
		else {
			buf_append(&c, "/", 1);
			buf_append(&c, name, len);
		}
		r = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW);
		if (r < 0 && errno == ENOENT && (flags & RUNDIR_CREATE)) {
			if (mkdirat(fd, name, last ? 0700 : 0755) < 0 &&
			    errno != EEXIST)
				return error_sys(err, errno, "%s %s: mkdir %s",
						 what, path, shown(&c));
			r = fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW);
		}
		if (r < 0)
			return error_sys(err, errno, "%s %s: %s", what, path,
					 shown(&c));
		if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX], *next;
			ssize_t n;

			/* The directory asked for is used by its path later
			 * (messages, records, gc): it must be itself. */
			if (last)
				return error_set(err, ELOOP,
						 "%s %s is a symlink: "
						 "refusing it (give the "
						 "directory itself)",
						 what, shown(&c));
			/* its directory passed; in a sticky one its owner
			 * can still replace it */
			if (st.st_uid != 0 && st.st_uid != geteuid())
				return error_set(err, EPERM,
						 "%s %s: %s is a "
						 "symlink owned by uid %u: "
						 "refusing it",
						 what, path, shown(&c),
						 (unsigned)st.st_uid);
			n = readlinkat(fd, name, target, sizeof(target) - 1);
			if (n < 0 || ++links > MAX_LINKS)
				return error_sys(err, n < 0 ? errno : ELOOP,
						 "%s %s: %s", what, path,
						 shown(&c));
			target[n] = '\0';
			canon_pop(&c);
			if (target[0] == '/') {
				c.len = 0;
				r = open_root(what, path, &fd, err);
				if (r < 0)
					return r;
			}
			next = xasprintf("%s/%s", target, after);
			free(rest);
			p = rest = next;
			continue;
		}
		nfd = openat(fd, name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0)
			return error_sys(err, errno, "%s %s: %s", what, path,
					 shown(&c));
		close(fd);
		fd = nfd;
		/* what was opened is what counts, not what fstatat saw */
		if (fstat(fd, &st) < 0)
			return error_sys(err, errno, "%s %s: %s", what, path,
					 shown(&c));
		r = check_dir(&st, last, what, path, shown(&c), err);
		if (r < 0)
			return r;
		checked_last = last;
		p = after;
	}
	if (!checked_last) {
		/* "/" itself, or a path of only "." and '/' */
		struct stat st;

		if (fstat(fd, &st) < 0)
			return error_sys(err, errno, "%s %s", what, path);
		r = check_dir(&st, true, what, path, shown(&c), err);
		if (r < 0)
			return r;
	}
	if (canon)
		*canon = xstrdup(shown(&c));
	*dirfd = steal_fd(&fd);
	return 0;
}

bool
rundir_name_ok(const char *name)
{
	size_t n = strlen(RUNDIR_PREFIX);

	if (strlen(name) != RUNDIR_NAME_LEN || strncmp(name, RUNDIR_PREFIX, n))
		return false;
	return strspn(name + n, name_chars) == RUNDIR_NAME_LEN - n;
}

int
rundir_create(int rootfd, char **name, int *dirfd, struct error *err)
{
	char n[RUNDIR_NAME_LEN + 1];

	*name = NULL;
	*dirfd = -1;
	for (int tries = 0; tries < 100; tries++) {
		unsigned char rnd[RUNDIR_NAME_LEN];
		size_t pre = strlen(RUNDIR_PREFIX);
		int r;

		if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
			return error_sys(err, errno, "getrandom");
		memcpy(n, RUNDIR_PREFIX, pre);
		for (size_t i = pre; i < RUNDIR_NAME_LEN; i++)
			n[i] = name_chars[rnd[i] % (sizeof(name_chars) - 1)];
		n[RUNDIR_NAME_LEN] = '\0';
		r = rundir_mkdir(rootfd, n, dirfd, err);
		if (r == -EEXIST)
			continue;
		if (r < 0)
			return r;
		*name = xstrdup(n);
		return 0;
	}
	return error_set(err, EEXIST, "no free run directory name");
}

int
rundir_open_file(int dirfd, const char *name, int flags, int *fd,
		 struct error *err)
{
	/* O_EXCL: a file planted there beforehand is an attack, not ours */
	*fd = openat(dirfd, name,
		     flags | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
			     O_NOCTTY,
		     0600);
	if (*fd < 0)
		return error_sys(err, errno, "create %s", name);
	return 0;
}

int
rundir_mkdir(int dirfd, const char *name, int *fd, struct error *err)
{
	struct stat st;

	*fd = -1;
	if (mkdirat(dirfd, name, 0700) < 0)
		return error_sys(err, errno, "mkdir %s", name);
	*fd = openat(dirfd, name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*fd < 0)
		return error_sys(err, errno, "open %s", name);
	/* no one else may write where we just made it: paranoia only */
	if (fstat(*fd, &st) < 0 || st.st_uid != geteuid()) {
		close(*fd);
		*fd = -1;
		return error_set(err, EPERM, "%s is not ours", name);
	}
	return 0;
}

int
rundir_open_dir(const char *path, int *dirfd, struct error *err)
{
	struct stat st;

	*dirfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (*dirfd < 0)
		return error_sys(err, errno, "open %s", path);
	if (fstat(*dirfd, &st) < 0 || st.st_uid != geteuid() ||
	    (st.st_mode & (S_IWGRP | S_IWOTH))) {
		close(*dirfd);
		*dirfd = -1;
		return error_set(err, EPERM,
				 "run directory %s is not root's "
				 "alone: refusing it",
				 path);
	}
	return 0;
}

int
rundir_child_name(const char *root, const char *run_dir, const char **name,
		  struct error *err)
{
	size_t n = strlen(root);

	if (n && root[n - 1] == '/')
		n--; /* root is "/" */
	if (strncmp(run_dir, root, n) || run_dir[n] != '/' ||
	    !rundir_name_ok(run_dir + n + 1))
		return error_set(err, EINVAL,
				 "%s is not a run-XXXXXX "
				 "directory directly under the run root %s",
				 run_dir, root);
	*name = run_dir + n + 1;
	return 0;
}

int
rundir_remove(int rootfd, const char *name, struct error *err)
{
	struct stat st;
	int r;

	if (!rundir_name_ok(name))
		return error_set(err, EINVAL, "%s is not a run directory name",
				 name);
	if (fstatat(rootfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : error_sys(err, errno, "%s", name);
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid())
		return error_set(err, EPERM, "%s is not a directory of ours",
				 name);
	r = rm_rf_at(rootfd, name);
	if (r < 0)
		return error_sys(err, -r, "remove %s", name);
	return 0;
}
