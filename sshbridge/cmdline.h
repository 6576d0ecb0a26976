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

/* s single-quoted for sh, appended to out (capacity cap, NUL kept);
 * 0, or -1 if it does not fit. */
int sb_quote(char *out, size_t cap, const char *s);
/*
 * EXEC: cd to cwd, then exactly the agent's environment (base merged
 * with the host's entries, env -i), then /bin/sh -c SCRIPT ARGS... (flag
 * AGENT_EXEC_SHELL) or argv searched in that PATH.  0, or -1 (too long).
 */
int sb_exec_command(const struct ga_exec *e, char *out, size_t cap);
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
