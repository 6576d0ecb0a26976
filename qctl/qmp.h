/* qmp.h - non-blocking QMP client driven by the manager's event loop */
#ifndef QCTL_QMP_H
#define QCTL_QMP_H

#include <stdbool.h>
#include <stdint.h>

#include "json-util.h"
#include "util.h"

/*
 * Longest line accepted from QEMU, counting a trailing '\r' but not the
 * '\n'.  A longer line is fatal; no more than QMP_MAX_LINE + 1 bytes of an
 * unfinished line are ever buffered.  Overridable only so that the fuzz
 * target reaches the limit with small inputs.
 */
#ifndef QMP_MAX_LINE
#define QMP_MAX_LINE (1024 * 1024)
#endif

/*
 * qmp_handle_io reads at most this many bytes per call, so that a flooding
 * peer cannot starve the rest of the event loop.  The fd then stays
 * readable: use level-triggered epoll (the default), not EPOLLET.
 */
#define QMP_READ_BUDGET (4 * QMP_MAX_LINE)

/*
 * How many timed-out command ids are remembered so that their late replies
 * are dropped silently.  A late reply to an older one is a protocol error.
 */
#define QMP_MAX_TIMED_OUT 256

/* err->code of a callback that got an "error" reply from QEMU. */
#define QMP_EREMOTE EREMOTEIO

struct qmp;

/*
 * ret: the "return" member on success (borrowed, valid during the call),
 * err NULL.  On failure ret is NULL and err is set: QMP_EREMOTE with
 * "qmp CMD: CLASS: DESC" for an error reply, ETIMEDOUT, EPIPE on EOF or a
 * dead connection, EPROTO on garbage from the peer.
 * Callbacks may call qmp_execute, but must not call qmp_free,
 * qmp_handle_io or qmp_execute_sync.
 */
typedef void (*qmp_reply_fn)(struct qmp *q, json_t *ret,
			     const struct error *err, void *opaque);
/* data borrowed during the call (NULL if the event had none). */
typedef void (*qmp_event_fn)(struct qmp *q, const char *event, json_t *data,
			     void *opaque);

/*
 * Take ownership of a connected stream socket to QEMU's QMP monitor; sets
 * O_NONBLOCK and FD_CLOEXEC.  NULL (fd closed) only if fd is not open.
 * on_event may be NULL.
 */
struct qmp *qmp_new(int fd, qmp_event_fn on_event, void *opaque);
/* Close the fd and free; pending callbacks are NOT called. */
void qmp_free(struct qmp *q);
/* The socket, for the caller's epoll set. */
int qmp_fd(const struct qmp *q);
/* True while queued output waits for POLLOUT. */
bool qmp_want_write(const struct qmp *q);
/* True once the greeting arrived and qmp_capabilities succeeded. */
bool qmp_ready(const struct qmp *q);
/* True once a fatal condition killed the connection. */
bool qmp_dead(const struct qmp *q);

/*
 * Call when the fd is readable/writable (events = EPOLLIN/EPOLLOUT/EPOLLHUP/
 * EPOLLERR bits).  Reads what is available (up to QMP_READ_BUDGET bytes),
 * dispatches replies and events, flushes queued output.  Returns 0, or
 * negative on a fatal condition (EOF -> EPIPE, read/write error, a line over
 * QMP_MAX_LINE, unparseable JSON, a reply with a missing or unknown id, a
 * non-object, a failed qmp_capabilities -> EPROTO) after failing every
 * pending command through its callback with that error.  The connection is
 * then dead: this returns the same error again and qmp_execute fails with
 * EPIPE.
 */
int qmp_handle_io(struct qmp *q, uint32_t events, struct error *err);

/*
 * Queue a command; args (an object or NULL) is stolen, even on failure.
 * Commands issued before the greeting are held until it arrived and
 * qmp_capabilities (sent automatically, first) succeeded.  Every command
 * carries a unique integer "id"; replies are routed by id, never by order.
 * timeout_ms is relative to now (negative: no deadline); on expiry cb gets
 * ETIMEDOUT and a late reply for that id is dropped silently; a held command
 * that expires is never sent.  cb may be NULL (fire and forget: the reply
 * is dropped).  Returns 0, or negative (dead connection: EPIPE) without
 * calling cb.
 */
int qmp_execute(struct qmp *q, const char *cmd, json_t *args,
		int64_t timeout_ms, qmp_reply_fn cb, void *opaque,
		struct error *err);

/*
 * qmp_execute with fd passed along (SCM_RIGHTS on the command's first
 * byte), for getfd and add-fd; fd is duplicated, the caller keeps its
 * own.  Only on a ready connection with no output queued (else EBUSY).
 */
int qmp_execute_fd(struct qmp *q, const char *cmd, json_t *args, int fd,
		   int64_t timeout_ms, qmp_reply_fn cb, void *opaque,
		   struct error *err);

/* Earliest absolute deadline (now_ms() clock) of a pending command, or -1. */
int64_t qmp_next_deadline(const struct qmp *q);

/* Fail commands whose deadline is <= now with ETIMEDOUT. */
void qmp_check_timeouts(struct qmp *q, int64_t now);

/*
 * Blocking convenience for simple callers and tests: runs its own poll() on
 * the fd until the reply or the timeout; *ret gets a new reference (caller
 * decrefs) or NULL.  Events and other commands' replies received meanwhile
 * go to their callbacks as usual.  Not from inside a callback (EDEADLK).
 */
int qmp_execute_sync(struct qmp *q, const char *cmd, json_t *args,
		     int64_t timeout_ms, json_t **ret, struct error *err);

/* Words for the cause a SHUTDOWN event's data gives (QEMU's ShutdownCause). */
const char *qmp_shutdown_cause(const json_t *data);
/* Whether a VSERPORT_CHANGE event's data says the guest closed port id. */
bool qmp_vserport_closed(const json_t *data, const char *id);

#endif
