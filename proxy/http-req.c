/* http-req.c - strict HTTP/1.x request-head parser for the proxy */
#include "http-req.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* RFC 9110 tchar */
static bool
is_tchar(char c)
{
	return is_alpha(c) || is_digit(c) ||
	       (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Bytes allowed in a field value besides SP/HTAB: VCHAR and obs-text. */
static bool
is_field_vchar(unsigned char c)
{
	return (c > 0x20 && c < 0x7f) || c >= 0x80;
}

/* Find CRLF CRLF within the first max bytes; offset past it or 0. */
static size_t
find_head_end(const char *buf, size_t len)
{
	for (size_t i = 3; i < len; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' &&
		    buf[i - 2] == '\n' && buf[i - 3] == '\r')
			return i + 1;
	return 0;
}

/*
 * An incomplete head can already be hopeless: a NUL, a bare LF, a CR
 * not followed by LF.  Rejecting now spares waiting for 16 KiB.
 */
static int
check_partial(const char *buf, size_t len, struct error *err)
{
	for (size_t i = 0; i < len; i++) {
		if (buf[i] == '\0')
			return error_set(err, EINVAL, "NUL byte in request");
		if (buf[i] == '\n' && (i == 0 || buf[i - 1] != '\r'))
			return error_set(err, EINVAL,
					 "bare LF in request (CRLF needed)");
		if (buf[i] == '\r' && i + 1 < len && buf[i + 1] != '\n')
			return error_set(err, EINVAL, "bare CR in request");
	}
	return 0;
}

static int
parse_port(const char *s, size_t n, uint16_t *port)
{
	unsigned long v = 0;

	if (n == 0 || n > 5 || s[0] == '0')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -EINVAL;
		v = v * 10 + (s[i] - '0');
	}
	if (v > 65535)
		return -EINVAL;
	*port = v;
	return 0;
}

/*
 * host[:port] or [v6][:port] (n bytes).  Characters that would change
 * where the authority ends or who it names ('@' userinfo, '%' escapes,
 * '\\', delimiters) are malformed; finer checks are the normaliser's.
 */
static int
parse_authority(const char *s, size_t n, bool port_required,
		struct http_req *req, struct error *err)
{
	const char *colon = NULL;
	size_t hlen;

	if (n == 0)
		return error_set(err, EINVAL, "empty host in request target");
	for (size_t i = 0; i < n; i++)
		if (strchr("@%\\/?#\"<>{}|^`", s[i]))
			return error_set(err, EINVAL,
					 "forbidden character '%c' in host "
					 "(userinfo and escapes are refused)",
					 s[i]);
	if (s[0] == '[') {
		const char *close = memchr(s, ']', n);

		if (!close)
			return error_set(err, EINVAL,
					 "unterminated IPv6 literal");
		hlen = close - s + 1;
		if (hlen < n) {
			if (s[hlen] != ':')
				return error_set(err, EINVAL,
						 "junk after IPv6 literal");
			colon = s + hlen;
		}
		if (memchr(s + 1, '[', hlen - 1) ||
		    memchr(s + hlen, ']', n - hlen))
			return error_set(err, EINVAL, "bad IPv6 literal");
	} else {
		if (memchr(s, '[', n) || memchr(s, ']', n))
			return error_set(err, EINVAL, "bad host");
		colon = memrchr(s, ':', n);
		if (colon && memchr(s, ':', colon - s))
			return error_set(err, EINVAL,
					 "IPv6 literal without brackets");
		hlen = colon ? (size_t)(colon - s) : n;
	}
	if (hlen == 0)
		return error_set(err, EINVAL, "empty host in request target");
	if (hlen >= sizeof(req->host))
		return error_set(err, EINVAL, "host longer than %zu bytes",
				 sizeof(req->host) - 1);
	memcpy(req->host, s, hlen);
	req->host[hlen] = '\0';
	if (!colon) {
		if (port_required)
			return error_set(err, EINVAL,
					 "CONNECT target needs host:port");
		req->port = 80;
		return 0;
	}
	if (parse_port(colon + 1, n - hlen - 1, &req->port) < 0)
		return error_set(err, EINVAL, "bad port in request target");
	return 0;
}

static int
parse_target(const char *buf, size_t off, size_t n, struct http_req *req,
	     struct error *err)
{
	const char *t = buf + off;
	size_t alen;

	if (req->connect)
		return parse_authority(t, n, true, req, err);
	if (n >= 8 && !strncasecmp(t, "https://", 8))
		return error_set(err, EPROTONOSUPPORT,
				 "https:// URI in a plain request (use "
				 "CONNECT)");
	if (n < 7 || strncasecmp(t, "http://", 7))
		return error_set(err, EINVAL,
				 t[0] == '/' ? "request target is not an "
					       "absolute http:// URI (not a "
					       "proxy request)"
					     : "request target is not an "
					       "absolute http:// URI");
	if (memchr(t, '#', n))
		return error_set(err, EINVAL, "fragment in request target");
	t += 7;
	n -= 7;
	for (alen = 0; alen < n && t[alen] != '/' && t[alen] != '?'; alen++)
		;
	if (parse_authority(t, alen, false, req, err) < 0)
		return -EINVAL;
	req->path_off = t + alen - buf;
	req->path_len = n - alen;
	return 0;
}

static bool
name_is(const char *buf, const struct http_hdr *h, const char *name)
{
	return h->name_len == strlen(name) &&
	       !strncasecmp(buf + h->name_off, name, h->name_len);
}

/* Framing fields must be unambiguous: a proxy and a server that read a
 * body's length differently is how requests get smuggled. */
static int
check_framing(const char *buf, const struct http_req *req, struct error *err)
{
	int ncl = 0, nte = 0;

	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_hdr *h = &req->hdr[i];

		if (name_is(buf, h, "content-length")) {
			if (++ncl > 1)
				return error_set(
					err, EINVAL,
					"more than one Content-Length");
			if (h->value_len == 0 || h->value_len > 18)
				return error_set(err, EINVAL,
						 "bad Content-Length");
			for (size_t k = 0; k < h->value_len; k++)
				if (!is_digit(buf[h->value_off + k]))
					return error_set(err, EINVAL,
							 "bad Content-Length");
		} else if (name_is(buf, h, "transfer-encoding")) {
			nte++;
		}
	}
	if (ncl && nte)
		return error_set(err, EINVAL,
				 "both Content-Length and Transfer-Encoding");
	return 0;
}

