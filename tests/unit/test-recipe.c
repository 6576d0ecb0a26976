/* test-recipe.c - recipe parsing and validation */
#include <criterion/criterion.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "recipe.h"
#include "util.h"

static struct error err;

/* Parse YAML/JSON text that must be accepted. */
static struct recipe *
ok(const char *text)
{
	struct recipe *r = NULL;
	int ret;

	error_clear(&err);
	ret = recipe_load_buffer(text, strlen(text), "t.yaml", "/", &r, &err);
	cr_assert_eq(ret, 0, "unexpected error: %s", err.msg);
	cr_assert_not_null(r);
	return r;
}

/* Parse text that must be rejected; return the message. */
static const char *
bad(const char *text)
{
	struct recipe *r = NULL;
	int ret;

	error_clear(&err);
	ret = recipe_load_buffer(text, strlen(text), "t.yaml", "/", &r, &err);
	cr_assert_lt(ret, 0, "accepted: %s", text);
	cr_assert_null(r);
	cr_assert_neq(err.msg[0], '\0');
	return err.msg;
}

#define assert_bad(text, want)                                                 \
	do {                                                                   \
		const char *_m = bad(text);                                    \
		cr_assert(strstr(_m, want), "message \"%s\" lacks \"%s\"", _m, \
			  want);                                               \
	} while (0)

#define STEPS "steps:\n  - name: a\n    run: x\n"

static char tmpdir[64];

