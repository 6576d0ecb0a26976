/*
 * counters.c - read the per-VM counters and quota out of nft's listing
 *
 * A pure function over the text libnftables prints for
 *	counter rx {
 *		packets 12 bytes 3456
 *	}
 *	quota q {
 *		[over] 100 mbytes [used 5 kbytes]
 *	}
 * nft prints quota amounts in the largest unit that divides them exactly,
 * so unit * number is the exact byte count.  Text rather than JSON keeps
 * jansson out of the helper; the grammar is tiny and the tests pin it.
 */
#include "counters.h"

#include <string.h>

#include "nf-error.h"

struct tok {
	const char *p;
	size_t n;
};

/* Next whitespace-separated token after *pos; false at the end. */
static bool
next_tok(const char **pos, struct tok *t)
{
	const char *s = *pos;

	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	if (!*s)
		return false;
	t->p = s;
	while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
		s++;
	t->n = (size_t)(s - t->p);
	*pos = s;
	return true;
}

static bool
tok_is(const struct tok *t, const char *word)
{
	return t->n == strlen(word) && memcmp(t->p, word, t->n) == 0;
}

static int
tok_u64(const struct tok *t, uint64_t *v)
{
	uint64_t x = 0;

	if (t->n == 0 || t->n > 20)
		return -1;
	for (size_t i = 0; i < t->n; i++) {
		unsigned int d = (unsigned char)t->p[i] - '0';

		if (d > 9 || x > (UINT64_MAX - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*v = x;
	return 0;
}

static int
tok_unit(const struct tok *t, uint64_t *mult)
{
	static const char *const units[] = { "bytes", "kbytes", "mbytes",
					     "gbytes" };

	*mult = 1;
	for (size_t i = 0; i < ARRAY_SIZE(units); i++, *mult <<= 10)
		if (tok_is(t, units[i]))
			return 0;
	return -1;
}

enum { C_RX, C_TX, C_DROPPED, C_QUOTA, C_N };

int
nf_counters_parse(const char *text, struct nf_counter_values *out,
		  struct error *err)
{
	static const char *const names[] = { "rx", "tx", "dropped" };
	uint64_t pkts[3] = { 0 }, bytes[3] = { 0 };
	bool seen[C_N] = { false };
	const char *pos = text;
	struct tok t, name, brace;

	memset(out, 0, sizeof(*out));
	while (next_tok(&pos, &t)) {
		bool is_counter = tok_is(&t, "counter");
		int which = -1;

		if (!is_counter && !tok_is(&t, "quota"))
			continue;
		if (!next_tok(&pos, &name) || !next_tok(&pos, &brace) ||
		    !tok_is(&brace, "{"))
			continue;	/* "counter name ..." in a rule, say */
		if (is_counter) {
			for (int i = 0; i < 3; i++)
				if (tok_is(&name, names[i]))
					which = i;
		} else if (tok_is(&name, "q")) {
			which = C_QUOTA;
		}
		if (which < 0)
			continue;
		if (seen[which])
			return nf_error(err, EPROTO, "object listed twice");
		seen[which] = true;
		/* The body, up to the closing brace. */
		while (next_tok(&pos, &t) && !tok_is(&t, "}")) {
			struct tok v, unit;
			uint64_t x, mult;

			if (which == C_QUOTA) {
				if (!tok_is(&t, "used"))
					continue;
				if (!next_tok(&pos, &v) ||
				    !next_tok(&pos, &unit) ||
				    tok_u64(&v, &x) < 0 ||
				    tok_unit(&unit, &mult) < 0 ||
				    x > UINT64_MAX / mult)
					return nf_error(err, EPROTO,
							"bad quota usage");
				out->quota_used = x * mult;
				continue;
			}
			if (!tok_is(&t, "packets") && !tok_is(&t, "bytes"))
				return nf_error(err, EPROTO,
						"unexpected word in counter");
			if (!next_tok(&pos, &v) || tok_u64(&v, &x) < 0)
				return nf_error(err, EPROTO,
						"bad number in counter");
			if (tok_is(&t, "packets"))
				pkts[which] = x;
			else
				bytes[which] = x;
		}
	}
	for (int i = 0; i < C_N; i++)
		if (!seen[i])
			return nf_error(err, EPROTO, "%s missing from listing",
					i < 3 ? names[i] : "quota q");
	out->rx_packets = pkts[C_RX];
	out->rx_bytes = bytes[C_RX];
	out->tx_packets = pkts[C_TX];
	out->tx_bytes = bytes[C_TX];
	out->dropped_packets = pkts[C_DROPPED];
	return 0;
}
