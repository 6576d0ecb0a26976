/*
 * test-agent-proto.c - the shared wire format (agent-proto.h) and the
 * agent's pure payload decoders (guestagent/decode.c).
 *
 * Build: gcc -D_GNU_SOURCE -Iqctl ... tests/unit/test-agent-proto.c
 *        guestagent/decode.c -lcriterion
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "agent-proto.h"
#include "../../guestagent/decode.h"

/* A payload under construction. */
struct pl {
	unsigned char b[AGENT_MAX_PAYLOAD + 64];
	size_t n;
};

static void
pl_u32(struct pl *p, uint32_t v)
{
	agent_put_u32(p->b + p->n, v);
	p->n += 4;
}

static void
pl_str(struct pl *p, const char *s)
{
	size_t n = strlen(s) + 1;

	memcpy(p->b + p->n, s, n);
	p->n += n;
}

/* An EXEC payload: flags, argc, envc, cwd, then argc + envc strings. */
static void
pl_exec(struct pl *p, uint32_t flags, uint32_t argc, uint32_t envc,
	const char *cwd, const char *const *strs)
{
	uint32_t i;

	p->n = 0;
	pl_u32(p, flags);
	pl_u32(p, argc);
	pl_u32(p, envc);
	pl_str(p, cwd);
	for (i = 0; i < argc + envc; i++)
		pl_str(p, strs[i]);
}

/* --- header ------------------------------------------------------------- */

Test(agent_hdr, round_trip)
{
	struct agent_hdr h = {.len = 1234,
			      .type = AGENT_FILE_DONE,
			      .flags = 0,
			      .id = 0xdeadbeef};
	struct agent_hdr g;
	unsigned char raw[AGENT_HDR_SIZE];

	agent_hdr_encode(raw, &h);
	cr_assert_eq(raw[0], 1234 & 0xff);
	cr_assert_eq(raw[1], 1234 >> 8);
	cr_assert_eq(raw[4], AGENT_FILE_DONE);
	cr_assert_eq(raw[8], 0xef);
	cr_assert_eq(raw[11], 0xde);
	cr_assert_eq(agent_hdr_decode(raw, &g), 0);
	cr_assert_eq(g.len, h.len);
	cr_assert_eq(g.type, h.type);
	cr_assert_eq(g.flags, 0);
	cr_assert_eq(g.id, h.id);
}

Test(agent_hdr, max_payload_accepted)
{
	struct agent_hdr h = {.len = AGENT_MAX_PAYLOAD, .type = AGENT_DATA};
	struct agent_hdr g;
	unsigned char raw[AGENT_HDR_SIZE];

	agent_hdr_encode(raw, &h);
	cr_assert_eq(agent_hdr_decode(raw, &g), 0);
	cr_assert_eq(g.len, AGENT_MAX_PAYLOAD);
}

Test(agent_hdr, oversized_length_rejected)
{
	unsigned char raw[AGENT_HDR_SIZE] = {0};
	struct agent_hdr g;

	agent_put_u32(raw, AGENT_MAX_PAYLOAD + 1);
	raw[4] = AGENT_DATA;
	cr_assert_eq(agent_hdr_decode(raw, &g), -1);
	agent_put_u32(raw, 0xffffffffu);
	cr_assert_eq(agent_hdr_decode(raw, &g), -1);
}

Test(agent_hdr, nonzero_flags_rejected)
{
	unsigned char raw[AGENT_HDR_SIZE] = {0};
	struct agent_hdr g;

	raw[4] = AGENT_PING;
	raw[6] = 1;
	cr_assert_eq(agent_hdr_decode(raw, &g), -1);
	raw[6] = 0;
	raw[7] = 0x80;
	cr_assert_eq(agent_hdr_decode(raw, &g), -1);
	raw[7] = 0;
	cr_assert_eq(agent_hdr_decode(raw, &g), 0);
}

/* --- cursor ------------------------------------------------------------- */

Test(agent_cursor, u32_past_end)
{
	unsigned char b[7] = {1, 0, 0, 0, 2, 0, 0};
	struct agent_cursor c;
	uint32_t v = 0;

	agent_cursor_init(&c, b, sizeof(b));
	cr_assert_eq(agent_cursor_u32(&c, &v), 0);
	cr_assert_eq(v, 1);
	cr_assert_eq(agent_cursor_u32(&c, &v), -1);
	cr_assert(c.bad);
	/* a poisoned cursor stays poisoned even where bytes remain */
	cr_assert_eq(c.left, 3);
	cr_assert_eq(agent_cursor_u32(&c, &v), -1);
}

