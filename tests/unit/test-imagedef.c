/* test-imagedef.c - image definition files: parsing and validation */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "imagedef.h"
#include "util.h"

static struct error err;

static struct imagedef *
ok(const char *text)
{
	struct imagedef *d = NULL;
	int ret;

	error_clear(&err);
	ret = imagedef_parse(text, strlen(text), "t.yaml", &d, &err);
	cr_assert_eq(ret, 0, "unexpected error: %s", err.msg);
	cr_assert_not_null(d);
	return d;
}

static const char *
bad(const char *text)
{
	struct imagedef *d = NULL;
	int ret;

	error_clear(&err);
	ret = imagedef_parse(text, strlen(text), "t.yaml", &d, &err);
	cr_assert_lt(ret, 0, "accepted: %s", text);
	cr_assert_null(d);
	cr_assert_neq(err.msg[0], '\0');
	return err.msg;
}

/* The whole message: the file, the line, the key and what is wrong. */
#define assert_msg(text, want)                                                 \
	do {                                                                   \
		const char *_m = bad(text);                                    \
		cr_assert_str_eq(_m, want);                                    \
	} while (0)

#define assert_bad(text, want)                                                 \
	do {                                                                   \
		const char *_m = bad(text);                                    \
		cr_assert(strstr(_m, want), "message \"%s\" lacks \"%s\"", _m, \
			  want);                                               \
	} while (0)

#define DEB "name: x\nbase: {suite: bookworm}\n"

Test(good, full_definition)
{
	struct imagedef *d =
		ok("name: debian                  # a comment\n"
		   "base: {suite: bookworm, variant: minbase}\n"
		   "packages: [build-essential, dpkg-dev, g++, libc6.1-dev]\n"
		   "sources: [deb, deb-src]\n"
		   "npm: true\n"
		   "setup: [\"echo one\", \"echo 'two'\"]\n"
		   "cpus: 2\n"
		   "memory: 2G\n"
		   "root_size: 3G\n");

	cr_assert_str_eq(d->name, "debian");
	cr_assert_eq(d->base, IMAGEDEF_DEBIAN);
	cr_assert_str_eq(d->suite, "bookworm");
	cr_assert_str_eq(d->variant, "minbase");
	cr_assert_eq(d->n_packages, 4);
	cr_assert_str_eq(d->packages[2], "g++");
	cr_assert(d->deb_src);
	cr_assert(d->npm);
	cr_assert_eq(d->n_setup, 2);
	cr_assert_str_eq(d->setup[1], "echo 'two'");
	cr_assert_eq(d->cpus, 2);
	cr_assert_eq(d->memory, 2ULL << 30);
	cr_assert_eq(d->root_size, 3ULL << 30);
	imagedef_free(d);
}

Test(good, defaults)
{
	struct imagedef *d = ok("name: x\nbase:\n  suite: trixie\n");

	cr_assert_str_eq(d->variant, "buildd");
	cr_assert_eq(d->n_packages, 0);
	cr_assert_not(d->deb_src);
	cr_assert_not(d->npm);
	cr_assert_eq(d->n_setup, 0);
	cr_assert_eq(d->cpus, 0);
	cr_assert_eq(d->memory, 0);
	cr_assert_eq(d->root_size, 0);
	imagedef_free(d);
}

Test(good, initramfs)
{
	struct imagedef *d = ok("name: minimal\nbase: initramfs\ncpus: 1\n"
				"memory: 512M\n");

	cr_assert_eq(d->base, IMAGEDEF_INITRAMFS);
	cr_assert_null(d->suite);
	cr_assert_eq(d->memory, 512ULL << 20);
	imagedef_free(d);
}

Test(good, sizes_as_bytes_and_auto)
{
	struct imagedef *d = ok(DEB "memory: 134217728\nroot_size: auto\n");

	cr_assert_eq(d->memory, 128ULL << 20);
	cr_assert_eq(d->root_size, 0);
	imagedef_free(d);
}

Test(good, setup_may_repeat_a_command)
{
	struct imagedef *d = ok(DEB "setup: [\"true\", \"true\"]\n");

	cr_assert_eq(d->n_setup, 2);
	imagedef_free(d);
}

