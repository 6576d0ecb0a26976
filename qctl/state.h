/* state.h - crash recovery: one record per live build, reaped by gc */
#ifndef QCTL_STATE_H
#define QCTL_STATE_H

#include <stdio.h>
#include <sys/types.h>

#include "util.h"

#define STATE_DIR_DEFAULT "/run/qctl"

/*
 * A build's record names everything it owns: the manager (pid and start
 * time, so a recycled pid is not mistaken for it), QEMU and its uid, the
 * network helper and proxy, the network namespace, the cgroup and the run
 * directory.  It is written before each resource is created, so that a
 * manager killed at any point leaves a record that covers what exists.
 */
struct state_rec;

/*
 * Start a record for run id (e.g. "run-AbC123") in dir (NULL: none),
 * which is made if missing and refused unless rundir_root_check passes.
 */
struct state_rec *state_open(const char *dir, const char *id,
			     const char *run_dir, struct error *err);
/* Note a resource; the record is rewritten (atomically) at once. */
int state_note_str(struct state_rec *s, const char *key, const char *val);
int state_note_pid(struct state_rec *s, const char *key, pid_t pid);
/* QEMU's uid (key "uid"), freed by gc with the rest (uidpool_gc). */
int state_note_uid(struct state_rec *s, uid_t uid);
/* The build ended cleanly: remove the record. */
void state_close(struct state_rec *s);

/*
 * Reap what dead managers left in dir: for each record whose manager is
 * gone, kill its processes (only if pid and start time still match),
 * free its uid, remove its namespace pin, cgroup and run directory, then
 * the record; then free the uid locks in dir that no live manager holds.
 * dir and run_root (NULL: RUN_ROOT_DEFAULT) must pass rundir_root_check
 * (missing is fine); records must be our own regular files, and only
 * run-XXXXXX directories directly under run_root are removed.  Prints one
 * line per removed or refused thing to out (may be NULL).  Returns the
 * number of records reaped, or negative on error.
 */
int state_gc(const char *dir, const char *run_root, FILE *out,
	     struct error *err);

#endif
