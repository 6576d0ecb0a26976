/* test-sni.c - SNI from real ClientHello captures (tests/unit/data/sni),
 * truncated at every length, re-fragmented, and with broken length fields */
#include <criterion/criterion.h>
#include <libgen.h>
#include <stdio.h>
#include <string.h>

#include "sni.h"

struct capture {
	uint8_t *p;
	size_t len;
};

static struct capture
load(const char *name)
{
	char src[] = __FILE__, path[512];
	const char *dir = getenv("QCTL_TEST_DATA");
	struct capture c = { 0 };
	FILE *f;

	if (dir)
		snprintf(path, sizeof(path), "%s/sni/%s.bin", dir, name);
	else
		snprintf(path, sizeof(path), "%s/data/sni/%s.bin",
			 dirname(src), name);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "open %s (run from the top directory)", path);
	c.p = malloc(65536);
	c.len = fread(c.p, 1, 65536, f);
	fclose(f);
	cr_assert_gt(c.len, 50, "%s: too short", path);
	return c;
}

static const struct {
	const char *file;
	enum sni_result r;
	const char *name;
} captures[] = {
	{ "openssl-tls13-sni", SNI_FOUND, "example.com" },
	{ "openssl-tls12-sni", SNI_FOUND, "Mirror.Example.ORG" },
	{ "openssl-tls13-nosni", SNI_ABSENT, "" },
	{ "curl-tls13-sni", SNI_FOUND, "example.com" },
	{ "curl-ip-nosni", SNI_ABSENT, "" },
	{ "python-tls12-sni", SNI_FOUND, "deb.debian.org" },
	{ "openssl-tls13-longsni", SNI_FOUND,
	  "a123456789012345678901234567890123456789012345678901234567890."
	  "b123456789012345678901234567890123456789012345678901234567890."
	  "c123456789012345678901234567890123456789012345678901234567890."
	  "example.com" },
};

Test(sni, real_captures)
{
	for (size_t i = 0; i < sizeof(captures) / sizeof(captures[0]); i++) {
		struct capture c = load(captures[i].file);
		char out[256];
		enum sni_result r = sni_parse(c.p, c.len, out, sizeof(out));

		cr_expect_eq(r, captures[i].r, "%s: %s", captures[i].file,
			     sni_result_name(r));
		if (r == SNI_FOUND)
			cr_expect_str_eq(out, captures[i].name, "%s",
					 captures[i].file);
		free(c.p);
	}
}

Test(sni, truncated_at_every_length_needs_more)
{
	for (size_t i = 0; i < sizeof(captures) / sizeof(captures[0]); i++) {
		struct capture c = load(captures[i].file);

		for (size_t n = 0; n < c.len; n++) {
			/* a fresh heap copy of exactly n bytes, so that ASan
			 * catches any read past the end */
			uint8_t *t = malloc(n ? n : 1);
			char out[256];
			enum sni_result r;

			memcpy(t, c.p, n);
			r = sni_parse(t, n, out, sizeof(out));
			cr_expect_eq(r, SNI_NEED_MORE, "%s cut at %zu: %s",
				     captures[i].file, n, sni_result_name(r));
			free(t);
		}
		free(c.p);
	}
}

/* Re-split the handshake message of a capture into records of piece
 * bytes each (TLS allows a handshake message over several records). */
static struct capture
refragment(struct capture in, size_t piece)
{
	size_t body = (size_t)in.p[3] << 8 | in.p[4];
	const uint8_t *hs = in.p + 5;
	struct capture out = { malloc(body + 5 * (body / piece + 1)), 0 };

	cr_assert_leq(body + 5, in.len);
	for (size_t off = 0; off < body; off += piece) {
		size_t n = body - off < piece ? body - off : piece;

		out.p[out.len++] = 22;
		out.p[out.len++] = 3;
		out.p[out.len++] = 1;
		out.p[out.len++] = n >> 8;
		out.p[out.len++] = n & 0xff;
		memcpy(out.p + out.len, hs + off, n);
		out.len += n;
	}
	return out;
}

Test(sni, fragmented_across_records)
{
	static const size_t pieces[] = { 1, 3, 4, 5, 7, 64, 100, 200 };
	struct capture c = load("curl-tls13-sni");

	for (size_t k = 0; k < sizeof(pieces) / sizeof(pieces[0]); k++) {
		struct capture f = refragment(c, pieces[k]);
		char out[256];

		cr_expect_eq(sni_parse(f.p, f.len, out, sizeof(out)),
			     SNI_FOUND, "pieces of %zu", pieces[k]);
		cr_expect_str_eq(out, "example.com");
		for (size_t n = 0; n < f.len; n += 1 + n / 8)
			cr_expect_eq(sni_parse(f.p, n, out, sizeof(out)),
				     SNI_NEED_MORE, "pieces of %zu cut at %zu",
				     pieces[k], n);
		free(f.p);
	}
	free(c.p);
}

/* Offset of the server name text in a capture. */
static size_t
name_at(const struct capture *c, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i + n <= c->len; i++)
		if (!memcmp(c->p + i, name, n))
			return i;
	cr_assert_fail("name %s not in capture", name);
	return 0;
}

static enum sni_result
parse_mutant(const struct capture *c, size_t off, int delta)
{
	uint8_t *m = malloc(c->len);
	char out[256];
	enum sni_result r;

	memcpy(m, c->p, c->len);
	m[off] += delta;
	r = sni_parse(m, c->len, out, sizeof(out));
	free(m);
	return r;
}

