/*
 * snapshot.h - saved VM states to start builds from (docs/snapshots.md).
 *
 * One file per VM shape under STATE/snapshots: a header naming exactly
 * what the state was made from (the descriptor: QEMU's command line and
 * the identity of its binary, kernel, initrd and disk size), then QEMU's
 * migration stream.  A state is used only when its descriptor equals the
 * build's byte for byte; anything else is a cold boot.
 */
#ifndef QCTL_SNAPSHOT_H
#define QCTL_SNAPSHOT_H

#include "util.h"

/* States kept per state directory; the least recently used go first. */
#define SNAPSHOT_KEEP 8
/* Longest descriptor: a command line and a few stat lines. */
#define SNAPSHOT_DESC_MAX (64 * 1024)

struct snapshot {
	char *dir;		/* STATE/snapshots */
	char *desc;		/* the descriptor */
	char name[32];		/* "KEY.vmstate", KEY from the descriptor */
	int lock_fd;		/* held while this build writes the state */
	int tmp_fd;		/* the file QEMU writes, or -1 */
	char tmp[48];
};

/* Name the state of desc (copied) under state_dir/snapshots. */
void snapshot_init(struct snapshot *s, const char *state_dir,
		   const char *desc);
void snapshot_free(struct snapshot *s);
/*
 * The saved state for the descriptor, read-only, its offset at the start
 * of QEMU's stream: an fd, -ENOENT when there is none (or it was made
 * from something else), or another -errno with err set.
 */
int snapshot_open(struct snapshot *s, struct error *err);
/*
 * Start writing the state: the descriptor is written to a new temporary
 * file, whose fd (offset after the header) is returned for QEMU's
 * migration stream.  -EBUSY: another build writes it now.
 */
int snapshot_begin(struct snapshot *s, struct error *err);
/*
 * QEMU has written the stream: the file is copied to a new one (QEMU's
 * fd never reaches the state later builds read), which replaces the
 * old state atomically; the oldest states beyond SNAPSHOT_KEEP go.
 * bytes gets the stream's size.
 */
int snapshot_commit(struct snapshot *s, uint64_t *bytes, struct error *err);
/* Forget the state being written (if any) and its lock. */
void snapshot_abort(struct snapshot *s);
/* The state would not load: remove it, so the next build saves anew. */
void snapshot_invalidate(struct snapshot *s);

/* 64-bit FNV-1a, in hex: the descriptor's file name (not a MAC: the
 * header is compared in full). */
void snapshot_key(const char *desc, char out[17]);

#endif
