/* test-allowlist.c - allowlist entries, host normalisation, matching and
 * address classification, with the forms that fool naive matchers */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>

#include "allowlist.h"

/* Build a list from literals (copied: the API takes char *const *). */
static struct allowlist *
make_list(const char *const *entries, size_t n, struct error *err)
{
	char **copy = calloc(n + 1, sizeof(*copy));
	struct allowlist *al;

	for (size_t i = 0; i < n; i++)
		copy[i] = strdup(entries[i]);
	al = allowlist_new(copy, n, err);
	for (size_t i = 0; i < n; i++)
		free(copy[i]);
	free(copy);
	return al;
}

static struct allowlist *
make(const char *const *entries, size_t n)
{
	struct error err = { 0 };
	struct allowlist *al = make_list(entries, n, &err);

	cr_assert_not_null(al, "allowlist_new: %s", err.msg);
	return al;
}

/* Is "host" on port admitted by the list?  -2 if host is refused outright
 * by normalisation, -1 if not listed, else the entry index. */
static int
match(const struct allowlist *al, const char *host, uint16_t port)
{
	struct host h;
	struct error err = { 0 };

	if (allowlist_normalize_host(host, strlen(host), &h, &err) < 0)
		return -2;
	return allowlist_match(al, &h, port);
}

Test(allowlist, entries_parse)
{
	static const char *const good[] = {
		"example.com:443",     "EXAMPLE.com:80",  "*.example.com:443",
		"127.0.0.1:8080",      "10.0.0.1:1",	  "[::1]:8080",
		"[2001:db8::1]:65535", "a-b.c-d.e:8080", "xn--bcher-kva.de:80",
		"1.2.3.com:80",
	};
	static const char *const bad[] = {
		"example.com",	     "example.com:",	  "example.com:0",
		"example.com:65536", "example.com:080",	  ":80",
		"example.com.:80",   "*.:80",		  "*example.com:80",
		"*.*.example.com:80", "ex ample.com:80",  "exa_mple.com:80",
		"-example.com:80",   "example-.com:80",	  "a..b:80",
		"127.1:80",	     "2130706433:80",	  "0x7f.1:80",
		"0177.0.0.1:80",     "127.000.000.001:80", "127.0.0.01:80",
		"1.2.3.4.5:80",	     "256.1.1.1:80",
		"[::ffff:127.0.0.1]:80",
		"[::ffff:7f00:1]:80", "[fe80::1%eth0]:80", "[::1:80",
		"::1:80",	     "[example.com]:80",  "*.1.2.3:80",
	};
	struct allow_entry e;
	struct error err;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++)
		cr_expect_eq(allowlist_parse_entry(good[i], &e, &err), 0,
			     "%s: %s", good[i], err.msg);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_expect_lt(allowlist_check_entry(bad[i], &err), 0,
			     "%s accepted", bad[i]);
	cr_assert_eq(allowlist_parse_entry("*.Example.COM:443", &e, &err), 0);
	cr_expect_eq(e.kind, ALLOW_SUFFIX);
	cr_expect_str_eq(e.host, ".example.com");
	cr_expect_eq(e.port, 443);
	cr_assert_eq(allowlist_parse_entry("[0:0::1]:80", &e, &err), 0);
	cr_expect_eq(e.kind, ALLOW_IPV6);
	cr_expect_str_eq(e.host, "[::1]");
}