Test(sni, malformed_length_fields)
{
	struct capture c = load("openssl-tls13-sni");
	size_t p = name_at(&c, "example.com");
	char out[256];

	/* p-2..p-1 name length, p-5..p-4 list length, p-7..p-6 extension
	 * length: each off by one either way is malformed */
	cr_expect_eq(parse_mutant(&c, p - 1, 1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p - 1, -1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p - 2, 1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p - 4, 1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p - 4, -1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p - 6, 1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p - 6, -1), SNI_MALFORMED);
	/* a NUL or other odd byte inside the name */
	cr_expect_eq(parse_mutant(&c, p + 7, -'.'), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, p + 3, '/' - 'm'), SNI_MALFORMED);
	/* record layer: type, version, length 0 and > 2^14 */
	cr_expect_eq(parse_mutant(&c, 0, 1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, 1, -1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, 3, 0x40), SNI_MALFORMED);
	/* handshake: not a client_hello; longer than the bound */
	cr_expect_eq(parse_mutant(&c, 5, 1), SNI_MALFORMED);
	cr_expect_eq(parse_mutant(&c, 6, 1), SNI_MALFORMED);
	/* message length one short: extensions overrun it */
	cr_expect_eq(parse_mutant(&c, 8, -1), SNI_MALFORMED);
	/* session id length > 32 */
	cr_expect_eq(parse_mutant(&c, 9 + 2 + 32, 40), SNI_MALFORMED);
	/* output buffer too small for the name */
	cr_expect_eq(sni_parse(c.p, c.len, out, 11), SNI_MALFORMED);
	cr_expect_eq(sni_parse(c.p, c.len, out, 12), SNI_FOUND);
	cr_expect_eq(sni_parse(c.p, c.len, out, 0), SNI_MALFORMED);
	free(c.p);
}

Test(sni, duplicate_server_name_refused)
{
	struct capture c = load("openssl-tls13-sni");
	size_t p = name_at(&c, "example.com"), ext = p - 9;
	size_t elen = 4 + ((size_t)c.p[ext + 2] << 8 | c.p[ext + 3]);
	uint8_t *m = malloc(c.len + elen);
	size_t hs_len, rec_len, exts_len, exts_off;
	char out[256];

	/* Insert a second copy of the server_name extension right after the
	 * first and fix up every enclosing length. */
	memcpy(m, c.p, ext + elen);
	memcpy(m + ext + elen, c.p + ext, elen);
	memcpy(m + ext + 2 * elen, c.p + ext + elen, c.len - ext - elen);
	rec_len = ((size_t)m[3] << 8 | m[4]) + elen;
	m[3] = rec_len >> 8;
	m[4] = rec_len;
	hs_len = ((size_t)m[6] << 16 | (size_t)m[7] << 8 | m[8]) + elen;
	m[6] = hs_len >> 16;
	m[7] = hs_len >> 8;
	m[8] = hs_len;
	/* extensions length: after version, random, session id, suites,
	 * compression */
	exts_off = 9 + 2 + 32;
	exts_off += 1 + m[exts_off];
	exts_off += 2 + ((size_t)m[exts_off] << 8 | m[exts_off + 1]);
	exts_off += 1 + m[exts_off];
	exts_len = ((size_t)m[exts_off] << 8 | m[exts_off + 1]) + elen;
	m[exts_off] = exts_len >> 8;
	m[exts_off + 1] = exts_len;
	cr_expect_eq(sni_parse(m, c.len + elen, out, sizeof(out)),
		     SNI_MALFORMED);
	/* the same surgery without the duplicate gives the name back */
	cr_expect_eq(sni_parse(c.p, c.len, out, sizeof(out)), SNI_FOUND);
	free(m);
	free(c.p);
}

Test(sni, not_tls_and_other_records)
{
	static const uint8_t http[] = "GET / HTTP/1.1\r\n\r\n";
	static const uint8_t alert[] = { 21, 3, 3, 0, 2, 2, 40 };
	static const uint8_t ccs_then_hs[] = { 20, 3, 3, 0, 1, 1, 22, 3, 1 };
	static const uint8_t sslv2[] = { 0x80, 0x2e, 0x01, 0x00, 0x02 };
	char out[256];

	cr_expect_eq(sni_parse(http, sizeof(http) - 1, out, sizeof(out)),
		     SNI_MALFORMED);
	cr_expect_eq(sni_parse(alert, sizeof(alert), out, sizeof(out)),
		     SNI_MALFORMED);
	cr_expect_eq(sni_parse(ccs_then_hs, sizeof(ccs_then_hs), out,
			       sizeof(out)),
		     SNI_MALFORMED);
	cr_expect_eq(sni_parse(sslv2, sizeof(sslv2), out, sizeof(out)),
		     SNI_MALFORMED);
	/* one byte of a handshake record: could still become one */
	cr_expect_eq(sni_parse((const uint8_t *)"\x16", 1, out, sizeof(out)),
		     SNI_NEED_MORE);
}

Test(sni, trailing_application_data_ignored)
{
	struct capture c = load("python-tls12-sni");
	uint8_t *m = malloc(c.len + 7);
	char out[256];

	/* bytes after a complete ClientHello do not matter here */
	memcpy(m, c.p, c.len);
	memcpy(m + c.len, "\x17\x03\x03\x00\x02hi", 7);
	cr_expect_eq(sni_parse(m, c.len + 7, out, sizeof(out)), SNI_FOUND);
	cr_expect_str_eq(out, "deb.debian.org");
	free(m);
	free(c.p);
}
