/* image.h - find and describe a bootable builder image */
#ifndef QCTL_IMAGE_H
#define QCTL_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* image.json is small; a larger one is refused unread. */
#define IMAGE_JSON_MAX (60 * 1024)

/* At most this many named host lists, each of at most this many entries. */
#define IMAGE_HOSTS_MAX 16
#define IMAGE_HOST_ENTRIES_MAX 64

/* A named list of package hosts ("apt", "npm"): recipe allow "image:NAME". */
struct image_hosts {
	char *name;		/* [a-z0-9_-]{1,32} */
	char **entries;		/* host:port, as a recipe's allow entries */
	size_t n;
};

struct image {
	char *dir;
	char *name;
	char *kernel;		/* paths, for messages */
	char *initrd;
	char *root;		/* NULL: the initramfs is the whole system */
	char *cmdline;
	int kernel_fd;		/* open files: QEMU gets these */
	int initrd_fd;
	int root_fd;		/* read-only, or -1 */
	int cpus;		/* defaults for recipes that say none; 0: none */
	uint64_t memory;
	/* "transport": "ssh": the guest runs sshd and no agent; steps go
	 * through qctl-sshbridge (docs/ssh-transport.md) */
	bool ssh;
	struct image_hosts *hosts;
	size_t n_hosts;
	/* "KEY=VALUE" every step gets by its network (before the recipe's
	 * env, which wins): [0] network none, [1] network fetch */
	char **step_env[2];
	size_t n_step_env[2];
};

/* What image.json says; file names are plain names inside the image. */
struct image_meta {
	char *kernel_pvh;	/* NULL: none */
	char *kernel;
	char *initrd;
	char *root;		/* NULL: none */
	char *cmdline;
	char *name;		/* NULL: none given */
	int cpus;		/* 0: none given */
	uint64_t memory;	/* 0: none given */
	bool ssh;		/* "transport": "ssh" (default "agent") */
	struct image_hosts *hosts;
	size_t n_hosts;
	char **step_env[2];	/* as in struct image */
	size_t n_step_env[2];
};

/* At most this many step_env entries per network, each this long. */
#define IMAGE_STEP_ENV_MAX 32
#define IMAGE_STEP_ENV_LEN 1024

/*
 * Parse image.json's bytes (pure; the bytes may come from a client):
 * names must be plain file names (no '/', not starting with '.').
 */
int image_meta_parse(const char *buf, size_t len, const char *where,
		     struct image_meta *m, struct error *err);
void image_meta_free(struct image_meta *m);

/*
 * Resolve NAME (searched in $QCTL_IMAGES, then images/out beside the
 * qctl binary's tree, then ./images/out, then the installed QCTL_IMAGEDIR
 * and QCTL_DATADIR/images of paths.h)
 * or a path to an image directory (contains a '/'), read its image.json
 * and open its kernel and initrd, with the caller's rights: for images
 * the operator names.  Nothing blocks on a FIFO; only regular files.
 */
int image_open(const char *name_or_dir, struct image *img, struct error *err);
/*
 * An image a client named, read with the client's rights elsewhere: its
 * image.json bytes and its open kernel, initrd and root disk (root_fd -1
 * when image.json names none; all taken over, even on failure).
 */
int image_from_parts(const char *dir, const char *json, size_t len,
		     bool pvh, int kernel_fd, int initrd_fd, int root_fd,
		     struct image *img, struct error *err);
/* The image's host list NAME, or NULL. */
const struct image_hosts *image_hosts_get(const struct image *img,
					  const char *name);
/* A copy with fds of its own. */
int image_dup(const struct image *src, struct image *dst, struct error *err);
void image_close(struct image *img);

#endif
