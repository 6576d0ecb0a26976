/*
 * qctl-netfilter - the seccomp-confined nftables helper.
 *
 * Placeholder until the network issue: it refuses to run, so nothing can
 * mistake it for a working filter.  A builder with a fetch step cannot be
 * given a network until this helper exists (fail closed).
 */
#include <stdio.h>

int
main(void)
{
	fputs("qctl-netfilter: not implemented yet; no network is granted\n",
	      stderr);
	return 4;
}
