/*
 * request.c - typed reader and field validators for the manager's requests
 *
 * Pure functions over buffers (no I/O): unit-tested and fuzzed.  Anything
 * not exactly as nf-proto.h describes is refused; the caller treats a
 * refusal as fatal (fail closed).
 */
#include "request.h"

#include <arpa/inet.h>
#include <string.h>

#include "nf-error.h"

/* Render an untrusted field for a message: printable ASCII, else \xNN. */
static const char *
show(const char *field, size_t size, char *out, size_t outsize)
{
	size_t o = 0;

	for (size_t i = 0; i < size && field[i] && o + 5 < outsize; i++) {
		unsigned char c = field[i];

		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[o++] = c;
		else
			o += snprintf(out + o, outsize - o, "\\x%02x", c);
	}
	out[o] = '\0';
	return out;
}

const char *
nf_request_name(uint32_t type)
{
	switch (type) {
	case NF_REQ_SETUP:
		return "SETUP";
	case NF_REQ_OPEN:
		return "OPEN";
	case NF_REQ_CLOSE:
		return "CLOSE";
	case NF_REQ_COUNTERS:
		return "COUNTERS";
	case NF_REQ_TEARDOWN:
		return "TEARDOWN";
	default:
		return "unknown";
	}
}

int
nf_request_check_ifname(const char *field, size_t size, struct error *err)
{
	const char *nul = memchr(field, '\0', size);
	char shown[NF_IFNAME_SIZE * 4 + 8];
	size_t len;

	if (!nul)
		return nf_error(err, EPROTO,
				"interface name not NUL-terminated");
	len = (size_t)(nul - field);
	if (len == 0 || len > NF_IFNAME_SIZE - 1)
		return nf_error(err, EINVAL, "interface name of %zu characters",
				len);
	/* The name is quoted into nft text: a strict alphabet leaves no
	 * quote, space, semicolon, newline or path character to abuse. */
	for (size_t i = 0; i < len; i++) {
		char c = field[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return nf_error(err, EINVAL,
					"bad interface name \"%s\"",
					show(field, size, shown,
					     sizeof(shown)));
	}
	return 0;
}

int
nf_request_parse_ipv4(const char *field, size_t size, struct in_addr *out,
		      struct error *err)
{
	char shown[NF_IP_SIZE * 4 + 8];
	uint32_t a;

	if (!memchr(field, '\0', size))
		return nf_error(err, EPROTO, "address not NUL-terminated");
	/* inet_pton only: no inet_aton shorthands ("1.2.3", octal "01"),
	 * no resolver, nothing but four decimal octets. */
	if (inet_pton(AF_INET, field, out) != 1)
		return nf_error(err, EINVAL, "bad IPv4 address \"%s\"",
				show(field, size, shown, sizeof(shown)));
	a = ntohl(out->s_addr);
	/* A rule for 0.0.0.0, loopback, multicast or broadcast would be
	 * meaningless at best; only a unicast peer is a sane endpoint. */
	if ((a >> 24) == 0 || (a >> 24) == 127 || (a >> 28) >= 0xe)
		return nf_error(err, EINVAL, "address %s is not unicast",
				show(field, size, shown, sizeof(shown)));
	return 0;
}

int
nf_request_check_port(uint32_t port, struct error *err)
{
	if (port < 1 || port > 65535)
		return nf_error(err, EINVAL, "port %u out of range", port);
	return 0;
}

int
nf_request_check_quota(uint64_t bytes, struct error *err)
{
	if (bytes < 1 || bytes > NF_QUOTA_MAX)
		return nf_error(err, EINVAL, "quota of %llu bytes out of range",
				(unsigned long long)bytes);
	return 0;
}

static int
parse_setup(const struct nf_req_setup *m, struct nf_setup_args *a,
	    struct error *err)
{
	int r;

	if (m->ssh_port != 0 && (m->ssh_port > 65535 ||
				 m->ssh_port == m->proxy_port))
		return nf_error(err, EINVAL, "ssh port %u out of range",
				m->ssh_port);
	r = nf_request_check_ifname(m->ifname, sizeof(m->ifname), err);
	if (r == 0)
		r = nf_request_parse_ipv4(m->host_ip, sizeof(m->host_ip),
					  &a->host, err);
	if (r == 0)
		r = nf_request_parse_ipv4(m->guest_ip, sizeof(m->guest_ip),
					  &a->guest, err);
	if (r == 0)
		r = nf_request_check_port(m->proxy_port, err);
	if (r == 0)
		r = nf_request_check_quota(m->quota_bytes, err);
	if (r < 0)
		return r;
	if (a->host.s_addr == a->guest.s_addr)
		return nf_error(err, EINVAL,
				"host and guest address are equal");
	/* Only the name and its NUL: whatever followed it stays behind. */
	memset(a->ifname, 0, sizeof(a->ifname));
	memcpy(a->ifname, m->ifname, strlen(m->ifname));
	a->port = (uint16_t)m->proxy_port;
	a->ssh_port = (uint16_t)m->ssh_port;
	a->quota_bytes = m->quota_bytes;
	return 0;
}

int
nf_request_parse(const void *buf, size_t len, struct nf_request *req,
		 struct error *err)
{
	struct nf_req_setup setup;
	struct nf_hdr h;
	size_t want;

	memset(req, 0, sizeof(*req));
	if (len < sizeof(h))
		return nf_error(err, EPROTO, "message of %zu bytes", len);
	/* Copy out: the buffer need not be aligned for the structs. */
	memcpy(&h, buf, sizeof(h));
	if (!nf_msg_is_request(h.type))
		return nf_error(err, EPROTO, "unknown request type %u", h.type);
	want = nf_msg_size(h.type);
	/* Exactly one size per type, stated twice (datagram and header):
	 * no short reads that leave fields stale, no trailing bytes. */
	if (len != want || h.len != want)
		return nf_error(err, EPROTO,
				"%s: %zu bytes (header says %u), want %zu",
				nf_request_name(h.type), len, h.len, want);
	if (h.reserved != 0)
		return nf_error(err, EPROTO, "%s: reserved header field set",
				nf_request_name(h.type));
	req->type = h.type;
	req->seq = h.seq;
	if (h.type != NF_REQ_SETUP)
		return 0;
	memcpy(&setup, buf, sizeof(setup));
	return parse_setup(&setup, &req->setup, err);
}
