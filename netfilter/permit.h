/* permit.h - which request the helper accepts in which state */
#ifndef QCTL_NF_PERMIT_H
#define QCTL_NF_PERMIT_H

#include <stdint.h>

#include "util.h"

/* The helper's state mirrors the kernel's: it advances only on success. */
enum nf_state {
	NF_STATE_NEW,		/* no ruleset yet: only SETUP */
	NF_STATE_CLOSED,	/* ruleset installed, window closed */
	NF_STATE_OPEN,		/* window open */
	NF_STATE_DONE,		/* table deleted: nothing more */
};

/*
 * Is a request of this type permitted in state st?  0 and *next (the state
 * after the request succeeds), or -EPERM with err filled.
 */
int nf_permit_check(enum nf_state st, uint32_t type, enum nf_state *next,
		    struct error *err);
/* "NEW", "CLOSED", ... */
const char *nf_state_name(enum nf_state st);

#endif
