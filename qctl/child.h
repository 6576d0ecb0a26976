/* child.h - the one set-up of every child the manager forks */
#ifndef QCTL_CHILD_H
#define QCTL_CHILD_H

#include <stdbool.h>

/*
 * What a child keeps: stdio (each -1 for /dev/null), fds[i] moved to
 * first + i (fds[i] < 0 leaves first + i closed), and the error pipe,
 * moved to first + n and close-on-exec, so that it vanishes once exec
 * works.  Everything else is closed.
 */
struct child_fds {
	int in, out, err;
	const int *fds;
	int n;
	int first;		/* >= 3 */
	int errpipe;		/* -1: none */
	bool keep_cloexec;	/* leave fds close-on-exec (a child that
				   does not exec) */
};

/*
 * Between fork and exec (or the child's own work): unblock and default
 * every signal (the manager blocks them for its signalfd), start a
 * session of its own (a ^C on the terminal is the manager's), and
 * arrange the fds as f says.  0, or -errno with the fds in an unknown
 * state; *errpipe_out is where the error pipe ended up.
 */
int child_setup(const struct child_fds *f, int *errpipe_out);

#endif
