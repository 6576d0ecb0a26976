/* sni.c - find the server name in a TLS ClientHello */
#include "sni.h"

#include <stdbool.h>
#include <string.h>

/* A read cursor that never moves past its end. */
struct cur {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static uint32_t
take(struct cur *c, size_t n)
{
	uint32_t v = 0;

	if (c->bad || c->left < n) {
		c->bad = true;
		c->left = 0;
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		v = v << 8 | c->p[i];
	c->p += n;
	c->left -= n;
	return v;
}

static void
skip(struct cur *c, size_t n)
{
	if (c->bad || c->left < n) {
		c->bad = true;
		c->left = 0;
		return;
	}
	c->p += n;
	c->left -= n;
}

/* A sub-cursor over the next n bytes (a TLS vector body). */
static struct cur
sub(struct cur *c, size_t n)
{
	struct cur s = { c->p, n, false };

	if (c->bad || c->left < n) {
		c->bad = true;
		c->left = 0;
		s.bad = true;
		s.left = 0;
		return s;
	}
	skip(c, n);
	return s;
}

static bool
name_char_ok(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_';
}

/* server_name extension body: ServerNameList (RFC 6066, section 3). */
static enum sni_result
parse_server_name(struct cur ext, char *out, size_t outlen)
{
	struct cur list = sub(&ext, take(&ext, 2));
	bool have = false;

	/* The list must fill the extension exactly and not be empty. */
	if (ext.bad || ext.left || list.left == 0)
		return SNI_MALFORMED;
	while (list.left) {
		uint8_t type = take(&list, 1);
		struct cur name = sub(&list, take(&list, 2));

		if (list.bad)
			return SNI_MALFORMED;
		if (type != 0)
			continue; /* not host_name: none defined today */
		/* One host_name only: two would let a client show the
		 * proxy one name and the server another. */
		if (have || name.left == 0 || name.left >= outlen)
			return SNI_MALFORMED;
		/* An embedded NUL or odd byte could make the name compare
		 * differently here and at the server. */
		for (size_t i = 0; i < name.left; i++) {
			if (!name_char_ok(name.p[i]))
				return SNI_MALFORMED;
			out[i] = name.p[i];
		}
		out[name.left] = '\0';
		have = true;
	}
	return have ? SNI_FOUND : SNI_ABSENT;
}

/* ClientHello body (RFC 8446, section 4.1.2; TLS 1.0-1.2 alike). */
static enum sni_result
parse_hello(struct cur c, char *out, size_t outlen)
{
	struct cur exts;
	uint32_t n;
	enum sni_result r = SNI_ABSENT;
	bool seen = false;

	if (take(&c, 1) != 3) /* legacy_version major */
		return SNI_MALFORMED;
	skip(&c, 1 + 32); /* minor, random */
	n = take(&c, 1);  /* legacy_session_id */
	if (n > 32)
		return SNI_MALFORMED;
	skip(&c, n);
	n = take(&c, 2); /* cipher_suites */
	if (n < 2 || n % 2)
		return SNI_MALFORMED;
	skip(&c, n);
	n = take(&c, 1); /* legacy_compression_methods */
	if (n < 1)
		return SNI_MALFORMED;
	skip(&c, n);
	if (c.bad)
		return SNI_MALFORMED;
	if (c.left == 0)
		return SNI_ABSENT; /* no extensions at all (pre-TLS 1.2) */
	exts = sub(&c, take(&c, 2));
	/* Extensions must end exactly where the message ends. */
	if (c.bad || c.left)
		return SNI_MALFORMED;
	while (exts.left) {
		uint32_t type = take(&exts, 2);
		struct cur body = sub(&exts, take(&exts, 2));

		if (exts.bad)
			return SNI_MALFORMED;
		if (type != 0)
			continue;
		/* Duplicate extensions are forbidden (RFC 8446 4.2) and
		 * would again mean two names. */
		if (seen)
			return SNI_MALFORMED;
		seen = true;
		r = parse_server_name(body, out, outlen);
		if (r == SNI_MALFORMED)
			return r;
	}
	return r;
}

/* Extract the ClientHello host_name from the first bytes of a tunnel. */
enum sni_result
sni_parse(const uint8_t *buf, size_t len, char *out, size_t outlen)
{
	/* The handshake message reassembled from record fragments. */
	uint8_t hs[4 + SNI_HELLO_MAX];
	size_t have = 0, off = 0;

	if (!out || outlen == 0)
		return SNI_MALFORMED;
	out[0] = '\0';
	for (;;) {
		size_t rlen, avail, copy;

		if (len - off < 5) {
			/* Check what we can of a partial header early. */
			if (len > off && buf[off] != SNI_TLS_HANDSHAKE)
				return SNI_MALFORMED;
			if (len > off + 1 && buf[off + 1] != 3)
				return SNI_MALFORMED;
			return SNI_NEED_MORE;
		}
		/* Only handshake records may come before the ClientHello
		 * is complete: no alerts, no application data, nothing to
		 * hide bytes in. */
		if (buf[off] != SNI_TLS_HANDSHAKE || buf[off + 1] != 3)
			return SNI_MALFORMED;
		rlen = (size_t)buf[off + 3] << 8 | buf[off + 4];
		/* Empty handshake fragments are forbidden; 2^14 is the
		 * largest plaintext record. */
		if (rlen == 0 || rlen > 16384)
			return SNI_MALFORMED;
		off += 5;
		avail = len - off < rlen ? len - off : rlen;
		copy = avail < sizeof(hs) - have ? avail : sizeof(hs) - have;
		memcpy(hs + have, buf + off, copy);
		have += copy;
		if (have >= 4) {
			size_t mlen = (size_t)hs[1] << 16 | (size_t)hs[2] << 8 |
				      hs[3];

			if (hs[0] != 1) /* client_hello */
				return SNI_MALFORMED;
			if (mlen > SNI_HELLO_MAX)
				return SNI_MALFORMED;
			if (have >= 4 + mlen) {
				struct cur c = { hs + 4, mlen, false };

				return parse_hello(c, out, outlen);
			}
		}
		if (avail < rlen)
			return SNI_NEED_MORE; /* record still arriving */
		off += rlen;
	}
}

/* Name of a result, for messages and tests. */
const char *
sni_result_name(enum sni_result r)
{
	switch (r) {
	case SNI_FOUND:
		return "found";
	case SNI_ABSENT:
		return "absent";
	case SNI_NEED_MORE:
		return "need-more";
	case SNI_MALFORMED:
		return "malformed";
	}
	return "unknown";
}
