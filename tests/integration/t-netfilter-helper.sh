# qctl-netfilter alone, in namespaces made here and deleted on any exit:
# confinement (/proc: CAP_NET_ADMIN only, no_new_privs, seccomp mode 2,
# nothing but its two sockets open), the ruleset in the kernel, real
# traffic through it (TCP to the proxy port only while the window is open;
# an established connection dies at CLOSE; UDP, ICMP, IPv6, other ports
# never), the quota, fail-closed exits on every protocol violation, the
# 2 s deadline on a stopped helper, and SIGSYS on a forbidden syscall.
#
# Topology: namespace $NS plays the builder's (veth "qtap0" stands in for
# the tap, 169.254.77.1/30, an echo listener on :3128 and :8080 and UDP
# :53); namespace $GNS plays the guest (peer "eth0", 169.254.77.2/30).
# No traffic leaves these two namespaces.
. "$(dirname "$0")/lib.sh"

HELPER="$QCTL_BUILD/qctl-netfilter"
[ -x "$HELPER" ] || fail "$HELPER missing: make ${HELPER#$TOP/}"
[ "$(id -u)" = 0 ] || fail "needs root"
command -v nft >/dev/null || fail "nft missing (apt-get install nftables)"

ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
NS=qctl-test-$ID
GNS=qctl-test-$ID-g
HOST_IP=169.254.77.1
GUEST_IP=169.254.77.2
PORT=3128
SIGSYS=$(kill -l SYS)

nf_cleanup() {
	local rc=$? p n
	for p in "${BG_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	BG_PIDS=()
	# Whatever still runs inside our namespaces was started here.
	for n in "$NS" "$GNS"; do
		for p in $(ip netns pids "$n" 2>/dev/null); do
			kill -9 "$p" 2>/dev/null || true
		done
	done
	# Deleting a namespace takes its veth end, the peer and any nft
	# table with it.
	ip netns del "$NS" 2>/dev/null || true
	ip netns del "$GNS" 2>/dev/null || true
	if grep -q "qctl-test-$ID" <<<"$(ip netns list 2>/dev/null)"; then
		echo "cleanup: namespace qctl-test-$ID left behind" >&2
		rc=1
	fi
	if [ "$rc" != 0 ] && [ -s "$T/helper.err" ]; then
		echo "--- helper stderr"; tail -20 "$T/helper.err"
	fi
	(exit "$rc")
	cleanup_test
}
trap nf_cleanup EXIT

in_ns() { ip netns exec "$NS" "$@"; }
in_guest() { ip netns exec "$GNS" "$@"; }
net() { in_guest python3 "$T/net.py" "$@"; }
# An attempt that must get through may take its time on a loaded host
# (20 s); one that must not is given 1.5 s to fail -- a shorter wait can
# only let a leak through unseen, never fail a good filter.
reach() { NET_T=20 net "$@" || fail "guest cannot reach: $*"; }
blocked() { if NET_T=1.5 net "$@"; then fail "guest reached: $*"; fi; }
# (No "cmd | grep -q" under pipefail: grep's early exit fails the pipe.)
window_has_port() { grep -q "elements = { $PORT }" <<<"$(in_ns nft list set inet qctl window)"; }
status_field() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status"; }

# ---- the driver (qctl/netfilter.c, the manager's real client) ----
gcc -D_GNU_SOURCE -I"$TOP/qctl" -O1 -o "$T/nf-driver" \
	"$TOP/tests/integration/nf-driver.c" "$TOP/qctl/netfilter.c" "$TOP/qctl/child.c" \
	"$TOP/qctl/util.c" || fail "cannot build nf-driver"

