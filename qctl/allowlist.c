/* allowlist.c - proxy allowlist: entries, host normalisation, matching,
 * address classification.  Pure: no resolver, no sockets. */
#include "allowlist.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static char
lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c;
}

/*
 * A canonical dotted quad: four decimal parts 0-255 without leading zeros.
 * Only this spelling of an IPv4 address is accepted anywhere: resolvers
 * and inet_aton() also read "127.1", "0x7f.1", "0177.0.0.1" and
 * "2130706433" as 127.0.0.1, which would let a request dodge an entry
 * that looks different.
 */
static bool
parse_ipv4_canonical(const char *s, size_t len, uint8_t out[4])
{
	const char *end = s + len;

	for (int part = 0; part < 4; part++) {
		unsigned int v = 0;
		const char *start;

		if (part) {
			if (s >= end || *s != '.')
				return false;
			s++;
		}
		start = s;
		while (s < end && is_digit(*s) && s - start < 3)
			v = v * 10 + (*s++ - '0');
		if (s == start || v > 255 || (s - start > 1 && *start == '0'))
			return false;
		out[part] = v;
	}
	return s == end;
}

/* Does the C library read these bytes as some IPv4 address? */
static bool
looks_numeric_ipv4(const char *s, size_t len)
{
	char tmp[ALLOW_HOST_MAX];
	struct in_addr a;

	if (len >= sizeof(tmp))
		return false;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	return inet_aton(tmp, &a) != 0;
}

/*
 * Check and lower-case a DNS host name into out (ALLOW_HOST_MAX bytes).
 * Letters, digits and inner hyphens only, labels of 1-63 bytes, at most
 * 253 bytes, no trailing dot, a top-level label that is not all digits.
 */
static int
normalize_name(const char *s, size_t len, char *out, struct error *err)
{
	size_t label = 0;
	bool digits_only = true;

	if (len == 0)
		return error_set(err, EINVAL, "empty host name");
	if (len > 253)
		return error_set(err, EINVAL,
				 "host name longer than 253 bytes");
	/* "host." and "host" are the same name to DNS but not to a string
	 * compare; refusing the dotted form keeps matching exact. */
	if (s[len - 1] == '.')
		return error_set(err, EINVAL, "host name has a trailing dot");
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? lower(s[i]) : '.';

		if (c == '.') {
			if (label == 0)
				return error_set(
					err, EINVAL,
					"host name has an empty label");
			if (out[i - 1] == '-')
				return error_set(
					err, EINVAL,
					"host name label ends with '-'");
			if (i == len)
				break;
			out[i] = c;
			label = 0;
			digits_only = true;
			continue;
		}
		if (!(is_digit(c) || (c >= 'a' && c <= 'z') || c == '-'))
			return error_set(err, EINVAL,
					 "host name has a character other "
					 "than letters, digits, '-' and '.'");
		if (label == 0 && c == '-')
			return error_set(err, EINVAL,
					 "host name label starts with '-'");
		if (++label > 63)
			return error_set(
				err, EINVAL,
				"host name label longer than 63 bytes");
		if (!is_digit(c))
			digits_only = false;
		out[i] = c;
	}
	out[len] = '\0';
	/* No top-level domain is numeric: such a name is an address in
	 * some other spelling ("127.0.0.01", "1.2.3.4.5"). */
	if (digits_only)
		return error_set(err, EINVAL,
				 "numeric host that is not a dotted quad");
	return 0;
}

/*
 * Parse "[v6]" (len bytes, brackets included) into addr and canonical
 * text "[...]" in out.  IPv4-mapped addresses are refused: they are IPv4
 * addresses in disguise, and an IPv4 address has exactly one spelling.
 */
static int
parse_ipv6_bracket(const char *s, size_t len, uint8_t addr[16], char *out,
		   struct error *err)
{
	char tmp[INET6_ADDRSTRLEN + 8];
	struct in6_addr a6;