/* The definitions shipped in images/ (make unit runs from the tree). */
Test(good, shipped_files)
{
	static const char *const files[] = {
		"images/minimal.yaml",
		"images/debian.yaml",
		"images/debian-node.yaml",
		"images/debian-ssh.yaml",
	};

	for (size_t i = 0; i < ARRAY_SIZE(files); i++) {
		struct imagedef *d = NULL;

		error_clear(&err);
		cr_assert_eq(imagedef_load_file(files[i], &d, &err), 0,
			     "%s: %s", files[i], err.msg);
		imagedef_free(d);
	}
}

Test(good, debian_node_file)
{
	struct imagedef *d = NULL;

	cr_assert_eq(imagedef_load_file("images/debian-node.yaml", &d, &err), 0,
		     "%s", err.msg);
	cr_assert_str_eq(d->name, "debian-node");
	cr_assert(d->npm);
	cr_assert(d->deb_src);
	cr_assert_str_eq(d->packages[d->n_packages - 1], "npm");
	cr_assert_eq(d->memory, 2ULL << 30);
	imagedef_free(d);
}

Test(errors, unknown_key_names_key_and_line)
{
	assert_msg(DEB "\nflavour: vanilla\n",
		   "t.yaml:4: unknown key \"flavour\"");
	assert_msg("name: x\nbase:\n  suite: bookworm\n  mirror: y\n",
		   "t.yaml:4: base.mirror: unknown key (expected suite, "
		   "variant)");
}

Test(errors, wrong_types)
{
	assert_msg("name: 3\nbase: initramfs\n",
		   "t.yaml:1: name: expected a string, got an integer");
	assert_msg("name: x\nbase: [a]\n",
		   "t.yaml:2: base: expected \"initramfs\" or a mapping "
		   "{suite: ..., variant: ...}, got a list");
	assert_msg(DEB "packages: git\n",
		   "t.yaml:3: packages: expected a list, got a string");
	assert_msg(DEB "packages: [git, 7]\n",
		   "t.yaml:3: packages[1]: expected a string, got an integer");
	assert_msg(DEB "npm: yes\n",
		   "t.yaml:3: npm: expected true or false, got a string");
	assert_msg(DEB "cpus: \"2\"\n",
		   "t.yaml:3: cpus: expected an integer, got a string");
	assert_msg(DEB "memory: true\n",
		   "t.yaml:3: memory: expected a size, got a boolean");
	assert_msg(DEB "setup: {a: b}\n",
		   "t.yaml:3: setup: expected a list, got a mapping");
	assert_msg("[a, b]\n", "t.yaml: expected a mapping, got a list");
}

Test(errors, names)
{
	assert_bad("name: .hidden\nbase: initramfs\n",
		   "t.yaml:1: name: bad image name \".hidden\"");
	assert_bad("name: a/b\nbase: initramfs\n", "bad image name \"a/b\"");
	assert_bad("name: \"\"\nbase: initramfs\n",
		   "t.yaml:1: name: must not be empty");
	cr_assert(imagedef_name_ok("debian-node_2.x"));
	cr_assert_not(imagedef_name_ok("a b"));
	cr_assert_not(imagedef_name_ok(".."));
	cr_assert_not(imagedef_name_ok(""));
	{
		char name[80];

		memset(name, 'a', 64);
		name[64] = '\0';
		cr_assert(imagedef_name_ok(name));
		name[64] = 'a';
		name[65] = '\0';
		cr_assert_not(imagedef_name_ok(name));
	}
}

Test(errors, base)
{
	assert_msg("name: x\nbase: debian\n",
		   "t.yaml:2: base: \"debian\": expected \"initramfs\" or a "
		   "mapping {suite: ..., variant: ...}");
	assert_msg("name: x\nbase: {variant: buildd}\n",
		   "t.yaml:2: base: missing required key \"suite\"");
	assert_bad("name: x\nbase: {suite: Bookworm}\n",
		   "t.yaml:2: base.suite: bad suite \"Bookworm\"");
	assert_bad("name: x\nbase: {suite: \"--opt\"}\n",
		   "base.suite: bad suite");
	assert_bad("name: x\nbase:\n  suite: bookworm\n  variant: fat\n",
		   "t.yaml:4: base.variant: \"fat\" is not an mmdebstrap "
		   "variant");
}