# One helper at a time, driven over a coprocess: "pid N", then one
# answer line per request.
start_helper() {
	coproc DRV { exec "$T/nf-driver" session "$HELPER" "/run/netns/$NS" 2>>"$T/helper.err"; }
	BG_PIDS+=("$DRV_PID")
	DRV_IN=${DRV[1]}
	DRV_OUT=${DRV[0]}
	read -r -t 10 line <&"$DRV_OUT" || fail "nf-driver did not start"
	case $line in
	"pid "*) HPID=${line#pid } ;;
	*) fail "nf-driver: $line" ;;
	esac
	BG_PIDS+=("$HPID")
}
req() {
	echo "$*" >&"$DRV_IN"
	REPLY=
	read -r -t 60 REPLY <&"$DRV_OUT" || fail "no answer to '$*' in 60 s"
}
ok() { req "$@"; [ "$REPLY" = ok ] || fail "$*: $REPLY"; }
end_helper() {
	local p=$DRV_PID
	exec {DRV_IN}>&-
	kill -9 "$HPID" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
}
# A fresh helper that must die of the request: exit 2, fail closed.
expect_fatal() {
	local what=$1
	shift
	req "$@"
	[ "$REPLY" = ok ] || fail "$what: could not send: $REPLY"
	req wait
	expect_eq "$REPLY" "exit 2" "$what: helper's end"
}

cat >"$T/net.py" <<'PY'
# net.py - traffic for t-netfilter-helper.sh (runs inside test namespaces)
import os, select, socket, struct, sys, threading, time

# seconds before an attempt counts as failed (reach and blocked set it)
T = float(os.environ.get("NET_T", "1.5"))


def echo_tcp(ls):
    while True:
        c, _ = ls.accept()
        threading.Thread(target=echo_conn, args=(c,), daemon=True).start()


def echo_conn(c):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            c.sendall(d)
    except OSError:
        pass
    c.close()


def serve(host, ports):
    for p in ports:
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((host, p))
        ls.listen(16)
        threading.Thread(target=echo_tcp, args=(ls,), daemon=True).start()
    us = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    us.bind((host, 53))
    while True:
        d, a = us.recvfrom(2048)
        us.sendto(d, a)


def tcp(host, port):
    try:
        s = socket.create_connection((host, int(port)), timeout=T)
        s.sendall(b"ping\n")
        return s.recv(16) == b"ping\n"
    except OSError:
        return False


def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(T)
    try:
        s.sendto(b"q", (host, int(port)))
        return s.recv(16) == b"q"
    except OSError:
        return False


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return ~s & 0xffff


def icmp(host):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    hdr = struct.pack("!BBHHH", 8, 0, 0, 0x4242, 1) + b"qctl"
    pkt = hdr[:2] + struct.pack("!H", csum(hdr)) + hdr[4:]
    s.sendto(pkt, (host, 0))
    end = time.time() + T
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r:
            break
        d = s.recv(2048)
        ihl = (d[0] & 0xf) * 4
        if d[ihl] == 0 and d[ihl + 4:ihl + 6] == b"\x42\x42":
            return True
    return False


def icmp6(host):
    s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
    s.sendto(struct.pack("!BBHHH", 128, 0, 0, 0x4242, 1) + b"qctl",
             socket.getaddrinfo(host, 0, socket.AF_INET6)[0][4])
    end = time.time() + T
    while time.time() < end:
        r, _, _ = select.select([s], [], [], max(0, end - time.time()))
        if not r:
            break
        d = s.recv(2048)
        if d[0] == 129 and d[4:6] == b"\x42\x42":
            return True
    return False


def hold(host, port, d):
    """Connect, prove the echo, then wait for $d/go and try again (the
    first echo may take its time; the second must not come)."""
    s = socket.create_connection((host, int(port)), timeout=20)
    s.sendall(b"one\n")
    ok = s.recv(16) == b"one\n"
    s.settimeout(T)
    open(os.path.join(d, "held"), "w").write("yes" if ok else "no")
    end = time.time() + 30
    while not os.path.exists(os.path.join(d, "go")) and time.time() < end:
        time.sleep(0.05)
    try:
        s.sendall(b"two\n")
        res = "alive" if s.recv(16) == b"two\n" else "dead"
    except OSError:
        res = "dead"
    open(os.path.join(d, "result"), "w").write(res)


