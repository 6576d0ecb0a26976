/* test-proxy-http.c - the proxy's request-head parser and rewriter */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http-req.h"

static int
parse(const char *s, struct http_req *req)
{
	struct error err = { 0 };

	return http_req_parse(s, strlen(s), req, &err);
}

Test(http_req, connect_authority_form)
{
	static struct http_req req;
	const char *s = "CONNECT Example.COM:443 HTTP/1.1\r\n"
			"Host: example.com:443\r\n\r\nTLS...";

	cr_assert_eq(parse(s, &req), (int)(strlen(s) - 6));
	cr_expect(req.connect);
	cr_expect_str_eq(req.method, "CONNECT");
	cr_expect_str_eq(req.host, "Example.COM");
	cr_expect_eq(req.port, 443);
	cr_expect_eq(req.minor, 1);
	cr_expect_eq(req.nhdr, 1);

	cr_assert_gt(parse("CONNECT [::1]:8443 HTTP/1.0\r\n\r\n", &req), 0);
	cr_expect_str_eq(req.host, "[::1]");
	cr_expect_eq(req.port, 8443);
	cr_expect_eq(req.minor, 0);

	cr_expect_eq(parse("CONNECT example.com HTTP/1.1\r\n\r\n", &req),
		     -EINVAL);
	cr_expect_eq(parse("CONNECT http://example.com:443/ HTTP/1.1\r\n\r\n",
			   &req),
		     -EINVAL);
	cr_expect_eq(parse("CONNECT a@example.com:443 HTTP/1.1\r\n\r\n", &req),
		     -EINVAL);
	cr_expect_eq(parse("CONNECT ::1:443 HTTP/1.1\r\n\r\n", &req), -EINVAL);
	cr_expect_eq(parse("CONNECT [::1]x:443 HTTP/1.1\r\n\r\n", &req),
		     -EINVAL);
}

Test(http_req, absolute_form_and_rewrite)
{
	static struct http_req req;
	struct buf out = { 0 };
	const char *s =
		"GET http://Example.COM:8080/a/b?c=d HTTP/1.1\r\n"
		"Host: evil.example\r\n"
		"User-Agent: t\r\n"
		"Proxy-Connection: keep-alive\r\n"
		"Proxy-Authorization: Basic Zm9vOmJhcg==\r\n"
		"Connection: keep-alive, X-Hop\r\n"
		"X-Hop: 1\r\n"
		"Keep-Alive: 5\r\n"
		"Accept:   */*  \r\n"
		"\r\n";

	cr_assert_eq(parse(s, &req), (int)strlen(s));
	cr_expect_not(req.connect);
	cr_expect_str_eq(req.host, "Example.COM");
	cr_expect_eq(req.port, 8080);
	http_req_rewrite(&req, s, "example.com", &out);
	cr_expect_str_eq(out.data, "GET /a/b?c=d HTTP/1.1\r\n"
				   "Host: example.com:8080\r\n"
				   "User-Agent: t\r\n"
				   "Accept: */*\r\n"
				   "Connection: close\r\n\r\n");
	buf_free(&out);
}

Test(http_req, paths)
{
	static struct http_req req;
	struct buf out = { 0 };
	const char *a = "HEAD http://h.example HTTP/1.0\r\n\r\n";
	const char *b = "GET http://h.example?x=1 HTTP/1.1\r\n\r\n";
	const char *c = "POST HTTP://h.example:80/up HTTP/1.1\r\n"
			"Content-Length: 3\r\n\r\nabc";

	cr_assert_gt(parse(a, &req), 0);
	cr_expect_eq(req.port, 80);
	http_req_rewrite(&req, a, "h.example", &out);
	cr_expect_str_eq(out.data, "HEAD / HTTP/1.0\r\nHost: h.example\r\n"
				   "Connection: close\r\n\r\n");
	out.len = 0;
	cr_assert_gt(parse(b, &req), 0);
	http_req_rewrite(&req, b, "h.example", &out);
	cr_expect_str_eq(out.data, "GET /?x=1 HTTP/1.1\r\nHost: h.example\r\n"
				   "Connection: close\r\n\r\n");
	out.len = 0;
	cr_assert_eq(parse(c, &req), (int)strlen(c) - 3);
	http_req_rewrite(&req, c, "h.example", &out);
	cr_expect_str_eq(out.data, "POST /up HTTP/1.1\r\nHost: h.example\r\n"
				   "Content-Length: 3\r\n"
				   "Connection: close\r\n\r\n");
	buf_free(&out);
}

Test(http_req, framing_fields_never_dropped)
{
	static struct http_req req;
	struct buf out = { 0 };
	const char *s = "POST http://h.example/ HTTP/1.1\r\n"
			"Connection: Content-Length, Host\r\n"
			"Content-Length: 2\r\n\r\nhi";

	cr_assert_gt(parse(s, &req), 0);
	http_req_rewrite(&req, s, "h.example", &out);
	cr_expect(strstr(out.data, "\r\nContent-Length: 2\r\n"), "%s",
		  out.data);
	cr_expect(strstr(out.data, "Host: h.example\r\n"));
	buf_free(&out);
}

