/* agent.h - host side of the guest agent channel (see agent-proto.h) */
#ifndef QCTL_AGENT_H
#define QCTL_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent-proto.h"
#include "util.h"

/* Called for each complete, header-valid frame; payload has h->len bytes. */
typedef int (*agent_frame_fn)(const struct agent_hdr *h, const void *payload,
			      void *opaque, struct error *err);

/*
 * Split a byte stream into frames.  Bytes are appended to in; complete
 * frames are passed to fn and consumed.  A bad header or an fn failure is
 * fatal to the stream (negative return).
 */
int agent_frames_parse(struct buf *in, agent_frame_fn fn, void *opaque,
		       struct error *err);

struct agent_conn {
	int fd;
	struct buf in;
	struct buf out;
	size_t out_off;
	agent_frame_fn on_frame;
	void *opaque;
	bool dead;
};

/* Wrap a connected socket (made non-blocking); fd stays owned by caller. */
void agent_conn_init(struct agent_conn *c, int fd, agent_frame_fn fn,
		     void *opaque);
void agent_conn_free(struct agent_conn *c);
/* Queue one frame; payload at most AGENT_MAX_PAYLOAD. */
int agent_send(struct agent_conn *c, uint16_t type, uint32_t id,
	       const void *payload, size_t len, struct error *err);
/*
 * Queue an EXEC: argv[0] is the script when flags has AGENT_EXEC_SHELL;
 * flags outside AGENT_EXEC_FLAGS are refused (EINVAL).
 */
int agent_send_exec(struct agent_conn *c, uint32_t id, uint32_t flags,
		    const char *cwd, char *const *argv, size_t argc,
		    char *const *env, size_t envc, struct error *err);
/*
 * Queue n bytes (n >= 1) for the stdin of EXEC id (AGENT_EXEC_STDIN or
 * AGENT_EXEC_PTY), as frames of at most AGENT_MAX_PAYLOAD bytes.
 */
int agent_send_stdin(struct agent_conn *c, uint32_t id, const void *p,
		     size_t n, struct error *err);
/* Queue STDIN_END: close the job's stdin pipe (a PTY: mark stdin ended). */
int agent_send_stdin_end(struct agent_conn *c, uint32_t id,
			 struct error *err);
/* Queue WINSIZE for a PTY job; rows and cols in 1..AGENT_WINSIZE_MAX. */
int agent_send_winsize(struct agent_conn *c, uint32_t id, uint32_t rows,
		       uint32_t cols, struct error *err);
/* Queue FILE_OUT of globs relative to dir. */
/*
 * IDENTITY (version 3): the clock to set, n (AGENT_SEED_MIN..MAX) bytes
 * of seed, a hostname of [A-Za-z0-9.-]{1,64}.
 */
int agent_send_identity(struct agent_conn *c, uint32_t id,
			const struct timespec *now, const void *seed,
			size_t n, const char *hostname, struct error *err);
int agent_send_file_out(struct agent_conn *c, uint32_t id, const char *dir,
			char *const *globs, size_t n, struct error *err);
/* Bytes queued but not yet written. */
size_t agent_pending(const struct agent_conn *c);
/* Read and write what the socket allows; dispatch frames. */
int agent_handle_io(struct agent_conn *c, uint32_t events, struct error *err);

/* Decoders for guest -> host payloads (hostile input: bounded, checked). */
struct agent_hello {
	uint32_t version;
	char agent_version[64];
	char uname[256];
};
int agent_decode_hello(const void *p, size_t len, struct agent_hello *out,
		       struct error *err);
int agent_decode_exit(const void *p, size_t len, int32_t *code,
		      int32_t *sig, struct error *err);
/* i32 status/errno followed by an optional message. */
int agent_decode_status(const void *p, size_t len, int32_t *status,
			char *msg, size_t msglen, struct error *err);
/* The name of a frame type ("EXIT"), or "unknown". */
const char *agent_type_name(uint16_t type);
/* Copy at most outlen-1 bytes of guest text, replacing control chars. */
void agent_sanitize(const void *p, size_t len, char *out, size_t outlen);

#endif