Test(allowlist, exact_names_case_insensitive)
{
	const char *const list[] = { "allowed.example:443",
				     "Deb.Debian.Org:80" };
	struct allowlist *al = make(list, 2);

	cr_expect_eq(match(al, "allowed.example", 443), 0);
	cr_expect_eq(match(al, "ALLOWED.Example", 443), 0);
	cr_expect_eq(match(al, "deb.debian.org", 80), 1);
	/* port must match too */
	cr_expect_eq(match(al, "allowed.example", 80), -1);
	cr_expect_eq(match(al, "allowed.example", 4443), -1);
	/* no substring or prefix surprises */
	cr_expect_eq(match(al, "allowed.example.evil.net", 443), -1);
	cr_expect_eq(match(al, "evil.net.allowed.example", 443), -1);
	cr_expect_eq(match(al, "xallowed.example", 443), -1);
	cr_expect_eq(match(al, "allowed.exampl", 443), -1);
	cr_expect_eq(match(al, "allowed", 443), -1);
	/* trailing dot: refused, not "normalised" into a match */
	cr_expect_eq(match(al, "allowed.example.", 443), -2);
	cr_expect_eq(match(al, "allowed.example..", 443), -2);
	allowlist_free(al);
}

Test(allowlist, suffix_entries)
{
	const char *const list[] = { "*.example.com:443" };
	struct allowlist *al = make(list, 1);

	cr_expect_eq(match(al, "a.example.com", 443), 0);
	cr_expect_eq(match(al, "a.b.example.com", 443), 0);
	cr_expect_eq(match(al, "A.EXAMPLE.COM", 443), 0);
	cr_expect_eq(match(al, "example.com", 443), -1);
	cr_expect_eq(match(al, "badexample.com", 443), -1);
	cr_expect_eq(match(al, "a.badexample.com", 443), -1);
	cr_expect_eq(match(al, "a.example.com.evil.net", 443), -1);
	cr_expect_eq(match(al, "a.example.com", 80), -1);
	cr_expect_eq(match(al, "a.example.com.", 443), -2);
	cr_expect_eq(match(al, ".example.com", 443), -2);
	allowlist_free(al);
}

Test(allowlist, numeric_ipv4_forms_refused)
{
	const char *const list[] = { "127.0.0.1:8080", "10.1.2.3:80" };
	struct allowlist *al = make(list, 2);
	static const char *const forms[] = {
		"2130706433", "0x7f000001", "0x7f.1",	  "0x7F.0.0.1",
		"0177.0.0.1", "127.1",	    "127.0.1",	  "127.0.0.01",
		"127.000.000.001", "017700000001", "127.0.0.1.", "1.2.3.4.5",
		"127.0.0.256", "167838211", "012.1.2.3",
	};

	cr_expect_eq(match(al, "127.0.0.1", 8080), 0);
	cr_expect_eq(match(al, "10.1.2.3", 80), 1);
	cr_expect_eq(match(al, "127.0.0.1", 8081), -1);
	cr_expect_eq(match(al, "127.0.0.2", 8080), -1);
	for (size_t i = 0; i < ARRAY_SIZE(forms); i++)
		cr_expect_eq(match(al, forms[i], 8080), -2, "%s not refused",
			     forms[i]);
	/* a name for a listed address is not the address */
	cr_expect_eq(match(al, "localhost", 8080), -1);
	allowlist_free(al);
}

Test(allowlist, ipv6_literals)
{
	const char *const list[] = { "[::1]:8080", "[2001:db8::5]:443",
			       "127.0.0.1:8080" };
	struct allowlist *al = make(list, 3);

	cr_expect_eq(match(al, "[::1]", 8080), 0);
	cr_expect_eq(match(al, "[0:0:0:0:0:0:0:1]", 8080), 0);
	cr_expect_eq(match(al, "[2001:DB8::5]", 443), 1);
	cr_expect_eq(match(al, "[::1]", 443), -1);
	/* IPv4-mapped: 127.0.0.1 in disguise, refused even though the IPv4
	 * address is listed */
	cr_expect_eq(match(al, "[::ffff:127.0.0.1]", 8080), -2);
	cr_expect_eq(match(al, "[::FFFF:7f00:1]", 8080), -2);
	cr_expect_eq(match(al, "[fe80::1%25lo]", 8080), -2);
	cr_expect_eq(match(al, "[::1", 8080), -2);
	cr_expect_eq(match(al, "[]", 8080), -2);
	cr_expect_eq(match(al, "[example.com]", 8080), -2);
	allowlist_free(al);
}

