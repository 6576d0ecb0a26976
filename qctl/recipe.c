/* recipe.c - build recipes: YAML/JSON to a validated struct recipe */
#include "recipe.h"

#include "allowlist.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "json-util.h"

/*
 * A recipe may come from a client of the control socket, so everything here
 * treats its input as hostile: the document is bounded in size and depth,
 * YAML aliases are refused (no "billion laughs"), every scalar is checked
 * for NUL bytes, and user text is escaped before it reaches a message.
 */

#define MAX_DEPTH 16 /* the schema needs 3 levels */
#define PATH_CAP 256 /* key path in messages, truncated */
#define QUOTE_MAX 64 /* bytes of user text shown in a message */

#define KiB (UINT64_C(1) << 10)
#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)

/* ---- messages ---------------------------------------------------------- */

struct qbuf {
	char s[QUOTE_MAX * 4 + 4];
};

/* Escape untrusted text for a message (no quotes added), truncating it. */
static const char *
quote(struct qbuf *q, const char *s)
{
	size_t i, o = 0;

	for (i = 0; s[i] && i < QUOTE_MAX; i++) {
		unsigned char c = s[i];

		if (c == '"' || c == '\\') {
			q->s[o++] = '\\';
			q->s[o++] = c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += snprintf(q->s + o, sizeof(q->s) - o, "\\x%02x", c);
		} else {
			q->s[o++] = c;
		}
	}
	if (s[i]) {
		memcpy(q->s + o, "...", 3);
		o += 3;
	}
	q->s[o] = '\0';
	return q->s;
}

