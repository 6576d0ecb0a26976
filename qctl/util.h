/* util.h - error object, cleanup attributes, allocators and I/O helpers */
#ifndef QCTL_UTIL_H
#define QCTL_UTIL_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* An error: errno-style code plus a message with context. */
struct error {
	int code;
	char msg[1024];
};

/* Fill err (may be NULL) and return -code (or -1 when code is 0). */
int error_set(struct error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Like error_set, appending ": strerror(code)". */
int error_sys(struct error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prepend "context: " to an already filled message. */
void error_prefix(struct error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void error_clear(struct error *err);

/* Allocators that never return NULL (abort on exhaustion). */
void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static inline void
cleanup_freep(void *p)
{
	free(*(void **)p);
}

static inline void
cleanup_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define _cleanup_free_ __attribute__((cleanup(cleanup_freep)))
#define _cleanup_close_ __attribute__((cleanup(cleanup_closep)))
#define _cleanup_json_ __attribute__((cleanup(cleanup_jsonp)))

/* Take ownership out of a cleanup-scoped variable. */
#define steal_pointer(pp) \
	({ __typeof__(*(pp)) _p = *(pp); *(pp) = NULL; _p; })
#define steal_fd(fdp) \
	({ int _fd = *(fdp); *(fdp) = -1; _fd; })

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Read/write exactly n bytes unless EOF/error; return bytes done or -errno. */
ssize_t read_in_full(int fd, void *buf, size_t n);
ssize_t write_in_full(int fd, const void *buf, size_t n);

/* Read a whole (small) file, NUL-terminated, at most max bytes. */
int read_file(const char *path, size_t max, char **out, size_t *len,
	      struct error *err);
/* The same relative to dirfd, never following a final symlink. */
int read_file_at(int dirfd, const char *path, size_t max, char **out,
		 size_t *len, struct error *err);
/* n decimal digits (no sign, no space) as a u64: 0, -EINVAL or -ERANGE. */
int parse_u64_dec(const char *s, size_t n, uint64_t *out);

/*
 * Between fork and exec: write errno e to the parent's error pipe (a
 * close-on-exec pipe that stays empty when exec succeeds) and _exit.
 */
void child_fail(int errpipe, int e) __attribute__((noreturn));

/* Monotonic clock in milliseconds. */
int64_t now_ms(void);

/* Set O_NONBLOCK on fd; 0 or -errno. */
int fd_set_nonblock(int fd);

/*
 * Remove a directory tree without following symlinks or entering another
 * mount, with a bounded number of fds whatever its depth; 0 or the first
 * -errno (what could be removed is removed).
 */
int rm_rf(const char *path);
/* The same for name under dirfd. */
int rm_rf_at(int dirfd, const char *name);

/* Append src to a growable buffer. */
struct buf {
	char *data;
	size_t len;
	size_t cap;
};
void buf_append(struct buf *b, const void *src, size_t n);
void buf_consume(struct buf *b, size_t n);
void buf_free(struct buf *b);

/* Length of a valid UTF-8 sequence at p[0..n) (JSON's rules), or 0. */
size_t utf8_seq(const unsigned char *p, size_t n);
/* Length of the valid UTF-8 sequence at p (n > 0) and its code point; 0 if
 * invalid. */
size_t utf8_decode(const unsigned char *p, size_t n, uint32_t *cp);
/* Whether a terminal shows code point cp as text (no C0 but tab, no DEL,
 * no C1). */
bool term_char_ok(uint32_t cp);
/*
 * Append in[0..n) to out as text that is safe on a terminal or in a log
 * viewer: valid UTF-8 passes, but every C0 control (tab excepted), DEL, C1
 * control (raw or UTF-8 encoded, like "\xc2\x9b") and invalid byte becomes
 * '?'.  out->data is NUL-terminated afterwards.
 */
void term_sanitize(const char *in, size_t n, struct buf *out);

/*
 * A helper program: $env_name if set (NULL: no variable), else name beside
 * our own binary if it is there, else in QCTL_LIBEXECDIR (paths.h).
 */
char *helper_path(const char *env_name, const char *name);

#endif
