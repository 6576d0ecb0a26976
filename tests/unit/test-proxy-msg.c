/* test-proxy-msg.c - the manager reads the proxy's messages as a less
 * trusted peer: bounded, typed, validated */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy-proto.h"
#include "proxy.h"

static struct proxy_record last;
static int nrec;
static char last_host[300], last_reason[500], last_method[20], last_step[20];

static void
on_rec(const struct proxy_record *r, void *opaque)
{
	(void)opaque;
	last = *r;
	snprintf(last_host, sizeof(last_host), "%s", r->host);
	snprintf(last_reason, sizeof(last_reason), "%s", r->reason);
	snprintf(last_method, sizeof(last_method), "%s", r->method);
	snprintf(last_step, sizeof(last_step), "%s", r->step ? r->step : "");
	/* the strings live only as long as the callback */
	last.method = last_method;
	last.host = last_host;
	last.reason = last_reason;
	last.step = r->step ? last_step : NULL;
	nrec++;
}

static struct proxy_msg_state st;

static void
setup(void)
{
	memset(&st, 0, sizeof(st));
	st.ready = true;
	st.steps = calloc(2, sizeof(char *));
	st.steps[0] = strdup("deps");
	st.steps[1] = strdup("fetch2");
	st.nsteps = 2;
	nrec = 0;
}

static void
teardown(void)
{
	proxy_msg_state_free(&st);
}

TestSuite(proxy_msg, .init = setup, .fini = teardown);

static int
dec(const char *m)
{
	struct error err = { 0 };

	return proxy_msg_decode(&st, m, strlen(m), on_rec, NULL, &err);
}

Test(proxy_msg, good_record)
{
	cr_assert_eq(dec("{\"t\":\"req\",\"w\":2,\"method\":\"CONNECT\","
			 "\"host\":\"deb.debian.org\",\"port\":443,"
			 "\"allowed\":true,\"reason\":\"allowlisted as "
			 "deb.debian.org:443\",\"up\":10,\"down\":20}"),
		     0);
	cr_assert_eq(nrec, 1);
	cr_expect_str_eq(last.step, "fetch2");
	cr_expect_str_eq(last.method, "CONNECT");
	cr_expect_str_eq(last_host, "deb.debian.org");
	cr_expect_eq(last.port, 443);
	cr_expect(last.allowed);
	cr_expect_eq(last.bytes_up, 10);
	cr_expect_eq(last.bytes_down, 20);
	cr_assert_eq(dec("{\"t\":\"req\",\"w\":0,\"method\":\"-\","
			 "\"host\":\"\","
			 "\"port\":0,\"allowed\":false,\"reason\":\"bad\","
			 "\"up\":0,\"down\":0}"),
		     0);
	cr_expect_null(last.step);
}

Test(proxy_msg, bad_records)
{
	static const char *const bad[] = {
		"",
		"not json",
		"[]",
		"{\"t\":\"ready\"}",
		"{\"t\":\"nope\"}",
		/* unknown window id: the proxy cannot invent steps */
		"{\"t\":\"req\",\"w\":3,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":-1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		/* method, host, reason, port, bytes out of bounds */
		"{\"t\":\"req\",\"w\":1,\"method\":\"get\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\","
		"\"host\":\"h\\u001b[2J\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"a b\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\\n\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":65536,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":-5,"
		"\"down\":0}",
		/* wrong types, missing and extra keys, duplicates */
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":\"80\",\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":1,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"up\":0,\"down\":0}",
		"{\"t\":\"req\",\"w\":1,\"method\":\"GET\",\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0,\"step\":\"evil\"}",
		"{\"t\":\"req\",\"w\":1,\"w\":2,\"method\":\"GET\","
		"\"host\":\"h\","
		"\"port\":80,\"allowed\":true,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"bytes\",\"up\":1}",
		"{\"t\":\"bytes\",\"up\":1,\"down\":-1}",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_expect_lt(dec(bad[i]), 0, "accepted: %s", bad[i]);
	cr_expect_eq(nrec, 0);
}

Test(proxy_msg, totals_only_grow)
{
	cr_assert_eq(dec("{\"t\":\"bytes\",\"up\":100,\"down\":2000}"), 0);
	cr_expect_eq(st.up, 100);
	cr_expect_eq(st.down, 2000);
	cr_assert_eq(dec("{\"t\":\"bytes\",\"up\":100,\"down\":2500}"), 0);
	cr_expect_lt(dec("{\"t\":\"bytes\",\"up\":99,\"down\":2500}"), 0);
	cr_expect_lt(dec("{\"t\":\"bytes\",\"up\":100,\"down\":10}"), 0);
	cr_expect_eq(st.down, 2500);
}

Test(proxy_msg, bounded_size)
{
	struct error err = { 0 };
	char *big = malloc(5000);

	memset(big, ' ', 5000);
	memcpy(big, "{\"t\":\"bytes\",\"up\":1,\"down\":1}", 29);
	cr_expect_lt(proxy_msg_decode(&st, big, 5000, on_rec, NULL, &err), 0);
	cr_expect_eq(proxy_msg_decode(&st, big, 100, on_rec, NULL, &err), 0);
	free(big);
}

Test(proxy_msg, record_json)
{
	struct proxy_record r = { NULL, "GET", "h", 80, false, "no", 1, 2 };
	json_t *j = proxy_record_to_json(&r);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);

	cr_expect_str_eq(s, "{\"allowed\":false,\"bytes_down\":2,"
			    "\"bytes_up\":1,\"host\":\"h\",\"method\":\"GET\","
			    "\"port\":80,\"reason\":\"no\",\"step\":null}");
	free(s);
	json_decref(j);
}