Test(http_req, refused_forms)
{
	static struct http_req req;
	static const char *const bad[] = {
		/* not a proxy request */
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"OPTIONS * HTTP/1.1\r\n\r\n",
		"GET ftp://h.example/ HTTP/1.1\r\n\r\n",
		/* userinfo: the classic allowed.example@evil.net */
		"GET http://allowed.example@evil.net/ HTTP/1.1\r\n\r\n",
		"GET http://allowed.example:80@evil.net/ HTTP/1.1\r\n\r\n",
		"GET http://h%2eexample/ HTTP/1.1\r\n\r\n",
		"GET http://h.example\\@evil.net/ HTTP/1.1\r\n\r\n",
		"GET http:///path HTTP/1.1\r\n\r\n",
		"GET http://:80/ HTTP/1.1\r\n\r\n",
		"GET http://h.example:/ HTTP/1.1\r\n\r\n",
		"GET http://h.example:0/ HTTP/1.1\r\n\r\n",
		"GET http://h.example:65536/ HTTP/1.1\r\n\r\n",
		"GET http://h.example:080/ HTTP/1.1\r\n\r\n",
		"GET http://h.example:8o/ HTTP/1.1\r\n\r\n",
		"GET http://::1/ HTTP/1.1\r\n\r\n",
		"GET http://[::1/ HTTP/1.1\r\n\r\n",
		"GET http://h.example/#frag HTTP/1.1\r\n\r\n",
		/* request line */
		"get http://h.example/ HTTP/1.1\r\n\r\n",
		"GET  http://h.example/ HTTP/1.1\r\n\r\n",
		"GET http://h.example/ HTTP/2.0\r\n\r\n",
		"GET http://h.example/ HTTP/1.1 \r\n\r\n",
		"GET http://h.example/\x01 HTTP/1.1\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\n\r\n",
		"\r\nGET http://h.example/ HTTP/1.1\r\n\r\n",
		"VERYLONGMETHODNAME http://h.example/ HTTP/1.1\r\n\r\n",
		/* header fields */
		"GET http://h.example/ HTTP/1.1\r\nA: b\r\n c\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\r\nA : b\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\r\n: b\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\r\nA b\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\r\nA: b\rc\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\r\nA: b\x7f\r\n\r\n",
		"GET http://h.example/ HTTP/1.1\r\nA: b\nX: c\r\n\r\n",
		/* framing */
		"POST http://h.example/ HTTP/1.1\r\nContent-Length: 1\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
		"POST http://h.example/ HTTP/1.1\r\nContent-Length: 1\r\n"
		"Content-Length: 1\r\n\r\n",
		"POST http://h.example/ HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
		"POST http://h.example/ HTTP/1.1\r\n"
		"Content-Length: 0x10\r\n\r\n",
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		cr_expect_eq(parse(bad[i], &req), -EINVAL, "accepted: %s",
			     bad[i]);
	cr_expect_eq(parse("GET https://h.example/ HTTP/1.1\r\n\r\n", &req),
		     HTTP_REQ_HTTPS);
	cr_expect_eq(parse("GET HTTPS://h.example/ HTTP/1.1\r\n\r\n", &req),
		     HTTP_REQ_HTTPS);
}

Test(http_req, nul_byte_refused)
{
	static struct http_req req;
	const char s[] = "GET http://h.example/ HTTP/1.1\r\nA: b\0c\r\n\r\n";
	struct error err;

	cr_expect_eq(http_req_parse(s, sizeof(s) - 1, &req, &err), -EINVAL);
}

Test(http_req, every_prefix_needs_more)
{
	static struct http_req req;
	const char *s = "GET http://h.example:8080/x HTTP/1.1\r\n"
			"Host: h.example\r\nAccept: */*\r\n\r\n";
	struct error err;
	size_t n = strlen(s);

	for (size_t k = 0; k < n; k++) {
		char *t = malloc(k ? k : 1);

		memcpy(t, s, k);
		cr_expect_eq(http_req_parse(t, k, &req, &err), 0, "cut at %zu",
			     k);
		free(t);
	}
	cr_expect_eq(http_req_parse(s, n, &req, &err), (int)n);
}

Test(http_req, early_rejection)
{
	static struct http_req req;
	struct error err;

	/* no need to wait for 16 KiB to know these are no request */
	cr_expect_eq(http_req_parse("\x16\x03\x01", 3, &req, &err), -EINVAL);
	cr_expect_eq(http_req_parse("GET http://x/\n", 14, &req, &err),
		     -EINVAL);
	cr_expect_eq(http_req_parse("get ", 4, &req, &err), -EINVAL);
}

Test(http_req, bounds)
{
	static struct http_req req;
	struct error err;
	char *big = malloc(HTTP_REQ_HEAD_MAX + 100);
	const char *line = "GET http://h.example/ HTTP/1.1\r\n";
	size_t n = strlen(line);

	memcpy(big, line, n);
	while (n < HTTP_REQ_HEAD_MAX + 50)
		n += sprintf(big + n, "X-Pad: %s\r\n", "aaaaaaaaaaaaaaaa");
	cr_expect_eq(http_req_parse(big, n, &req, &err), HTTP_REQ_TOO_LARGE);
	cr_expect_eq(http_req_parse(big, HTTP_REQ_HEAD_MAX, &req, &err),
		     HTTP_REQ_TOO_LARGE);
	/* 101 fields: too many, though small */
	n = strlen(line);
	for (int i = 0; i < 101; i++)
		n += sprintf(big + n, "A: b\r\n");
	n += sprintf(big + n, "\r\n");
	cr_expect_eq(http_req_parse(big, n, &req, &err), -EINVAL);
	/* 100 are fine */
	n = strlen(line);
	for (int i = 0; i < 100; i++)
		n += sprintf(big + n, "A: b\r\n");
	n += sprintf(big + n, "\r\n");
	cr_expect_eq(http_req_parse(big, n, &req, &err), (int)n);
	/* a 256-byte host does not fit */
	n = sprintf(big, "CONNECT ");
	memset(big + n, 'a', 256);
	n += 256;
	n += sprintf(big + n, ":443 HTTP/1.1\r\n\r\n");
	cr_expect_eq(http_req_parse(big, n, &req, &err), -EINVAL);
	free(big);
}
