/* build.h - the build engine: one recipe, one VM, driven by the event loop */
#ifndef QCTL_BUILD_H
#define QCTL_BUILD_H

#include <stdbool.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/types.h>

#include "loop.h"
#include "qemu-argv.h"
#include "recipe.h"
#include "result.h"
#include "uidpool.h"

struct build;
struct image;
struct peer_creds;

/* An event of a build (STEP_STARTED, STEP_FINISHED, NET_WINDOW,
 * LIMIT_EXCEEDED); data is borrowed for the call. */
typedef void (*build_event_fn)(struct build *b, const char *event,
			       json_t *data, void *opaque);

struct build_opts {
	enum accel accel;		/* resolved: KVM or TCG */
	const char *machine;		/* NULL: q35 */
	const char *qemu_binary;	/* NULL: qemu-system-x86_64 */
	const char *image;		/* overrides the recipe's image */
	const char *source;		/* overrides the recipe's source */
	/* the rights to read the source with; NULL: ours */
	const struct peer_creds *creds;
	/* an image opened already (a client's); overrides image */
	const struct image *image_pre;
	/* ceilings for what an image's defaults may ask (0: none); a
	 * recipe's own cpus and memory were checked when submitted */
	int max_cpus;
	uint64_t max_memory;
	const char *artifacts_dir;	/* NULL: RUNDIR/artifacts */
	const char *run_root;		/* parent of run directories */
	const char *state_dir;		/* crash-recovery records; NULL none */
	struct uid_range uids;		/* QEMU's uids; count 0: default */
	bool keep;			/* keep the run directory */
	int verbosity;			/* 0 quiet, 1 normal, 2 verbose */
	FILE *out;			/* step output and progress */
	build_event_fn event;		/* may be NULL */
	void *event_opaque;
	/* keep the VM this long after a failed step, for shells in it
	 * (build_shell_open); 0: no hold */
	int64_t hold_ms;
	/* hold after the last step passed too (a recipe's hold) */
	bool hold_always;
	/* a recipe's cache: the submitter's uid names its namespace */
	uid_t cache_ns;
	uint64_t cache_max;		/* all images; 0: CACHE_MAX_DEFAULT */
	const char *cache_dir;		/* NULL: STATE_DIR/cache */
	/* always boot cold: no snapshot used or saved (docs/snapshots.md;
	 * snapshots live under state_dir, none without one) */
	bool no_snapshots;
};
typedef void (*build_done_fn)(struct build *b, void *opaque);

/* A build of recipe (borrowed; must outlive the build). */
struct build *build_new(struct loop *loop, const struct recipe *recipe,
			const struct build_opts *opts, build_done_fn done,
			void *opaque);
/* Make the run directory and boot the VM; done is called when it ends. */
int build_start(struct build *b, struct error *err);
/*
 * End the build as cancelled (exit 130); the VM is torn down.  done may be
 * called from inside this call (when no VM is left to wait for): it must
 * not free the build there.
 */
void build_cancel(struct build *b, const char *why);
/* The result: final once done was called. */
struct build_result *build_result(struct build *b);
const char *build_run_dir(const struct build *b);
/* Pause (true) or resume the VM's vCPUs; timers keep running. */
int build_pause(struct build *b, bool pause, struct error *err);
/* The running step's name, or NULL. */
const char *build_current_step(const struct build *b);
/* QEMU's pid while it runs, else -1. */
int build_qemu_pid(const struct build *b);
/*
 * A held build (a step failed, opts.hold_ms): shells in its VM, in /src
 * with the failed step's environment and the network closed.
 */
bool build_held(const struct build *b);
int64_t build_hold_left_ms(const struct build *b);
/* End the hold now: sessions end with why; the build goes on to its
 * artifacts and its end, with the failed step's result. */
void build_hold_end(struct build *b, const char *why);

struct build_shell_req {
	const char *command;	/* NULL: an interactive shell */
	bool pty;		/* on a pseudo-terminal */
	const char *term;	/* TERM with pty; NULL: xterm */
	unsigned rows, cols;	/* with pty; 0: the agent's 24x80 */
	const char *who;	/* for the record: a key, "terminal" */
};
struct build_shell_ops {
	/* output: stream 1 (stdout, or the terminal) or 2 (stderr) */
	void (*output)(void *opaque, int stream, const void *p, size_t n);
	/* the end: exit code, or code -1 and sig; why is NULL for an exit,
	 * else the reason (could not start, the hold ended, the build) */
	void (*ended)(void *opaque, int code, int sig, const char *why);
};
/* Open a session: *sid names it to the calls below. */
int build_shell_open(struct build *b, const struct build_shell_req *req,
		     const struct build_shell_ops *ops, void *opaque,
		     unsigned *sid, struct error *err);
int build_shell_input(struct build *b, unsigned sid, const void *p,
		      size_t n, struct error *err);
int build_shell_eof(struct build *b, unsigned sid, struct error *err);
int build_shell_winsize(struct build *b, unsigned sid, unsigned rows,
			unsigned cols, struct error *err);
int build_shell_signal(struct build *b, unsigned sid, int signo,
		       struct error *err);
/* The owner is gone: the session's job is killed, ended is not called. */
void build_shell_close(struct build *b, unsigned sid);

/* Release everything; removes the run directory unless opts.keep. */
void build_free(struct build *b);

#endif
