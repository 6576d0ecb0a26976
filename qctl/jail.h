/* jail.h - the namespaces and the root that QEMU runs in */
#ifndef QCTL_JAIL_H
#define QCTL_JAIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest path the jail holds (host paths of QEMU's files). */
#define JAIL_PATH_MAX 512

enum jail_kind {
	JAIL_FILE,    /* read-only bind of a host file */
	JAIL_DIR,     /* read-only bind of a host directory */
	JAIL_SYMLINK, /* a symlink, as on the host */
	JAIL_DEV,     /* bind of a host device node (read-write) */
};

/* Entry flags */
#define JAIL_EXEC 1u /* mapped executable (binary, libraries) */

struct jail_entry {
	enum jail_kind kind;
	unsigned flags;
	char *path;   /* where, in the jail and on the host */
	char *target; /* JAIL_SYMLINK: the link's text */
};

/* What the jail's root holds, worked out before fork. */
struct jail {
	struct jail_entry *e;
	size_t n, cap;
};

/*
 * 0 if path is fit for the jail: absolute, at most JAIL_PATH_MAX - 1
 * bytes, no empty, "." or ".." component, no trailing '/', not "/"
 * itself, no control character.  -EINVAL otherwise.
 */
int jail_path_check(const char *path);

/* Is path inside dir (or dir itself)?  Both checked paths. */
bool jail_path_under(const char *path, const char *dir);

/*
 * Add an entry; a path already there, or inside a JAIL_DIR already
 * there, is not added again, and a JAIL_DIR drops what it covers.
 * 0, -EINVAL (bad path) or -EEXIST (the same path with another kind).
 */
int jail_add(struct jail *j, enum jail_kind kind, unsigned flags,
	     const char *path, const char *target);
/* The entry at exactly path, or NULL. */
const struct jail_entry *jail_find(const struct jail *j, const char *path);
void jail_free(struct jail *j);

/*
 * Add what a host path needs to resolve in the jail as on the host:
 * every symlink met on the way (as JAIL_SYMLINK, e.g. /lib -> usr/lib),
 * then the file or directory it ends at (JAIL_FILE or JAIL_DIR, with
 * flags), under root (NULL: "/"; tests use a temp tree).  Entries name
 * the paths as seen from root.  The real path goes to real (may be
 * NULL; JAIL_PATH_MAX bytes).  0 or -errno.
 */
int jail_add_resolved(struct jail *j, const char *root, const char *path,
		      unsigned flags, char *real, struct error *err);

/* What an ELF object asks of the dynamic loader. */
struct jail_elf {
	uint16_t machine; /* e_machine */
	char *interp;	  /* PT_INTERP, or NULL */
	char *runpath;	  /* DT_RUNPATH, else DT_RPATH, or NULL */
	char **needed;	  /* DT_NEEDED names */
	size_t n_needed;
};

/* Read n bytes at off; 0 or -errno (short read: -EIO). */
typedef int (*jail_read_fn)(void *ctx, uint64_t off, void *buf, size_t n);

/*
 * Parse a 64-bit little-endian ELF object through rd, every offset and
 * size checked: its machine, interpreter, run path and needed
 * libraries.  A static object has none.  0 or -EINVAL (not such an
 * ELF, or malformed) / -errno of rd, with err filled and *out empty.
 */
int jail_elf_parse(jail_read_fn rd, void *ctx, struct jail_elf *out,
		   struct error *err);
void jail_elf_free(struct jail_elf *e);

/*
 * The directories of an ld.so.conf text, in order; "include PATTERN"
 * lines go to cb (to glob and read), everything after '#' is ignored.
 */
void jail_ldconf_parse(const char *buf, void (*dir)(const char *, void *),
		       void (*include)(const char *, void *), void *opaque);

/*
 * The jail of a QEMU binary: the binary and every library it and its
 * modules load (each resolved as the loader would, through
 * /etc/ld.so.conf), /etc/ld.so.cache, QEMU's module and firmware
 * directories with what their symlinks point to, and $QCTL_JAIL_BIND
 * (colon-separated host paths, for a QEMU built elsewhere).  The
 * result is cached per binary (path, inode and mtime); do not free it.
 */
int jail_for_qemu(const char *binary, const struct jail **out,
		  struct error *err);

/*
 * Between fork and exec, as root: move into new mount, network, IPC and
 * UTS namespaces (the network one holds only a down `lo`; fds of other
 * namespaces, such as a tap, keep working), and make the root a
 * read-only tmpfs holding only j's entries, read-only, plus /dev with
 * null, zero, full, random, urandom (and kvm if kvm), /dev/fd ->
 * /proc/self/fd, and a /proc that shows only the caller's own
 * processes (hidepid=invisible, subset=pid).  The host's root is
 * unmounted from the new namespace.  Allocates nothing.  0, or -errno.
 */
int jail_enter(const struct jail *j, bool kvm);

/*
 * Read back, in the child after jail_enter: the network namespace is
 * not host_netns (the inode of /proc/self/ns/net before), the root is a
 * read-only tmpfs, /proc is mounted and /etc is absent.  0 or -EPERM.
 */
int jail_verify(uint64_t host_netns);

/* The inode of the caller's network namespace, or 0. */
uint64_t jail_netns_id(void);

#endif
