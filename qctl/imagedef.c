/* imagedef.c - image definition files: YAML to a validated struct imagedef */
#include "imagedef.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "recipe.h"

/*
 * A definition's values become arguments of mkimage-debian.sh, package
 * names for apt and a chroot's shell commands: every value is checked
 * against a narrow pattern here, so that none is read as an option, an
 * apt pattern or a path (the setup commands are shell by design, and go
 * to the script as arguments, never through a shell string).
 */

#define MiB (UINT64_C(1) << 20)
#define GiB (UINT64_C(1) << 30)
#define TiB (UINT64_C(1) << 40)

struct dctx {
	const char *name;
	const struct yaml_doc *doc;
	struct error *err;
	struct imagedef *d;
};

/* "name:line: path: message", like a recipe's errors. */
static int __attribute__((format(printf, 4, 5)))
d_error(struct dctx *c, int line, const char *path, const char *fmt, ...)
{
	char msg[sizeof(c->err->msg)];
	char at[32] = "";
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line > 0)
		snprintf(at, sizeof(at), ":%d", line);
	if (path && *path)
		return error_set(c->err, EINVAL, "%s%s: %s: %s", c->name, at,
				 path, msg);
	return error_set(c->err, EINVAL, "%s%s: %s", c->name, at, msg);
}

/* The line of a value (or of its key, at_key) for messages. */
static int
d_line(struct dctx *c, const json_t *parent, const char *key, size_t index,
       bool at_key)
{
	return yaml_doc_line(c->doc, parent, key, index, at_key);
}

static bool
in_set(char c, const char *set)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       (c && strchr(set, c));
}

/* [A-Za-z0-9_.-]{1,64}, not starting with '.': a directory name. */
bool
imagedef_name_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if (!in_set(s[i], "ABCDEFGHIJKLMNOPQRSTUVWXYZ_.-"))
			return false;
	return i > 0 && i <= IMAGEDEF_NAME_MAX && s[0] != '.';
}

/* Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+; never an option or pattern. */
static bool
is_package_name(const char *s)
{
	size_t i;

	if (!in_set(s[0], ""))
		return false;
	for (i = 1; s[i]; i++)
		if (!in_set(s[i], "+.-"))
			return false;
	return i >= 2 && i <= IMAGEDEF_PACKAGE_MAX;
}

static bool
is_suite(const char *s)
{
	size_t i;

	if (!in_set(s[0], ""))
		return false;
	for (i = 1; s[i]; i++)
		if (!in_set(s[i], ".-"))
			return false;
	return i <= IMAGEDEF_SUITE_MAX;
}

static const char *const variants[] = {
	"extract", "custom", "essential", "apt",	 "required",
	"minbase", "buildd", "important", "debootstrap", "standard",
};

/* A non-empty string without NUL bytes. */
static int
d_string(struct dctx *c, const json_t *parent, const char *key, size_t index,
	 const char *path, const json_t *v, const char **out)
{
	int line = d_line(c, parent, key, index, false);

	if (!json_is_string(v))
		return d_error(c, line, path, "expected a string, got %s",
			       json_type_name(v));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return d_error(c, line, path, "NUL byte in a string");
	if (!json_string_length(v))
		return d_error(c, line, path, "must not be empty");
	*out = json_string_value(v);
	return 0;
}

/*
 * A list of at most max strings, each checked by check() (a message on
 * failure, NULL when good) and, if unique, listed once; copied out.
 */