Test(errors, required_keys)
{
	assert_msg("base: initramfs\n",
		   "t.yaml: missing required key \"name\"");
	assert_bad("name: x\n", "missing required key \"base\"");
}

Test(errors, debian_keys_refused_for_initramfs)
{
	assert_msg("name: x\nbase: initramfs\n\npackages: [git]\n",
		   "t.yaml:4: packages: only for a Debian base (base: "
		   "{suite: ...}), not initramfs");
	assert_bad("name: x\nbase: initramfs\nsetup: [\"true\"]\n",
		   "t.yaml:3: setup: only for a Debian base");
	assert_bad("name: x\nbase: initramfs\nroot_size: 1G\n",
		   "t.yaml:3: root_size: only");
	assert_bad("name: x\nbase: initramfs\nsources: [deb]\n",
		   "t.yaml:3: sources: only");
	assert_bad("name: x\nbase: initramfs\nnpm: false\n",
		   "t.yaml:3: npm: only");
}

Test(errors, packages)
{
	assert_msg(DEB "packages:\n  - git\n  - \"-oAPT::Foo=1\"\n",
		   "t.yaml:5: packages[1]: \"-oAPT::Foo=1\": not a Debian "
		   "package name ([a-z0-9][a-z0-9+.-]+)");
	assert_bad(DEB "packages: [Git]\n", "packages[0]: \"Git\": not a");
	assert_bad(DEB "packages: [g]\n", "packages[0]: \"g\": not a");
	assert_bad(DEB "packages: [\"?name(x)\"]\n", "not a Debian package");
	assert_bad(DEB "packages: [\"./x.deb\"]\n", "not a Debian package");
	assert_bad(DEB "packages: [git, \"\"]\n",
		   "packages[1]: must not be empty");
	assert_msg(DEB "packages: [git, make, git]\n",
		   "t.yaml:3: packages[2]: \"git\" is listed twice");
}

Test(errors, sources)
{
	assert_msg(DEB "sources: [deb-src]\n",
		   "t.yaml:3: sources: deb is needed (nothing is installed "
		   "without it)");
	assert_msg(DEB "sources: [deb, rpm]\n",
		   "t.yaml:3: sources[1]: \"rpm\": expected deb or deb-src");
	assert_bad(DEB "sources: [deb, deb]\n", "sources[1]: \"deb\" is "
						"listed twice");
	assert_bad(DEB "sources: []\n", "sources: deb is needed");
}

Test(errors, numbers_and_sizes)
{
	assert_msg(DEB "cpus: 0\n",
		   "t.yaml:3: cpus: 0 is out of range (1..64)");
	assert_bad(DEB "cpus: 65\n", "cpus: 65 is out of range");
	assert_bad(DEB "memory: 1M\n", "t.yaml:3: memory: 1048576 bytes is "
				       "out of range (64M..64G)");
	assert_bad(DEB "memory: 65G\n", "memory: 69793218560 bytes is out");
	assert_bad(DEB "memory: lots\n", "t.yaml:3: memory: bad size "
					 "\"lots\"");
	assert_bad(DEB "memory: -5\n", "memory: bad size -5: negative");
	assert_bad(DEB "root_size: 1M\n", "root_size: 1048576 bytes is out");
	assert_bad(DEB "root_size: 2T\n", "root_size:");
	assert_bad(DEB "root_size: automatic\n", "root_size: bad size");
}

