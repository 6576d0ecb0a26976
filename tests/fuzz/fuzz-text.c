/*
 * fuzz-text.c - libFuzzer target: the guest's text on its way to the
 * operator's terminal, the result JSON and the host's filesystem.
 *
 * Step output, agent messages and artifact names are bytes a hostile guest
 * chooses.  term_sanitize (terminal: no ESC, no C0 but tab, no DEL, no C1
 * raw or UTF-8 encoded, valid UTF-8 only), agent_sanitize (printable ASCII,
 * bounded), json_string_lossy (always a JSON string, one '?' per bad byte)
 * and transfer_check_name (what may become a file name on the host) are
 * checked against those promises on the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "json-util.h"
#include "transfer.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Every code point of s[0..n) valid and fit for a terminal. */
static bool
terminal_safe(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < n;) {
		uint32_t cp = 0;
		size_t k = 0;

		/* decoded here independently of util.c's utf8_decode */
		if (p[i] < 0x80)
			cp = p[i], k = 1;
		else if ((p[i] & 0xe0) == 0xc0)
			cp = p[i] & 0x1f, k = 2;
		else if ((p[i] & 0xf0) == 0xe0)
			cp = p[i] & 0x0f, k = 3;
		else if ((p[i] & 0xf8) == 0xf0)
			cp = p[i] & 0x07, k = 4;
		else
			return false;
		if (i + k > n)
			return false;
		for (size_t j = 1; j < k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3f);
		}
		/* overlong, surrogate, past U+10FFFF */
		if ((k == 2 && cp < 0x80) || (k == 3 && cp < 0x800) ||
		    (k == 4 && cp < 0x10000) || (cp >= 0xd800 && cp <= 0xdfff) ||
		    cp > 0x10ffff)
			return false;
		if ((cp < 0x20 && cp != '\t') || (cp >= 0x7f && cp <= 0x9f))
			return false;
		i += k;
	}
	return true;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *)data;
	struct buf vis = { 0 };
	char small[64], *cstr, *nul;
	const char *why = NULL;
	size_t outlen = 1 + (size ? data[0] % sizeof(small) : 0);
	json_t *j;

	/* the terminal */
	term_sanitize(in, size, &vis);
	check(vis.data && vis.data[vis.len] == '\0' && vis.len <= size);
	check(terminal_safe(vis.data, vis.len));
	if (terminal_safe(in, size))
		check(vis.len == size && !memcmp(vis.data, in, size));
	buf_free(&vis);

	/* agent messages: printable ASCII, cut to the buffer */
	memset(small, 'X', sizeof(small));
	agent_sanitize(data, size, small, outlen);
	nul = memchr(small, '\0', outlen);
	check(nul != NULL);
	for (char *c = small; c < nul; c++)
		check(*c >= 0x20 && *c < 0x7f);
	for (size_t i = outlen; i < sizeof(small); i++)
		check(small[i] == 'X');

	/* the result JSON; and a file name on the host */
	cstr = malloc(size + 1);
	memcpy(cstr, data, size);
	cstr[size] = '\0';
	j = json_string_lossy(cstr);
	check(j && json_string_length(j) == strlen(cstr));
	json_decref(j);
	if (transfer_check_name(cstr, &why) == 0) {
		check(cstr[0] != '/' && strlen(cstr) <= TRANSFER_MAX_NAME);
		check(terminal_safe(cstr, strlen(cstr)) && !strchr(cstr, '\t'));
		check(strcmp(cstr, "..") && strncmp(cstr, "../", 3) &&
		      !strstr(cstr, "/../"));
		check(strlen(cstr) < 3 ||
		      strcmp(cstr + strlen(cstr) - 3, "/.."));
	} else {
		check(why && why[0]);
	}
	free(cstr);
	return 0;
}
