/* decode.c - pure decoders and encoders for agent payloads (see decode.h) */
#include "decode.h"

#include <string.h>

/* A path the agent will act on: non-empty and absolute. */
static int
abs_path_ok(const char *s)
{
	return s[0] == '/';
}

/* The payload must be consumed exactly: trailing bytes mean a confused peer. */
static int
cursor_done(const struct agent_cursor *c)
{
	return !c->bad && c->left == 0;
}

int
ga_exec_decode(const void *buf, size_t len, struct ga_exec *out,
	       const char **why)
{
	struct agent_cursor c;
	uint32_t i;

	memset(out, 0, sizeof(*out));
	agent_cursor_init(&c, buf, len);
	if (agent_cursor_u32(&c, &out->flags) ||
	    agent_cursor_u32(&c, &out->argc) ||
	    agent_cursor_u32(&c, &out->envc)) {
		*why = "EXEC payload too short";
		return -1;
	}
	if (out->flags & ~AGENT_EXEC_FLAGS) {
		*why = "EXEC has unknown flags";
		return -1;
	}
	/* Both counts are bounded before either is used as a loop limit. */
	if (out->argc == 0 || out->argc > AGENT_MAX_STRINGS ||
	    out->envc > AGENT_MAX_STRINGS - out->argc) {
		*why = "EXEC argc/envc out of range";
		return -1;
	}
	if (agent_cursor_str(&c, &out->cwd)) {
		*why = "EXEC cwd runs past the payload";
		return -1;
	}
	if (!abs_path_ok(out->cwd)) {
		*why = "EXEC cwd is not an absolute path";
		return -1;
	}
	for (i = 0; i < out->argc; i++) {
		if (agent_cursor_str(&c, &out->argv[i])) {
			*why = "EXEC argument runs past the payload";
			return -1;
		}
	}
	if (!out->argv[0][0]) {
		*why = "EXEC argv[0] is empty";
		return -1;
	}
	for (i = 0; i < out->envc; i++) {
		const char *e;

		if (agent_cursor_str(&c, &e)) {
			*why = "EXEC environment runs past the payload";
			return -1;
		}
		/* "=x" or "x" would give the child an unusable environment */
		if (e[0] == '=' || !strchr(e, '=')) {
			*why = "EXEC environment entry is not KEY=VALUE";
			return -1;
		}
		out->envv[i] = e;
	}
	if (!cursor_done(&c)) {
		*why = "EXEC payload has trailing bytes";
		return -1;
	}
	return 0;
}

int
ga_file_in_decode(const void *buf, size_t len, struct ga_file_in *out,
		  const char **why)
{
	struct agent_cursor c;

	memset(out, 0, sizeof(*out));
	agent_cursor_init(&c, buf, len);
	if (agent_cursor_str(&c, &out->dir)) {
		*why = "FILE_IN dir runs past the payload";
		return -1;
	}
	if (!abs_path_ok(out->dir)) {
		*why = "FILE_IN dir is not an absolute path";
		return -1;
	}
	if (!cursor_done(&c)) {
		*why = "FILE_IN payload has trailing bytes";
		return -1;
	}
	return 0;
}

int
ga_file_out_decode(const void *buf, size_t len, struct ga_file_out *out,
		   const char **why)
{
	struct agent_cursor c;
	uint32_t i;

	memset(out, 0, sizeof(*out));
	agent_cursor_init(&c, buf, len);
	if (agent_cursor_u32(&c, &out->n)) {
		*why = "FILE_OUT payload too short";
		return -1;
	}
	if (out->n > AGENT_MAX_STRINGS) {
		*why = "FILE_OUT glob count out of range";
		return -1;
	}
	if (agent_cursor_str(&c, &out->dir)) {
		*why = "FILE_OUT dir runs past the payload";
		return -1;
	}
	if (!abs_path_ok(out->dir)) {
		*why = "FILE_OUT dir is not an absolute path";
		return -1;
	}
	for (i = 0; i < out->n; i++) {
		if (agent_cursor_str(&c, &out->globs[i])) {
			*why = "FILE_OUT glob runs past the payload";
			return -1;
		}
		if (!out->globs[i][0]) {
			*why = "FILE_OUT glob is empty";
			return -1;
		}
	}
	if (!cursor_done(&c)) {
		*why = "FILE_OUT payload has trailing bytes";
		return -1;
	}
	return 0;
}