static void
make_tmpdir(void)
{
	strcpy(tmpdir, "/tmp/test-recipe.XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void
remove_tmpdir(void)
{
	rm_rf(tmpdir);
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static const char design_example[] =
	"image: minimal              # a name under images/out/\n"
	"cpus: 1\n"
	"memory: 512M\n"
	"source: .                   # copied to /src in the guest\n"
	"env: {LANG: C.UTF-8}\n"
	"allow:                      # proxy allowlist for fetch steps\n"
	"  - \"127.0.0.1:8080\"\n"
	"limits:\n"
	"  wall_time: 10m\n"
	"  cpu_time: 5m              # host CPU time of the VM\n"
	"  boot_timeout: 60s\n"
	"  disk: 2G                  # guest-writable disk\n"
	"  log_bytes: 10M\n"
	"  net_bytes: 100M\n"
	"  artifacts_bytes: 100M\n"
	"steps:\n"
	"  - name: deps\n"
	"    network: fetch\n"
	"    run: apt-get install -y libfoo-dev\n"
	"  - name: build\n"
	"    run: make               # network: none is the default\n"
	"    timeout: 5m\n"
	"  - name: test\n"
	"    run: make check\n"
	"artifacts:\n"
	"  - \"out/*.deb\"             # globs relative to /src\n";

Test(recipe, design_example, .init = make_tmpdir, .fini = remove_tmpdir)
{
	char path[PATH_MAX], real[PATH_MAX];
	struct recipe *r = NULL;

	snprintf(path, sizeof(path), "%s/qctl.yaml", tmpdir);
	write_file(path, design_example);
	cr_assert_eq(recipe_load_file(path, &r, &err), 0, "%s", err.msg);
	cr_assert_str_eq(r->path, path);
	cr_assert_str_eq(r->image, "minimal");
	cr_assert_eq(r->cpus, 1);
	cr_assert_eq(r->memory, 512ull << 20);
	cr_assert_not_null(realpath(tmpdir, real));
	cr_assert_str_eq(r->source, real);
	cr_assert_eq(r->n_env, 1);
	cr_assert_str_eq(r->env[0], "LANG=C.UTF-8");
	cr_assert_eq(r->n_allow, 1);
	cr_assert_str_eq(r->allow[0], "127.0.0.1:8080");
	cr_assert_eq(r->limits.wall_time_ms, 600000);
	cr_assert_eq(r->limits.cpu_time_ms, 300000);
	cr_assert_eq(r->limits.boot_timeout_ms, 60000);
	cr_assert_eq(r->limits.disk, 2ull << 30);
	cr_assert_eq(r->limits.log_bytes, 10ull << 20);
	cr_assert_eq(r->limits.net_bytes, 100ull << 20);
	cr_assert_eq(r->limits.artifacts_bytes, 100ull << 20);
	cr_assert_eq(r->n_steps, 3);
	cr_assert_str_eq(r->steps[0].name, "deps");
	cr_assert(r->steps[0].fetch);
	cr_assert_str_eq(r->steps[0].run, "apt-get install -y libfoo-dev");
	cr_assert_eq(r->steps[0].timeout_ms, 0);
	cr_assert_str_eq(r->steps[1].name, "build");
	cr_assert_not(r->steps[1].fetch);
	cr_assert_str_eq(r->steps[1].run, "make");
	cr_assert_eq(r->steps[1].timeout_ms, 300000);
	cr_assert_str_eq(r->steps[2].name, "test");
	cr_assert_str_eq(r->steps[2].run, "make check");
	cr_assert_eq(r->n_artifacts, 1);
	cr_assert_str_eq(r->artifacts[0], "out/*.deb");
	recipe_free(r);
}

Test(recipe, defaults)
{
	struct recipe *r = ok(STEPS);

	cr_assert_null(r->path);
	cr_assert_str_eq(r->image, "minimal");
	cr_assert_eq(r->cpus, 1);
	cr_assert_eq(r->memory, 512ull << 20);
	cr_assert_null(r->source);
	cr_assert_eq(r->n_env, 0);
	cr_assert_eq(r->n_allow, 0);
	cr_assert_eq(r->n_artifacts, 0);
	cr_assert_eq(r->limits.wall_time_ms, 3600000);
	cr_assert_eq(r->limits.cpu_time_ms, 0);
	cr_assert_eq(r->limits.boot_timeout_ms, 60000);
	cr_assert_eq(r->limits.disk, 2ull << 30);
	cr_assert_eq(r->limits.log_bytes, 64ull << 20);
	cr_assert_eq(r->limits.net_bytes, 1ull << 30);
	cr_assert_eq(r->limits.artifacts_bytes, 1ull << 30);
	cr_assert_eq(r->n_steps, 1);
	cr_assert_not(r->steps[0].fetch);
	cr_assert_eq(r->steps[0].timeout_ms, 0);
	recipe_free(r);
}

Test(recipe, integers_for_sizes_and_durations)
{
	struct recipe *r = ok("memory: 134217728\ncpus: 4\n"
			      "limits: {wall_time: 90, disk: 1048576}\n" STEPS
			      "    timeout: 0\n");

	cr_assert_eq(r->memory, 128ull << 20);
	cr_assert_eq(r->cpus, 4);
	cr_assert_eq(r->limits.wall_time_ms, 90000);
	cr_assert_eq(r->limits.disk, 1ull << 20);
	cr_assert_eq(r->steps[0].timeout_ms, 0);
	recipe_free(r);
}

Test(recipe, json_form)
{
	struct recipe *r = ok(
		"  {\"image\": \"debian\", \"cpus\": 2, \"memory\": \"1G\",\n"
		"   \"env\": {\"N\": 3, \"X\": 1.5, \"S\": \"s p\"},\n"
		"   \"allow\": [\"[::1]:443\"],\n"
		"   \"limits\": {\"cpu_time\": \"1h30m\"},\n"
		"   \"steps\": [{\"name\": \"b\", \"run\": \"make\",\n"
		"              \"network\": \"fetch\", \"timeout\": 30}]}\n");

	cr_assert_str_eq(r->image, "debian");
	cr_assert_eq(r->cpus, 2);
	cr_assert_eq(r->memory, 1ull << 30);
	cr_assert_eq(r->n_env, 3);
	cr_assert_str_eq(r->env[0], "N=3");
	cr_assert_str_eq(r->env[1], "X=1.5");
	cr_assert_str_eq(r->env[2], "S=s p");
	cr_assert_str_eq(r->allow[0], "[::1]:443");
	cr_assert_eq(r->limits.cpu_time_ms, 5400000);
	cr_assert(r->steps[0].fetch);
	cr_assert_eq(r->steps[0].timeout_ms, 30000);
	recipe_free(r);
}

Test(recipe, json_that_yaml_refuses)
{
	/* An escaped surrogate pair is valid JSON but not YAML 1.1. */
	struct recipe *r = ok("{\"steps\": [{\"name\": \"a\", "
			      "\"run\": \"echo \\ud83d\\ude00\"}]}");

	cr_assert_str_eq(r->steps[0].run, "echo \xf0\x9f\x98\x80");
	recipe_free(r);
	assert_bad("{\"steps\": [{\"name\": \"a\", \"run\": \"\\ud83d\"}],}",
		   "t.yaml:1:");
	assert_bad("{\"steps\": 1, \"x\": \"\\ud83d\\ude00\"}",
		   "t.yaml: steps: expected a list");
}

Test(recipe, from_json)
{
	json_error_t jerr;
	json_t *root = json_loads("{\"steps\": [{\"name\": \"a\", \"run\": "
				  "\"x\"}], \"cpus\": 3}",
				  0, &jerr);
	struct recipe *r = NULL;

	cr_assert_not_null(root);
	cr_assert_eq(recipe_from_json(root, "api", NULL, &r, &err), 0, "%s",
		     err.msg);
	cr_assert_eq(r->cpus, 3);
	cr_assert_null(r->path);
	recipe_free(r);
	json_decref(root);

	root = json_loads("{\"steps\": [{\"name\": \"a\"}]}", 0, &jerr);
	cr_assert_lt(recipe_from_json(root, "api", NULL, &r, &err), 0);
	cr_assert_str_eq(err.msg,
			 "api: steps[0]: missing required key \"run\"");
	json_decref(root);

	root = json_array();
	cr_assert_lt(recipe_from_json(root, "api", NULL, &r, &err), 0);
	cr_assert(strstr(err.msg, "expected a mapping"), "%s", err.msg);
	json_decref(root);
	cr_assert_lt(recipe_from_json(NULL, "api", NULL, &r, &err), 0);
}

Test(recipe, unknown_keys)
{
	assert_bad("image: minimal\n" STEPS "imgae: x\n",
		   "t.yaml:5: imgae: unknown key");
	assert_bad(STEPS "limits:\n  wall_time: 1m\n\n  cpu_tim: 5m\n",
		   "t.yaml:7: limits.cpu_tim: unknown key");
	assert_bad(STEPS "    netwrk: fetch\n",
		   "t.yaml:4: steps[0].netwrk: unknown key");
	/* Odd keys are quoted and escaped, never printed raw. */
	assert_bad(STEPS "\"a b\\e\": 1\n",
		   "t.yaml:4: [\"a b\\x1b\"]: unknown");
}

Test(recipe, json_errors_have_lines)
{
	/* JSON that libyaml reads gets line numbers like YAML. */
	assert_bad("{\"steps\": [{\"name\": \"a\", \"run\": \"x\"}],\n"
		   " \"limits\": {\"cpu_tim\": 1}}",
		   "t.yaml:2: limits.cpu_tim: unknown key");
	assert_bad("{\"steps\": [{\"name\": \"a\", \"run\": \"x\"},\n"
		   "            {\"name\": \"a\", \"run\": \"y\"}]}",
		   "t.yaml:2: steps[1].name: duplicate step name \"a\"");
}

Test(recipe, bad_size)
{
	assert_bad("cpus: 1\n" STEPS "memory: 12X\n",
		   "t.yaml:5: memory: bad size \"12X\"");
	assert_bad(STEPS "memory: 1.5G\n", "memory: bad size \"1.5G\"");
	assert_bad(STEPS "memory: -1\n", "memory: bad size -1: negative");
	assert_bad(STEPS "memory: 32M\n", "memory: too small (at least 64M)");
	assert_bad(STEPS "memory: 65G\n", "memory: too large (at most 64G)");
	assert_bad(STEPS "memory: 99999999999999999999\n",
		   "t.yaml:4: memory: integer 99999999999999999999 out of");
	assert_bad(STEPS "limits:\n  disk: 99999999999999999999G\n",
		   "t.yaml:5: limits.disk: bad size");
	assert_bad(STEPS "limits:\n  disk: 9223372036854775808\n",
		   "limits.disk: integer");
	assert_bad(STEPS "limits:\n  disk: 16E\n", "limits.disk: bad size");
	assert_bad(STEPS "limits:\n  disk: 100k\n", "limits.disk: too small");
	assert_bad(STEPS "limits:\n  log_bytes: true\n",
		   "limits.log_bytes: expected a size, got a boolean");
}

Test(recipe, bad_duration)
{
	assert_bad(STEPS "limits:\n  wall_time: 10x\n",
		   "t.yaml:5: limits.wall_time: bad duration \"10x\"");
	assert_bad(STEPS "limits:\n  wall_time: 0\n",
		   "limits.wall_time: must be greater than zero");
	assert_bad(STEPS "limits:\n  boot_timeout: 0s\n",
		   "limits.boot_timeout: must be greater than zero");
	assert_bad(STEPS "    timeout: -5\n",
		   "t.yaml:4: steps[0].timeout: bad duration -5: negative");
	assert_bad(STEPS "    timeout: 9223372036854775807\n",
		   "steps[0].timeout: bad duration 9223372036854775807: too");
	assert_bad(STEPS "    timeout: [1]\n",
		   "steps[0].timeout: expected a duration, got a list");
}

Test(recipe, missing_and_empty_steps)
{
	assert_bad("cpus: 2\n", "t.yaml: missing required key \"steps\"");
	assert_bad("cpus: 2\nsteps: []\n",
		   "t.yaml:2: steps: at least one step is required");
	assert_bad("steps:\n  - name: a\n    run: x\n  - name: b\n",
		   "t.yaml:4: steps[1]: missing required key \"run\"");
	assert_bad("steps:\n  - run: x\n",
		   "t.yaml:2: steps[0]: missing required key \"name\"");
	assert_bad("steps:\n  - name: a\n    run: \"\"\n",
		   "t.yaml:3: steps[0].run: must not be empty");
	assert_bad(
		"steps:\n  - name: a\n    run: x\n    network: host\n",
		"steps[0].network: \"host\": expected \"none\" or \"fetch\"");
	assert_bad("steps:\n  - name: a/b\n    run: x\n",
		   "t.yaml:2: steps[0].name: bad step name \"a/b\"");
	assert_bad("steps:\n  - name: ..\n    run: x\n", "bad step name");
	assert_bad(
		"steps:\n  - name: "
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaa\n    run: x\n",
		"bad step name");
	assert_bad("", "t.yaml: empty recipe");
	assert_bad("# nothing\n", "t.yaml: empty recipe");
	assert_bad("---\n", "t.yaml: expected a mapping, got null");
	assert_bad("- a\n", "t.yaml: expected a mapping, got a list");
}

Test(recipe, duplicate_step_names)
{
	assert_bad("steps:\n"
		   "  - name: build\n"
		   "    run: make\n"
		   "  - run: make check\n"
		   "    name: build\n",
		   "t.yaml:5: steps[1].name: duplicate step name \"build\"");
}

Test(recipe, wrong_types)
{
	assert_bad(STEPS "cpus: \"two\"\n",
		   "t.yaml:4: cpus: expected an integer, got a string");
	assert_bad(STEPS "cpus: two\n", "cpus: expected an integer");
	assert_bad(STEPS "cpus: 0\n", "cpus: 0 is out of range (1..64)");
	assert_bad(STEPS "cpus: 65\n", "cpus: 65 is out of range");
	assert_bad("steps: \"x\"\n",
		   "t.yaml:1: steps: expected a list, got a string");
	assert_bad(STEPS "env:\n  A: [1, 2]\n",
		   "t.yaml:5: env.A: expected a string or number, got a list");
	assert_bad(STEPS "env:\n  A: true\n", "env.A: expected a string");
	assert_bad(STEPS "env:\n  1A: x\n", "t.yaml:5: env.1A: bad variable");
	assert_bad(STEPS "env:\n  A-B: x\n", "env.A-B: bad variable name");
	assert_bad(STEPS "env: [A]\n", "env: expected a mapping, got a list");
	assert_bad("steps:\n  - x\n",
		   "t.yaml:2: steps[0]: expected a mapping, got a string");
	assert_bad(STEPS "image: 5\n", "image: expected a string");
	assert_bad(STEPS "image: ../x\n"
			 "cpus: 1\n"
			 "image: y\n",
		   "t.yaml:6: image: duplicate key");
	assert_bad(STEPS "image: .hidden\n", "image: bad image name");
	assert_bad(STEPS "allow: \"a.com:80\"\n", "allow: expected a list");
	assert_bad(STEPS "allow: [1]\n", "allow[0]: expected a string");
	assert_bad(STEPS "source: null\n", "source: expected a string");
	assert_bad(STEPS "limits: 5\n", "limits: expected a mapping");
}

Test(recipe, env_values)
{
	struct recipe *r = ok(STEPS "env:\n  A: 1\n  _b: '007'\n  C: 0x10\n"
				    "  D: \"\"\n  E: -3\n");

	cr_assert_eq(r->n_env, 5);
	cr_assert_str_eq(r->env[0], "A=1");
	cr_assert_str_eq(r->env[1], "_b=007");
	cr_assert_str_eq(r->env[2], "C=0x10");
	cr_assert_str_eq(r->env[3], "D=");
	cr_assert_str_eq(r->env[4], "E=-3");
	recipe_free(r);
}

#define L61 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define L63 L61 "bb"

static const char *const bad_allow[] = {
	"example.com",
	"example.com:0",
	"example.com:65536",
	"example.com:080",
	"example.com:",
	"example.com:80x",
	"example.com:-1",
	"exa mple.com:80",
	"*.:80",
	"*:80",
	"foo.*.com:80",
	"**.com:80",
	"http://x:80",
	":80",
	"example.com.:80",
	"-a.com:80",
	"a-.com:80",
	"a..com:80",
	"256.1.1.1:80",
	"1.2.3:80",
	"01.2.3.4:80",
	"127.1:80",
	"0x7f000001:80",
	"[::1:80",
	"[]:80",
	"[::g]:80",
	"::1:80",
	"[fe80::1%eth0]:80",
	"*.1.2.3.4:80",
	"a.b.123:80",
	L63 "a.com:80",
	L63 "." L63 "." L63 "." L63 ":80",
};

static const char *const good_allow[] = {
	"example.com:80",
	"a:1",
	"deb.debian.org:443",
	"*.debian.org:443",
	"*.com:443",
	"x-1.example:65535",
	"127.0.0.1:8080",
	"0.0.0.0:1",
	"255.255.255.255:80",
	"[::1]:443",
	"[2001:db8::1]:80",
	"[::ffff:1.2.3.4]:80",
	L63 ".com:80",
	L63 "." L63 "." L63 "." L61 ":80",
};

Test(recipe, allow_entries)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(bad_allow); i++) {
		cr_assert_lt(recipe_check_allow(bad_allow[i], &err), 0,
			     "accepted %s", bad_allow[i]);
		cr_assert(strstr(err.msg, "bad allow entry"), "%s", err.msg);
	}
	for (i = 0; i < ARRAY_SIZE(good_allow); i++)
		cr_assert_eq(recipe_check_allow(good_allow[i], &err), 0,
			     "%s: %s", good_allow[i], err.msg);
}

Test(recipe, allow_entries_in_recipe)
{
	struct recipe *r;

	assert_bad(STEPS "allow:\n  - a.com:80\n  - \"exa mple.com:80\"\n",
		   "t.yaml:6: allow[1]: bad allow entry \"exa mple.com:80\"");
	assert_bad(STEPS "allow: [\"http://x:80\"]\n",
		   "t.yaml:4: allow[0]: bad allow entry \"http://x:80\"");
	r = ok(STEPS "allow: [\"*.debian.org:443\", \"[::1]:80\", "
		     "\"10.0.0.1:3128\"]\n");
	cr_assert_eq(r->n_allow, 3);
	cr_assert_str_eq(r->allow[0], "*.debian.org:443");
	cr_assert_str_eq(r->allow[2], "10.0.0.1:3128");
	recipe_free(r);
}

Test(recipe, artifacts)
{
	struct recipe *r;

	assert_bad(STEPS "artifacts: [\"../x\"]\n",
		   "t.yaml:4: artifacts[0]: \"../x\": \"..\" is not allowed");
	assert_bad(STEPS "artifacts:\n  - a\n  - out/../../etc\n",
		   "t.yaml:6: artifacts[1]");
	assert_bad(STEPS "artifacts: [\"a/..\"]\n", "is not allowed");
	assert_bad(STEPS "artifacts: [\"/etc/passwd\"]\n",
		   "artifacts[0]: \"/etc/passwd\": must be relative");
	assert_bad(STEPS "artifacts: [\"\"]\n", "artifacts[0]: must not be");
	r = ok(STEPS "artifacts: [\"out/*.deb\", \"..a/b..\", \"./x\"]\n");
	cr_assert_eq(r->n_artifacts, 3);
	cr_assert_str_eq(r->artifacts[1], "..a/b..");
	recipe_free(r);
}

Test(recipe, hold_on_failure)
{
	struct recipe *r;

	r = ok(STEPS);
	cr_assert_eq(r->hold_ms, 0);
	cr_assert_eq(r->n_ssh_keys, 0);
	recipe_free(r);
	r = ok(STEPS "hold_on_failure: 10m\n");
	cr_assert_eq(r->hold_ms, 600000);
	recipe_free(r);
	r = ok(STEPS "hold_on_failure: 90\n");
	cr_assert_eq(r->hold_ms, 90000);
	recipe_free(r);
	r = ok(STEPS "hold_on_failure: 0s\n");
	cr_assert_eq(r->hold_ms, 0);
	recipe_free(r);
	r = ok(STEPS "hold_on_failure: 24h\n");
	cr_assert_eq(r->hold_ms, 24 * 3600 * 1000LL);
	recipe_free(r);
	assert_bad(STEPS "hold_on_failure: 25h\n",
		   "t.yaml:4: hold_on_failure: at most 24h");
	assert_bad(STEPS "hold_on_failure: -5\n", "negative");
	assert_bad(STEPS "hold_on_failure: soon\n", "hold_on_failure");
	assert_bad(STEPS "hold_on_failure: [1]\n", "expected a duration");
}

Test(recipe, hold_after_any_outcome)
{
	struct recipe *r;

	r = ok(STEPS);
	cr_assert_eq(r->hold_after_ms, 0);
	recipe_free(r);
	r = ok(STEPS "hold: 45m\n");
	cr_assert_eq(r->hold_after_ms, 45 * 60000);
	cr_assert_eq(r->hold_ms, 0, "not a hold on failure only");
	recipe_free(r);
	assert_bad(STEPS "hold: 25h\n", "t.yaml:4: hold: at most 24h");
	assert_bad(STEPS "hold: soon\n", "hold");
	/* either order: one hold or the other */
	assert_bad(STEPS "hold: 1h\nhold_on_failure: 5m\n",
		   "hold and hold_on_failure: give one");
	assert_bad(STEPS "hold_on_failure: 5m\nhold: 1h\n",
		   "hold and hold_on_failure: give one");
}

#define ED_KEY "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMbZ8u2oN7m1q3Y2pY4Q0b3t" \
	       "8mJ7Qw9cJ8b2mYb4cQ1x"

Test(recipe, ssh_keys)
{
	struct recipe *r;
	struct error e;

	r = ok(STEPS "ssh_keys:\n  - \"" ED_KEY " alice@laptop\"\n"
		     "  - \"" ED_KEY "\"\n");
	cr_assert_eq(r->n_ssh_keys, 2);
	cr_assert_str_eq(r->ssh_keys[0], ED_KEY " alice@laptop");
	recipe_free(r);
	assert_bad(STEPS "ssh_keys: \"" ED_KEY "\"\n", "expected a list");
	assert_bad(STEPS "ssh_keys: [\"ssh-dss AAAAB3NzaC1kc3MAAACBAP\"]\n",
		   "t.yaml:4: ssh_keys[0]: not a public key");
	assert_bad(STEPS "ssh_keys: [\"ssh-ed25519\"]\n", "not a public key");
	assert_bad(STEPS "ssh_keys: [\"ssh-ed25519 AAAA\"]\n",
		   "must be base64");
	assert_bad(STEPS "ssh_keys: [\"ssh-ed25519 AAAAC3Nz!aC1lZDI1NTE5AAAA\"]\n",
		   "must be base64");
	assert_bad(STEPS "ssh_keys: [\"" ED_KEY " a\\u001b[2Jb\"]\n",
		   "control character");
	assert_bad(STEPS "ssh_keys: [1]\n", "ssh_keys[0]");
	/* the base64 may end in padding, then only a comment */
	cr_assert_eq(recipe_check_ssh_key("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB"
					  "AAABAQ== me", &e), 0, "%s", e.msg);
	cr_assert_lt(recipe_check_ssh_key("ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB"
					  "AAABAQ==x", &e), 0);
	cr_assert_lt(recipe_check_ssh_key(" ssh-rsa AAAAB3NzaC1yc2EAAAADAQAB",
					  &e), 0);
	{
		char many[4096] = STEPS "ssh_keys:\n";

		for (int i = 0; i < RECIPE_SSH_KEYS_MAX + 1; i++)
			strcat(many, "  - \"" ED_KEY "\"\n");
		assert_bad(many, "17 keys (at most 16)");
	}
}

Test(recipe, source, .init = make_tmpdir, .fini = remove_tmpdir)
{
	char path[PATH_MAX], real[PATH_MAX], sub[PATH_MAX + 8];
	struct recipe *r = NULL;

	snprintf(sub, sizeof(sub), "%s/src", tmpdir);
	cr_assert_eq(mkdir(sub, 0700), 0);
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	write_file(path, "x");

	snprintf(path, sizeof(path), "%s/r.yaml", tmpdir);
	write_file(path, "source: src\n" STEPS);
	cr_assert_eq(recipe_load_file(path, &r, &err), 0, "%s", err.msg);
	cr_assert_not_null(realpath(sub, real));
	cr_assert_str_eq(r->source, real);
	recipe_free(r);

	write_file(path, STEPS "source: nope\n");
	cr_assert_lt(recipe_load_file(path, &r, &err), 0);
	cr_assert(strstr(err.msg, "r.yaml:4: source: \""), "%s", err.msg);
	cr_assert(strstr(err.msg, "No such file or directory"), "%s", err.msg);

	write_file(path, STEPS "source: file\n");
	cr_assert_lt(recipe_load_file(path, &r, &err), 0);
	cr_assert(strstr(err.msg, "source: ") &&
			  strstr(err.msg, "is not a directory"),
		  "%s", err.msg);

	snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
	cr_assert_lt(recipe_load_file(path, &r, &err), 0);
	cr_assert(strstr(err.msg, "No such file"), "%s", err.msg);
}

Test(recipe, image_path_is_made_absolute)
{
	struct recipe *r = NULL;
	const char *text = STEPS "image: imgs/custom\n";

	cr_assert_eq(
		recipe_load_buffer(text, strlen(text), "t", "/base", &r, &err),
		0, "%s", err.msg);
	cr_assert_str_eq(r->image, "/base/imgs/custom");
	recipe_free(r);
}

Test(recipe, yaml_syntax_errors)
{
	assert_bad(STEPS "limits:\n  disk: [1\n", "t.yaml:6:");
	assert_bad("steps:\n  - name: a\n   run: x\n", "t.yaml:3:");
	assert_bad("a: 'x\n", "t.yaml:2:");
	assert_bad("a: b\n\xff\n", "t.yaml:2:");
	assert_bad("a: \"\\0\"\n", "t.yaml:1: a: NUL byte");
}

Test(recipe, yaml_features_refused)
{
	assert_bad("x: &a 1\n", "t.yaml:1: x: anchors are not supported");
	assert_bad("steps:\n  - &s {name: a, run: x}\n  - *s\n",
		   "anchors are not supported");
	assert_bad(STEPS "cpus: !!str 1\n", "cpus: expected an integer");
	assert_bad(STEPS "cpus: !custom 1\n",
		   "t.yaml:4: cpus: unsupported tag \"!custom\"");
	assert_bad(STEPS "cpus: !!int x\n", "cpus: \"x\" does not match");
	assert_bad(STEPS "env: !!set {A: x}\n", "env: unsupported tag");
	assert_bad(STEPS "---\n" STEPS, "t.yaml:4: only one YAML document");
	assert_bad(STEPS "1: x\n", "t.yaml:4: mapping keys must be strings");
	assert_bad(STEPS "? [a]\n: x\n", "mapping keys must be strings");
	assert_bad(STEPS "cpus: 1\ncpus: 2\n", "t.yaml:5: cpus: duplicate key");
	assert_bad("{\"steps\": 1, \"steps\": 2}", "duplicate key");
}

Test(recipe, yaml_typing_and_tags)
{
	struct recipe *r = ok("cpus: !!int 2\nimage: !!str x\n"
			      "steps:\n  - name: !!str 1\n    run: \"true\"\n"
			      "  - {name: '2', run: !!str false}\n");

	cr_assert_eq(r->cpus, 2);
	cr_assert_str_eq(r->steps[0].name, "1");
	cr_assert_str_eq(r->steps[0].run, "true");
	cr_assert_str_eq(r->steps[1].run, "false");
	recipe_free(r);
	assert_bad("steps:\n  - name: 1\n    run: x\n",
		   "steps[0].name: expected a string, got an integer");
	assert_bad("steps:\n  - name: a\n    run: true\n",
		   "steps[0].run: expected a string, got a boolean");
	assert_bad("steps:\n  - name: a\n    run:\n",
		   "steps[0].run: expected a string, got null");
}

Test(recipe, size_and_depth_bounds)
{
	size_t n = RECIPE_MAX_BYTES + 1, i;
	char *big = xmalloc(n + 1);
	struct recipe *r = NULL;

	memset(big, ' ', n);
	big[n] = '\0';
	memcpy(big, STEPS, strlen(STEPS));
	cr_assert_lt(recipe_load_buffer(big, n, "t.yaml", "/", &r, &err), 0);
	cr_assert(strstr(err.msg, "larger than"), "%s", err.msg);
	/* Exactly the limit is fine. */
	cr_assert_eq(recipe_load_buffer(big, n - 1, "t.yaml", "/", &r, &err), 0,
		     "%s", err.msg);
	recipe_free(r);

	for (i = 0; i < 10000; i++)
		big[i] = '[';
	big[i] = '\0';
	assert_bad(big, "nested deeper than");
	free(big);
	cr_assert_lt(recipe_load_buffer(NULL, 0, NULL, NULL, &r, &err), 0);
	cr_assert_str_eq(err.msg, "recipe: empty recipe");
}

Test(parse, size)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{"0", 0},
		{"1024", 1024},
		{"100k", 102400},
		{"1K", 1024},
		{"1KiB", 1024},
		{"512M", 512ull << 20},
		{"3MiB", 3ull << 20},
		{"2G", 2ull << 30},
		{"2GiB", 2ull << 30},
		{"1T", 1ull << 40},
		{"1TiB", 1ull << 40},
		{"16777215T", 16777215ull << 40},
		{"18446744073709551615", UINT64_MAX},
	};
	static const char *const bad_sizes[] = {
		"",
		" ",
		"M",
		"12X",
		"10 M",
		" 10M",
		"10M ",
		"1.5G",
		"-1",
		"-1M",
		"+1M",
		"1m",
		"1g",
		"1KB",
		"1kib",
		"1Gi",
		"1GB",
		"99999999999999999999G",
		"18446744073709551616",
		"16777216T",
		"0x10",
		"1e3",
		"1G1M",
		"1\n",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good); i++) {
		uint64_t v = 42;

		cr_assert_eq(parse_size(good[i].s, &v, &err), 0, "%s: %s",
			     good[i].s, err.msg);
		cr_assert_eq(v, good[i].v, "%s", good[i].s);
	}
	for (i = 0; i < ARRAY_SIZE(bad_sizes); i++) {
		uint64_t v = 42;

		cr_assert_lt(parse_size(bad_sizes[i], &v, &err), 0,
			     "accepted \"%s\"", bad_sizes[i]);
		cr_assert_eq(v, 42);
		cr_assert(strstr(err.msg, "bad size"), "%s", err.msg);
	}
	cr_assert_lt(parse_size(NULL, &(uint64_t){0}, &err), 0);
	parse_size("99999999999999999999G", &(uint64_t){0}, &err);
	cr_assert(strstr(err.msg, "too large"), "%s", err.msg);
}

