/* image.h - find and describe a bootable builder image */
#ifndef QCTL_IMAGE_H
#define QCTL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* image.json is small; a larger one is refused unread. */
#define IMAGE_JSON_MAX (60 * 1024)

struct image {
	char *dir;
	char *name;
	char *kernel;		/* paths, for messages */
	char *initrd;
	char *cmdline;
	int kernel_fd;		/* open files: QEMU gets these */
	int initrd_fd;
};

/* What image.json says; file names are plain names inside the image. */
struct image_meta {
	char *kernel_pvh;	/* NULL: none */
	char *kernel;
	char *initrd;
	char *cmdline;
	char *name;		/* NULL: none given */
};

/*
 * Parse image.json's bytes (pure; the bytes may come from a client):
 * names must be plain file names (no '/', not starting with '.').
 */
int image_meta_parse(const char *buf, size_t len, const char *where,
		     struct image_meta *m, struct error *err);
void image_meta_free(struct image_meta *m);

/*
 * Resolve NAME (searched in $QCTL_IMAGES, then images/out beside the
 * qctl binary's tree, then ./images/out, then /usr/local/share/qctl/images)
 * or a path to an image directory (contains a '/'), read its image.json
 * and open its kernel and initrd, with the caller's rights: for images
 * the operator names.  Nothing blocks on a FIFO; only regular files.
 */
int image_open(const char *name_or_dir, struct image *img, struct error *err);
/*
 * An image a client named, read with the client's rights elsewhere: its
 * image.json bytes and its open kernel and initrd (both taken over).
 */
int image_from_parts(const char *dir, const char *json, size_t len,
		     bool pvh, int kernel_fd, int initrd_fd, struct image *img,
		     struct error *err);
/* A copy with fds of its own. */
int image_dup(const struct image *src, struct image *dst, struct error *err);
void image_close(struct image *img);

#endif
