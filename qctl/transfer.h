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

/*
 * Unpack a tar stream that came from the guest into destdir.  The guest is
 * hostile: only regular files are taken, names are checked (no absolute
 * paths, no "..", no empty components), nothing is followed, and the total
 * is capped at max_bytes.  Fills out/n with path, size and sha256.
 */
int transfer_unpack_artifacts(const char *tarpath, const char *destdir,
			      uint64_t max_bytes,
			      struct artifact_result **out, size_t *n,
			      struct error *err);
/* The same into the directory open at destfd (e.g. made by rundir_mkdir). */
int transfer_unpack_artifacts_at(const char *tarpath, int destfd,
				 uint64_t max_bytes,
				 struct artifact_result **out, size_t *n,
				 struct error *err);

/* Check a relative path from an archive; 0 if acceptable. */
int transfer_check_name(const char *name);

#endif
