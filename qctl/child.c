/* child.c - the one set-up of every child the manager forks */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Above every fd a child keeps, so that no dup2 clobbers a source. */
#define CHILD_HIGH_FD 64

static int
close_from(int first)
{
	if (syscall(SYS_close_range, first, ~0u, 0) == 0)
		return 0;
	for (int fd = first; fd < 65536; fd++)
		close(fd);
	return 0;
}

int
child_setup(const struct child_fds *f, int *errpipe_out)
{
	sigset_t none;
	int devnull, hi[CHILD_HIGH_FD], hierr = -1, stdio[3];

	if (errpipe_out)
		*errpipe_out = f->errpipe;
	if (f->n < 0 || f->first < 3 || f->first + f->n + 1 > CHILD_HIGH_FD)
		return -EINVAL;
	/* The manager blocks signals for its signalfd: a child must not
	 * inherit the mask (a SIGTERM would never reach it) or handlers. */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	/* Own session: a ^C on the terminal goes to the manager only. */
	setsid();

	devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (devnull < 0)
		return -errno;
	/* Everything to high numbers first, then down into place. */
	if (f->errpipe >= 0) {
		hierr = fcntl(f->errpipe, F_DUPFD_CLOEXEC, CHILD_HIGH_FD);
		if (hierr < 0)
			return -errno;
		if (errpipe_out)
			*errpipe_out = hierr;
	}
	stdio[0] = f->in;
	stdio[1] = f->out;
	stdio[2] = f->err;
	for (int i = 0; i < 3; i++) {
		int src = stdio[i] >= 0 ? stdio[i] : devnull;

		stdio[i] = fcntl(src, F_DUPFD_CLOEXEC, CHILD_HIGH_FD);
		if (stdio[i] < 0)
			return -errno;
	}
	for (int i = 0; i < f->n; i++) {
		hi[i] = f->fds[i] < 0
				? -1
				: fcntl(f->fds[i], F_DUPFD_CLOEXEC,
					CHILD_HIGH_FD);
		if (f->fds[i] >= 0 && hi[i] < 0)
			return -errno;
	}
	for (int i = 0; i < 3; i++)
		if (dup2(stdio[i], i) < 0)
			return -errno;
	for (int i = 0; i < f->n; i++) {
		int to = f->first + i;

		if (hi[i] < 0) {
			close(to);
			continue;
		}
		if (f->keep_cloexec ? dup3(hi[i], to, O_CLOEXEC) < 0
				    : dup2(hi[i], to) < 0)
			return -errno;
	}
	if (hierr >= 0) {
		int to = f->first + f->n;

		if (dup3(hierr, to, O_CLOEXEC) < 0)
			return -errno;
		if (errpipe_out)
			*errpipe_out = to;
	}
	/* Exactly what f names survives; the error pipe closes on exec. */
	return close_from(f->first + f->n + (hierr >= 0 ? 1 : 0));
}
