/* fuzz-proxy-config.c - libFuzzer target: the configuration packet as the
 * proxy reads it (proxy_config_parse); what it accepts is within bounds */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxy-config.h"
#include "proxy-proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proxy_conf c;
	struct error err = { 0 };

	if (proxy_config_parse((const char *)data, size, &c, &err) == 0) {
		if (!c.al || c.al->n > PROXY_ALLOW_MAX ||
		    c.connect_timeout_ms < 1 ||
		    c.connect_timeout_ms > PROXY_CONNECT_MS_MAX ||
		    c.idle_timeout_ms < 1 ||
		    c.idle_timeout_ms > PROXY_IDLE_MS_MAX ||
		    c.uid == (uid_t)-1 || c.gid == (gid_t)-1)
			abort();
		for (size_t i = 0; i < c.al->n; i++)
			if (c.al->e[i].port == 0)
				abort();
	}
	proxy_config_free(&c);
	return 0;
}
