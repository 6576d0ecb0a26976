/* sshd-proto.h - wire format between the manager and qctl-sshd.
 *
 * qctl-sshd (sshd/) serves ssh to held builds; it is exec'd by the manager
 * (qctl/sshd.c) with an empty environment, /dev/null on 0-2, a listening
 * TCP socket on SSHD_FD_LISTEN, its end of an AF_UNIX SOCK_SEQPACKET
 * socketpair on SSHD_FD_CTL, and nothing else.  The two speak binary
 * frames over that socket, one frame per packet; each side treats the
 * other as hostile: every frame is bounded and checked by
 * sshd_msg_decode() before anything looks at it.  See docs/ssh.md.
 *
 * A frame: a 12-byte header, then the payload.
 *
 *   u32 len    the whole frame, header included; equals the packet's
 *              length; SSHD_HDR_LEN <= len <= SSHD_FRAME_MAX
 *   u16 type   enum sshd_msg_type, and only those of the sender's
 *              direction
 *   u16 flags  0
 *   u32 id     the session (or key request) the frame is about; 0 for
 *              config/ready/fail/log and for nothing else
 *
 * Integers are big-endian.  A string is its bytes, then a NUL, preceded
 * by a u32 count of the bytes (the NUL not counted): no NUL inside, the
 * NUL where the count says, the count within the field's bound, the bytes
 * within the field's alphabet.  Data is a u32 count (1..SSHD_DATA_MAX)
 * and the bytes.  Nothing may follow the last field.
 *
 *   manager -> sshd
 *     CONFIG   id 0: u32 version, u32 uid, u32 gid, u32 max_conns,
 *              u32 max_sessions (per connection), u32 grace_ms,
 *              u32 max_auth, u32 nhostkeys (1..SSHD_HOSTKEYS_MAX), then
 *              that many strings (OpenSSH private key text); the first
 *              frame, queued before the exec
 *     KEYS     id = a KEYS_REQ's id: u32 n (0..SSHD_KEYS_MAX), n strings
 *              (OpenSSH public key lines); n = 0 for an unknown build
 *     OPENED   id = an OPEN's id: the session runs
 *     REFUSED  id = an OPEN's id: string reason; the sshd closes it
 *     STDOUT   data          } at most SSHD_WINDOW bytes of both not yet
 *     STDERR   data          } acknowledged by an ACK from the sshd
 *     EOF      no payload: no more stdout/stderr
 *     EXIT     u32 kind (0 status, 1 signal), u32 value (status 0..255,
 *              signal 1..64): the sshd sends it, then closes the channel
 *     CLOSE    string reason: the reason goes to the client's stderr,
 *              then exit status 255 and the channel closes
 *     ACK      u32 n: n more stdin bytes consumed (1..SSHD_WINDOW)
 *   sshd -> manager
 *     READY    id 0: privileges dropped, confined, serving
 *     FAIL     id 0: string message; start-up failed, it exits next
 *     LOG      id 0: string line (an authentication refused, a limit)
 *     KEYS_REQ id = a fresh request id: string build (the ssh user name)
 *     OPEN     id = a fresh session id: string build, string fingerprint
 *              ("SHA256:..."), string peer ("ADDR port PORT"), u8 has_pty,
 *              string term, u32 rows, u32 cols, u8 has_command, string
 *              command (term and command "" unless present)
 *     STDIN    data (at most SSHD_WINDOW bytes not yet acknowledged)
 *     EOF      no payload: the client closed its stdin
 *     WINCH    u32 rows, u32 cols
 *     ACK      u32 n: n more stdout/stderr bytes went to the client
 *     CLOSED   string reason: the session is over on the sshd's side; the
 *              last frame about this id (the manager forgets it then)
 *
 * Ids are the sshd's: each KEYS_REQ and OPEN takes a new one, larger than
 * every earlier id.  Frames for an id the receiver no longer knows (a
 * race with a close) are dropped by the sshd; the manager, which knows
 * every id until CLOSED, refuses any frame about an id it never saw.
 */
#ifndef QCTL_SSHD_PROTO_H
#define QCTL_SSHD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* fds of the sshd process */
#define SSHD_FD_LISTEN 3
#define SSHD_FD_CTL 4

#define SSHD_PROTO_VERSION 1
#define SSHD_HDR_LEN 12
/* Largest frame, header included (a configuration with keys). */
#define SSHD_FRAME_MAX 65536
/* Largest data payload of one frame. */
#define SSHD_DATA_MAX 16384
/* Unacknowledged data per session and direction: beyond it the sender
 * waits (the sshd stops reading the client's channel; the manager stops
 * reading the guest). */
