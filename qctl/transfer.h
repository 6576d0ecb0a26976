/* transfer.h - source in and artifacts out, as tar streams (libarchive) */
#ifndef QCTL_TRANSFER_H
#define QCTL_TRANSFER_H

#include <stdint.h>

#include "result.h"
#include "util.h"

/*
 * Pack the tree at srcdir (or nothing, when srcdir is NULL) into a tar
 * file at tarpath.  Symlinks are stored as symlinks, never followed.
 */
int transfer_pack_source(const char *srcdir, const char *tarpath,
			 struct error *err);
/* The same into tarfd (a fresh file, open for writing; not closed). */
int transfer_pack_source_fd(const char *srcdir, int tarfd, struct error *err);

/* Fixed caps on the shape of the guest's artifact tar (docs/artifacts.md). */
#define TRANSFER_MAX_DEPTH 32	   /* path components */
#define TRANSFER_MAX_NAME 4000	   /* bytes of a path */
#define TRANSFER_MAX_ENTRIES 20000 /* tar members plus directories made */

/* The cap an unpack hit when it returned -EFBIG, for the result's limit. */
struct transfer_limit {
	const char *name; /* "artifacts_bytes" or "artifacts_entries" */
	uint64_t value;
	uint64_t max;
	const char *unit; /* "bytes" or "entries" */
};

/*
 * Unpack a tar stream that came from the guest into destdir.  The guest is
 * hostile: only regular files are taken, names are checked (see
 * transfer_check_name), nothing is followed, members plus directories made
 * are capped at TRANSFER_MAX_ENTRIES and the files' sizes (sparse ones by
 * their full size, counted before writing) at max_bytes.  Fills out/n with
 * path, size and the sha256 of each file as it is on disk.  On any error
 * what it made is removed again and out is empty; -EFBIG means a cap was
 * hit, described in lim (may be NULL); -EPROTO a malformed archive.
 */
int transfer_unpack_artifacts(const char *tarpath, const char *destdir,
			      uint64_t max_bytes,
			      struct artifact_result **out, size_t *n,
			      struct transfer_limit *lim, struct error *err);
/* The same into directory name under parent_fd (made there if missing,
 * never through a symlink): the run directory's own artifacts/. */
int transfer_unpack_artifacts_at(const char *tarpath, int parent_fd,
				 const char *name, uint64_t max_bytes,
				 struct artifact_result **out, size_t *n,
				 struct transfer_limit *lim,
				 struct error *err);

/*
 * Check a relative path from an archive: 0 if acceptable, else -1 with a
 * reason in why (may be NULL).  Refused: absolute, "..", longer than
 * TRANSFER_MAX_NAME, deeper than TRANSFER_MAX_DEPTH, a component over 255
 * bytes, invalid UTF-8, and controls (C0 with tab, DEL, C1).
 */
int transfer_check_name(const char *name, const char **why);

#endif
