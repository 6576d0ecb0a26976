/* util.c - error object, allocators, I/O helpers */
#include "util.h"

#include "paths.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>

static int
error_vset(struct error *err, int code, bool sys, const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

static int
error_vset(struct error *err, int code, bool sys, const char *fmt, va_list ap)
{
	if (err) {
		int n;

		err->code = code;
		n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		if (sys && n >= 0 && (size_t)n < sizeof(err->msg))
			snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
				 strerror(code));
	}
	return code > 0 ? -code : (code < 0 ? code : -1);
}

int
error_set(struct error *err, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = error_vset(err, code, false, fmt, ap);
	va_end(ap);
	return r;
}

int
error_sys(struct error *err, int code, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (code < 0)
		code = -code;
	va_start(ap, fmt);
	r = error_vset(err, code, true, fmt, ap);
	va_end(ap);
	return r;
}

void
error_prefix(struct error *err, const char *fmt, ...)
{
	char pre[512];
	char old[sizeof(err->msg)];
	va_list ap;

	if (!err)
		return;
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* truncation of an over-long message is acceptable */
	if (snprintf(err->msg, sizeof(err->msg), "%.500s: %.520s", pre, old) < 0)
		err->msg[0] = '\0';
}

void
error_clear(struct error *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}

static void *
check_alloc(void *p)
{
	if (!p) {
		fputs("qctl: out of memory\n", stderr);
		abort();
	}
	return p;
}

void *
xmalloc(size_t n)
{
	return check_alloc(malloc(n ? n : 1));
}

void *
xcalloc(size_t nmemb, size_t size)
{
	return check_alloc(calloc(nmemb ? nmemb : 1, size ? size : 1));
}

void *
xrealloc(void *p, size_t n)
{
	return check_alloc(realloc(p, n ? n : 1));
}

char *
xstrdup(const char *s)
{
	return check_alloc(strdup(s));
}

char *
xstrndup(const char *s, size_t n)
{
	return check_alloc(strndup(s, n));
}

char *
xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0)
		check_alloc(NULL);
	return s;
}

ssize_t
read_in_full(int fd, void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = read(fd, (char *)buf + done, n - done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		done += r;
	}
	return done;
}

ssize_t
write_in_full(int fd, const void *buf, size_t n)
{
	size_t done = 0;

	while (done < n) {
		ssize_t r = write(fd, (const char *)buf + done, n - done);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += r;
	}
	return done;
}

int
read_file_at(int dirfd, const char *path, size_t max, char **out, size_t *len,
	     struct error *err)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *data = NULL;
	size_t cap = 1024, n = 0;

	fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return error_sys(err, errno, "open %s", path);
	data = xmalloc(cap + 1);
	for (;;) {
		ssize_t r;

		if (n == cap) {
			if (cap >= max)
				return error_set(err, EFBIG,
						 "%s: larger than %zu bytes",
						 path, max);
			cap = cap * 4 > max ? max : cap * 4;
			data = xrealloc(data, cap + 1);
		}
		r = read(fd, data + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return error_sys(err, errno, "read %s", path);
		}
		if (r == 0)
			break;
		n += r;
	}
	data[n] = '\0';
	if (len)
		*len = n;
	*out = steal_pointer(&data);
	return 0;
}

int
read_file(const char *path, size_t max, char **out, size_t *len,
	  struct error *err)
{
	return read_file_at(AT_FDCWD, path, max, out, len, err);
}

