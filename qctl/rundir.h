/* rundir.h - root's directories (run root, state) and files created in them */
#ifndef QCTL_RUNDIR_H
#define QCTL_RUNDIR_H

#include <stdbool.h>
#include <sys/types.h>

#include "util.h"

/*
 * On local disk (a scratch disk is gigabytes: not /run's RAM), under
 * /var/lib where only root may create entries (not world-writable
 * /var/tmp, where any user could plant the directory first).
 */
#define RUN_ROOT_DEFAULT "/var/lib/qctl/runs"

/* A run directory's name: "run-" and six of [A-Za-z0-9], as mkdtemp. */
#define RUNDIR_PREFIX "run-"
#define RUNDIR_NAME_LEN 10

enum {
	RUNDIR_CREATE = 1 << 0, /* make what is missing: ancestors 0755,
				   the directory itself 0700 */
};

/*
 * Open directory path (what: "run root", "state directory", for messages)
 * for root's files, refusing it unless it is safe: path itself is no
 * symlink, is owned by us (the euid) and is not writable by group or
 * other; every directory walked to reach it (symlinks among the
 * ancestors are followed only if owned by root or us) is owned by root or
 * us and is not writable by group or other unless sticky, like /tmp.  A
 * relative path is taken from the current directory.  On success *dirfd
 * is an O_DIRECTORY fd and, if canon is not NULL, *canon the absolute
 * path as walked (no "." or repeated '/').  0 or -errno with err naming
 * the path and what is wrong (-ENOENT if a part is missing without
 * RUNDIR_CREATE).
 */
int rundir_root_check(const char *path, const char *what, unsigned flags,
		      int *dirfd, char **canon, struct error *err);

/* Whether name is a run directory's ("run-XXXXXX"). */
bool rundir_name_ok(const char *name);

/*
 * Make a fresh run directory "run-XXXXXX", mode 0700, in the checked
 * run root rootfd.  *name (malloc'd) is its name, *dirfd an fd of it.
 */
int rundir_create(int rootfd, char **name, int *dirfd, struct error *err);

/*
 * Create file name in directory dirfd: never an existing file, never
 * through a symlink (O_CREAT | O_EXCL | O_NOFOLLOW), close-on-exec, mode
 * 0600.  flags adds the access mode (O_WRONLY, O_RDWR, O_APPEND).
 */
int rundir_open_file(int dirfd, const char *name, int flags, int *fd,
		     struct error *err);

/* Create directory name (0700, must not exist) in dirfd and open it. */
int rundir_mkdir(int dirfd, const char *name, int *fd, struct error *err);

/*
 * Open an existing run directory by its path again (after rundir_create
 * made it): no symlink, owned by us, not writable by group or other.
 */
int rundir_open_dir(const char *path, int *dirfd, struct error *err);

/*
 * If run_dir is "<root>/run-XXXXXX" exactly (root as rundir_root_check's
 * canon gives it: nothing like "..", "." or "//" can sneak in), point
 * *name into run_dir at its last part and return 0; else -EINVAL.
 */
int rundir_child_name(const char *root, const char *run_dir, const char **name,
		      struct error *err);

/*
 * Remove run directory name from the checked run root rootfd: it must be
 * a run-XXXXXX directory (not a symlink) owned by us.  0 if removed or
 * absent.
 */
int rundir_remove(int rootfd, const char *name, struct error *err);

#endif