Test(agent_cursor, string_past_end)
{
	const char b[] = {'a', 'b', 'c'}; /* no NUL */
	struct agent_cursor c;
	const char *s = NULL;

	agent_cursor_init(&c, b, sizeof(b));
	cr_assert_eq(agent_cursor_str(&c, &s), -1);
	cr_assert_null(s);
	cr_assert(c.bad);
}

Test(agent_cursor, strings_in_sequence)
{
	const char b[] = "one\0\0three"; /* "one", "", "three" + NUL */
	struct agent_cursor c;
	const char *s;

	agent_cursor_init(&c, b, sizeof(b));
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_str_eq(s, "one");
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_str_eq(s, "");
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_str_eq(s, "three");
	cr_assert_eq(c.left, 0);
	cr_assert_eq(agent_cursor_str(&c, &s), -1);
}

Test(agent_cursor, empty_payload)
{
	struct agent_cursor c;
	const char *s;
	uint32_t v;

	agent_cursor_init(&c, "", 0);
	cr_assert_eq(agent_cursor_str(&c, &s), -1);
	agent_cursor_init(&c, "", 0);
	cr_assert_eq(agent_cursor_u32(&c, &v), -1);
}

/* --- EXEC --------------------------------------------------------------- */

Test(exec_decode, valid_shell)
{
	static struct pl p;
	static struct ga_exec x;
	const char *strs[] = {"make -j2", "A=1", "B=x=y"};
	const char *why = NULL;

	pl_exec(&p, AGENT_EXEC_SHELL, 1, 2, "/src", strs);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), 0, "%s", why);
	cr_assert_eq(x.flags, AGENT_EXEC_SHELL);
	cr_assert_str_eq(x.cwd, "/src");
	cr_assert_eq(x.argc, 1);
	cr_assert_str_eq(x.argv[0], "make -j2");
	cr_assert_null(x.argv[1]);
	cr_assert_eq(x.envc, 2);
	cr_assert_str_eq(x.envv[0], "A=1");
	cr_assert_str_eq(x.envv[1], "B=x=y");
	cr_assert_null(x.envv[2]);
}

Test(exec_decode, counts_out_of_range)
{
	static struct pl p;
	static struct ga_exec x;
	const char *strs[] = {"true"};
	const char *why;

	pl_exec(&p, 0, 0, 0, "/", strs);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "argc 0");
	/* huge counts must fail on the count, not by walking the payload */
	p.n = 0;
	pl_u32(&p, 0);
	pl_u32(&p, 0xffffffffu);
	pl_u32(&p, 0xffffffffu);
	pl_str(&p, "/");
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1);
	cr_assert_str_eq(why, "EXEC argc/envc out of range");
	/* argc + envc overflowing u32 */
	p.n = 0;
	pl_u32(&p, 0);
	pl_u32(&p, 2);
	pl_u32(&p, 0xffffffffu);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1);
	/* exactly AGENT_MAX_STRINGS + 1 */
	p.n = 0;
	pl_u32(&p, 0);
	pl_u32(&p, 1);
	pl_u32(&p, AGENT_MAX_STRINGS);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1);
}

Test(exec_decode, max_strings_accepted)
{
	static struct pl p;
	static struct ga_exec x;
	const char *why = NULL;
	uint32_t i;

	p.n = 0;
	pl_u32(&p, 0);
	pl_u32(&p, 24);
	pl_u32(&p, AGENT_MAX_STRINGS - 24);
	pl_str(&p, "/");
	for (i = 0; i < 24; i++)
		pl_str(&p, "a");
	for (i = 0; i < AGENT_MAX_STRINGS - 24; i++)
		pl_str(&p, "K=V");
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), 0, "%s", why);
	cr_assert_eq(x.envc, AGENT_MAX_STRINGS - 24);
	cr_assert_null(x.envv[x.envc]);
}

Test(exec_decode, strings_past_end)
{
	static struct pl p;
	static struct ga_exec x;
	const char *strs[] = {"ls", "-l"};
	const char *why;
	size_t full;

	pl_exec(&p, 0, 2, 0, "/", strs);
	full = p.n;
	cr_assert_eq(ga_exec_decode(p.b, full, &x, &why), 0);
	/* every truncation must be rejected, including a dropped last NUL */
	for (p.n = 0; p.n < full; p.n++)
		cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1,
			     "accepted a payload cut to %zu bytes", p.n);
	/* argc larger than the strings present */
	p.n = 0;
	pl_exec(&p, 0, 2, 0, "/", strs);
	agent_put_u32(p.b + 4, 3);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1);
}

