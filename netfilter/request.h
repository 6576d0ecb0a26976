/* request.h - typed reader and field validators for the manager's requests */
#ifndef QCTL_NF_REQUEST_H
#define QCTL_NF_REQUEST_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "nf-proto.h"
#include "util.h"

/* A SETUP request after validation: the only input the ruleset is made of. */
struct nf_setup_args {
	char ifname[NF_IFNAME_SIZE];	/* [A-Za-z0-9_-]{1,15}, NUL-padded */
	struct in_addr host;		/* proxy side of the tap */
	struct in_addr guest;		/* the VM */
	uint16_t port;			/* proxy port, 1..65535 */
	uint16_t ssh_port;		/* the guest's sshd, or 0: none */
	uint64_t quota_bytes;		/* 1..NF_QUOTA_MAX */
};

/* A decoded, fully validated request. */
struct nf_request {
	uint32_t type;			/* an NF_REQ_* */
	uint32_t seq;
	struct nf_setup_args setup;	/* NF_REQ_SETUP only; zero otherwise */
};

/*
 * Decode one datagram of len bytes: exact size for its type, known
 * request type, reserved fields zero, every field valid.  0, or -EPROTO
 * (malformed) / -EINVAL (a field out of range) with err filled.
 */
int nf_request_parse(const void *buf, size_t len, struct nf_request *req,
		     struct error *err);

/* Interface name in a field of size bytes: NUL inside, [A-Za-z0-9_-]{1,15}. */
int nf_request_check_ifname(const char *field, size_t size, struct error *err);
/* IPv4 literal in a field of size bytes (inet_pton only), unicast. */
int nf_request_parse_ipv4(const char *field, size_t size, struct in_addr *out,
			  struct error *err);
/* Port 1..65535. */
int nf_request_check_port(uint32_t port, struct error *err);
/* Quota 1..NF_QUOTA_MAX bytes. */
int nf_request_check_quota(uint64_t bytes, struct error *err);
/* Name of a message type for logs ("SETUP", ...), "unknown" otherwise. */
const char *nf_request_name(uint32_t type);

#endif
