/*
 * test-nf-counters.c - reading counters and quota out of nft's listing
 *
 * tests/unit/data/nft/counters-output.txt is what nftables 1.0.6 printed
 * for counters.nft in a live namespace after setup.nft, open.nft, a TCP
 * echo of 5000 bytes and one UDP datagram (the topology of
 * t-netfilter-helper.sh).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "counters.h"

static const char listing[] =
	"table inet qctl {\n"
	"\tcounter rx {\n"
	"\t\tpackets 12 bytes 3456\n"
	"\t}\n"
	"\tcounter tx {\n"
	"\t\tpackets 10 bytes 98765\n"
	"\t}\n"
	"\tcounter dropped {\n"
	"\t\tpackets 7 bytes 420\n"
	"\t}\n"
	"}\n"
	"table inet qctl {\n"
	"\tquota q {\n"
	"\t\t100 mbytes used 3 kbytes\n"
	"\t}\n"
	"}\n";

Test(nf_counters, parses_a_listing)
{
	struct nf_counter_values v;
	struct error err = { 0 };

	cr_assert_eq(nf_counters_parse(listing, &v, &err), 0, "%s", err.msg);
	cr_expect_eq(v.rx_packets, 12);
	cr_expect_eq(v.rx_bytes, 3456);
	cr_expect_eq(v.tx_packets, 10);
	cr_expect_eq(v.tx_bytes, 98765);
	cr_expect_eq(v.dropped_packets, 7);
	cr_expect_eq(v.quota_used, 3 * 1024);
}

Test(nf_counters, captured_output)
{
	char text[4096];
	struct nf_counter_values v;
	struct error err = { 0 };
	FILE *f = fopen("tests/unit/data/nft/counters-output.txt", "r");
	size_t n;

	cr_assert_not_null(f, "run from the top directory");
	n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = '\0';
	fclose(f);
	cr_assert_eq(nf_counters_parse(text, &v, &err), 0, "%s", err.msg);
	cr_expect_eq(v.rx_packets, 12);
	cr_expect_eq(v.rx_bytes, 5645);
	cr_expect_eq(v.tx_packets, 8);
	cr_expect_eq(v.tx_bytes, 5437);
	cr_expect_eq(v.dropped_packets, 1);
	/* both directions are charged to the one quota */
	cr_expect_eq(v.quota_used, v.rx_bytes + v.tx_bytes);
}

Test(nf_counters, quota_units_and_forms)
{
	static const struct {
		const char *body;
		uint64_t used;
	} cases[] = {
		{ "100 mbytes", 0 },			/* unused: no "used" */
		{ "100 mbytes used 1536 bytes", 1536 },
		{ "over 1 mbytes used 1536 bytes", 1536 },
		{ "until 5 kbytes used 2 kbytes", 2048 },
		{ "1 gbytes used 7 mbytes", UINT64_C(7) << 20 },
		{ "1 gbytes used 3 gbytes", UINT64_C(3) << 30 },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char text[512];
		struct nf_counter_values v;
		struct error err = { 0 };

		snprintf(text, sizeof(text),
			 "counter rx { packets 0 bytes 0 }\n"
			 "counter tx { packets 0 bytes 0 }\n"
			 "counter dropped { packets 0 bytes 0 }\n"
			 "quota q {\n\t%s\n}\n", cases[i].body);
		cr_expect_eq(nf_counters_parse(text, &v, &err), 0, "%s: %s",
			     cases[i].body, err.msg);
		cr_expect_eq(v.quota_used, cases[i].used, "%s", cases[i].body);
	}
}

Test(nf_counters, rule_references_are_not_objects)
{
	/* A listing of the whole table mentions counter names in rules;
	 * only "counter NAME {" blocks count. */
	const char *text =
		"iifname \"qtap0\" counter name \"rx\" accept\n"
		"counter rx { packets 1 bytes 2 }\n"
		"counter tx { packets 3 bytes 4 }\n"
		"counter dropped { packets 5 bytes 6 }\n"
		"quota name \"q\" drop\n"
		"quota q { 9 bytes used 8 bytes }\n";
	struct nf_counter_values v;

	cr_assert_eq(nf_counters_parse(text, &v, NULL), 0);
	cr_expect_eq(v.rx_bytes, 2);
	cr_expect_eq(v.dropped_packets, 5);
	cr_expect_eq(v.quota_used, 8);
}

Test(nf_counters, refuses_incomplete_or_malformed)
{
	static const char *const bad[] = {
		"",
		"counter rx { packets 1 bytes 2 }",
		/* quota missing */
		"counter rx { packets 1 bytes 2 } counter tx { packets 1 "
		"bytes 2 } counter dropped { packets 1 bytes 2 }",
		/* a number that is not one */
		"counter rx { packets x bytes 2 } counter tx { packets 1 "
		"bytes 2 } counter dropped { packets 1 bytes 2 } quota q { 1 "
		"bytes }",
		/* overflow */
		"counter rx { packets 18446744073709551616 bytes 2 } counter "
		"tx { packets 1 bytes 2 } counter dropped { packets 1 bytes 2 "
		"} quota q { 1 bytes }",
		/* unknown unit, and overflow through a unit */
		"counter rx { packets 1 bytes 2 } counter tx { packets 1 "
		"bytes 2 } counter dropped { packets 1 bytes 2 } quota q { 1 "
		"bytes used 5 pbytes }",
		"counter rx { packets 1 bytes 2 } counter tx { packets 1 "
		"bytes 2 } counter dropped { packets 1 bytes 2 } quota q { 1 "
		"bytes used 18446744073709551615 kbytes }",
		/* twice */
		"counter rx { packets 1 bytes 2 } counter rx { packets 1 "
		"bytes 2 } counter tx { packets 1 bytes 2 } counter dropped { "
		"packets 1 bytes 2 } quota q { 1 bytes }",
		/* truncated */
		"counter rx { packets 1 bytes 2 } counter tx { packets 1 "
		"bytes 2 } counter dropped { packets 1 bytes",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct nf_counter_values v;
		struct error err = { 0 };

		cr_expect_eq(nf_counters_parse(bad[i], &v, &err), -EPROTO,
			     "accepted case %zu", i);
	}
}