	if (len < 4 || s[0] != '[' || s[len - 1] != ']' ||
	    len - 2 >= sizeof(tmp))
		return error_set(err, EINVAL, "bad IPv6 address");
	for (size_t i = 1; i < len - 1; i++)
		if (!(is_digit(s[i]) ||
		      (lower(s[i]) >= 'a' && lower(s[i]) <= 'f') ||
		      s[i] == ':' || s[i] == '.'))
			return error_set(err, EINVAL, "bad IPv6 address");
	memcpy(tmp, s + 1, len - 2);
	tmp[len - 2] = '\0';
	if (inet_pton(AF_INET6, tmp, &a6) != 1)
		return error_set(err, EINVAL, "bad IPv6 address");
	if (IN6_IS_ADDR_V4MAPPED(&a6))
		return error_set(err, EINVAL,
				 "IPv4-mapped IPv6 address (use the IPv4 "
				 "address)");
	memcpy(addr, &a6, 16);
	if (!inet_ntop(AF_INET6, &a6, tmp, sizeof(tmp)))
		return error_set(err, EINVAL, "bad IPv6 address");
	snprintf(out, ALLOW_HOST_MAX, "[%s]", tmp);
	return 0;
}

/* Normalise a request host; refuse every form that could mislead a match. */
int
allowlist_normalize_host(const char *raw, size_t len, struct host *out,
			 struct error *err)
{
	memset(out, 0, sizeof(*out));
	if (len == 0)
		return error_set(err, EINVAL, "empty host");
	if (raw[0] == '[') {
		out->kind = HOST_IPV6;
		return parse_ipv6_bracket(raw, len, out->addr, out->name, err);
	}
	if (parse_ipv4_canonical(raw, len, out->addr)) {
		out->kind = HOST_IPV4;
		memcpy(out->name, raw, len);
		out->name[len] = '\0';
		return 0;
	}
	/* "2130706433", "0x7f.1", "0177.0.0.1", "127.1": all 127.0.0.1 to
	 * the resolver; only the dotted quad may name an address. */
	if (looks_numeric_ipv4(raw, len))
		return error_set(err, EINVAL,
				 "IPv4 address not written as a dotted quad");
	out->kind = HOST_NAME;
	return normalize_name(raw, len, out->name, err);
}