int
parse_u64_dec(const char *s, size_t n, uint64_t *out)
{
	uint64_t v = 0;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned d;

		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		d = s[i] - '0';
		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

void
child_fail(int errpipe, int e)
{
	if (write(errpipe, &e, sizeof(e)) < 0)
		_exit(126);
	_exit(127);
}

int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
fd_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/*
 * rm_rf walks the tree depth first holding one directory fd (plus one for
 * a directory being read), so that depth costs memory, not descriptors: a
 * guest-made tree 10,000 levels deep must not run the manager out of fds.
 * Each level remembers the names of its subdirectories still to remove.
 */
struct rm_frame {
	char *name;	/* in the parent; NULL for the top */
	dev_t dev;
	ino_t ino;
	char **subdirs;
	size_t n, next;
};

static void
rm_frame_free(struct rm_frame *f)
{
	free(f->name);
	for (size_t i = f->next; i < f->n; i++)
		free(f->subdirs[i]);
	free(f->subdirs);
}

/* Keep the first error: later ones are usually its consequences. */
static void
rm_err(int *r, int e)
{
	if (*r == 0)
		*r = e;
}

/*
 * Unlink what fd holds but directories; queue the directories that live on
 * dev in f.  A mount point (another st_dev, or STATX_ATTR_MOUNT_ROOT for a
 * bind mount of the same filesystem) is never entered: as root, crossing
 * into it would delete files that are not ours.
 */
static void
rm_scan(int fd, dev_t dev, struct rm_frame *f, int *r)
{
	struct dirent *de;
	DIR *d;
	int dfd = dup(fd);

	if (dfd < 0) {
		rm_err(r, -errno);
		return;
	}
	d = fdopendir(dfd);
	if (!d) {
		rm_err(r, -errno);
		close(dfd);
		return;
	}
	while ((errno = 0, de = readdir(d))) {
		struct statx sx;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (statx(dfd, de->d_name,
			  AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE,
			  &sx) < 0) {
			if (errno != ENOENT)
				rm_err(r, -errno);
			continue;
		}
		if (!S_ISDIR(sx.stx_mode)) {
			/* symlinks included: unlinked, never followed */
			if (unlinkat(dfd, de->d_name, 0) < 0 && errno != ENOENT)
				rm_err(r, -errno);
			continue;
		}
		if (makedev(sx.stx_dev_major, sx.stx_dev_minor) != dev ||
		    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
			rm_err(r, -EXDEV);
			continue;
		}
		if (!(f->n % 64))
			f->subdirs = xrealloc(
				f->subdirs, (f->n + 64) * sizeof(*f->subdirs));
		f->subdirs[f->n++] = xstrdup(de->d_name);
	}
	if (errno)
		rm_err(r, -errno);
	closedir(d);
}

/* Open directory name under fd, refusing links and other filesystems. */
static int
rm_open_dir(int fd, const char *name, dev_t dev, struct stat *st)
{
	struct statx sx;
	int nfd = openat(fd, name,
			 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (nfd < 0)
		return -errno;
	if (fstat(nfd, st) < 0 ||
	    statx(nfd, "", AT_EMPTY_PATH, STATX_TYPE, &sx) < 0) {
		int e = errno;

		close(nfd);
		return -e;
	}
	/* re-checked on the open fd: the name may have changed since */
	if ((dev && st->st_dev != dev) ||
	    (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT)) {
		close(nfd);
		return -EXDEV;
	}
	return nfd;
}

int
rm_rf_at(int dfd, const char *name)
{
	struct rm_frame *stack = NULL;
	size_t depth = 0, cap = 0;
	struct stat st;
	dev_t dev;
	int cur, r = 0;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return unlinkat(dfd, name, 0) < 0 && errno != ENOENT ? -errno
								     : 0;
	cur = rm_open_dir(dfd, name, 0, &st);
	if (cur < 0)
		return cur;
	dev = st.st_dev;
	cap = 16;
	stack = xcalloc(cap, sizeof(*stack));
	stack[0].dev = st.st_dev;
	stack[0].ino = st.st_ino;
	rm_scan(cur, dev, &stack[0], &r);
	depth = 1;
	while (depth) {
		struct rm_frame *f = &stack[depth - 1];
		struct stat pst;
		char *sub;
		int nfd;

		if (f->next < f->n) {
			sub = f->subdirs[f->next++];
			nfd = rm_open_dir(cur, sub, dev, &st);
			if (nfd < 0) {
				if (nfd != -ENOENT)
					rm_err(&r, nfd);
				free(sub);
				continue;
			}
			if (depth == cap) {
				stack = xrealloc(stack,
						 2 * cap * sizeof(*stack));
				memset(stack + cap, 0, cap * sizeof(*stack));
				cap *= 2;
			}
			close(cur);
			cur = nfd;
			f = &stack[depth++];
			f->name = sub;
			f->dev = st.st_dev;
			f->ino = st.st_ino;
			rm_scan(cur, dev, f, &r);
			continue;
		}
		/* f is as empty as it will get: go up and remove it */
		if (depth == 1) {
			close(cur);
			cur = -1;
			if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 &&
			    errno != ENOENT)
				rm_err(&r, -errno);
			rm_frame_free(f);
			depth = 0;
			break;
		}
		nfd = openat(cur, "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		/* ".." must still be the directory we came down from: if the
		 * tree was moved meanwhile, stop rather than delete there */
		if (nfd < 0 || fstat(nfd, &pst) < 0 ||
		    pst.st_dev != stack[depth - 2].dev ||
		    pst.st_ino != stack[depth - 2].ino) {
			rm_err(&r, nfd < 0 ? -errno : -ESTALE);
			if (nfd >= 0)
				close(nfd);
			break;
		}
		close(cur);
		cur = nfd;
		if (unlinkat(cur, f->name, AT_REMOVEDIR) < 0 && errno != ENOENT)
			rm_err(&r, -errno);
		rm_frame_free(f);
		memset(f, 0, sizeof(*f));
		depth--;
	}
	if (cur >= 0)
		close(cur);
	while (depth)
		rm_frame_free(&stack[--depth]);
	free(stack);
	return r;
}

int
rm_rf(const char *path)
{
	return rm_rf_at(AT_FDCWD, path);
}

/*
 * Length of the UTF-8 sequence at p (at most n bytes) and its code point,
 * or 0 when it is not valid UTF-8 (overlong forms, surrogates and values
 * past U+10FFFF are not).
 */
size_t
utf8_decode(const unsigned char *p, size_t n, uint32_t *cp)
{
	unsigned char c = p[0], lo = 0x80, hi = 0xbf;
	size_t len;
	uint32_t v;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf)
		len = 2, v = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3, v = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4, v = c & 0x07;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f;
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f;
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	v = (v << 6) | (p[1] & 0x3f);
	for (size_t i = 2; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		v = (v << 6) | (p[i] & 0x3f);
	}
	*cp = v;
	return len;
}

bool
term_char_ok(uint32_t cp)
{
	/* C0 but tab, DEL, and C1: 0x9b alone is CSI on terminals that
	 * take 8-bit controls, U+009B is on those that decode UTF-8 first */
	return (cp >= 0x20 || cp == '\t') && !(cp >= 0x7f && cp <= 0x9f);
}

void
term_sanitize(const char *in, size_t n, struct buf *out)
{
	const unsigned char *p = (const unsigned char *)in;
	size_t i = 0, run = 0;

	while (i < n) {
		uint32_t cp;
		size_t k = utf8_decode(p + i, n - i, &cp);

		if (k && term_char_ok(cp)) {
			i += k;
			continue;
		}
		buf_append(out, in + run, i - run);
		buf_append(out, "?", 1);
		i += k ? k : 1;
		run = i;
	}
	/* always a C string, even when n is 0 */
	buf_append(out, in + run, n - run);
}

void
buf_append(struct buf *b, const void *src, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->data = xrealloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, src, n);
	b->len += n;
	b->data[b->len] = '\0';
}