Test(limits, package_count_and_length)
{
	struct buf b = {0};
	struct imagedef *d;
	char pkg[160];
	int i;

	buf_append(&b, DEB "packages:\n", strlen(DEB "packages:\n"));
	for (i = 0; i < IMAGEDEF_MAX_PACKAGES; i++) {
		snprintf(pkg, sizeof(pkg), "  - pkg%d\n", i);
		buf_append(&b, pkg, strlen(pkg));
	}
	buf_append(&b, "", 1);
	d = ok(b.data);
	cr_assert_eq(d->n_packages, IMAGEDEF_MAX_PACKAGES);
	imagedef_free(d);
	b.len--;
	buf_append(&b, "  - one-more\n", strlen("  - one-more\n") + 1);
	assert_msg(b.data, "t.yaml:3: packages: 257 entries, at most 256 "
			   "allowed");
	buf_free(&b);

	memset(pkg, 'a', IMAGEDEF_PACKAGE_MAX);
	snprintf(pkg + IMAGEDEF_PACKAGE_MAX, sizeof(pkg) - IMAGEDEF_PACKAGE_MAX,
		 "\n");
	{
		char *text = xasprintf(DEB "packages: [%.*s]\n",
				       IMAGEDEF_PACKAGE_MAX, pkg);

		imagedef_free(ok(text));
		free(text);
		text = xasprintf(DEB "packages: [%.*sb]\n",
				 IMAGEDEF_PACKAGE_MAX, pkg);
		assert_bad(text, "not a Debian package name");
		free(text);
	}
}

Test(limits, setup_count_and_length)
{
	struct buf b = {0};
	char *cmd, *text;
	int i;

	buf_append(&b, DEB "setup:\n", strlen(DEB "setup:\n"));
	for (i = 0; i <= IMAGEDEF_MAX_SETUP; i++)
		buf_append(&b, "  - \"true\"\n", strlen("  - \"true\"\n"));
	buf_append(&b, "", 1);
	assert_msg(b.data, "t.yaml:3: setup: 33 entries, at most 32 allowed");
	buf_free(&b);

	cmd = xmalloc(IMAGEDEF_SETUP_MAX + 2);
	memset(cmd, 'x', IMAGEDEF_SETUP_MAX + 1);
	cmd[IMAGEDEF_SETUP_MAX + 1] = '\0';
	text = xasprintf(DEB "setup: [\"%s\"]\n", cmd + 1);
	imagedef_free(ok(text));
	free(text);
	text = xasprintf(DEB "setup: [\"true\", \"%s\"]\n", cmd);
	assert_bad(text, "t.yaml:3: setup[1]: \"xxxx");
	assert_bad(text, "...\": longer than 4096 bytes");
	free(text);
	free(cmd);
}

Test(limits, document_size)
{
	size_t n = IMAGEDEF_MAX_BYTES + 1;
	char *text = xmalloc(n + 1);
	struct imagedef *d = NULL;

	memset(text, '#', n);
	text[n] = '\0';
	cr_assert_eq(imagedef_parse(text, n, "big.yaml", &d, &err), -EFBIG);
	cr_assert_str_eq(err.msg, "big.yaml: larger than 65536 bytes");
	free(text);
}

Test(yaml, reader_limits_apply)
{
	assert_bad("name: &a x\nbase: initramfs\n",
		   "t.yaml:1: name: anchors are not supported");
	assert_bad("name: x\nbase: initramfs\n---\nname: y\n",
		   "only one YAML document");
	assert_bad("name: [x\n", "t.yaml:2: YAML syntax error");
	assert_msg("# nothing\n", "t.yaml: empty document");
	assert_bad("name: x\nname: y\nbase: initramfs\n",
		   "t.yaml:2: name: duplicate key");
	assert_bad("name: \"a\\0b\"\nbase: initramfs\n", "NUL byte");
}

Test(files, missing_file)
{
	struct imagedef *d = NULL;

	cr_assert_lt(imagedef_load_file("/nonexistent/x.yaml", &d, &err), 0);
	cr_assert(strstr(err.msg, "/nonexistent/x.yaml"), "%s", err.msg);
	cr_assert_null(d);
}

Test(good, transport)
{
	struct imagedef *d = ok(DEB);

	cr_expect(!d->ssh);
	imagedef_free(d);
	d = ok(DEB "transport: ssh\n");
	cr_expect(d->ssh);
	imagedef_free(d);
	d = ok(DEB "transport: agent\n");
	cr_expect(!d->ssh);
	imagedef_free(d);
	assert_bad(DEB "transport: rsh\n", "expected agent or ssh");
	assert_bad("name: x\nbase: initramfs\ntransport: ssh\n",
		   "transport");
}