/* Start-up: "ready" or "fail" first, nothing else; "ready" once. */
Test(proxy_msg, start_protocol)
{
	static const char *const early[] = {
		"{\"t\":\"bytes\",\"up\":1,\"down\":1}",
		"{\"t\":\"req\",\"w\":0,\"method\":\"-\",\"host\":\"\","
		"\"port\":0,\"allowed\":false,\"reason\":\"r\",\"up\":0,"
		"\"down\":0}",
		"{\"t\":\"ready\",\"x\":1}",
		"{\"t\":\"ready\",\"t\":\"ready\"}",
		"{\"t\":\"nope\"}",
	};
	const char *fail = "{\"t\":\"fail\",\"msg\":\"seccomp: x\\u001b[2J\"}";
	struct error err = { 0 };

	/* from scratch each time (free what setup made: no leak) */
	for (size_t i = 0; i < ARRAY_SIZE(early); i++) {
		proxy_msg_state_free(&st);
		cr_expect_lt(dec(early[i]), 0, "accepted first: %s", early[i]);
		cr_expect_not(st.ready);
	}
	cr_expect_eq(nrec, 0);
	proxy_msg_state_free(&st);
	cr_assert_eq(dec("{\"t\":\"ready\"}"), 0);
	cr_expect(st.ready);
	cr_expect_lt(dec("{\"t\":\"ready\"}"), 0, "ready twice");
	proxy_msg_state_free(&st);
	cr_expect_lt(proxy_msg_decode(&st, fail, strlen(fail), on_rec, NULL,
				      &err),
		     0);
	cr_expect_str_eq(err.msg, "proxy: seccomp: x?[2J");
	cr_expect_not(st.ready);
	cr_expect_lt(dec("{\"t\":\"fail\"}"), 0);
	cr_expect_lt(dec("{\"t\":\"fail\",\"msg\":1}"), 0);
}

/* What the manager sends: defaults, bounds, checked entries. */
Test(proxy_msg, config_encode)
{
	char e0[] = "127.0.0.1:8080", e1[] = "*.example.org:443";
	char *good[] = { e0, e1 }, *bad[] = { e0, (char *)"a b:80" };
	char **many = calloc(PROXY_ALLOW_MAX + 1, sizeof(char *));
	struct proxy_config cfg = { 0 };
	struct error err = { 0 };
	char *txt;

	cfg.allow = good;
	cfg.n_allow = 2;
	cfg.max_bytes = 1000;
	cr_assert_eq(proxy_config_encode(&cfg, 65534, 65533, &txt, &err), 0,
		     "%s", err.msg);
	cr_expect_str_eq(txt, "{\"t\":\"config\",\"v\":1,\"uid\":65534,"
			      "\"gid\":65533,\"connect_ms\":10000,"
			      "\"idle_ms\":300000,\"max_bytes\":1000,"
			      "\"allow\":[\"127.0.0.1:8080\","
			      "\"*.example.org:443\"]}");
	free(txt);
	cfg.allow = bad;
	cr_expect_lt(proxy_config_encode(&cfg, 1, 1, &txt, &err), 0);
	cr_expect(strstr(err.msg, "allow[1]"), "%s", err.msg);
	cr_expect_null(txt);
	for (size_t i = 0; i <= PROXY_ALLOW_MAX; i++)
		many[i] = e0;
	cfg.allow = many;
	cfg.n_allow = PROXY_ALLOW_MAX + 1;
	cr_expect_lt(proxy_config_encode(&cfg, 1, 1, &txt, &err), 0);
	cr_expect(strstr(err.msg, "at most"), "%s", err.msg);
	free(many);
}
