/*
 * fuzz-gitsrc.c - libFuzzer target: what a git source's fetch makes of
 * bytes it does not choose.
 *
 * git's stderr (which quotes ref names and paths of the repository)
 * becomes part of a build's reason: gitsrc_sanitize must give printable
 * ASCII, one line, never more than asked, for any bytes and any size.
 * The first byte picks the size; the rest is the text.  The same bytes,
 * as a string, go through the recipe's checks of a URL and a ref and, if
 * they pass as a ref, gitsrc_candidates: every candidate is a local ref
 * under refs/qctl/ or the commit id itself.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gitsrc.h"
#include "recipe.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[GITSRC_MSG_MAX + 1 + 16];
	struct error err;
	size_t cap, n;
	char *s;

	if (size < 1)
		return 0;
	cap = data[0] % sizeof(out);
	memset(out, 'Z', sizeof(out));
	gitsrc_sanitize((const char *)data + 1, size - 1, out, cap);
	if (cap) {
		n = strnlen(out, cap);
		check(n < cap);
		for (size_t i = 0; i < n; i++)
			check(out[i] >= 0x20 && out[i] < 0x7f);
		check(!n || (out[0] != ' ' && out[n - 1] != ' '));
	}
	/* nothing written past cap */
	for (size_t i = cap; i < sizeof(out); i++)
		check(out[i] == 'Z');

	s = strndup((const char *)data + 1, size - 1);
	if (!s)
		return 0;
	if (recipe_check_git_url(s, &err) == 0) {
		check(s[0] == '/' || !strncmp(s, "file:///", 8));
		for (const char *p = s; *p; p++)
			check((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	if (recipe_check_git_ref(s, &err) == 0) {
		char **v = gitsrc_candidates(s);

		check(s[0] != '-' && !strstr(s, "..") && !strchr(s, ' '));
		for (size_t i = 0; v[i]; i++) {
			check(i < 2);
			check(!strncmp(v[i], "refs/qctl/", 10) ||
			      gitsrc_is_commit_id(v[i], strlen(v[i])));
			free(v[i]);
		}
		free(v);
	}
	free(s);
	return 0;
}
