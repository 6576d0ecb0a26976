/* proxy-proto.h - wire formats between the manager, the proxy process and
 * the proxy's resolver processes.  All run over SOCK_SEQPACKET socketpairs:
 * one message per packet, so no framing, and a packet larger than the
 * reader's buffer is detected (MSG_TRUNC) and treated as a protocol error.
 *
 * Manager <-> proxy: one JSON object per packet, at most PROXY_MSG_MAX
 * bytes, "t" naming the message.
 *
 *   manager -> proxy
 *     {"t":"window","open":true,"id":N}    open; N >= 1 tags records
 *     {"t":"window","open":false}           close; kills every relay
 *   proxy -> manager
 *     {"t":"ready"}                         sandboxed and serving
 *     {"t":"fail","msg":"..."}              startup failed; exits next
 *     {"t":"req","w":N,"method":"GET","host":"h","port":P,
 *      "allowed":true,"reason":"...","up":U,"down":D}
 *                                           one request, when decided
 *                                           (refusals) or ended (relays);
 *                                           w = window id, 0 = closed
 *     {"t":"bytes","up":U,"down":D}         running totals, at least every
 *                                           250 ms while bytes flow
 *
 * Proxy <-> resolver: fixed-size binary structs below.
 */
#ifndef QCTL_PROXY_PROTO_H
#define QCTL_PROXY_PROTO_H

#include <stdint.h>

#define PROXY_MSG_MAX 2048
/* Longest reason text the manager accepts in a record. */
#define PROXY_REASON_MAX 400
#define PROXY_METHOD_MAX 16
#define PROXY_HOST_MAX 256

#define PROXY_RESOLVE_ADDRS 16

struct proxy_resolve_req {
	uint32_t id;
	char host[PROXY_HOST_MAX]; /* NUL-terminated, a checked name */
};

struct proxy_resolve_addr {
	uint8_t family; /* 4 or 6 */
	uint8_t addr[16];
};

struct proxy_resolve_rep {
	uint32_t id;
	int32_t gai_err; /* 0 or an EAI_* code */
	uint32_t n;	 /* at most PROXY_RESOLVE_ADDRS */
	struct proxy_resolve_addr a[PROXY_RESOLVE_ADDRS];
};

#endif