Test(parse, duration)
{
	static const struct {
		const char *s;
		int64_t ms;
	} good[] = {
		{"0", 0},
		{"90", 90000},
		{"90s", 90000},
		{"10m", 600000},
		{"1h", 3600000},
		{"500ms", 500},
		{"1h30m", 5400000},
		{"2d", 172800000},
		{"1d2h3m4s5ms", 93784005},
		{"0s", 0},
		{"1m500ms", 60500},
		{"9223372036854775807ms", INT64_MAX},
		{"9223372036854775s", 9223372036854775000},
		{"9223372036854775", 9223372036854775000},
	};
	static const char *const bad_durations[] = {
		"",
		" ",
		"s",
		"10x",
		"10 s",
		" 10s",
		"10s ",
		"1.5h",
		"-1",
		"-1s",
		"+1s",
		"1h30",
		"30m1h",
		"1s1s",
		"1ms1s",
		"1H",
		"1sec",
		"99999999999999999999",
		"9223372036854775808ms",
		"9223372036854776s",
		"106751991167301d",
		"9223372036854776",
		"1d9223372036854775807ms",
		"1e3",
		"0x10",
	};
	size_t i;

	for (i = 0; i < ARRAY_SIZE(good); i++) {
		int64_t v = 42;

		cr_assert_eq(parse_duration(good[i].s, &v, &err), 0, "%s: %s",
			     good[i].s, err.msg);
		cr_assert_eq(v, good[i].ms, "%s", good[i].s);
	}
	for (i = 0; i < ARRAY_SIZE(bad_durations); i++) {
		int64_t v = 42;

		cr_assert_lt(parse_duration(bad_durations[i], &v, &err), 0,
			     "accepted \"%s\"", bad_durations[i]);
		cr_assert_eq(v, 42);
		cr_assert(strstr(err.msg, "bad duration"), "%s", err.msg);
	}
	parse_duration("9223372036854775808ms", &(int64_t){0}, &err);
	cr_assert(strstr(err.msg, "too large"), "%s", err.msg);
}