static int
d_string_list(struct dctx *c, json_t *parent, const char *key, json_t *v,
	      size_t max, bool unique, const char *(*check)(const char *s),
	      char ***out, size_t *n)
{
	char path[128], q[YAML_QUOTE_BUF];
	size_t i, j;

	/* a block list starts on the line after its key: name the key's */
	if (!json_is_array(v))
		return d_error(c, d_line(c, parent, key, 0, true), key,
			       "expected a list, got %s", json_type_name(v));
	if (json_array_size(v) > max)
		return d_error(c, d_line(c, parent, key, 0, true), key,
			       "%zu entries, at most %zu allowed",
			       json_array_size(v), max);
	*out = xcalloc(json_array_size(v) + 1, sizeof(**out));
	for (i = 0; i < json_array_size(v); i++) {
		const char *s, *why;
		int line = d_line(c, v, NULL, i, false);

		snprintf(path, sizeof(path), "%s[%zu]", key, i);
		if (d_string(c, v, NULL, i, path, json_array_get(v, i), &s) < 0)
			return -EINVAL;
		why = check(s);
		if (why)
			return d_error(c, line, path, "\"%s\": %s",
				       yaml_quote(q, s), why);
		for (j = 0; unique && j < i; j++)
			if (!strcmp((*out)[j], s))
				return d_error(c, line, path,
					       "\"%s\" is listed twice",
					       yaml_quote(q, s));
		(*out)[(*n)++] = xstrdup(s);
	}
	return 0;
}

/* A size: an integer (bytes) or a string for parse_size(), in min..max. */
static int
d_size(struct dctx *c, json_t *parent, const char *key, json_t *v, uint64_t min,
       uint64_t max, uint64_t *out)
{
	int line = d_line(c, parent, key, 0, false);
	uint64_t x;

	if (json_is_integer(v)) {
		if (json_integer_value(v) < 0)
			return d_error(c, line, key,
				       "bad size %" JSON_INTEGER_FORMAT
				       ": negative",
				       json_integer_value(v));
		x = json_integer_value(v);
	} else if (json_is_string(v)) {
		struct error e;
		const char *s;

		if (d_string(c, parent, key, 0, key, v, &s) < 0)
			return -EINVAL;
		if (parse_size(s, &x, &e) < 0)
			return d_error(c, line, key, "%s", e.msg);
	} else {
		return d_error(c, line, key, "expected a size, got %s",
			       json_type_name(v));
	}
	if (x < min || x > max)
		return d_error(c, line, key,
			       "%" PRIu64 " bytes is out of range (%" PRIu64
			       "M..%" PRIu64 "G)",
			       x, min / MiB, max / GiB);
	*out = x;
	return 0;
}

/* ---- the keys ----------------------------------------------------------- */

static int
k_name(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	char q[YAML_QUOTE_BUF];
	const char *s;

	if (d_string(c, parent, key, 0, key, v, &s) < 0)
		return -EINVAL;
	if (!imagedef_name_ok(s))
		return d_error(c, d_line(c, parent, key, 0, false), key,
			       "bad image name \"%s\" (1-%d of [A-Za-z0-9_.-], "
			       "not starting with '.')",
			       yaml_quote(q, s), IMAGEDEF_NAME_MAX);
	c->d->name = xstrdup(s);
	return 0;
}

static int
k_base_debian(struct dctx *c, json_t *v)
{
	char q[YAML_QUOTE_BUF], path[64];
	const char *key, *s;
	json_t *val;
	size_t i;

	json_object_foreach (v, key, val) {
		snprintf(path, sizeof(path), "base.%s",
			 strlen(key) < 32 ? key : "...");
		if (!strcmp(key, "suite")) {
			if (d_string(c, v, key, 0, path, val, &s) < 0)
				return -EINVAL;
			if (!is_suite(s))
				return d_error(c, d_line(c, v, key, 0, false),
					       path,
					       "bad suite \"%s\" (a Debian "
					       "suite such as bookworm)",
					       yaml_quote(q, s));
			c->d->suite = xstrdup(s);
		} else if (!strcmp(key, "variant")) {
			if (d_string(c, v, key, 0, path, val, &s) < 0)
				return -EINVAL;
			for (i = 0; i < ARRAY_SIZE(variants); i++)
				if (!strcmp(s, variants[i]))
					break;
			if (i == ARRAY_SIZE(variants))
				return d_error(c, d_line(c, v, key, 0, false),
					       path,
					       "\"%s\" is not an "
					       "mmdebstrap variant (buildd, "
					       "minbase, apt, important, "
					       "standard, ...)",
					       yaml_quote(q, s));
			free(c->d->variant);
			c->d->variant = xstrdup(s);
		} else {
			return d_error(c, d_line(c, v, key, 0, true), path,
				       "unknown key (expected suite, "
				       "variant)");
		}
	}
	if (!c->d->suite)
		return d_error(
			c, yaml_doc_line(c->doc, c->doc->root, "base", 0, true),
			"base", "missing required key \"suite\"");
	return 0;
}