static bool
is_path_word(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!(s[i] == '_' || s[i] == '-' ||
		      (s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return i > 0 && i <= QUOTE_MAX;
}

/* Append ".key", "[\"odd key\"]" or "[index]" to a key path, truncating. */
static void
path_push(char *path, size_t cap, size_t *len, const char *key, size_t index)
{
	struct qbuf q;
	int n;

	if (*len >= cap - 1)
		return;
	if (!key)
		n = snprintf(path + *len, cap - *len, "[%zu]", index);
	else if (is_path_word(key))
		n = snprintf(path + *len, cap - *len, "%s%s", *len ? "." : "",
			     key);
	else
		n = snprintf(path + *len, cap - *len, "[\"%s\"]",
			     quote(&q, key));
	if (n < 0 || (size_t)n >= cap - *len)
		*len = cap - 1;
	else
		*len += n;
}

/* "name:line: path: message", leaving out an unknown line or empty path. */
static int __attribute__((format(printf, 6, 0)))
located_error(struct error *err, int code, const char *name, int line,
	      const char *path, const char *fmt, va_list ap)
{
	char msg[sizeof(err->msg)];
	char at[32] = "";

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0)
		snprintf(at, sizeof(at), ":%d", line);
	if (path && *path)
		return error_set(err, code, "%s%s: %s: %s", name, at, path,
				 msg);
	return error_set(err, code, "%s%s: %s", name, at, msg);
}

static void
fmt_size(char *buf, size_t n, uint64_t v)
{
	static const char units[] = "KMGT";
	int i;

	for (i = 3; i >= 0; i--) {
		uint64_t unit = UINT64_C(1) << (10 * (i + 1));

		if (v && v % unit == 0) {
			snprintf(buf, n, "%" PRIu64 "%c", v / unit, units[i]);
			return;
		}
	}
	snprintf(buf, n, "%" PRIu64, v);
}

/* ---- sizes and durations ----------------------------------------------- */

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* Parse a size with an optional binary unit into bytes. */
int
parse_size(const char *s, uint64_t *out, struct error *err)
{
	static const struct {
		const char *suffix;
		unsigned int shift;
	} units[] = {
		{"", 0},    {"k", 10},
		{"K", 10},  {"KiB", 10},
		{"M", 20},  {"MiB", 20},
		{"G", 30},  {"GiB", 30},
		{"T", 40},  {"TiB", 40},
	};
	struct qbuf q;
	uint64_t v = 0;
	const char *p;
	size_t i;

	if (!s)
		return error_set(err, EINVAL, "bad size: missing");
	for (p = s; is_digit(*p); p++) {
		unsigned int d = *p - '0';

		if (v > (UINT64_MAX - d) / 10)
			return error_set(err, ERANGE,
					 "bad size \"%s\": too large",
					 quote(&q, s));
		v = v * 10 + d;
	}
	if (p == s)
		return error_set(err, EINVAL,
				 "bad size \"%s\": expected a number",
				 quote(&q, s));
	if (*p == '.' && is_digit(p[1]))
		return error_set(err, EINVAL, "bad size \"%s\": no fractions",
				 quote(&q, s));
	for (i = 0; i < ARRAY_SIZE(units); i++)
		if (!strcmp(p, units[i].suffix))
			break;
	if (i == ARRAY_SIZE(units))
		return error_set(
			err, EINVAL,
			"bad size \"%s\": unknown unit (use K, M, G, T)",
			quote(&q, s));
	if (units[i].shift && v > UINT64_MAX >> units[i].shift)
		return error_set(err, ERANGE, "bad size \"%s\": too large",
				 quote(&q, s));
	*out = v << units[i].shift;
	return 0;
}

/* Parse a duration ("1h30m", "500ms", bare seconds) into milliseconds. */
int
parse_duration(const char *s, int64_t *out_ms, struct error *err)
{
	/* Largest unit first; each may appear once, in this order. */
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {
		{"d", 86400000}, {"h", 3600000}, {"ms", 1},
		{"m", 60000},	 {"s", 1000},
	};
	static const int rank[] = {0, 1, 4, 2, 3};
	struct qbuf q;
	int64_t total = 0;
	const char *p = s;
	int last = -1;

	if (!s)
		return error_set(err, EINVAL, "bad duration: missing");
	if (!*p)
		return error_set(err, EINVAL, "bad duration \"\": empty");
	while (*p) {
		int64_t v = 0;
		const char *start = p;
		size_t i, ulen = 0;

		for (; is_digit(*p); p++) {
			int d = *p - '0';

			if (v > (INT64_MAX - d) / 10)
				goto too_large;
			v = v * 10 + d;
		}
		if (p == start)
			return error_set(
				err, EINVAL,
				"bad duration \"%s\": expected a number",
				quote(&q, s));
		if (!*p && start == s) {
			/* A bare integer means seconds. */
			if (v > INT64_MAX / 1000)
				goto too_large;
			*out_ms = v * 1000;
			return 0;
		}
		for (i = 0; i < ARRAY_SIZE(units); i++) {
			ulen = strlen(units[i].suffix);
			if (!strncmp(p, units[i].suffix, ulen))
				break;
		}
		if (i == ARRAY_SIZE(units)) {
			if (*p == '.' && is_digit(p[1]))
				return error_set(
					err, EINVAL,
					"bad duration \"%s\": no fractions",
					quote(&q, s));
			return error_set(
				err, EINVAL,
				"bad duration \"%s\": %s (use ms, s, m, h, d)",
				quote(&q, s),
				*p ? "unknown unit" : "missing unit");
		}
		if (rank[i] <= last)
			return error_set(
				err, EINVAL,
				"bad duration \"%s\": units out of order",
				quote(&q, s));
		last = rank[i];
		if (v > (INT64_MAX - total) / units[i].ms)
			goto too_large;
		total += v * units[i].ms;
		p += ulen;
	}
	*out_ms = total;
	return 0;

too_large:
	return error_set(err, ERANGE, "bad duration \"%s\": too large",
			 quote(&q, s));
}

/* ---- allowlist entries ------------------------------------------------- */

static bool
is_ipv4_strict(const char *s)
{
	int part;

	for (part = 0; part < 4; part++) {
		unsigned int v = 0;
		int n = 0;

		if (part && *s++ != '.')
			return false;
		for (; is_digit(*s) && n < 4; s++, n++)
			v = v * 10 + (*s - '0');
		if (n == 0 || n > 3 || v > 255 || (n > 1 && s[-n] == '0'))
			return false;
	}
	return *s == '\0';
}

static bool
is_dns_name(const char *s)
{
	size_t total = strlen(s), len = 0;
	bool digits_only = true;
	const char *p;

	if (total == 0 || total > 253)
		return false;
	for (p = s;; p++) {
		if (*p == '.' || !*p) {
			if (len == 0 || len > 63 || p[-1] == '-')
				return false;
			if (!*p)
				break;
			len = 0;
			digits_only = true;
			continue;
		}
		if (len == 0 && *p == '-')
			return false;
		if (!is_digit(*p))
			digits_only = false;
		if (!(*p == '-' || is_digit(*p) || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z')))
			return false;
		len++;
	}
	/* No top-level domain is numeric; "1.2.3" is an address typo. */
	return !digits_only;
}

int
recipe_check_ssh_key(const char *line, struct error *err)
{
	static const char *const types[] = {
		"ssh-ed25519",
		"ssh-rsa",
		"ecdsa-sha2-nistp256",
		"ecdsa-sha2-nistp384",
		"ecdsa-sha2-nistp521",
		"sk-ssh-ed25519@openssh.com",
		"sk-ecdsa-sha2-nistp256@openssh.com",
	};
	static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t len = strlen(line), tlen, klen, i;
	const char *key;

	if (len > RECIPE_SSH_KEY_MAX)
		return error_set(err, EINVAL, "a public key of %zu bytes "
				 "(at most %d)", len, RECIPE_SSH_KEY_MAX);
	tlen = strcspn(line, " ");
	for (i = 0; i < ARRAY_SIZE(types); i++)
		if (strlen(types[i]) == tlen && !strncmp(line, types[i], tlen))
			break;
	if (i == ARRAY_SIZE(types) || line[tlen] != ' ')
		return error_set(err, EINVAL, "not a public key: expected "
				 "\"TYPE BASE64 [COMMENT]\" with TYPE one of "
				 "ssh-ed25519, ssh-rsa, ecdsa-sha2-*, sk-*");
	key = line + tlen + 1;
	klen = strspn(key, b64);
	while (klen < strlen(key) && key[klen] == '=' && klen % 4)
		klen++;
	if (klen < 16 || klen % 4 || (key[klen] && key[klen] != ' '))
		return error_set(err, EINVAL, "not a public key: the key after "
				 "the type must be base64");
	for (i = tlen + 1 + klen; line[i]; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			return error_set(err, EINVAL, "a control character in "
					 "the public key's comment");
	return 0;
}

/* Check an allowlist entry: host:port, *.suffix:port, IPv4:port, [IPv6]:port */
int
recipe_check_allow(const char *e, struct error *err)
{
	char host[256];
	struct qbuf q;
	const char *colon, *p;
	unsigned long port = 0;
	size_t hlen;

	if (!e)
		return error_set(err, EINVAL, "bad allow entry: missing");
	colon = strrchr(e, ':');
	if (!colon)
		return error_set(err, EINVAL,
				 "bad allow entry \"%s\": expected host:port",
				 quote(&q, e));
	for (p = colon + 1; is_digit(*p) && p - colon <= 5; p++)
		port = port * 10 + (*p - '0');
	if (p == colon + 1 || *p || colon[1] == '0' || port > 65535)
		return error_set(err, EINVAL,
				 "bad allow entry \"%s\": port must be 1-65535",
				 quote(&q, e));
	hlen = colon - e;
	if (hlen == 0)
		return error_set(err, EINVAL,
				 "bad allow entry \"%s\": missing host",
				 quote(&q, e));
	if (e[0] == '[') {
		struct in6_addr a6;

		if (hlen < 3 || e[hlen - 1] != ']' || hlen - 2 >= sizeof(host))
			goto bad_host;
		memcpy(host, e + 1, hlen - 2);
		host[hlen - 2] = '\0';
		if (inet_pton(AF_INET6, host, &a6) != 1)
			return error_set(
				err, EINVAL,
				"bad allow entry \"%s\": bad IPv6 address",
				quote(&q, e));
		return 0;
	}
	if (hlen >= sizeof(host))
		goto bad_host;
	memcpy(host, e, hlen);
	host[hlen] = '\0';
	if (!strncmp(host, "*.", 2)) {
		if (is_dns_name(host + 2))
			return 0;
		return error_set(err, EINVAL,
				 "bad allow entry \"%s\": bad domain suffix",
				 quote(&q, e));
	}
	if (is_ipv4_strict(host))
		return 0;
	{
		struct in_addr a4;

		/*
		 * The resolver reads "127.1" or "0x7f000001" as 127.0.0.1;
		 * an entry must mean what it looks like, so only dotted quads.
		 */
		if (inet_aton(host, &a4))
			return error_set(err, EINVAL,
					 "bad allow entry \"%s\": IPv4 must be "
					 "a dotted quad",
					 quote(&q, e));
	}
	if (is_dns_name(host))
		return 0;
bad_host:
	return error_set(err, EINVAL, "bad allow entry \"%s\": bad host name",
			 quote(&q, e));
}

/* ---- line numbers ------------------------------------------------------ */

/*
 * YAML line of every node, keyed by (parent container, key or index):
 * jansson shares true/false/null, so the node pointer alone is ambiguous.
 * Looked up only when an error is reported.
 */
struct line_ent {
	const json_t *parent;
	const char *key; /* owned by parent; NULL for an array element */
	size_t index;
	int key_line;
	int line;
};

struct lines {
	struct line_ent *v;
	size_t n, cap;
};

static void
lines_add(struct lines *t, const json_t *parent, const char *key, size_t index,
	  int key_line, int line)
{
	if (t->n == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 64;
		t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
	}
	t->v[t->n++] = (struct line_ent){parent, key, index, key_line, line};
}

static const struct line_ent *
lines_find(const struct lines *t, const json_t *parent, const char *key,
	   size_t index)
{
	size_t i;

	if (!t || !parent)
		return NULL;
	for (i = 0; i < t->n; i++) {
		const struct line_ent *e = &t->v[i];

		if (e->parent != parent)
			continue;
		if (key ? e->key && !strcmp(e->key, key)
			: !e->key && e->index == index)
			return e;
	}
	return NULL;
}

static void
lines_free(struct lines *t)
{
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}

/* ---- YAML to JSON ------------------------------------------------------ */

struct frame {
	json_t *node; /* object or array, owned by its parent */
	char *key;    /* object: the pending key, NULL while a key is due */
	int key_line;
	size_t plen; /* length of this node's key path */
};

struct builder {
	const char *name;
	struct error *err;
	struct lines *lines;
	json_t *root;
	struct frame stack[MAX_DEPTH];
	size_t depth;
	bool seen_doc;
	char path[PATH_CAP];
	size_t plen;
};

static struct frame *
top(struct builder *b)
{
	return b->depth ? &b->stack[b->depth - 1] : NULL;
}

/* Key path of the node that comes next (the pending key's value, etc). */
static size_t
next_path(struct builder *b, char *path)
{
	struct frame *f = top(b);
	size_t len = b->plen;

	memcpy(path, b->path, len + 1);
	if (f && json_is_array(f->node))
		path_push(path, PATH_CAP, &len, NULL, json_array_size(f->node));
	else if (f && f->key)
		path_push(path, PATH_CAP, &len, f->key, 0);
	return len;
}

static int __attribute__((format(printf, 3, 4)))
build_error(struct builder *b, int line, const char *fmt, ...)
{
	char path[PATH_CAP];
	va_list ap;
	int r;

	next_path(b, path);
	va_start(ap, fmt);
	r = located_error(b->err, EINVAL, b->name, line, path, fmt, ap);
	va_end(ap);
	return r;
}

/* Attach v (reference stolen) at the current position. */
static int
build_add(struct builder *b, json_t *v, int line)
{
	struct frame *f = top(b);
	const char *stored;
	void *it;

	if (!v)
		return error_set(b->err, ENOMEM, "%s: out of memory", b->name);
	if (!f) {
		b->root = v;
		return 0;
	}
	if (json_is_array(f->node)) {
		size_t idx = json_array_size(f->node);

		if (json_array_append_new(f->node, v) < 0)
			return error_set(b->err, ENOMEM, "%s: out of memory",
					 b->name);
		lines_add(b->lines, f->node, NULL, idx, line, line);
		return 0;
	}
	if (!f->key) {
		/* v is a key. */
		if (!json_is_string(v)) {
			json_decref(v);
			return build_error(b, line,
					   "mapping keys must be strings");
		}
		if (json_object_get(f->node, json_string_value(v))) {
			/* Pending key set only so the message names it. */
			f->key = xstrdup(json_string_value(v));
			json_decref(v);
			return build_error(b, line, "duplicate key");
		}
		f->key = xstrdup(json_string_value(v));
		f->key_line = line;
		json_decref(v);
		return 0;
	}
	if (json_object_set_new(f->node, f->key, v) < 0)
		return error_set(b->err, ENOMEM, "%s: out of memory", b->name);
	it = json_object_iter_at(f->node, f->key);
	stored = json_object_iter_key(it);
	lines_add(b->lines, f->node, stored, 0, f->key_line, line);
	free(f->key);
	f->key = NULL;
	return 0;
}

enum plain_kind { PLAIN_STR, PLAIN_NULL, PLAIN_BOOL, PLAIN_INT };

static enum plain_kind
plain_kind(const char *s)
{
	static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
	static const char *const bools[] = {"true",  "True",  "TRUE",
					    "false", "False", "FALSE"};
	const char *p = s;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(nulls); i++)
		if (!strcmp(s, nulls[i]))
			return PLAIN_NULL;
	for (i = 0; i < ARRAY_SIZE(bools); i++)
		if (!strcmp(s, bools[i]))
			return PLAIN_BOOL;
	/* Decimal only: "010" or "0x10" stay strings, never octal/hex. */
	if (*p == '-' || *p == '+')
		p++;
	if (*p == '0')
		return p[1] ? PLAIN_STR : PLAIN_INT;
	if (!is_digit(*p))
		return PLAIN_STR;
	while (is_digit(*p))
		p++;
	return *p ? PLAIN_STR : PLAIN_INT;
}

static int
build_scalar(struct builder *b, const yaml_event_t *ev, int line)
{
	const char *s = (const char *)ev->data.scalar.value;
	const char *tag = (const char *)ev->data.scalar.tag;
	size_t len = ev->data.scalar.length;
	enum plain_kind kind;
	struct qbuf q;

	if (memchr(s, '\0', len))
		return build_error(b, line, "NUL byte in a string");
	if (!tag) {
		bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;

		kind = plain ? plain_kind(s) : PLAIN_STR;
	} else if (!strcmp(tag, "!") || !strcmp(tag, YAML_STR_TAG)) {
		kind = PLAIN_STR;
	} else if (!strcmp(tag, YAML_INT_TAG) || !strcmp(tag, YAML_BOOL_TAG) ||
		   !strcmp(tag, YAML_NULL_TAG)) {
		static const char *const tags[] = {
			[PLAIN_INT] = YAML_INT_TAG,
			[PLAIN_BOOL] = YAML_BOOL_TAG,
			[PLAIN_NULL] = YAML_NULL_TAG,
		};

		kind = plain_kind(s);
		if (kind == PLAIN_STR || strcmp(tags[kind], tag))
			return build_error(b, line,
					   "\"%s\" does not match its tag",
					   quote(&q, s));
	} else {
		return build_error(b, line, "unsupported tag \"%s\"",
				   quote(&q, tag));
	}

	switch (kind) {
	case PLAIN_NULL:
		return build_add(b, json_null(), line);
	case PLAIN_BOOL:
		return build_add(b, json_boolean(s[0] == 't' || s[0] == 'T'),
				 line);
	case PLAIN_INT: {
		long long v;
		char *end;

		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno || *end)
			return build_error(b, line, "integer %s out of range",
					   quote(&q, s));
		return build_add(b, json_integer(v), line);
	}
	case PLAIN_STR:
		break;
	}
	{
		json_t *v = json_stringn(s, len);

		if (!v)
			return build_error(b, line, "invalid UTF-8");
		return build_add(b, v, line);
	}
}

static int
build_start(struct builder *b, json_t *node, const char *tag,
	    const char *want_tag, int line)
{
	struct frame *f = top(b);
	struct qbuf q;
	char path[PATH_CAP];
	size_t plen;
	int r;

	if (tag && strcmp(tag, "!") && strcmp(tag, want_tag)) {
		json_decref(node);
		return build_error(b, line, "unsupported tag \"%s\"",
				   quote(&q, tag));
	}
	if (f && json_is_object(f->node) && !f->key) {
		json_decref(node);
		return build_error(b, line, "mapping keys must be strings");
	}
	if (b->depth == MAX_DEPTH) {
		json_decref(node);
		return build_error(b, line, "nested deeper than %d levels",
				   MAX_DEPTH);
	}
	plen = next_path(b, path);
	r = build_add(b, node, line);
	if (r < 0)
		return r;
	b->stack[b->depth++] = (struct frame){.node = node, .plen = plen};
	memcpy(b->path, path, plen + 1);
	b->plen = plen;
	return 0;
}

static void
build_end(struct builder *b)
{
	struct frame *f = top(b);

	if (!f)
		return;
	free(f->key);
	b->depth--;
	b->plen = b->depth ? b->stack[b->depth - 1].plen : 0;
	b->path[b->plen] = '\0';
}

static int
build_event(struct builder *b, const yaml_event_t *ev)
{
	int line = (int)ev->start_mark.line + 1;
	const yaml_char_t *anchor = NULL;

	switch (ev->type) {
	case YAML_SCALAR_EVENT:
		anchor = ev->data.scalar.anchor;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = ev->data.sequence_start.anchor;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = ev->data.mapping_start.anchor;
		break;
	default:
		break;
	}
	/* Aliases could expand exponentially; a recipe never needs them. */
	if (anchor)
		return build_error(b, line, "anchors are not supported");

	switch (ev->type) {
	case YAML_DOCUMENT_START_EVENT:
		if (b->seen_doc)
			return error_set(
				b->err, EINVAL,
				"%s:%d: only one YAML document allowed",
				b->name, line);
		b->seen_doc = true;
		return 0;
	case YAML_ALIAS_EVENT:
		return build_error(b, line, "aliases are not supported");
	case YAML_SCALAR_EVENT:
		return build_scalar(b, ev, line);
	case YAML_SEQUENCE_START_EVENT:
		return build_start(b, json_array(),
				   (const char *)ev->data.sequence_start.tag,
				   YAML_SEQ_TAG, line);
	case YAML_MAPPING_START_EVENT:
		return build_start(b, json_object(),
				   (const char *)ev->data.mapping_start.tag,
				   YAML_MAP_TAG, line);
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		build_end(b);
		return 0;
	default:
		return 0;
	}
}

static int
yaml_syntax_error(const yaml_parser_t *p, const char *buf, const char *name,
		  struct error *err)
{
	const char *problem = p->problem ? p->problem : "syntax error";
	size_t line = p->problem_mark.line + 1;

	if (p->error == YAML_MEMORY_ERROR)
		return error_set(err, ENOMEM, "%s: out of memory", name);
	if (p->error == YAML_READER_ERROR) {
		/* The reader reports a byte offset, not a line. */
		size_t i;

		line = 1;
		for (i = 0; i < p->problem_offset; i++)
			line += buf[i] == '\n';
		return error_set(err, EINVAL,
				 "%s:%zu: YAML syntax error: %s (byte 0x%02x)",
				 name, line, problem,
				 (unsigned int)p->problem_value);
	}
	if (p->context)
		return error_set(err, EINVAL,
				 "%s:%zu: YAML syntax error: %s (%s started at "
				 "line %zu)",
				 name, line, problem, p->context,
				 (size_t)p->context_mark.line + 1);
	return error_set(err, EINVAL, "%s:%zu: YAML syntax error: %s", name,
			 line, problem);
}

/*
 * Parse YAML into a JSON tree and a line table.  Returns 0, -EINVAL (etc)
 * with err filled, and sets *syntax when libyaml itself rejected the text.
 */
static int
yaml_to_json(const char *buf, size_t len, const char *name, const char *what,
	     json_t **out, struct lines *lines, bool *syntax,
	     struct error *err)
{
	struct builder b = {.name = name, .err = err, .lines = lines};
	yaml_parser_t parser;
	int r = 0;

	*syntax = false;
	if (!yaml_parser_initialize(&parser))
		return error_set(err, ENOMEM, "%s: out of memory", name);
	yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
	for (;;) {
		yaml_event_t ev;
		yaml_event_type_t type;

		if (!yaml_parser_parse(&parser, &ev)) {
			*syntax = true;
			r = yaml_syntax_error(&parser, buf, name, err);
			break;
		}
		r = build_event(&b, &ev);
		type = ev.type;
		yaml_event_delete(&ev);
		if (r < 0 || type == YAML_STREAM_END_EVENT)
			break;
	}
	yaml_parser_delete(&parser);
	while (b.depth)
		build_end(&b);
	if (r < 0) {
		json_decref(b.root);
		lines_free(lines);
		return r;
	}
	if (!b.root)
		return error_set(err, EINVAL, "%s: empty %s", name, what);
	*out = b.root;
	return 0;
}

/* ---- validation -------------------------------------------------------- */

struct vctx {
	const char *name;
	const char *basedir;
	unsigned flags;		   /* RECIPE_* */
	const struct lines *lines; /* NULL: no line numbers (JSON) */
	struct error *err;
	json_t *step_names; /* set of names seen, to find duplicates fast */
	/* The node being checked, as (parent, key or index), and its path. */
	const json_t *parent;
	const char *key;
	size_t index;
	char path[PATH_CAP];
	size_t plen;
};

struct vsave {
	const json_t *parent;
	const char *key;
	size_t index;
	size_t plen;
};

static void
v_enter(struct vctx *vc, const json_t *parent, const char *key, size_t index,
	struct vsave *s)
{
	*s = (struct vsave){vc->parent, vc->key, vc->index, vc->plen};
	vc->parent = parent;
	vc->key = key;
	vc->index = index;
	path_push(vc->path, sizeof(vc->path), &vc->plen, key, index);
}

static void
v_leave(struct vctx *vc, const struct vsave *s)
{
	vc->parent = s->parent;
	vc->key = s->key;
	vc->index = s->index;
	vc->plen = s->plen;
	vc->path[vc->plen] = '\0';
}

/* Error at the current node: its key's line if at_key, else its value's. */
static int __attribute__((format(printf, 4, 5)))
v_fail(struct vctx *vc, int code, bool at_key, const char *fmt, ...)
{
	const struct line_ent *e;
	va_list ap;
	int line = 0, r;

	e = lines_find(vc->lines, vc->parent, vc->key, vc->index);
	if (e)
		line = at_key ? e->key_line : e->line;
	va_start(ap, fmt);
	r = located_error(vc->err, code, vc->name, line, vc->path, fmt, ap);
	va_end(ap);
	return r;
}

#define v_error(vc, ...) v_fail(vc, EINVAL, false, __VA_ARGS__)

/* "a mapping", "a list", ...: for "expected X, got Y" (recipe.h) */
const char *
json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "a mapping";
	case JSON_ARRAY:
		return "a list";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		break;
	}
	return "null";
}

