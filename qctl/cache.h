/*
 * cache.h - the dependency cache's host side (docs/cache.md): one raw
 * ext4 image per key and namespace, ROOT/<uid>/<key>.img, next to a lock
 * file <key>.lock that a build holds shared while it uses the key.
 *
 * A build never writes a stored image: it works on its own copy, and a
 * copy taken when its last fetch step ended replaces the image only when
 * the whole build passed.  The functions take the cache root as a
 * directory fd, so tests point them at a temp dir.
 */
#ifndef QCTL_CACHE_H
#define QCTL_CACHE_H

#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Default --cache-max: all images together, in allocated bytes. */
#define CACHE_MAX_DEFAULT (20ull << 30)

/* A key in use: its namespace directory and shared lock. */
struct cache_use {
	int ns_fd;		/* ROOT/<uid>, or -1 */
	int lock_fd;		/* <key>.lock, flock(LOCK_SH), or -1 */
	char key[80];
	char pending[128];	/* ".<key>.pending.<id>", "" when none */
};

#define CACHE_USE_INIT { .ns_fd = -1, .lock_fd = -1 }

/* Open (making it 0700 if missing) the cache root dir: *fd. */
int cache_root_open(const char *path, int *fd, struct error *err);

/*
 * Start using key in the namespace of uid: its directory made if missing,
 * its lock held shared (so that no eviction removes it), the stored
 * image's last use stamped.  Keys of two uids are two files: they never
 * meet.
 */
int cache_use_begin(int root_fd, uid_t ns, const char *key,
		    struct cache_use *u, struct error *err);

/*
 * Open the stored image read-only if it exists with exactly size bytes:
 * *fd, or -1 when there is none (missing, another size: the build starts
 * empty).
 */
int cache_open_image(struct cache_use *u, uint64_t size, int *fd,
		     struct error *err);

/* Copy src into dst (both open; dst truncated): a reflink where the file
 * system can, else copy_file_range over src's data extents only. */
int cache_copy_fd(int src, int dst, struct error *err);

/* Copy the build's disk (fd) to the pending file named after id. */
int cache_pending_write(struct cache_use *u, int disk_fd, const char *id,
			struct error *err);

/* The pending copy becomes the stored image (rename: atomic). */
int cache_commit(struct cache_use *u, struct error *err);

/* Drop the pending copy (if any), release the lock, close. */
void cache_use_end(struct cache_use *u);

/* One evicted image, for the build's log. */
typedef void (*cache_evict_fn)(const char *ns, const char *key,
			       uint64_t bytes, void *opaque);

/*
 * Remove the least recently used images (mtime) of every namespace until
 * they take at most max bytes (st_blocks); images whose lock is held
 * (a build uses them) stay.  *total: what is left.  Returns how many
 * images went, or negative.
 */
int cache_evict(int root_fd, uint64_t max, cache_evict_fn fn, void *opaque,
		uint64_t *total, struct error *err);

/*
 * qctl gc: remove the pending copies no build holds (their manager died
 * between the seal and the build's end) in every namespace of the cache
 * root at path, if it exists; never makes it.  Each removal is counted
 * in a line on out.  Returns how many went, or negative.
 */
int cache_gc(const char *path, FILE *out);

#endif
