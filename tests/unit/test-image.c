/* test-image.c - image.json: root disk, defaults, package host lists */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "image.h"
#include "recipe.h"
#include "util.h"

static struct error err;

#define BASE "\"name\":\"d\",\"kernel\":\"vmlinuz\",\"initrd\":\"initrd.img\""

static int
parse(const char *json, struct image_meta *m)
{
	error_clear(&err);
	return image_meta_parse(json, strlen(json), "image.json", m, &err);
}

Test(image, root_defaults_and_hosts)
{
	struct image_meta m;

	cr_assert_eq(parse("{" BASE ",\"root\":\"rootfs.img\",\"cpus\":2,"
			   "\"memory\":2147483648,\"hosts\":{\"apt\":"
			   "[\"mirror.example:80\",\"sec.example:80\"],"
			   "\"npm\":[]}}", &m), 0, "%s", err.msg);
	cr_assert_str_eq(m.root, "rootfs.img");
	cr_assert_eq(m.cpus, 2);
	cr_assert_eq(m.memory, 2ull << 30);
	cr_assert_eq(m.n_hosts, 2);
	cr_assert_str_eq(m.hosts[0].name, "apt");
	cr_assert_eq(m.hosts[0].n, 2);
	cr_assert_str_eq(m.hosts[0].entries[1], "sec.example:80");
	cr_assert_str_eq(m.hosts[1].name, "npm");
	cr_assert_eq(m.hosts[1].n, 0);
	image_meta_free(&m);
}

Test(image, step_env_by_network)
{
	struct image_meta m;

	cr_assert_eq(parse("{" BASE ",\"step_env\":{\"none\":"
			   "[\"npm_config_offline=true\",\"A=\"],"
			   "\"fetch\":[\"B=x=y\"]}}", &m), 0, "%s", err.msg);
	cr_assert_eq(m.n_step_env[0], 2);
	cr_expect_str_eq(m.step_env[0][0], "npm_config_offline=true");
	cr_expect_str_eq(m.step_env[0][1], "A=");
	cr_assert_eq(m.n_step_env[1], 1);
	cr_expect_str_eq(m.step_env[1][0], "B=x=y");
	image_meta_free(&m);
}

Test(image, minimal_has_none)
{
	struct image_meta m;

	cr_assert_eq(parse("{" BASE "}", &m), 0, "%s", err.msg);
	cr_assert_null(m.root);
	cr_assert_eq(m.cpus, 0);
	cr_assert_eq(m.memory, 0);
	cr_assert_eq(m.n_hosts, 0);
	image_meta_free(&m);
}

