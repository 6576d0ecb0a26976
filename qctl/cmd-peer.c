/*
 * cmd-peer.c - `qctl __peer`: what a client of `qctl serve` names, read
 * with the client's rights.
 *
 * The server forks, drops to the client's uid, gid and groups (peer.c)
 * and execs this: fd 3 is the channel back, fd 4 takes an error message,
 * the environment is empty.  Root never opens a client's path; it gets
 * bytes and open files from here.
 */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "cmd.h"
#include "gitsrc.h"
#include "image.h"
#include "peer.h"
#include "recipe.h"
#include "transfer.h"

#define CHAN_FD 3
#define STATUS_FD 4

static void __attribute__((noreturn))
peer_fail(const struct error *err)
{
	const char *m = err && err->msg[0] ? err->msg : "failed";

	if (write(STATUS_FD, m, strlen(m)) < 0)
		_exit(2);
	_exit(1);
}

/* The most fds one message carries: an image's kernel, initrd, root. */
#define SEND_FDS_MAX 3

static void
send_msg(uint32_t type, const void *p, size_t len, const int *fds, int n_fds)
{
	struct peer_msg_hdr h = { type, (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)p, len } };
	union {
		char buf[CMSG_SPACE(SEND_FDS_MAX * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	struct error err = { 0 };

	if (n_fds < 0 || n_fds > SEND_FDS_MAX) {
		error_set(&err, EINVAL, "internal: %d fds in one message",
			  n_fds);
		peer_fail(&err);
	}
	if (n_fds) {
		struct cmsghdr *c;

		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(n_fds * sizeof(int));
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(n_fds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, n_fds * sizeof(int));
	}
	if (sendmsg(CHAN_FD, &mh, MSG_NOSIGNAL) < 0) {
		error_sys(&err, errno, "sending to the server");
		peer_fail(&err);
	}
}

/* A regular file, never through a symlink, never blocking on a FIFO. */
static int
open_file(int dfd, const char *dir, const char *name, struct error *err)
{
	struct stat st;
	int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK |
					   O_NOCTTY | O_NOFOLLOW);

	if (fd < 0 && errno == ELOOP)
		return error_set(err, ELOOP, "image %s: %s is a symbolic "
				 "link (refused in a submitted image)", dir,
				 name);
	if (fd < 0)
		return error_sys(err, errno, "image %s: %s", dir, name);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return error_set(err, EINVAL, "image %s: %s is not a regular "
				 "file", dir, name);
	}
	return fd;
}

static void
check_source(const char *src)
{
	struct error err = { 0 };
	int fd;

	if (src[0] != '/') {
		error_set(&err, EINVAL, "source %s: not an absolute path", src);
		peer_fail(&err);
	}
	fd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		error_sys(&err, errno, "source %s", src);
		peer_fail(&err);
	}
	close(fd);
	send_msg(PEER_MSG_SOURCE, src, strlen(src), NULL, 0);
}

/* A git source's repository opens (the fetch itself is at build time). */
static void
check_git(const char *url)
{
	const char *path = strncmp(url, "file://", 7) ? url : url + 7;
	struct error err = { 0 };
	int fd;

	if (path[0] != '/' || strchr(path, '%'))
		return;		/* the fetch will say */
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		error_sys(&err, errno, "source.git: cannot read repository %s",
			  url);
		peer_fail(&err);
	}
	close(fd);
}

static void
send_image(const char *dir)
{
	_cleanup_free_ char *buf = xmalloc(IMAGE_JSON_MAX + 2);
	_cleanup_close_ int dfd = -1, jfd = -1;
	struct image_meta m;
	struct error err = { 0 };
	int fds[3] = { -1, -1, -1 };
	bool pvh = false;
	ssize_t n;

	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NONBLOCK);
	if (dfd < 0) {
		error_sys(&err, errno, "image %s", dir);
		peer_fail(&err);
	}
	jfd = open_file(dfd, dir, "image.json", &err);
	if (jfd < 0)
		peer_fail(&err);
	n = read_in_full(jfd, buf + 1, IMAGE_JSON_MAX + 1);
	if (n < 0) {
		error_sys(&err, -n, "image %s: image.json", dir);
		peer_fail(&err);
	}
	if (image_meta_parse(buf + 1, n, "image.json", &m, &err) < 0) {
		error_prefix(&err, "image %s", dir);
		peer_fail(&err);
	}
	if (m.kernel_pvh) {
		fds[0] = open_file(dfd, dir, m.kernel_pvh, NULL);
		pvh = fds[0] >= 0;
	}
	if (fds[0] < 0)
		fds[0] = open_file(dfd, dir, m.kernel, &err);
	if (fds[0] >= 0)
		fds[1] = open_file(dfd, dir, m.initrd, &err);
	if (fds[1] >= 0 && m.root)
		fds[2] = open_file(dfd, dir, m.root, &err);
	if (fds[0] < 0 || fds[1] < 0 || (m.root && fds[2] < 0))
		peer_fail(&err);
	buf[0] = pvh;
	send_msg(PEER_MSG_IMAGE, buf, n + 1, fds, m.root ? 3 : 2);
	image_meta_free(&m);
}

