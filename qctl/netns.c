/* netns.c - per-builder network namespace, tap and proxy listener */
#include "netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>

static int
write_sysctl(const char *path, const char *val)
{
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;	/* no IPv6 at all */
	if (write_in_full(fd, val, strlen(val)) < 0)
		return -errno;
	return 0;
}

static int
if_up(int sock, const char *ifname, struct error *err)
{
	struct ifreq ifr = { 0 };

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0)
		return error_sys(err, errno, "SIOCGIFFLAGS %s", ifname);
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0)
		return error_sys(err, errno, "SIOCSIFFLAGS %s", ifname);
	return 0;
}

static int
if_addr(int sock, const char *ifname, const char *ip, int prefix,
	struct error *err)
{
	struct ifreq ifr = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;

	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	sin->sin_family = AF_INET;
	inet_pton(AF_INET, ip, &sin->sin_addr);
	if (ioctl(sock, SIOCSIFADDR, &ifr) < 0)
		return error_sys(err, errno, "SIOCSIFADDR %s", ifname);
	sin->sin_addr.s_addr = htonl(~0u << (32 - prefix));
	if (ioctl(sock, SIOCSIFNETMASK, &ifr) < 0)
		return error_sys(err, errno, "SIOCSIFNETMASK %s", ifname);
	return 0;
}

/* Everything that must happen inside the new namespace. */
static int
netns_populate(struct netns *ns, struct error *err)
{
	_cleanup_close_ int sock = -1;
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_port = htons(NETNS_PROXY_PORT) };
	struct ifreq ifr = { 0 };
	int one = 1, r;

	/* No IPv6 in a builder's world: not even a link-local address. */
	write_sysctl("/proc/sys/net/ipv6/conf/default/disable_ipv6", "1");
	write_sysctl("/proc/sys/net/ipv6/conf/all/disable_ipv6", "1");
	sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		return error_sys(err, errno, "socket");
	r = if_up(sock, "lo", err);
	if (r < 0)
		return r;
	ns->tap_fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (ns->tap_fd < 0)
		return error_sys(err, errno, "open /dev/net/tun");
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", NETNS_TAP);
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	if (ioctl(ns->tap_fd, TUNSETIFF, &ifr) < 0)
		return error_sys(err, errno, "TUNSETIFF %s", NETNS_TAP);
	r = if_addr(sock, NETNS_TAP, NETNS_HOST_IP, NETNS_PREFIX, err);
	if (r == 0)
		r = if_up(sock, NETNS_TAP, err);
	if (r < 0)
		return r;
	/* The proxy's listener exists only here, on the tap's address: the
	 * guest can reach nothing else, and nothing else can reach it. */
	ns->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (ns->listen_fd < 0)
		return error_sys(err, errno, "socket");
	setsockopt(ns->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	inet_pton(AF_INET, NETNS_HOST_IP, &sa.sin_addr);
	if (bind(ns->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(ns->listen_fd, 64) < 0)
		return error_sys(err, errno, "proxy listener %s:%d",
				 NETNS_HOST_IP, NETNS_PROXY_PORT);
	return 0;
}

int
netns_create(const char *name, struct netns *ns, struct error *err)
{
	_cleanup_close_ int self = -1;
	_cleanup_free_ char *pin = NULL;
	int fd, r = 0;

	memset(ns, 0, sizeof(*ns));
	ns->fd = ns->tap_fd = ns->listen_fd = -1;
	if (strlen(name) >= sizeof(ns->name) || strchr(name, '/') ||
	    name[0] == '.' || !*name)
		return error_set(err, EINVAL, "bad namespace name");
	snprintf(ns->name, sizeof(ns->name), "%s", name);
	if (mkdir(NETNS_DIR, 0755) < 0 && errno != EEXIST)
		return error_sys(err, errno, "mkdir %s", NETNS_DIR);
	pin = xasprintf("%s/%s", NETNS_DIR, name);
	fd = open(pin, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0);
	if (fd < 0)
		return error_sys(err, errno, "create %s", pin);
	close(fd);
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (self < 0) {
		r = error_sys(err, errno, "open /proc/self/ns/net");
		unlink(pin);
		return r;
	}
	/* Single-threaded: switching this thread's namespace switches the
	 * process's; it is switched back before returning, whatever happens. */
	if (unshare(CLONE_NEWNET) < 0) {
		r = error_sys(err, errno, "unshare(CLONE_NEWNET)");
		unlink(pin);
		return r;
	}
	if (mount("/proc/self/ns/net", pin, "none", MS_BIND, NULL) < 0) {
		r = error_sys(err, errno, "bind mount %s", pin);
	} else {
		ns->mounted = true;
		ns->fd = open(pin, O_RDONLY | O_CLOEXEC);
		if (ns->fd < 0)
			r = error_sys(err, errno, "open %s", pin);
		else
			r = netns_populate(ns, err);
	}
	if (setns(self, CLONE_NEWNET) < 0) {
		/* Staying in the builder's namespace would be far worse
		 * than dying: the caller must not go on. */
		int e = errno;

		r = error_sys(err, e, "cannot return to own network "
			      "namespace");
		abort();
	}
	if (r < 0)
		netns_destroy(ns);
	return r;
}

void
netns_destroy(struct netns *ns)
{
	_cleanup_free_ char *pin = NULL;

	if (ns->tap_fd >= 0)
		close(ns->tap_fd);
	if (ns->listen_fd >= 0)
		close(ns->listen_fd);
	if (ns->fd >= 0)
		close(ns->fd);
	ns->tap_fd = ns->listen_fd = ns->fd = -1;
	if (ns->name[0]) {
		netns_remove(ns->name, NULL);
		ns->name[0] = '\0';
	}
	ns->mounted = false;
}

int
netns_remove(const char *name, struct error *err)
{
	_cleanup_free_ char *pin = NULL;

	if (strchr(name, '/') || name[0] == '.' || !*name)
		return error_set(err, EINVAL, "bad namespace name");
	pin = xasprintf("%s/%s", NETNS_DIR, name);
	/* The namespace itself goes when its last user (QEMU's tap, the
	 * helper) is gone; the pin must go now. */
	if (umount2(pin, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		return error_sys(err, errno, "umount %s", pin);
	if (unlink(pin) < 0 && errno != ENOENT)
		return error_sys(err, errno, "unlink %s", pin);
	return 0;
}