Test(image, refused)
{
	static const struct {
		const char *json, *want;
	} cases[] = {
		/* the root is a file of the image, never a path out of it */
		{ "{" BASE ",\"root\":\"../etc/shadow\"}", "bad \"root\"" },
		{ "{" BASE ",\"root\":\"/dev/sda\"}", "bad \"root\"" },
		{ "{" BASE ",\"root\":7}", "\"root\" must be a string" },
		{ "{" BASE ",\"cpus\":0}", "\"cpus\" must be an integer 1..64" },
		{ "{" BASE ",\"cpus\":\"2\"}", "\"cpus\"" },
		{ "{" BASE ",\"memory\":1024}", "\"memory\" must be bytes" },
		{ "{" BASE ",\"hosts\":[]}", "\"hosts\" must be an object" },
		{ "{" BASE ",\"hosts\":{\"APT\":[]}}", "bad list name" },
		{ "{" BASE ",\"hosts\":{\"apt\":\"x:80\"}}", "hosts.apt must be" },
		{ "{" BASE ",\"hosts\":{\"apt\":[\"nohostport\"]}}",
		  "hosts.apt[0]" },
		{ "{" BASE ",\"hosts\":{\"apt\":[80]}}", "not a string" },
		/* an image's list is host:port only: never another list */
		{ "{" BASE ",\"hosts\":{\"apt\":[\"image:npm\"]}}",
		  "hosts.apt[0]" },
		{ "{" BASE ",\"step_env\":[]}", "\"step_env\" must be" },
		{ "{" BASE ",\"step_env\":{\"all\":[]}}", "\"none\" or" },
		{ "{" BASE ",\"step_env\":{\"none\":\"A=1\"}}",
		  "step_env.none must be" },
		{ "{" BASE ",\"step_env\":{\"none\":[\"A\"]}}",
		  "step_env.none[0]" },
		{ "{" BASE ",\"step_env\":{\"none\":[\"=1\"]}}",
		  "step_env.none[0]" },
		{ "{" BASE ",\"step_env\":{\"fetch\":[\"1A=x\"]}}",
		  "step_env.fetch[0]" },
		{ "{" BASE ",\"step_env\":{\"none\":[\"A-B=x\"]}}",
		  "step_env.none[0]" },
		{ "{" BASE ",\"step_env\":{\"none\":[\"A=x\\ny\"]}}",
		  "step_env.none[0]" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct image_meta m;

		cr_expect_lt(parse(cases[i].json, &m), 0, "accepted %s",
			     cases[i].json);
		cr_expect(strstr(err.msg, cases[i].want), "%s: %s",
			  cases[i].json, err.msg);
	}
}

static void __attribute__((format(printf, 2, 3)))
buf_printf(struct buf *b, const char *fmt, ...)
{
	char tmp[128];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	cr_assert(n >= 0 && (size_t)n < sizeof(tmp));
	buf_append(b, tmp, n);
}

Test(image, too_many_lists_or_entries)
{
	struct buf b = { 0 };
	struct image_meta m;

	buf_printf(&b, "{" BASE ",\"hosts\":{");
	for (int i = 0; i <= IMAGE_HOSTS_MAX; i++)
		buf_printf(&b, "%s\"l%d\":[]", i ? "," : "", i);
	buf_printf(&b, "}}");
	buf_append(&b, "", 1);
	cr_expect_lt(parse(b.data, &m), 0);
	buf_free(&b);

	buf_printf(&b, "{" BASE ",\"hosts\":{\"apt\":[");
	for (int i = 0; i <= IMAGE_HOST_ENTRIES_MAX; i++)
		buf_printf(&b, "%s\"h%d.example:80\"", i ? "," : "", i);
	buf_printf(&b, "]}}");
	buf_append(&b, "", 1);
	cr_expect_lt(parse(b.data, &m), 0);
	buf_free(&b);
}

static int
devnull(void)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	return fd;
}

/* A client's image: what image.json says and the fds sent must agree. */
Test(image, parts_must_agree_about_the_root)
{
	static const char with[] = "{" BASE ",\"root\":\"rootfs.img\"}";
	static const char without[] = "{" BASE "}";
	struct image img;

	cr_expect_lt(image_from_parts("/i", with, strlen(with), false,
				      devnull(), devnull(), -1, &img, &err),
		     0);
	cr_expect(strstr(err.msg, "disagree"), "%s", err.msg);
	cr_expect_lt(image_from_parts("/i", without, strlen(without), false,
				      devnull(), devnull(), devnull(), &img,
				      &err),
		     0);
	cr_assert_eq(image_from_parts("/i", with, strlen(with), false,
				      devnull(), devnull(), devnull(), &img,
				      &err),
		     0, "%s", err.msg);
	cr_expect_str_eq(img.root, "/i/rootfs.img");
	cr_expect_geq(img.root_fd, 0);
	image_close(&img);
}