/* A fetch step needs a network budget: 0 would reach the helper's quota. */
Test(recipe, fetch_step_needs_net_bytes)
{
	const char *m = bad("limits: {net_bytes: 0}\n"
			    "steps:\n  - name: deps\n    network: fetch\n"
			    "    run: \"true\"\n");

	cr_assert(strstr(m, "net_bytes") && strstr(m, "deps"), "%s", m);
	recipe_free(ok("limits: {net_bytes: 0}\nsteps: [{name: a, run: \"true\"}]\n"));
}

/*
 * A client's recipe (RECIPE_NO_FS) is parsed without looking at the file
 * system: a root-only or missing source is not resolved here (that would
 * tell the client whether it exists); a relative one with no base is
 * refused.
 */
Test(recipe, client_recipe_touches_no_files)
{
	static const char text[] = "source: /root/no/such/dir\n"
				   "steps: [{name: a, run: \"true\"}]\n";
	struct recipe *r = NULL;

	cr_assert_lt(recipe_load_buffer(text, strlen(text), "t.yaml", "/", &r,
					&err),
		     0, "root's parser resolves the source");
	cr_assert_eq(recipe_load_buffer_flags(text, strlen(text), "t.yaml",
					      "/", RECIPE_NO_FS, &r, &err),
		     0, "%s", err.msg);
	cr_assert_str_eq(r->source, "/root/no/such/dir");
	recipe_free(r);
	r = NULL;
	static const char rel[] = "source: rel\nsteps: [{name: a, run: \"true\"}]\n";

	cr_assert_lt(recipe_load_buffer_flags(rel, strlen(rel), "t.yaml", NULL,
					      RECIPE_NO_FS, &r, &err),
		     0);
}