def bulk(host, port, n):
    """Send n bytes, print how many came back within a few seconds."""
    s = socket.create_connection((host, int(port)), timeout=T)
    s.setblocking(False)
    out, got, end = b"x" * int(n), 0, time.time() + 4
    while time.time() < end and got < int(n):
        r, w, _ = select.select([s], [s] if out else [], [], 0.2)
        if w:
            try:
                out = out[s.send(out[:16384]):]
            except OSError:
                pass
        if r:
            try:
                d = s.recv(65536)
            except OSError:
                break
            if not d:
                break
            got += len(d)
    print(got)


def setup_hex(ifname, host, guest, port, quota, seq="1"):
    """An NF_REQ_SETUP datagram as hex; ifname may hold \\x escapes."""
    name = ifname.encode().decode("unicode_escape").encode("latin-1")
    m = struct.pack("<IIII16s16s16sQII", 1, 80, int(seq), 0, name,
                    host.encode(), guest.encode(), int(quota), int(port), 0)
    print(m.hex())


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "serve":
        serve(args[0], [int(p) for p in args[1:]])
    elif mode == "hold":
        hold(*args)
    elif mode == "bulk":
        bulk(*args)
    elif mode == "setup-hex":
        setup_hex(*args)
    else:
        ok = {"tcp": tcp, "udp": udp, "icmp": icmp, "icmp6": icmp6}[mode](*args)
        sys.exit(0 if ok else 1)
PY

# ---- the namespaces ----
ip netns add "$NS"
ip netns add "$GNS"
ip link add qtap0 netns "$NS" type veth peer name eth0 netns "$GNS"
in_ns sysctl -qw net.ipv6.conf.qtap0.accept_dad=0
in_guest sysctl -qw net.ipv6.conf.eth0.accept_dad=0
in_ns ip addr add "$HOST_IP/30" dev qtap0
in_guest ip addr add "$GUEST_IP/30" dev eth0
for n in "$NS" "$GNS"; do ip -n "$n" link set lo up; done
in_ns ip link set qtap0 up
in_guest ip link set eth0 up
# Not through in_ns: $! must be python itself (ip netns exec execs it),
# and its output must not hold the caller's pipe open.
ip netns exec "$NS" python3 "$T/net.py" serve "$HOST_IP" "$PORT" 8080 \
	>"$T/server.log" 2>&1 &
BG_PIDS+=($!)
disown	# killed on the way out; no "Killed" notice from bash

# Baseline without the helper: everything gets through, so every
# "blocked" below is the filter's doing.
wait_for --timeout 60 --what "the echo server on $HOST_IP:$PORT" --log "$T/server.log" \
	net tcp "$HOST_IP" "$PORT"
# IPv6 link-local addresses appear once both veth ends have carrier.
ll_ready() {
	ip -n "$1" -6 -o addr show dev "$2" scope link | grep -v tentative |
		awk '{ sub("/.*", "", $4); print $4 }'
}
both_ll() { [ -n "$(ll_ready "$NS" qtap0)" ] && [ -n "$(ll_ready "$GNS" eth0)" ]; }
wait_for --timeout 60 --what "IPv6 link-local addresses on both veth ends" both_ll
HOST_LL=$(ll_ready "$NS" qtap0)
wait_for --timeout 60 --what "an ICMPv6 echo reply from $HOST_LL" net icmp6 "$HOST_LL%eth0"
reach tcp "$HOST_IP" "$PORT"
reach tcp "$HOST_IP" 8080
reach udp "$HOST_IP" 53
reach icmp "$HOST_IP"
reach icmp6 "$HOST_LL%eth0"
[ -z "$(in_ns nft list tables)" ] || fail "namespace not empty of nft tables"

# ---- confinement ----
start_helper
for f in CapEff CapPrm CapBnd; do
	expect_eq "$(status_field "$HPID" $f)" 0000000000001000 "$f"
