/* test-proxy-config.c - the proxy reads its configuration from the
 * manager: exact keys, types, bounds, valid entries; and it reads what the
 * manager writes */
#include <criterion/criterion.h>
#include <string.h>

#include "proxy-config.h"
#include "proxy-proto.h"
#include "proxy.h"

static int
parse(const char *s, struct proxy_conf *c, struct error *err)
{
	return proxy_config_parse(s, strlen(s), c, err);
}

#define GOOD_HEAD                                                              \
	"{\"t\":\"config\",\"v\":1,\"uid\":65534,\"gid\":65534,"               \
	"\"connect_ms\":2000,\"idle_ms\":300000,\"max_bytes\":0,"

/* A good configuration with key set to v (NULL: without the key). */
static char *
variant(const char *key, json_t *v)
{
	json_t *j = json_loads(GOOD_HEAD "\"allow\":[]}", 0, NULL);
	char *txt;

	cr_assert_not_null(j);
	if (v)
		json_object_set_new(j, key, v);
	else
		json_object_del(j, key);
	txt = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	return txt;
}

Test(proxy_config, good)
{
	struct proxy_conf c;
	struct error err = { 0 };

	cr_assert_eq(parse(GOOD_HEAD "\"allow\":[\"127.0.0.1:8080\","
				     "\"*.example.org:443\"]}",
			   &c, &err),
		     0, "%s", err.msg);
	cr_expect_eq(c.uid, 65534);
	cr_expect_eq(c.gid, 65534);
	cr_expect_eq(c.connect_timeout_ms, 2000);
	cr_expect_eq(c.idle_timeout_ms, 300000);
	cr_expect_eq(c.max_bytes, 0);
	cr_assert_not_null(c.al);
	cr_expect_eq(c.al->n, 2);
	cr_expect_eq(c.al->e[1].kind, ALLOW_SUFFIX);
	proxy_config_free(&c);
	cr_assert_eq(parse(GOOD_HEAD "\"allow\":[]}", &c, &err), 0, "%s",
		     err.msg);
	cr_expect_eq(c.al->n, 0);
	proxy_config_free(&c);
}

Test(proxy_config, bad)
{
	static const char *const raw[] = {
		"",
		"not json",
		"[]",
		"{\"t\":\"window\",\"open\":true,\"id\":1}",
		/* a duplicate key, a NUL inside an entry */
		GOOD_HEAD "\"allow\":[],\"uid\":0}",
		GOOD_HEAD "\"allow\":[\"ok.test:80\\u0000evil\"]}",
	};
	struct {
		const char *key;
		json_t *v;
	} var[] = {
		/* version, ids, timeouts, budget out of range */
		{ "v", json_integer(2) },
		{ "uid", json_integer(-1) },
		{ "uid", json_integer(4294967295) },
		{ "gid", json_integer(4294967295) },
		{ "connect_ms", json_integer(0) },
		{ "connect_ms", json_integer(600001) },
		{ "idle_ms", json_integer(0) },
		{ "idle_ms", json_integer(86400001) },
		{ "max_bytes", json_integer(-1) },
		/* wrong types, missing and extra keys */
		{ "t", json_string("window") },
		{ "uid", json_string("0") },
		{ "uid", json_real(1.5) },
		{ "allow", json_string("127.0.0.1:80") },
		{ "allow", NULL },
		{ "env", json_object() },
		/* entries: not strings, or not valid */
		{ "allow", json_pack("[i]", 80) },
		{ "allow", json_pack("[s]", "127.1:80") },
		{ "allow", json_pack("[s]", "a b:80") },
		{ "allow", json_pack("[s, s]", "ok.test:80", "*.:80") },
	};
	struct proxy_conf c;
	struct error err = { 0 };

	for (size_t i = 0; i < ARRAY_SIZE(raw); i++) {
		cr_expect_lt(parse(raw[i], &c, &err), 0, "accepted: %s",
			     raw[i]);
		cr_expect_null(c.al, "%s", raw[i]);
		proxy_config_free(&c);
	}
	for (size_t i = 0; i < ARRAY_SIZE(var); i++) {
		char *txt = variant(var[i].key, var[i].v);

		cr_expect_lt(parse(txt, &c, &err), 0, "accepted: %s", txt);
		cr_expect_null(c.al, "%s", txt);
		proxy_config_free(&c);
		free(txt);
	}
}

Test(proxy_config, bounded)
{
	struct proxy_conf c;
	struct error err = { 0 };
	struct buf b = { 0 };

	/* one entry too many */
	buf_append(&b, GOOD_HEAD "\"allow\":[", strlen(GOOD_HEAD) + 9);
	for (int i = 0; i <= PROXY_ALLOW_MAX; i++)
		buf_append(&b, i ? ",\"a.test:1\"" : "\"a.test:1\"",
			   i ? 11 : 10);
	buf_append(&b, "]}", 2);
	cr_expect_lt(proxy_config_parse(b.data, b.len, &c, &err), 0);
	cr_expect(strstr(err.msg, "at most"), "%s", err.msg);
	proxy_config_free(&c);
	buf_free(&b);
	/* longer than a configuration may be, whatever it holds */
	b = (struct buf){ 0 };
	buf_append(&b, GOOD_HEAD "\"allow\":[]}",
		   strlen(GOOD_HEAD "\"allow\":[]}"));
	while (b.len <= PROXY_CONFIG_MAX)
		buf_append(&b, " ", 1);
	cr_expect_lt(proxy_config_parse(b.data, b.len, &c, &err), 0);
	proxy_config_free(&c);
	buf_free(&b);
}

/* The manager's encoder and the proxy's parser agree. */
Test(proxy_config, round_trip)
{
	char e0[] = "127.0.0.1:8080", e1[] = "[::1]:443", e2[] = "a.test:80";
	char *list[] = { e0, e1, e2 };
	struct proxy_config cfg = { .allow = list, .n_allow = 3,
				    .max_bytes = 1 << 20,
				    .idle_timeout_ms = 1234 };
	struct proxy_conf c;
	struct error err = { 0 };
	char *txt;

	cr_assert_eq(proxy_config_encode(&cfg, 1000, 1001, &txt, &err), 0,
		     "%s", err.msg);
	cr_assert_eq(parse(txt, &c, &err), 0, "%s", err.msg);
	cr_expect_eq(c.uid, 1000);
	cr_expect_eq(c.gid, 1001);
	cr_expect_eq(c.connect_timeout_ms, 10000);
	cr_expect_eq(c.idle_timeout_ms, 1234);
	cr_expect_eq(c.max_bytes, 1 << 20);
	cr_expect_eq(c.al->n, 3);
	cr_expect_str_eq(c.al->e[1].host, "[::1]");
	free(txt);
	proxy_config_free(&c);
}
