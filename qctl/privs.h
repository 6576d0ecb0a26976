/* privs.h - reading back a privilege drop */
#ifndef QCTL_PRIVS_H
#define QCTL_PRIVS_H

#include <stdbool.h>
#include <sys/types.h>

/*
 * 0 if the calling process has no_new_privs set and, when drop_ids, runs
 * with real, effective and saved uid and gid exactly uid/gid, holds no
 * capability and has an empty bounding set; -1 otherwise.  For the
 * children (QEMU, the proxy) that must not go on unless the drop took.
 */
int privs_verify_dropped(bool drop_ids, uid_t uid, gid_t gid);

/*
 * 0 if the calling process's supplementary groups are exactly the n
 * groups of want (in any order), -1 otherwise.
 */
int privs_verify_groups(const gid_t *want, int n);

/*
 * Between fork and exec: become exactly uid/gid with exactly the n groups
 * (none of root's), no capability in any set (bounding and ambient
 * included) and no_new_privs, then read all of it back.  0, or -1 with
 * errno (EPERM when the read-back disagrees).
 */
int privs_drop_to(uid_t uid, gid_t gid, const gid_t *groups, int n);

#endif
