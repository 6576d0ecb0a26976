/* proxy-hostaddr.c - this host's addresses: a name that resolves to one of
 * them reaches the manager's own services, so the proxy treats them like
 * loopback (allowlist_classify_own). */
#include "proxy-hostaddr.h"

#include <ifaddrs.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

static bool
seen(const struct allow_addr *a, size_t n, const struct allow_addr *x)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].family == x->family &&
		    !memcmp(a[i].addr, x->addr, sizeof(x->addr)))
			return true;
	return false;
}

/* The addresses of every interface of this network namespace. */
int
proxy_hostaddr_collect(struct allow_addr **out, size_t *n, struct error *err)
{
	struct ifaddrs *ifa = NULL;
	struct allow_addr *a = NULL;
	size_t cnt = 0, cap = 0;

	*out = NULL;
	*n = 0;
	if (getifaddrs(&ifa) < 0)
		return error_sys(err, errno, "getifaddrs");
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		const struct sockaddr *sa = i->ifa_addr;
		struct allow_addr x = { 0 };

		if (!sa)
			continue;
		if (sa->sa_family == AF_INET) {
			x.family = AF_INET;
			memcpy(x.addr, &((struct sockaddr_in *)sa)->sin_addr,
			       4);
		} else if (sa->sa_family == AF_INET6) {
			x.family = AF_INET6;
			memcpy(x.addr, &((struct sockaddr_in6 *)sa)->sin6_addr,
			       16);
		} else {
			continue;
		}
		if (seen(a, cnt, &x))
			continue;
		if (cnt == cap) {
			cap = cap ? cap * 2 : 16;
			a = xrealloc(a, cap * sizeof(*a));
		}
		a[cnt++] = x;
	}
	freeifaddrs(ifa);
	*out = a;
	*n = cnt;
	return 0;
}
