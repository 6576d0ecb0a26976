/* fuzz-sni.c - libFuzzer target: hostile first bytes of a CONNECT tunnel */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sni.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_name(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > 255)
		abort();
	for (size_t i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= 'A' && name[i] <= 'Z') ||
		      (name[i] >= '0' && name[i] <= '9') || name[i] == '-' ||
		      name[i] == '.' || name[i] == '_'))
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char out[256], out2[256];
	enum sni_result full, r;

	full = sni_parse(data, size, out, sizeof(out));
	if (full == SNI_FOUND)
		check_name(out);
	/* A prefix of the stream can only be incomplete or, once the
	 * ClientHello is whole, give the same answer: the proxy decides
	 * on whatever prefix it has read. */
	for (size_t n = 0; n < size; n += 1 + size / 16) {
		uint8_t *copy = malloc(n ? n : 1);

		memcpy(copy, data, n);
		r = sni_parse(copy, n, out2, sizeof(out2));
		free(copy);
		if (r != SNI_NEED_MORE && r != full)
			abort();
		if (r == SNI_FOUND && strcmp(out, out2))
			abort();
	}
	/* small output buffers never overflow */
	sni_parse(data, size, out2, 1 + (size ? data[0] % 16 : 0));
	return 0;
}