static int
k_base(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	char q[YAML_QUOTE_BUF];
	int line = d_line(c, parent, key, 0, false);

	if (json_is_string(v)) {
		if (strcmp(json_string_value(v), "initramfs"))
			return d_error(c, line, key,
				       "\"%s\": expected \"initramfs\" or a "
				       "mapping {suite: ..., variant: ...}",
				       yaml_quote(q, json_string_value(v)));
		c->d->base = IMAGEDEF_INITRAMFS;
		return 0;
	}
	if (!json_is_object(v))
		return d_error(c, line, key,
			       "expected \"initramfs\" or a mapping {suite: "
			       "..., variant: ...}, got %s",
			       json_type_name(v));
	c->d->base = IMAGEDEF_DEBIAN;
	c->d->variant = xstrdup("buildd");
	return k_base_debian(c, v);
}

static const char *
check_package(const char *s)
{
	return is_package_name(s) ? NULL
				  : "not a Debian package name "
				    "([a-z0-9][a-z0-9+.-]+)";
}

static int
k_packages(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	return d_string_list(c, parent, key, v, IMAGEDEF_MAX_PACKAGES, true,
			     check_package, &c->d->packages, &c->d->n_packages);
}

static const char *
check_source_type(const char *s)
{
	return !strcmp(s, "deb") || !strcmp(s, "deb-src")
		       ? NULL
		       : "expected deb or deb-src";
}

static int
k_sources(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	char **types = NULL;
	size_t n = 0, i;
	bool deb = false;
	int r;

	r = d_string_list(c, parent, key, v, 2, true, check_source_type, &types,
			  &n);
	for (i = 0; i < n; i++) {
		deb |= !strcmp(types[i], "deb");
		c->d->deb_src |= !strcmp(types[i], "deb-src");
		free(types[i]);
	}
	free(types);
	if (r == 0 && !deb)
		r = d_error(c, d_line(c, parent, key, 0, true), key,
			    "deb is needed (nothing is installed without it)");
	return r;
}

static int
k_npm(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	if (!json_is_boolean(v))
		return d_error(c, d_line(c, parent, key, 0, false), key,
			       "expected true or false, got %s", json_type_name(v));
	c->d->npm = json_is_true(v);
	return 0;
}

/* "agent" (default) or "ssh": how the manager runs steps in the image */
static int
k_transport(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	const char *t = json_string_value(v);

	if (!t || (strcmp(t, "agent") && strcmp(t, "ssh")))
		return d_error(c, d_line(c, parent, key, 0, false), key,
			       "expected agent or ssh");
	c->d->ssh = !strcmp(t, "ssh");
	return 0;
}

static const char *
check_setup(const char *s)
{
	return strlen(s) > IMAGEDEF_SETUP_MAX ? "longer than 4096 bytes" : NULL;
}

static int
k_setup(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	return d_string_list(c, parent, key, v, IMAGEDEF_MAX_SETUP, false,
			     check_setup, &c->d->setup, &c->d->n_setup);
}

static int
k_cpus(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	int line = d_line(c, parent, key, 0, false);
	json_int_t x;

	if (!json_is_integer(v))
		return d_error(c, line, key, "expected an integer, got %s",
			       json_type_name(v));
	x = json_integer_value(v);
	if (x < 1 || x > 64)
		return d_error(
			c, line, key,
			"%" JSON_INTEGER_FORMAT " is out of range (1..64)", x);
	c->d->cpus = (int)x;
	return 0;
}

static int
k_memory(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	return d_size(c, parent, key, v, 64 * MiB, 64 * GiB, &c->d->memory);
}

