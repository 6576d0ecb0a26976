#!/usr/bin/env bash
# Proxy throughput: a 1 GiB download over loopback in a network namespace
# made for the purpose, directly, through qctl's proxy and through tinyproxy
# with an equivalent allowlist; interleaved rounds, medians and ratios.
#
#   bench/proxy-throughput.sh [ROUNDS]        (root; default 5 rounds)
#
# Needs: iproute2, python3, curl, tinyproxy (Debian package; its service is
# not used: `apt-get install tinyproxy && systemctl disable --now tinyproxy`).
# Nothing leaves the namespace; the upstream is 127.0.0.1 inside it.
#
# Clients: curl (what a build runs) and a minimal Python reader with a 4 MiB
# buffer (to see the proxy's own limit rather than curl's).  Modes: plain
# HTTP (absolute-form GET) and CONNECT (curl -p; plain HTTP inside).
set -euo pipefail
ROUNDS=${1:-5}
TOP=$(cd "$(dirname "$0")/.." && pwd)
SIZE=$((1 << 30))
NS=qctl-bench-$$
W=$(mktemp -d /tmp/qctl-bench.XXXXXX)
BLOB=/dev/shm/qctl-bench-$$.blob
PIDS=()

cleanup() {
	local p
	exec 3>&- 2>/dev/null || true
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	ip netns del "$NS" 2>/dev/null || true
	rm -rf "$W" "$BLOB"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "needs root (network namespace)" >&2; exit 2; }
if ! command -v tinyproxy >/dev/null; then
	# the comparison needs it; its own service must not run
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends tinyproxy bc >/dev/null ||
		{ echo "cannot install tinyproxy" >&2; exit 2; }
	systemctl disable --now tinyproxy 2>/dev/null ||
		service tinyproxy stop 2>/dev/null || true
fi

make -C "$TOP" --no-print-directory build/libqctl.a build/qctl-proxy >/dev/null
cc -D_GNU_SOURCE -I"$TOP/qctl" -O2 -o "$W/proxy-driver" \
	"$TOP/tests/integration/proxy-driver.c" "$TOP/build/libqctl.a" \
	$(pkg-config --libs jansson yaml-0.1 libarchive libcrypto libseccomp \
	  libcap-ng)
fallocate -l "$SIZE" "$BLOB"

# Upstream: HTTP/1.1 answer to any GET, body by sendfile from tmpfs, so
# that the server is not what limits the direct case.
cat >"$W/server.py" <<'EOF'
import os, socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
size = os.path.getsize(path)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
def serve(c):
    data = b""
    while b"\r\n\r\n" not in data:
        b = c.recv(4096)
        if not b:
            c.close(); return
        data += b
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n" % size)
    with open(path, "rb") as f:
        c.sendfile(f)
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
EOF

# Fast client: prints bytes/s of the body and headers received.
cat >"$W/client.py" <<'EOF'
import socket, sys, time
port, mode = int(sys.argv[1]), sys.argv[2]
t0 = time.monotonic()
s = socket.create_connection(("127.0.0.1", port))
if mode == "connect":
    s.sendall(b"CONNECT 127.0.0.1:18080 HTTP/1.1\r\n"
              b"Host: 127.0.0.1:18080\r\n\r\n")
    h = b""
    while b"\r\n\r\n" not in h:
        h += s.recv(1)
    s.sendall(b"GET /blob HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n")
elif mode == "proxy":
    s.sendall(b"GET http://127.0.0.1:18080/blob HTTP/1.1\r\n"
              b"Host: 127.0.0.1:18080\r\n\r\n")
else:
    s.sendall(b"GET /blob HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n")
buf = bytearray(4 << 20)
n = 0
while True:
    r = s.recv_into(buf)
    if not r:
        break
    n += r
dt = time.monotonic() - t0
if n < 1 << 30:
    sys.exit("short read: %d" % n)
print("%.0f" % (n / dt))
EOF

# tinyproxy: the same allowlist as qctl's "127.0.0.1:18080": that host and
# port for plain HTTP (FilterURLs), CONNECT only to port 18080, default deny.
mkdir -p "$W/tp"
printf '^(http://)?127\\.0\\.0\\.1:18080(/|$)\n' >"$W/tp/filter"
cat >"$W/tp/tinyproxy.conf" <<EOF
User nobody
Group nogroup
Port 8888
Listen 127.0.0.1
Timeout 600
LogFile "$W/tp/tinyproxy.log"
LogLevel Error
MaxClients 100
Allow 127.0.0.1
Filter "$W/tp/filter"
FilterURLs On
FilterType ere
FilterDefaultDeny Yes
ConnectPort 18080
EOF
touch "$W/tp/tinyproxy.log"
chown nobody "$W/tp/tinyproxy.log"
chmod 755 "$W" "$W/tp"

ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