/* ---- source: {git: URL, ref: REF} ---- */

Test(recipe, git_source)
{
	struct recipe *r;

	r = ok(STEPS "source: {git: /srv/repo.git, ref: v1.2}\n");
	cr_assert_null(r->source);
	cr_assert_str_eq(r->git.url, "/srv/repo.git");
	cr_assert_str_eq(r->git.ref, "v1.2");
	cr_assert_str_eq(r->git.where, "t.yaml:4");
	recipe_free(r);
	/* ref defaults to the remote's HEAD */
	r = ok(STEPS "source:\n  git: /srv/repo\n");
	cr_assert_str_eq(r->git.ref, "HEAD");
	cr_assert_str_eq(r->git.where, "t.yaml:4");
	recipe_free(r);
	r = ok(STEPS "source: {git: \"file:///srv/r\", "
	       "ref: 0123456789abcdef0123456789abcdef01234567}\n");
	cr_assert_str_eq(r->git.url, "file:///srv/r");
	cr_assert_str_eq(r->git.ref,
			 "0123456789abcdef0123456789abcdef01234567");
	recipe_free(r);
	r = ok(STEPS "source: {git: /r, ref: refs/heads/feature/x-1}\n");
	cr_assert_str_eq(r->git.ref, "refs/heads/feature/x-1");
	recipe_free(r);
	/* relative: the recipe's directory ("/" here) */
	r = ok(STEPS "source: {git: repo}\n");
	cr_assert_str_eq(r->git.url, "//repo");
	recipe_free(r);
	/* JSON too, without a line */
	r = ok("{\"steps\": [{\"name\": \"a\", \"run\": \"x\"}], "
	       "\"source\": {\"git\": \"/r\", \"ref\": \"main\"}}");
	cr_assert_str_eq(r->git.ref, "main");
	recipe_free(r);
}

