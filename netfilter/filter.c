/*
 * filter.c - ruleset changes through one long-lived libnftables context
 *
 * Every change is exactly one nft_run_cmd_from_buffer() call, i.e. one
 * netlink batch that the kernel commits or rejects as a whole: no
 * half-applied ruleset, and no delete-then-recreate gap.
 */
#include "filter.h"

#include <nftables/libnftables.h>
#include <string.h>

#include "nf-error.h"

/* First line of nft's error text, control characters replaced. */
static void
first_line(const char *s, char *out, size_t size)
{
	size_t i = 0;

	for (; s && s[i] && s[i] != '\n' && i + 1 < size; i++)
		out[i] = (s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
	out[i] = '\0';
}

/* Run one transaction; *output (may be NULL) gets nft's printed output. */
static int
run(struct nf_filter *f, const char *what, const char **output,
    struct error *err)
{
	const char *out, *errtext;
	char line[200];
	int rc;

	rc = nft_run_cmd_from_buffer(f->nft, f->text);
	/* Fetching a buffer also rewinds it, so neither grows. */
	out = nft_ctx_get_output_buffer(f->nft);
	errtext = nft_ctx_get_error_buffer(f->nft);
	if (rc != 0) {
		first_line(errtext, line, sizeof(line));
		return nf_error(err, EIO, "%s: %s", what,
				line[0] ? line : "nft failed");
	}
	if (output)
		*output = out;
	return 0;
}

int
nf_filter_new(struct nf_filter *f, struct error *err)
{
	memset(f, 0, sizeof(*f));
	f->nft = nft_ctx_new(NFT_CTX_DEFAULT);
	if (!f->nft)
		return nf_error(err, ENOMEM, "nft_ctx_new failed");
	/* Output and errors go to memory, never to a terminal or file. */
	if (nft_ctx_buffer_output(f->nft) < 0 ||
	    nft_ctx_buffer_error(f->nft) < 0) {
		nf_filter_free(f);
		return nf_error(err, ENOMEM, "cannot buffer nft output");
	}
	/* No include path: the text never comes from a file. */
	nft_ctx_clear_include_paths(f->nft);
	/* Plain numbers: no service or DNS lookups in any output. */
	nft_ctx_output_set_flags(f->nft, NFT_CTX_OUTPUT_NUMERIC_ALL);
	return 0;
}

void
nf_filter_free(struct nf_filter *f)
{
	if (f->nft)
		nft_ctx_free(f->nft);
	f->nft = NULL;
}

int
nf_filter_setup(struct nf_filter *f, const struct nf_setup_args *a,
		struct error *err)
{
	int r;

	if (nf_ruleset_setup(a, f->text, sizeof(f->text)) < 0)
		return nf_error(err, ENOSPC, "setup: ruleset too long");
	r = run(f, "setup", NULL, err);
	if (r == 0)
		f->args = *a;
	return r;
}

int
nf_filter_open(struct nf_filter *f, struct error *err)
{
	if (nf_ruleset_open(&f->args, f->text, sizeof(f->text)) < 0)
		return nf_error(err, ENOSPC, "open: text too long");
	return run(f, "open window", NULL, err);
}

int
nf_filter_close(struct nf_filter *f, struct error *err)
{
	if (nf_ruleset_close(&f->args, f->text, sizeof(f->text)) < 0)
		return nf_error(err, ENOSPC, "close: text too long");
	return run(f, "close window", NULL, err);
}

int
nf_filter_counters(struct nf_filter *f, struct nf_counter_values *out,
		   struct error *err)
{
	const char *text;
	int r;

	if (nf_ruleset_counters(f->text, sizeof(f->text)) < 0)
		return nf_error(err, ENOSPC, "counters: text too long");
	r = run(f, "list counters", &text, err);
	if (r < 0)
		return r;
	return nf_counters_parse(text, out, err);
}

int
nf_filter_teardown(struct nf_filter *f, struct error *err)
{
	if (nf_ruleset_teardown(f->text, sizeof(f->text)) < 0)
		return nf_error(err, ENOSPC, "teardown: text too long");
	return run(f, "teardown", NULL, err);
}
