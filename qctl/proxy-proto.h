/* proxy-proto.h - wire formats between the manager, the proxy process
 * (qctl-proxy) and the proxy's resolver processes.  All run over
 * SOCK_SEQPACKET socketpairs: one message per packet, so no framing, and a
 * packet larger than the reader's buffer is detected (MSG_TRUNC) and
 * treated as a protocol error.
 *
 * The manager execs qctl-proxy with an empty environment, /dev/null on
 * 0-2, the listening socket on PROXY_FD_LISTEN and the control socket on
 * PROXY_FD_CTL, and nothing else.
 *
 * Manager <-> proxy: one JSON object per packet, "t" naming the message;
 * the configuration at most PROXY_CONFIG_MAX bytes, the others at most
 * PROXY_MSG_MAX.
 *
 *   manager -> proxy
 *     {"t":"config","v":1,"uid":U,"gid":G,"connect_ms":C,"idle_ms":I,
 *      "max_bytes":M,"allow":["host:port",...]}
 *                                           first packet, queued before
 *                                           the exec; exactly these keys
 *     {"t":"window","open":true,"id":N}    open; N >= 1 tags records
 *     {"t":"window","open":false}           close; kills every relay
 *   proxy -> manager
 *     {"t":"ready"}                         sandboxed and serving: the
 *                                           first message, or
 *     {"t":"fail","msg":"..."}              start-up failed; exits next
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

/* fds of the proxy process */
#define PROXY_FD_LISTEN 3
#define PROXY_FD_CTL 4

/* Version of the configuration message ("v"). */
#define PROXY_PROTO_VERSION 1
#define PROXY_MSG_MAX 2048
#define PROXY_CONFIG_MAX 65536
/* Most allowlist entries a configuration carries. */
#define PROXY_ALLOW_MAX 512
/* Bounds the proxy enforces on the timeouts it is given (ms). */
#define PROXY_CONNECT_MS_MAX (10 * 60 * 1000)
#define PROXY_IDLE_MS_MAX (24 * 60 * 60 * 1000)
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
