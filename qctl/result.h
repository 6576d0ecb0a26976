/* result.h - the build result (DESIGN.md "Result") */
#ifndef QCTL_RESULT_H
#define QCTL_RESULT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "util.h"

enum build_status {
	BUILD_RUNNING,
	BUILD_PASSED,
	BUILD_FAILED,
	BUILD_LIMIT,
	BUILD_ERROR,
	BUILD_CANCELLED,
};

/* Exit codes of DESIGN.md */
enum {
	EXIT_PASSED = 0,
	EXIT_STEP_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_LIMIT = 3,
	EXIT_INFRA = 4,
	EXIT_CANCELLED = 130,
};

struct step_result {
	char *name;
	bool fetch;
	bool ran;
	int exit_code;		/* -1 when killed by a signal or not run */
	int signal;		/* 0: none */
	int64_t started_ms;	/* since the build started */
	int64_t duration_ms;
};

struct artifact_result {
	char *path;
	uint64_t bytes;
	char sha256[65];
};

struct build_stats {
	int64_t wall_ms;
	int64_t boot_ms;
	int64_t cpu_usec;
	int64_t mem_peak_bytes;
	int64_t disk_written_bytes;
	int64_t net_rx_bytes;
	int64_t net_tx_bytes;
	int64_t log_bytes;
};

struct build_result {
	enum build_status status;
	char *reason;
	bool has_limit;
	char limit_name[32];
	int64_t limit_value;
	int64_t limit_max;
	char limit_unit[16];
	const char *accel;
	/* how the VM that ran the steps started: "snapshot" (from a saved
	 * state), "cold" (booted; snapshot_saved if it saved one), or NULL
	 * when none got that far */
	const char *boot;
	bool snapshot_saved;
	char *run_dir;
	struct step_result *steps;
	size_t n_steps;
	struct build_stats stats;
	struct artifact_result *artifacts;
	size_t n_artifacts;
	json_t *network;	/* array of proxy records, or NULL */
	json_t *enforcement;	/* limit name -> kernel/poll/unenforced */
	char *net_log;		/* where the JSON lines of requests went */
	/* what went to /src: {"dir": PATH}, {"git": URL, "ref": REF,
	 * "commit": HEX}, or NULL (none) */
	json_t *source;
	/* a failed build kept for shells: {max_ms, started_ms, duration_ms,
	 * ended, sessions: [...]}, or NULL (not held) */
	json_t *hold;
	/* recipe cache: {key, lookup: hit|miss, kept, reason}, or NULL */
	json_t *cache;
	/* status error because of the recipe (its git source cannot be
	 * fetched): exit code 2, not 4 */
	bool recipe_error;
};

const char *result_status_name(enum build_status s);
/* The process exit code that a status stands for. */
int result_exit_code(enum build_status s);
/* The exit code of a result: result_exit_code, but 2 for a recipe error. */
int result_exit(const struct build_result *r);
/* Set status and reason once: the first cause of an ending wins. */
bool result_finish(struct build_result *r, enum build_status s,
		   const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Record the limit that ended the build (status limit). */
void result_set_limit(struct build_result *r, const char *name,
		      int64_t value, int64_t max, const char *unit);
json_t *result_to_json(const struct build_result *r);
/* Write the JSON atomically (temp file + rename), mode 0644. */
int result_write_file(const struct build_result *r, const char *path,
		      struct error *err);
/* The same as name in directory dirfd; the temp file is created with
 * O_EXCL | O_NOFOLLOW. */
int result_write_file_at(const struct build_result *r, int dirfd,
			 const char *name, struct error *err);
void result_clear(struct build_result *r);

#endif
