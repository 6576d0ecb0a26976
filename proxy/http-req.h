/* http-req.h - the proxy's HTTP/1.x request-head parser and rewriter.
 * Pure functions over a buffer: the bytes come from the untrusted build. */
#ifndef QCTL_HTTP_REQ_H
#define QCTL_HTTP_REQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest request head (request line, headers, final CRLF CRLF). */
#define HTTP_REQ_HEAD_MAX 16384
/* Most header fields in a head. */
#define HTTP_REQ_HEADERS_MAX 100
/* Longest method token kept. */
#define HTTP_REQ_METHOD_MAX 16
/* Longest host in a request target (a DNS name is at most 253 bytes). */
#define HTTP_REQ_HOST_MAX 256

/* Negative results of http_req_parse besides -EINVAL (malformed). */
#define HTTP_REQ_TOO_LARGE (-E2BIG)
#define HTTP_REQ_HTTPS (-EPROTONOSUPPORT) /* https:// absolute-form */

/* A header field: offsets into the parsed buffer, value without OWS. */
struct http_hdr {
	uint32_t name_off, name_len;
	uint32_t value_off, value_len;
};

struct http_req {
	char method[HTTP_REQ_METHOD_MAX];
	bool connect; /* CONNECT host:port (authority-form) */
	int minor;    /* HTTP/1.minor */
	/* Host exactly as in the target, IPv6 with its brackets; still to
	 * be normalised (allowlist_normalize_host). */
	char host[HTTP_REQ_HOST_MAX];
	uint16_t port;
	/* Origin-form path and query of an absolute-form target (may be
	 * empty: means "/"), as offsets into the buffer. */
	uint32_t path_off, path_len;
	size_t head_len; /* bytes of the head, CRLF CRLF included */
	size_t nhdr;
	struct http_hdr hdr[HTTP_REQ_HEADERS_MAX];
};

/*
 * Parse the request head at the start of buf (len bytes).  Returns the
 * head length (> 0) when complete and valid, 0 when more bytes are
 * needed, HTTP_REQ_TOO_LARGE past HTTP_REQ_HEAD_MAX, HTTP_REQ_HTTPS for
 * an https:// target, or -EINVAL when malformed; err says why.  Accepted:
 * "CONNECT host:port HTTP/1.x" and "METHOD http://host[:port]/path
 * HTTP/1.x", CRLF line ends, no obsolete line folding, no userinfo.
 */
int http_req_parse(const char *buf, size_t len, struct http_req *req,
		   struct error *err);

/*
 * Append to out the head to send upstream for a parsed absolute-form
 * request: origin-form request line, a Host field made from host_norm
 * (the normalised host) and the port, the client's fields minus the
 * hop-by-hop ones and its Host, and "Connection: close".
 */
void http_req_rewrite(const struct http_req *req, const char *buf,
		      const char *host_norm, struct buf *out);

/* Value of the first header called name (case-insensitive), or NULL;
 * *vlen gets its length.  The value is not NUL-terminated. */
const char *http_req_header(const struct http_req *req, const char *buf,
			    const char *name, size_t *vlen);

#endif
