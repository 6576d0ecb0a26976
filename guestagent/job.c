/*
 * job.c - the host's jobs: EXEC (a command with piped output, optionally
 * with stdin fed by STDIN frames, or on a pseudo-terminal), FILE_IN (a tar
 * stream fed to "tar -x") and FILE_OUT (a "tar -c" stream sent back).
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
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

/* Most bytes taken from one pipe after its child was reaped. */
#define GA_DRAIN_MAX (256u * 1024)
/* Window of a new pseudo-terminal until the host sends WINSIZE. */
#define GA_PTY_ROWS 24
#define GA_PTY_COLS 80

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
	pid_t pid; /* 0 if no child was started */
	bool reaped;
	int wstatus;
	int out_fd;	   /* EXEC stdout (PTY: the master), FILE_OUT tar */
	int err_fd;	   /* child's stderr (none with a PTY) */
	int in_fd;	   /* FILE_IN tar stdin, EXEC stdin pipe or master */
	int pty_fd;	   /* EXEC PTY: the master, for TIOCSWINSZ */
	struct ga_buf inq; /* DATA/STDIN not yet written to in_fd */
	bool data_end;	   /* FILE_IN: DATA_END received */
	bool has_stdin;	   /* EXEC with AGENT_EXEC_STDIN or AGENT_EXEC_PTY */
	bool pty;	   /* EXEC with AGENT_EXEC_PTY */
	bool stdin_end;	   /* EXEC: STDIN_END received */
	int fail;	   /* FILE_*: -errno of an agent-side failure */
	char text[GA_ERRTEXT_MAX + 1]; /* FILE_*: tar stderr or failure */
	size_t textlen;
	int pi_out, pi_err, pi_in; /* indices into the pollfd array */
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
		j->out_fd = j->err_fd = j->in_fd = j->pty_fd = -1;
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
	close_fd(&j->pty_fd);
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
	struct child_err ce = {.err = err};
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
 * With tty (a pseudo-terminal's slave) it becomes the session's
 * controlling terminal and fds 0-2; in, out and err are then ignored.
 */
static void
child_setup(int errfd, const char *tty, int in, int out, int err)
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
	if (tty) {
		/* a session leader without a terminal acquires the first it
		 * opens; TIOCSCTTY says so explicitly */
		int t = open(tty, O_RDWR | O_CLOEXEC);

		if (t < 0)
			child_fail(errfd, errno, "open %s: %s", tty,
				   strerror(errno));
		if (ioctl(t, TIOCSCTTY, 0) < 0)
			child_fail(errfd, errno, "TIOCSCTTY: %s",
				   strerror(errno));
		in = out = err = t;
	}
	if (in < 0 || out < 0) {
		nul = open("/dev/null", O_RDWR | O_CLOEXEC);
		if (nul < 0)
			child_fail(errfd, errno, "/dev/null: %s",
				   strerror(errno));
	}
	if (dup2(in >= 0 ? in : nul, 0) < 0 ||
	    dup2(out >= 0 ? out : nul, 1) < 0 || dup2(err, 2) < 0)
		child_fail(errfd, errno, "dup2: %s", strerror(errno));
	/* the agent's fds are O_CLOEXEC; this catches any that are not */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0 && errno != ENOSYS &&
	    errno != EINVAL)
		child_fail(errfd, errno, "close_range: %s", strerror(errno));
}

/*
 * Parent side of a fork: close the child's ends, then block until the
 * child execs (EOF on the close-on-exec pipe) or reports why it could not.
 * This wait is short (fork to exec) and makes STARTED mean "exec worked".
 */