static int
parse_port(const char *s, uint16_t *port)
{
	unsigned long v = 0;
	const char *p;

	for (p = s; is_digit(*p) && p - s < 5; p++)
		v = v * 10 + (*p - '0');
	if (p == s || *p || *s == '0' || v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

/* Parse one recipe entry; 0 or -EINVAL with the reason. */
int
allowlist_parse_entry(const char *s, struct allow_entry *out, struct error *err)
{
	struct error e2;
	const char *colon;
	size_t hlen;

	memset(out, 0, sizeof(*out));
	if (!s)
		return error_set(err, EINVAL, "missing allowlist entry");
	colon = strrchr(s, ':');
	if (!colon)
		return error_set(err, EINVAL,
				 "allowlist entry is not host:port");
	if (parse_port(colon + 1, &out->port) < 0)
		return error_set(err, EINVAL,
				 "allowlist entry port must be 1-65535");
	hlen = colon - s;
	if (hlen == 0)
		return error_set(err, EINVAL, "allowlist entry has no host");
	if (s[0] == '[') {
		out->kind = ALLOW_IPV6;
		if (parse_ipv6_bracket(s, hlen, out->addr, out->host, &e2) < 0)
			return error_set(err, EINVAL, "allowlist entry: %s",
					 e2.msg);
		return 0;
	}
	if (hlen > 2 && s[0] == '*' && s[1] == '.') {
		out->kind = ALLOW_SUFFIX;
		out->host[0] = '.';
		if (normalize_name(s + 2, hlen - 2, out->host + 1, &e2) < 0)
			return error_set(err, EINVAL, "allowlist entry: %s",
					 e2.msg);
		return 0;
	}
	if (parse_ipv4_canonical(s, hlen, out->addr)) {
		out->kind = ALLOW_IPV4;
		memcpy(out->host, s, hlen);
		out->host[hlen] = '\0';
		return 0;
	}
	if (looks_numeric_ipv4(s, hlen))
		return error_set(err, EINVAL,
				 "allowlist entry: IPv4 address not written "
				 "as a dotted quad");
	out->kind = ALLOW_NAME;
	if (normalize_name(s, hlen, out->host, &e2) < 0)
		return error_set(err, EINVAL, "allowlist entry: %s", e2.msg);
	return 0;
}

/* Validate one recipe entry; 0 or -EINVAL with the reason. */
int
allowlist_check_entry(const char *s, struct error *err)
{
	struct allow_entry e;

	return allowlist_parse_entry(s, &e, err);
}

/* Parse all entries; NULL with err naming the first bad one. */
struct allowlist *
allowlist_new(char *const *entries, size_t n, struct error *err)
{
	struct allowlist *al = xcalloc(1, sizeof(*al));

	al->e = xcalloc(n, sizeof(*al->e));
	for (size_t i = 0; i < n; i++) {
		if (allowlist_parse_entry(entries[i], &al->e[i], err) < 0) {
			error_prefix(err, "allow[%zu]", i);
			allowlist_free(al);
			return NULL;
		}
	}
	al->n = n;
	return al;
}

/* Free a list; NULL is ignored. */
void
allowlist_free(struct allowlist *al)
{
	if (!al)
		return;
	free(al->e);
	free(al->own);
	free(al);
}

static bool
suffix_matches(const char *name, const char *suffix)
{
	size_t n = strlen(name), s = strlen(suffix);

	/* suffix carries its leading dot: "a.example.com" ends with
	 * ".example.com", "badexample.com" and "example.com" do not. */
	return n > s && !memcmp(name + n - s, suffix, s);
}

/* Index of the first entry admitting host:port, or -1. */
int
allowlist_match(const struct allowlist *al, const struct host *h, uint16_t port)
{
	for (size_t i = 0; i < al->n; i++) {
		const struct allow_entry *e = &al->e[i];

		if (e->port != port)
			continue;
		switch (e->kind) {
		case ALLOW_NAME:
			if (h->kind == HOST_NAME && !strcmp(e->host, h->name))
				return i;
			break;
		case ALLOW_SUFFIX:
			if (h->kind == HOST_NAME &&
			    suffix_matches(h->name, e->host))
				return i;
			break;
		case ALLOW_IPV4:
			if (h->kind == HOST_IPV4 &&
			    !memcmp(e->addr, h->addr, 4))
				return i;
			break;
		case ALLOW_IPV6:
			if (h->kind == HOST_IPV6 &&
			    !memcmp(e->addr, h->addr, 16))
				return i;
			break;
		}
	}
	return -1;
}

/* ---- address classification --------------------------------------------- */

struct prefix {
	uint8_t bytes[16];
	uint8_t bits;
	enum addr_class cls;
};

/* First match wins: more specific prefixes come first. */
static const struct prefix v4_table[] = {
	{ { 255, 255, 255, 255 }, 32, ADDR_BROADCAST },
	{ { 0 }, 8, ADDR_UNSPECIFIED }, /* Linux connects 0/8 locally */
	{ { 127 }, 8, ADDR_LOOPBACK },
	{ { 169, 254 }, 16, ADDR_LINK_LOCAL }, /* 169.254.169.254 metadata */
	{ { 10 }, 8, ADDR_PRIVATE },
	{ { 172, 16 }, 12, ADDR_PRIVATE },
	{ { 192, 168 }, 16, ADDR_PRIVATE },
	{ { 100, 64 }, 10, ADDR_SHARED },
	{ { 192, 0, 0 }, 24, ADDR_RESERVED }, /* IETF protocol assignments */
	{ { 198, 18 }, 15, ADDR_RESERVED }, /* benchmarking, fake-IP DNS */
	{ { 224 }, 4, ADDR_MULTICAST },
	{ { 240 }, 4, ADDR_RESERVED },
};

static const struct prefix v6_table[] = {
	{ { 0 }, 128, ADDR_UNSPECIFIED },
	{ { [15] = 1 }, 128, ADDR_LOOPBACK },
	{ { [10] = 0xff, [11] = 0xff }, 96, ADDR_MAPPED },
	{ { 0 }, 96, ADDR_RESERVED }, /* IPv4-compatible, deprecated */
	{ { 0x00, 0x64, 0xff, 0x9b, 0x00, 0x01 }, 48, ADDR_PRIVATE },
	{ { 0x01 }, 64, ADDR_RESERVED }, /* 100::/64 discard */
	{ { 0xfe, 0x80 }, 10, ADDR_LINK_LOCAL },
	{ { 0xfe, 0xc0 }, 10, ADDR_PRIVATE }, /* site-local, deprecated */
	{ { 0xfc }, 7, ADDR_PRIVATE },
	{ { 0xff }, 8, ADDR_MULTICAST },
};

static bool
prefix_matches(const uint8_t *addr, const struct prefix *p)
{
	unsigned int full = p->bits / 8, rest = p->bits % 8;

	if (memcmp(addr, p->bytes, full))
		return false;
	if (rest) {
		uint8_t mask = 0xff << (8 - rest);

		return (addr[full] & mask) == (p->bytes[full] & mask);
	}
	return true;
}

static enum addr_class
classify_v4(const uint8_t *a)
{
	for (size_t i = 0; i < ARRAY_SIZE(v4_table); i++)
		if (prefix_matches(a, &v4_table[i]))
			return v4_table[i].cls;
	return ADDR_PUBLIC;
}

static bool
is_own(int family, const uint8_t *a, const struct allow_addr *own,
       size_t n_own)
{
	size_t len = family == AF_INET ? 4 : 16;

	for (size_t i = 0; i < n_own; i++)
		if (own[i].family == family && !memcmp(own[i].addr, a, len))
			return true;
	return false;
}

/* The table's class, or ADDR_HOST for a public address of this host: a
 * build must not reach the manager's own services on its public (or
 * unlisted test-net) addresses any more than on loopback. */
static enum addr_class
classify_v4_own(const uint8_t *a, const struct allow_addr *own, size_t n_own)
{
	enum addr_class c = classify_v4(a);

	if (c == ADDR_PUBLIC && is_own(AF_INET, a, own, n_own))
		return ADDR_HOST;
	return c;
}

/* Class of an address, this host's own addresses (own[]) included. */
enum addr_class
allowlist_classify_own(int family, const uint8_t *a,
		       const struct allow_addr *own, size_t n_own)
{
	static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b };
	static const uint8_t six2four[2] = { 0x20, 0x02 };

	if (family == AF_INET)
		return classify_v4_own(a, own, n_own);
	if (family != AF_INET6)
		return ADDR_RESERVED;
	for (size_t i = 0; i < ARRAY_SIZE(v6_table); i++)
		if (prefix_matches(a, &v6_table[i]))
			return v6_table[i].cls;
	/* NAT64 (64:ff9b::/96) and 6to4 (2002::/16) carry an IPv4 address
	 * that a translator or relay may reach for us: judge that one. */
	if (!memcmp(a, nat64, sizeof(nat64)))
		return classify_v4_own(a + 12, own, n_own);
	if (!memcmp(a, six2four, sizeof(six2four)))
		return classify_v4_own(a + 2, own, n_own);
	return is_own(AF_INET6, a, own, n_own) ? ADDR_HOST : ADDR_PUBLIC;
}

/* The network class of an IPv4 (4 bytes) or IPv6 (16) address. */
enum addr_class
allowlist_classify(int family, const uint8_t *a)
{
	return allowlist_classify_own(family, a, NULL, 0);
}

/* Copy this host's addresses into al. */
void
allowlist_set_own(struct allowlist *al, const struct allow_addr *own,
		  size_t n_own)
{
	free(al->own);
	al->own = NULL;
	al->n_own = 0;
	if (!n_own)
		return;
	al->own = xcalloc(n_own, sizeof(*own));
	memcpy(al->own, own, n_own * sizeof(*own));
	al->n_own = n_own;
}

/* Short English name of an address class. */
const char *
allowlist_class_name(enum addr_class c)
{
	switch (c) {
	case ADDR_PUBLIC:
		return "public";
	case ADDR_UNSPECIFIED:
		return "unspecified";
	case ADDR_LOOPBACK:
		return "loopback";
	case ADDR_HOST:
		return "an address of this host";
	case ADDR_LINK_LOCAL:
		return "link-local";
	case ADDR_PRIVATE:
		return "private";
	case ADDR_SHARED:
		return "shared (CGNAT)";
	case ADDR_MULTICAST:
		return "multicast";
	case ADDR_BROADCAST:
		return "broadcast";
	case ADDR_RESERVED:
		return "reserved";
	case ADDR_MAPPED:
		return "IPv4-mapped";
	}
	return "unknown";
}

/* Public, or listed as this very IP:port: may be connected to. */
bool
allowlist_addr_ok(const struct allowlist *al, int family, const uint8_t *addr,
		  uint16_t port, enum addr_class *cls)
{
	enum addr_class c =
		allowlist_classify_own(family, addr, al->own, al->n_own);

	if (cls)
		*cls = c;
	if (c == ADDR_PUBLIC)
		return true;
	/* A name that resolves into the host's own or internal networks
	 * is how a build would reach the metadata service, the manager's
	 * neighbours or local daemons: only an explicit IP:port entry for
	 * that very address opens it. */
	for (size_t i = 0; i < al->n; i++) {
		const struct allow_entry *e = &al->e[i];

		if (e->port != port)
			continue;
		if (family == AF_INET && e->kind == ALLOW_IPV4 &&
		    !memcmp(e->addr, addr, 4))
			return true;
		if (family == AF_INET6 && e->kind == ALLOW_IPV6 &&
		    !memcmp(e->addr, addr, 16))
			return true;
	}
	return false;
}