#define SSHD_WINDOW (128 * 1024)

/* Field bounds. */
#define SSHD_BUILD_MAX 64     /* [A-Za-z0-9._-] */
#define SSHD_FPR_MAX 100      /* "SHA256:" + base64 */
#define SSHD_PEER_MAX 80      /* printable */
#define SSHD_TERM_MAX 64      /* [A-Za-z0-9._+-] */
#define SSHD_COMMAND_MAX 8192 /* any byte but NUL */
#define SSHD_TEXT_MAX 512     /* reasons, log lines: printable ASCII */
#define SSHD_KEY_MAX 8192     /* one public key line: printable ASCII */
#define SSHD_KEYS_MAX 64
#define SSHD_HOSTKEY_MAX 16384 /* one private key: printable + \n */
#define SSHD_HOSTKEYS_MAX 3
#define SSHD_PTY_DIM_MAX 10000

/* Bounds on the configuration's limits. */
#define SSHD_CONNS_MAX 256
#define SSHD_SESSIONS_MAX 16
#define SSHD_GRACE_MS_MIN 1000
#define SSHD_GRACE_MS_MAX (10 * 60 * 1000)
#define SSHD_AUTH_MAX 20

enum sshd_msg_type {
	/* manager -> sshd */
	SSHD_M_CONFIG = 1,
	SSHD_M_KEYS,
	SSHD_M_OPENED,
	SSHD_M_REFUSED,
	SSHD_M_STDOUT,
	SSHD_M_STDERR,
	SSHD_M_EOF,
	SSHD_M_EXIT,
	SSHD_M_CLOSE,
	SSHD_M_ACK,
	/* sshd -> manager */
	SSHD_S_READY = 32,
	SSHD_S_FAIL,
	SSHD_S_LOG,
	SSHD_S_KEYS_REQ,
	SSHD_S_OPEN,
	SSHD_S_STDIN,
	SSHD_S_EOF,
	SSHD_S_WINCH,
	SSHD_S_ACK,
	SSHD_S_CLOSED,
};

enum sshd_exit_kind {
	SSHD_EXIT_STATUS = 0,
	SSHD_EXIT_SIGNAL = 1,
};

/* Who decodes: the direction a frame must have. */
enum sshd_dir {
	SSHD_TO_SSHD,	 /* manager -> sshd frames */
	SSHD_TO_MANAGER, /* sshd -> manager frames */
};

/*
 * One frame, decoded.  Strings and data point into the decoded buffer
 * (strings are NUL-terminated there); only the fields of the type are
 * set, the rest are zero.
 */
struct sshd_msg {
	uint16_t type;
	uint32_t id;
	/* CONFIG */
	uint32_t version, uid, gid, max_conns, max_sessions, grace_ms,
		max_auth;
	uint32_t nhostkeys;
	const char *hostkeys[SSHD_HOSTKEYS_MAX];
	/* KEYS */
	uint32_t nkeys;
	const char *keys[SSHD_KEYS_MAX];
	/* OPEN (and KEYS_REQ's build) */
	const char *build, *fingerprint, *peer, *term, *command;
	bool has_pty, has_command;
	uint32_t rows, cols; /* OPEN, WINCH */
	/* REFUSED, CLOSE, CLOSED: reason; FAIL, LOG: the line */
	const char *text;
	/* STDIN, STDOUT, STDERR */
	const uint8_t *data;
	uint32_t len;
	/* EXIT */
	uint8_t exit_kind;
	uint32_t exit_value;
	/* ACK */
	uint32_t ack;
};

/*
 * Check one frame of dir (buf, len: the whole packet) and fill *m with
 * pointers into buf (which must outlive them).  0, or -EPROTO with the
 * rule it broke in err.
 */
int sshd_msg_decode(enum sshd_dir dir, const uint8_t *buf, size_t len,
		    struct sshd_msg *m, struct error *err);
/*
 * Encode m (its type's fields) as one frame appended to out.  Checks what
 * decode checks, so that neither side sends a frame the other refuses:
 * 0, or -EINVAL with err filled (and out unchanged).
 */
int sshd_msg_encode(const struct sshd_msg *m, struct buf *out,
		    struct error *err);
/* Direction of a type; -1 if unknown. */
int sshd_msg_dir(uint16_t type);
/* A type's name for messages ("OPEN", "stdout"...); "?" if unknown. */
const char *sshd_msg_name(uint16_t type);
/* Is s a valid build id (the ssh user name)? */
bool sshd_build_ok(const char *s);

#endif
