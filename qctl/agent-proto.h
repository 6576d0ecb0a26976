/*
 * agent-proto.h - the wire format between qctl and guestagent.
 *
 * Shared by both programs; see docs/agent-protocol.md.  Every frame is a
 * 12-byte little-endian header followed by at most AGENT_MAX_PAYLOAD bytes.
 * Both sides treat the peer as hostile: lengths are checked before any
 * payload is buffered, strings are never assumed NUL-terminated.
 */
#ifndef QCTL_AGENT_PROTO_H
#define QCTL_AGENT_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define AGENT_PROTO_VERSION 3
/* virtio-serial port name the agent looks for under /sys/class/virtio-ports */
#define AGENT_PORT_NAME "org.qctl.agent.0"
#define AGENT_HDR_SIZE 12
#define AGENT_MAX_PAYLOAD 65536u
/* argv + env entries in one EXEC */
#define AGENT_MAX_STRINGS 1024u

enum agent_type {
	/* host -> guest */
	AGENT_EXEC = 1,		/* exec encoding below; id = process id */
	AGENT_SIGNAL = 2,	/* u32 signo; to the process group of id */
	AGENT_FILE_IN = 3,	/* dest dir string; DATA frames follow */
	AGENT_FILE_OUT = 4,	/* u32 n; dir string; n glob strings */
	AGENT_DATA = 5,		/* raw bytes of a tar stream, both ways */
	AGENT_DATA_END = 6,	/* host -> guest: end of FILE_IN stream */
	AGENT_POWEROFF = 7,	/* sync, kill everything, power off */
	AGENT_PING = 8,		/* guest answers PONG with the same id */
	/* version 2 */
	AGENT_STDIN = 9,	/* raw bytes (1..65536) for the job's stdin */
	AGENT_STDIN_END = 10,	/* empty: close the job's stdin */
	AGENT_WINSIZE = 11,	/* u32 rows, u32 cols: the job's terminal */
	/* version 3: a VM started from a snapshot takes its own identity;
	 * the agent answers with a new HELLO (or ERROR) */
	AGENT_IDENTITY = 12,	/* encoding below */

	/* guest -> host */
	AGENT_HELLO = 64,	/* u32 version; agent version string; uname */
	AGENT_STARTED = 65,	/* u32 pid */
	AGENT_STDOUT = 66,	/* raw bytes */
	AGENT_STDERR = 67,	/* raw bytes */
	AGENT_EXIT = 68,	/* i32 exit code (-1 if signalled); i32 signal */
	AGENT_ERROR = 69,	/* i32 errno; message (EXEC/FILE_* failed) */
	AGENT_PONG = 70,
	AGENT_FILE_DONE = 71,	/* i32 status (0 ok); message */
};

/* EXEC flags */
#define AGENT_EXEC_SHELL 0x1u	/* argv[0] is a script for /bin/sh -c */
/* version 2: stdin is a pipe fed by STDIN frames (else /dev/null) */
#define AGENT_EXEC_STDIN 0x2u
/* version 2: 0-2 are a new pseudo-terminal, the child's controlling
 * terminal; STDIN frames feed it, its output comes as STDOUT */
#define AGENT_EXEC_PTY 0x4u
/* every EXEC flag of this version; an agent refuses any other bit */
#define AGENT_EXEC_FLAGS (AGENT_EXEC_SHELL | AGENT_EXEC_STDIN | AGENT_EXEC_PTY)
/* IDENTITY's seed: at least 256 bits, as the kernel's CRNG key */
#define AGENT_SEED_MIN 32u
#define AGENT_SEED_MAX 512u
/* WINSIZE rows and cols are each 1..AGENT_WINSIZE_MAX */
#define AGENT_WINSIZE_MAX 65535u

/*
 * EXEC payload:
 *   u32 flags, u32 argc, u32 envc,
 *   cwd '\0', argc x (arg '\0'), envc x ("KEY=VALUE" '\0')
 * FILE_OUT payload:
 *   u32 n, dir '\0', n x (glob '\0')
 * HELLO payload:
 *   u32 version, agent-version '\0', uname '\0'
 * WINSIZE payload (version 2):
 *   u32 rows, u32 cols (each 1..AGENT_WINSIZE_MAX)
 * STDIN payload (version 2): 1..AGENT_MAX_PAYLOAD raw bytes; STDIN_END: empty
 * IDENTITY payload (version 3):
 *   u32 seconds (low), u32 seconds (high), u32 nanoseconds (< 1e9),
 *   u32 n (AGENT_SEED_MIN..AGENT_SEED_MAX), n bytes of host entropy,
 *   hostname '\0' (1..64 bytes of [A-Za-z0-9.-])
 * Strings inside payloads are NUL-terminated; a reader rejects a payload
 * whose strings run past its end or whose counts exceed AGENT_MAX_STRINGS.
 */

struct agent_hdr {
	uint32_t len;		/* payload length, <= AGENT_MAX_PAYLOAD */
	uint16_t type;		/* enum agent_type */
	uint16_t flags;		/* reserved, 0 */
	uint32_t id;		/* exec/transfer id chosen by the host, or 0 */
};

static inline void
agent_put_u32(unsigned char *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static inline uint32_t
agent_get_u32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Encode a header into 12 bytes. */
static inline void
agent_hdr_encode(unsigned char out[AGENT_HDR_SIZE], const struct agent_hdr *h)
{
	agent_put_u32(out, h->len);
	out[4] = h->type;
	out[5] = h->type >> 8;
	out[6] = h->flags;
	out[7] = h->flags >> 8;
	agent_put_u32(out + 8, h->id);
}

/* Decode and validate a header: 0, or -1 if the length or flags are bad. */
static inline int
agent_hdr_decode(const unsigned char in[AGENT_HDR_SIZE], struct agent_hdr *h)
{
	h->len = agent_get_u32(in);
	h->type = (uint16_t)(in[4] | in[5] << 8);
	h->flags = (uint16_t)(in[6] | in[7] << 8);
	h->id = agent_get_u32(in + 8);
	if (h->len > AGENT_MAX_PAYLOAD || h->flags != 0)
		return -1;
	return 0;
}

/*
 * A cursor over a received payload; every getter fails (returns -1 and
 * poisons the cursor) instead of reading past the end.
 */
struct agent_cursor {
	const unsigned char *p;
	size_t left;
	int bad;
};

static inline void
agent_cursor_init(struct agent_cursor *c, const void *payload, size_t len)
{
	c->p = payload;
	c->left = len;
	c->bad = 0;
}

static inline int
agent_cursor_u32(struct agent_cursor *c, uint32_t *v)
{
	if (c->bad || c->left < 4) {
		c->bad = 1;
		return -1;
	}
	*v = agent_get_u32(c->p);
	c->p += 4;
	c->left -= 4;
	return 0;
}

/* A NUL-terminated string that lies wholly inside the payload. */
static inline int
agent_cursor_str(struct agent_cursor *c, const char **s)
{
	const unsigned char *nul;

	if (c->bad || !c->left ||
	    !(nul = memchr(c->p, '\0', c->left))) {
		c->bad = 1;
		return -1;
	}
	*s = (const char *)c->p;
	c->left -= (size_t)(nul - c->p) + 1;
	c->p = nul + 1;
	return 0;
}

#endif
