/* result.c - build result as JSON */
#include "result.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include "json-util.h"

#include "version.h"

const char *
result_status_name(enum build_status s)
{
	switch (s) {
	case BUILD_RUNNING:
		return "running";
	case BUILD_PASSED:
		return "passed";
	case BUILD_FAILED:
		return "failed";
	case BUILD_LIMIT:
		return "limit";
	case BUILD_ERROR:
		return "error";
	case BUILD_CANCELLED:
		return "cancelled";
	}
	return "error";
}

int
result_exit_code(enum build_status s)
{
	switch (s) {
	case BUILD_PASSED:
		return EXIT_PASSED;
	case BUILD_FAILED:
		return EXIT_STEP_FAILED;
	case BUILD_LIMIT:
		return EXIT_LIMIT;
	case BUILD_CANCELLED:
		return EXIT_CANCELLED;
	default:
		return EXIT_INFRA;
	}
}

int
result_exit(const struct build_result *r)
{
	if (r->status == BUILD_ERROR && r->recipe_error)
		return EXIT_USAGE;
	return result_exit_code(r->status);
}

bool
result_finish(struct build_result *r, enum build_status s, const char *fmt,
	      ...)
{
	va_list ap;

	if (r->status != BUILD_RUNNING)
		return false;
	r->status = s;
	free(r->reason);
	va_start(ap, fmt);
	if (vasprintf(&r->reason, fmt, ap) < 0)
		r->reason = NULL;
	va_end(ap);
	return true;
}

void
result_set_limit(struct build_result *r, const char *name, int64_t value,
		 int64_t max, const char *unit)
{
	r->has_limit = true;
	snprintf(r->limit_name, sizeof(r->limit_name), "%s", name);
	snprintf(r->limit_unit, sizeof(r->limit_unit), "%s", unit);
	r->limit_value = value;
	r->limit_max = max;
}

json_t *
result_to_json(const struct build_result *r)
{
	json_t *o = json_object(), *steps = json_array(), *arts = json_array();
	json_t *stats;

	json_object_set_new(o, "status",
			    json_string(result_status_name(r->status)));
	json_object_set_new(o, "exit_code",
			    json_integer(result_exit(r)));
	/* reasons quote guest and client text: always valid JSON.  Every
	 * string goes through json_string_lossy, so that no key can be
	 * lost to bytes that are not UTF-8 (json_string gives NULL). */
	json_object_set_new(o, "reason", json_string_lossy(r->reason));
	if (r->status == BUILD_LIMIT && r->has_limit)
		json_object_set_new(o, "limit",
				    json_pack("{s:o, s:I, s:I, s:o}", "name",
					      json_string_lossy(r->limit_name),
					      "value",
					      (json_int_t)r->limit_value, "max",
					      (json_int_t)r->limit_max, "unit",
					      json_string_lossy(r->limit_unit)));
	else
		json_object_set_new(o, "limit", json_null());
	json_object_set_new(o, "accel", json_string_lossy(r->accel));
	json_object_set_new(o, "boot", r->boot ? json_string(r->boot)
					       : json_null());
	json_object_set_new(o, "snapshot_saved",
			    json_boolean(r->snapshot_saved));
	json_object_set_new(o, "qctl_version", json_string(QCTL_VERSION));
	json_object_set_new(o, "source", r->source ? json_incref(r->source)
						   : json_null());
	json_object_set_new(o, "run_dir",
			    r->run_dir ? json_string_lossy(r->run_dir)
				       : json_null());
	for (size_t i = 0; i < r->n_steps; i++) {
		const struct step_result *s = &r->steps[i];
		json_t *j = json_object();

		json_object_set_new(j, "name", json_string_lossy(s->name));
		json_object_set_new(j, "network",
				    json_string(s->fetch ? "fetch" : "none"));
		json_object_set_new(j, "exit_code",
				    s->ran && s->exit_code >= 0
					    ? json_integer(s->exit_code)
					    : json_null());
		json_object_set_new(j, "signal",
				    s->signal ? json_integer(s->signal)
					      : json_null());
		json_object_set_new(j, "started_ms",
				    s->ran ? json_integer(s->started_ms)
					   : json_null());
		json_object_set_new(j, "duration_ms",
				    s->ran ? json_integer(s->duration_ms)
					   : json_null());
		json_array_append_new(steps, j);
	}
	json_object_set_new(o, "steps", steps);
	stats = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
			  "wall_ms", (json_int_t)r->stats.wall_ms, "boot_ms",
			  (json_int_t)r->stats.boot_ms, "cpu_usec",
			  (json_int_t)r->stats.cpu_usec, "mem_peak_bytes",
			  (json_int_t)r->stats.mem_peak_bytes,
			  "disk_written_bytes",
			  (json_int_t)r->stats.disk_written_bytes,
			  "net_rx_bytes", (json_int_t)r->stats.net_rx_bytes,
			  "net_tx_bytes", (json_int_t)r->stats.net_tx_bytes,
			  "log_bytes", (json_int_t)r->stats.log_bytes);
	json_object_set_new(o, "stats", stats);
	json_object_set_new(o, "network", r->network ? json_incref(r->network)
						     : json_array());
	for (size_t i = 0; i < r->n_artifacts; i++) {
		const struct artifact_result *a = &r->artifacts[i];

		json_array_append_new(arts,
				      json_pack("{s:o, s:I, s:o}", "path",
						json_string_lossy(a->path),
						"bytes", (json_int_t)a->bytes,
						"sha256",
						json_string_lossy(a->sha256)));
	}
	json_object_set_new(o, "artifacts", arts);
	json_object_set_new(o, "hold",
			    r->hold ? json_incref(r->hold) : json_null());
	if (r->enforcement)
		json_object_set(o, "enforcement", r->enforcement);
	/* only with a recipe cache: results without one stay as they were */
	if (r->cache)
		json_object_set(o, "cache", r->cache);
	return o;
}