/* Parse a request head: length, 0 for more, or < 0 with the reason. */
int
http_req_parse(const char *buf, size_t len, struct http_req *req,
	       struct error *err)
{
	size_t end, i = 0, tstart, tlen;
	int r;

	memset(req, 0, sizeof(*req));
	end = find_head_end(buf,
			    len < HTTP_REQ_HEAD_MAX ? len : HTTP_REQ_HEAD_MAX);
	if (!end) {
		if (len >= HTTP_REQ_HEAD_MAX)
			return error_set(err, E2BIG,
					 "request head larger than %d bytes",
					 HTTP_REQ_HEAD_MAX);
		if (check_partial(buf, len, err) < 0)
			return -EINVAL;
		/* A method is uppercase letters; say no at the first
		 * byte that cannot be one. */
		for (size_t k = 0; k < len && buf[k] != ' '; k++)
			if (!(buf[k] >= 'A' && buf[k] <= 'Z') ||
			    k >= HTTP_REQ_METHOD_MAX - 1)
				return error_set(err, EINVAL, "bad method");
		return 0;
	}
	if (check_partial(buf, end, err) < 0)
		return -EINVAL;

	/* request-line = method SP request-target SP HTTP-version CRLF */
	while (i < end && buf[i] >= 'A' && buf[i] <= 'Z' &&
	       i < HTTP_REQ_METHOD_MAX - 1)
		i++;
	if (i == 0 || buf[i] != ' ')
		return error_set(err, EINVAL, "bad method");
	memcpy(req->method, buf, i);
	req->method[i] = '\0';
	req->connect = !strcmp(req->method, "CONNECT");
	tstart = ++i;
	while (i < end && buf[i] > 0x20 && buf[i] < 0x7f)
		i++;
	tlen = i - tstart;
	if (tlen == 0 || buf[i] != ' ')
		return error_set(err, EINVAL, "bad request target");
	i++;
	if (end - i < 10 || memcmp(buf + i, "HTTP/1.", 7) ||
	    (buf[i + 7] != '0' && buf[i + 7] != '1') ||
	    memcmp(buf + i + 8, "\r\n", 2))
		return error_set(err, EINVAL, "bad HTTP version (HTTP/1.x)");
	req->minor = buf[i + 7] - '0';
	i += 10;

