/* serve.h - qctl serve's scheduler: builds submitted over the control socket */
#ifndef QCTL_SERVE_H
#define QCTL_SERVE_H

#include <stdbool.h>
#include <stdio.h>

#include "build.h"
#include "control.h"

/*
 * The build engine's entry points (build.h), as a table so that the unit
 * tests can put a fake engine behind the scheduler and run it without VMs.
 */
struct serve_backend {
	struct build *(*new)(struct loop *loop, const struct recipe *recipe,
			     const struct build_opts *opts,
			     build_done_fn done, void *opaque);
	int (*start)(struct build *b, struct error *err);
	void (*cancel)(struct build *b, const char *why);
	struct build_result *(*result)(struct build *b);
	const char *(*run_dir)(const struct build *b);
	int (*pause)(struct build *b, bool pause, struct error *err);
	const char *(*current_step)(const struct build *b);
	int (*qemu_pid)(const struct build *b);
	void (*free)(struct build *b);
	/* shells in held builds (ssh); NULL: the engine holds nothing */
	bool (*held)(const struct build *b);
	int (*shell_open)(struct build *b, const struct build_shell_req *req,
			  const struct build_shell_ops *ops, void *opaque,
			  unsigned *sid, struct error *err);
	int (*shell_input)(struct build *b, unsigned sid, const void *p,
			   size_t n, struct error *err);
	int (*shell_eof)(struct build *b, unsigned sid, struct error *err);
	int (*shell_winsize)(struct build *b, unsigned sid, unsigned rows,
			     unsigned cols, struct error *err);
	void (*shell_close)(struct build *b, unsigned sid);
	/* end a hold now (build-release); NULL with held */
	void (*hold_end)(struct build *b, const char *why);
};

/* build.c: real VMs */
extern const struct serve_backend serve_engine;

#define SERVE_KEEP_FINISHED 16	/* finished builds remembered */
#define SERVE_MAX_QUEUED 1000	/* builds waiting for a slot */
#define SERVE_SHUTDOWN_MS 30000 /* cancelled builds get this long to end */

struct serve_opts {
	int max_parallel;	/* builds at once; <= 0: online CPUs */
	int keep_finished;	/* <= 0: SERVE_KEEP_FINISHED */
	bool allow_quit;	/* honour the quit command */
	bool keep_runs;		/* run directories outlive their builds */
	/* ceilings of what a client may ask for; 0: none */
	int max_cpus;
	uint64_t max_memory;
	uint64_t max_disk;
	int64_t max_wall_time_ms;
	/* Every build's engine options: accel, machine, qemu_binary,
	 * run_root, state_dir, verbosity.  keep, source, out and event are
	 * set per build. */
	struct build_opts build;
	FILE *log;		/* one line per client and build; NULL: none */
	bool progress;		/* each build's progress to log, "[b1] ..." */
	const struct serve_backend *backend; /* NULL: serve_engine */
	struct ctl_opts ctl;	/* socket limits (log: as above) */
	/* ssh into held builds: qctl-sshd serves listen_fd (docs/ssh.md) */
	struct serve_ssh_opts {
		bool on;
		int listen_fd;		/* made by the caller, stays its */
		const char *where;	/* ADDR:PORT, for the log */
		const char *sshd_path;	/* NULL: qctl-sshd beside qctl */
		char **hostkeys;	/* private key texts */
		size_t n_hostkeys;
		char **keys;		/* the operator's public keys: any */
		size_t n_keys;		/* held build */
		int64_t max_hold_ms;	/* the longest hold a recipe gets */
	} ssh;
};

/* --max-hold's default: a failed build is kept at most this long. */
#define SERVE_MAX_HOLD_DEFAULT_MS (30 * 60 * 1000)

struct serve;

/* A scheduler with its control server (not listening yet). */
struct serve *serve_new(struct loop *loop, const struct serve_opts *o);
/* Its control server: listen on it, or add clients (tests). */
struct ctl *serve_ctl(struct serve *s);
/*
 * Stop: no more clients or submissions; queued builds end cancelled,
 * running ones are cancelled.  loop_quit(loop, 0) once every build has
 * ended (or SERVE_SHUTDOWN_MS passed).  The quit command calls this.
 */
void serve_shutdown(struct serve *s, const char *why);
/*
 * Start qctl-sshd on o.ssh.listen_fd if o.ssh.on: it says ready (the log
 * says "ssh: serving on ...") or is given up on after 10 s; the builds
 * go on either way.
 */
int serve_ssh_start(struct serve *s, struct error *err);
/* Builds queued and running. */
int serve_n_active(const struct serve *s);
/* Free everything: builds still running are killed, run dirs removed. */
void serve_free(struct serve *s);

#endif