static int
v_string(struct vctx *vc, const json_t *v, const char **out)
{
	if (!json_is_string(v))
		return v_error(vc, "expected a string, got %s", json_type_name(v));
	/* Strings become C strings; an embedded NUL would cut them short. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return v_error(vc, "NUL byte in a string");
	if (!json_string_length(v))
		return v_error(vc, "must not be empty");
	*out = json_string_value(v);
	return 0;
}

struct field {
	const char *key;
	int (*fn)(struct vctx *vc, json_t *v, void *obj, const struct field *f);
	bool required;
	size_t off;	  /* for the generic handlers */
	int64_t min, max; /* for the generic handlers */
};

/* Check a mapping against a table of fields, in document order. */
static int
v_mapping(struct vctx *vc, json_t *v, const struct field *fields,
	  size_t n_fields, void *obj)
{
	const char *key;
	json_t *val;
	size_t i;

	if (!json_is_object(v))
		return v_error(vc, "expected a mapping, got %s", json_type_name(v));
	json_object_foreach(v, key, val) {
		struct vsave s;
		int r;

		for (i = 0; i < n_fields; i++)
			if (!strcmp(key, fields[i].key))
				break;
		v_enter(vc, v, key, 0, &s);
		if (i == n_fields)
			r = v_fail(vc, EINVAL, true, "unknown key");
		else
			r = fields[i].fn(vc, val, obj, &fields[i]);
		v_leave(vc, &s);
		if (r < 0)
			return r;
	}
	for (i = 0; i < n_fields; i++)
		if (fields[i].required && !json_object_get(v, fields[i].key))
			return v_error(vc, "missing required key \"%s\"",
				       fields[i].key);
	return 0;
}