static int
k_root_size(struct dctx *c, json_t *parent, const char *key, json_t *v)
{
	if (json_is_string(v) && !strcmp(json_string_value(v), "auto")) {
		c->d->root_size = 0;
		return 0;
	}
	return d_size(c, parent, key, v, 64 * MiB, TiB, &c->d->root_size);
}

static const struct key {
	const char *key;
	int (*fn)(struct dctx *c, json_t *parent, const char *key, json_t *v);
	bool debian_only; /* meaningless for base: initramfs */
} keys[] = {
	{"name", k_name, false},
	{"base", k_base, false},
	{"packages", k_packages, true},
	{"sources", k_sources, true},
	{"npm", k_npm, true},
	{"transport", k_transport, true},
	{"setup", k_setup, true},
	{"cpus", k_cpus, false},
	{"memory", k_memory, false},
	{"root_size", k_root_size, true},
};

static int
imagedef_validate(struct dctx *c, json_t *root)
{
	char q[YAML_QUOTE_BUF];
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(root))
		return d_error(c, yaml_doc_line(c->doc, NULL, NULL, 0, false),
			       NULL, "expected a mapping, got %s",
			       json_type_name(root));
	json_object_foreach (root, key, v) {
		for (i = 0; i < ARRAY_SIZE(keys); i++)
			if (!strcmp(key, keys[i].key))
				break;
		if (i == ARRAY_SIZE(keys))
			return d_error(c, d_line(c, root, key, 0, true), NULL,
				       "unknown key \"%s\"",
				       yaml_quote(q, key));
		if (keys[i].fn(c, root, key, v) < 0)
			return -EINVAL;
	}
	if (!c->d->name)
		return d_error(c, 0, NULL, "missing required key \"name\"");
	if (!json_object_get(root, "base"))
		return d_error(c, 0, NULL,
			       "missing required key \"base\" "
			       "(initramfs, or {suite: ..., variant: ...})");
	if (c->d->base == IMAGEDEF_DEBIAN)
		return 0;
	for (i = 0; i < ARRAY_SIZE(keys); i++)
		if (keys[i].debian_only && json_object_get(root, keys[i].key))
			return d_error(c, d_line(c, root, keys[i].key, 0, true),
				       keys[i].key,
				       "only for a Debian base "
				       "(base: {suite: ...}), not initramfs");
	return 0;
}

int
imagedef_parse(const char *buf, size_t len, const char *name,
	       struct imagedef **out, struct error *err)
{
	_cleanup_imagedef_ struct imagedef *d = NULL;
	struct yaml_doc doc;
	struct dctx c;
	int r;

	if (!name)
		name = "image definition";
	if (len > IMAGEDEF_MAX_BYTES)
		return error_set(err, EFBIG, "%s: larger than %d bytes", name,
				 IMAGEDEF_MAX_BYTES);
	r = yaml_doc_load(buf, len, name, &doc, err);
	if (r < 0)
		return r;
	d = xcalloc(1, sizeof(*d));
	c = (struct dctx){.name = name, .doc = &doc, .err = err, .d = d};
	r = imagedef_validate(&c, doc.root);
	yaml_doc_free(&doc);
	if (r < 0)
		return r;
	*out = steal_pointer(&d);
	return 0;
}

int
imagedef_load_file(const char *path, struct imagedef **out, struct error *err)
{
	_cleanup_free_ char *buf = NULL;
	size_t len;
	int r;

	/* One byte over the limit tells "too large" from "exactly". */
	r = read_file(path, IMAGEDEF_MAX_BYTES + 1, &buf, &len, err);
	if (r == -EFBIG)
		return error_set(err, EFBIG, "%s: larger than %d bytes", path,
				 IMAGEDEF_MAX_BYTES);
	if (r < 0)
		return r;
	return imagedef_parse(buf, len, path, out, err);
}

static void
free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
imagedef_free(struct imagedef *d)
{
	if (!d)
		return;
	free(d->name);
	free(d->suite);
	free(d->variant);
	free_strv(d->packages, d->n_packages);
	free_strv(d->setup, d->n_setup);
	free(d);
}
