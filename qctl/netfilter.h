/* netfilter.h - the manager's client of qctl-netfilter (see nf-proto.h) */
#ifndef QCTL_NETFILTER_H
#define QCTL_NETFILTER_H

#include <stdint.h>
#include <sys/types.h>

#include "util.h"

/* Deadline of one request/reply exchange, and of the helper's HELLO. */
#define NF_DEADLINE_MS 2000

struct nf_client;

struct nf_counters {
	uint64_t rx_bytes, rx_packets;	/* guest -> proxy, accepted */
	uint64_t tx_bytes, tx_packets;	/* proxy -> guest, accepted */
	uint64_t dropped_packets;	/* from the guest, dropped */
	uint64_t quota_used;		/* bytes charged against the quota */
};

/*
 * Fork the helper, join the network namespace netns_fd in the child
 * (setns CLONE_NEWNET; -1 keeps the caller's) and exec helper_path with
 * one end of a SOCK_SEQPACKET socketpair as fd 3, /dev/null as stdin and
 * stdout, our stderr, no other fd and an empty environment.  Returns once
 * the helper has confined itself and said HELLO, or fails within the
 * deadline.
 */
int nf_start(const char *helper_path, int netns_fd, struct nf_client **out,
	     struct error *err);
/* Install the ruleset for the tap ifname (window closed); ssh_port (0:
 * none): the host side may always connect to the guest there. */
int nf_setup(struct nf_client *c, const char *ifname, const char *host_ip,
	     const char *guest_ip, uint16_t proxy_port, uint64_t quota_bytes,
	     uint16_t ssh_port, struct error *err);
/* Open the fetch window (only from closed). */
int nf_open_window(struct nf_client *c, struct error *err);
/*
 * Close the window (also fine when closed).  A failure means the window
 * may still be open: the caller must stop the VM.
 */
int nf_close_window(struct nf_client *c, struct error *err);
/* Read the per-VM counters and quota use. */
int nf_read_counters(struct nf_client *c, struct nf_counters *out,
		     struct error *err);
/*
 * Delete the table; the helper then exits.  This removes the drop policy
 * too, so call it only once QEMU is gone (or just delete the namespace).
 */
int nf_teardown(struct nf_client *c, struct error *err);
/* The helper's pid (for /proc checks and logs). */
pid_t nf_pid(const struct nf_client *c);
/* To watch for the helper's death (EOF/POLLHUP) in the event loop. */
int nf_fd(const struct nf_client *c);
/* False once a request timed out, the helper hung up or spoke nonsense. */
bool nf_alive(const struct nf_client *c);
/* Change the per-request deadline (tests; default NF_DEADLINE_MS). */
void nf_set_deadline(struct nf_client *c, int ms);
/* Kill (SIGKILL) and reap the helper, free. */
void nf_stop(struct nf_client *c);

#endif