done
for f in CapInh CapAmb; do
	expect_eq "$(status_field "$HPID" $f)" 0000000000000000 "$f"
done
expect_eq "$(status_field "$HPID" NoNewPrivs)" 1 "NoNewPrivs"
expect_eq "$(status_field "$HPID" Seccomp)" 2 "Seccomp"
expect_eq "$(readlink "/proc/$HPID/ns/net")" \
	"$(in_ns readlink /proc/self/ns/net)" "helper's network namespace"
# stdio, the channel, libnftables' netlink socket; nothing else
expect_eq "$(ls "/proc/$HPID/fd" | sort -n | tr '\n' ' ')" "0 1 2 3 4 " "open fds"
for fd in 3 4; do
	[[ $(readlink "/proc/$HPID/fd/$fd") == socket:* ]] || fail "fd $fd is not a socket"
done
expect_eq "$(tr '\0' ' ' <"/proc/$HPID/environ" 2>/dev/null)" "" "environment"

# ---- setup: drop everything ----
ok setup qtap0 "$HOST_IP" "$GUEST_IP" "$PORT" 104857600
in_ns nft list ruleset >"$T/ruleset"
grep -q '^table inet qctl {' "$T/ruleset" || fail "no table after setup"
expect_eq "$(grep -c 'policy drop;' "$T/ruleset")" 3 "chains with policy drop"
window_has_port && fail "window open right after setup"
blocked tcp "$HOST_IP" "$PORT"
blocked udp "$HOST_IP" 53
blocked icmp "$HOST_IP"

# ---- open: the proxy port and nothing else ----
ok open
window_has_port || fail "no element after open"
reach tcp "$HOST_IP" "$PORT"
blocked tcp "$HOST_IP" 8080
blocked udp "$HOST_IP" 53
blocked icmp "$HOST_IP"
blocked icmp6 "$HOST_LL%eth0"

# An established connection must die with the window.
mkdir "$T/hold"
ip netns exec "$GNS" python3 "$T/net.py" hold "$HOST_IP" "$PORT" "$T/hold" \
	>>"$T/server.log" 2>&1 &
HOLD=$!
BG_PIDS+=("$HOLD")
wait_for --timeout 60 --what "the held connection's first echo" --alive "$HOLD" \
	--log "$T/server.log" test -e "$T/hold/held"
expect_eq "$(cat "$T/hold/held")" yes "connection before close"

# ---- close ----
ok close
window_has_port && fail "element still there after close"
touch "$T/hold/go"
wait "$HOLD" || true
expect_eq "$(cat "$T/hold/result")" dead "established connection after close"
blocked tcp "$HOST_IP" "$PORT"
ok close	# closing a closed window is permitted and harmless

# ---- counters ----
req counters
case $REPLY in counters\ *) ;; *) fail "counters: $REPLY" ;; esac
for k in rx_packets rx_bytes tx_packets tx_bytes dropped_packets quota_used; do
	v=$(sed -n "s/.* $k=\([0-9]*\).*/\1/p" <<<"$REPLY")
	[ "${v:-0}" -gt 0 ] || fail "counter $k is ${v:-missing}: $REPLY"
done
echo "$REPLY"

# ---- a second SETUP while open: fatal, and the window closes ----
ok open
window_has_port || fail "no element after reopen"
expect_fatal "second SETUP" raw "$(python3 "$T/net.py" setup-hex qtap0 "$HOST_IP" "$GUEST_IP" "$PORT" 1000 9)"
window_has_port && fail "window left open by a dying helper"
blocked tcp "$HOST_IP" "$PORT"
end_helper
in_ns nft delete table inet qctl

