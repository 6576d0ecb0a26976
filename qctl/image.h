/* image.h - find and describe a bootable builder image */
#ifndef QCTL_IMAGE_H
#define QCTL_IMAGE_H

#include "util.h"

struct image {
	char *dir;
	char *name;
	char *kernel;		/* absolute paths */
	char *initrd;
	char *cmdline;
};

/*
 * Resolve NAME (searched in $QCTL_IMAGES, then images/out beside the
 * qctl binary's tree, then ./images/out, then /usr/local/share/qctl/images)
 * or a path to an image directory (contains a '/'), and read its
 * image.json.
 */
int image_open(const char *name_or_dir, struct image *img, struct error *err);
void image_close(struct image *img);

#endif
