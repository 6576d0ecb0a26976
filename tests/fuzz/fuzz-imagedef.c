/* fuzz-imagedef.c - libFuzzer target for imagedef_parse */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "fuzz-check.h"
#include "imagedef.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * Parse arbitrary bytes as an image definition: refused with a message,
 * or accepted with every promise of imagedef.h kept (these values become
 * the back end's arguments).
 */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imagedef *d = NULL;
	struct error err;

	err.msg[0] = '\0';
	if (imagedef_parse((const char *)data, size, "fuzz.yaml", &d, &err) <
	    0) {
		check(d == NULL);
		check(err.msg[0] != '\0');
		return 0;
	}
	check(d && imagedef_name_ok(d->name));
	if (d->base == IMAGEDEF_DEBIAN) {
		check(d->suite && d->suite[0] != '-');
		check(strlen(d->suite) <= IMAGEDEF_SUITE_MAX);
		check(d->variant != NULL);
	} else {
		check(!d->suite && !d->n_packages && !d->n_setup && !d->npm);
	}
	check(d->n_packages <= IMAGEDEF_MAX_PACKAGES);
	check(d->n_setup <= IMAGEDEF_MAX_SETUP);
	for (size_t i = 0; i < d->n_packages; i++)
		check(d->packages[i][0] != '-' &&
		      strlen(d->packages[i]) <= IMAGEDEF_PACKAGE_MAX);
	for (size_t i = 0; i < d->n_setup; i++)
		check(strlen(d->setup[i]) <= IMAGEDEF_SETUP_MAX);
	check(d->cpus >= 0 && d->cpus <= 64);
	imagedef_free(d);
	return 0;
}
