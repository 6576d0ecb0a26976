/*
 * fuzz-image.c - libFuzzer target: image.json as a client may write it
 * (`qctl serve` reads a submitted image's image.json with the client's
 * rights, then parses the bytes in the manager: image_meta_parse, and
 * image_from_parts around it).
 *
 * Checks the promises: on success the kernel and initrd are plain file
 * names inside the image (never a path out of it), the defaults fill what
 * is missing; on refusal nothing is left allocated and the reason names
 * the file.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "image.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_file_name(const char *s)
{
	check(s && s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) <= 255);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct image_meta m;
	struct image img;
	struct error err = { 0 };
	char *dup;

	if (image_meta_parse((const char *)data, size, "image.json", &m,
			     &err) == 0) {
		check(size <= IMAGE_JSON_MAX);
		check_file_name(m.kernel);
		check_file_name(m.initrd);
		if (m.kernel_pvh)
			check_file_name(m.kernel_pvh);
		check(m.cmdline != NULL);
	} else {
		check(!m.kernel && !m.kernel_pvh && !m.initrd && !m.cmdline &&
		      !m.name);
		check(err.code > 0 && !strncmp(err.msg, "image.json", 10));
	}
	image_meta_free(&m);

	/* The same bytes as serve takes them: no fds here (-1 is closed
	 * harmlessly); a PVH kernel asked for when odd-sized. */
	dup = malloc(size ? size : 1);
	memcpy(dup, data, size);
	if (image_from_parts("/images/x", dup, size, size & 1, -1, -1, -1, &img,
			     &err) == 0) {
		check(img.dir && img.kernel && img.initrd && img.cmdline &&
		      img.name);
		check(!strncmp(img.kernel, "/images/x/", 10) &&
		      !strchr(img.kernel + 10, '/'));
		check(!strncmp(img.initrd, "/images/x/", 10) &&
		      !strchr(img.initrd + 10, '/'));
		image_close(&img);
	} else {
		check(err.code > 0 && !strncmp(err.msg, "image /images/x", 15));
	}
	free(dup);
	return 0;
}