Test(exec_decode, trailing_bytes_rejected)
{
	static struct pl p;
	static struct ga_exec x;
	const char *strs[] = {"true"};
	const char *why;

	pl_exec(&p, 0, 1, 0, "/", strs);
	pl_str(&p, "extra");
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1);
	cr_assert_str_eq(why, "EXEC payload has trailing bytes");
}

/* Version 2: STDIN and PTY, alone or together; no other bit. */
Test(exec_decode, version_2_flags)
{
	static struct pl p;
	static struct ga_exec x;
	const char *ok[] = {"sh"};
	const uint32_t good[] = {
		0,
		AGENT_EXEC_SHELL,
		AGENT_EXEC_STDIN,
		AGENT_EXEC_PTY,
		AGENT_EXEC_STDIN | AGENT_EXEC_PTY,
		AGENT_EXEC_FLAGS,
	};
	const uint32_t bad[] = {
		0x8,	    0x10, 0x8000u, 0x80000000u, AGENT_EXEC_FLAGS | 0x8,
		0xffffffffu};
	const char *why;
	size_t i;

	cr_assert_eq(AGENT_EXEC_FLAGS, 0x7);
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		pl_exec(&p, good[i], 1, 0, "/", ok);
		cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), 0, "%#x",
			     good[i]);
		cr_assert_eq(x.flags, good[i]);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		pl_exec(&p, bad[i], 1, 0, "/", ok);
		why = NULL;
		cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "%#x",
			     bad[i]);
		cr_assert_str_eq(why, "EXEC has unknown flags");
	}
}

Test(exec_decode, bad_fields_rejected)
{
	static struct pl p;
	static struct ga_exec x;
	const char *ok[] = {"true"};
	const char *empty[] = {""};
	const char *noeq[] = {"true", "NOEQUALS"};
	const char *lead[] = {"true", "=x"};
	const char *why;

	pl_exec(&p, 0x8, 1, 0, "/", ok);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "flags");
	pl_exec(&p, 0, 1, 0, "src", ok);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "relative cwd");
	pl_exec(&p, 0, 1, 0, "", ok);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "empty cwd");
	pl_exec(&p, 0, 1, 0, "/", empty);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "empty argv0");
	pl_exec(&p, 0, 1, 1, "/", noeq);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "env no =");
	pl_exec(&p, 0, 1, 1, "/", lead);
	cr_assert_eq(ga_exec_decode(p.b, p.n, &x, &why), -1, "env =x");
}

/* Every byte string up to a few bytes long: no crash, no false accept. */
Test(exec_decode, short_garbage)
{
	static struct ga_exec x;
	unsigned char b[14];
	const char *why;
	unsigned i, n;

	srand(1);
	for (i = 0; i < 20000; i++) {
		n = (unsigned)rand() % sizeof(b);
		for (unsigned k = 0; k < n; k++)
			b[k] = (unsigned char)(rand() % 4);
		/* a payload under 15 bytes cannot hold 12 + "/" + "x" */
		cr_assert_eq(ga_exec_decode(b, n, &x, &why), -1);
	}
}

/* --- FILE_IN, FILE_OUT, SIGNAL -------------------------------------------- */

Test(file_in_decode, cases)
{
	struct ga_file_in fi;
	const char *why;

	cr_assert_eq(ga_file_in_decode("/src", 5, &fi, &why), 0);
	cr_assert_str_eq(fi.dir, "/src");
	cr_assert_eq(ga_file_in_decode("/src", 4, &fi, &why), -1);
	cr_assert_eq(ga_file_in_decode("src", 4, &fi, &why), -1);
	cr_assert_eq(ga_file_in_decode("/a\0/b", 6, &fi, &why), -1);
	cr_assert_eq(ga_file_in_decode("", 0, &fi, &why), -1);
}

Test(file_out_decode, valid)
{
	static struct pl p;
	static struct ga_file_out fo;
	const char *why = NULL;

	p.n = 0;
	pl_u32(&p, 2);
	pl_str(&p, "/src");
	pl_str(&p, "out/*.deb");
	pl_str(&p, "name with spaces");
	cr_assert_eq(ga_file_out_decode(p.b, p.n, &fo, &why), 0, "%s", why);
	cr_assert_str_eq(fo.dir, "/src");
	cr_assert_eq(fo.n, 2);
	cr_assert_str_eq(fo.globs[0], "out/*.deb");
	cr_assert_str_eq(fo.globs[1], "name with spaces");
	cr_assert_null(fo.globs[2]);
}

