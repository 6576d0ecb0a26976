/* counters.h - read the per-VM counters and quota out of nft's listing */
#ifndef QCTL_NF_COUNTERS_H
#define QCTL_NF_COUNTERS_H

#include <stdint.h>

#include "util.h"

struct nf_counter_values {
	uint64_t rx_bytes, rx_packets;
	uint64_t tx_bytes, tx_packets;
	uint64_t dropped_packets;
	uint64_t quota_used;
};

/*
 * Parse the text output of the commands of nf_ruleset_counters() (counter
 * objects rx, tx, dropped; quota q).  0, or -EPROTO if any is missing or
 * a number is malformed.
 */
int nf_counters_parse(const char *text, struct nf_counter_values *out,
		      struct error *err);

#endif
