/*
 * test-nf-ruleset.c - the helper's nft text against golden files
 *
 * The golden files live in tests/unit/data/nft/.  After a deliberate change
 * to ruleset.c, regenerate them with QCTL_UPDATE_GOLDEN=1 and review the
 * diff: it is the ruleset every builder gets.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "request.h"
#include "ruleset.h"

#define GOLDEN_DIR "tests/unit/data/nft/"

static struct nf_setup_args
args(const char *ifname, const char *host, const char *guest, uint16_t port,
     uint64_t quota)
{
	struct nf_setup_args a;

	memset(&a, 0, sizeof(a));
	strcpy(a.ifname, ifname);
	cr_assert_eq(inet_pton(AF_INET, host, &a.host), 1);
	cr_assert_eq(inet_pton(AF_INET, guest, &a.guest), 1);
	a.port = port;
	a.quota_bytes = quota;
	return a;
}

static struct nf_setup_args
builder(void)
{
	return args("qtap0", "169.254.77.1", "169.254.77.2", 3128,
		    UINT64_C(100) << 20);
}

static void
check_golden(const char *name, const char *text)
{
	char path[256], got[NF_RULESET_MAX * 2];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), GOLDEN_DIR "%s", name);
	if (getenv("QCTL_UPDATE_GOLDEN")) {
		f = fopen(path, "w");
		cr_assert_not_null(f, "cannot write %s", path);
		fputs(text, f);
		fclose(f);
		return;
	}
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s missing (run from the top directory, or "
			      "set QCTL_UPDATE_GOLDEN=1)", path);
	n = fread(got, 1, sizeof(got) - 1, f);
	got[n] = '\0';
	fclose(f);
	cr_assert_str_eq(text, got, "%s differs from the generated text",
			 path);
}

Test(nf_ruleset, setup_golden)
{
	struct nf_setup_args a = builder();
	char buf[NF_RULESET_MAX];

	cr_assert_gt(nf_ruleset_setup(&a, buf, sizeof(buf)), 0);
	check_golden("setup.nft", buf);
}

Test(nf_ruleset, setup_golden_other_fields)
{
	/* Every field lands where it belongs: a 15-character name, the
	 * extreme port and quota, other addresses. */
	struct nf_setup_args a = args("veth-b_15chars_", "10.11.12.13",
				      "10.11.12.14", 65535, NF_QUOTA_MAX);
	char buf[NF_RULESET_MAX];

	cr_assert_gt(nf_ruleset_setup(&a, buf, sizeof(buf)), 0);
	check_golden("setup-other.nft", buf);
}

Test(nf_ruleset, setup_golden_ssh)
{
	/* The ssh transport: host side to the guest's port 22 and its
	 * replies, counted apart; the rest as without it. */
	struct nf_setup_args a = builder();
	char buf[NF_RULESET_MAX], plain[NF_RULESET_MAX];

	a.ssh_port = 22;
	cr_assert_gt(nf_ruleset_setup(&a, buf, sizeof(buf)), 0);
	check_golden("setup-ssh.nft", buf);
	cr_assert(strstr(buf, "tcp sport 22 ct state established"));
	cr_assert(strstr(buf, "tcp dport 22 ct state new,established"));
	a.ssh_port = 0;
	cr_assert_gt(nf_ruleset_setup(&a, plain, sizeof(plain)), 0);
	cr_assert_null(strstr(plain, "ssh"));
}

Test(nf_ruleset, open_close_counters_teardown_golden)
{
	struct nf_setup_args a = builder();
	char buf[NF_RULESET_MAX];

	cr_assert_gt(nf_ruleset_open(&a, buf, sizeof(buf)), 0);
	check_golden("open.nft", buf);
	cr_assert_gt(nf_ruleset_close(&a, buf, sizeof(buf)), 0);
	check_golden("close.nft", buf);
	cr_assert_gt(nf_ruleset_counters(buf, sizeof(buf)), 0);
	check_golden("counters.nft", buf);
	cr_assert_gt(nf_ruleset_teardown(buf, sizeof(buf)), 0);
	check_golden("teardown.nft", buf);
}

Test(nf_ruleset, each_change_is_one_small_command)
{
	struct nf_setup_args a = builder();
	char buf[NF_RULESET_MAX];

	/* Window changes touch one set element and nothing else: no rule,
	 * chain or table is deleted and recreated. */
	nf_ruleset_open(&a, buf, sizeof(buf));
	cr_assert_eq(strchr(buf, '\n') - buf + 1, (long)strlen(buf));
	cr_assert(strstr(buf, "add element inet qctl window { 3128 }"));
	nf_ruleset_close(&a, buf, sizeof(buf));
	cr_assert_eq(strchr(buf, '\n') - buf + 1, (long)strlen(buf));
	cr_assert(strstr(buf, "delete element inet qctl window { 3128 }"));
}

Test(nf_ruleset, setup_is_drop_by_default)
{
	struct nf_setup_args a = builder();
	char buf[NF_RULESET_MAX];
	const char *p;
	int accepts = 0, policies = 0;

	nf_ruleset_setup(&a, buf, sizeof(buf));
	/* It creates (fails if present), never flushes or deletes. */
	cr_assert(strstr(buf, "create table inet qctl\n"));
	cr_assert_null(strstr(buf, "flush"));
	cr_assert_null(strstr(buf, "delete"));
	/* No connection-tracking shortcut that would outlive CLOSE. */
	cr_assert_null(strstr(buf, "ct "));
	cr_assert_null(strstr(buf, "established"));
	for (p = buf; (p = strstr(p, "policy drop;")); p++)
		policies++;
	cr_assert_eq(policies, 3, "input, forward and output drop");
	cr_assert_null(strstr(buf, "policy accept"));
	/* Exactly two accepts, both gated by the window set. */
	for (p = buf; (p = strstr(p, " accept\n")); p++) {
		const char *bol = p;

		while (bol > buf && bol[-1] != '\n')
			bol--;
		cr_assert(strstr(bol, "@window") && strstr(bol, "@window") < p,
			  "accept without the window: %.*s", (int)(p - bol),
			  bol);
		accepts++;
	}
	cr_assert_eq(accepts, 2);
}

Test(nf_ruleset, too_small_buffer)
{
	struct nf_setup_args a = builder();
	char buf[64];

	cr_assert_eq(nf_ruleset_setup(&a, buf, sizeof(buf)), -ENOSPC);
	cr_assert_eq(nf_ruleset_open(&a, buf, 10), -ENOSPC);
	cr_assert_eq(nf_ruleset_counters(buf, 5), -ENOSPC);
}
