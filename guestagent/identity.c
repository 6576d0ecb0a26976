/*
 * identity.c - a VM started from a snapshot becomes itself.
 *
 * Every build started from one snapshot wakes up with the same memory:
 * the same kernel CRNG key, the same clock as when the snapshot was
 * taken, the same hostname.  Before anything of the build runs, the
 * host sends IDENTITY: its entropy goes into the input pool (credited)
 * and the CRNG is reseeded from it at once, so no two builds read the
 * same random bytes; the clock is set to the host's; the hostname is
 * the one the host names.  See docs/snapshots.md for the threat.
 */
#include "agent.h"
#include "decode.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

/* Mix the seed into the input pool, credited, then reseed the CRNG. */
static int
reseed(const unsigned char *seed, uint32_t n)
{
	struct {
		struct rand_pool_info info;
		unsigned char buf[AGENT_SEED_MAX];
	} req;
	int fd, r = 0;

	memset(&req, 0, sizeof(req));
	req.info.entropy_count = (int)n * 8;
	req.info.buf_size = (int)n;
	memcpy(req.info.buf, seed, n);
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* RNDRESEEDCRNG makes the next read use a key drawn from the pool
	 * that now holds the host's bytes, not the key of the snapshot */
	if (ioctl(fd, RNDADDENTROPY, &req.info) < 0 ||
	    ioctl(fd, RNDRESEEDCRNG) < 0)
		r = -errno;
	close(fd);
	explicit_bzero(&req, sizeof(req));
	return r;
}

int
ga_identity_apply(const struct ga_identity *id, char *msg, size_t len)
{
	struct timespec ts = {
		.tv_sec = (time_t)id->sec,
		.tv_nsec = (long)id->nsec,
	};
	int r;

	r = reseed(id->seed, id->seed_len);
	if (r < 0) {
		snprintf(msg, len, "reseeding the kernel's RNG: %s",
			 strerror(-r));
		return r;
	}
	if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
		r = -errno;
		snprintf(msg, len, "setting the clock: %s", strerror(-r));
		return r;
	}
	if (sethostname(id->hostname, strlen(id->hostname)) < 0) {
		r = -errno;
		snprintf(msg, len, "sethostname: %s", strerror(-r));
		return r;
	}
	return 0;
}