int
ga_signal_decode(const void *buf, size_t len, int *signo, const char **why)
{
	struct agent_cursor c;
	uint32_t v;

	agent_cursor_init(&c, buf, len);
	if (agent_cursor_u32(&c, &v) || !cursor_done(&c)) {
		*why = "SIGNAL payload is not one u32";
		return -1;
	}
	/* 0 would only probe; larger values are not signals. */
	if (v < 1 || v > GA_SIGNO_MAX) {
		*why = "SIGNAL number out of range";
		return -1;
	}
	*signo = (int)v;
	return 0;
}

int
ga_winsize_decode(const void *buf, size_t len, uint32_t *rows, uint32_t *cols,
		  const char **why)
{
	struct agent_cursor c;

	agent_cursor_init(&c, buf, len);
	if (agent_cursor_u32(&c, rows) || agent_cursor_u32(&c, cols) ||
	    !cursor_done(&c)) {
		*why = "WINSIZE payload is not two u32";
		return -1;
	}
	/* struct winsize holds unsigned shorts; 0 means "unknown" to ioctl */
	if (*rows < 1 || *rows > AGENT_WINSIZE_MAX || *cols < 1 ||
	    *cols > AGENT_WINSIZE_MAX) {
		*why = "WINSIZE rows/cols out of range (1..65535)";
		return -1;
	}
	return 0;
}

int
ga_identity_decode(const void *buf, size_t len, struct ga_identity *out,
		   const char **why)
{
	struct agent_cursor c;
	uint32_t lo, hi;
	size_t n;

	agent_cursor_init(&c, buf, len);
	if (agent_cursor_u32(&c, &lo) || agent_cursor_u32(&c, &hi) ||
	    agent_cursor_u32(&c, &out->nsec) ||
	    agent_cursor_u32(&c, &out->seed_len)) {
		*why = "IDENTITY payload too short";
		return -1;
	}
	out->sec = (uint64_t)hi << 32 | lo;
	/* time_t is signed: a clock past 2^62 s is nobody's */
	if (out->nsec >= 1000000000u || out->sec > (1ull << 62)) {
		*why = "IDENTITY time out of range";
		return -1;
	}
	if (out->seed_len < AGENT_SEED_MIN || out->seed_len > AGENT_SEED_MAX ||
	    c.left < out->seed_len) {
		*why = "IDENTITY seed length out of range";
		return -1;
	}
	out->seed = c.p;
	c.p += out->seed_len;
	c.left -= out->seed_len;
	if (agent_cursor_str(&c, &out->hostname) || !cursor_done(&c)) {
		*why = "IDENTITY hostname missing or trailing bytes";
		return -1;
	}
	n = strlen(out->hostname);
	if (n < 1 || n > 64 ||
	    strspn(out->hostname, "abcdefghijklmnopqrstuvwxyz"
				  "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != n) {
		*why = "IDENTITY hostname not 1..64 of [A-Za-z0-9.-]";
		return -1;
	}
	return 0;
}

/* Length of the KEY part of "KEY=VALUE" (the whole string if no '='). */
static size_t
env_key_len(const char *e)
{
	const char *eq = strchr(e, '=');

	return eq ? (size_t)(eq - e) : strlen(e);
}

static int
env_same_key(const char *a, const char *b)
{
	size_t n = env_key_len(a);

	return n == env_key_len(b) && !memcmp(a, b, n);
}

int
ga_env_merge(const char *const *base, size_t nbase, const char *const *extra,
	     size_t nextra, const char **out, size_t cap)
{
	size_t n = 0, i, j;

	for (i = 0; i < nbase + nextra; i++) {
		const char *e = i < nbase ? base[i] : extra[i - nbase];

		for (j = 0; j < n; j++) {
			if (env_same_key(out[j], e))
				break;
		}
		if (j == n) {
			if (n + 1 >= cap)
				return -1;
			n++;
		}
		out[j] = e;
	}
	if (n >= cap)
		return -1;
	out[n] = NULL;
	return (int)n;
}

/* Append s (truncated to fit, always NUL-terminated) at out + *off. */
static void
put_str(unsigned char *out, size_t cap, size_t *off, const char *s)
{
	size_t n, room;

	if (*off >= cap)
		return;
	room = cap - *off - 1;
	n = strlen(s);
	if (n > room)
		n = room;
	memcpy(out + *off, s, n);
	out[*off + n] = '\0';
	*off += n + 1;
}

size_t
ga_encode_u32_strs(unsigned char *out, size_t cap, uint32_t v, const char *a,
		   const char *b)
{
	size_t off = 4;

	if (cap < 4 + 1 + (b ? 1 : 0))
		return 0;
	agent_put_u32(out, v);
	/* keep one byte for b's NUL so a truncated a never swallows b */
	put_str(out, b ? cap - 1 : cap, &off, a);
	if (b)
		put_str(out, cap, &off, b);
	return off;
}
