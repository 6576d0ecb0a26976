/* ruleset.h - nft text for each change, made from validated fields only */
#ifndef QCTL_NF_RULESET_H
#define QCTL_NF_RULESET_H

#include <stddef.h>

#include "request.h"

/* The helper's table; one per builder namespace. */
#define NF_TABLE "qctl"
/* Room for the largest text (SETUP) with a wide margin. */
#define NF_RULESET_MAX 4096

/*
 * Each function writes one nft transaction (text for one
 * nft_run_cmd_from_buffer call) into buf and returns its length, or
 * -ENOSPC if size is too small.
 */

/* Create the table: drop-by-default chains, counters, quota, empty window. */
int nf_ruleset_setup(const struct nf_setup_args *a, char *buf, size_t size);
/* Put the proxy port into the window set. */
int nf_ruleset_open(const struct nf_setup_args *a, char *buf, size_t size);
/* Take the proxy port out of the window set. */
int nf_ruleset_close(const struct nf_setup_args *a, char *buf, size_t size);
/* List the counters and the quota (parsed by nf_counters_parse). */
int nf_ruleset_counters(char *buf, size_t size);
/* Delete the table and everything in it. */
int nf_ruleset_teardown(char *buf, size_t size);

#endif