static int
peer_access(int argc, char **argv)
{
	const char *recipe = NULL, *source = NULL, *image = NULL, *git = NULL;
	_cleanup_recipe_ struct recipe *r = NULL;
	struct error err = { 0 };

	for (int i = 2; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--recipe"))
			recipe = argv[i + 1];
		else if (!strcmp(argv[i], "--source"))
			source = argv[i + 1];
		else if (!strcmp(argv[i], "--image"))
			image = argv[i + 1];
		else if (!strcmp(argv[i], "--git"))
			git = argv[i + 1];
		else
			return 2;
	}
	if (recipe) {
		_cleanup_free_ char *buf = xmalloc(RECIPE_MAX_BYTES + 1);
		_cleanup_free_ char *dir = NULL;
		_cleanup_close_ int fd = -1;
		struct stat st;
		ssize_t n;

		/* O_NONBLOCK: a FIFO must not hang even this process */
		fd = open(recipe, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0) {
			error_sys(&err, errno, "%s", recipe);
			peer_fail(&err);
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			error_set(&err, EINVAL, "%s: not a regular file",
				  recipe);
			peer_fail(&err);
		}
		n = read_in_full(fd, buf, RECIPE_MAX_BYTES + 1);
		if (n < 0) {
			error_sys(&err, -n, "read %s", recipe);
			peer_fail(&err);
		}
		if (n > RECIPE_MAX_BYTES) {
			error_set(&err, EFBIG, "%s: recipe larger than 1 MiB",
				  recipe);
			peer_fail(&err);
		}
		for (ssize_t off = 0; off < n; off += PEER_MSG_MAX)
			send_msg(PEER_MSG_RECIPE, buf + off,
				 n - off < PEER_MSG_MAX ? n - off
							: PEER_MSG_MAX,
				 NULL, 0);
		dir = xstrndup(recipe, strrchr(recipe, '/') - recipe);
		/* What the server will find in it: it parses the same bytes
		 * itself (and reports errors); here only the paths matter. */
		if (recipe_load_buffer_flags(buf, n, recipe, *dir ? dir : "/",
					     RECIPE_NO_FS, &r, &err) < 0) {
			send_msg(PEER_MSG_DONE, NULL, 0, NULL, 0);
			return 0;
		}
		if (!source && !git)
			git = r->git.url;
		if (!source)
			source = r->source;
		if (!image && strchr(r->image, '/'))
			image = r->image;
	}
	if (source)
		check_source(source);
	else if (git)
		check_git(git);
	if (image)
		send_image(image);
	send_msg(PEER_MSG_DONE, NULL, 0, NULL, 0);
	return 0;
}

/* `qctl __peer access|pack|pack-fd|git ...` (internal; see the top of
 * this file). */
int
cmd_peer(int argc, char **argv)
{
	struct error err = { 0 };

	if (argc >= 2 && !strcmp(argv[1], "access"))
		return peer_access(argc, argv);
	if (argc == 3 && !strcmp(argv[1], "pack")) {
		/* the tar stream of the client's tree, as the client */
		if (transfer_pack_source_fd(argv[2], CHAN_FD, &err) < 0)
			peer_fail(&err);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "git"))
		/* fetch and check out a git source (gitsrc.c) */
		return gitsrc_peer_main(argv[2], argv[3], CHAN_FD, STATUS_FD);
	if (argc == 2 && !strcmp(argv[1], "pack-fd")) {
		/* the tree of a git source: root's run directory is closed
		 * to the client, so the directory comes as an fd */
		int fd = gitsrc_recv_dir(CHAN_FD);

		if (fd < 0 || fchdir(fd) < 0) {
			error_set(&err, EPROTO, "no source directory from "
				  "the server");
			peer_fail(&err);
		}
		close(fd);
		if (transfer_pack_source_fd(".", CHAN_FD, &err) < 0)
			peer_fail(&err);
		return 0;
	}
	fputs("qctl __peer: internal command of qctl serve\n", stderr);
	return 2;
}
