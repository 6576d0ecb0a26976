/*
 * build-int.h - what the files of the build engine share: struct build,
 * its phases and limits, and the calls they make across each other.
 *
 * Private: only build.c and its parts (build-output.c, build-net.c,
 * build-sample.c, build-disk.c) include it; the API is build.h.
 */
#ifndef QCTL_BUILD_INT_H
#define QCTL_BUILD_INT_H

#include "build.h"

#include "agent.h"
#include "cgroup.h"
#include "image.h"
#include "limit.h"
#include "netns.h"
#include "peer.h"
#include "util.h"
#include "vm.h"

struct nf_client;
struct proxy;
struct build_cache;
struct qmp;
struct snapshot;
struct state_rec;

/* ids of agent operations; steps use STEP_ID_BASE + index */
enum { UPLOAD_ID = 1, ARTIFACTS_ID = 2, SETUP_ID = 3, CACHE_ID = 4,
       STEP_ID_BASE = 100 };
/* shells of a held build use SHELL_ID_BASE + session (build-hold.c);
 * above every step's id (a recipe has at most a few thousand steps) */
#define SHELL_ID_BASE 0x40000000u
/* sessions open at once in one held build (the agent runs 64 jobs) */
#define BUILD_SHELLS_MAX 8
/* sessions in all, over one hold (each is remembered until the end) */
#define BUILD_SHELLS_TOTAL 256

#define TICK_MS 250
#define QMP_TIMEOUT_MS 10000
#define POWEROFF_GRACE_MS 5000
#define QUIT_GRACE_MS 2000
/* After the guest closed the agent's port: time for a SHUTDOWN to name
 * the cause (a power off or reset closes it a moment before). */
#define AGENT_CLOSED_GRACE_MS 2000
#define UPLOAD_WINDOW (512u * 1024)
#define CONSOLE_LOG_MAX (1u << 20)
/* qctl's own setup command says little; more is a broken guest. */
#define SETUP_OUTPUT_MAX (16u * 1024)
#define LINE_MAX_BYTES 4096
/* The artifacts tar may carry headers and padding beyond the payload. */
#define ARTIFACT_TAR_SLACK (16u << 20)

enum phase {
	PH_INIT,
	PH_BOOT,
	PH_SETUP,
	PH_UPLOAD,
	PH_CACHE,	/* the cache is sealed (build-cache.c) */
	PH_STEP,
	PH_HOLD,	/* a step failed: the VM is kept for shells */
	PH_ARTIFACTS,
	PH_SHUTDOWN,
	PH_DONE,
};

/* where a build is with its snapshot (build-snap.c) */
enum snap_mode {
	SNAP_NONE,	/* a cold boot, nothing saved */
	SNAP_RESTORE,	/* started from a snapshot: IDENTITY, then HELLO */
	SNAP_SAVE,	/* a cold boot that saves at HELLO */
	SNAP_SAVING,	/* migrating to the file */
	SNAP_SAVED,	/* saved (or gave up): IDENTITY, then HELLO */
	SNAP_DONE,	/* the agent took its identity */
};

struct build {
	struct loop *loop;
	const struct recipe *recipe;
	struct build_opts opts;
	int cpus;		/* the recipe's, or else the image's */
	uint64_t memory;
	char **allow;		/* the recipe's, image:NAME expanded */
	size_t n_allow;
	build_done_fn done;
	void *opaque;

	struct image img;
	char *run_dir;
	char *artifacts_dir;
	/* Every file of the build is created under dir_fd (rundir.h). */
	int root_fd;		/* the checked run root */
	int dir_fd;		/* the run directory */
	int log_fd;
	int console_log_fd;
	int qemu_log_fd;
	uint64_t console_bytes;

	struct vm vm;
	struct qmp *qmp;
	struct agent_conn agent;
	bool agent_up;
	struct loop_watch *w_pid, *w_qmp, *w_agent, *w_console;
	struct loop_timer *t_phase, *t_wall, *t_tick;
	struct loop_timer *t_closed;	/* the agent's port closed */

