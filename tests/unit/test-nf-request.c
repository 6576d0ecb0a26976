/* test-nf-request.c - the helper's typed reader, validators and permit table */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "nf-proto.h"
#include "permit.h"
#include "request.h"

static struct nf_req_setup
good_setup(void)
{
	struct nf_req_setup m;

	memset(&m, 0, sizeof(m));
	m.hdr = (struct nf_hdr){ NF_REQ_SETUP, sizeof(m), 7, 0 };
	strcpy(m.ifname, "qtap0");
	strcpy(m.host_ip, "169.254.77.1");
	strcpy(m.guest_ip, "169.254.77.2");
	m.proxy_port = 3128;
	m.quota_bytes = 100 << 20;
	return m;
}

static int
parse(const void *m, size_t len)
{
	struct nf_request req;
	struct error err = { 0 };
	int r = nf_request_parse(m, len, &req, &err);

	if (r < 0)
		cr_assert(err.msg[0], "a refusal says why");
	return r;
}

/* ---- field validators ---- */

static const struct {
	const char *name;
	bool ok;
} ifnames[] = {
	{ "qtap0", true },
	{ "tap-1_A", true },
	{ "a", true },
	{ "abcdefghijklmno", true },		/* 15: IFNAMSIZ - 1 */
	{ "abcdefghijklmnop", false },		/* 16 */
	{ "abcdefghijklmnopqrstuvwxyz", false },
	{ "", false },
	{ "tap0; flush ruleset", false },
	{ "t;x", false },
	{ "tap0\n", false },
	{ "tap 0", false },
	{ "tap\"0", false },
	{ "tap'0", false },
	{ "tap0}", false },
	{ "../x", false },
	{ "a/b", false },
	{ ".", false },
	{ "tap*", false },
	{ "tap$x", false },
	{ "t\xc3\xa4p", false },		/* UTF-8 */
	{ "tap\t", false },
};

Test(nf_request, ifname_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(ifnames); i++) {
		char field[64] = { 0 };
		struct error err = { 0 };
		int r;

		strcpy(field, ifnames[i].name);
		/* The validator sees at most the wire field. */
		r = nf_request_check_ifname(field, NF_IFNAME_SIZE, &err);
		cr_expect_eq(r == 0, ifnames[i].ok, "ifname \"%s\": %d (%s)",
			     ifnames[i].name, r, err.msg);
	}
}

Test(nf_request, ifname_without_nul)
{
	char field[NF_IFNAME_SIZE];
	struct error err = { 0 };

	memset(field, 'a', sizeof(field));
	cr_assert_eq(nf_request_check_ifname(field, sizeof(field), &err),
		     -EPROTO);
	cr_assert(strstr(err.msg, "NUL"));
}

Test(nf_request, ifname_error_escapes_control_bytes)
{
	char field[NF_IFNAME_SIZE] = "a\nb\x1b";
	struct error err = { 0 };

	cr_assert_lt(nf_request_check_ifname(field, sizeof(field), &err), 0);
	cr_assert_null(strchr(err.msg, '\n'));
	cr_assert_null(strchr(err.msg, '\x1b'));
	cr_assert(strstr(err.msg, "\\x0a"), "%s", err.msg);
}

static const struct {
	const char *ip;
	bool ok;
} ips[] = {
	{ "169.254.77.1", true },
	{ "10.0.0.1", true },
	{ "192.168.1.254", true },
	{ "1.2.3.4", true },
	{ "1.2.3", false },			/* inet_aton: 1.2.0.3 */
	{ "1.2.3.4.5", false },
	{ "01.2.3.4", false },			/* octal to inet_aton */
	{ "1.2.3.010", false },
	{ "0x1.2.3.4", false },
	{ "1.2.3.256", false },
	{ "::1", false },			/* IPv6, not IPv4 */
	{ "fe80::1", false },
	{ "::ffff:1.2.3.4", false },
	{ "", false },
	{ " 1.2.3.4", false },
	{ "1.2.3.4 ", false },
	{ "1.2.3.4/30", false },
	{ "1.2.3.4;", false },
	{ "localhost", false },
	{ "0.0.0.0", false },			/* not a unicast peer */
	{ "0.1.2.3", false },
	{ "127.0.0.1", false },
	{ "224.0.0.1", false },
	{ "239.255.255.255", false },
	{ "240.0.0.1", false },
	{ "255.255.255.255", false },
	{ "223.255.255.254", true },
};

