/*
 * port.c - the virtio-serial port to the host: discovery, a non-blocking
 * output queue of whole frames, and raw input buffering.
 *
 * Writes never block the loop: frames are queued and written as the port
 * accepts them (virtio_console takes at most 32 KiB per write and returns
 * EAGAIN when the host is slow).  The queue is bounded indirectly: above
 * GA_OUTQ_HIGH the loop stops reading children and the port, so the only
 * frames still queued are the few replies already owed.
 */
#include "agent.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define VPORT_CLASS "/sys/class/virtio-ports"

/* Whether /sys/class/virtio-ports/<ent>/name holds exactly name. */
static bool
vport_has_name(const char *ent, const char *name)
{
	char path[512], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), VPORT_CLASS "/%s/name", ent);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return strcmp(buf, name) == 0;
}

static int
port_scan(const char *name, char *path, size_t size)
{
	struct dirent *de;
	DIR *d = opendir(VPORT_CLASS);
	int found = -ENOENT;

	if (!d)
		return -ENOENT;
	while ((de = readdir(d))) {
		struct stat st;

		if (de->d_name[0] == '.' || !vport_has_name(de->d_name, name))
			continue;
		snprintf(path, size, "/dev/%s", de->d_name);
		/* the name can be known before devtmpfs has made the node */
		if (stat(path, &st) == 0 && S_ISCHR(st.st_mode)) {
			found = 0;
			break;
		}
	}
	closedir(d);
	return found;
}

int
port_find(const char *name, int timeout_ms, char *path, size_t size)
{
	int64_t end = ga_now_ms() + timeout_ms;
	const struct timespec tick = {0, 10 * 1000 * 1000};

	/* no udev: the name comes from the host after the probe, so poll */
	for (;;) {
		if (port_scan(name, path, size) == 0)
			return 0;
		if (ga_now_ms() >= end)
			return -ETIMEDOUT;
		nanosleep(&tick, NULL);
	}
}

int
port_open(struct ga_port *p, const char *path)
{
	memset(p, 0, sizeof(*p));
	p->fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (p->fd < 0)
		return -errno;
	return 0;
}

void
port_send2(struct ga_port *p, uint16_t type, uint32_t id, const void *a,
	   size_t alen, const void *b, size_t blen)
{
	unsigned char hdr[AGENT_HDR_SIZE];
	struct agent_hdr h = {
		.len = (uint32_t)(alen + blen),
		.type = type,
		.flags = 0,
		.id = id,
	};

	/* callers size payloads; a bigger one would be a bug in the agent */
	if (alen + blen > AGENT_MAX_PAYLOAD)
		ga_fatal("internal: frame type %u of %zu bytes", type,
			 alen + blen);
	agent_hdr_encode(hdr, &h);
	ga_buf_add(&p->out, hdr, sizeof(hdr));
	ga_buf_add(&p->out, a, alen);
	ga_buf_add(&p->out, b, blen);
}

void
port_send(struct ga_port *p, uint16_t type, uint32_t id, const void *payload,
	  size_t len)
{
	port_send2(p, type, id, payload, len, NULL, 0);
}

void
port_send_error(struct ga_port *p, uint32_t id, int err, const char *fmt, ...)
{
	char msg[1024];
	unsigned char e[4];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	agent_put_u32(e, (uint32_t)err);
	port_send2(p, AGENT_ERROR, id, e, 4, msg, strlen(msg) + 1);
}

void
port_send_done(struct ga_port *p, uint32_t id, int status, const char *msg)
{
	unsigned char s[4];

	agent_put_u32(s, (uint32_t)status);
	port_send2(p, AGENT_FILE_DONE, id, s, 4, msg, strlen(msg) + 1);
}

int
port_flush(struct ga_port *p)
{
	while (ga_buf_used(&p->out)) {
		ssize_t n = write(p->fd, p->out.data + p->out.off,
				  ga_buf_used(&p->out));

		if (n > 0) {
			ga_buf_drop(&p->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		return n < 0 ? -errno : -EIO;
	}
	return 0;
}

void
port_flush_wait(struct ga_port *p, int timeout_ms)
{
	int64_t end = ga_now_ms() + timeout_ms;

	while (ga_buf_used(&p->out) && p->connected) {
		struct pollfd pfd = {.fd = p->fd, .events = POLLOUT};
		int64_t left = end - ga_now_ms();

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0 ||
		    (pfd.revents & (POLLHUP | POLLERR)) || port_flush(p) < 0)
			return;
	}
}

bool
port_congested(const struct ga_port *p)
{
	return ga_buf_used(&p->out) > GA_OUTQ_HIGH;
}

int
port_read(struct ga_port *p)
{
	unsigned char buf[AGENT_MAX_PAYLOAD];
	ssize_t n;

	for (;;) {
		n = read(p->fd, buf, sizeof(buf));
		if (n > 0) {
			ga_buf_add(&p->in, buf, (size_t)n);
			return 1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		/* virtio_console reads 0 when no host is connected */
		return -1;
	}
}

void
port_reset(struct ga_port *p)
{
	ga_buf_free(&p->in);
	ga_buf_free(&p->out);
}