static int
spawn_wait(int errpipe, struct child_err *ce)
{
	size_t got = 0;

	memset(ce, 0, sizeof(*ce));
	while (got < sizeof(*ce)) {
		ssize_t n = read(errpipe, (char *)ce + got, sizeof(*ce) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(errpipe);
	if (got == 0)
		return 0;
	ce->msg[sizeof(ce->msg) - 1] = '\0';
	if (ce->err <= 0)
		ce->err = EIO;
	return -ce->err;
}

/* pipe2 with O_CLOEXEC, the parent's end (index pend) non-blocking. */
static int
pipe_for_child(int fds[2], int pend)
{
	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	if (pend >= 0 && ga_set_nonblock(fds[pend]) < 0) {
		close(fds[0]);
		close(fds[1]);
		return -EIO;
	}
	return 0;
}

static void
close_pair(int fds[2])
{
	close_fd(&fds[0]);
	close_fd(&fds[1]);
}

/* --- EXEC --------------------------------------------------------------- */

static _Noreturn void
exec_child(int errfd, const struct ga_exec *x, const char **envp,
	   const char *tty, int in, int out, int err)
{
	static const char *shargv[AGENT_MAX_STRINGS + 4];
	uint32_t i;

	child_setup(errfd, tty, in, out, err);
	/* the cwd is not created: a missing /src is the host's mistake */
	if (chdir(x->cwd) < 0)
		child_fail(errfd, errno, "chdir %s: %s", x->cwd,
			   strerror(errno));
	if (x->flags & AGENT_EXEC_SHELL) {
		/* sh -c SCRIPT [argv[1] as $0 [argv[2] as $1 ...]] */
		shargv[0] = "sh";
		shargv[1] = "-c";
		for (i = 0; i < x->argc; i++)
			shargv[2 + i] = x->argv[i];
		shargv[2 + i] = NULL;
		execve("/bin/sh", (char *const *)shargv, (char *const *)envp);
		child_fail(errfd, errno, "exec /bin/sh: %s", strerror(errno));
	}
	/* execvp searches the PATH of environ, so install the child's first */
	environ = (char **)envp;
	execvp(x->argv[0], (char *const *)x->argv);
	child_fail(errfd, errno, "exec %s: %s", x->argv[0], strerror(errno));
}

/*
 * A new pseudo-terminal: the master (close-on-exec, non-blocking) in
 * *master, the slave's path in tty, the window 24x80.  0 or -errno.
 */
static int
pty_open(int *master, char *tty, size_t size)
{
	struct winsize ws = {.ws_row = GA_PTY_ROWS, .ws_col = GA_PTY_COLS};
	int m, r;

	m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (m < 0)
		return -errno;
	r = 0;
	if (grantpt(m) < 0 || unlockpt(m) < 0)
		r = errno;
	else if ((r = ptsname_r(m, tty, size)) != 0)
		; /* ptsname_r returns its error */
	else if (ioctl(m, TIOCSWINSZ, &ws) < 0)
		r = errno;
	if (r) {
		close(m);
		return -r;
	}
	*master = m;
	return 0;
}

/* A close-on-exec duplicate of fd; -errno on failure. */
static int
dup_cloexec(int fd)
{
	int d = fcntl(fd, F_DUPFD_CLOEXEC, 3);

	return d < 0 ? -errno : d;
}

void
job_exec(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	static struct ga_exec x;
	static const char *envp[GA_ENV_BASE_N + AGENT_MAX_STRINGS + 1];
	static const char *const base[GA_ENV_BASE_N] = {
		GA_ENV_PATH,
		GA_ENV_HOME,
		GA_ENV_TERM,
	};
	int opipe[2] = {-1, -1}, epipe[2] = {-1, -1}, ipipe[2] = {-1, -1};
	int cpipe[2], master = -1;
	char tty[64];
	struct child_err ce;
	unsigned char pidbuf[4];
	const char *why;
	struct ga_job *j;
	pid_t pid;
	int r;

	if (ga_exec_decode(pl, len, &x, &why) < 0) {
		port_send_error(p, id, EINVAL, "%s", why);
		return;
	}
	if (ga_env_merge(base, GA_ENV_BASE_N, x.envv, x.envc, envp,
			 sizeof(envp) / sizeof(envp[0])) < 0) {
		port_send_error(p, id, E2BIG, "EXEC environment too large");
		return;
	}
	j = job_new(p, id, JOB_EXEC);
	if (!j)
		return;
	if (x.flags & AGENT_EXEC_PTY) {
		/* the master is read (out_fd), written (in_fd) and resized
		 * (pty_fd) through three descriptors, so closing one at EOF
		 * or on a write error leaves the others alone */
		if ((r = pty_open(&master, tty, sizeof(tty))) < 0) {
			port_send_error(p, id, -r, "pseudo-terminal: %s",
					strerror(-r));
			goto fail;
		}
		j->pty = j->has_stdin = true;
		j->pty_fd = master;
		if ((r = dup_cloexec(master)) < 0 ||
		    (j->out_fd = r, r = dup_cloexec(master)) < 0) {
			port_send_error(p, id, -r, "dup: %s", strerror(-r));
			goto fail;
		}
		j->in_fd = r;
	} else {
		if ((r = pipe_for_child(opipe, 0)) < 0 ||
		    (r = pipe_for_child(epipe, 0)) < 0 ||
		    ((x.flags & AGENT_EXEC_STDIN) &&
		     (r = pipe_for_child(ipipe, 1)) < 0)) {
			port_send_error(p, id, -r, "pipe: %s", strerror(-r));
			goto fail;
		}
		j->has_stdin = x.flags & AGENT_EXEC_STDIN;
	}
	if ((r = pipe_for_child(cpipe, -1)) < 0) {
		port_send_error(p, id, -r, "pipe: %s", strerror(-r));
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		r = errno;
		close_pair(cpipe);
		port_send_error(p, id, r, "fork: %s", strerror(r));
		goto fail;
	}
	if (pid == 0)
		exec_child(cpipe[1], &x, envp, j->pty ? tty : NULL, ipipe[0],
			   opipe[1], epipe[1]);
	close(cpipe[1]);
	close_fd(&opipe[1]);
	close_fd(&epipe[1]);
	close_fd(&ipipe[0]);
	if ((r = spawn_wait(cpipe[0], &ce)) < 0) {
		/* the failed child is reaped later as an unknown pid */
		port_send_error(p, id, -r, "%s", ce.msg);
		goto fail;
	}
	j->pid = pid;
	if (!j->pty) {
		j->out_fd = opipe[0];
		j->err_fd = epipe[0];
		j->in_fd = ipipe[1];
	}
	agent_put_u32(pidbuf, (uint32_t)pid);
	port_send(p, AGENT_STARTED, id, pidbuf, sizeof(pidbuf));
	return;
fail:
	close_pair(opipe);
	close_pair(epipe);
	close_pair(ipipe);
	job_free(j);
}

/* --- FILE_IN ------------------------------------------------------------ */

static _Noreturn void
file_in_child(int errfd, const char *dir, int in, int err)
{
	static const char *const argv[] = {"tar", "-x", "-f", "-", NULL};
	static const char *const envp[] = {GA_ENV_PATH, GA_ENV_HOME,
					   GA_ENV_TERM, NULL};
	int r;

	child_setup(errfd, NULL, in, err, err);
	if ((r = ga_mkdir_p(dir)) < 0)
		child_fail(errfd, -r, "mkdir -p %s: %s", dir, strerror(-r));
	if (chdir(dir) < 0)
		child_fail(errfd, errno, "chdir %s: %s", dir, strerror(errno));
	/* the system's tar: busybox in the minimal image, GNU tar elsewhere */
	environ = (char **)envp;
	execvp(argv[0], (char *const *)argv);
	child_fail(errfd, errno, "exec tar: %s", strerror(errno));
}

void
job_file_in(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	int ipipe[2] = {-1, -1}, epipe[2] = {-1, -1}, cpipe[2];
	struct ga_file_in fi;
	struct child_err ce;
	const char *why;
	struct ga_job *j;
	pid_t pid;
	int r;

	j = job_new(p, id, JOB_FILE_IN);
	if (!j)
		return;
	/*
	 * From here on every failure is kept in the job and reported by
	 * FILE_DONE after DATA_END, so the DATA frames already on their way
	 * are swallowed rather than answered one ERROR each.
	 */
	if (ga_file_in_decode(pl, len, &fi, &why) < 0) {
		j->fail = -EINVAL;
		text_set(j, why);
		return;
	}
	if ((r = pipe_for_child(ipipe, 1)) < 0 ||
	    (r = pipe_for_child(epipe, 0)) < 0 ||
	    (r = pipe_for_child(cpipe, -1)) < 0) {
		j->fail = r;
		text_set(j, "pipe failed");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		j->fail = -errno;
		close_pair(cpipe);
		text_set(j, "fork failed");
		goto out;
	}
	if (pid == 0)
		file_in_child(cpipe[1], fi.dir, ipipe[0], epipe[1]);
	close(cpipe[1]);
	close_fd(&ipipe[0]);
	close_fd(&epipe[1]);
	if ((r = spawn_wait(cpipe[0], &ce)) < 0) {
		j->fail = r;
		text_set(j, ce.msg);
		goto out;
	}
	j->pid = pid;
	j->in_fd = ipipe[1];
	j->err_fd = epipe[0];
	return;
out:
	close_pair(ipipe);
	close_pair(epipe);
}

/*
 * Write what inq holds to the child (tar's stdin, an EXEC's stdin pipe or
 * its terminal) as far as it accepts without blocking; close a pipe once
 * DATA_END/STDIN_END has come and everything before it is written.
 */
static void
stdin_push(struct ga_job *j)
{
	while (j->in_fd >= 0 && ga_buf_used(&j->inq)) {
		ssize_t n = write(j->in_fd, j->inq.data + j->inq.off,
				  ga_buf_used(&j->inq));

		if (n > 0) {
			ga_buf_drop(&j->inq, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		/*
		 * tar exited early (EPIPE): its status says why; an EXEC
		 * closed its stdin (EPIPE) or its terminal (EIO): what the
		 * host sends from now on is dropped, as the child would
		 * have dropped it
		 */
		close_fd(&j->in_fd);
		ga_buf_free(&j->inq);
	}
	/* a terminal stays open: only its slave's last close ends it */
	if ((j->data_end || j->stdin_end) && !j->pty && !ga_buf_used(&j->inq))
		close_fd(&j->in_fd);
}

static void job_check(struct ga_port *p, struct ga_job *j);

void
job_data(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	struct ga_job *j = job_find(id);

	if (!j || j->kind != JOB_FILE_IN) {
		port_send_error(p, id, ESRCH, "DATA for no FILE_IN %u", id);
		return;
	}
	if (j->data_end) {
		port_send_error(p, id, EINVAL, "DATA after DATA_END");
		return;
	}
	if (j->in_fd < 0)
		return; /* failed or tar gone: swallow */
	ga_buf_add(&j->inq, pl, len);
	stdin_push(j);
}

void
job_data_end(struct ga_port *p, uint32_t id)
{
	struct ga_job *j = job_find(id);

	if (!j || j->kind != JOB_FILE_IN || j->data_end) {
		port_send_error(p, id, ESRCH, "DATA_END for no FILE_IN %u", id);
		return;
	}
	j->data_end = true;
	stdin_push(j);
	job_check(p, j);
}

void
job_stdin(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	struct ga_job *j;

	/* like an empty STDOUT: a frame no byte count would account for */
	if (len == 0) {
		port_send_error(p, id, EINVAL, "empty STDIN");
		return;
	}
	j = job_find(id);
	if (!j) {
		port_send_error(p, id, ESRCH, "STDIN for no job %u", id);
		return;
	}
	if (j->kind != JOB_EXEC || !j->has_stdin) {
		port_send_error(p, id, EINVAL, "job %u has no stdin", id);
		return;
	}
	if (j->stdin_end) {
		port_send_error(p, id, EINVAL, "STDIN after STDIN_END");
		return;
	}
	if (j->in_fd < 0)
		return; /* the child closed its stdin: swallow */
	ga_buf_add(&j->inq, pl, len);
	stdin_push(j);
}

void
job_stdin_end(struct ga_port *p, uint32_t id, size_t len)
{
	struct ga_job *j;

	if (len) {
		port_send_error(p, id, EINVAL, "STDIN_END with a payload");
		return;
	}
	j = job_find(id);
	if (!j) {
		port_send_error(p, id, ESRCH, "STDIN_END for no job %u", id);
		return;
	}
	if (j->kind != JOB_EXEC || !j->has_stdin) {
		port_send_error(p, id, EINVAL, "job %u has no stdin", id);
		return;
	}
	if (j->stdin_end) {
		port_send_error(p, id, EINVAL, "STDIN_END twice");
		return;
	}
	j->stdin_end = true;
	stdin_push(j);
}

void
job_winsize(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	struct ga_job *j;
	struct winsize ws;
	uint32_t rows, cols;
	const char *why;

	if (ga_winsize_decode(pl, len, &rows, &cols, &why) < 0) {
		port_send_error(p, id, EINVAL, "%s", why);
		return;
	}
	j = job_find(id);
	if (!j) {
		port_send_error(p, id, ESRCH, "WINSIZE for no job %u", id);
		return;
	}
	if (!j->pty || j->pty_fd < 0) {
		port_send_error(p, id, EINVAL, "job %u has no terminal", id);
		return;
	}
	memset(&ws, 0, sizeof(ws));
	ws.ws_row = (unsigned short)rows;
	ws.ws_col = (unsigned short)cols;
	/* the kernel sends SIGWINCH to the terminal's foreground group */
	if (ioctl(j->pty_fd, TIOCSWINSZ, &ws) < 0)
		port_send_error(p, id, errno, "TIOCSWINSZ: %s",
				strerror(errno));
}

bool
job_stdin_congested(void)
{
	size_t i;

	for (i = 0; i < GA_MAX_JOBS; i++) {
		if (jobs[i].used && ga_buf_used(&jobs[i].inq) > GA_STDIN_HIGH)
			return true;
	}
	return false;
}

/* --- FILE_OUT ----------------------------------------------------------- */

static _Noreturn void
file_out_child(int errfd, const struct ga_file_out *fo, int out, int err)
{
	static const char *const envp[] = {GA_ENV_PATH, GA_ENV_HOME,
					   GA_ENV_TERM, NULL};
	const char **argv;
	glob_t g;
	uint32_t i;
	size_t k;
	int flags = 0;

	child_setup(errfd, NULL, -1, out, err);
	if (chdir(fo->dir) < 0)
		child_fail(errfd, errno, "chdir %s: %s", fo->dir,
			   strerror(errno));
	memset(&g, 0, sizeof(g));
	for (i = 0; i < fo->n; i++) {
		int r = glob(fo->globs[i], flags, NULL, &g);

		/* no match is not an error: the message names the glob */
		if (r == GLOB_NOMATCH) {
			dprintf(2, "no match: %s\n", fo->globs[i]);
			continue;
		}
		if (r != 0)
			child_fail(errfd, r == GLOB_NOSPACE ? ENOMEM : EIO,
				   "glob %s failed", fo->globs[i]);
		flags = GLOB_APPEND;
	}
	/* nothing matched: no DATA at all, FILE_DONE 0 */
	if (g.gl_pathc == 0)
		_exit(0);
	argv = malloc((g.gl_pathc + 6) * sizeof(*argv));
	if (!argv)
		child_fail(errfd, ENOMEM, "out of memory");
	argv[0] = "tar";
	argv[1] = "-c";
	argv[2] = "-f";
	argv[3] = "-";
	argv[4] = "--";
	for (k = 0; k < g.gl_pathc; k++)
		argv[5 + k] = g.gl_pathv[k];
	argv[5 + k] = NULL;
	environ = (char **)envp;
	execvp(argv[0], (char *const *)argv);
	child_fail(errfd, errno, "exec tar: %s", strerror(errno));
}

void
job_file_out(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	static struct ga_file_out fo;
	int opipe[2] = {-1, -1}, epipe[2] = {-1, -1}, cpipe[2];
	struct child_err ce;
	const char *why;
	struct ga_job *j;
	pid_t pid;
	int r;

	j = job_new(p, id, JOB_FILE_OUT);
	if (!j)
		return;
	/* like FILE_IN, a transfer always ends in exactly one FILE_DONE */
	if (ga_file_out_decode(pl, len, &fo, &why) < 0) {
		port_send_done(p, id, -EINVAL, why);
		goto fail;
	}
	if ((r = pipe_for_child(opipe, 0)) < 0 ||
	    (r = pipe_for_child(epipe, 0)) < 0 ||
	    (r = pipe_for_child(cpipe, -1)) < 0) {
		port_send_done(p, id, r, "pipe failed");
		goto fail;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close_pair(cpipe);
		port_send_done(p, id, r, "fork failed");
		goto fail;
	}
	if (pid == 0)
		file_out_child(cpipe[1], &fo, opipe[1], epipe[1]);
	close(cpipe[1]);
	close_fd(&opipe[1]);
	close_fd(&epipe[1]);
	if ((r = spawn_wait(cpipe[0], &ce)) < 0) {
		port_send_done(p, id, r, ce.msg);
		goto fail;
	}
	j->pid = pid;
	j->out_fd = opipe[0];
	j->err_fd = epipe[0];
	return;
fail:
	close_pair(opipe);
	close_pair(epipe);
	job_free(j);
}

/* --- SIGNAL ------------------------------------------------------------- */

/*
 * The foreground process group of a PTY job's terminal, or 0.  A shell
 * with job control runs its foreground job in a group of its own, which
 * a signal to the job's group would miss; the terminal is the job's, so
 * the group is of the job's session.  Asked before the job's group is
 * signalled: once the session leader is dead the terminal forgets it.
 */
static pid_t
pty_foreground(const struct ga_job *j)
{
	pid_t fg;

	if (!j->pty || j->pty_fd < 0 || ioctl(j->pty_fd, TIOCGPGRP, &fg) < 0)
		return 0;
	return fg > 0 ? fg : 0;
}

void
job_signal(struct ga_port *p, uint32_t id, const void *pl, size_t len)
{
	struct ga_job *j = job_find(id);
	const char *why;
	pid_t fg;
	int signo;

	if (ga_signal_decode(pl, len, &signo, &why) < 0) {
		port_send_error(p, id, EINVAL, "%s", why);
		return;
	}
	if (!j || j->pid <= 0 || j->reaped) {
		port_send_error(p, id, ESRCH, "no running job %u", id);
		return;
	}
	fg = pty_foreground(j);
	/* the job leads its own group: the signal reaches all it spawned */
	if (kill(-j->pid, signo) < 0) {
		port_send_error(p, id, errno, "kill: %s", strerror(errno));
		return;
	}
	if (fg > 0 && fg != j->pid)
		kill(-fg, signo);
}

/* --- output, completion ------------------------------------------------- */

/*
 * Read once from fd and forward: DATA/STDOUT/STDERR frames, or into the
 * job's text for a FILE_* stderr.  Returns bytes read, 0 at EOF (fd is
 * closed), -1 if nothing was there.
 */
static ssize_t
job_pump(struct ga_port *p, struct ga_job *j, int *fd)
{
	static unsigned char buf[GA_READ_CHUNK];
	uint16_t type;
	ssize_t n;

	do
		n = read(*fd, buf, sizeof(buf));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return -1;
	if (n <= 0) {
		close_fd(fd);
		return 0;
	}
	if (fd == &j->err_fd && j->kind != JOB_EXEC) {
		text_add(j, buf, (size_t)n);
		return n;
	}
	if (j->kind == JOB_EXEC)
		type = fd == &j->out_fd ? AGENT_STDOUT : AGENT_STDERR;
	else
		type = AGENT_DATA;
	port_send(p, type, j->id, buf, (size_t)n);
	return n;
}

/* After the child is gone: take what the pipe holds now, then close it. */
static void
job_drain(struct ga_port *p, struct ga_job *j, int *fd)
{
	size_t total = 0;
	ssize_t n;

	/* bounded: a grandchild that keeps writing must not hold us here */
	while (*fd >= 0 && total < GA_DRAIN_MAX && (n = job_pump(p, j, fd)) > 0)
		total += (size_t)n;
	close_fd(fd);
}

static int
done_status(const struct ga_job *j)
{
	if (j->fail)
		return j->fail;
	if (WIFEXITED(j->wstatus))
		return WEXITSTATUS(j->wstatus);
	return 128 + WTERMSIG(j->wstatus);
}

/* Send the final frame and free j if it has finished. */
static void
job_check(struct ga_port *p, struct ga_job *j)
{
	unsigned char ex[8];
	bool running = j->pid > 0 && !j->reaped;

	switch (j->kind) {
	case JOB_EXEC:
		if (running)
			return;
		/* nobody will read stdin queued for a child that is gone */
		close_fd(&j->in_fd);
		ga_buf_free(&j->inq);
		job_drain(p, j, &j->out_fd);
		job_drain(p, j, &j->err_fd);
		if (WIFSIGNALED(j->wstatus)) {
			agent_put_u32(ex, (uint32_t)-1);
			agent_put_u32(ex + 4, (uint32_t)WTERMSIG(j->wstatus));
		} else {
			agent_put_u32(ex, (uint32_t)WEXITSTATUS(j->wstatus));
			agent_put_u32(ex + 4, 0);
		}
		port_send(p, AGENT_EXIT, j->id, ex, sizeof(ex));
		job_free(j);
		return;
	case JOB_FILE_IN:
		if (running)
			return;
		/* tar is gone: nothing more can be written to it */
		close_fd(&j->in_fd);
		ga_buf_free(&j->inq);
		if (!j->data_end)
			return;
		job_drain(p, j, &j->err_fd);
		port_send_done(p, j->id, done_status(j), j->text);
		job_free(j);
		return;
	case JOB_FILE_OUT:
		if (running)
			return;
		job_drain(p, j, &j->out_fd);
		job_drain(p, j, &j->err_fd);
		port_send_done(p, j->id, done_status(j), j->text);
		job_free(j);
		return;
	}
}

void
job_reaped(struct ga_port *p, pid_t pid, int status)
{
	size_t i;

	for (i = 0; i < GA_MAX_JOBS; i++) {
		struct ga_job *j = &jobs[i];

		if (j->used && j->pid == pid && !j->reaped) {
			j->reaped = true;
			j->wstatus = status;
			job_check(p, j);
			return;
		}
	}
	/* an orphan re-parented to PID 1, or a child that failed to exec */
}

static void
poll_add(struct pollfd *fds, size_t *n, size_t cap, int fd, short ev, int *pi)
{
	*pi = -1;
	if (fd < 0 || !ev || *n >= cap)
		return;
	fds[*n].fd = fd;
	fds[*n].events = ev;
	fds[*n].revents = 0;
	*pi = (int)(*n)++;
}

size_t
job_poll_fill(struct ga_port *p, struct pollfd *fds, size_t n, size_t cap)
{
	/* while we are behind, output waits in the pipes (children block) */
	short out_ev = port_congested(p) ? 0 : POLLIN;
	size_t i;

	for (i = 0; i < GA_MAX_JOBS; i++) {
		struct ga_job *j = &jobs[i];

		if (!j->used)
			continue;
		poll_add(fds, &n, cap, j->out_fd, out_ev, &j->pi_out);
		/* a FILE_* stderr only fills the bounded message text */
		poll_add(fds, &n, cap, j->err_fd,
			 j->kind == JOB_EXEC ? out_ev : POLLIN, &j->pi_err);
		poll_add(fds, &n, cap, j->in_fd,
			 ga_buf_used(&j->inq) ? POLLOUT : 0, &j->pi_in);
	}
	return n;
}

static bool
ready(const struct pollfd *fds, size_t first, size_t n, int pi)
{
	return pi >= 0 && (size_t)pi >= first && (size_t)pi < n &&
	       fds[pi].revents;
}

void
job_poll_handle(struct ga_port *p, const struct pollfd *fds, size_t first,
		size_t n)
{
	size_t i;

	for (i = 0; i < GA_MAX_JOBS; i++) {
		struct ga_job *j = &jobs[i];

		if (!j->used)
			continue;
		if (ready(fds, first, n, j->pi_out) && !port_congested(p))
			job_pump(p, j, &j->out_fd);
		if (ready(fds, first, n, j->pi_err) &&
		    (j->kind != JOB_EXEC || !port_congested(p)))
			job_pump(p, j, &j->err_fd);
		if (ready(fds, first, n, j->pi_in))
			stdin_push(j);
		j->pi_out = j->pi_err = j->pi_in = -1;
	}
}

void
job_kill_all(void)
{
	size_t i;
	pid_t fg;

	for (i = 0; i < GA_MAX_JOBS; i++) {
		struct ga_job *j = &jobs[i];

		if (!j->used)
			continue;
		/* a job-control shell's foreground job, as SIGNAL does */
		fg = pty_foreground(j);
		if (j->pid > 0 && !j->reaped)
			kill(-j->pid, SIGKILL);
		if (fg > 0)
			kill(-fg, SIGKILL);
		job_free(j);
	}
}

size_t
job_count(void)
{
	size_t i, n = 0;

	for (i = 0; i < GA_MAX_JOBS; i++)
		n += jobs[i].used;
	return n;
}