Test(recipe, git_source_relative_to_recipe, .init = make_tmpdir,
     .fini = remove_tmpdir)
{
	char path[128];
	struct recipe *r = NULL;

	snprintf(path, sizeof(path), "%s/r.yaml", tmpdir);
	write_file(path, STEPS "source: {git: ../repo, ref: main}\n");
	cr_assert_eq(recipe_load_file(path, &r, &err), 0, "%s", err.msg);
	cr_assert(r->git.url[0] == '/' && strstr(r->git.url, "/../repo"),
		  "%s", r->git.url);
	cr_assert(strstr(r->git.where, "r.yaml:4"), "%s", r->git.where);
	recipe_free(r);
}

Test(recipe, git_source_errors)
{
	/* unknown keys and wrong shapes, with their lines */
	assert_bad(STEPS "source: {git: /r, branch: main}\n",
		   "t.yaml:4: source.branch: unknown key");
	assert_bad(STEPS "source:\n  git: /r\n  reff: x\n",
		   "t.yaml:6: source.reff: unknown key");
	assert_bad(STEPS "source: {ref: main}\n",
		   "t.yaml:4: source: missing required key \"git\"");
	assert_bad(STEPS "source: {}\n", "source: missing required key");
	assert_bad(STEPS "source: [a]\n",
		   "source: expected a string (a directory) or a mapping");
	assert_bad(STEPS "source: {git: 1}\n",
		   "source.git: expected a string, got an integer");
	assert_bad(STEPS "source: {git: \"\"}\n", "source.git: must not be "
		   "empty");
	assert_bad(STEPS "source: {git: /r, ref: 7}\n",
		   "source.ref: expected a string");
	assert_bad(STEPS "source: {git: /r, ref: \"\"}\n",
		   "source.ref: must not be empty");
	/* control characters: never in argv or a message */
	assert_bad(STEPS "source: {git: \"/r\\nx\"}\n",
		   "source.git: \"/r\\x0ax\": control character");
	assert_bad(STEPS "source: {git: \"/r\\u001b[2J\"}\n",
		   "control character");
	/* network URLs: the fetch runs on the host */
	assert_bad(STEPS "source: {git: \"https://example.org/r.git\"}\n",
		   "t.yaml:4: source.git: \"https://example.org/r.git\": "
		   "network URLs are not allowed");
	assert_bad(STEPS "source: {git: \"ssh://h/r\"}\n", "network URLs");
	assert_bad(STEPS "source: {git: \"git://h/r\"}\n", "network URLs");
	assert_bad(STEPS "source: {git: \"file://host/r\"}\n", "network URLs");
	assert_bad(STEPS "source: {git: \"ext::sh -c id\"}\n",
		   "looks like an ssh address");
	assert_bad(STEPS "source: {git: \"host:r.git\"}\n",
		   "looks like an ssh address");
	/* refs git would read as options or expressions */
	assert_bad(STEPS "source: {git: /r, ref: --upload-pack=x}\n",
		   "source.ref: \"--upload-pack=x\" is not a branch");
	assert_bad(STEPS "source: {git: /r, ref: \"HEAD~1\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"a..b\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"@{-1}\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"a b\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"x.lock\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"x/\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"a\\tb\"}\n", "source.ref");
	assert_bad(STEPS "source: {git: /r, ref: \"@\"}\n", "source.ref");
	{
		char big[400], text[600];

		memset(big, 'a', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		snprintf(text, sizeof(text), STEPS "source: {git: /r, ref: %s}\n",
			 big);
		assert_bad(text, "source.ref: longer than 255 bytes");
	}
}

/* A client's recipe: a git path must be absolute, nothing is looked up. */
Test(recipe, git_source_client)
{
	static const char abs[] = "source: {git: /root/secret/repo}\n"
				  "steps: [{name: a, run: \"true\"}]\n";
	static const char rel[] = "source: {git: repo}\n"
				  "steps: [{name: a, run: \"true\"}]\n";
	struct recipe *r = NULL;

	cr_assert_eq(recipe_load_buffer_flags(abs, strlen(abs), "t.yaml", NULL,
					      RECIPE_NO_FS, &r, &err),
		     0, "%s", err.msg);
	cr_assert_str_eq(r->git.url, "/root/secret/repo");
	recipe_free(r);
	r = NULL;
	cr_assert_lt(recipe_load_buffer_flags(rel, strlen(rel), "t.yaml", NULL,
					      RECIPE_NO_FS, &r, &err),
		     0);
	cr_assert(strstr(err.msg, "t.yaml:1: source.git: \"repo\" must be an "
			 "absolute path"), "%s", err.msg);
	/* a client's recipe file: relative to its (absolute) directory */
	cr_assert_eq(recipe_load_buffer_flags(rel, strlen(rel), "t.yaml",
					      "/home/u", RECIPE_NO_FS, &r,
					      &err),
		     0, "%s", err.msg);
	cr_assert_str_eq(r->git.url, "/home/u/repo");
	recipe_free(r);
}

Test(recipe, git_checks_direct)
{
	cr_assert_eq(recipe_check_git_url("/a/b", &err), 0);
	cr_assert_eq(recipe_check_git_url("file:///a/b", &err), 0);
	cr_assert_lt(recipe_check_git_url("a/b", &err), 0);
	cr_assert(strstr(err.msg, "git: \"a/b\" must be an absolute path"),
		  "%s", err.msg);
	cr_assert_lt(recipe_check_git_url("http://x/y", &err), 0);
	cr_assert_lt(recipe_check_git_url("", &err), 0);
	cr_assert_eq(recipe_check_git_ref("HEAD", &err), 0);
	cr_assert_eq(recipe_check_git_ref("v1.2.3", &err), 0);
	cr_assert_lt(recipe_check_git_ref("-x", &err), 0);
	cr_assert(strstr(err.msg, "ref: \"-x\""), "%s", err.msg);
}

Test(recipe, transport)
{
	struct recipe *r = ok(STEPS);

	cr_expect_eq(r->transport, RECIPE_TRANSPORT_IMAGE);
	recipe_free(r);
	r = ok("transport: ssh\n" STEPS);
	cr_expect_eq(r->transport, RECIPE_TRANSPORT_SSH);
	recipe_free(r);
	r = ok("transport: agent\n" STEPS);
	cr_expect_eq(r->transport, RECIPE_TRANSPORT_AGENT);
	recipe_free(r);
	assert_bad("transport: telnet\n" STEPS, "expected agent or ssh");
	assert_bad("transport: [ssh]\n" STEPS, "transport");
}

#define FETCH "  - name: f\n    run: x\n    network: fetch\n"
#define NONE "  - name: n\n    run: x\n"
#define FETCH2 "  - name: f2\n    run: x\n    network: fetch\n"

Test(recipe, cache)
{
	struct recipe *r;

	r = ok(STEPS);
	cr_assert_null(r->cache.key, "no cache unless asked");
	recipe_free(r);
	r = ok(STEPS "cache: {key: deps-1.x, paths: [/var/cache/apt]}\n");
	cr_assert_str_eq(r->cache.key, "deps-1.x");
	cr_assert_eq(r->cache.n_paths, 1);
	cr_assert_str_eq(r->cache.paths[0], "/var/cache/apt");
	cr_assert_eq(r->cache.size, 1ull << 30, "default 1G");
	recipe_free(r);
	r = ok(STEPS "cache: {key: k, paths: [/a, /b/c], size: 2G}\n");
	cr_assert_eq(r->cache.size, 2ull << 30);
	cr_assert_eq(r->cache.n_paths, 2);
	recipe_free(r);
	r = ok(STEPS "cache: {key: k, paths: [/a], size: 16M}\n");
	recipe_free(r);
	r = ok(STEPS "cache: {key: k, paths: [/a], size: 64G}\n");
	recipe_free(r);
}

Test(recipe, cache_key)
{
	assert_bad(STEPS "cache: {paths: [/a]}\n", "missing required key "
		   "\"key\"");
	assert_bad(STEPS "cache: {key: \"..\", paths: [/a]}\n",
		   "bad cache key");
	assert_bad(STEPS "cache: {key: \".\", paths: [/a]}\n",
		   "bad cache key");
	assert_bad(STEPS "cache: {key: a/b, paths: [/a]}\n", "bad cache key");
	assert_bad(STEPS "cache: {key: \"a b\", paths: [/a]}\n",
		   "bad cache key");
	assert_bad(STEPS "cache: {key: \"\", paths: [/a]}\n", "must not be "
		   "empty");
	/* 65 characters */
	assert_bad(STEPS "cache: {key: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		   "aaaaaaaaaaaaaaaaaaaaaaaaaaaa, paths: [/a]}\n",
		   "bad cache key");
	assert_bad(STEPS "cache: {key: k, paths: [/a], colour: red}\n",
		   "unknown key");
}