Test(allowlist, normalised_text)
{
	struct host h;
	struct error err;

	cr_assert_eq(allowlist_normalize_host("Mirror.Example.ORG", 18, &h,
					      &err), 0);
	cr_expect_eq(h.kind, HOST_NAME);
	cr_expect_str_eq(h.name, "mirror.example.org");
	cr_assert_eq(allowlist_normalize_host("[2001:0DB8:0::1]", 16, &h,
					      &err), 0);
	cr_expect_eq(h.kind, HOST_IPV6);
	cr_expect_str_eq(h.name, "[2001:db8::1]");
	cr_expect_lt(allowlist_normalize_host("a\0b.com", 7, &h, &err), 0);
	cr_expect_lt(allowlist_normalize_host("a b.com", 7, &h, &err), 0);
	cr_expect_lt(allowlist_normalize_host("a%2eb.com", 9, &h, &err), 0);
	cr_expect_lt(allowlist_normalize_host("", 0, &h, &err), 0);
	{
		char longname[300];

		memset(longname, 'a', sizeof(longname));
		cr_expect_lt(allowlist_normalize_host(longname, 254, &h,
						      &err), 0);
		longname[63] = '.';
		cr_expect_lt(allowlist_normalize_host(longname, 130, &h,
						      &err), 0,
			     "label of 64 accepted");
	}
}

static enum addr_class
cls(const char *text)
{
	uint8_t a[16];

	if (strchr(text, ':')) {
		cr_assert_eq(inet_pton(AF_INET6, text, a), 1, "%s", text);
		return allowlist_classify(AF_INET6, a);
	}
	cr_assert_eq(inet_pton(AF_INET, text, a), 1, "%s", text);
	return allowlist_classify(AF_INET, a);
}

