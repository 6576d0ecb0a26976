/*
 * cmdline.h - the command lines qctl-sshbridge asks sshd to run.
 *
 * Pure functions over decoded agent payloads (guestagent/decode.h): every
 * string from the manager reaches the guest's shell single-quoted, never
 * as shell text; the only unquoted words are fixed here.  sshd runs the
 * line with the login shell of root (sh -c LINE).
 */
#ifndef QCTL_SB_CMDLINE_H
#define QCTL_SB_CMDLINE_H

#include <stddef.h>

#include "decode.h"

/* Longest command line sent: one argument of execve (MAX_ARG_STRLEN). */
#define SB_CMDLINE_MAX (128u * 1024 - 1)
/* Where an EXEC notes its process group in the guest, a file per job id
 * (the guest's /run is a tmpfs): SIGNAL kills it from there. */
#define SB_JOB_DIR "/run/qctl/jobs"

/* s single-quoted for sh, appended to out (capacity cap, NUL kept);
 * 0, or -1 if it does not fit. */
int sb_quote(char *out, size_t cap, const char *s);
/*
 * EXEC id: its process group (sshd makes the command a session leader)
 * written to JOBDIR/id, cd to cwd, then exactly the agent's environment
 * (base merged with the host's entries, env -i), then /bin/sh -c SCRIPT
 * ARGS... (flag AGENT_EXEC_SHELL) or argv searched in that PATH.  0, or
 * -1 (too long).
 */
int sb_exec_command(const struct ga_exec *e, uint32_t id, const char *jobdir,
		    char *out, size_t cap);
/*
 * SIGNAL signo to the process group of EXEC id, as the agent does: sshd
 * refuses ssh's own "signal" request in a root session ("session
 * signalling requires privilege separation"), so a command of its own
 * reads JOBDIR/id (waiting up to a second for it) and kills the group.
 */
int sb_signal_command(uint32_t id, int signo, const char *jobdir, char *out,
		      size_t cap);
/* FILE_IN: mkdir -p DIR, then tar -x -f - in it. */
int sb_file_in_command(const struct ga_file_in *f, char *out, size_t cap);
/*
 * FILE_OUT: in DIR, each glob expanded by bash as glob(3) would (sorted,
 * no dot files unless asked, a pattern or name that matches nothing is
 * named on stderr as "no match: GLOB"), then tar -c -f - -- MATCHES, or
 * nothing at all when nothing matched.
 */
int sb_file_out_command(const struct ga_file_out *f, char *out, size_t cap);
/* The RFC 4254 name of signal signo ("TERM"), or NULL. */
const char *sb_signal_name(int signo);
/* The number of an RFC 4254 signal name, or 0 if unknown. */
int sb_signal_number(const char *name);

#endif
