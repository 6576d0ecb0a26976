#!/usr/bin/env bash
# The proxy alone, with real clients (curl, openssl s_client), in a network
# namespace made for the test: upstreams on 127.0.0.1 and ::1 there, a fake
# DNS server on 127.0.0.53 there (ip netns exec mounts /etc/netns/NS/ over
# /etc/ inside), TLS from openssl s_server.  Nothing leaves the namespace.
. "$(dirname "$0")/lib.sh"
# lib.sh's fail, with the proxy's events
fail() { echo "FAIL: $*" >&2; [ -f "$T/out" ] && cat "$T/out" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in ip python3 curl openssl cc; do
	command -v $c >/dev/null || { echo "SKIP: no $c"; exit 77; }
done

make -C "$TOP" --no-print-directory "${QCTL_BUILD#"$TOP"/}/libqctl.a" \
	"${QCTL_BUILD#"$TOP"/}/qctl-proxy" >/dev/null
$QCTL_CC $QCTL_CFLAGS -D_GNU_SOURCE -I"$TOP/qctl" -O2 -o "$T/proxy-driver" \
	"$TOP/tests/integration/proxy-driver.c" "$QCTL_BUILD/libqctl.a" \
	$(pkg-config --libs jansson yaml-0.1 libarchive libcrypto libseccomp \
	  libcap-ng)

# The namespace (lib.sh deletes it, and its /etc/netns files), with its
# own resolver configuration and hosts file.
test_netns
mkdir -p "/etc/netns/$NS"
echo "nameserver 127.0.0.53" >"/etc/netns/$NS/resolv.conf"
printf '127.0.0.1 localhost\n::1 localhost\n' >"/etc/netns/$NS/hosts"
bg_ns() { ip netns exec "$NS" "$@" >>"$T/bg.log" 2>&1 & BG_PIDS+=($!); }

cat >"$T/dns.py" <<'EOF'
# Minimal DNS server for the test: NAME=ADDR pairs, A/AAAA, UDP and TCP.
import ipaddress, socket, struct, sys, threading
table = {}
for kv in sys.argv[2:]:
    k, v = kv.split("=")
    table.setdefault(k, []).append(ipaddress.ip_address(v))
def answer(q):
    qid = struct.unpack(">H", q[:2])[0]
    i, labels = 12, []
    while q[i]:
        labels.append(q[i + 1:i + 1 + q[i]].decode()); i += 1 + q[i]
    qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
    name, ans, n = ".".join(labels).lower(), b"", 0
    for ip in table.get(name, []):
        if (qtype, ip.version) in ((1, 4), (28, 6)):
            ans += b"\xc0\x0c" + struct.pack(">HHIH", qtype, 1, 5,
                                             len(ip.packed)) + ip.packed
            n += 1
    rcode = 0 if name in table else 3
    return struct.pack(">HHHHHH", qid, 0x8180 | rcode, 1, n, 0, 0) + \
        q[12:i + 5] + ans
def tcp():
    s = socket.socket(); s.bind((sys.argv[1], 53)); s.listen(8)
    while True:
        c, _ = s.accept()
        try:
            while True:
                h = c.recv(2)
                if len(h) < 2: break
                a = answer(c.recv(struct.unpack(">H", h)[0]))
                c.sendall(struct.pack(">H", len(a)) + a)
        finally:
            c.close()
threading.Thread(target=tcp, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind((sys.argv[1], 53))
while True:
    q, peer = u.recvfrom(512); u.sendto(answer(q), peer)
EOF

mkdir -p "$T/www"
head -c 300000 /dev/urandom >"$T/www/file"
chmod -R a+rX "$T"
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=mirror.test \
	-addext "subjectAltName=DNS:mirror.test" -keyout "$T/key.pem" \
	-out "$T/cert.pem" 2>/dev/null

bg_ns python3 "$T/dns.py" 127.0.0.53 mirror.test=127.0.0.1 \
	mirror.test=::1 meta.test=169.254.169.254 far.test=192.0.2.7
bg_ns python3 -m http.server --bind 127.0.0.1 --directory "$T/www" 18080
bg_ns python3 -m http.server --bind 127.0.0.1 --directory "$T/www" 18081
bg_ns python3 -m http.server --bind ::1 --directory "$T/www" 18086
bg_ns openssl s_server -quiet -accept 127.0.0.1:18443 -cert "$T/cert.pem" \
	-key "$T/key.pem" -www
mkfifo "$T/ctl"
ip netns exec "$NS" "$T/proxy-driver" -P "$QCTL_BUILD/qctl-proxy" \
	3128 127.0.0.1:18080 mirror.test:18080 \
	mirror.test:18443 127.0.0.1:18443 '[::1]:18086' meta.test:80 \
	far.test:80 <"$T/ctl" >"$T/out" & BG_PIDS+=($!)
exec 3>"$T/ctl"
all_up() {
	has_line "$T/out" '"ready"' &&
	in_ns bash -c ': </dev/tcp/127.0.0.1/18443 && : </dev/tcp/127.0.0.1/18080 &&
		: </dev/tcp/127.0.0.1/18081 && : </dev/tcp/::1/18086 &&
		: </dev/tcp/127.0.0.53/53' 2>/dev/null
}
wait_for --timeout 60 --what "the proxy's ready event and the servers" --log "$T/bg.log" all_up

# curl's -m is the answer's deadline, a failure when it passes
px() { in_ns curl -sS -m 60 -x http://127.0.0.1:3128 "$@"; }
code() { px -o /dev/null -w '%{http_code}' "$@" 2>/dev/null || true; }
nrec() { grep -c '"event":"record"' "$T/out" || true; }
wait_rec() {	# N: until N records are out
	wait_for --timeout 60 --what "$1 records from the proxy (have $(nrec))" \
		eval '[ "$(nrec)" -ge '"$1"' ]'
}

# Plain HTTP, by listed IP and by a listed name that DNS maps onto it.
px -o "$T/got" http://127.0.0.1:18080/file
cmp -s "$T/got" "$T/www/file" || fail "download through proxy differs"
px -o "$T/got2" http://mirror.test:18080/file
cmp -s "$T/got2" "$T/www/file" || fail "download by name differs"
# IPv6 literal, listed.
[ "$(code 'http://[::1]:18086/file')" = 200 ] || fail "IPv6 literal"
wait_rec 3
# HTTPS through CONNECT; SNI = the CONNECT host.
out=$(px -k https://mirror.test:18443/ 2>&1) || fail "https via CONNECT: $out"
echo "$out" | grep -qi "s_server\|cipher" || fail "not s_server's page: $out"
wait_rec 4
# SNI that names another host than the CONNECT: the tunnel is cut.
if in_ns timeout 60 openssl s_client -proxy 127.0.0.1:3128 \
	-connect mirror.test:18443 -servername evil.test </dev/null \
	>"$T/sc.out" 2>&1; then
	grep -q "BEGIN CERTIFICATE\|Server certificate" "$T/sc.out" &&
		fail "handshake with mismatched SNI went through"
fi
wait_rec 5
# Refusals.
[ "$(code http://localhost:18080/file)" = 403 ] || fail "localhost allowed"
[ "$(code http://127.0.0.1:18081/file)" = 403 ] || fail "unlisted port"
[ "$(code http://meta.test/)" = 403 ] || fail "metadata address"
[ "$(code http://far.test/)" = 502 ] || fail "unroutable public address"
wait_rec 9
# Window closed: refused, with no step.  Nothing acknowledges the close
# message, so a tunnel held open through it tells when the proxy has
# acted on it: the proxy cuts it (EOF here, and its record) as it closes.
# (Not through in_ns: $! must be python itself.)
ip netns exec "$NS" python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), 60)
s.sendall(b"CONNECT 127.0.0.1:18080 HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n")
head = b""
while not head.endswith(b"\r\n\r\n"):
    d = s.recv(1)
    if not d:
        sys.exit("no answer to CONNECT")
    head += d
print(head.split(b"\r\n")[0].decode(), flush=True)
s.settimeout(300)
print("eof" if s.recv(1) == b"" else "data", flush=True)
' >"$T/tunnel" 2>&1 &
held=$!
BG_PIDS+=("$held")
wait_for --timeout 60 --what "a tunnel through the open window" --log "$T/tunnel" \
	--alive "$held" has_line "$T/tunnel" '^HTTP/1\.[01] 200'
echo close >&3
wait_for --timeout 60 --what "the proxy to cut the tunnel at the close" --log "$T/tunnel" \
	--alive "$held" has_line "$T/tunnel" '^eof$'
wait_rec 10
[ "$(code http://127.0.0.1:18080/file)" = 403 ] || fail "window closed"
wait_rec 11

python3 - "$T/out" <<'EOF' || fail "records"
import json, sys
recs = [r for r in map(json.loads, open(sys.argv[1])) if r["event"] == "record"]
def check(i, **kw):
    r = recs[i]
    for k, v in kw.items():
        if callable(v):
            assert v(r[k]), (i, k, r)
        else:
            assert r[k] == v, (i, k, r[k], v, r)
check(0, step="fetch", method="GET", host="127.0.0.1", port=18080,
      allowed=True, bytes_down=lambda b: b > 300000, bytes_up=lambda b: b > 0)
check(1, host="mirror.test", allowed=True, reason="allowlisted as mirror.test:18080")
check(2, host="[::1]", port=18086, allowed=True)
check(3, method="CONNECT", host="mirror.test", port=18443, allowed=True,
      bytes_down=lambda b: b > 1000)
check(4, method="CONNECT", allowed=False,
      reason="TLS SNI evil.test does not match CONNECT host mirror.test")
check(5, host="localhost", allowed=False)
check(6, port=18081, allowed=False)
check(7, host="meta.test", allowed=False,
      reason=lambda s: "169.254.169.254 (link-local)" in s)
check(8, host="far.test", allowed=True,
      reason=lambda s: "Network is unreachable" in s)
check(9, step="fetch", method="CONNECT", host="127.0.0.1", port=18080,
      allowed=True, reason=lambda s: "network window closed" in s)
check(10, step=None, allowed=False, reason="no network window is open")
EOF

# The proxy runs confined.
pid=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["pid"])' "$T/out")
st=/proc/$pid/status
grep -q "^Uid:	65534	65534	65534	65534" $st || fail "uid: $(grep Uid $st)"
grep -q "^Seccomp:	2" $st || fail "seccomp: $(grep Seccomp: $st)"
grep -q "^NoNewPrivs:	1" $st || fail "no_new_privs"
grep -q "^CapEff:	0000000000000000" $st || fail "capabilities"
# Its death is noticed by the manager side.
kill -9 "$pid"
wait_for --timeout 60 --what "the driver's proxy-died event" has_line "$T/out" proxy-died
echo "t-proxy-clients: ok"
