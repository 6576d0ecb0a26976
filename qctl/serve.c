/*
 * serve.c - qctl serve's scheduler.
 *
 * Builds come in over the control socket, wait in submission order, and
 * run max_parallel at a time, each one a build of the engine (own VM,
 * namespace, cgroup, helper, proxy, run directory) on the one event loop.
 * Their events go to every client.  A finished build is remembered, with
 * its run directory, until SERVE_KEEP_FINISHED newer ones have finished.
 */
#include "serve.h"
#include "serve-int.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdarg.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include "image.h"
#include "json-util.h"
#include "peer.h"
#include "rundir.h"
#include "state.h"

/* build-log: default and largest chunk (a qemu.qmp reader takes 64 KiB) */
#define LOG_CHUNK_DEFAULT 32768
#define LOG_CHUNK_MAX (256 * 1024)
/* a progress line to the server log is cut here */
#define PROGRESS_LINE_MAX 4096

const struct serve_backend serve_engine = {
	.new = build_new,
	.start = build_start,
	.cancel = build_cancel,
	.result = build_result,
	.run_dir = build_run_dir,
	.pause = build_pause,
	.current_step = build_current_step,
	.qemu_pid = build_qemu_pid,
	.free = build_free,
	.held = build_held,
	.shell_open = build_shell_open,
	.shell_input = build_shell_input,
	.shell_eof = build_shell_eof,
	.shell_winsize = build_shell_winsize,
	.shell_close = build_shell_close,
	.hold_end = build_hold_end,
};

void
serve_log(struct serve *s, const char *fmt, ...)
{
	struct buf safe = { 0 };
	char line[2048];
	va_list ap;
	int n;

	if (!s->o.log)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* Lines quote clients' paths and errors: no escape sequence of
	 * theirs reaches an operator's terminal. */
	term_sanitize(line, strlen(line), &safe);
	fprintf(s->o.log, "qctl serve: %s\n", safe.data ? safe.data : "");
	fflush(s->o.log);
	buf_free(&safe);
}

static void on_work(struct loop *l, void *opaque);

/* Do the scheduler's work (start, free, evict) on the next loop round. */
static void
kick(struct serve *s)
{
	if (!s->t_work)
		s->t_work = loop_timer_at(s->loop, now_ms(), on_work, s);
}

static const char *
sb_status(const struct sbuild *sb)
{
	if (sb->state == SB_QUEUED)
		return "queued";
	if (sb->state == SB_RUNNING)
		return "running";
	return json_string_value(json_object_get(sb->result, "status"));
}

