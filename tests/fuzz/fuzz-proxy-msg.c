/*
 * fuzz-proxy-msg.c - libFuzzer target: what a compromised proxy sends the
 * manager (proxy_msg_decode), as a stream of packets.
 *
 * The input is split at '\n' into packets (JSON needs no raw newline), fed
 * in order to one decoder state that starts before "ready", with two
 * windows opened.  Beyond "no crash, no leak" it checks the decoder's
 * promises: refusals say why, the proxy's own failure text comes out
 * printable, "ready" is for good, totals never go backwards, and every
 * record it passes on is plausible and makes a result entry
 * (proxy_record_to_json) that holds exactly its fields.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy-proto.h"
#include "proxy.h"
#include "fuzz-check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static void
on_rec(const struct proxy_record *r, void *opaque)
{
	const struct proxy_msg_state *st = opaque;
	json_t *j, *back;
	char *text;
	bool known = !r->step;

	for (size_t i = 0; i < st->nsteps; i++)
		known |= r->step == st->steps[i];
	check(known);
	check(r->method && r->host && r->reason);
	check(strlen(r->method) < PROXY_METHOD_MAX && printable(r->method));
	check(strlen(r->host) < PROXY_HOST_MAX && printable(r->host));
	check(strlen(r->reason) <= PROXY_REASON_MAX && printable(r->reason));
	check(r->bytes_up <= INT64_MAX && r->bytes_down <= INT64_MAX);

	/* What goes into the result's "network" array. */
	j = proxy_record_to_json(r);
	check(j != NULL);
	text = json_dumps(j, JSON_COMPACT);
	check(text != NULL);
	back = json_loads(text, 0, NULL);
	check(back && json_equal(j, back));
	check(r->step ? !strcmp(json_string_value(json_object_get(j, "step")),
				r->step)
		      : json_is_null(json_object_get(j, "step")));
	check(!strcmp(json_string_value(json_object_get(j, "method")),
		      r->method));
	check(!strcmp(json_string_value(json_object_get(j, "host")), r->host));
	check(!strcmp(json_string_value(json_object_get(j, "reason")),
		      r->reason));
	check(json_integer_value(json_object_get(j, "port")) == r->port);
	check(json_is_true(json_object_get(j, "allowed")) == r->allowed);
	check(json_integer_value(json_object_get(j, "bytes_up")) ==
	      (json_int_t)r->bytes_up);
	check(json_integer_value(json_object_get(j, "bytes_down")) ==
	      (json_int_t)r->bytes_down);
	json_decref(back);
	free(text);
	json_decref(j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_msg_state st = { 0 };
	const char *p = (const char *)data, *end = p + size;

	st.steps = calloc(2, sizeof(char *));
	st.steps[0] = strdup("deps");
	st.steps[1] = strdup("fetch \xc3\xa9t\xc3\xa9");	/* UTF-8 */
	st.nsteps = 2;
	while (p <= end) {
		const char *nl = memchr(p, '\n', end - p);
		size_t len = (nl ? nl : end) - p;
		/* a packet of its own, so that a read past it is seen */
		char *pkt = malloc(len ? len : 1);
		struct error err = { 0 };
		bool was_ready = st.ready;
		uint64_t up = st.up, down = st.down;
		int r;

		memcpy(pkt, p, len);
		r = proxy_msg_decode(&st, pkt, len, on_rec, &st, &err);
		free(pkt);
		if (r < 0) {
			check(r == -EPROTO || r == -EPERM);
			check(err.msg[0] != '\0' && err.code == -r);
			/* the proxy's failure text reaches the operator */
			check(printable(err.msg));
		} else {
			check(err.msg[0] == '\0');
		}
		check(!was_ready || st.ready);
		check(st.up >= up && st.down >= down);
		check(st.up <= INT64_MAX && st.down <= INT64_MAX);
		p += len + 1;
	}
	proxy_msg_state_free(&st);
	return 0;
}