Test(nf_request, ipv4_table)
{
	for (size_t i = 0; i < ARRAY_SIZE(ips); i++) {
		char field[NF_IP_SIZE] = { 0 };
		struct error err = { 0 };
		struct in_addr a;
		int r;

		strncpy(field, ips[i].ip, sizeof(field) - 1);
		r = nf_request_parse_ipv4(field, sizeof(field), &a, &err);
		cr_expect_eq(r == 0, ips[i].ok, "ip \"%s\": %d (%s)", ips[i].ip,
			     r, err.msg);
	}
}

Test(nf_request, ipv4_without_nul)
{
	char field[NF_IP_SIZE];
	struct in_addr a;

	memcpy(field, "1.2.3.4111111111", sizeof(field));
	cr_assert_eq(nf_request_parse_ipv4(field, sizeof(field), &a, NULL),
		     -EPROTO);
}

Test(nf_request, ports_and_quota)
{
	cr_expect_lt(nf_request_check_port(0, NULL), 0);
	cr_expect_eq(nf_request_check_port(1, NULL), 0);
	cr_expect_eq(nf_request_check_port(3128, NULL), 0);
	cr_expect_eq(nf_request_check_port(65535, NULL), 0);
	cr_expect_lt(nf_request_check_port(65536, NULL), 0);
	cr_expect_lt(nf_request_check_port(UINT32_MAX, NULL), 0);

	cr_expect_lt(nf_request_check_quota(0, NULL), 0);
	cr_expect_eq(nf_request_check_quota(1, NULL), 0);
	cr_expect_eq(nf_request_check_quota(NF_QUOTA_MAX, NULL), 0);
	cr_expect_lt(nf_request_check_quota(NF_QUOTA_MAX + 1, NULL), 0);
	cr_expect_lt(nf_request_check_quota(UINT64_MAX, NULL), 0);
}

/* ---- the typed reader ---- */

Test(nf_request, good_setup_decodes)
{
	struct nf_req_setup m = good_setup();
	struct nf_request req;
	char host[INET_ADDRSTRLEN];

	/* Garbage after the name's NUL must not reach the validated copy. */
	memcpy(m.ifname + 6, "junk", 4);
	cr_assert_eq(nf_request_parse(&m, sizeof(m), &req, NULL), 0);
	cr_assert_eq(req.type, NF_REQ_SETUP);
	cr_assert_eq(req.seq, 7);
	cr_assert_str_eq(req.setup.ifname, "qtap0");
	cr_assert_eq(memcmp(req.setup.ifname + 5, "\0\0\0\0\0\0\0\0\0\0\0",
			    11), 0);
	inet_ntop(AF_INET, &req.setup.host, host, sizeof(host));
	cr_assert_str_eq(host, "169.254.77.1");
	cr_assert_eq(req.setup.port, 3128);
	cr_assert_eq(req.setup.quota_bytes, 100 << 20);
}

Test(nf_request, unaligned_buffer)
{
	struct nf_req_setup m = good_setup();
	unsigned char buf[sizeof(m) + 1];
	struct nf_request req;

	memcpy(buf + 1, &m, sizeof(m));
	cr_assert_eq(nf_request_parse(buf + 1, sizeof(m), &req, NULL), 0);
}