# ---- requests that must kill a fresh helper ----
start_helper
expect_fatal "hostile ifname" raw "$(python3 "$T/net.py" setup-hex 'tap0; flush rul' "$HOST_IP" "$GUEST_IP" "$PORT" 1000)"
[ -z "$(in_ns nft list tables)" ] || fail "table made from a hostile request"
end_helper
start_helper
expect_fatal "ifname without NUL" raw "$(python3 "$T/net.py" setup-hex 'qtap0qtap0qtap0q' "$HOST_IP" "$GUEST_IP" "$PORT" 1000)"
end_helper
start_helper
expect_fatal "IPv6 guest" raw "$(python3 "$T/net.py" setup-hex qtap0 "$HOST_IP" ::1 "$PORT" 1000)"
end_helper
start_helper
expect_fatal "OPEN before SETUP" raw 02000000100000000100000000000000
end_helper
start_helper
expect_fatal "unknown type" raw 07000000100000000100000000000000
end_helper
start_helper
expect_fatal "short OPEN" raw 020000001000000001000000000000
end_helper
start_helper
expect_fatal "oversized" raw "$(printf '01%.0s' $(seq 300))"
end_helper
start_helper
expect_fatal "an fd passed along" rawfd
end_helper
[ -z "$(in_ns nft list tables)" ] || fail "a refused request left a table"

# ---- the manager goes away while the window is open ----
start_helper
ok setup qtap0 "$HOST_IP" "$GUEST_IP" "$PORT" 104857600
ok open
window_has_port || fail "no element after open"
ok eof
req wait
expect_eq "$REPLY" "exit 0" "helper's end after EOF"
window_has_port && fail "window left open after the manager hung up"
end_helper

# ---- SETUP over an existing table: an error reply, not a merge ----
start_helper
req setup qtap0 "$HOST_IP" "$GUEST_IP" "$PORT" 104857600
case $REPLY in *"File exists"*) ;; *) fail "setup over a table: $REPLY" ;; esac
req alive
expect_eq "$REPLY" alive "helper after a refused transaction"
end_helper
in_ns nft delete table inet qctl

# ---- a stopped helper costs the deadline (2 s), then counts as dead ----
start_helper
ok setup qtap0 "$HOST_IP" "$GUEST_IP" "$PORT" 104857600
kill -STOP "$HPID"
t0=$(date +%s%N)
req counters
ms=$((($(date +%s%N) - t0) / 1000000))
case $REPLY in *deadline*) ;; *) fail "stopped helper: $REPLY" ;; esac
# not before the deadline (t0 is taken before the request goes out);
# after it, only "not stuck": a loaded host may take its time
[ "$ms" -ge 1800 ] && [ "$ms" -le 20000 ] || fail "deadline took $ms ms"
req alive
expect_eq "$REPLY" dead "client after a timeout"
req open
case $REPLY in *gone*) ;; *) fail "request to a dead helper: $REPLY" ;; esac
kill -CONT "$HPID"
end_helper
in_ns nft delete table inet qctl

# ---- quota: past it, even the open window drops ----
start_helper
ok setup qtap0 "$HOST_IP" "$GUEST_IP" "$PORT" 30000
ok open
got=$(NET_T=20 net bulk "$HOST_IP" "$PORT" 400000)
[ "$got" -le 30000 ] || fail "quota of 30000 let $got bytes come back"
blocked tcp "$HOST_IP" "$PORT"
req counters
used=$(sed -n 's/.* quota_used=\([0-9]*\).*/\1/p' <<<"$REPLY")
[ "$used" -ge 30000 ] || fail "quota_used $used after the quota ran out"
echo "quota 30000: $got bytes echoed; $REPLY"

# ---- teardown: the table goes, the helper ends ----
ok teardown
req wait
expect_eq "$REPLY" "exit 0" "helper's end after TEARDOWN"
[ -z "$(in_ns nft list tables)" ] || fail "table left after teardown"
end_helper

# ---- forbidden syscalls kill the confined helper ----
for sys in socket openat execve; do
	r=$("$T/nf-driver" selftest "$HELPER" "/run/netns/$NS" "$sys" 2>>"$T/helper.err")
	expect_eq "$r" "signal $SIGSYS" "helper calling $sys"
done

echo "t-netfilter-helper: all checks passed"
