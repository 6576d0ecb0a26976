/*
 * nf-proto.h - the wire format between qctl and qctl-netfilter.
 *
 * Shared by both programs; see docs/netfilter.md.  The channel is one
 * AF_UNIX SOCK_SEQPACKET socketpair, the helper's end at fd NF_HELPER_FD.
 * Every message is one datagram: a 16-byte header and, for some types, a
 * fixed body.  Each type has exactly one size (nf_msg_size); a reader
 * rejects any other length, any unknown type, a nonzero reserved field, a
 * string field without its NUL and any attached fds.  Both ends run on one
 * host, so integers are in host byte order (like vmd's imsg).
 *
 * The manager never sends nft text: only the typed fields below, which the
 * helper validates and turns into rules itself.
 */
#ifndef QCTL_NF_PROTO_H
#define QCTL_NF_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define NF_PROTO_VERSION 1
/* The helper's end of the socketpair. */
#define NF_HELPER_FD 3
/* IFNAMSIZ: at most 15 characters and the NUL. */
#define NF_IFNAME_SIZE 16
/* INET_ADDRSTRLEN: a dotted quad and the NUL. */
#define NF_IP_SIZE 16
/* Bytes of nft's error text carried back in NF_REP_ERROR. */
#define NF_ERRMSG_SIZE 232
/* Largest quota the helper accepts: 1 PiB, i.e. "no limit" in practice. */
#define NF_QUOTA_MAX (UINT64_C(1) << 50)
/* Largest message of either direction (an NF_REP_ERROR). */
#define NF_MSG_MAX 256

enum nf_msg_type {
	/* manager -> helper */
	NF_REQ_SETUP = 1,	/* struct nf_req_setup: install the ruleset */
	NF_REQ_OPEN = 2,	/* header only: open the window */
	NF_REQ_CLOSE = 3,	/* header only: remove it (no-op if closed) */
	NF_REQ_COUNTERS = 4,	/* header only: answered by NF_REP_COUNTERS */
	NF_REQ_TEARDOWN = 5,	/* header only: delete the table, then exit */

	/* helper -> manager */
	NF_REP_HELLO = 64,	/* struct nf_rep_hello, once, when confined */
	NF_REP_OK = 65,		/* header only */
	NF_REP_ERROR = 66,	/* struct nf_rep_error: nft refused a change */
	NF_REP_COUNTERS = 67,	/* struct nf_rep_counters */
};

struct nf_hdr {
	uint32_t type;		/* enum nf_msg_type */
	uint32_t len;		/* whole message, header included */
	uint32_t seq;		/* chosen by the manager, echoed in the reply */
	uint32_t reserved;	/* 0 */
};

struct nf_req_setup {
	struct nf_hdr hdr;
	char ifname[NF_IFNAME_SIZE];	/* the tap: [A-Za-z0-9_-]{1,15} */
	char host_ip[NF_IP_SIZE];	/* proxy side, IPv4 dotted quad */
	char guest_ip[NF_IP_SIZE];	/* the VM's address */
	uint64_t quota_bytes;		/* 1..NF_QUOTA_MAX, both directions */
	uint32_t proxy_port;		/* 1..65535 (u32: 65536 is refusable) */
	/* 0, or the guest's sshd port (ssh transport): the host side may
	 * connect to it at any time, and only its replies come back */
	uint32_t ssh_port;		/* 0 or 1..65535, not proxy_port */
};

struct nf_rep_hello {
	struct nf_hdr hdr;		/* seq 0 */
	uint32_t version;		/* NF_PROTO_VERSION */
	uint32_t reserved;		/* 0 */
};

struct nf_rep_error {
	struct nf_hdr hdr;
	int32_t code;			/* positive errno-style code */
	uint32_t reserved;		/* 0 */
	char msg[NF_ERRMSG_SIZE];	/* NUL-terminated */
};

struct nf_rep_counters {
	struct nf_hdr hdr;
	uint64_t rx_bytes;		/* guest -> proxy, accepted */
	uint64_t rx_packets;
	uint64_t tx_bytes;		/* proxy -> guest, accepted */
	uint64_t tx_packets;
	uint64_t dropped_packets;	/* from the guest, dropped */
	uint64_t quota_used;		/* bytes charged to the quota */
};

_Static_assert(sizeof(struct nf_hdr) == 16, "nf_hdr layout");
_Static_assert(sizeof(struct nf_req_setup) == 80, "nf_req_setup layout");
_Static_assert(sizeof(struct nf_rep_hello) == 24, "nf_rep_hello layout");
_Static_assert(sizeof(struct nf_rep_error) == 256, "nf_rep_error layout");
_Static_assert(sizeof(struct nf_rep_counters) == 64, "nf_rep_counters");
_Static_assert(sizeof(struct nf_rep_error) <= NF_MSG_MAX, "NF_MSG_MAX");

/* The one valid length of a message of this type, or 0 if unknown. */
static inline size_t
nf_msg_size(uint32_t type)
{
	switch (type) {
	case NF_REQ_SETUP:
		return sizeof(struct nf_req_setup);
	case NF_REQ_OPEN:
	case NF_REQ_CLOSE:
	case NF_REQ_COUNTERS:
	case NF_REQ_TEARDOWN:
	case NF_REP_OK:
		return sizeof(struct nf_hdr);
	case NF_REP_HELLO:
		return sizeof(struct nf_rep_hello);
	case NF_REP_ERROR:
		return sizeof(struct nf_rep_error);
	case NF_REP_COUNTERS:
		return sizeof(struct nf_rep_counters);
	default:
		return 0;
	}
}

/* True if the request type travels from manager to helper. */
static inline int
nf_msg_is_request(uint32_t type)
{
	return type >= NF_REQ_SETUP && type <= NF_REQ_TEARDOWN;
}

#endif
