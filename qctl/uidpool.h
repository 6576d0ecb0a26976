/* uidpool.h - a uid/gid of its own for every running QEMU */
#ifndef QCTL_UIDPOOL_H
#define QCTL_UIDPOOL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "util.h"

/*
 * The default range: 0x70000000 + 64 Ki ids.  systemd's table of uid
 * ranges (systemd.io/UIDS-GIDS) leaves 1879048192..2147352575 unused:
 * above the regular users (1000..60000), its dynamic users
 * (61184..65519), nobody (65534), shadow's /etc/subuid allocations
 * (SUB_UID_MIN 100000 .. SUB_UID_MAX 600100000 by default) and the
 * container ranges of systemd-nspawn (524288..1879048191), and below
 * 2^31, where tools that keep uids in a signed int start to fail.
 */
#define UID_RANGE_DEFAULT_FIRST 1879048192u
#define UID_RANGE_DEFAULT_COUNT 65536u
/* Highest id a range may reach: 2^31 - 2 (2^31 - 1 is INT_MAX). */
#define UID_RANGE_MAX 2147483646u

/* Ids first .. first + count - 1, used as uid and as gid alike. */
struct uid_range {
	uint32_t first;
	uint32_t count;
};

/*
 * Parse "FIRST:COUNT" (decimal).  The range must hold neither 0, nor
 * nobody's 65534 nor 65535 ((uint16_t)-1), and end at UID_RANGE_MAX or
 * below.  0 or -EINVAL with err filled.
 */
int uidpool_parse_range(const char *s, struct uid_range *r, struct error *err);

/*
 * Does r overlap a range of an /etc/subuid or /etc/subgid file (buf, its
 * text: "name:first:count" lines)?  1 yes (the first such line goes to
 * err), 0 no.  Lines it cannot parse are ignored.
 */
int uidpool_subid_overlap(const char *buf, const struct uid_range *r,
			  struct error *err);

/*
 * The range to use: opt (a command line option) if set, else
 * $QCTL_UID_RANGE, else the default; checked against /etc/subuid and
 * /etc/subgid under etc (NULL: "/etc").  0 or -errno (EINVAL: a bad or
 * colliding range).
 */
int uidpool_range_pick(const char *opt, const char *etc, struct uid_range *r,
		       struct error *err);

/* One id held by this process until uidpool_release. */
struct uid_lease {
	bool held;
	uid_t uid; /* gid is the same number */
	int fd;	   /* the lock file, flock'ed */
	char path[256];
};

/*
 * Take an id of r that no other manager sharing dir (the state
 * directory) holds: a lock file dir/uid-N.lock created (0600) and
 * flock'ed exclusively; the lock lasts as long as this process keeps
 * the fd, so a dead manager's lock is free again.  Ids with a passwd
 * or group entry and ids some process still runs as (an escape from a
 * dead manager's QEMU) are passed over.  0, or -EAGAIN when every id is
 * taken, or -errno.
 */
int uidpool_acquire(const char *dir, const struct uid_range *r,
		    struct uid_lease *l, struct error *err);

/*
 * Give the id back: kill whatever still runs as it (a QEMU escape
 * could have left a process behind), then remove the lock file.  If
 * something survives, the file stays for `qctl gc`.  No-op unless held.
 */
void uidpool_release(struct uid_lease *l);

/*
 * Free the ids that dead managers left in dir (lock files that nobody
 * holds): kill their processes, remove the files.  only_uid >= 0: just
 * that id.  One line per freed id to out (may be NULL), prefixed with
 * who (may be NULL).  Returns the number freed.
 */
int uidpool_gc(const char *dir, long long only_uid, const char *who, FILE *out);

/*
 * Does a /proc/PID/status text show a live (not zombie) process with
 * uid as its real, effective, saved or filesystem uid?  1, 0, or
 * -EINVAL (no Uid line).
 */
int uidpool_status_uses(const char *status, uid_t uid);
/* Does any process under proc (NULL: "/proc") run as uid?  1, 0, -errno. */
int uidpool_uid_busy(const char *proc, uid_t uid);

/*
 * Kill every process that runs as uid: from a child that takes that
 * uid, so that kill(-1, SIGKILL) reaches exactly those; repeated until
 * none is left, for about a second at most.  0, -EBUSY (some survive)
 * or -errno.  Root only.
 */
int uidpool_kill_uid(uid_t uid);

#endif