Test(nf_request, header_only_requests)
{
	const uint32_t types[] = { NF_REQ_OPEN, NF_REQ_CLOSE, NF_REQ_COUNTERS,
				   NF_REQ_TEARDOWN };

	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		unsigned char buf[sizeof(struct nf_hdr) + 1] = { 0 };
		struct nf_hdr h = { types[i], sizeof(h), 1, 0 };

		memcpy(buf, &h, sizeof(h));
		cr_expect_eq(parse(buf, sizeof(h)), 0, "type %u", types[i]);
		/* one byte short, one byte long */
		cr_expect_eq(parse(buf, sizeof(h) - 1), -EPROTO);
		cr_expect_eq(parse(buf, sizeof(h) + 1), -EPROTO);
	}
}

Test(nf_request, wrong_sizes)
{
	struct nf_req_setup m = good_setup();
	unsigned char big[sizeof(m) + 8] = { 0 };

	cr_expect_eq(parse(&m, 0), -EPROTO);
	cr_expect_eq(parse(&m, 4), -EPROTO);
	cr_expect_eq(parse(&m, sizeof(struct nf_hdr)), -EPROTO);
	cr_expect_eq(parse(&m, sizeof(m) - 1), -EPROTO);
	memcpy(big, &m, sizeof(m));
	cr_expect_eq(parse(big, sizeof(m) + 1), -EPROTO);
	cr_expect_eq(parse(big, sizeof(big)), -EPROTO);
	/* the header's own length must agree with the datagram */
	m.hdr.len = sizeof(m) - 1;
	cr_expect_eq(parse(&m, sizeof(m)), -EPROTO);
	m.hdr.len = sizeof(m) + 1;
	cr_expect_eq(parse(&m, sizeof(m)), -EPROTO);
	/* an OPEN header sized like a SETUP */
	m = good_setup();
	m.hdr.type = NF_REQ_OPEN;
	cr_expect_eq(parse(&m, sizeof(m)), -EPROTO);
}

Test(nf_request, unknown_types_and_reserved_fields)
{
	const uint32_t bad[] = { 0, 6, 63, NF_REP_HELLO, NF_REP_OK,
				 NF_REP_ERROR, NF_REP_COUNTERS, UINT32_MAX };
	struct nf_req_setup m;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct nf_hdr h = { bad[i], sizeof(h), 1, 0 };

		cr_expect_eq(parse(&h, sizeof(h)), -EPROTO, "type %u", bad[i]);
	}
	{
		struct nf_hdr h = { NF_REQ_OPEN, sizeof(h), 1, 1 };

		cr_expect_eq(parse(&h, sizeof(h)), -EPROTO);
	}
	/* the ssh port: 0 or a port that is not the proxy's */
	m = good_setup();
	m.ssh_port = 65536;
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	m.ssh_port = m.proxy_port;
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	m.ssh_port = 22;
	cr_expect_eq(parse(&m, sizeof(m)), 0);
}

Test(nf_request, setup_fields_are_checked)
{
	struct nf_req_setup m;

	m = good_setup();
	memset(m.ifname, 'a', sizeof(m.ifname));	/* missing NUL */
	cr_expect_eq(parse(&m, sizeof(m)), -EPROTO);
	m = good_setup();
	memcpy(m.ifname, "tap0; flush rul", 16);	/* 15 + NUL */
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	memset(m.host_ip, '1', sizeof(m.host_ip));	/* missing NUL */
	cr_expect_eq(parse(&m, sizeof(m)), -EPROTO);
	m = good_setup();
	memset(m.guest_ip, '1', sizeof(m.guest_ip));
	cr_expect_eq(parse(&m, sizeof(m)), -EPROTO);
	m = good_setup();
	strcpy(m.guest_ip, "::1");
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	strcpy(m.host_ip, "1.2.3");
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	strcpy(m.guest_ip, m.host_ip);			/* same address */
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	m.proxy_port = 0;
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m.proxy_port = 65536;
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m = good_setup();
	m.quota_bytes = 0;
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
	m.quota_bytes = NF_QUOTA_MAX + 1;
	cr_expect_eq(parse(&m, sizeof(m)), -EINVAL);
}