Test(image, dup_keeps_root_and_hosts)
{
	static const char json[] = "{" BASE ",\"root\":\"r.img\",\"cpus\":3,"
				   "\"hosts\":{\"apt\":[\"a.example:80\"]},"
				   "\"step_env\":{\"none\":[\"X=1\"]}}";
	struct image img, copy;
	const struct image_hosts *h;

	cr_assert_eq(image_from_parts("/i", json, strlen(json), false,
				      devnull(), devnull(), devnull(), &img,
				      &err),
		     0, "%s", err.msg);
	cr_assert_eq(image_dup(&img, &copy, &err), 0, "%s", err.msg);
	image_close(&img);
	cr_expect_neq(copy.root_fd, -1);
	cr_expect_eq(copy.cpus, 3);
	h = image_hosts_get(&copy, "apt");
	cr_assert_not_null(h);
	cr_expect_eq(h->n, 1);
	cr_expect_str_eq(h->entries[0], "a.example:80");
	cr_expect_null(image_hosts_get(&copy, "npm"));
	cr_assert_eq(copy.n_step_env[0], 1);
	cr_expect_str_eq(copy.step_env[0][0], "X=1");
	cr_expect_eq(copy.n_step_env[1], 0);
	image_close(&copy);
}

/* A recipe names an image's list as image:NAME; anything else is bad. */
Test(image, recipe_allow_names_a_list)
{
	static const char *const good[] = { "image:apt", "image:npm",
					    "image:my-mirror_2" };
	static const char *const bad[] = { "image:", "image:APT",
					   "image:a b", "image:../x",
					   "image:apt:80" };
	char text[256];
	struct recipe *r;

	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		snprintf(text, sizeof(text),
			 "allow: [\"%s\"]\nsteps: [{name: a, run: x}]\n",
			 good[i]);
		r = NULL;
		cr_expect_eq(recipe_load_buffer(text, strlen(text), "r.yaml",
						NULL, &r, &err),
			     0, "%s: %s", good[i], err.msg);
		recipe_free(r);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		snprintf(text, sizeof(text),
			 "allow: [\"%s\"]\nsteps: [{name: a, run: x}]\n",
			 bad[i]);
		r = NULL;
		cr_expect_lt(recipe_load_buffer(text, strlen(text), "r.yaml",
						NULL, &r, &err),
			     0, "accepted %s", bad[i]);
		cr_expect(strstr(err.msg, "r.yaml:1"), "%s", err.msg);
		recipe_free(r);
	}
}

Test(image, recipe_says_cpus_or_not)
{
	static const char said[] = "cpus: 1\nsteps: [{name: a, run: x}]\n";
	static const char unsaid[] = "steps: [{name: a, run: x}]\n";
	struct recipe *r = NULL;

	cr_assert_eq(recipe_load_buffer(said, strlen(said), "r.yaml", NULL,
					&r, &err),
		     0);
	cr_expect(r->cpus_set);
	cr_expect_not(r->memory_set);
	recipe_free(r);
	r = NULL;
	cr_assert_eq(recipe_load_buffer(unsaid, strlen(unsaid), "r.yaml", NULL,
					&r, &err),
		     0);
	cr_expect_not(r->cpus_set);
	cr_expect_eq(r->cpus, 1);
	recipe_free(r);
}

Test(image, transport)
{
	struct image_meta m;

	cr_assert_eq(parse("{" BASE ",\"root\":\"r.img\"}", &m), 0);
	cr_expect(!m.ssh);
	image_meta_free(&m);
	cr_assert_eq(parse("{" BASE ",\"root\":\"r.img\",\"transport\":"
			   "\"ssh\"}", &m), 0, "%s", err.msg);
	cr_expect(m.ssh);
	image_meta_free(&m);
	cr_assert_eq(parse("{" BASE ",\"transport\":\"agent\"}", &m), 0);
	cr_expect(!m.ssh);
	image_meta_free(&m);
	/* sshd's init lives in a root */
	cr_expect_lt(parse("{" BASE ",\"transport\":\"ssh\"}", &m), 0);
	cr_expect(strstr(err.msg, "needs a \"root\""), "%s", err.msg);
	cr_expect_lt(parse("{" BASE ",\"root\":\"r.img\",\"transport\":"
			   "\"rsh\"}", &m), 0);
	cr_expect_lt(parse("{" BASE ",\"root\":\"r.img\",\"transport\":1}",
			   &m), 0);
}
