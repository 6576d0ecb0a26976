/* imagedef.h - image definition files: YAML to a validated struct imagedef */
#ifndef QCTL_IMAGEDEF_H
#define QCTL_IMAGEDEF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Limits of a definition (docs/images.md). */
#define IMAGEDEF_MAX_BYTES (64 * 1024)
#define IMAGEDEF_NAME_MAX 64
#define IMAGEDEF_SUITE_MAX 64
#define IMAGEDEF_PACKAGE_MAX 128 /* bytes of one package name */
#define IMAGEDEF_MAX_PACKAGES 256
#define IMAGEDEF_SETUP_MAX 4096 /* bytes of one setup command */
#define IMAGEDEF_MAX_SETUP 32

enum imagedef_base {
	IMAGEDEF_INITRAMFS, /* base: initramfs, the minimal image */
	IMAGEDEF_DEBIAN,    /* base: {suite: ..., variant: ...} */
};

struct imagedef {
	char *name; /* [A-Za-z0-9_.-]{1,64}, not starting with '.' */
	enum imagedef_base base;
	/* IMAGEDEF_DEBIAN only: */
	char *suite;	 /* [a-z0-9][a-z0-9.-]*, at most 64 */
	char *variant;	 /* an mmdebstrap variant; default buildd */
	char **packages; /* Debian package names, no duplicates */
	size_t n_packages;
	bool deb_src; /* sources: also deb-src (deb always) */
	bool npm;     /* record the host's npm registry */
	bool ssh;     /* transport: ssh (sshd, no agent; ssh-transport.md) */
	char **setup; /* shell commands for the chroot, in order */
	size_t n_setup;
	uint64_t root_size; /* bytes; 0: auto */
	/* both bases: defaults a recipe gets; 0: not given */
	int cpus;	 /* 1..64 */
	uint64_t memory; /* bytes, 64M..64G */
};

/* Parse and validate a definition held in buf; name is for messages. */
int imagedef_parse(const char *buf, size_t len, const char *name,
		   struct imagedef **out, struct error *err);
/* Read, parse and validate a definition file. */
int imagedef_load_file(const char *path, struct imagedef **out,
		       struct error *err);
/* Whether s is a good image name (a directory name under images/out). */
bool imagedef_name_ok(const char *s);
/* Free a definition; NULL is fine. */
void imagedef_free(struct imagedef *d);

static inline void
imagedef_freep(struct imagedef **d)
{
	imagedef_free(*d);
}

#define _cleanup_imagedef_ __attribute__((cleanup(imagedef_freep)))

#endif
