/* proxy-config.c - the proxy reads its configuration from the manager.
 * The manager is more trusted than the proxy, but what a proxy acts on is
 * checked where it acts: every field typed, bounded and validated here. */
#include "proxy-config.h"
#include "proxy-proto.h"

#include <jansson.h>
#include <string.h>

#include "json-util.h"

static int
id_ok(json_int_t v)
{
	/* (uid_t)-1 means "unchanged" to the set*id calls. */
	return v >= 0 && v < (json_int_t)UINT32_MAX;
}

static int
parse_allow(json_t *arr, struct proxy_conf *out, struct error *err)
{
	size_t n = json_array_size(arr);
	char **list;
	json_t *v;
	size_t i;

	if (n > PROXY_ALLOW_MAX)
		return error_set(err, EINVAL,
				 "config: %zu allow entries, at most %d", n,
				 PROXY_ALLOW_MAX);
	list = xcalloc(n ? n : 1, sizeof(*list));
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v) ||
		    json_string_length(v) != strlen(json_string_value(v))) {
			free(list);
			return error_set(err, EINVAL,
					 "config: allow[%zu] is not a string",
					 i);
		}
		list[i] = (char *)json_string_value(v);
	}
	out->al = allowlist_new(list, n, err);
	free(list);
	if (!out->al) {
		error_prefix(err, "config");
		return -EINVAL;
	}
	return 0;
}

/* Parse and check the configuration packet. */
int
proxy_config_parse(const char *buf, size_t len, struct proxy_conf *out,
		   struct error *err)
{
	_cleanup_json_ json_t *j = NULL;
	json_int_t v, uid, gid, cms, ims, maxb;
	json_t *allow;
	const char *t;
	json_error_t je;

	memset(out, 0, sizeof(*out));
	if (len > PROXY_CONFIG_MAX)
		return error_set(err, EINVAL, "config: %zu bytes, at most %d",
				 len, PROXY_CONFIG_MAX);
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return error_set(err, EINVAL, "config: not JSON: %s", je.text);
	/* Exactly these keys ("!"): a manager of another version is told
	 * so rather than half understood. */
	if (json_unpack_ex(j, &je, JSON_STRICT,
			   "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "t", &t,
			   "v", &v, "uid", &uid, "gid", &gid, "connect_ms",
			   &cms, "idle_ms", &ims, "max_bytes", &maxb, "allow",
			   &allow) < 0)
		return error_set(err, EINVAL, "config: %s", je.text);
	if (strcmp(t, "config"))
		return error_set(err, EINVAL, "config: unexpected message");
	if (v != PROXY_PROTO_VERSION)
		return error_set(err, EINVAL,
				 "config: version %lld, expected %d",
				 (long long)v, PROXY_PROTO_VERSION);
	if (!id_ok(uid) || !id_ok(gid))
		return error_set(err, EINVAL, "config: bad uid or gid");
	if (cms < 1 || cms > PROXY_CONNECT_MS_MAX || ims < 1 ||
	    ims > PROXY_IDLE_MS_MAX)
		return error_set(err, EINVAL, "config: timeout out of range");
	if (maxb < 0)
		return error_set(err, EINVAL, "config: negative max_bytes");
	if (!json_is_array(allow))
		return error_set(err, EINVAL, "config: allow is not a list");
	out->uid = uid;
	out->gid = gid;
	out->connect_timeout_ms = cms;
	out->idle_timeout_ms = ims;
	out->max_bytes = maxb;
	return parse_allow(allow, out, err);
}

/* Free what proxy_config_parse allocated; a zeroed conf is fine. */
void
proxy_config_free(struct proxy_conf *c)
{
	allowlist_free(c->al);
	memset(c, 0, sizeof(*c));
}
