/* allowlist.h - proxy allowlist: entries, host normalisation, matching,
 * and classification of resolved addresses.  Pure functions, no I/O. */
#ifndef QCTL_ALLOWLIST_H
#define QCTL_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Longest host name (RFC 1035) plus room for "[" IPv6 "]" and NUL. */
#define ALLOW_HOST_MAX 256

enum allow_kind {
	ALLOW_NAME,   /* "host:port": exact, case-insensitive */
	ALLOW_SUFFIX, /* "*.suffix:port": at least one label before */
	ALLOW_IPV4,   /* "a.b.c.d:port", canonical dotted quad only */
	ALLOW_IPV6,   /* "[v6]:port", never IPv4-mapped */
};

struct allow_entry {
	enum allow_kind kind;
	/* Lower-case name; for ALLOW_SUFFIX ".suffix" (with the leading
	 * dot); for addresses the canonical text ("[::1]" for IPv6). */
	char host[ALLOW_HOST_MAX];
	uint8_t addr[16]; /* IPv4 in the first 4 bytes */
	uint16_t port;
};

/* An address of this host: of the interfaces of the network namespace
 * the proxy connects upstream from (the manager's). */
struct allow_addr {
	int family;	  /* AF_INET or AF_INET6 */
	uint8_t addr[16]; /* IPv4 in the first 4 bytes */
};

struct allowlist {
	struct allow_entry *e;
	size_t n;
	struct allow_addr *own; /* this host's addresses (see above) */
	size_t n_own;
};

/* A request's host after normalisation. */
enum host_kind {
	HOST_NAME,
	HOST_IPV4,
	HOST_IPV6,
};

struct host {
	enum host_kind kind;
	char name[ALLOW_HOST_MAX]; /* lower-case, canonical */
	uint8_t addr[16];
};

/* Parse one entry as written in a recipe; 0 or -EINVAL with a reason. */
int allowlist_parse_entry(const char *s, struct allow_entry *out,
			  struct error *err);
/* Validate one entry (for recipe checks); 0 or -EINVAL with a reason. */
int allowlist_check_entry(const char *s, struct error *err);
/* Parse every entry; NULL with err filled on the first bad one. */
struct allowlist *allowlist_new(char *const *entries, size_t n,
				struct error *err);
void allowlist_free(struct allowlist *al);

/*
 * Normalise a host taken from a request (len bytes, no port; IPv6 in
 * brackets): lower-case, and refuse every form that could mean something
 * other than what it looks like.  0, or -EINVAL with the reason in err.
 */
int allowlist_normalize_host(const char *raw, size_t len, struct host *out,
			     struct error *err);

/* Index of the first entry that admits host:port, or -1. */
int allowlist_match(const struct allowlist *al, const struct host *h,
		    uint16_t port);

/* What kind of network a (resolved) address belongs to. */
enum addr_class {
	ADDR_PUBLIC,
	ADDR_UNSPECIFIED,
	ADDR_LOOPBACK,
	ADDR_HOST,	 /* an address of this host's interfaces */
	ADDR_LINK_LOCAL, /* incl. 169.254.169.254, cloud metadata */
	ADDR_PRIVATE,	 /* RFC 1918, fc00::/7, fec0::/10 */
	ADDR_SHARED,	 /* 100.64.0.0/10, carrier-grade NAT */
	ADDR_MULTICAST,
	ADDR_BROADCAST,
	ADDR_RESERVED, /* 240/4, 0/8, ::/96 and the like */
	ADDR_MAPPED,   /* ::ffff:0:0/96: an IPv4 address in disguise */
};

/* Classify an address; family is AF_INET (4 bytes) or AF_INET6 (16). */
enum addr_class allowlist_classify(int family, const uint8_t *addr);
/*
 * The same, and an address that the table calls public but that is one of
 * own[] (this host's, see struct allow_addr) is ADDR_HOST; so is a NAT64
 * or 6to4 address that carries one of own[]'s IPv4 addresses.
 */
enum addr_class allowlist_classify_own(int family, const uint8_t *addr,
				       const struct allow_addr *own,
				       size_t n_own);
/* Set the host's own addresses of al (a copy; replaces earlier ones). */
void allowlist_set_own(struct allowlist *al, const struct allow_addr *own,
		       size_t n_own);
/* Short English name of a class ("loopback"). */
const char *allowlist_class_name(enum addr_class c);
/*
 * May the proxy connect to this resolved address for port?  Public
 * addresses yes; any other class (this host's own addresses among them,
 * see allowlist_set_own) only if that very IP:port is listed.
 */
bool allowlist_addr_ok(const struct allowlist *al, int family,
		       const uint8_t *addr, uint16_t port,
		       enum addr_class *cls);

#endif