/* Check a list of strings with check(), collecting copies. */
static int
v_string_list(struct vctx *vc, const json_t *v, char ***out, size_t *n,
	      int (*check)(struct vctx *vc, const char *s))
{
	size_t i;

	if (!json_is_array(v))
		return v_error(vc, "expected a list, got %s", json_type_name(v));
	*out = xcalloc(json_array_size(v), sizeof(**out));
	for (i = 0; i < json_array_size(v); i++) {
		const char *s = NULL;
		struct vsave sv;
		int r;

		v_enter(vc, v, NULL, i, &sv);
		r = v_string(vc, json_array_get(v, i), &s);
		if (r == 0 && check)
			r = check(vc, s);
		v_leave(vc, &sv);
		if (r < 0)
			return r;
		(*out)[(*n)++] = xstrdup(s);
	}
	return 0;
}

static int
v_int(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	json_int_t x;

	if (!json_is_integer(v))
		return v_error(vc, "expected an integer, got %s", json_type_name(v));
	x = json_integer_value(v);
	if (x < f->min || x > f->max)
		return v_error(vc, "%lld is out of range (%lld..%lld)",
			       (long long)x, (long long)f->min,
			       (long long)f->max);
	*(int *)((char *)obj + f->off) = (int)x;
	return 0;
}

/* A size: an integer (bytes) or a string for parse_size(). */
static int
v_size(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	int64_t max = f->max ? f->max : INT64_MAX;
	char lim[32];
	uint64_t x;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return v_error(vc, "bad size %lld: negative",
				       (long long)json_integer_value(v));
		x = json_integer_value(v);
	} else if (json_is_string(v)) {
		struct error e;
		const char *s;

		if (v_string(vc, v, &s) < 0)
			return -EINVAL;
		if (parse_size(s, &x, &e) < 0)
			return v_fail(vc, e.code, false, "%s", e.msg);
	} else {
		return v_error(vc, "expected a size, got %s", json_type_name(v));
	}
	/* Sizes end up in off_t and int64_t arithmetic elsewhere. */
	if (x > (uint64_t)max) {
		fmt_size(lim, sizeof(lim), max);
		return v_error(vc, "too large (at most %s)", lim);
	}
	if (x < (uint64_t)f->min) {
		fmt_size(lim, sizeof(lim), f->min);
		return v_error(vc, "too small (at least %s)", lim);
	}
	*(uint64_t *)((char *)obj + f->off) = x;
	return 0;
}

/* A duration: an integer (seconds) or a string for parse_duration(). */
static int
v_duration(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	int64_t ms;

	if (json_is_integer(v)) {
		json_int_t x = json_integer_value(v);

		if (x < 0)
			return v_error(vc, "bad duration %lld: negative",
				       (long long)x);
		if (x > INT64_MAX / 1000)
			return v_error(vc, "bad duration %lld: too large",
				       (long long)x);
		ms = x * 1000;
	} else if (json_is_string(v)) {
		struct error e;
		const char *s;

		if (v_string(vc, v, &s) < 0)
			return -EINVAL;
		if (parse_duration(s, &ms, &e) < 0)
			return v_fail(vc, e.code, false, "%s", e.msg);
	} else {
		return v_error(vc, "expected a duration, got %s", json_type_name(v));
	}
	if (ms < f->min)
		return v_error(vc, "must be greater than zero");
	*(int64_t *)((char *)obj + f->off) = ms;
	return 0;
}