Test(file_out_decode, invalid)
{
	static struct pl p;
	static struct ga_file_out fo;
	const char *why;

	/* more globs than strings */
	p.n = 0;
	pl_u32(&p, 3);
	pl_str(&p, "/src");
	pl_str(&p, "a");
	cr_assert_eq(ga_file_out_decode(p.b, p.n, &fo, &why), -1);
	/* count beyond the limit */
	p.n = 0;
	pl_u32(&p, AGENT_MAX_STRINGS + 1);
	pl_str(&p, "/src");
	cr_assert_eq(ga_file_out_decode(p.b, p.n, &fo, &why), -1);
	/* empty glob */
	p.n = 0;
	pl_u32(&p, 1);
	pl_str(&p, "/src");
	pl_str(&p, "");
	cr_assert_eq(ga_file_out_decode(p.b, p.n, &fo, &why), -1);
	/* u32 cut short */
	cr_assert_eq(ga_file_out_decode(p.b, 3, &fo, &why), -1);
	/* zero globs is valid (nothing to send) */
	p.n = 0;
	pl_u32(&p, 0);
	pl_str(&p, "/src");
	cr_assert_eq(ga_file_out_decode(p.b, p.n, &fo, &why), 0);
}

Test(signal_decode, range)
{
	unsigned char b[5];
	const char *why;
	int sig = 0;

	agent_put_u32(b, 15);
	cr_assert_eq(ga_signal_decode(b, 4, &sig, &why), 0);
	cr_assert_eq(sig, 15);
	agent_put_u32(b, 64);
	cr_assert_eq(ga_signal_decode(b, 4, &sig, &why), 0);
	agent_put_u32(b, 0);
	cr_assert_eq(ga_signal_decode(b, 4, &sig, &why), -1);
	agent_put_u32(b, 65);
	cr_assert_eq(ga_signal_decode(b, 4, &sig, &why), -1);
	agent_put_u32(b, 0x80000009u);
	cr_assert_eq(ga_signal_decode(b, 4, &sig, &why), -1);
	agent_put_u32(b, 9);
	cr_assert_eq(ga_signal_decode(b, 3, &sig, &why), -1);
	cr_assert_eq(ga_signal_decode(b, 5, &sig, &why), -1);
}

Test(winsize_decode, range_and_length)
{
	unsigned char b[12];
	uint32_t rows = 0, cols = 0;
	const char *why;

	agent_put_u32(b, 24);
	agent_put_u32(b + 4, 80);
	cr_assert_eq(ga_winsize_decode(b, 8, &rows, &cols, &why), 0);
	cr_assert_eq(rows, 24);
	cr_assert_eq(cols, 80);
	agent_put_u32(b, 1);
	agent_put_u32(b + 4, 65535);
	cr_assert_eq(ga_winsize_decode(b, 8, &rows, &cols, &why), 0);
	cr_assert_eq(rows, 1);
	cr_assert_eq(cols, 65535);
	/* 0 is "unknown" to the kernel; above 65535 does not fit a short */
	agent_put_u32(b, 0);
	cr_assert_eq(ga_winsize_decode(b, 8, &rows, &cols, &why), -1);
	agent_put_u32(b, 65536);
	cr_assert_eq(ga_winsize_decode(b, 8, &rows, &cols, &why), -1);
	agent_put_u32(b, 24);
	agent_put_u32(b + 4, 0);
	cr_assert_eq(ga_winsize_decode(b, 8, &rows, &cols, &why), -1);
	agent_put_u32(b + 4, 0x80000050u);
	cr_assert_eq(ga_winsize_decode(b, 8, &rows, &cols, &why), -1);
	/* exactly two u32 */
	agent_put_u32(b + 4, 80);
	cr_assert_eq(ga_winsize_decode(b, 0, &rows, &cols, &why), -1);
	cr_assert_eq(ga_winsize_decode(b, 4, &rows, &cols, &why), -1);
	cr_assert_eq(ga_winsize_decode(b, 7, &rows, &cols, &why), -1);
	cr_assert_eq(ga_winsize_decode(b, 9, &rows, &cols, &why), -1);
	cr_assert_eq(ga_winsize_decode(b, 12, &rows, &cols, &why), -1);
	cr_assert_str_eq(why, "WINSIZE payload is not two u32");
}

/* --- environment merge and encoders -------------------------------------- */

