/*
 * permit.c - the helper's permit table (OpenSSH monitor style)
 *
 * One row per request type: the states it is permitted in and the state it
 * leads to.  Anything else is refused, and the caller exits on a refusal:
 * a manager that asks out of turn is broken or subverted, and the safe
 * answer to either is no helper (no helper, no window).
 */
#include "permit.h"

#include "nf-error.h"
#include "nf-proto.h"
#include "request.h"

#define S(st) (1u << (st))

static const struct {
	uint32_t type;
	unsigned int permitted;	/* bitmask of S(state) */
	enum nf_state next;
} permit_table[] = {
	/* Once: NEW is never entered again, so a second SETUP is fatal. */
	{ NF_REQ_SETUP, S(NF_STATE_NEW), NF_STATE_CLOSED },
	/* Widening access is permitted from exactly one state. */
	{ NF_REQ_OPEN, S(NF_STATE_CLOSED), NF_STATE_OPEN },
	/* Narrowing it is always safe, so CLOSE also means "make sure". */
	{ NF_REQ_CLOSE, S(NF_STATE_CLOSED) | S(NF_STATE_OPEN),
	  NF_STATE_CLOSED },
	{ NF_REQ_COUNTERS, S(NF_STATE_CLOSED), NF_STATE_CLOSED },
	{ NF_REQ_COUNTERS, S(NF_STATE_OPEN), NF_STATE_OPEN },
	/* Once: DONE permits nothing. */
	{ NF_REQ_TEARDOWN, S(NF_STATE_CLOSED) | S(NF_STATE_OPEN),
	  NF_STATE_DONE },
};

const char *
nf_state_name(enum nf_state st)
{
	switch (st) {
	case NF_STATE_NEW:
		return "NEW";
	case NF_STATE_CLOSED:
		return "CLOSED";
	case NF_STATE_OPEN:
		return "OPEN";
	case NF_STATE_DONE:
		return "DONE";
	}
	return "?";
}

int
nf_permit_check(enum nf_state st, uint32_t type, enum nf_state *next,
		struct error *err)
{
	for (size_t i = 0; i < ARRAY_SIZE(permit_table); i++) {
		if (permit_table[i].type == type &&
		    (permit_table[i].permitted & S(st))) {
			*next = permit_table[i].next;
			return 0;
		}
	}
	return nf_error(err, EPERM, "%s not permitted in state %s",
			nf_request_name(type), nf_state_name(st));
}