static bool
is_name(const char *s, size_t max)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!(s[i] == '_' || s[i] == '-' || s[i] == '.' ||
		      is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return i > 0 && i <= max;
}

static int
v_image(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	struct qbuf q;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	if (strchr(s, '/')) {
		/* A path: make it independent of qctl's working directory. */
		free(r->image);
		if (s[0] == '/' || !vc->basedir)
			r->image = xstrdup(s);
		else
			r->image = xasprintf("%s/%s", vc->basedir, s);
		return 0;
	}
	/* A name under images/out/: no "..", nothing hidden. */
	if (!is_name(s, 64) || s[0] == '.')
		return v_error(vc,
			       "bad image name \"%s\" (1-64 of [A-Za-z0-9_.-], "
			       "not starting with '.'; use a path with '/')",
			       quote(&q, s));
	free(r->image);
	r->image = xstrdup(s);
	return 0;
}

static int v_source_git(struct vctx *vc, json_t *v, struct recipe *r);

static int
v_source(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	_cleanup_free_ char *joined = NULL;
	_cleanup_free_ char *real = NULL;
	struct recipe *r = obj;
	struct qbuf q;
	struct stat st;
	const char *s;

	(void)f;
	if (json_is_object(v))
		return v_source_git(vc, v, r);
	if (!json_is_string(v))
		return v_error(vc, "expected a string (a directory) or a "
			       "mapping {git: URL, ref: REF}, got %s",
			       json_type_name(v));
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	if (s[0] == '/')
		joined = xstrdup(s);
	else
		joined = xasprintf("%s/%s", vc->basedir ? vc->basedir : ".", s);
	if (vc->flags & RECIPE_NO_FS) {
		/* A client's recipe: its paths are looked at only with the
		 * client's rights, later; a realpath here, as root, would
		 * tell whether a root-only path exists. */
		if (joined[0] != '/')
			return v_error(vc, "\"%s\" must be an absolute path",
				       quote(&q, joined));
		r->source = steal_pointer(&joined);
		return 0;
	}
	real = realpath(joined, NULL);
	if (!real || stat(real, &st) < 0)
		return v_fail(vc, errno, false, "\"%s\": %s", quote(&q, joined),
			      strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return v_fail(vc, ENOTDIR, false, "\"%s\" is not a directory",
			      quote(&q, real));
	r->source = steal_pointer(&real);
	return 0;
}

/* ---- git sources ------------------------------------------------------- */

static bool
has_control(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/*
 * The text of a git URL: bounded, no controls, and local.  Whether it is
 * absolute is checked after a relative path was joined to the recipe's
 * directory.
 */
static int
check_git_url_text(const char *url, struct error *err)
{
	struct qbuf q;
	const char *colon, *slash;

	if (!url || !*url)
		return error_set(err, EINVAL, "must not be empty");
	if (strlen(url) > RECIPE_GIT_URL_MAX)
		return error_set(err, EINVAL, "longer than %d bytes",
				 RECIPE_GIT_URL_MAX);
	/* It reaches git's argv and our messages: no line breaks, no
	 * escapes. */
	if (has_control(url))
		return error_set(err, EINVAL, "\"%s\": control character",
				 quote(&q, url));
	/* The fetch runs on the host, outside the builder's network
	 * confinement (no proxy, no allowlist): local repositories only. */
	if (strstr(url, "://")) {
		if (strncmp(url, "file:///", 8))
			return error_set(err, EINVAL, "\"%s\": network URLs "
					 "are not allowed (a local repository: "
					 "a path or file:///path)",
					 quote(&q, url));
		return 0;
	}
	colon = strchr(url, ':');
	slash = strchr(url, '/');
	/* git reads "host:path" (a colon before any slash) as ssh */
	if (colon && (!slash || colon < slash))
		return error_set(err, EINVAL, "\"%s\" looks like an ssh "
				 "address (host:path); network URLs are not "
				 "allowed (a local repository: a path or "
				 "file:///path)", quote(&q, url));
	return 0;
}

static int
check_git_url(const char *url, struct error *err)
{
	struct qbuf q;

	if (check_git_url_text(url, err) < 0)
		return -EINVAL;
	if (url[0] != '/' && strncmp(url, "file:///", 8))
		return error_set(err, EINVAL, "\"%s\" must be an absolute path",
				 quote(&q, url));
	return 0;
}

/* A git source's URL as the fetch will use it (recipe.h). */
int
recipe_check_git_url(const char *url, struct error *err)
{
	int r = check_git_url(url, err);

	if (r < 0)
		error_prefix(err, "git");
	return r;
}

/*
 * A ref as git check-ref-format would take it (a name, not a pattern),
 * or a commit id: it becomes a git argument, so nothing git would read
 * as an option or a revision expression ("HEAD~1", "@{-1}", "a..b").
 */
static int
check_git_ref(const char *ref, struct error *err)
{
	static const char *const bad_parts[] = { "..", "@{", "//", "/." };
	size_t len = ref ? strlen(ref) : 0;
	struct qbuf q;

	if (!len)
		return error_set(err, EINVAL, "must not be empty");
	if (len > RECIPE_GIT_REF_MAX)
		return error_set(err, EINVAL, "longer than %d bytes",
				 RECIPE_GIT_REF_MAX);
	if (has_control(ref) || strpbrk(ref, " ~^:?*[\\"))
		goto bad;
	for (size_t i = 0; i < ARRAY_SIZE(bad_parts); i++)
		if (strstr(ref, bad_parts[i]))
			goto bad;
	if (ref[0] == '-' || ref[0] == '/' || ref[0] == '.' ||
	    ref[len - 1] == '/' || ref[len - 1] == '.' || !strcmp(ref, "@") ||
	    (len >= 5 && !strcmp(ref + len - 5, ".lock")))
		goto bad;
	return 0;
bad:
	return error_set(err, EINVAL, "\"%s\" is not a branch, tag or commit "
			 "name (no spaces, controls, ~^:?*[\\, \"..\", \"@{\", "
			 "leading '-', '.' or '/')", quote(&q, ref));
}

int
recipe_check_git_ref(const char *ref, struct error *err)
{
	int r = check_git_ref(ref, err);

	if (r < 0)
		error_prefix(err, "ref");
	return r;
}

static int
v_git_url(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	_cleanup_free_ char *url = NULL;
	struct recipe *r = obj;
	struct error e;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	if (check_git_url_text(s, &e) < 0)
		return v_fail(vc, e.code, false, "%s", e.msg);
	if (s[0] == '/' || !strncmp(s, "file:///", 8)) {
		url = xstrdup(s);
	} else if (vc->basedir && vc->basedir[0] == '/') {
		url = xasprintf("%s/%s", vc->basedir, s);
	} else if (!(vc->flags & RECIPE_NO_FS) && vc->basedir) {
		char cwd[PATH_MAX];

		/* the fetch runs elsewhere: relative to the recipe, made
		 * absolute now (nothing is looked up) */
		if (!getcwd(cwd, sizeof(cwd)))
			return v_fail(vc, errno, false, "getcwd: %s",
				      strerror(errno));
		if (!strcmp(vc->basedir, "."))
			url = xasprintf("%s/%s", cwd, s);
		else
			url = xasprintf("%s/%s/%s", cwd, vc->basedir, s);
	} else {
		url = xstrdup(s);	/* refused just below */
	}
	if (check_git_url(url, &e) < 0)
		return v_fail(vc, e.code, false, "%s", e.msg);
	free(r->git.url);
	r->git.url = steal_pointer(&url);
	return 0;
}

static int
v_git_ref(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	struct error e;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	if (check_git_ref(s, &e) < 0)
		return v_fail(vc, e.code, false, "%s", e.msg);
	free(r->git.ref);
	r->git.ref = xstrdup(s);
	return 0;
}

static const struct field git_fields[] = {
	{"git", v_git_url, true, 0, 0, 0},
	{"ref", v_git_ref, false, 0, 0, 0},
};

/* source: {git: URL, ref: REF} */
static int
v_source_git(struct vctx *vc, json_t *v, struct recipe *r)
{
	const struct line_ent *e;
	int ret;

	ret = v_mapping(vc, v, git_fields, ARRAY_SIZE(git_fields), r);
	if (ret < 0)
		return ret;
	/* the remote's HEAD: its default branch (the commit is recorded) */
	if (!r->git.ref)
		r->git.ref = xstrdup("HEAD");
	e = lines_find(vc->lines, vc->parent, vc->key, vc->index);
	if (e && e->key_line > 0)
		r->git.where = xasprintf("%s:%d", vc->name, e->key_line);
	else
		r->git.where = xstrdup(vc->name);
	return 0;
}

static bool
is_env_name(const char *s)
{
	size_t i;

	if (!(*s == '_' || (*s >= 'a' && *s <= 'z') ||
	      (*s >= 'A' && *s <= 'Z')))
		return false;
	for (i = 1; s[i]; i++)
		if (!(s[i] == '_' || is_digit(s[i]) ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

/* Shortest "%g" text that reads back as the same double. */
static void
fmt_real(char *buf, size_t n, double d)
{
	int prec;

	for (prec = 1; prec < 17; prec++) {
		snprintf(buf, n, "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			return;
	}
	snprintf(buf, n, "%.17g", d);
}

static int
v_env(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	const char *key;
	json_t *val;

	(void)f;
	if (!json_is_object(v))
		return v_error(vc, "expected a mapping, got %s", json_type_name(v));
	r->env = xcalloc(json_object_size(v), sizeof(*r->env));
	json_object_foreach(v, key, val) {
		char num[64];
		const char *s = num;
		struct vsave sv;
		int ret = 0;

		v_enter(vc, v, key, 0, &sv);
		if (!is_env_name(key))
			ret = v_fail(vc, EINVAL, true,
				     "bad variable name (expected "
				     "[A-Za-z_][A-Za-z0-9_]*)");
		else if (json_is_integer(val))
			snprintf(num, sizeof(num), "%lld",
				 (long long)json_integer_value(val));
		else if (json_is_real(val))
			fmt_real(num, sizeof(num), json_real_value(val));
		else if (!json_is_string(val))
			ret = v_error(vc, "expected a string or number, got %s",
				      json_type_name(val));
		else if (strlen(json_string_value(val)) !=
			 json_string_length(val))
			ret = v_error(vc, "NUL byte in a string");
		else
			s = json_string_value(val);
		v_leave(vc, &sv);
		if (ret < 0)
			return ret;
		r->env[r->n_env++] = xasprintf("%s=%s", key, s);
	}
	return 0;
}

static int
check_allow(struct vctx *vc, const char *s)
{
	struct error e;

	/* a list the image recorded when it was built: checked against
	 * the image when the build starts, expanded to host:port entries */
	if (!strncmp(s, RECIPE_ALLOW_IMAGE, strlen(RECIPE_ALLOW_IMAGE))) {
		const char *n = s + strlen(RECIPE_ALLOW_IMAGE);
		size_t len = strlen(n);

		if (len < 1 || len > 32 ||
		    strspn(n, "abcdefghijklmnopqrstuvwxyz0123456789_-") != len)
			return v_fail(vc, EINVAL, false, "bad allow entry "
				      "\"%s\": image: takes the name of a "
				      "host list of the image (a-z, 0-9, _, "
				      "-)", s);
		return 0;
	}
	if (recipe_check_allow(s, &e) < 0)
		return v_fail(vc, e.code, false, "%s", e.msg);
	/* and what the proxy will accept: a recipe error now, not an
	 * infrastructure error when the build starts */
	if (allowlist_check_entry(s, &e) < 0)
		return v_fail(vc, EINVAL, false, "%s", e.msg);
	return 0;
}

static int
v_allow(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;

	(void)f;
	return v_string_list(vc, v, &r->allow, &r->n_allow, check_allow);
}

static int
check_artifact(struct vctx *vc, const char *s)
{
	struct qbuf q;
	const char *p;

	/* Artifacts are copied out of /src: never above or outside it. */
	if (s[0] == '/')
		return v_error(vc, "\"%s\": must be relative to /src",
			       quote(&q, s));
	for (p = s; p; p = strchr(p, '/'), p = p ? p + 1 : NULL)
		if (p[0] == '.' && p[1] == '.' && (p[2] == '/' || !p[2]))
			return v_error(vc, "\"%s\": \"..\" is not allowed",
				       quote(&q, s));
	return 0;
}

static int
check_ssh_key(struct vctx *vc, const char *s)
{
	struct error e;

	if (recipe_check_ssh_key(s, &e) < 0)
		return v_fail(vc, e.code, false, "%s", e.msg);
	return 0;
}

static int
v_ssh_keys(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;

	(void)f;
	if (json_is_array(v) && json_array_size(v) > RECIPE_SSH_KEYS_MAX)
		return v_error(vc, "%zu keys (at most %d)",
			       json_array_size(v), RECIPE_SSH_KEYS_MAX);
	return v_string_list(vc, v, &r->ssh_keys, &r->n_ssh_keys,
			     check_ssh_key);
}

static int
v_hold(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	int ret = v_duration(vc, v, obj, f);

	if (ret == 0 &&
	    (r->hold_ms > RECIPE_HOLD_MAX_MS ||
	     r->hold_after_ms > RECIPE_HOLD_MAX_MS))
		return v_error(vc, "at most 24h");
	if (ret == 0 && r->hold_ms && r->hold_after_ms)
		return v_error(vc, "hold and hold_on_failure: give one (hold "
			       "keeps a failed build too)");
	return ret;
}

static int
v_artifacts(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;

	(void)f;
	return v_string_list(vc, v, &r->artifacts, &r->n_artifacts,
			     check_artifact);
}

/* ---- cache ----------------------------------------------------------- */

/* Guest trees a cache must not cover: the build's own source, and what
 * the kernel or qctl's guest side own (a cache there would shadow them). */
static const char *const cache_forbidden[] = { "/src", "/proc", "/sys",
					       "/dev", "/run" };

static bool
cache_path_under(const char *p, const char *top)
{
	size_t n = strlen(top);

	return !strncmp(p, top, n) && (p[n] == '\0' || p[n] == '/');
}

/* Check a cache path (recipe.h). */
int
recipe_check_cache_path(const char *p, struct error *err)
{
	size_t n = strlen(p);

	if (p[0] != '/')
		return error_set(err, EINVAL, "\"%s\": must be absolute", p);
	if (n > RECIPE_CACHE_PATH_MAX)
		return error_set(err, EINVAL, "path longer than %d bytes",
				 RECIPE_CACHE_PATH_MAX);
	/* qctl's own guest commands name the path: no quoting to get
	 * wrong, no shell syntax from the recipe */
	if (strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789/._+-@") != n)
		return error_set(err, EINVAL, "\"%s\": only letters, digits "
				 "and /._+-@ are allowed", p);
	if (!strcmp(p, "/"))
		return error_set(err, EINVAL, "\"/\": the whole file system "
				 "cannot be cached");
	/* normalized: one spelling per directory, so two entries cannot
	 * name one tree in two ways */
	if (strstr(p, "//") || p[n - 1] == '/')
		return error_set(err, EINVAL, "\"%s\": not normalized (double "
				 "or trailing /)", p);
	for (const char *c = p; c; c = strchr(c + 1, '/')) {
		if (!strncmp(c, "/../", 4) || !strcmp(c, "/.."))
			return error_set(err, EINVAL, "\"%s\": \"..\" is not "
					 "allowed", p);
		if (!strncmp(c, "/./", 3) || !strcmp(c, "/."))
			return error_set(err, EINVAL, "\"%s\": not normalized "
					 "(\".\")", p);
	}
	for (size_t i = 0; i < ARRAY_SIZE(cache_forbidden); i++)
		if (cache_path_under(p, cache_forbidden[i]))
			return error_set(err, EINVAL, "\"%s\": %s and what is "
					 "under it cannot be cached", p,
					 cache_forbidden[i]);
	return 0;
}

static int
check_cache_path(struct vctx *vc, const char *s)
{
	struct error e;

	if (recipe_check_cache_path(s, &e) < 0)
		return v_fail(vc, e.code, false, "%s", e.msg);
	return 0;
}

static int
v_cache_key(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe_cache *c = obj;
	struct qbuf q;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	/* the key names a file on the host: no "." or ".." */
	if (!is_name(s, 64) || !strcmp(s, ".") || !strcmp(s, ".."))
		return v_error(vc, "bad cache key \"%s\" (1-64 of "
			       "[A-Za-z0-9_.-], not . or ..)", quote(&q, s));
	c->key = xstrdup(s);
	return 0;
}

static int
v_cache_paths(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe_cache *c = obj;
	int r;

	(void)f;
	if (json_is_array(v) && (json_array_size(v) < 1 ||
				 json_array_size(v) > RECIPE_CACHE_PATHS_MAX))
		return v_error(vc, "%zu paths (1 to %d)", json_array_size(v),
			       RECIPE_CACHE_PATHS_MAX);
	r = v_string_list(vc, v, &c->paths, &c->n_paths, check_cache_path);
	if (r < 0)
		return r;
	/* each path gets a directory of the disk of its own: a path under
	 * another would be mounted over by it, or over it */
	for (size_t i = 0; i < c->n_paths; i++)
		for (size_t j = 0; j < c->n_paths; j++)
			if (i != j && cache_path_under(c->paths[j],
						       c->paths[i]))
				return v_error(vc, "\"%s\" is %s \"%s\"",
					       c->paths[j],
					       strcmp(c->paths[i],
						      c->paths[j])
						       ? "under"
						       : "given twice, as",
					       c->paths[i]);
	return 0;
}

static const struct field cache_fields[] = {
	{"key", v_cache_key, true, 0, 0, 0},
	{"paths", v_cache_paths, true, 0, 0, 0},
	{"size", v_size, false, offsetof(struct recipe_cache, size),
	 16 * MiB, 64 * GiB},
};

static int
v_cache(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;

	(void)f;
	r->cache.size = GiB;
	return v_mapping(vc, v, cache_fields, ARRAY_SIZE(cache_fields),
			 &r->cache);
}

/*
 * The cache is copied out when the last fetch step ends: a step that
 * writes it must come before every step that only reads it, or what a
 * non-fetch step saw would be changed behind it, and its writes kept.
 */
static int
check_cache_order(const struct recipe *r, const char *name,
		  struct error *err)
{
	size_t i, first_none = r->n_steps;

	if (!r->cache.key)
		return 0;
	for (i = 0; i < r->n_steps; i++) {
		if (!r->steps[i].fetch && first_none == r->n_steps)
			first_none = i;
		else if (r->steps[i].fetch && first_none < i)
			return error_set(err, EINVAL, "%s: cache: fetch step "
					 "\"%s\" comes after step \"%s\" "
					 "(network: none); with a cache, "
					 "every fetch step must come before "
					 "the others (the cache is sealed "
					 "when the last fetch step ends)",
					 name, r->steps[i].name,
					 r->steps[first_none].name);
	}
	return 0;
}

#define LIMIT_OFF(member) offsetof(struct recipe_limits, member)

static const struct field limit_fields[] = {
	{"wall_time", v_duration, false, LIMIT_OFF(wall_time_ms), 1, 0},
	{"cpu_time", v_duration, false, LIMIT_OFF(cpu_time_ms), 0, 0},
	{"boot_timeout", v_duration, false, LIMIT_OFF(boot_timeout_ms), 1, 0},
	{"disk", v_size, false, LIMIT_OFF(disk), MiB, 0},
	{"log_bytes", v_size, false, LIMIT_OFF(log_bytes), 0, 0},
	{"net_bytes", v_size, false, LIMIT_OFF(net_bytes), 0, 0},
	{"artifacts_bytes", v_size, false, LIMIT_OFF(artifacts_bytes), 0, 0},
};

static int
v_limits(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;

	(void)f;
	return v_mapping(vc, v, limit_fields, ARRAY_SIZE(limit_fields),
			 &r->limits);
}

/* Step handlers get the recipe; the step being filled is the last one. */
static int
v_step_name(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	struct qbuf q;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	/* Step names may name files and directories: no "." or "..". */
	if (!is_name(s, 64) || !strcmp(s, ".") || !strcmp(s, ".."))
		return v_error(vc,
			       "bad step name \"%s\" (1-64 of [A-Za-z0-9_.-])",
			       quote(&q, s));
	if (json_object_get(vc->step_names, s))
		return v_error(vc, "duplicate step name \"%s\"", s);
	if (json_object_set_new(vc->step_names, s, json_true()) < 0)
		return v_fail(vc, ENOMEM, false, "out of memory");
	r->steps[r->n_steps - 1].name = xstrdup(s);
	return 0;
}

static int
v_step_run(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	r->steps[r->n_steps - 1].run = xstrdup(s);
	return 0;
}

static int
v_step_network(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	struct qbuf q;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	if (strcmp(s, "none") && strcmp(s, "fetch"))
		return v_error(vc, "\"%s\": expected \"none\" or \"fetch\"",
			       quote(&q, s));
	r->steps[r->n_steps - 1].fetch = !strcmp(s, "fetch");
	return 0;
}

static int
v_step_timeout(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;

	return v_duration(vc, v, &r->steps[r->n_steps - 1], f);
}

static const struct field step_fields[] = {
	{"name", v_step_name, true, 0, 0, 0},
	{"run", v_step_run, true, 0, 0, 0},
	{"network", v_step_network, false, 0, 0, 0},
	{"timeout", v_step_timeout, false,
	 offsetof(struct recipe_step, timeout_ms), 0, 0},
};

static int
v_steps(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	size_t i;

	(void)f;
	if (!json_is_array(v))
		return v_error(vc, "expected a list, got %s", json_type_name(v));
	if (json_array_size(v) == 0)
		return v_error(vc, "at least one step is required");
	r->steps = xcalloc(json_array_size(v), sizeof(*r->steps));
	for (i = 0; i < json_array_size(v); i++) {
		struct vsave s;
		int ret;

		r->n_steps++;
		v_enter(vc, v, NULL, i, &s);
		ret = v_mapping(vc, json_array_get(v, i), step_fields,
				ARRAY_SIZE(step_fields), r);
		v_leave(vc, &s);
		if (ret < 0)
			return ret;
	}
	return 0;
}

/* "agent" or "ssh"; the image must offer it (checked at build start) */
static int
v_transport(struct vctx *vc, json_t *v, void *obj, const struct field *f)
{
	struct recipe *r = obj;
	struct qbuf q;
	const char *s;

	(void)f;
	if (v_string(vc, v, &s) < 0)
		return -EINVAL;
	if (!strcmp(s, "agent"))
		r->transport = RECIPE_TRANSPORT_AGENT;
	else if (!strcmp(s, "ssh"))
		r->transport = RECIPE_TRANSPORT_SSH;
	else
		return v_error(vc, "expected agent or ssh, got \"%s\"",
			       quote(&q, s));
	return 0;
}

static const struct field recipe_fields[] = {
	{"image", v_image, false, 0, 0, 0},
	{"transport", v_transport, false, 0, 0, 0},
	{"cpus", v_int, false, offsetof(struct recipe, cpus), 1, 64},
	{"memory", v_size, false, offsetof(struct recipe, memory), 64 * MiB,
	 64 * GiB},
	{"source", v_source, false, 0, 0, 0},
	{"env", v_env, false, 0, 0, 0},
	{"allow", v_allow, false, 0, 0, 0},
	{"limits", v_limits, false, 0, 0, 0},
	{"steps", v_steps, true, 0, 0, 0},
	{"artifacts", v_artifacts, false, 0, 0, 0},
	{"hold_on_failure", v_hold, false, offsetof(struct recipe, hold_ms),
	 0, 0},
	{"hold", v_hold, false, offsetof(struct recipe, hold_after_ms), 0, 0},
	{"ssh_keys", v_ssh_keys, false, 0, 0, 0},
	{"cache", v_cache, false, 0, 0, 0},
};

static struct recipe *
recipe_new(void)
{
	struct recipe *r = xcalloc(1, sizeof(*r));

	r->image = xstrdup("minimal");
	r->cpus = 1;
	r->memory = 512 * MiB;
	r->limits = (struct recipe_limits){
		.wall_time_ms = 3600 * 1000,
		.cpu_time_ms = 0,
		.boot_timeout_ms = 60 * 1000,
		.disk = 2 * GiB,
		.log_bytes = 64 * MiB,
		.net_bytes = GiB,
		.artifacts_bytes = GiB,
	};
	return r;
}

static int
recipe_validate(json_t *root, const struct lines *lines, const char *name,
		const char *basedir, unsigned flags, struct recipe **out,
		struct error *err)
{
	_cleanup_recipe_ struct recipe *r = NULL;
	struct vctx vc = {
		.name = name ? name : "recipe",
		.basedir = basedir,
		.flags = flags,
		.lines = lines,
		.err = err,
	};
	int ret;

	if (!root)
		return error_set(err, EINVAL, "%s: no recipe", vc.name);
	r = recipe_new();
	vc.step_names = json_object();
	ret = v_mapping(&vc, root, recipe_fields, ARRAY_SIZE(recipe_fields), r);
	json_decref(vc.step_names);
	if (ret < 0)
		return ret;
	/* unsaid, the image's defaults apply (build.c) */
	r->cpus_set = json_object_get(root, "cpus") != NULL;
	r->memory_set = json_object_get(root, "memory") != NULL;
	/* The fetch window is metered by a kernel quota: it needs a budget
	 * (a zero quota would be no network at all, and no build would
	 * want that with a fetch step). */
	for (size_t i = 0; i < r->n_steps; i++)
		if (r->steps[i].fetch && !r->limits.net_bytes)
			return error_set(err, EINVAL, "%s: limits.net_bytes "
					 "must be more than 0 with a fetch "
					 "step (\"%s\")", vc.name,
					 r->steps[i].name);
	ret = check_cache_order(r, vc.name, err);
	if (ret < 0)
		return ret;
	*out = steal_pointer(&r);
	return 0;
}

/* ---- entry points ------------------------------------------------------ */

/* Validate a parsed JSON object (borrowed) into a new recipe. */
int
recipe_from_json(json_t *root, const char *name, const char *basedir,
		 struct recipe **out, struct error *err)
{
	return recipe_validate(root, NULL, name, basedir, 0, out, err);
}

int
recipe_from_json_flags(json_t *root, const char *name, const char *basedir,
		       unsigned flags, struct recipe **out, struct error *err)
{
	return recipe_validate(root, NULL, name, basedir, flags, out, err);
}

/* Parse and validate a YAML or JSON recipe held in a buffer. */
int
recipe_load_buffer(const char *buf, size_t len, const char *name,
		   const char *basedir, struct recipe **out, struct error *err)
{
	return recipe_load_buffer_flags(buf, len, name, basedir, 0, out, err);
}

int
recipe_load_buffer_flags(const char *buf, size_t len, const char *name,
			 const char *basedir, unsigned flags,
			 struct recipe **out, struct error *err)
{
	_cleanup_json_ json_t *root = NULL;
	struct lines lines = {0};
	bool syntax;
	size_t i;
	int r;

	if (!name)
		name = "recipe";
	if (!buf) {
		buf = "";
		len = 0;
	}
	if (len > RECIPE_MAX_BYTES)
		return error_set(err, EFBIG,
				 "%s: recipe larger than %d bytes (1 MiB)",
				 name, RECIPE_MAX_BYTES);
	r = yaml_to_json(buf, len, name, "recipe", &root, &lines, &syntax,
			 err);
	for (i = 0; i < len && strchr(" \t\r\n", buf[i]); i++)
		;
	if (r < 0 && syntax && i < len && buf[i] == '{') {
		/*
		 * JSON that libyaml (YAML 1.1) refuses, such as "\ud83d\ude00"
		 * surrogate pairs: strict JSON, at the price of line numbers.
		 */
		json_error_t jerr;

		root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
		if (!root)
			return error_set(err, EINVAL,
					 "%s:%d: JSON syntax error: %s", name,
					 jerr.line, jerr.text);
		return recipe_validate(root, NULL, name, basedir, flags, out, err);
	}
	if (r < 0)
		return r;
	r = recipe_validate(root, &lines, name, basedir, flags, out, err);
	lines_free(&lines);
	return r;
}

/* Read, parse and validate a recipe file (relative paths: its directory). */
int
recipe_load_file(const char *path, struct recipe **out, struct error *err)
{
	_cleanup_free_ char *buf = NULL;
	_cleanup_free_ char *dir = NULL;
	const char *slash;
	struct recipe *r;
	size_t len;
	int ret;

	if (!path)
		return error_set(err, EINVAL, "recipe: no file name");
	/* One byte over the limit tells "too large" from "exactly 1 MiB". */
	ret = read_file(path, RECIPE_MAX_BYTES + 1, &buf, &len, err);
	if (ret == -EFBIG)
		return error_set(err, EFBIG,
				 "%s: recipe larger than %d bytes (1 MiB)",
				 path, RECIPE_MAX_BYTES);
	if (ret < 0)
		return ret;
	slash = strrchr(path, '/');
	if (!slash)
		dir = xstrdup(".");
	else if (slash == path)
		dir = xstrdup("/");
	else
		dir = xstrndup(path, slash - path);
	ret = recipe_load_buffer(buf, len, path, dir, &r, err);
	if (ret < 0)
		return ret;
	r->path = xstrdup(path);
	*out = r;
	return 0;
}

static void
free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* Free a recipe and everything it owns; NULL is fine. */
void
recipe_free(struct recipe *r)
{
	size_t i;

	if (!r)
		return;
	free(r->path);
	free(r->image);
	free(r->source);
	free(r->git.url);
	free(r->git.ref);
	free(r->git.where);
	free_strv(r->env, r->n_env);
	free_strv(r->allow, r->n_allow);
	for (i = 0; i < r->n_steps; i++) {
		free(r->steps[i].name);
		free(r->steps[i].run);
	}
	free(r->steps);
	free_strv(r->artifacts, r->n_artifacts);
	free_strv(r->ssh_keys, r->n_ssh_keys);
	free(r->cache.key);
	free_strv(r->cache.paths, r->cache.n_paths);
	free(r);
}

/* ---- the YAML reader, for other documents ------------------------------ */

int
yaml_doc_load(const char *buf, size_t len, const char *name,
	      struct yaml_doc *doc, struct error *err)
{
	struct lines *lines = xcalloc(1, sizeof(*lines));
	bool syntax;
	int r;

	memset(doc, 0, sizeof(*doc));
	r = yaml_to_json(buf ? buf : "", buf ? len : 0, name, "document",
			 &doc->root, lines, &syntax, err);
	if (r < 0) {
		lines_free(lines);
		free(lines);
		return r;
	}
	doc->lines = lines;
	return 0;
}

int
yaml_doc_line(const struct yaml_doc *doc, const json_t *parent,
	      const char *key, size_t index, bool at_key)
{
	const struct line_ent *e = lines_find(doc->lines, parent, key, index);

	return e ? (at_key ? e->key_line : e->line) : 0;
}

void
yaml_doc_free(struct yaml_doc *doc)
{
	json_decref(doc->root);
	if (doc->lines) {
		lines_free(doc->lines);
		free(doc->lines);
	}
	memset(doc, 0, sizeof(*doc));
}

const char *
yaml_quote(char *buf, const char *s)
{
	struct qbuf q;

	_Static_assert(sizeof(q.s) == YAML_QUOTE_BUF, "YAML_QUOTE_BUF");
	quote(&q, s);
	memcpy(buf, q.s, strlen(q.s) + 1);
	return buf;
}