Test(env_merge, override_and_dedupe)
{
	const char *base[] = {"PATH=/bin", "HOME=/root", "TERM=dumb"};
	const char *extra[] = {"TERM=xterm", "FOO=1", "FOO=2", "PATHX=y"};
	const char *out[16];
	int n;

	n = ga_env_merge(base, 3, extra, 4, out, 16);
	cr_assert_eq(n, 5);
	cr_assert_str_eq(out[0], "PATH=/bin");
	cr_assert_str_eq(out[1], "HOME=/root");
	cr_assert_str_eq(out[2], "TERM=xterm");
	cr_assert_str_eq(out[3], "FOO=2");
	cr_assert_str_eq(out[4], "PATHX=y");
	cr_assert_null(out[5]);
}

Test(env_merge, capacity)
{
	const char *base[] = {"A=1", "B=2"};
	const char *out[3];

	cr_assert_eq(ga_env_merge(base, 2, NULL, 0, out, 3), 2);
	cr_assert_eq(ga_env_merge(base, 2, NULL, 0, out, 2), -1);
}

Test(encode, hello_and_error)
{
	unsigned char b[64];
	struct agent_cursor c;
	const char *s;
	uint32_t v;
	size_t n;

	n = ga_encode_u32_strs(b, sizeof(b), AGENT_PROTO_VERSION, "0.1",
			       "Linux builder");
	agent_cursor_init(&c, b, n);
	cr_assert_eq(agent_cursor_u32(&c, &v), 0);
	cr_assert_eq(v, AGENT_PROTO_VERSION);
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_str_eq(s, "0.1");
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_str_eq(s, "Linux builder");
	cr_assert_eq(c.left, 0);

	/* truncation keeps both strings terminated and inside cap */
	n = ga_encode_u32_strs(b, 12, (uint32_t)-2, "abcdefghijkl", "xyz");
	cr_assert_leq(n, 12);
	agent_cursor_init(&c, b, n);
	cr_assert_eq(agent_cursor_u32(&c, &v), 0);
	cr_assert_eq((int32_t)v, -2);
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_eq(agent_cursor_str(&c, &s), 0);
	cr_assert_eq(c.left, 0);
}

static size_t
identity_payload(unsigned char *b, uint64_t sec, uint32_t nsec, uint32_t n,
		 const char *host)
{
	agent_put_u32(b, (uint32_t)sec);
	agent_put_u32(b + 4, (uint32_t)(sec >> 32));
	agent_put_u32(b + 8, nsec);
	agent_put_u32(b + 12, n);
	memset(b + 16, 0xa5, n);
	memcpy(b + 16 + n, host, strlen(host) + 1);
	return 16 + n + strlen(host) + 1;
}

Test(identity_decode, fields_ranges_and_length)
{
	unsigned char b[16 + AGENT_SEED_MAX + 100];
	struct ga_identity id;
	const char *why;
	size_t n;

	n = identity_payload(b, 0x1234567890ull, 999999999, AGENT_SEED_MIN,
			     "builder");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), 0);
	cr_assert_eq(id.sec, 0x1234567890ull);
	cr_assert_eq(id.nsec, 999999999);
	cr_assert_eq(id.seed_len, AGENT_SEED_MIN);
	cr_assert_eq(id.seed, b + 16);
	cr_assert_str_eq(id.hostname, "builder");
	n = identity_payload(b, 1, 0, AGENT_SEED_MAX, "a.b-c");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), 0);
	/* every prefix is short */
	for (size_t k = 0; k < n; k++)
		cr_assert_eq(ga_identity_decode(b, k, &id, &why), -1, "%zu", k);
	/* a trailing byte */
	b[n] = 'x';
	cr_assert_eq(ga_identity_decode(b, n + 1, &id, &why), -1);
	/* seed below 256 bits, above the cap; a second too many ns */
	n = identity_payload(b, 1, 0, AGENT_SEED_MIN - 1, "h");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	n = identity_payload(b, 1, 0, AGENT_SEED_MAX, "h");
	agent_put_u32(b + 12, AGENT_SEED_MAX + 1);
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	n = identity_payload(b, 1, 1000000000u, AGENT_SEED_MIN, "h");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	n = identity_payload(b, 1ull << 63, 0, AGENT_SEED_MIN, "h");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	/* hostnames: empty, 65 bytes, a slash, a space */
	n = identity_payload(b, 1, 0, AGENT_SEED_MIN, "");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	n = identity_payload(b, 1, 0, AGENT_SEED_MIN,
			     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			     "aaaaaaaaaaaa");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	n = identity_payload(b, 1, 0, AGENT_SEED_MIN, "a/b");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
	n = identity_payload(b, 1, 0, AGENT_SEED_MIN, "a b");
	cr_assert_eq(ga_identity_decode(b, n, &id, &why), -1);
}