# Background processes are started with `ip netns exec` itself (which
# execs), so that $! is the process to kill.
ip netns exec "$NS" python3 "$W/server.py" "$BLOB" 18080 & PIDS+=($!)
mkfifo "$W/ctl"
ip netns exec "$NS" "$W/proxy-driver" -P "$TOP/build/qctl-proxy" \
	3128 127.0.0.1:18080 \
	<"$W/ctl" >"$W/qctl.log" & PIDS+=($!)
exec 3>"$W/ctl"		# keeps the driver's stdin open
ip netns exec "$NS" tinyproxy -d -c "$W/tp/tinyproxy.conf" & PIDS+=($!)
for _ in $(seq 50); do
	in_ns bash -c ': </dev/tcp/127.0.0.1/18080' 2>/dev/null &&
	in_ns bash -c ': </dev/tcp/127.0.0.1/8888' 2>/dev/null &&
	[ -s "$W/qctl.log" ] && break
	sleep 0.1
done

# Both proxies refuse what the allowlist does not name.
ip netns exec "$NS" python3 "$W/server.py" "$BLOB" 18081 & PIDS+=($!)
sleep 0.3
for px in 3128 8888; do
	c=$(in_ns curl -s -o /dev/null -w '%{http_code}' -x "http://127.0.0.1:$px" \
		http://127.0.0.1:18081/blob || true)
	[ "$c" = 403 ] || { echo "proxy on $px did not refuse: $c" >&2; exit 1; }
done

curl_speed() {	# curl args...: bytes/s
	in_ns curl -s -o /dev/null -w '%{speed_download} %{size_download}\n' \
		"$@" | awk -v s="$SIZE" '$2 != s { exit 1 } { print $1 }'
}

declare -A R
run() {	# name command...
	local v
	v=$("${@:2}") || { echo "$1 failed" >&2; exit 1; }
	R[$1]+="$v "
	printf '  %-22s %6.2f GB/s\n' "$1" "$(echo "$v / 1000000000" | bc -l)"
}

U=http://127.0.0.1:18080/blob
for r in $(seq "$ROUNDS"); do
	echo "round $r"
	run curl-direct      curl_speed "$U"
	run curl-qctl        curl_speed -x http://127.0.0.1:3128 "$U"
	run curl-tinyproxy   curl_speed -x http://127.0.0.1:8888 "$U"
	run curl-qctl-CONNECT curl_speed -p -x http://127.0.0.1:3128 "$U"
	run curl-tiny-CONNECT curl_speed -p -x http://127.0.0.1:8888 "$U"
	run fast-direct      in_ns python3 "$W/client.py" 18080 direct
	run fast-qctl        in_ns python3 "$W/client.py" 3128 proxy
	run fast-tinyproxy   in_ns python3 "$W/client.py" 8888 proxy
	run fast-qctl-CONNECT in_ns python3 "$W/client.py" 3128 connect
done

median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {
	print (NR % 2 ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2) }'; }
declare -A M
for k in "${!R[@]}"; do M[$k]=$(echo "${R[$k]}" | median); done
echo
echo "medians over $ROUNDS interleaved rounds ($(nproc) CPUs, 1 GiB each)"
for k in curl-direct curl-qctl curl-tinyproxy curl-qctl-CONNECT \
	 curl-tiny-CONNECT fast-direct fast-qctl fast-tinyproxy \
	 fast-qctl-CONNECT; do
	printf '  %-22s %6.2f GB/s\n' "$k" "$(echo "${M[$k]} / 1000000000" | bc -l)"
done
ratio() { echo "scale=2; $1 / $2" | bc -l; }
echo
echo "qctl / direct:    curl $(ratio "${M[curl-qctl]}" "${M[curl-direct]}")," \
     "fast client $(ratio "${M[fast-qctl]}" "${M[fast-direct]}")  (target >= 0.5)"
echo "qctl / tinyproxy: curl $(ratio "${M[curl-qctl]}" "${M[curl-tinyproxy]}")," \
     "CONNECT $(ratio "${M[curl-qctl-CONNECT]}" "${M[curl-tiny-CONNECT]}")," \
     "fast client $(ratio "${M[fast-qctl]}" "${M[fast-tinyproxy]}")  (target >= 3)"
