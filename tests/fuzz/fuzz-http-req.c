/* fuzz-http-req.c - libFuzzer target: hostile request heads to the proxy,
 * through parsing, host normalisation, matching and rewriting */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "allowlist.h"
#include "http-req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct allowlist *al;

static void
setup(void)
{
	static char e1[] = "allowed.example:443", e2[] = "*.example.com:80",
		    e3[] = "127.0.0.1:8080", e4[] = "[::1]:8080";
	static char *const list[] = { e1, e2, e3, e4 };

	al = allowlist_new(list, 4, NULL);
	if (!al)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_req req;
	struct error err = { 0 };
	struct host h;
	struct buf out = { 0 };
	int r;

	if (!al)
		setup();
	r = http_req_parse((const char *)data, size, &req, &err);
	if (r < 0 && r != -EINVAL && r != HTTP_REQ_TOO_LARGE &&
	    r != HTTP_REQ_HTTPS)
		abort();
	if (r <= 0)
		return 0;
	if ((size_t)r > size || (size_t)r != req.head_len ||
	    req.head_len > HTTP_REQ_HEAD_MAX || !req.host[0] || !req.port)
		abort();
	if (allowlist_normalize_host(req.host, strlen(req.host), &h, &err) ==
	    0) {
		int m = allowlist_match(al, &h, req.port);

		if (m >= (int)al->n)
			abort();
		/* a normalised name is plain: lower-case, digits, '-', '.' */
		if (h.kind == HOST_NAME)
			for (const char *p = h.name; *p; p++)
				if (!((*p >= 'a' && *p <= 'z') ||
				      (*p >= '0' && *p <= '9') || *p == '-' ||
				      *p == '.'))
					abort();
		if (!req.connect) {
			char *end;

			http_req_rewrite(&req, (const char *)data, h.name,
					 &out);
			/* What goes upstream is exactly one head: it ends at
			 * its only blank line, and CR and LF come only as
			 * CRLF, so nothing can be smuggled after it. */
			end = memmem(out.data, out.len, "\r\n\r\n", 4);
			if (!end || end + 4 != out.data + out.len ||
			    memchr(out.data, '\0', out.len))
				abort();
			for (size_t i = 0; i < out.len; i++) {
				char c = out.data[i];
				char prev = i ? out.data[i - 1] : 0;
				char next = out.data[i + 1];	/* NUL-ended */

				if ((c == '\n' && prev != '\r') ||
				    (c == '\r' && next != '\n'))
					abort();
			}
		}
	}
	buf_free(&out);
	return 0;
}