Test(recipe, cache_paths)
{
	assert_bad(STEPS "cache: {key: k}\n", "missing required key \"paths\"");
	assert_bad(STEPS "cache: {key: k, paths: []}\n", "0 paths (1 to 16)");
	assert_bad(STEPS "cache: {key: k, paths: [/1, /2, /3, /4, /5, /6, /7, "
		   "/8, /9, /10, /11, /12, /13, /14, /15, /16, /17]}\n",
		   "17 paths (1 to 16)");
	assert_bad(STEPS "cache: {key: k, paths: [a/b]}\n", "must be absolute");
	assert_bad(STEPS "cache: {key: k, paths: [/]}\n",
		   "whole file system");
	assert_bad(STEPS "cache: {key: k, paths: [/a/../etc]}\n",
		   "\"..\" is not allowed");
	assert_bad(STEPS "cache: {key: k, paths: [/a/..]}\n",
		   "\"..\" is not allowed");
	assert_bad(STEPS "cache: {key: k, paths: [/a/./b]}\n",
		   "not normalized");
	assert_bad(STEPS "cache: {key: k, paths: [/a//b]}\n",
		   "not normalized");
	assert_bad(STEPS "cache: {key: k, paths: [/a/]}\n", "not normalized");
	assert_bad(STEPS "cache: {key: k, paths: [\"/a b\"]}\n",
		   "only letters");
	assert_bad(STEPS "cache: {key: k, paths: [\"/a;reboot\"]}\n",
		   "only letters");
	assert_bad(STEPS "cache: {key: k, paths: [/src]}\n",
		   "/src and what is under it");
	assert_bad(STEPS "cache: {key: k, paths: [/src/node_modules]}\n",
		   "/src and what is under it");
	assert_bad(STEPS "cache: {key: k, paths: [/proc/x]}\n", "/proc");
	assert_bad(STEPS "cache: {key: k, paths: [/sys]}\n", "/sys");
	assert_bad(STEPS "cache: {key: k, paths: [/dev/shm]}\n", "/dev");
	assert_bad(STEPS "cache: {key: k, paths: [/run/lock]}\n", "/run");
	assert_bad(STEPS "cache: {key: k, paths: [/a, /a/b]}\n",
		   "\"/a/b\" is under \"/a\"");
	assert_bad(STEPS "cache: {key: k, paths: [/a, /a]}\n", "given twice");
	/* only prefixes at a '/' count */
	recipe_free(ok(STEPS "cache: {key: k, paths: [/srcx, /runner, "
		       "/a, /ab, /device]}\n"));
}

Test(recipe, cache_size)
{
	assert_bad(STEPS "cache: {key: k, paths: [/a], size: 15M}\n",
		   "cache.size: too small (at least 16M");
	assert_bad(STEPS "cache: {key: k, paths: [/a], size: 65G}\n",
		   "too large (at most 64G");
	assert_bad(STEPS "cache: {key: k, paths: [/a], size: lots}\n",
		   "cache.size");
}

Test(recipe, cache_fetch_steps_first)
{
	assert_bad("cache: {key: k, paths: [/a]}\nsteps:\n" FETCH NONE
		   "  - name: f2\n    run: x\n    network: fetch\n",
		   "fetch step \"f2\" comes after step \"n\"");
	/* without a cache the order is free */
	recipe_free(ok("steps:\n" NONE FETCH));
	recipe_free(ok("cache: {key: k, paths: [/a]}\nsteps:\n" FETCH FETCH2
		       NONE "  - name: n2\n    run: x\n"));
	/* no fetch step: the cache is only read */
	recipe_free(ok("cache: {key: k, paths: [/a]}\nsteps:\n" NONE));
}
