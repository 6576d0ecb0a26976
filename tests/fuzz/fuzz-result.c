/*
 * fuzz-result.c - libFuzzer target: the result JSON writer
 * (result_to_json) fed arbitrary results.
 *
 * The input is read as a recipe for one struct build_result: strings of
 * any bytes (not UTF-8, controls, empty, missing), any numbers, any
 * status (and one past the last), up to 8 steps and 8 artifacts, proxy
 * records, an enforcement map.  The writer must always give the complete
 * object of DESIGN.md "Result": every key, valid JSON that jansson loads
 * back as the same value, strings that are the struct's own when they
 * were valid UTF-8 (else the same length, the bad bytes as '?'), numbers
 * exactly as they were.  result_clear must free all of it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "result.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_ITEMS 8

struct src {
	const uint8_t *p;
	size_t n;
};

static uint8_t
u8(struct src *s)
{
	if (!s->n)
		return 0;
	s->n--;
	return *s->p++;
}

static uint64_t
u64(struct src *s)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | u8(s);
	return v;
}

/* Small values mostly, then the raw and the extreme ones. */
static int64_t
i64(struct src *s)
{
	uint8_t t = u8(s);

	switch (t & 3) {
	case 0:
		return t >> 2;
	case 1:
		return -(int64_t)(t >> 2);
	case 2:
		return (int64_t)u64(s);
	default:
		return (t >> 2) & 1 ? INT64_MAX : INT64_MIN;
	}
}

/* A length byte (0xff: NULL), then that many bytes of any value. */
static char *
str(struct src *s)
{
	uint8_t len = u8(s);
	char *out;

	if (len == 0xff)
		return NULL;
	if (len > s->n)
		len = s->n;
	out = malloc(len + 1);
	memcpy(out, s->p, len);
	out[len] = '\0';
	s->p += len;
	s->n -= len;
	return out;
}

/* As the proxy decoder passes them on: printable ASCII. */
static char *
text(struct src *s)
{
	char *t = str(s);

	if (!t)
		return strdup("");
	for (char *c = t; *c; c++)
		if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
			*c = '?';
	return t;
}

static void
build(struct src *s, struct build_result *r, char **accel)
{
	static const char *const enforce[] = { "kernel", "poll",
					       "unenforced" };
	uint8_t flags = u8(s), n;

	r->status = (enum build_status)(u8(s) % (BUILD_CANCELLED + 2));
	r->reason = str(s);
	if (flags & 1) {
		char *name = str(s), *unit = str(s);
		int64_t value = i64(s), max = i64(s);

		/* truncated to the struct's arrays, maybe mid-character */
		result_set_limit(r, name ? name : "", value, max,
				 unit ? unit : "");
		free(name);
		free(unit);
	}
	if (flags & 2)
		r->accel = *accel = str(s);
	else
		r->accel = flags & 4 ? "tcg" : NULL;
	/* how the VM started: none, cold (maybe saving), a snapshot (the
	 * two bits no other field uses) */
	r->boot = flags & 64 ? "snapshot" : flags & 128 ? "cold" : NULL;
	r->snapshot_saved = (flags & 192) == 128;
	r->run_dir = str(s);
	n = u8(s) % (MAX_ITEMS + 1);
	r->steps = calloc(n ? n : 1, sizeof(*r->steps));
	for (r->n_steps = 0; r->n_steps < n; r->n_steps++) {
		struct step_result *st = &r->steps[r->n_steps];
		uint8_t f = u8(s);

		st->name = str(s);
		st->fetch = f & 1;
		st->ran = f & 2;
		st->exit_code = (int)i64(s);
		st->signal = (int)i64(s);
		st->started_ms = i64(s);
		st->duration_ms = i64(s);
	}
	/* one by one: the order of an initializer list's is unspecified */
	r->stats.wall_ms = i64(s);
	r->stats.boot_ms = i64(s);
	r->stats.cpu_usec = i64(s);
	r->stats.mem_peak_bytes = i64(s);
	r->stats.disk_written_bytes = i64(s);
	r->stats.net_rx_bytes = i64(s);
	r->stats.net_tx_bytes = i64(s);
	r->stats.log_bytes = i64(s);
	n = u8(s) % (MAX_ITEMS + 1);
	r->artifacts = calloc(n ? n : 1, sizeof(*r->artifacts));
	for (r->n_artifacts = 0; r->n_artifacts < n; r->n_artifacts++) {
		struct artifact_result *a = &r->artifacts[r->n_artifacts];

		a->path = str(s);
		/* a file's size: an off_t, never past INT64_MAX */
		a->bytes = u64(s) & INT64_MAX;
		for (int i = 0; i < 64; i++)
			a->sha256[i] = (char)u8(s);
		a->sha256[64] = '\0';
	}
	if (flags & 8) {
		r->network = json_array();
		n = u8(s) % (MAX_ITEMS + 1);
		for (uint8_t i = 0; i < n; i++) {
			char *method = text(s), *host = text(s),
			     *reason = text(s);
			struct proxy_record rec = {
				.step = i & 1 ? "deps" : NULL,
				.method = method, .host = host,
				.allowed = i & 2, .reason = reason,
			};

			rec.port = (uint16_t)u64(s);
			rec.bytes_up = u64(s) & INT64_MAX;
			rec.bytes_down = u64(s) & INT64_MAX;

			json_array_append_new(r->network,
					      proxy_record_to_json(&rec));
			free(method);
			free(host);
			free(reason);
		}
	}
	if (flags & 16) {
		r->enforcement = json_object();
		n = u8(s) % (MAX_ITEMS + 1);
		for (uint8_t i = 0; i < n; i++) {
			char *k = text(s);

			json_object_set_new(r->enforcement, k,
					    json_string(enforce[u8(s) % 3]));
			free(k);
		}
	}
	if (flags & 32)
		r->net_log = str(s);
}

