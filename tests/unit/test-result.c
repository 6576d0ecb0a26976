/* test-result.c - the result JSON (a public interface: DESIGN.md "Result") */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "result.h"
#include "util.h"

#define DATA "tests/unit/data/result/"

/* The result as text, with the version (it changes per commit) fixed. */
static char *
dump(const struct build_result *r)
{
	json_t *j = result_to_json(r);
	char *s;

	cr_assert_not_null(j);
	cr_assert(json_is_string(json_object_get(j, "qctl_version")));
	json_object_set_new(j, "qctl_version", json_string("VERSION"));
	s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(j);
	return s;
}

static void
golden(const struct build_result *r, const char *file)
{
	_cleanup_free_ char *got = dump(r), *want = NULL;
	struct error err = { 0 };
	size_t len;

	/* QCTL_UPDATE_GOLDEN=1 rewrites the file after a deliberate change */
	if (getenv("QCTL_UPDATE_GOLDEN")) {
		FILE *f = fopen(file, "w");

		cr_assert_not_null(f);
		fprintf(f, "%s\n", got);
		fclose(f);
	}
	cr_assert_eq(read_file(file, 1 << 20, &want, &len, &err), 0, "%s",
		     err.msg);
	if (len && want[len - 1] == '\n')
		want[len - 1] = '\0';
	cr_assert_str_eq(got, want, "%s differs:\n%s", file, got);
}

static void
fill_steps(struct build_result *r)
{
	static struct step_result steps[2];

	steps[0] = (struct step_result){ .name = (char *)"deps", .fetch = true,
					 .ran = true, .exit_code = 0,
					 .started_ms = 812,
					 .duration_ms = 1530 };
	steps[1] = (struct step_result){ .name = (char *)"build",
					 .ran = true, .exit_code = -1,
					 .signal = 9, .started_ms = 2400,
					 .duration_ms = 300000 };
	r->steps = steps;
	r->n_steps = 2;
}

/* A build stopped by a limit: limit object, steps, stats, network. */
Test(result, limit_golden)
{
	struct build_result r = { 0 };
	static struct artifact_result art = { .path = (char *)"out/x.deb",
					      .bytes = 4096 };

	r.status = BUILD_LIMIT;
	r.reason = (char *)"step \"build\" timed out after 300.0s";
	result_set_limit(&r, "timeout", 300001, 300000, "ms");
	r.accel = "tcg";
	r.run_dir = (char *)"/var/lib/qctl/runs/run-AbC123";
	fill_steps(&r);
	r.stats = (struct build_stats){ 302500, 1800, 123456, 268435456,
					4194304, 1000, 2000, 77 };
	memset(art.sha256, 'a', 64);
	r.artifacts = &art;
	r.n_artifacts = 1;
	r.network = json_pack("[{s:s, s:s, s:s, s:i, s:b}]", "step", "deps",
			      "method", "CONNECT", "host", "example.invalid",
			      "port", 443, "allowed", 1);
	r.enforcement = json_pack("{s:s}", "cpu_time", "poll");
	golden(&r, DATA "limit.json");
	json_decref(r.network);
	json_decref(r.enforcement);
}

/* A passed build: limit is null, an empty network list, no artifacts. */
Test(result, passed_golden)
{
	struct build_result r = { 0 };

	r.status = BUILD_PASSED;
	r.reason = (char *)"all 2 steps passed";
	r.accel = "kvm";
	fill_steps(&r);
	r.steps[1].signal = 0;
	r.steps[1].exit_code = 0;
	r.source = json_pack("{s:s, s:s, s:s}", "git", "/srv/git/app.git",
			     "ref", "v1.2", "commit",
			     "0123456789abcdef0123456789abcdef01234567");
	golden(&r, DATA "passed.json");
	json_decref(r.source);
}

/* A git source that cannot be fetched is the recipe's fault: exit code 2
 * in the result (status error); any other error stays 4. */
Test(result, recipe_error_exit_code)
{
	struct build_result r = { .status = BUILD_ERROR };
	json_t *j;

	cr_assert_eq(result_exit(&r), EXIT_INFRA);
	r.recipe_error = true;
	cr_assert_eq(result_exit(&r), EXIT_USAGE);
	j = result_to_json(&r);
	cr_assert_eq(json_integer_value(json_object_get(j, "exit_code")), 2);
	cr_assert_str_eq(json_string_value(json_object_get(j, "status")),
			 "error");
	cr_assert(json_is_null(json_object_get(j, "source")));
	json_decref(j);
	/* only an error: a cancelled build is 130 whatever the flag */
	r.status = BUILD_CANCELLED;
	cr_assert_eq(result_exit(&r), EXIT_CANCELLED);
}

/* Guest-chosen strings (reason, artifact names) that are not UTF-8 must
 * still make valid JSON, never a NULL result or a crash. */
Test(result, hostile_strings)
{
	struct build_result r = { 0 };
	static struct artifact_result art = { .path = (char *)"a\xff\xfe.bin",
					      .bytes = 1 };
	json_t *j;

	r.status = BUILD_FAILED;
	r.reason = (char *)"step \"\xc3\x28\" failed";
	r.accel = "tcg";
	r.artifacts = &art;
	r.n_artifacts = 1;
	j = result_to_json(&r);
	cr_assert_not_null(j);
	cr_assert_not_null(json_object_get(j, "reason"));
	json_decref(j);
}

/* Found by fuzz-result: every string of the result, not only the reason
 * and paths, may hold bytes that are not UTF-8 (a limit name cut
 * mid-character by result_set_limit, say); json_string refused them and
 * the key ("limit", "accel", an artifact) silently went missing. */
Test(result, no_key_lost_to_bad_utf8)
{
	struct build_result r = { 0 };
	static struct artifact_result art = { .path = (char *)"x", .bytes = 1 };
	json_t *j, *lim, *a;

	r.status = BUILD_LIMIT;
	/* 30 ASCII bytes and a 2-byte character: cut after its first byte */
	result_set_limit(&r, "abcdefghijklmnopqrstuvwxyz0123\xc3\xa9", 1, 0,
			 "\xff");
	r.accel = "\xfe";
	memset(art.sha256, 'a', 64);
	art.sha256[0] = '\x80';
	r.artifacts = &art;
	r.n_artifacts = 1;
	j = result_to_json(&r);
	cr_assert_not_null(j);
	lim = json_object_get(j, "limit");
	cr_assert(json_is_object(lim), "\"limit\" lost");
	cr_expect_str_eq(json_string_value(json_object_get(lim, "name")),
			 "abcdefghijklmnopqrstuvwxyz0123?");
	cr_expect_str_eq(json_string_value(json_object_get(lim, "unit")), "?");
	cr_expect_str_eq(json_string_value(json_object_get(j, "accel")), "?");
	cr_assert_eq(json_array_size(json_object_get(j, "artifacts")), 1,
		     "the artifact was lost");
	a = json_array_get(json_object_get(j, "artifacts"), 0);
	cr_expect_eq(strlen(json_string_value(json_object_get(a, "sha256"))),
		     64);
	json_decref(j);
}

/* Every status has its exit code (DESIGN.md "Exit codes"). */
Test(result, exit_codes)
{
	cr_assert_eq(result_exit_code(BUILD_PASSED), 0);
	cr_assert_eq(result_exit_code(BUILD_FAILED), 1);
	cr_assert_eq(result_exit_code(BUILD_LIMIT), 3);
	cr_assert_eq(result_exit_code(BUILD_ERROR), 4);
	cr_assert_eq(result_exit_code(BUILD_CANCELLED), 130);
}
