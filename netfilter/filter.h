/* filter.h - ruleset changes through one long-lived libnftables context */
#ifndef QCTL_NF_FILTER_H
#define QCTL_NF_FILTER_H

#include <stdbool.h>

#include "counters.h"
#include "request.h"
#include "ruleset.h"

struct nft_ctx;

struct nf_filter {
	struct nft_ctx *nft;
	struct nf_setup_args args;	/* valid after a successful setup */
	char text[NF_RULESET_MAX];	/* the transaction being run */
};

/*
 * Create the libnftables context (opens its netlink socket and reads its
 * configuration files, so it must run before the seccomp filter).
 */
int nf_filter_new(struct nf_filter *f, struct error *err);
/* Install the table for a validated SETUP (one transaction). */
int nf_filter_setup(struct nf_filter *f, const struct nf_setup_args *a,
		    struct error *err);
/* Add the proxy port to the window set (one transaction). */
int nf_filter_open(struct nf_filter *f, struct error *err);
/* Delete the proxy port from the window set (one transaction). */
int nf_filter_close(struct nf_filter *f, struct error *err);
/* Read the counters and the quota. */
int nf_filter_counters(struct nf_filter *f, struct nf_counter_values *out,
		       struct error *err);
/* Delete the table (one transaction). */
int nf_filter_teardown(struct nf_filter *f, struct error *err);
/* Free the context. */
void nf_filter_free(struct nf_filter *f);

#endif