/* j is s as result_to_json must write a guest's or client's text. */
static void
check_text(json_t *j, const char *s)
{
	json_t *valid;
	const char *v = json_string_value(j);

	check(v != NULL);
	if (!s) {
		check(v[0] == '\0');
		return;
	}
	check(json_string_length(j) == strlen(s) && strlen(v) == strlen(s));
	valid = json_string(s);
	if (valid)
		check(!strcmp(v, s));
	else
		for (size_t i = 0; s[i]; i++)
			check(v[i] == s[i] || v[i] == '?');
	json_decref(valid);
}

static void
check_int(json_t *j, int64_t v)
{
	check(json_is_integer(j) && json_integer_value(j) == v);
}

static void
check_result(const struct build_result *r, json_t *o)
{
	static const char *const stat_keys[] = {
		"wall_ms", "boot_ms", "cpu_usec", "mem_peak_bytes",
		"disk_written_bytes", "net_rx_bytes", "net_tx_bytes",
		"log_bytes"
	};
	const int64_t stats[] = {
		r->stats.wall_ms, r->stats.boot_ms, r->stats.cpu_usec,
		r->stats.mem_peak_bytes, r->stats.disk_written_bytes,
		r->stats.net_rx_bytes, r->stats.net_tx_bytes,
		r->stats.log_bytes
	};
	json_t *v, *steps, *arts;

	check(json_is_object(o));
	/* "source", "hold" and "boot" are always there: null unless the
	 * build named a source, was held, or booted; "cache" only with a
	 * recipe cache */
	check(json_object_size(o) == 15u + (r->enforcement != NULL) +
				     (r->cache != NULL));
	check(r->boot ? !strcmp(json_string_value(json_object_get(o, "boot")),
				r->boot)
		      : json_is_null(json_object_get(o, "boot")));
	check(json_is_boolean(json_object_get(o, "snapshot_saved")) &&
	      json_boolean_value(json_object_get(o, "snapshot_saved")) ==
		      r->snapshot_saved);
	check(r->source ? json_equal(json_object_get(o, "source"), r->source)
			: json_is_null(json_object_get(o, "source")));
	check(r->hold ? json_equal(json_object_get(o, "hold"), r->hold)
		      : json_is_null(json_object_get(o, "hold")));
	check(!strcmp(json_string_value(json_object_get(o, "status")),
		      result_status_name(r->status)));
	check_int(json_object_get(o, "exit_code"),
		  result_exit_code(r->status));
	check_text(json_object_get(o, "reason"), r->reason);
	v = json_object_get(o, "limit");
	if (r->status == BUILD_LIMIT && r->has_limit) {
		check(json_is_object(v) && json_object_size(v) == 4);
		check_text(json_object_get(v, "name"), r->limit_name);
		check_text(json_object_get(v, "unit"), r->limit_unit);
		check_int(json_object_get(v, "value"), r->limit_value);
		check_int(json_object_get(v, "max"), r->limit_max);
	} else {
		check(json_is_null(v));
	}
	check_text(json_object_get(o, "accel"), r->accel ? r->accel : "");
	check(json_is_string(json_object_get(o, "qctl_version")));
	v = json_object_get(o, "run_dir");
	if (r->run_dir)
		check_text(v, r->run_dir);
	else
		check(json_is_null(v));

	steps = json_object_get(o, "steps");
	check(json_is_array(steps) && json_array_size(steps) == r->n_steps);
	for (size_t i = 0; i < r->n_steps; i++) {
		const struct step_result *s = &r->steps[i];
		json_t *j = json_array_get(steps, i);

		check(json_object_size(j) == 6);
		check_text(json_object_get(j, "name"), s->name);
		check(!strcmp(json_string_value(json_object_get(j, "network")),
			      s->fetch ? "fetch" : "none"));
		v = json_object_get(j, "exit_code");
		if (s->ran && s->exit_code >= 0)
			check_int(v, s->exit_code);
		else
			check(json_is_null(v));
		v = json_object_get(j, "signal");
		if (s->signal)
			check_int(v, s->signal);
		else
			check(json_is_null(v));
		if (s->ran) {
			check_int(json_object_get(j, "started_ms"),
				  s->started_ms);
			check_int(json_object_get(j, "duration_ms"),
				  s->duration_ms);
		} else {
			check(json_is_null(json_object_get(j, "started_ms")));
			check(json_is_null(json_object_get(j, "duration_ms")));
		}
	}

	v = json_object_get(o, "stats");
	check(json_object_size(v) == 8);
	for (size_t i = 0; i < 8; i++)
		check_int(json_object_get(v, stat_keys[i]), stats[i]);

	v = json_object_get(o, "network");
	check(json_is_array(v));
	if (r->network)
		check(json_equal(v, r->network));
	else
		check(json_array_size(v) == 0);

	arts = json_object_get(o, "artifacts");
	check(json_is_array(arts) &&
	      json_array_size(arts) == r->n_artifacts);
	for (size_t i = 0; i < r->n_artifacts; i++) {
		const struct artifact_result *a = &r->artifacts[i];
		json_t *j = json_array_get(arts, i);

		check(json_object_size(j) == 3);
		check_text(json_object_get(j, "path"), a->path);
		check_int(json_object_get(j, "bytes"), (int64_t)a->bytes);
		check_text(json_object_get(j, "sha256"), a->sha256);
	}
	if (r->enforcement)
		check(json_equal(json_object_get(o, "enforcement"),
				 r->enforcement));
}

/* Written as result_write_file_at and --json do, read back the same. */
static void
check_round_trip(json_t *o, size_t flags)
{
	char *text = json_dumps(o, flags);
	json_error_t je;
	json_t *back;

	check(text != NULL);
	back = json_loads(text, JSON_REJECT_DUPLICATES, &je);
	check(back != NULL && json_equal(o, back));
	json_decref(back);
	free(text);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct src s = { data, size };
	struct build_result r = { 0 };
	char *accel = NULL;
	json_t *o;

	build(&s, &r, &accel);
	o = result_to_json(&r);
	check(o != NULL);
	check_result(&r, o);
	check_round_trip(o, JSON_INDENT(2));
	check_round_trip(o, JSON_COMPACT);
	json_decref(o);
	result_clear(&r);
	free(accel);
	return 0;
}
