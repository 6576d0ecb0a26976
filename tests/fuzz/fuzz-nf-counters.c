/*
 * fuzz-nf-counters.c - libFuzzer target: the helper's reader of nft's
 * counter and quota listing (bounded, no overflow, no read past the NUL).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "counters.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct nf_counter_values v;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	nf_counters_parse(text, &v, NULL);
	free(text);
	return 0;
}