	/* field-line = field-name ":" OWS field-value OWS CRLF */
	while (i < end - 2) {
		struct http_hdr *h;
		size_t ns = i, vs, ve;

		if (req->nhdr == HTTP_REQ_HEADERS_MAX)
			return error_set(err, EINVAL,
					 "more than %d header fields",
					 HTTP_REQ_HEADERS_MAX);
		if (buf[i] == ' ' || buf[i] == '\t')
			return error_set(err, EINVAL,
					 "obsolete header line folding");
		while (is_tchar(buf[i]))
			i++;
		/* No space before the colon (RFC 9112 5.1). */
		if (i == ns || buf[i] != ':')
			return error_set(err, EINVAL, "bad header field name");
		h = &req->hdr[req->nhdr++];
		h->name_off = ns;
		h->name_len = i - ns;
		i++;
		while (buf[i] == ' ' || buf[i] == '\t')
			i++;
		vs = ve = i;
		while (buf[i] != '\r') {
			unsigned char c = buf[i];

			if (c != ' ' && c != '\t' && !is_field_vchar(c))
				return error_set(err, EINVAL,
						 "control character in header "
						 "field");
			i++;
			if (c != ' ' && c != '\t')
				ve = i;
		}
		h->value_off = vs;
		h->value_len = ve - vs;
		i += 2; /* CRLF, checked by check_partial */
	}
	if (check_framing(buf, req, err) < 0)
		return -EINVAL;
	r = parse_target(buf, tstart, tlen, req, err);
	if (r < 0)
		return r == -EPROTONOSUPPORT ? HTTP_REQ_HTTPS : -EINVAL;
	req->head_len = end;
	return end;
}

/* First field called name (any case), or NULL. */
const char *
http_req_header(const struct http_req *req, const char *buf, const char *name,
		size_t *vlen)
{
	for (size_t i = 0; i < req->nhdr; i++) {
		if (name_is(buf, &req->hdr[i], name)) {
			*vlen = req->hdr[i].value_len;
			return buf + req->hdr[i].value_off;
		}
	}
	return NULL;
}

/* Is field name (n bytes) listed in any Connection header's tokens? */
static bool
listed_in_connection(const struct http_req *req, const char *buf,
		     const char *name, size_t n)
{
	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_hdr *h = &req->hdr[i];
		const char *v = buf + h->value_off, *e = v + h->value_len;

		if (!name_is(buf, h, "connection"))
			continue;
		while (v < e) {
			const char *t;

			while (v < e && (*v == ' ' || *v == '\t' || *v == ','))
				v++;
			t = v;
			while (v < e && *v != ',' && *v != ' ' && *v != '\t')
				v++;
			if ((size_t)(v - t) == n && !strncasecmp(t, name, n))
				return true;
		}
	}
	return false;
}

static bool
is_hop_by_hop(const struct http_req *req, const char *buf,
	      const struct http_hdr *h)
{
	static const char *const hop[] = {
		"connection",
		"proxy-connection",
		"keep-alive",
		"te",
		"trailer",
		"upgrade",
		"proxy-authorization",
		"proxy-authenticate",
		"host",
	};

	for (size_t i = 0; i < ARRAY_SIZE(hop); i++)
		if (name_is(buf, h, hop[i]))
			return true;
	/* Fields named in Connection are hop-by-hop too, but never the
	 * body's framing: dropping those would change what the server
	 * reads as the next request. */
	if (name_is(buf, h, "content-length") ||
	    name_is(buf, h, "transfer-encoding"))
		return false;
	return listed_in_connection(req, buf, buf + h->name_off, h->name_len);
}

/* Append the origin-form head to send upstream for a parsed request. */
void
http_req_rewrite(const struct http_req *req, const char *buf,
		 const char *host_norm, struct buf *out)
{
	char line[HTTP_REQ_HOST_MAX + 32];
	int n;

	buf_append(out, req->method, strlen(req->method));
	buf_append(out, " ", 1);
	if (req->path_len == 0 || buf[req->path_off] == '?')
		buf_append(out, "/", 1);
	buf_append(out, buf + req->path_off, req->path_len);
	n = snprintf(line, sizeof(line), " HTTP/1.%d\r\n", req->minor);
	buf_append(out, line, n);
	/* The Host field is made from the URI we checked: a client's own
	 * Host could name another virtual host on the same server. */
	if (req->port == 80)
		n = snprintf(line, sizeof(line), "Host: %s\r\n", host_norm);
	else
		n = snprintf(line, sizeof(line), "Host: %s:%u\r\n", host_norm,
			     req->port);
	buf_append(out, line, n);
	for (size_t i = 0; i < req->nhdr; i++) {
		const struct http_hdr *h = &req->hdr[i];

		if (is_hop_by_hop(req, buf, h))
			continue;
		buf_append(out, buf + h->name_off, h->name_len);
		buf_append(out, ": ", 2);
		buf_append(out, buf + h->value_off, h->value_len);
		buf_append(out, "\r\n", 2);
	}
	buf_append(out, "Connection: close\r\n\r\n", 21);
}
