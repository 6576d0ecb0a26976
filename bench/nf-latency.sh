#!/usr/bin/env bash
# nf-latency.sh - fetch-window open+close latency: through qctl-netfilter
# (one long-lived helper, N round trips of OPEN and CLOSE) versus `nft -f`
# run as a subprocess per change (the same add/delete element text, from
# the golden files).  Both run in a scratch namespace with the same table;
# the nft loop runs inside the namespace, so neither side pays for setns.
#
#   bench/nf-latency.sh [N_HELPER [N_NFT]]      (root; default 2000 300)
#
# Prints mean/p50/p99 microseconds per open+close pair and the ratio of
# the means (target: >= 10).
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
HELPER="$TOP/build/qctl-netfilter"
N_HELPER=${1:-2000}
N_NFT=${2:-300}
NS=qctl-bench-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
W=$(mktemp -d /tmp/qctl-bench.XXXXXX)

cleanup() {
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "nf-latency: needs root" >&2; exit 2; }
[ -x "$HELPER" ] || { echo "nf-latency: make build/qctl-netfilter" >&2; exit 2; }
gcc -D_GNU_SOURCE -O2 -I"$TOP/qctl" -o "$W/nf-driver" \
	"$TOP/tests/integration/nf-driver.c" "$TOP/qctl/netfilter.c" \
	"$TOP/qctl/util.c"

ip netns add "$NS"
ip -n "$NS" link add qtap0 type veth peer name qtap0-peer

# --- through the helper ---
out=$(printf 'setup qtap0 169.254.77.1 169.254.77.2 3128 104857600\nbench %d\nteardown\n' \
	"$N_HELPER" | "$W/nf-driver" session "$HELPER" "/run/netns/$NS")
line=$(grep '^bench ' <<<"$out") || { echo "$out" >&2; exit 1; }
h_mean=$(sed 's/.*mean=\([0-9.]*\).*/\1/' <<<"$line")
h_p50=$(sed 's/.*p50=\([0-9]*\).*/\1/' <<<"$line")
h_p99=$(sed 's/.*p99=\([0-9]*\).*/\1/' <<<"$line")

# --- nft -f as a subprocess, same table, same text ---
D="$TOP/tests/unit/data/nft"
ip netns exec "$NS" nft -f "$D/setup.nft"
ip netns exec "$NS" bash -c '
	set -e
	for ((i = 0; i < $1; i++)); do
		t0=${EPOCHREALTIME/./}
		nft -f "$2/open.nft"
		nft -f "$2/close.nft"
		echo $(( ${EPOCHREALTIME/./} - t0 ))
	done' nft-bench "$N_NFT" "$D" >"$W/nft.us"
read -r n_mean n_p50 n_p99 < <(sort -n "$W/nft.us" | awk '
	{ v[NR] = $1; s += $1 }
	END {
		i = int(NR * 0.99) + 1
		if (i > NR)
			i = NR
		printf "%.1f %d %d\n", s / NR, v[int(NR / 2) + 1], v[i]
	}')

printf 'window open+close, microseconds per pair (%s)\n' "$(nft --version)"
printf '  %-34s n=%-5d mean=%8.1f p50=%6d p99=%6d\n' \
	"qctl-netfilter (one helper)" "$N_HELPER" "$h_mean" "$h_p50" "$h_p99" \
	"nft -f subprocess (2 per pair)" "$N_NFT" "$n_mean" "$n_p50" "$n_p99"
awk -v h="$h_mean" -v n="$n_mean" 'BEGIN {
	r = n / h
	ok = (r >= 10)
	printf "  ratio (nft -f / helper, means): %.1fx  %s\n", r,
	       (ok ? "(target >= 10x: met)" : "(target >= 10x: MISSED)")
	exit (ok ? 0 : 1) }'
