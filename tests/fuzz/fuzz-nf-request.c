/*
 * fuzz-nf-request.c - libFuzzer target: hostile requests to qctl-netfilter
 *
 * Feeds the bytes to the typed reader and validators as one datagram, runs
 * the permit table on what is accepted, and checks the property that
 * matters: from any accepted SETUP, the generated nft text has exactly the
 * structure of a known-good one (same count of quotes, braces, semicolons,
 * newlines, '#', '@' and '$'), i.e. no field can inject nft syntax.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "permit.h"
#include "request.h"
#include "ruleset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char structural[] = "\"{};\n#@$\\'";

static void
shape(const char *text, unsigned int counts[sizeof(structural)])
{
	memset(counts, 0, sizeof(unsigned int) * sizeof(structural));
	for (const char *p = text; *p; p++) {
		const char *c = strchr(structural, *p);

		if (c)
			counts[c - structural]++;
	}
}

static void
check_setup_text(const struct nf_setup_args *a)
{
	/* two shapes: without and with the guest's sshd (ssh transport) */
	static unsigned int want[2][sizeof(structural)];
	static int have_want;
	unsigned int got[sizeof(structural)];
	char text[NF_RULESET_MAX];
	int ssh = a->ssh_port != 0;

	if (!have_want) {
		for (int k = 0; k < 2; k++) {
			struct nf_setup_args ref = { .ifname = "qtap0",
						     .port = 3128,
						     .ssh_port = k ? 22 : 0,
						     .quota_bytes = 1 };

			inet_pton(AF_INET, "169.254.77.1", &ref.host);
			inet_pton(AF_INET, "169.254.77.2", &ref.guest);
			if (nf_ruleset_setup(&ref, text, sizeof(text)) < 0)
				__builtin_trap();
			shape(text, want[k]);
		}
		have_want = 1;
	}
	if (nf_ruleset_setup(a, text, sizeof(text)) < 0)
		__builtin_trap();	/* accepted input must always fit */
	shape(text, got);
	if (memcmp(got, want[ssh], sizeof(got)) != 0)
		__builtin_trap();	/* a field changed the text's syntax */
	if (nf_ruleset_open(a, text, sizeof(text)) < 0 ||
	    nf_ruleset_close(a, text, sizeof(text)) < 0)
		__builtin_trap();
}

static int
one(const void *data, size_t size)
{
	struct nf_request req;
	struct error err = { 0 };
	enum nf_state next;

	if (nf_request_parse(data, size, &req, &err) < 0) {
		if (!err.msg[0] || err.code <= 0)
			__builtin_trap();	/* refusals say why */
		return 0;
	}
	if (req.type < NF_REQ_SETUP || req.type > NF_REQ_TEARDOWN ||
	    size != nf_msg_size(req.type))
		__builtin_trap();
	for (int st = NF_STATE_NEW; st <= NF_STATE_DONE; st++)
		nf_permit_check(st, req.type, &next, NULL);
	if (req.type == NF_REQ_SETUP)
		check_setup_text(&req.setup);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_req_setup m;
	size_t n;

	/* Raw datagrams find the framing bugs... */
	one(data, size);
	/* ...and a valid SETUP with the input laid over its body reaches
	 * the field validators and the text without a seed corpus. */
	memset(&m, 0, sizeof(m));
	m.hdr = (struct nf_hdr){ NF_REQ_SETUP, sizeof(m), 1, 0 };
	memcpy(m.ifname, "qtap0", 5);
	memcpy(m.host_ip, "169.254.77.1", 12);
	memcpy(m.guest_ip, "169.254.77.2", 12);
	m.quota_bytes = 1000;
	m.proxy_port = 3128;
	n = size < sizeof(m) - sizeof(m.hdr) ? size : sizeof(m) - sizeof(m.hdr);
	memcpy((char *)&m + sizeof(m.hdr), data, n);
	one(&m, sizeof(m));
	return 0;
}
