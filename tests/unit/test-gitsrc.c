/* test-gitsrc.c - git sources: the pure parts (the fetch itself is
 * tests/integration/t-git-source.sh) */
#include <criterion/criterion.h>
#include <string.h>

#include "gitsrc.h"

Test(gitsrc, commit_ids)
{
	const char *sha1 = "0123456789abcdef0123456789abcdef01234567";
	char sha256[65];

	cr_assert(gitsrc_is_commit_id(sha1, 40));
	cr_assert_not(gitsrc_is_commit_id(sha1, 39));
	cr_assert_not(gitsrc_is_commit_id(
		"0123456789ABCDEF0123456789abcdef01234567", 40));
	cr_assert_not(gitsrc_is_commit_id(
		"0123456789abcdef0123456789abcdef0123456g", 40));
	memset(sha256, 'f', 64);
	sha256[64] = '\0';
	cr_assert(gitsrc_is_commit_id(sha256, 64));
	cr_assert_not(gitsrc_is_commit_id("", 0));
}

static void
check_cands(const char *ref, const char *const *want)
{
	char **v = gitsrc_candidates(ref);
	size_t i;

	for (i = 0; want[i]; i++) {
		cr_assert_not_null(v[i], "%s: candidate %zu missing", ref, i);
		cr_assert_str_eq(v[i], want[i]);
	}
	cr_assert_null(v[i], "%s: extra candidate %s", ref, v[i]);
	for (i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

Test(gitsrc, candidates)
{
	check_cands("HEAD", (const char *const[]){"refs/qctl/HEAD", NULL});
	/* git's order: a tag before a branch */
	check_cands("main",
		    (const char *const[]){"refs/qctl/tags/main",
					  "refs/qctl/heads/main", NULL});
	check_cands("refs/heads/a/b",
		    (const char *const[]){"refs/qctl/heads/a/b", NULL});
	check_cands("refs/tags/v1",
		    (const char *const[]){"refs/qctl/tags/v1", NULL});
	/* other refs are not fetched */
	check_cands("refs/pull/1/head", (const char *const[]){NULL});
	check_cands("0123456789abcdef0123456789abcdef01234567",
		    (const char *const[]){
			    "0123456789abcdef0123456789abcdef01234567", NULL});
}

static void
check_sanitize(const char *in, size_t cap, const char *want)
{
	char out[512];

	cr_assert_leq(cap, sizeof(out));
	memset(out, 'X', sizeof(out));
	gitsrc_sanitize(in, strlen(in), out, cap);
	cr_assert_str_eq(out, want);
	cr_assert_lt(strlen(out), cap);
}

Test(gitsrc, sanitize)
{
	check_sanitize("fatal: '/x' does not appear to be a git repository\n"
		       "fatal: Could not read from remote repository.\n\n"
		       "Please make sure you have the correct access rights\n"
		       "and the repository exists.\n",
		       512,
		       "fatal: '/x' does not appear to be a git repository; "
		       "fatal: Could not read from remote repository.; Please "
		       "make sure you have the correct access rights; and the "
		       "repository exists.");
	/* advice lines go; controls become spaces, runs one */
	check_sanitize("error: x\nhint: do this\nhint: and that\n", 512,
		       "error: x");
	check_sanitize("a\x1b[31mred\x07\r\n\tb  c\x7f\xc3\xa9", 512,
		       "a [31mred; b c");
	check_sanitize("", 512, "");
	check_sanitize("\n\n\n", 512, "");
	/* cut, with "..." */
	check_sanitize("0123456789abcdef", 10, "012345...");
	check_sanitize("0123456789", 11, "0123456789");
	check_sanitize("abc", 1, "");
}
