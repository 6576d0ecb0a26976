/*
 * agent.h - internals of guestagent shared between its files.
 *
 * guestagent is PID 1 of the minimal image (init.c), talks to the host over
 * one virtio-serial port (port.c) and runs the host's jobs (job.c) from a
 * single poll() loop (main.c).  It links nothing but libc and must not
 * depend on qctl/util.c, so the few helpers it needs live in misc.c.
 */
#ifndef GA_AGENT_H
#define GA_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/types.h>

#include "agent-proto.h"

#ifndef QCTL_VERSION
#define QCTL_VERSION "0.1"
#endif

/* Largest read from a child pipe, so one read makes at most one frame. */
#define GA_READ_CHUNK (32u * 1024)
/* Above this much output queued, stop reading children and the port. */
#define GA_OUTQ_HIGH (1024u * 1024)
/* Stop reading the port while a job has more than this stdin unwritten
 * (FILE_IN's DATA, an EXEC's STDIN). */
#define GA_STDIN_HIGH (256u * 1024)
/* Concurrent jobs (EXEC, FILE_IN, FILE_OUT together). */
#define GA_MAX_JOBS 64
/* Bytes of a tar's stderr kept for the FILE_DONE message. */
#define GA_ERRTEXT_MAX 4000u
/* Longest wait for the agent's port to appear at boot. */
#define GA_PORT_WAIT_MS 10000

/* identity.c ------------------------------------------------------------ */

struct ga_identity;
/* Reseed the RNG, set the clock and hostname; 0 or -errno with msg. */
int ga_identity_apply(const struct ga_identity *id, char *msg, size_t len);

/* misc.c ---------------------------------------------------------------- */

/* A byte queue: data[off..len) is pending. */
struct ga_buf {
	unsigned char *data;
	size_t off;
	size_t len;
	size_t cap;
};

/* Print "guestagent: ..." to stderr (the console when PID 1). */
void ga_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Log, then power off when PID 1 (never exit: that panics) or exit(1). */
_Noreturn void ga_fatal(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
/* malloc/realloc that call ga_fatal instead of returning NULL. */
void *ga_malloc(size_t n);
void *ga_realloc(void *p, size_t n);
/* Append n bytes to b. */
void ga_buf_add(struct ga_buf *b, const void *src, size_t n);
/* Bytes pending in b. */
size_t ga_buf_used(const struct ga_buf *b);
/* Drop n pending bytes from the front of b. */
void ga_buf_drop(struct ga_buf *b, size_t n);
/* Release b's memory. */
void ga_buf_free(struct ga_buf *b);
/* Set O_NONBLOCK on fd; 0 or -errno. */
int ga_set_nonblock(int fd);
/* mkdir -p with mode 0755; 0 or -errno. */
int ga_mkdir_p(const char *path);
/* Monotonic milliseconds. */
int64_t ga_now_ms(void);

/* init.c ---------------------------------------------------------------- */

/* PID-1 setup: mounts, console, hostname, loopback, kernel modules. */
void init_system(void);
/* Kill everything, sync and power off; never returns. */
_Noreturn void init_poweroff(void);

/* root.c ---------------------------------------------------------------- */
/* virtio-blk serials the manager gives the image's base and the scratch */
#define GA_ROOT_SERIAL "qctl-root"
#define GA_SCRATCH_SERIAL "scratch"
/* the initramfs's busybox as the image's root sees it */
#define GA_ROOT_BUSYBOX "/run/qctl/busybox"
/* "qctl.root" is on the kernel command line: the image has a root disk. */
bool root_wanted(void);
/* Overlay the root disk with the scratch disk and make it the root. */
int root_switch(void);
/* the image's own init, for images whose transport is ssh */
#define GA_SSH_INIT "/usr/local/sbin/qctl-ssh-init"
/* "qctl.ssh" is on the kernel command line: hand PID 1 to GA_SSH_INIT. */
bool root_handoff_wanted(void);
/* Exec GA_SSH_INIT as PID 1 (in the image's root); returns only on error. */
int root_handoff(void);

/* port.c ---------------------------------------------------------------- */

struct ga_port {
	int fd;
	bool connected;	   /* host end open (no POLLHUP) */
	struct ga_buf in;  /* received bytes not yet parsed into frames */
	struct ga_buf out; /* encoded frames not yet written */
};

/* Find the device node of the port named name, waiting up to timeout_ms. */
int port_find(const char *name, int timeout_ms, char *path, size_t size);
/* Open the port at path non-blocking; 0 or -errno. */
int port_open(struct ga_port *p, const char *path);
/* Queue one frame; the payload is the concatenation of two parts. */
void port_send2(struct ga_port *p, uint16_t type, uint32_t id, const void *a,
		size_t alen, const void *b, size_t blen);
/* Queue one frame with a single payload part. */
void port_send(struct ga_port *p, uint16_t type, uint32_t id,
	       const void *payload, size_t len);
/* Queue an ERROR frame (i32 errno, message). */
void port_send_error(struct ga_port *p, uint32_t id, int err, const char *fmt,
		     ...) __attribute__((format(printf, 4, 5)));
/* Queue a FILE_DONE frame (i32 status, message). */
void port_send_done(struct ga_port *p, uint32_t id, int status,
		    const char *msg);
/* Write queued frames without blocking; 0, or -errno on a real error. */
int port_flush(struct ga_port *p);
/* Write queued frames, blocking up to timeout_ms (used before power off). */
void port_flush_wait(struct ga_port *p, int timeout_ms);
/* Whether the output queue is above GA_OUTQ_HIGH. */
bool port_congested(const struct ga_port *p);
/*
 * Read what the port holds into p->in; 1 if bytes arrived, 0 on
 * EAGAIN, -1 when the host end is closed.
 */
int port_read(struct ga_port *p);
/* Forget queued input and output (the host went away). */
void port_reset(struct ga_port *p);

/* job.c ----------------------------------------------------------------- */

/* Handle EXEC; replies STARTED or ERROR. */
void job_exec(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Handle FILE_IN; DATA/DATA_END for id follow. */
void job_file_in(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Handle DATA for a FILE_IN id. */
void job_data(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Handle DATA_END for a FILE_IN id. */
void job_data_end(struct ga_port *p, uint32_t id);
/* Handle FILE_OUT; replies DATA..., FILE_DONE. */
void job_file_out(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Handle SIGNAL. */
void job_signal(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Handle STDIN for an EXEC with AGENT_EXEC_STDIN or AGENT_EXEC_PTY. */
void job_stdin(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Handle STDIN_END (len is its payload length, which must be 0). */
void job_stdin_end(struct ga_port *p, uint32_t id, size_t len);
/* Handle WINSIZE for an EXEC with AGENT_EXEC_PTY. */
void job_winsize(struct ga_port *p, uint32_t id, const void *pl, size_t len);
/* Whether some job (FILE_IN, or EXEC with stdin) holds more than
 * GA_STDIN_HIGH bytes not yet written to its child. */
bool job_stdin_congested(void);
/* Append pollfds for job pipes to fds; returns the new count. */
size_t job_poll_fill(struct ga_port *p, struct pollfd *fds, size_t n,
		     size_t cap);
/* Service job pipes after poll() for fds[first..n). */
void job_poll_handle(struct ga_port *p, const struct pollfd *fds, size_t first,
		     size_t n);
/* A child was reaped with the given wait status. */
void job_reaped(struct ga_port *p, pid_t pid, int status);
/* Kill every job's process group and forget the jobs (host went away). */
void job_kill_all(void);
/* Number of live jobs. */
size_t job_count(void);

#endif
