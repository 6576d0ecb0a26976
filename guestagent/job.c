/*
 * job.c - the host's jobs: EXEC (a command with piped output), FILE_IN (a
 * tar stream fed to "tar -x") and FILE_OUT (a "tar -c" stream sent back).
 *
 * Every job is a child process that leads its own session, so SIGNAL
 * reaches what it spawned.  A job ends when its child has been reaped: the
 * pipes are then drained without blocking (a background grandchild may
 * hold them open forever) and closed, and the final frame is sent: EXIT for
 * EXEC, FILE_DONE for FILE_IN/FILE_OUT.  Ids are unique among live jobs.
 */
#include "agent.h"
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/close_range.h>

/* Most bytes taken from one pipe after its child was reaped. */
#define GA_DRAIN_MAX (256u * 1024)

extern char **environ;

enum job_kind {
	JOB_EXEC,
	JOB_FILE_IN,
	JOB_FILE_OUT,
};

struct ga_job {
	bool used;
	enum job_kind kind;
	uint32_t id;
	pid_t pid;		/* 0 if no child was started */
	bool reaped;
	int wstatus;
	int out_fd;		/* EXEC stdout, FILE_OUT tar stdout */
	int err_fd;		/* child's stderr */
	int in_fd;		/* FILE_IN tar stdin */
	struct ga_buf inq;	/* FILE_IN: DATA not yet written to tar */
	bool data_end;		/* FILE_IN: DATA_END received */
	int fail;		/* FILE_*: -errno of an agent-side failure */
	char text[GA_ERRTEXT_MAX + 1];	/* FILE_*: tar stderr or failure */
	size_t textlen;
	int pi_out, pi_err, pi_in;	/* indices into the pollfd array */
};

/* What a child reports through its close-on-exec pipe when it cannot exec. */
struct child_err {
	int err;
	char msg[256];
};

static struct ga_job jobs[GA_MAX_JOBS];

static struct ga_job *
job_find(uint32_t id)
{
	size_t i;

	for (i = 0; i < GA_MAX_JOBS; i++) {
		if (jobs[i].used && jobs[i].id == id)
			return &jobs[i];
	}
	return NULL;
}

/* A free slot for id, or NULL after replying ERROR. */
static struct ga_job *
job_new(struct ga_port *p, uint32_t id, enum job_kind kind)
{
	size_t i;

	/* id 0 is "no id" in the protocol; a duplicate would mix two streams */
	if (id == 0) {
		port_send_error(p, id, EINVAL, "job id 0 is reserved");
		return NULL;
	}
	if (job_find(id)) {
		port_send_error(p, id, EEXIST, "job id %u is in use", id);
		return NULL;
	}
	for (i = 0; i < GA_MAX_JOBS; i++) {
		struct ga_job *j = &jobs[i];

		if (j->used)
			continue;
		memset(j, 0, sizeof(*j));
		j->used = true;
		j->kind = kind;
		j->id = id;
		j->out_fd = j->err_fd = j->in_fd = -1;
		j->pi_out = j->pi_err = j->pi_in = -1;
		return j;
	}
	port_send_error(p, id, EAGAIN, "too many jobs (%d)", GA_MAX_JOBS);
	return NULL;
}

static void
close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static void
job_free(struct ga_job *j)
{
	close_fd(&j->out_fd);
	close_fd(&j->err_fd);
	close_fd(&j->in_fd);
	ga_buf_free(&j->inq);
	j->used = false;
}

static void
text_add(struct ga_job *j, const void *src, size_t n)
{
	size_t room = GA_ERRTEXT_MAX - j->textlen;

	if (n > room)
		n = room;
	memcpy(j->text + j->textlen, src, n);
	j->textlen += n;
	j->text[j->textlen] = '\0';
}

static void
text_set(struct ga_job *j, const char *msg)
{
	j->textlen = 0;
	text_add(j, msg, strlen(msg));
}

/* --- children ----------------------------------------------------------- */

static _Noreturn void
child_fail(int errfd, int err, const char *fmt, ...)
{
	struct child_err ce = { .err = err };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(ce.msg, sizeof(ce.msg), fmt, ap);
	va_end(ap);
	if (write(errfd, &ce, sizeof(ce)) < 0)
		_exit(126);
	_exit(127);
}

/*
 * Common child setup: default signals, own session (so SIGNAL and the
 * final kill reach the whole tree), fds 0-2 and nothing else across exec.
 */
static void
child_setup(int errfd, int in, int out, int err)
{
	sigset_t none;
	int nul = -1;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* ignored dispositions survive exec; builds expect SIGPIPE to kill */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	if (setsid() < 0)
		child_fail(errfd, errno, "setsid: %s", strerror(errno));
	if (in < 0 || out < 0) {
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0)
			child_fail(errfd, errno, "/dev/null: %s",
				   strerror(errno));
	}
	if (dup2(in >= 0 ? in : nul, 0) < 0 ||
	    dup2(out >= 0 ? out : nul, 1) < 0 || dup2(err, 2) < 0)
		child_fail(errfd, errno, "dup2: %s", strerror(errno));
	/* the agent's fds are O_CLOEXEC already; this covers any that are not */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0 && errno != ENOSYS &&
	    errno != EINVAL)
		child_fail(errfd, errno, "close_range: %s", strerror(errno));
}
