/* proxy-config.h - the proxy's configuration, as it reads it from the
 * manager's first packet (see proxy-proto.h) */
#ifndef QCTL_PROXY_CONFIG_H
#define QCTL_PROXY_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "allowlist.h"

struct proxy_conf {
	uid_t uid; /* to drop to, when started as root; never 0 then */
	gid_t gid;
	int64_t connect_timeout_ms; /* resolve + connect */
	int64_t idle_timeout_ms;    /* relay without traffic */
	uint64_t max_bytes;	    /* up + down over all connections; 0:
				     * no budget */
	struct allowlist *al;
};

/*
 * Parse and validate the configuration packet (len bytes, at most
 * PROXY_CONFIG_MAX): exactly the documented keys with their types, the
 * protocol version, ids below (uid_t)-1, timeouts within their bounds, at
 * most PROXY_ALLOW_MAX entries, each a valid allowlist entry.  Pure.
 * 0 with *out filled (free with proxy_config_free), or -EINVAL.
 */
int proxy_config_parse(const char *buf, size_t len, struct proxy_conf *out,
		       struct error *err);
void proxy_config_free(struct proxy_conf *c);

#endif