	enum phase phase;
	int boot_attempt;
	/* the snapshot this VM starts from or makes (build-snap.c) */
	enum snap_mode snap_mode;
	struct snapshot *snap;
	bool identity_sent;
	int64_t snap_t0;
	struct loop_timer *t_snap;	/* polls the migration */
	int64_t t0, vm_t0;
	size_t step;
	int64_t step_t0;
	int upload_fd;		/* the packer's tar stream */
	bool upload_done;	/* DATA_END sent */
	bool upload_eof;	/* the stream ended */
	int64_t xfer_seen;	/* last progress of the upload, artifacts */
	struct peer_child packer;	/* packs the source, as its owner */
	struct loop_watch *w_upload, *w_packer;
	struct gitsrc *git;	/* a git source's fetch and checkout */
	int disk_fd;
	char *disk_path;
	/* mkfs.ext4 making the scratch disk: a child watched by the loop */
	pid_t mkfs_pid;
	int mkfs_pidfd;
	struct loop_watch *w_mkfs;
	int art_fd;
	uint64_t art_bytes;
	struct buf line[2];
	bool killing;
	int shutdown_stage;
	bool job_started;	/* STARTED came for the EXEC (setup, step) */
	uint64_t setup_out;	/* bytes of output of the setup EXEC */
	char setup_last[512];	/* its last output, for the error */

	/* resources: the VM's cgroup where there is one, /proc otherwise */
	struct cgroup cg;
	bool cg_up;
	struct limit_set lim;
	struct limit_plan plan;
	bool said_plan;

	/* network: only for recipes with a fetch step */
	bool net;
	struct netns ns;
	struct nf_client *nf;
	struct proxy *proxy;
	struct loop_watch *w_nf, *w_proxy;
	struct loop_timer *t_proxy;	/* deadline of the proxy's "ready" */
	bool window_open;
	int net_log_fd;
	unsigned ticks;

	/* the ssh transport (build-ssh.c): the image's "transport": "ssh" */
	bool ssh;
	char *ssh_host_pub;	/* the build's host key: base64 public blob */
	char *ssh_client_key;	/* the bridge's login key: OpenSSH PEM */
	pid_t bridge_pid;	/* qctl-sshbridge of this boot, or -1 */
	int bridge_fd;		/* its socket: the agent channel */

	/* held after a failed step (build-hold.c) */
	int64_t hold_t0, hold_until;
	struct loop_timer *t_hold;
	struct build_shell *shells;
	unsigned n_shells_live, next_sid;
	bool hold_ending;	/* build_hold_end/release under way */

	struct build_cache *cache;	/* recipe cache:, or NULL */

	struct state_rec *state;
	bool paused;
	bool tty;		/* opts.out is a terminal: live status line */
	bool status_shown;

	struct build_result res;
};

/* build.c: the state machine */

