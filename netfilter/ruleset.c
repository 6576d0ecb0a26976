/*
 * ruleset.c - nft text for each change, made from validated fields only
 *
 * Pure functions (golden-file tested).  The text is assembled here from
 * struct nf_setup_args: an interface name of a strict alphabet, addresses
 * re-printed by inet_ntop from their binary form, integers.  Nothing the
 * manager sent reaches nft verbatim.
 *
 * Design of the table (see docs/netfilter.md):
 *  - every base chain has policy drop: nothing reaches or leaves the
 *    namespace unless a rule accepts it;
 *  - the only accept rules match TCP between guest and proxy port, both
 *    ways, and only while the port is in the set @window.  Opening and
 *    closing the window adds or deletes that one element: one small
 *    transaction, and the rules never change;
 *  - no "ct state established accept": after CLOSE an old connection is
 *    as dead as a new one;
 *  - with an ssh port (the ssh transport, docs/ssh-transport.md): the
 *    host side may open TCP connections to the guest's sshd, and the
 *    guest may send only what conntrack knows as their replies; the
 *    guest can still open nothing (a SYN from its port 22 is "new").
 *    Counted apart ("ssh"), not charged to the quota: that is the
 *    build's control channel, not its network use;
 *  - IPv6 never matches "ip saddr", so it falls to the drop policy; ARP is
 *    not seen by the inet family, so the guest can resolve the proxy.
 */
#include "ruleset.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static int __attribute__((format(printf, 3, 4)))
emit(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size)
		return -ENOSPC;
	return n;
}

int
nf_ruleset_setup(const struct nf_setup_args *a, char *buf, size_t size)
{
	char host[INET_ADDRSTRLEN], guest[INET_ADDRSTRLEN];
	char ssh_in[256] = "", ssh_out[256] = "";
	const char *ssh_counter = "";

	inet_ntop(AF_INET, &a->host, host, sizeof(host));
	inet_ntop(AF_INET, &a->guest, guest, sizeof(guest));
	if (a->ssh_port) {
		ssh_counter = "\tcounter ssh { }\n";
		if (emit(ssh_in, sizeof(ssh_in),
			 "\t\tiifname \"%s\" ip saddr %s ip daddr %s tcp sport "
			 "%u ct state established counter name \"ssh\" "
			 "accept\n",
			 a->ifname, guest, host, (unsigned int)a->ssh_port) < 0 ||
		    emit(ssh_out, sizeof(ssh_out),
			 "\t\toifname \"%s\" ip saddr %s ip daddr %s tcp dport "
			 "%u ct state new,established counter name \"ssh\" "
			 "accept\n",
			 a->ifname, host, guest, (unsigned int)a->ssh_port) < 0)
			return -ENOSPC;
	}
	/* "create table" fails if the table exists, aborting the whole
	 * transaction: SETUP never merges into a table it did not make. */
	return emit(buf, size,
		"# qctl-netfilter: tap %1$s, guest %3$s, proxy %2$s:%4$u\n"
		"create table inet " NF_TABLE "\n"
		"table inet " NF_TABLE " {\n"
		"\t# accepted each way; dropped from the guest\n"
		"\tcounter rx { }\n"
		"\tcounter tx { }\n"
		"\tcounter dropped { }\n"
		"%6$s"
		"\t# charged both ways; once used up, the window drops\n"
		"\tquota q { %5$llu bytes }\n"
		"\t# the proxy port while a fetch window is open, else empty\n"
		"\tset window {\n"
		"\t\ttype inet_service\n"
		"\t\tsize 1\n"
		"\t}\n"
		"\tchain input {\n"
		"\t\ttype filter hook input priority filter; policy drop;\n"
		"\t\tiifname \"%1$s\" ip saddr %3$s ip daddr %2$s"
		" tcp dport @window quota name \"q\" counter name \"rx\""
		" accept\n"
		"%7$s"
		"\t\tiifname \"%1$s\" counter name \"dropped\"\n"
		"\t}\n"
		"\tchain forward {\n"
		"\t\ttype filter hook forward priority filter; policy drop;\n"
		"\t\tiifname \"%1$s\" counter name \"dropped\"\n"
		"\t}\n"
		"\tchain output {\n"
		"\t\ttype filter hook output priority filter; policy drop;\n"
		"\t\toifname \"%1$s\" ip saddr %2$s ip daddr %3$s"
		" tcp sport @window quota name \"q\" counter name \"tx\""
		" accept\n"
		"%8$s"
		"\t}\n"
		"}\n",
		a->ifname, host, guest, (unsigned int)a->port,
		(unsigned long long)a->quota_bytes, ssh_counter, ssh_in,
		ssh_out);
}

int
nf_ruleset_open(const struct nf_setup_args *a, char *buf, size_t size)
{
	return emit(buf, size, "add element inet " NF_TABLE " window { %u }\n",
		    (unsigned int)a->port);
}

int
nf_ruleset_close(const struct nf_setup_args *a, char *buf, size_t size)
{
	return emit(buf, size,
		    "delete element inet " NF_TABLE " window { %u }\n",
		    (unsigned int)a->port);
}

int
nf_ruleset_counters(char *buf, size_t size)
{
	return emit(buf, size,
		    "list counters table inet " NF_TABLE "\n"
		    "list quota inet " NF_TABLE " q\n");
}

int
nf_ruleset_teardown(char *buf, size_t size)
{
	return emit(buf, size, "delete table inet " NF_TABLE "\n");
}
