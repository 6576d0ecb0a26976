/* privs.c - reading back a privilege drop */
#include "privs.h"

#include <cap-ng.h>
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "util.h"

int
privs_verify_dropped(bool drop_ids, uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;

	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return -1;
	if (!drop_ids)
		return 0;
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
		return -1;
	if (getresgid(&rg, &eg, &sg) < 0 || rg != gid || eg != gid || sg != gid)
		return -1;
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_get_caps_process() < 0 ||
	    capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE)
		return -1;
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0)
			return -1;
	return 0;
}

int
privs_verify_groups(const gid_t *want, int n)
{
	gid_t have[64];
	int got = getgroups(ARRAY_SIZE(have), have);

	if (got < 0 || got != n)
		return -1;
	for (int i = 0; i < got; i++) {
		bool found = false;

		for (int k = 0; k < n && !found; k++)
			found = have[i] == want[k];
		if (!found)
			return -1;
	}
	return 0;
}

int
privs_drop_to(uid_t uid, gid_t gid, const gid_t *groups, int n)
{
	if (setgroups(n > 0 ? n : 0, groups) < 0)
		return -1;
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_change_id(uid, gid, CAPNG_CLEAR_BOUNDING) != 0)
		return -1;
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	/* No setuid binary or file capability can give any of it back. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	if (privs_verify_dropped(true, uid, gid) < 0 ||
	    privs_verify_groups(groups, n > 0 ? n : 0) < 0) {
		errno = EPERM;
		return -1;
	}
	return 0;
}