Test(allowlist, address_classes)
{
	static const struct {
		const char *addr;
		enum addr_class c;
	} t[] = {
		{ "93.184.216.34", ADDR_PUBLIC },
		{ "8.8.8.8", ADDR_PUBLIC },
		{ "172.15.255.255", ADDR_PUBLIC },
		{ "172.32.0.0", ADDR_PUBLIC },
		{ "100.63.255.255", ADDR_PUBLIC },
		{ "169.253.0.1", ADDR_PUBLIC },
		{ "0.0.0.0", ADDR_UNSPECIFIED },
		{ "0.1.2.3", ADDR_UNSPECIFIED },
		{ "127.0.0.1", ADDR_LOOPBACK },
		{ "127.255.255.254", ADDR_LOOPBACK },
		{ "169.254.169.254", ADDR_LINK_LOCAL },
		{ "169.254.77.1", ADDR_LINK_LOCAL },
		{ "10.0.0.1", ADDR_PRIVATE },
		{ "172.16.0.1", ADDR_PRIVATE },
		{ "172.31.255.255", ADDR_PRIVATE },
		{ "192.168.1.1", ADDR_PRIVATE },
		{ "100.64.0.1", ADDR_SHARED },
		{ "100.127.255.255", ADDR_SHARED },
		{ "224.0.0.1", ADDR_MULTICAST },
		{ "239.255.255.250", ADDR_MULTICAST },
		{ "255.255.255.255", ADDR_BROADCAST },
		{ "240.0.0.1", ADDR_RESERVED },
		{ "2606:2800:220:1::1", ADDR_PUBLIC },
		{ "::", ADDR_UNSPECIFIED },
		{ "::1", ADDR_LOOPBACK },
		{ "fe80::1", ADDR_LINK_LOCAL },
		{ "febf::1", ADDR_LINK_LOCAL },
		{ "fc00::1", ADDR_PRIVATE },
		{ "fd12:3456::1", ADDR_PRIVATE },
		{ "fec0::1", ADDR_PRIVATE },
		{ "ff02::1", ADDR_MULTICAST },
		{ "::ffff:127.0.0.1", ADDR_MAPPED },
		{ "::ffff:8.8.8.8", ADDR_MAPPED },
		{ "::127.0.0.1", ADDR_RESERVED },
		{ "64:ff9b::7f00:1", ADDR_LOOPBACK },
		{ "64:ff9b::a9fe:a9fe", ADDR_LINK_LOCAL },
		{ "64:ff9b::808:808", ADDR_PUBLIC },
		{ "2002:7f00:1::1", ADDR_LOOPBACK },
		{ "2002:c0a8:101::1", ADDR_PRIVATE },
		{ "2002:808:808::1", ADDR_PUBLIC },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		cr_expect_eq(cls(t[i].addr), t[i].c, "%s: %s, want %s",
			     t[i].addr, allowlist_class_name(cls(t[i].addr)),
			     allowlist_class_name(t[i].c));
}

Test(allowlist, resolved_addresses_need_listing)
{
	const char *const list[] = { "mirror.test:8080", "127.0.0.1:8080",
			       "[::1]:9090" };
	struct allowlist *al = make(list, 3);
	uint8_t lo[4] = { 127, 0, 0, 1 }, lo2[4] = { 127, 0, 0, 2 };
	uint8_t meta[4] = { 169, 254, 169, 254 }, pub[4] = { 8, 8, 8, 8 };
	uint8_t v6lo[16] = { [15] = 1 }, mapped[16] = { [10] = 0xff,
							[11] = 0xff, 127, 0,
							0, 1 };
	enum addr_class c;

	/* public: fine for any allowed name */
	cr_expect(allowlist_addr_ok(al, AF_INET, pub, 8080, &c));
	cr_expect_eq(c, ADDR_PUBLIC);
	/* loopback: only the very IP:port listed */
	cr_expect(allowlist_addr_ok(al, AF_INET, lo, 8080, &c));
	cr_expect_eq(c, ADDR_LOOPBACK);
	cr_expect_not(allowlist_addr_ok(al, AF_INET, lo, 8081, NULL));
	cr_expect_not(allowlist_addr_ok(al, AF_INET, lo2, 8080, NULL));
	cr_expect_not(allowlist_addr_ok(al, AF_INET, meta, 8080, &c));
	cr_expect_eq(c, ADDR_LINK_LOCAL);
	cr_expect(allowlist_addr_ok(al, AF_INET6, v6lo, 9090, NULL));
	cr_expect_not(allowlist_addr_ok(al, AF_INET6, v6lo, 8080, NULL));
	/* mapped never, even though 127.0.0.1:8080 is listed */
	cr_expect_not(allowlist_addr_ok(al, AF_INET6, mapped, 8080, &c));
	cr_expect_eq(c, ADDR_MAPPED);
	allowlist_free(al);
}

static struct allow_addr
own_addr(const char *text)
{
	struct allow_addr a = { 0 };

	a.family = strchr(text, ':') ? AF_INET6 : AF_INET;
	cr_assert_eq(inet_pton(a.family, text, a.addr), 1, "%s", text);
	return a;
}

static enum addr_class
cls_own(const char *text, const struct allow_addr *own, size_t n)
{
	struct allow_addr a = own_addr(text);

	return allowlist_classify_own(a.family, a.addr, own, n);
}

/* The host's own addresses are classified like loopback: refused. */
Test(allowlist, host_addresses_classified)
{
	const struct allow_addr own[] = {
		own_addr("192.0.2.1"),	     own_addr("203.0.113.9"),
		own_addr("2001:db8::5"),     own_addr("10.1.2.3"),
		own_addr("127.0.0.1"),	     own_addr("fe80::1"),
	};
	static const struct {
		const char *addr;
		enum addr_class c;
	} t[] = {
		{ "192.0.2.1", ADDR_HOST },
		{ "203.0.113.9", ADDR_HOST },
		{ "2001:db8::5", ADDR_HOST },
		/* the embedded IPv4 address is judged */
		{ "64:ff9b::c000:201", ADDR_HOST },
		{ "2002:c000:201::1", ADDR_HOST },
		/* neighbours and other spellings are not the host */
		{ "192.0.2.2", ADDR_PUBLIC },
		{ "203.0.113.8", ADDR_PUBLIC },
		{ "2001:db8::6", ADDR_PUBLIC },
		{ "8.8.8.8", ADDR_PUBLIC },
		/* a class of the table stays what it was */
		{ "10.1.2.3", ADDR_PRIVATE },
		{ "127.0.0.1", ADDR_LOOPBACK },
		{ "fe80::1", ADDR_LINK_LOCAL },
		{ "::ffff:192.0.2.1", ADDR_MAPPED },
	};

	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		enum addr_class c = cls_own(t[i].addr, own, ARRAY_SIZE(own));

		cr_expect_eq(c, t[i].c, "%s: %s, want %s", t[i].addr,
			     allowlist_class_name(c),
			     allowlist_class_name(t[i].c));
	}
	/* without own addresses, the table alone */
	cr_expect_eq(cls_own("192.0.2.1", NULL, 0), ADDR_PUBLIC);
	cr_expect_eq(cls_own("192.0.2.1", own, 0), ADDR_PUBLIC);
	/* IPv4 bytes do not match an IPv6 entry that starts with them */
	cr_expect_eq(cls_own("c000:201::", own, ARRAY_SIZE(own)),
		     ADDR_PUBLIC);
	cr_expect_str_eq(allowlist_class_name(ADDR_HOST),
			 "an address of this host");
}

