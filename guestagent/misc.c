/* misc.c - logging, allocation and small file helpers of guestagent */
#include "agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void
vlog(const char *fmt, va_list ap)
{
	char line[512];
	int n;

	n = snprintf(line, sizeof(line), "guestagent: ");
	vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
	n = strlen(line);
	line[n++] = '\n';
	/* one write per line so lines from several sources do not interleave */
	if (write(STDERR_FILENO, line, n) < 0)
		return;
}

void
ga_log(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
}

_Noreturn void
ga_fatal(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(fmt, ap);
	va_end(ap);
	/* PID 1 must never exit: the kernel would panic, not power off */
	if (getpid() == 1)
		init_poweroff();
	exit(1);
}

void *
ga_malloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		ga_fatal("out of memory (%zu bytes)", n);
	return p;
}

void *
ga_realloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);

	if (!q)
		ga_fatal("out of memory (%zu bytes)", n);
	return q;
}

void
ga_buf_add(struct ga_buf *b, const void *src, size_t n)
{
	if (!n)
		return;
	if (b->off && b->len + n > b->cap) {
		/* compact before growing: queues drain from the front */
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;

		while (cap < b->len + n)
			cap *= 2;
		b->data = ga_realloc(b->data, cap);
		b->cap = cap;
	}
	memcpy(b->data + b->len, src, n);
	b->len += n;
}

size_t
ga_buf_used(const struct ga_buf *b)
{
	return b->len - b->off;
}

void
ga_buf_drop(struct ga_buf *b, size_t n)
{
	b->off += n;
	if (b->off >= b->len) {
		b->off = 0;
		b->len = 0;
	}
}

void
ga_buf_free(struct ga_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->off = b->len = b->cap = 0;
}

int
ga_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

int
ga_mkdir_p(const char *path)
{
	char buf[4096];
	size_t n = strlen(path), i;

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, n + 1);
	for (i = 1; i <= n; i++) {
		struct stat st;

		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0755) < 0 && errno != EEXIST)
			return -errno;
		/* an existing non-directory must fail here, not later in tar */
		if (stat(buf, &st) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		buf[i] = path[i];
	}
	return 0;
}

int64_t
ga_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