/* Milliseconds since the build started. */
int64_t build_since_start(const struct build *b);
/* End the build with status s (the first cause wins) and tear down. */
void build_fail(struct build *b, enum build_status s, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Record, say and emit the limit exceeded, then fail with BUILD_LIMIT. */
void build_limit_exceeded(struct build *b, const char *name, int64_t value,
			  int64_t max, const char *unit, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* No deadline of the current phase runs on. */
void build_cancel_phase_timer(struct build *b);
/* The end: VM, network and upload released, result final, done called. */
void build_finalize(struct build *b);
/* The scratch disk is made: start QEMU and wait for the agent's HELLO. */
int build_boot_qemu(struct build *b, struct error *err);
/* The environment of step s with or without the fetch network. */
char **build_step_env(struct build *b, const struct recipe_step *s,
		      bool fetch, size_t *n);
void build_free_env(char **env, size_t n);
/* Collect the artifacts (if any), then shut down. */
void build_start_artifacts(struct build *b);
/* The agent's fd wants writing: watch for it. */
void build_update_watches(struct build *b);

/* build-snap.c: snapshot starts */

/* Before QEMU starts: a state to start from (*incoming_fd, or -1), or
 * one to save at HELLO; nothing if the build or image does not allow. */
int build_snap_prepare(struct build *b, const struct qemu_config *cfg,
		       int tap_fd, int *incoming_fd);
/* QMP's RESUME: a VM from a snapshot gets its identity now. */
void build_snap_resumed(struct build *b);
/* A HELLO of agent protocol version: true if the snapshot took it (a
 * save started, or the build failed), false to go on with the build. */
bool build_snap_hello(struct build *b, unsigned version);
/* Booting from a snapshot, before the agent took its identity. */
bool build_snap_restoring(const struct build *b);
/* The boot failed: true if it was from a snapshot (now removed). */
bool build_snap_boot_failed(struct build *b);
void build_snap_free(struct build *b);

/* build-hold.c: a failed build kept for shells */

/* A step failed and the build has a hold: enter PH_HOLD. */
void build_hold_start(struct build *b);
/* The build ends while held or after: sessions told, timer gone. */
void build_hold_release(struct build *b, const char *why);
/* A frame for a shell's id (SHELL_ID_BASE and above). */
int build_shell_frame(struct build *b, const struct agent_hdr *h,
		      const void *p, struct error *err);

/* build-output.c: messages, the status line, step output, the console */

/* Progress for the user: on opts.out at verbosity >= level, and the log. */
void build_say(struct build *b, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Wipe the live status line before anything else is printed. */
void build_statusline_clear(struct build *b);
/* One compact line, redrawn in place: step, time and resource use. */
void build_statusline_draw(struct build *b);
/* An event for opts.event; takes data's reference. */
void build_emit(struct build *b, const char *event, json_t *data);
/* Write out the step's unfinished lines of stdout and stderr. */
void build_flush_lines(struct build *b);
/* The running step's output (stream 1: stderr); log_bytes bounds it. */
void build_step_output(struct build *b, int stream, const char *p, size_t n);
/* Loop callback of the VM's console: into console.log, capped. */
void build_on_console(struct loop *l, int fd, uint32_t events, void *opaque);

/* build-net.c: the network of a recipe with a fetch step */

/* Namespace, nftables helper and proxy; the window stays closed. */
int build_net_start(struct build *b, struct error *err);
/* Stop the proxy and the helper, remove the namespace. */
void build_net_stop(struct build *b);
/* Guest and proxy byte counts; ends the build past net_bytes. */
void build_net_sample(struct build *b);
/* Open the network for the fetch step named step, or close it. */
int build_net_window(struct build *b, bool open, const char *step,
		     struct error *err);

/* build-ssh.c: the ssh transport */

/* The build's keys, and RUNDIR/ssh-seed for its scratch disk. */
int build_ssh_prepare(struct build *b, struct error *err);
/* Where mkfs.ext4 -d finds the files the guest gets (malloc'd). */
char *build_ssh_seed_path(const struct build *b);
/* Start the bridge for this boot; its socket is b->bridge_fd. */
int build_ssh_start(struct build *b, struct error *err);
/* Kill and reap the bridge, close its socket. */
void build_ssh_stop(struct build *b);
/* build_ssh_stop, and the keys forgotten. */
void build_ssh_free(struct build *b);

/* build-sample.c: resource use and limits */

/* Sample QEMU's use; end the build on the first limit it exceeds. */
void build_res_sample(struct build *b);
/* Where the VM's cgroup is, and how each limit will be enforced. */
void build_res_prepare(struct build *b, struct vm_confine *confine);
/* QMP callback of query-blockstats: the bytes the guest wrote to disk. */
void build_on_blockstats(struct qmp *q, json_t *ret, const struct error *err,
			 void *opaque);

/* build-disk.c: the scratch disk */

/* Make a fresh scratch disk; build_boot_qemu follows when it is made. */
int build_disk_start(struct build *b, struct error *err);
/* Kill and reap mkfs.ext4 if it runs (synchronously: teardown, free). */
void build_mkfs_stop(struct build *b);

/* build-cache.c: the dependency cache */

/* The build's copy of its key's image (or an empty one): nothing to do
 * without a cache: in the recipe. */
int build_cache_start(struct build *b, struct error *err);
/* The copy's fd for QEMU, or -1. */
int build_cache_disk_fd(const struct build *b);
/* How many steps fetch (they come first). */
size_t build_cache_fetches(const struct build *b);
/* What the setup command adds: mount and binds (malloc'd; "" without). */
char *build_cache_setup_text(struct build *b);
/* Before step i: true when the seal EXEC went out instead. */
bool build_cache_before_step(struct build *b, size_t i);
void build_cache_on_timeout(struct loop *l, void *opaque);
/* The seal EXEC exited: the copy is taken, then cont(b, the next step). */
typedef void (*build_step_fn)(struct build *b, size_t i);
void build_cache_sealed(struct build *b, int32_t code, int32_t sig,
			build_step_fn cont);
/* The end: keep the sealed copy only if the build passed; evict. */
void build_cache_end(struct build *b);
void build_cache_free(struct build *b);

#endif