/* A name resolving to the host's own address needs that IP:port listed. */
Test(allowlist, host_addresses_need_listing)
{
	const char *const list[] = { "self.test:8090", "self.test:8091",
				     "192.0.2.1:8091", "[2001:db8::5]:8091" };
	struct allowlist *al = make(list, 4);
	const struct allow_addr own[] = { own_addr("192.0.2.1"),
					  own_addr("2001:db8::5") };
	struct allow_addr v4 = own_addr("192.0.2.1"), v6 = own_addr(
							      "2001:db8::5");
	struct allow_addr other = own_addr("192.0.2.7");
	enum addr_class c;

	/* before the host's addresses are known: public */
	cr_expect(allowlist_addr_ok(al, AF_INET, v4.addr, 8090, &c));
	allowlist_set_own(al, own, ARRAY_SIZE(own));
	cr_expect_not(allowlist_addr_ok(al, AF_INET, v4.addr, 8090, &c));
	cr_expect_eq(c, ADDR_HOST);
	cr_expect(allowlist_addr_ok(al, AF_INET, v4.addr, 8091, &c));
	cr_expect_not(allowlist_addr_ok(al, AF_INET6, v6.addr, 8090, NULL));
	cr_expect(allowlist_addr_ok(al, AF_INET6, v6.addr, 8091, NULL));
	cr_expect(allowlist_addr_ok(al, AF_INET, other.addr, 8090, &c));
	cr_expect_eq(c, ADDR_PUBLIC);
	/* a copy: replacing it forgets the old set */
	allowlist_set_own(al, NULL, 0);
	cr_expect(allowlist_addr_ok(al, AF_INET, v4.addr, 8090, NULL));
	allowlist_free(al);
}

Test(allowlist, new_reports_bad_entry)
{
	const char *const list[] = { "ok.example:443", "127.1:80" };
	struct error err = { 0 };

	cr_expect_null(make_list(list, 2, &err));
	cr_expect(strstr(err.msg, "allow[1]"), "%s", err.msg);
	cr_expect(strstr(err.msg, "dotted quad"), "%s", err.msg);
}