int
result_write_file_at(const struct build_result *r, int dirfd,
		     const char *name, struct error *err)
{
	_cleanup_json_ json_t *j = result_to_json(r);
	_cleanup_free_ char *tmp = xasprintf("%s.tmp.%d", name, getpid());
	_cleanup_free_ char *text = json_dumps(j, JSON_INDENT(2));
	int fd;
	ssize_t w;

	if (!text)
		return error_set(err, ENOMEM, "cannot encode result");
	/* O_EXCL | O_NOFOLLOW: a name planted in the directory beforehand
	 * is never written through; rename then replaces a link itself. */
	fd = openat(dirfd, tmp,
		    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		    0644);
	if (fd < 0)
		return error_sys(err, errno, "create %s", tmp);
	w = write_in_full(fd, text, strlen(text));
	if (w >= 0)
		w = write_in_full(fd, "\n", 1);
	if (w < 0 || close(fd) < 0) {
		int e = w < 0 ? -w : errno;

		unlinkat(dirfd, tmp, 0);
		return error_sys(err, e, "write %s", tmp);
	}
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		int e = errno;

		unlinkat(dirfd, tmp, 0);
		return error_sys(err, e, "rename to %s", name);
	}
	return 0;
}

int
result_write_file(const struct build_result *r, const char *path,
		  struct error *err)
{
	_cleanup_free_ char *dir = xstrdup(path);
	char *slash = strrchr(dir, '/');
	const char *name = path;
	_cleanup_close_ int dfd = -1;
	int rc;

	/* the user's own choice of place: its directory is taken as is */
	if (slash) {
		*slash = '\0';
		name = slash + 1;
		dfd = open(slash == dir ? "/" : dir,
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			return error_sys(err, errno, "open %s", dir);
	}
	rc = result_write_file_at(r, slash ? dfd : AT_FDCWD, name, err);
	if (rc < 0)
		error_prefix(err, "%s", path);
	return rc;
}

void
result_clear(struct build_result *r)
{
	for (size_t i = 0; i < r->n_steps; i++)
		free(r->steps[i].name);
	for (size_t i = 0; i < r->n_artifacts; i++)
		free(r->artifacts[i].path);
	free(r->steps);
	free(r->artifacts);
	free(r->reason);
	free(r->run_dir);
	json_decref(r->network);
	json_decref(r->enforcement);
	json_decref(r->source);
	json_decref(r->hold);
	json_decref(r->cache);
	free(r->net_log);
	memset(r, 0, sizeof(*r));
}