void
buf_consume(struct buf *b, size_t n)
{
	if (n >= b->len) {
		b->len = 0;
	} else {
		memmove(b->data, b->data + n, b->len - n);
		b->len -= n;
	}
	if (b->data)
		b->data[b->len] = '\0';
}

void
buf_free(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

/* Length of a valid UTF-8 sequence at p (JSON's rules), or 0. */
size_t
utf8_seq(const unsigned char *p, size_t n)
{
	uint32_t cp;

	return n ? utf8_decode(p, n, &cp) : 0;
}

/*
 * A helper program: $env_name if set (env_name may be NULL), else name
 * beside our own binary (the build tree), else name in the installed
 * QCTL_LIBEXECDIR; if neither exists, the one beside us, for the message.
 */
char *
helper_path(const char *env_name, const char *name)
{
	const char *env = env_name ? getenv(env_name) : NULL;
	char exe[4096];
	char *beside = NULL, *installed;
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			beside = xasprintf("%s/%s", exe, name);
			if (access(beside, X_OK) == 0)
				return beside;
		}
	}
	installed = xasprintf("%s/%s", QCTL_LIBEXECDIR, name);
	if (access(installed, X_OK) == 0) {
		free(beside);
		return installed;
	}
	free(installed);
	return beside ? beside : xstrdup(name);
}