struct sbuild *
sb_find(struct serve *s, const char *id, struct error *err)
{
	char q[40];

	for (struct sbuild *sb = s->builds; sb; sb = sb->next)
		if (!strcmp(sb->id, id))
			return sb;
	/* the id is the client's: quote it harmlessly */
	snprintf(q, sizeof(q), "%s", id);
	for (char *p = q; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	error_set(err, ENOENT, "no build \"%s\" (finished builds are "
		  "remembered until %d newer ones finish)", q,
		  s->o.keep_finished);
	return NULL;
}

/* ---- progress to the server log, one prefixed line at a time ---------- */

struct prefix_out {
	struct serve *s;
	char id[24];
	struct buf line;
};

static ssize_t
prefix_write(void *cookie, const char *p, size_t n)
{
	struct prefix_out *po = cookie;
	FILE *log = po->s->o.log;

	for (size_t i = 0; i < n; i++) {
		if (p[i] != '\n') {
			if (po->line.len < PROGRESS_LINE_MAX)
				buf_append(&po->line, &p[i], 1);
			continue;
		}
		fprintf(log, "[%s] %.*s\n", po->id, (int)po->line.len,
			po->line.data ? po->line.data : "");
		po->line.len = 0;
	}
	fflush(log);
	return n;
}

static int
prefix_close(void *cookie)
{
	struct prefix_out *po = cookie;

	if (po->line.len)
		prefix_write(po, "\n", 1);
	buf_free(&po->line);
	free(po);
	return 0;
}

static FILE *
prefix_open(struct serve *s, const char *id)
{
	static const cookie_io_functions_t fns = {
		.write = prefix_write,
		.close = prefix_close,
	};
	struct prefix_out *po = xcalloc(1, sizeof(*po));
	FILE *f;

	po->s = s;
	snprintf(po->id, sizeof(po->id), "%s", id);
	f = fopencookie(po, "w", fns);
	if (!f)
		free(po);
	return f;
}

/* ---- the life of a build ------------------------------------------------ */

static void
on_build_event(struct build *b, const char *event, json_t *data,
	       void *opaque)
{
	struct sbuild *sb = opaque;
	json_t *d = json_is_object(data) ? json_deep_copy(data)
					 : json_object();

	(void)b;
	json_object_set_new(d, "build", json_string(sb->id));
	ctl_event(sb->s->ctl, event, d);
}

/* The build has ended (or never started): record, announce, let go. */
static void
sb_finish(struct sbuild *sb)
{
	struct serve *s = sb->s;
	struct build_result *res = s->be->result(sb->b);
	const char *rd = s->be->run_dir(sb->b);
	struct error err = { 0 };

	if (sb->state == SB_RUNNING)
		s->n_running--;
	else if (sb->state == SB_QUEUED)
		s->n_queued--;
	sb->state = SB_FINISHED;
	s->n_finished++;
	sb->paused = false;
	sb->t_end = now_ms();
	if (rd && !sb->run_dir)
		sb->run_dir = xstrdup(rd);
	sb->result = result_to_json(res);
	if (sb->run_dir) {
		/* root's file in the run directory: never through a link */
		_cleanup_close_ int dfd = -1;

		if (rundir_open_dir(sb->run_dir, &dfd, &err) < 0 ||
		    result_write_file_at(res, dfd, "result.json", &err) < 0)
			serve_log(s, "%s: %s", sb->id, err.msg);
	}
	serve_log(s, "%s: %s after %.1fs (uid %d): %s", sb->id,
	     result_status_name(res->status),
	     (sb->t_end - (sb->t_start ? sb->t_start : sb->t_submit)) /
		     1000.0,
	     (int)sb->peer.uid, res->reason ? res->reason : "");
	ctl_event(s->ctl, "BUILD_FINISHED",
		  json_pack("{s:s, s:i, s:O}", "build", sb->id, "uid",
			    (int)sb->peer.uid, "result", sb->result));
	sb->release = true;
	kick(s);
}

static void
on_build_done(struct build *b, void *opaque)
{
	struct sbuild *sb = opaque;

	(void)b;
	/* May run inside the engine (or inside build-cancel): the engine's
	 * build is freed on the next loop round, not here. */
	sb_finish(sb);
}

static void
sb_start(struct sbuild *sb)
{
	struct serve *s = sb->s;
	struct error err = { 0 };

	s->n_queued--;
	s->n_running++;
	sb->state = SB_RUNNING;
	sb->t_start = now_ms();
	if (s->be->start(sb->b, &err) < 0) {
		result_finish(s->be->result(sb->b), BUILD_ERROR, "%s",
			      err.msg);
		sb_finish(sb);
		return;
	}
	sb->run_dir = xstrdup(s->be->run_dir(sb->b));
	serve_log(s, "%s: started (uid %d) in %s", sb->id, (int)sb->peer.uid,
	     sb->run_dir);
	ctl_event(s->ctl, "BUILD_STARTED",
		  json_pack("{s:s, s:i, s:s}", "build", sb->id, "uid",
			    (int)sb->peer.uid, "run_dir", sb->run_dir));
}

/*
 * The engine is done with a finished build: its VM and everything else
 * are gone.  Only the run directory stays (logs, result, artifacts), so
 * that build-log works; a state record keeps naming it, so that a crashed
 * server's directories are still reaped by qctl gc.
 */
static void
sb_release(struct sbuild *sb)
{
	struct serve *s = sb->s;
	struct error err = { 0 };

	sb->release = false;
	if (sb->run_dir && s->o.build.state_dir) {
		_cleanup_free_ char *id = xasprintf(
			"%s-kept", strrchr(sb->run_dir, '/') + 1);

		sb->kept = state_open(s->o.build.state_dir, id, sb->run_dir,
				      &err);
		if (!sb->kept)
			serve_log(s, "%s: %s", sb->id, err.msg);
	}
	s->be->free(sb->b);
	sb->b = NULL;
	if (sb->out)
		fclose(sb->out);
	sb->out = NULL;
	recipe_free(sb->recipe);
	sb->recipe = NULL;
	if (sb->run_dir) {
		/* the scratch disk is the bulk and nobody reads it now */
		_cleanup_free_ char *disk = xasprintf("%s/disk.img",
						      sb->run_dir);

		unlink(disk);
	}
}

static void
sb_free(struct sbuild *sb)
{
	struct serve *s = sb->s;

	if (sb->b) {
		/* kills a VM still running */
		s->be->free(sb->b);
		sb->b = NULL;
	}
	if (sb->out)
		fclose(sb->out);
	/* (--keep-runs: the operator's, a results disk's, to remove) */
	if (sb->run_dir && !s->o.keep_runs)
		rm_rf(sb->run_dir);
	state_close(sb->kept);
	recipe_free(sb->recipe);
	json_decref(sb->result);
	if (sb->have_img)
		image_close(&sb->img);
	free(sb->source);
	free(sb->run_dir);
	free(sb);
}

/* Forget the oldest finished builds beyond keep_finished. */
static void
evict(struct serve *s)
{
	struct sbuild **pp = &s->builds;

	while (*pp && s->n_finished > s->o.keep_finished) {
		struct sbuild *sb = *pp;

		if (sb->state != SB_FINISHED || sb->release) {
			pp = &sb->next;
			continue;
		}
		*pp = sb->next;
		s->n_finished--;
		sb_free(sb);
	}
}

static void
on_work(struct loop *l, void *opaque)
{
	struct serve *s = opaque;
	bool freed = false;

	s->t_work = NULL;
	for (struct sbuild *sb = s->builds; sb; sb = sb->next)
		if (sb->release) {
			sb_release(sb);
			freed = true;
		}
	for (struct sbuild *sb = s->builds;
	     sb && !s->stopping && s->n_running < s->o.max_parallel;
	     sb = sb->next)
		if (sb->state == SB_QUEUED)
			sb_start(sb);
	evict(s);
	/* A VM's worth of buffers comes and goes with each build: give it
	 * back, so that a long-lived server's size shows what it holds. */
	if (freed && !s->n_running)
		malloc_trim(0);
	if (s->stopping && !s->n_running && !s->n_queued && !s->t_work)
		loop_quit(l, 0);
}

/* ---- access: the client's rights, not the server's -------------------- */

/* Reading a client's files may take this long; then the child is killed. */
#define ACCESS_DEADLINE_MS 10000

/*
 * A build-submit whose recipe, source or image names client paths.  The
 * server runs as root: it must never open such a path itself (nor stat
 * it: even "exists" is a leak).  A child with exactly the client's rights
 * (qctl __peer access, see cmd-peer.c) reads the recipe, checks the
 * source directory and opens the image's files, and sends back bytes and
 * open files; the loop never waits for it.  The reply comes when it is
 * done (CTL_DEFER).
 */
struct access_job {
	struct serve *s;
	struct access_job *next;
	struct ctl_peer peer;
	char *path;		/* the recipe file, or NULL */
	struct recipe *r;	/* a recipe object's, parsed already */
	char *source;		/* build-submit's "source", or NULL */
	struct peer_child pc;
	struct loop_watch *w_fd, *w_pid;
	struct loop_timer *t;
	struct buf recipe;	/* the file's bytes */
	char *got_source;	/* the source directory it could open */
	struct image img;
	bool have_img, done_msg, eof;
	bool broken;		/* the child broke the protocol */
};

static int submit_now(struct serve *s, const struct ctl_peer *peer,
		      struct recipe **rp, char **sourcep, struct image *img,
		      bool have_img, const char *path, json_t **ret,
		      struct error *err);

static void
creds_of(const struct ctl_peer *peer, struct peer_creds *c)
{
	memset(c, 0, sizeof(*c));
	/* root's own files are root's business; anyone else gets exactly
	 * their own rights */
	c->drop = peer->uid != 0;
	c->uid = peer->uid;
	c->gid = peer->gid;
	c->n_groups = peer->n_groups > 0 ? peer->n_groups : 0;
	if (c->n_groups > PEER_MAX_GROUPS)
		c->n_groups = PEER_MAX_GROUPS;
	memcpy(c->groups, peer->groups, c->n_groups * sizeof(gid_t));
}

static void
job_free(struct access_job *j)
{
	struct access_job **pp;

	for (pp = &j->s->jobs; *pp; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	loop_unwatch(j->w_fd);
	loop_unwatch(j->w_pid);
	loop_timer_cancel(j->t);
	peer_free(&j->pc);
	recipe_free(j->r);
	buf_free(&j->recipe);
	if (j->have_img)
		image_close(&j->img);
	free(j->got_source);
	free(j->path);
	free(j->source);
	free(j);
}

/* Answer the deferred build-submit and forget the job. */
static void
job_end(struct access_job *j, const struct error *why)
{
	struct serve *s = j->s;
	struct error err = { 0 };
	json_t *ret = NULL;
	const char *want_img;
	int r = 0;

	if (why) {
		err = *why;
		r = -1;
		goto reply;
	}
	if (j->path) {
		_cleanup_free_ char *dir = xstrndup(
			j->path, strrchr(j->path, '/') - j->path);

		/* the same bytes the child read, parsed here again: nothing
		 * it says about them is taken on trust */
		r = recipe_load_buffer_flags(
			j->recipe.data ? j->recipe.data : "", j->recipe.len,
			j->path, *dir ? dir : "/", RECIPE_NO_FS, &j->r, &err);
		if (r < 0)
			goto reply;
	}
	if ((j->source || j->r->source) &&
	    (!j->got_source ||
	     strcmp(j->got_source, j->source ? j->source : j->r->source))) {
		r = error_set(&err, EPROTO, "source: not confirmed readable "
			      "by uid %d", (int)j->peer.uid);
		goto reply;
	}
	want_img = strchr(j->r->image, '/') ? j->r->image : NULL;
	if (want_img && (!j->have_img || strcmp(j->img.dir, want_img))) {
		r = error_set(&err, EPROTO, "image: not opened as uid %d",
			      (int)j->peer.uid);
		goto reply;
	}
	r = submit_now(s, &j->peer, &j->r, &j->source, &j->img, j->have_img,
		       j->path, &ret, &err);
	if (r == 0)
		j->have_img = false;	/* the build has it now */
reply:
	if (r < 0)
		serve_log(s, "submission of uid %d refused: %s", (int)j->peer.uid,
		     err.msg);
	ctl_complete(s->ctl, j->peer.conn, r < 0 ? NULL : ret,
		     r < 0 ? &err : NULL);
	job_free(j);
}

/* One message of the child; -1 when it broke the protocol. */
static int
job_message(struct access_job *j, const struct peer_msg_hdr *h,
	    const char *p, int *fds, int n_fds)
{
	struct error err = { 0 };

	switch (h->type) {
	case PEER_MSG_RECIPE:
		if (!j->path || j->recipe.len + h->len > RECIPE_MAX_BYTES)
			return -1;
		buf_append(&j->recipe, p, h->len);
		return 0;
	case PEER_MSG_SOURCE:
		if (j->got_source || h->len == 0 || h->len > 4096)
			return -1;
		j->got_source = xstrndup(p, h->len);
		return 0;
	case PEER_MSG_IMAGE: {
		const char *dir = j->r ? j->r->image : NULL;
		int r;
		_cleanup_recipe_ struct recipe *pr = NULL;

		/* kernel, initrd, and the root disk if the image has one */
		if (j->have_img || n_fds < 2 || n_fds > 3 || h->len < 1)
			return -1;
		if (!dir) {
			/* a recipe file's image: from the bytes we hold */
			_cleanup_free_ char *rd = xstrndup(
				j->path, strrchr(j->path, '/') - j->path);

			if (recipe_load_buffer_flags(
				    j->recipe.data ? j->recipe.data : "",
				    j->recipe.len, j->path, *rd ? rd : "/",
				    RECIPE_NO_FS, &pr, NULL) < 0 ||
			    !strchr(pr->image, '/'))
				return -1;
			dir = pr->image;
		}
		/* image_from_parts takes the fds, even when it fails */
		r = image_from_parts(dir, p + 1, h->len - 1, p[0] != 0, fds[0],
				     fds[1], n_fds > 2 ? fds[2] : -1, &j->img,
				     &err);
		for (int i = 0; i < n_fds; i++)
			fds[i] = -1;
		if (r < 0)
			return -1;
		j->have_img = true;
		return 0;
	}
	case PEER_MSG_DONE:
		j->done_msg = true;
		return 0;
	}
	return -1;
}

/* Everything the child has sent so far. */
static void
job_read(struct access_job *j)
{
	char *buf = xmalloc(sizeof(struct peer_msg_hdr) + PEER_MSG_MAX + 1);

	while (!j->eof && !j->broken) {
		union {
			char b[CMSG_SPACE(4 * sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { buf,
				     sizeof(struct peer_msg_hdr) +
					     PEER_MSG_MAX + 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		struct peer_msg_hdr h;
		int fds[4], n_fds = 0;
		ssize_t n;

		n = recvmsg(j->pc.fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			j->eof = true;
			break;
		}
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c;
		     c = CMSG_NXTHDR(&mh, c)) {
			size_t k;

			if (c->cmsg_level != SOL_SOCKET ||
			    c->cmsg_type != SCM_RIGHTS)
				continue;
			k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int),
				       sizeof(int));
				if (n_fds < 4)
					fds[n_fds++] = fd;
				else
					close(fd);
			}
		}
		/* Bounded, whole, and exactly as long as it says. */
		if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
		    (size_t)n < sizeof(h)) {
			j->broken = true;
		} else {
			memcpy(&h, buf, sizeof(h));
			if (h.len > PEER_MSG_MAX ||
			    (size_t)n != sizeof(h) + h.len ||
			    job_message(j, &h, buf + sizeof(h), fds, n_fds) <
				    0)
				j->broken = true;
		}
		for (int i = 0; i < n_fds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	free(buf);
}

/* Done when the child has exited and said all it had to say. */
static void
job_check(struct access_job *j)
{
	struct error err = { 0 };

	if (j->broken) {
		error_set(&err, EPROTO, "the reader of uid %d's files broke "
			  "its protocol", (int)j->peer.uid);
		job_end(j, &err);
		return;
	}
	if (!j->pc.reaped || !j->eof)
		return;
	if (peer_result(&j->pc, &err) < 0) {
		job_end(j, &err);
		return;
	}
	if (!j->done_msg) {
		error_set(&err, EPROTO, "the reader of uid %d's files ended "
			  "early", (int)j->peer.uid);
		job_end(j, &err);
		return;
	}
	job_end(j, NULL);
}

static void
on_job_io(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct access_job *j = opaque;

	(void)l;
	(void)fd;
	(void)events;
	job_read(j);
	if (j->eof) {
		loop_unwatch(j->w_fd);
		j->w_fd = NULL;
	}
	job_check(j);
}

static void
on_job_exit(struct loop *l, int fd, uint32_t events, void *opaque)
{
	struct access_job *j = opaque;

	(void)l;
	(void)fd;
	(void)events;
	if (peer_reap(&j->pc, false) <= 0)
		return;
	loop_unwatch(j->w_pid);
	j->w_pid = NULL;
	/* whatever it sent before it exited is in the socket */
	job_read(j);
	j->eof = true;
	job_check(j);
}

static void
on_job_deadline(struct loop *l, void *opaque)
{
	struct access_job *j = opaque;
	struct error err = { 0 };

	(void)l;
	j->t = NULL;
	error_set(&err, ETIMEDOUT, "reading the files named by uid %d took "
		  "longer than %d s", (int)j->peer.uid,
		  ACCESS_DEADLINE_MS / 1000);
	job_end(j, &err);
}

/* Start reading what the client named; the reply is deferred. */
static int
job_start(struct serve *s, const struct ctl_peer *peer, const char *path,
	  struct recipe **rp, char **sourcep, struct error *err)
{
	struct access_job *j = xcalloc(1, sizeof(*j));
	struct peer_creds creds;
	const char *args[12];
	size_t n = 0;

	j->s = s;
	j->peer = *peer;
	j->path = path ? xstrdup(path) : NULL;
	j->r = steal_pointer(rp);
	j->source = steal_pointer(sourcep);
	peer_child_init(&j->pc);
	j->img.kernel_fd = j->img.initrd_fd = j->img.root_fd = -1;
	args[n++] = "access";
	if (path) {
		args[n++] = "--recipe";
		args[n++] = path;
	}
	if (j->source || (j->r && j->r->source)) {
		args[n++] = "--source";
		args[n++] = j->source ? j->source : j->r->source;
	}
	/* a git repository is fetched at build time, as the client; a
	 * repository it cannot open is refused now */
	if (!j->source && j->r && j->r->git.url) {
		args[n++] = "--git";
		args[n++] = j->r->git.url;
	}
	if (j->r && strchr(j->r->image, '/')) {
		args[n++] = "--image";
		args[n++] = j->r->image;
	}
	args[n] = NULL;
	creds_of(peer, &creds);
	j->next = s->jobs;
	s->jobs = j;
	if (peer_spawn(&creds, SOCK_SEQPACKET, args, &j->pc, err) < 0) {
		job_free(j);
		return -1;
	}
	j->w_fd = loop_watch_fd(s->loop, j->pc.fd, EPOLLIN, on_job_io, j);
	j->w_pid = loop_watch_fd(s->loop, j->pc.pidfd, EPOLLIN, on_job_exit,
				 j);
	j->t = loop_timer_at(s->loop, now_ms() + ACCESS_DEADLINE_MS,
			     on_job_deadline, j);
	if (!j->w_fd || !j->w_pid) {
		job_free(j);
		return error_sys(err, errno, "epoll");
	}
	return CTL_DEFER;
}

/*
 * A recipe object from a client.  Relative paths in it would resolve
 * against the server's working directory, which means nothing to the
 * client: refused.
 */
static int
recipe_from_object(json_t *j, struct recipe **out, struct error *err)
{
	const char *src = json_string_value(json_object_get(j, "source"));
	const char *img = json_string_value(json_object_get(j, "image"));

	if (src && src[0] != '/')
		return error_set(err, EINVAL, "recipe: \"source\" must be an "
				 "absolute path in a submitted recipe");
	if (img && strchr(img, '/') && img[0] != '/')
		return error_set(err, EINVAL, "recipe: \"image\" must be a "
				 "name or an absolute path in a submitted "
				 "recipe");
	return recipe_from_json_flags(j, "recipe", NULL, RECIPE_NO_FS, out,
				      err);
}

/* ---- commands ------------------------------------------------------------ */

static json_t *
sb_summary(struct sbuild *sb)
{
	struct serve *s = sb->s;
	const char *step = sb->state == SB_RUNNING
				   ? s->be->current_step(sb->b)
				   : NULL;
	json_t *j = json_pack("{s:s, s:s, s:i, s:i, s:I}", "id", sb->id,
			      "status", sb_status(sb), "uid",
			      (int)sb->peer.uid, "pid", (int)sb->peer.pid,
			      "submitted", (json_int_t)sb->submitted);

	json_object_set_new(j, "step", step ? json_string(step) : json_null());
	json_object_set_new(j, "run_dir", sb->run_dir
						  ? json_string(sb->run_dir)
						  : json_null());
	json_object_set_new(j, "paused", json_boolean(sb->paused));
	json_object_set_new(j, "held", json_boolean(sb->state == SB_RUNNING &&
						     s->be->held &&
						     s->be->held(sb->b)));
	if (sb->state == SB_QUEUED) {
		int pos = 0;

		for (struct sbuild *o = s->builds; o != sb; o = o->next)
			pos += o->state == SB_QUEUED;
		json_object_set_new(j, "position", json_integer(pos));
	}
	return j;
}

/* The server's ceilings: a client asks for at most this much. */
static int
check_ceilings(const struct serve *s, const struct recipe *r,
	       struct error *err)
{
	const struct serve_opts *o = &s->o;

	if (o->max_cpus && r->cpus > o->max_cpus)
		return error_set(err, EPERM, "cpus: %d asked, this server "
				 "allows at most %d (--max-cpus)", r->cpus,
				 o->max_cpus);
	if (o->max_memory && r->memory > o->max_memory)
		return error_set(err, EPERM, "memory: %llu MiB asked, this "
				 "server allows at most %llu MiB "
				 "(--max-memory)",
				 (unsigned long long)(r->memory >> 20),
				 (unsigned long long)(o->max_memory >> 20));
	if (o->max_disk && r->limits.disk > o->max_disk)
		return error_set(err, EPERM, "limits.disk: %llu MiB asked, "
				 "this server allows at most %llu MiB "
				 "(--max-disk)",
				 (unsigned long long)(r->limits.disk >> 20),
				 (unsigned long long)(o->max_disk >> 20));
	/* the cache disk is guest-writable too (in fetch steps) */
	if (o->max_disk && r->cache.key && r->cache.size > o->max_disk)
		return error_set(err, EPERM, "cache.size: %llu MiB asked, "
				 "this server allows at most %llu MiB "
				 "(--max-disk)",
				 (unsigned long long)(r->cache.size >> 20),
				 (unsigned long long)(o->max_disk >> 20));
	if (o->max_wall_time_ms &&
	    r->limits.wall_time_ms > o->max_wall_time_ms)
		return error_set(err, EPERM, "limits.wall_time: %llds asked, "
				 "this server allows at most %llds "
				 "(--max-wall-time)",
				 (long long)(r->limits.wall_time_ms / 1000),
				 (long long)(o->max_wall_time_ms / 1000));
	/* 0 means unlimited in a recipe: not for a shared server's client */
	if (!r->limits.log_bytes)
		return error_set(err, EPERM, "limits.log_bytes: unlimited is "
				 "not allowed by this server");
	if (!r->limits.artifacts_bytes)
		return error_set(err, EPERM, "limits.artifacts_bytes: "
				 "unlimited is not allowed by this server");
	if (!r->limits.net_bytes)
		return error_set(err, EPERM, "limits.net_bytes: unlimited is "
				 "not allowed by this server");
	return 0;
}

/* Queue a build whose client files have been checked (all stolen). */
static int
submit_now(struct serve *s, const struct ctl_peer *peer, struct recipe **rp,
	   char **sourcep, struct image *img, bool have_img, const char *path,
	   json_t **ret, struct error *err)
{
	struct build_opts bo = s->o.build;
	struct sbuild *sb, **pp;

	if (s->stopping)
		return error_set(err, ESHUTDOWN, "the server is shutting down");
	if (s->n_queued >= SERVE_MAX_QUEUED)
		return error_set(err, EAGAIN, "%d builds are queued already",
				 s->n_queued);
	if (check_ceilings(s, *rp, err) < 0)
		return -1;
	sb = xcalloc(1, sizeof(*sb));
	sb->s = s;
	snprintf(sb->id, sizeof(sb->id), "b%u", ++s->next_id);
	sb->peer = *peer;
	creds_of(peer, &sb->creds);
	sb->recipe = steal_pointer(rp);
	sb->source = steal_pointer(sourcep);
	sb->img.kernel_fd = sb->img.initrd_fd = sb->img.root_fd = -1;
	if (have_img) {
		sb->img = *img;
		sb->have_img = true;
		memset(img, 0, sizeof(*img));
		img->kernel_fd = img->initrd_fd = -1;
	}
	sb->submitted = time(NULL);
	sb->t_submit = now_ms();
	if (s->o.progress && s->o.log)
		sb->out = prefix_open(s, sb->id);
	bo.source = sb->source;
	bo.creds = &sb->creds;
	bo.image_pre = sb->have_img ? &sb->img : NULL;
	bo.max_cpus = s->o.max_cpus;
	bo.max_memory = s->o.max_memory;
	bo.out = sb->out;
	if (!sb->out)
		bo.verbosity = 0;
	/* the run directory outlives the engine's build: ours to remove */
	bo.keep = true;
	bo.hold_ms = serve_ssh_hold(s, sb->recipe);
	bo.hold_always = sb->recipe->hold_after_ms > 0;
	/* cache keys are per submitter: uid A's "deps" is not uid B's */
	bo.cache_ns = sb->peer.uid;
	bo.event = on_build_event;
	bo.event_opaque = sb;
	sb->b = s->be->new(s->loop, sb->recipe, &bo, on_build_done, sb);
	for (pp = &s->builds; *pp; pp = &(*pp)->next)
		;
	*pp = sb;
	s->n_queued++;
	serve_log(s, "%s: submitted by uid %d (pid %d, client %u): %s, %zu "
	     "step%s", sb->id, (int)peer->uid, (int)peer->pid, peer->conn,
	     path ? "a recipe file" : "recipe object", sb->recipe->n_steps,
	     sb->recipe->n_steps == 1 ? "" : "s");
	if (s->n_running < s->o.max_parallel && s->n_queued == 1)
		sb_start(sb);
	else
		kick(s);
	*ret = json_pack("{s:s, s:s}", "id", sb->id, "status", sb_status(sb));
	return 0;
}

static int
cmd_build_submit(void *opaque, const struct ctl_peer *peer, json_t *args,
		 json_t **ret, struct error *err)
{
	struct serve *s = opaque;
	json_t *rj = json_object_get(args, "recipe");
	const char *path = json_string_value(json_object_get(args, "path"));
	const char *src = json_string_value(json_object_get(args, "source"));
	_cleanup_recipe_ struct recipe *r = NULL;
	_cleanup_free_ char *source = NULL;
	struct image none = { .kernel_fd = -1, .initrd_fd = -1 };

	if (s->stopping)
		return error_set(err, ESHUTDOWN, "the server is shutting down");
	if (!rj == !path)
		return error_set(err, EINVAL, "build-submit takes 'recipe' (an "
				 "object) or 'path' (an absolute file name), "
				 "one of them");
	if (path && path[0] != '/')
		return error_set(err, EINVAL, "'path' must be absolute");
	if (src && src[0] != '/')
		return error_set(err, EINVAL, "'source' must be absolute");
	if (s->n_queued >= SERVE_MAX_QUEUED)
		return error_set(err, EAGAIN, "%d builds are queued already",
				 s->n_queued);
	if (rj && recipe_from_object(rj, &r, err) < 0)
		return -1;
	source = src ? xstrdup(src) : NULL;
	/* Whatever names a path of the client's is read with its rights,
	 * in a child, and answered later. */
	if (path || source || r->source || r->git.url ||
	    strchr(r->image, '/'))
		return job_start(s, peer, path, &r, &source, err);
	return submit_now(s, peer, &r, &source, &none, false, NULL, ret, err);
}

static int
cmd_build_list(void *opaque, const struct ctl_peer *peer, json_t *args,
	       json_t **ret, struct error *err)
{
	struct serve *s = opaque;
	json_t *a = json_array();

	(void)peer;
	(void)args;
	(void)err;
	for (struct sbuild *sb = s->builds; sb; sb = sb->next)
		json_array_append_new(a, sb_summary(sb));
	*ret = a;
	return 0;
}

static int
cmd_build_status(void *opaque, const struct ctl_peer *peer, json_t *args,
		 json_t **ret, struct error *err)
{
	struct sbuild *sb = sb_find(
		opaque, json_string_value(json_object_get(args, "id")), err);

	(void)peer;
	if (!sb)
		return -1;
	*ret = sb_summary(sb);
	if (sb->result)
		json_object_set(*ret, "result", sb->result);
	return 0;
}

/* why = "WHAT over the control socket by uid N", logged: the reason a
 * client's cancel or release gives the build and its result */
static void
client_act(struct serve *s, const struct sbuild *sb,
	   const struct ctl_peer *peer, const char *what, char *why, size_t n)
{
	snprintf(why, n, "%s over the control socket by uid %d", what,
		 (int)peer->uid);
	serve_log(s, "%s: %s", sb->id, why);
}

static int
cmd_build_cancel(void *opaque, const struct ctl_peer *peer, json_t *args,
		 json_t **ret, struct error *err)
{
	struct serve *s = opaque;
	struct sbuild *sb = sb_find(
		s, json_string_value(json_object_get(args, "id")), err);
	char why[96];

	if (!sb)
		return -1;
	if (sb->state == SB_FINISHED)
		return error_set(err, EALREADY, "build %s has finished (%s)",
				 sb->id, sb_status(sb));
	client_act(s, sb, peer, "cancelled", why, sizeof(why));
	if (sb->state == SB_QUEUED) {
		result_finish(s->be->result(sb->b), BUILD_CANCELLED,
			      "%s before it started", why);
		sb_finish(sb);
	} else {
		/* the VM is killed; BUILD_FINISHED follows once it is gone */
		s->be->cancel(sb->b, why);
	}
	*ret = json_pack("{s:s, s:s}", "id", sb->id, "status", sb_status(sb));
	return 0;
}

/* End a held build's hold: its sessions end, it collects its artifacts
 * and finishes with its steps' result (GitLab's cleanup, an operator). */
static int
cmd_build_release(void *opaque, const struct ctl_peer *peer, json_t *args,
		  json_t **ret, struct error *err)
{
	struct serve *s = opaque;
	struct sbuild *sb = sb_find(
		s, json_string_value(json_object_get(args, "id")), err);
	char why[96];

	if (!sb)
		return -1;
	if (sb->state != SB_RUNNING || !s->be->held || !s->be->hold_end ||
	    !s->be->held(sb->b))
		return error_set(err, EINVAL, "build %s is not held (%s)",
				 sb->id, sb_status(sb));
	client_act(s, sb, peer, "released", why, sizeof(why));
	s->be->hold_end(sb->b, why);
	*ret = json_pack("{s:s, s:s}", "id", sb->id, "status", sb_status(sb));
	return 0;
}

/* Length of the longest prefix of p[0..n) that ends on a UTF-8 boundary. */
static size_t
utf8_cut(const unsigned char *p, size_t n)
{
	size_t i = n, k = 0;

	while (i > 0 && k < 3 && (p[i - 1] & 0xc0) == 0x80) {
		i--;
		k++;
	}
	if (i > 0 && p[i - 1] >= 0xc0) {
		size_t need = p[i - 1] >= 0xf0 ? 4 : p[i - 1] >= 0xe0 ? 3 : 2;

		if (k + 1 < need)
			return i - 1;
	}
	return n;
}

/* Guest bytes as a JSON string: byte for byte, invalid ones as '?'. */
static json_t *
log_text(char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = p[i] ? utf8_seq((unsigned char *)p + i, n - i) : 0;

		if (!k) {
			p[i++] = '?';
			continue;
		}
		i += k;
	}
	return json_stringn(p, n);
}

static int
cmd_build_log(void *opaque, const struct ctl_peer *peer, json_t *args,
	      json_t **ret, struct error *err)
{
	struct serve *s = opaque;
	struct sbuild *sb = sb_find(
		s, json_string_value(json_object_get(args, "id")), err);
	json_t *jo = json_object_get(args, "offset");
	json_t *jm = json_object_get(args, "max");
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *p = NULL, *buf = NULL;
	json_int_t max = jm ? json_integer_value(jm) : LOG_CHUNK_DEFAULT;
	json_int_t off = jo ? json_integer_value(jo) : -1;
	struct stat st;
	size_t want;
	ssize_t n;
	bool fin;

	(void)peer;
	if (!sb)
		return -1;
	if (max <= 0)
		return error_set(err, EINVAL, "'max' must be positive");
	if (jo && off < 0)
		return error_set(err, EINVAL, "'offset' must not be negative");
	if (max > LOG_CHUNK_MAX)
		max = LOG_CHUNK_MAX;
	fin = sb->state == SB_FINISHED;
	if (!sb->run_dir) {
		*ret = json_pack("{s:i, s:i, s:i, s:s, s:b}", "offset", 0,
				 "next", 0, "size", 0, "data", "", "eof", fin);
		return 0;
	}
	p = xasprintf("%s/build.log", sb->run_dir);
	fd = open(p, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fstat(fd, &st) < 0)
		return error_sys(err, errno, "%s: build log", sb->id);
	if (off < 0) {
		/* the tail */
		off = st.st_size > max ? st.st_size - max : 0;
	} else if (off > st.st_size) {
		off = st.st_size;
	}
	want = st.st_size - off < max ? st.st_size - off : max;
	buf = xmalloc(want + 1);
	n = pread(fd, buf, want, off);
	if (n < 0)
		return error_sys(err, errno, "%s: read build log", sb->id);
	if (!jo) {
		/* a tail starts on a character */
		size_t skip = 0;

		while (skip < 3 && skip < (size_t)n &&
		       ((unsigned char)buf[skip] & 0xc0) == 0x80)
			skip++;
		memmove(buf, buf + skip, n - skip);
		n -= skip;
		off += skip;
	}
	if (off + n < st.st_size)
		n = utf8_cut((unsigned char *)buf, n);
	*ret = json_pack("{s:I, s:I, s:I, s:o, s:b}", "offset",
			 (json_int_t)off, "next", (json_int_t)(off + n),
			 "size", (json_int_t)st.st_size, "data",
			 log_text(buf, n), "eof",
			 fin && off + n >= st.st_size);
	return 0;
}

static int
cmd_vm_stats(void *opaque, const struct ctl_peer *peer, json_t *args,
	     json_t **ret, struct error *err)
{
	struct serve *s = opaque;
	struct sbuild *sb = sb_find(
		s, json_string_value(json_object_get(args, "id")), err);
	_cleanup_json_ json_t *live = NULL;
	json_t *stats;
	int pid = -1;

	(void)peer;
	if (!sb)
		return -1;
	if (sb->state == SB_QUEUED)
		return error_set(err, EAGAIN, "build %s has not started",
				 sb->id);
	if (sb->state == SB_RUNNING) {
		live = result_to_json(s->be->result(sb->b));
		stats = json_object_get(live, "stats");
		json_object_set_new(stats, "wall_ms",
				    json_integer(now_ms() - sb->t_start));
		pid = s->be->qemu_pid(sb->b);
	} else {
		stats = json_object_get(sb->result, "stats");
	}
	*ret = json_pack("{s:s, s:s, s:o, s:b, s:O}", "id", sb->id, "status",
			 sb_status(sb), "qemu_pid",
			 pid > 0 ? json_integer(pid) : json_null(), "paused",
			 sb->paused, "stats", stats);
	json_object_set_new(*ret, "step",
			    sb->state == SB_RUNNING &&
					    s->be->current_step(sb->b)
				    ? json_string(s->be->current_step(sb->b))
				    : json_null());
	return 0;
}

static int
vm_pause(struct serve *s, const struct ctl_peer *peer, json_t *args,
	 bool pause, struct error *err)
{
	struct sbuild *sb = sb_find(
		s, json_string_value(json_object_get(args, "id")), err);

	if (!sb)
		return -1;
	if (sb->state != SB_RUNNING)
		return error_set(err, EINVAL, "build %s is not running (%s)",
				 sb->id, sb_status(sb));
	if (s->be->pause(sb->b, pause, err) < 0) {
		error_prefix(err, "%s", sb->id);
		return -1;
	}
	sb->paused = pause;
	serve_log(s, "%s: %s by uid %d", sb->id, pause ? "paused" : "resumed",
	     (int)peer->uid);
	return 0;
}

static int
cmd_vm_pause(void *opaque, const struct ctl_peer *peer, json_t *args,
	     json_t **ret, struct error *err)
{
	(void)ret;
	return vm_pause(opaque, peer, args, true, err);
}

static int
cmd_vm_resume(void *opaque, const struct ctl_peer *peer, json_t *args,
	      json_t **ret, struct error *err)
{
	(void)ret;
	return vm_pause(opaque, peer, args, false, err);
}

static void
on_quit(struct loop *l, void *opaque)
{
	struct serve *s = opaque;

	(void)l;
	s->t_quit = NULL;
	serve_shutdown(s, s->why);
}

static int
cmd_quit(void *opaque, const struct ctl_peer *peer, json_t *args,
	 json_t **ret, struct error *err)
{
	struct serve *s = opaque;

	(void)args;
	(void)ret;
	if (!s->o.allow_quit)
		return error_set(err, EPERM, "quit is disabled (start qctl "
				 "serve with --allow-quit)");
	snprintf(s->why, sizeof(s->why), "quit by uid %d", (int)peer->uid);
	/* after this reply has been queued, like QEMU */
	if (!s->t_quit)
		s->t_quit = loop_timer_at(s->loop, now_ms(), on_quit, s);
	return 0;
}

static const struct ctl_cmd commands[] = {
	{ "build-submit", cmd_build_submit, "recipe:o? path:s? source:s?",
	  "queue a build of a recipe object or file; returns its id" },
	{ "build-list", cmd_build_list, NULL,
	  "queued, running and recently finished builds" },
	{ "build-status", cmd_build_status, "id:s",
	  "one build: status, step, and its result once finished" },
	{ "build-cancel", cmd_build_cancel, "id:s",
	  "cancel a queued or running build" },
	{ "build-release", cmd_build_release, "id:s",
	  "end a held build's hold: it collects its artifacts and ends" },
	{ "build-log", cmd_build_log, "id:s offset:i? max:i?",
	  "a chunk of a build's log (its tail without offset)" },
	{ "vm-stats", cmd_vm_stats, "id:s",
	  "a build's resource use so far, and its QEMU's pid" },
	{ "vm-pause", cmd_vm_pause, "id:s", "stop a build's vCPUs" },
	{ "vm-resume", cmd_vm_resume, "id:s", "restart a build's vCPUs" },
	{ "quit", cmd_quit, NULL,
	  "cancel every build and exit (only with --allow-quit)" },
};

/* ---- public ------------------------------------------------------------- */

/* A scheduler and its control server, defaults filled in. */
struct serve *
serve_new(struct loop *loop, const struct serve_opts *o)
{
	struct serve *s = xcalloc(1, sizeof(*s));
	struct ctl_opts co;

	s->loop = loop;
	s->o = *o;
	s->be = o->backend ? o->backend : &serve_engine;
	if (s->o.max_parallel <= 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		s->o.max_parallel = n > 0 ? (int)n : 1;
	}
	if (s->o.keep_finished <= 0)
		s->o.keep_finished = SERVE_KEEP_FINISHED;
	co = o->ctl;
	if (!co.log)
		co.log = o->log;
	s->ctl = ctl_new(loop, commands, ARRAY_SIZE(commands), s, &co);
	return s;
}

/* The control server, for listening or adding clients. */
struct ctl *
serve_ctl(struct serve *s)
{
	return s->ctl;
}

/* Builds queued or running. */
int
serve_n_active(const struct serve *s)
{
	return s->n_queued + s->n_running;
}

static void
on_grace(struct loop *l, void *opaque)
{
	struct serve *s = opaque;

	s->t_grace = NULL;
	serve_log(s, "%d build%s did not end in time; killing", s->n_running,
	     s->n_running == 1 ? "" : "s");
	loop_quit(l, 0);
}

/* Refuse new work, cancel every build, quit once all ended. */
void
serve_shutdown(struct serve *s, const char *why)
{
	char reason[160];

	if (s->stopping)
		return;
	s->stopping = true;
	snprintf(reason, sizeof(reason), "%s", why ? why : "shutting down");
	serve_log(s, "shutting down (%s): %d running, %d queued", reason,
	     s->n_running, s->n_queued);
	ctl_stop_listening(s->ctl);
	ctl_event(s->ctl, "SHUTDOWN", json_pack("{s:s}", "reason", reason));
	for (struct sbuild *sb = s->builds; sb; sb = sb->next) {
		if (sb->state == SB_QUEUED) {
			result_finish(s->be->result(sb->b), BUILD_CANCELLED,
				      "server shut down (%s) before it "
				      "started", reason);
			sb_finish(sb);
		} else if (sb->state == SB_RUNNING) {
			s->be->cancel(sb->b, reason);
		}
	}
	s->t_grace = loop_timer_at(s->loop, now_ms() + SERVE_SHUTDOWN_MS,
				   on_grace, s);
	kick(s);
}

/* Free every build (killing VMs), run dir and client. */
void
serve_free(struct serve *s)
{
	if (!s)
		return;
	loop_timer_cancel(s->t_work);
	loop_timer_cancel(s->t_quit);
	loop_timer_cancel(s->t_grace);
	while (s->jobs)
		job_free(s->jobs);
	while (s->builds) {
		struct sbuild *sb = s->builds;

		s->builds = sb->next;
		sb_free(sb);
	}
	/* after the builds: their sessions are told of the end first */
	serve_ssh_free(s);
	ctl_free(s->ctl);
	free(s);
}