Test(nf_request, nf_msg_size_is_exact)
{
	cr_expect_eq(nf_msg_size(NF_REQ_SETUP), 80);
	cr_expect_eq(nf_msg_size(NF_REQ_OPEN), 16);
	cr_expect_eq(nf_msg_size(NF_REP_HELLO), 24);
	cr_expect_eq(nf_msg_size(NF_REP_ERROR), 256);
	cr_expect_eq(nf_msg_size(NF_REP_COUNTERS), 64);
	cr_expect_eq(nf_msg_size(0), 0);
	cr_expect_eq(nf_msg_size(6), 0);
}

/* ---- the permit table ---- */

#define DENY 99

/* Expected next state for [state][request type], or DENY. */
static const int expect_next[4][6] = {
	[NF_STATE_NEW] = { DENY, NF_STATE_CLOSED, DENY, DENY, DENY, DENY },
	[NF_STATE_CLOSED] = { DENY, DENY, NF_STATE_OPEN, NF_STATE_CLOSED,
			      NF_STATE_CLOSED, NF_STATE_DONE },
	[NF_STATE_OPEN] = { DENY, DENY, DENY, NF_STATE_CLOSED, NF_STATE_OPEN,
			    NF_STATE_DONE },
	[NF_STATE_DONE] = { DENY, DENY, DENY, DENY, DENY, DENY },
};

Test(nf_permit, full_matrix)
{
	for (int st = NF_STATE_NEW; st <= NF_STATE_DONE; st++) {
		for (uint32_t t = 0; t < 6; t++) {
			enum nf_state next = NF_STATE_NEW;
			struct error err = { 0 };
			int r = nf_permit_check(st, t, &next, &err);

			if (expect_next[st][t] == DENY) {
				cr_expect_eq(r, -EPERM, "%s in %s permitted",
					     nf_request_name(t),
					     nf_state_name(st));
				cr_expect(err.msg[0]);
			} else {
				cr_expect_eq(r, 0, "%s in %s: %s",
					     nf_request_name(t),
					     nf_state_name(st), err.msg);
				cr_expect_eq((int)next, expect_next[st][t],
					     "%s from %s", nf_request_name(t),
					     nf_state_name(st));
			}
		}
		/* replies and garbage are never permitted as requests */
		const uint32_t other[] = { NF_REP_HELLO, NF_REP_OK, 1000,
					   UINT32_MAX };
		for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
			enum nf_state next;

			cr_expect_eq(nf_permit_check(st, other[i], &next,
						     NULL), -EPERM);
		}
	}
}

Test(nf_permit, a_session)
{
	const uint32_t seq[] = { NF_REQ_SETUP, NF_REQ_OPEN, NF_REQ_COUNTERS,
				 NF_REQ_CLOSE, NF_REQ_CLOSE, NF_REQ_OPEN,
				 NF_REQ_TEARDOWN };
	const enum nf_state after[] = { NF_STATE_CLOSED, NF_STATE_OPEN,
					NF_STATE_OPEN, NF_STATE_CLOSED,
					NF_STATE_CLOSED, NF_STATE_OPEN,
					NF_STATE_DONE };
	enum nf_state st = NF_STATE_NEW;

	for (size_t i = 0; i < ARRAY_SIZE(seq); i++) {
		cr_assert_eq(nf_permit_check(st, seq[i], &st, NULL), 0,
			     "step %zu", i);
		cr_assert_eq(st, after[i], "step %zu", i);
	}
	/* once: neither SETUP nor TEARDOWN can come again */
	cr_assert_eq(nf_permit_check(st, NF_REQ_SETUP, &st, NULL), -EPERM);
	cr_assert_eq(nf_permit_check(NF_STATE_OPEN, NF_REQ_SETUP, &st, NULL),
		     -EPERM);
}
