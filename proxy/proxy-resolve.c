/* proxy-resolve.c - a resolver process of the proxy: one getaddrinfo at a
 * time, so that a slow DNS answer blocks this process and not the relay. */
#include "proxy-proto.h"
#include "proxy-sandbox.h"
#include "proxy-serve.h"

#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static bool
host_ok(const char *h)
{
	size_t n = strnlen(h, PROXY_HOST_MAX);

	if (n == 0 || n == PROXY_HOST_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') ||
		      (h[i] >= '0' && h[i] <= '9') || h[i] == '-' ||
		      h[i] == '.'))
			return false;
	return true;
}

static void
resolve(const struct proxy_resolve_req *q, struct proxy_resolve_rep *rep)
{
	/* Names only: the relay resolves nothing numeric, and a numeric
	 * string here must not be read as an address. */
	struct addrinfo hints = {
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM,
		.ai_flags = 0,
	};
	struct addrinfo *res = NULL;

	memset(rep, 0, sizeof(*rep));
	rep->id = q->id;
	if (!host_ok(q->host)) {
		rep->gai_err = EAI_NONAME;
		return;
	}
	rep->gai_err = getaddrinfo(q->host, NULL, &hints, &res);
	if (rep->gai_err)
		return;
	for (struct addrinfo *ai = res; ai && rep->n < PROXY_RESOLVE_ADDRS;
	     ai = ai->ai_next) {
		struct proxy_resolve_addr *a = &rep->a[rep->n];

		if (ai->ai_family == AF_INET &&
		    ai->ai_addrlen >= sizeof(struct sockaddr_in)) {
			a->family = 4;
			memcpy(a->addr,
			       &((struct sockaddr_in *)ai->ai_addr)->sin_addr,
			       4);
		} else if (ai->ai_family == AF_INET6 &&
			   ai->ai_addrlen >= sizeof(struct sockaddr_in6)) {
			a->family = 6;
			memcpy(a->addr,
			       &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
			       16);
		} else {
			continue;
		}
		rep->n++;
	}
	freeaddrinfo(res);
}

/* A resolver process: one query at a time over fd; never returns. */
void
proxy_resolve_main(int fd)
{
	struct error err = { 0 };

	struct proxy_resolve_rep hello = { 0 };

	if (proxy_sandbox_seccomp(PROXY_ROLE_RESOLVER, &err) < 0)
		_exit(1);
	/* Id 0: "sandboxed"; the relay waits for it before saying ready. */
	if (send(fd, &hello, sizeof(hello), MSG_NOSIGNAL) != sizeof(hello))
		_exit(1);
	for (;;) {
		struct proxy_resolve_req q;
		struct proxy_resolve_rep rep;
		ssize_t n = recv(fd, &q, sizeof(q), 0);

		if (n == 0)
			_exit(0); /* the relay is gone */
		if (n < 0 && errno == EINTR)
			continue;
		/* Exact sizes only: the relay speaks this protocol and
		 * nothing else. */
		if (n != sizeof(q))
			_exit(1);
		q.host[PROXY_HOST_MAX - 1] = '\0';
		resolve(&q, &rep);
		if (send(fd, &rep, sizeof(rep), MSG_NOSIGNAL) != sizeof(rep))
			_exit(1);
	}
}
