/* fuzz-recipe.c - libFuzzer target for recipe_load_buffer */
#include <stddef.h>
#include <stdint.h>

#include "recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Parse arbitrary bytes as a recipe; any outcome but a crash/leak is fine.
 * Twice: as `qctl run` reads a file (paths against its directory), and as
 * `qctl serve` reads a client's (RECIPE_NO_FS: nothing of the server's
 * filesystem is consulted).
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct recipe *r = NULL;
	struct error err;

	if (recipe_load_buffer((const char *)data, size, "fuzz.yaml",
			       "/nonexistent", &r, &err) == 0)
		recipe_free(r);
	r = NULL;
	if (recipe_load_buffer_flags((const char *)data, size, "fuzz.yaml",
				     "/", RECIPE_NO_FS, &r, &err) == 0)
		recipe_free(r);
	return 0;
}
