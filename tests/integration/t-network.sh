# Network only in fetch steps, only through the proxy, only to allowlisted
# host:port.  The manager and two upstreams (8080 listed, 8081 not) run in
# a namespace of the test's own; nothing leaves this machine.
. "$(dirname "$0")/lib.sh"
test_netns
ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" 8080 --tag allowed &
BG_PIDS+=($!)
ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" 8081 --tag forbidden &
BG_PIDS+=($!)
up() { in_ns python3 -c 'import socket,sys; [socket.create_connection(("127.0.0.1",p),1) for p in (8080,8081)]' 2>/dev/null; }
wait_for --timeout 60 --what "the upstreams on 8080 and 8081" up
P=169.254.77.1:3128
cat >"$T/r.yaml" <<R
allow: ["127.0.0.1:8080"]
steps:
  - name: fetch
    network: fetch
    run: |
      wget -q -O got.txt http://127.0.0.1:8080/file.txt && echo "ALLOWED:\$(cat got.txt)"
      wget -O - http://127.0.0.1:8081/file.txt 2>&1 | grep -q 403 && echo "FORBIDDEN:403"
      wget -O - http://localhost:8080/file.txt 2>&1 | grep -q 403 && echo "LOCALHOST:403"
      wget -q -O /tmp/slow.out http://127.0.0.1:8080/slow &
      # its first bytes (a byte every 100 ms), however slow this host
      i=0; while [ ! -s /tmp/slow.out ] && [ \$i -lt 600 ]; do sleep 0.1; i=\$((i + 1)); done
      test -s /tmp/slow.out && echo "SLOW:started"
  - name: probe-none
    run: |
      # The window was closed (the helper acknowledged it) before this
      # step began; bytes already on their way may still land.  Dead:
      # the size holds for 3 s in a row (a live download adds 10 B/s),
      # within 60 s.
      a=-1; same=0; i=0
      while [ \$same -lt 3 ] && [ \$i -lt 60 ]; do
        b=\$(wc -c < /tmp/slow.out)
        if [ "\$a" = "\$b" ]; then same=\$((same + 1)); else same=0; fi
        a=\$b; i=\$((i + 1)); sleep 1
      done
      [ \$same -ge 3 ] && echo "SLOW:dead" || echo "SLOW:alive at \$b bytes"
      http_proxy=http://$P timeout 5 wget -q -O - http://127.0.0.1:8080/file.txt || echo "PROXY-CLOSED:ok"
      timeout 5 nc -w 3 169.254.77.1 8080 </dev/null && echo LEAK-TCP || echo "TCP-DIRECT:refused"
      timeout 5 nc -w 3 127.0.0.1 8080 </dev/null && echo LEAK-TCP || echo "TCP-UPSTREAM:refused"
      timeout 5 nslookup qctl.test 169.254.77.1 >/dev/null 2>&1 && echo LEAK-DNS || echo "DNS:refused"
      ping -c 1 -W 2 169.254.77.1 >/dev/null 2>&1 && echo LEAK-ICMP || echo "ICMP:refused"
      ping -6 -c 1 -W 2 ff02::2%eth0 >/dev/null 2>&1 && echo LEAK-IPV6 || echo "IPV6:refused"
  - name: probe-fetch
    network: fetch
    run: |
      timeout 5 nc -w 3 169.254.77.1 8080 </dev/null && echo LEAK-TCP || echo "TCP-DIRECT:refused"
      timeout 5 nc -w 3 127.0.0.1 8080 </dev/null && echo LEAK-TCP || echo "TCP-UPSTREAM:refused"
      timeout 5 nslookup qctl.test 169.254.77.1 >/dev/null 2>&1 && echo LEAK-DNS || echo "DNS:refused"
      ping -c 1 -W 2 169.254.77.1 >/dev/null 2>&1 && echo LEAK-ICMP || echo "ICMP:refused"
      ping -6 -c 1 -W 2 ff02::2%eth0 >/dev/null 2>&1 && echo LEAK-IPV6 || echo "IPV6:refused"
      true
R
rc=0
in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" QCTL_IMAGES="$QCTL_IMAGES" \
	"$QCTL" run -v --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || { tail -40 "$T/err"; fail "exit $rc"; }
for want in "fetch| ALLOWED:hello-from-allowed" "fetch| FORBIDDEN:403" \
	"fetch| LOCALHOST:403" "fetch| SLOW:started" "probe-none| SLOW:dead" \
	"probe-none| PROXY-CLOSED:ok"; do
	grep -qF "$want" "$T/err" || { grep '|' "$T/err"; fail "missing: $want"; }
done
for step in probe-none probe-fetch; do
	for what in TCP-DIRECT TCP-UPSTREAM DNS ICMP IPV6; do
		grep -qF "$step| $what:refused" "$T/err" || { grep '|' "$T/err"; fail "$step: $what not refused"; }
	done
done
! grep -q 'LEAK-' "$T/err" || fail "leak: $(grep LEAK- "$T/err")"
# the result's network array: the allowed GET and the two refusals
json "$T/out" '[(n["host"], n["port"], n["allowed"], n["step"]) for n in r["network"]]' >"$T/net"
grep -qF '["127.0.0.1", 8080, true, "fetch"]' "$T/net" || fail "allowed GET not recorded: $(cat "$T/net")"
grep -qF '["127.0.0.1", 8081, false, "fetch"]' "$T/net" || fail "403 not recorded: $(cat "$T/net")"
grep -qF '["localhost", 8080, false, "fetch"]' "$T/net" || fail "localhost refusal not recorded: $(cat "$T/net")"
expect_eq "$(json "$T/out" 'r["stats"]["net_rx_bytes"] > 0')" True "net_rx_bytes counted"
no_qemu_left
run_dir_gone
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
# the helper and the proxy are gone with the build
net_pids "$T/err"
gone "$HELPER_PID" || fail "helper $HELPER_PID left"
gone "$PROXY_PID" || fail "proxy $PROXY_PID left"
# a failing build with network leaves nothing either
cat >"$T/f.yaml" <<R
allow: ["127.0.0.1:8080"]
steps: [{name: f, network: fetch, run: "wget -q -O - http://127.0.0.1:8080/; exit 5"}]
R
rc=0
in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" QCTL_IMAGES="$QCTL_IMAGES" \
	"$QCTL" run -v --json "$T/f.yaml" >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 1 "failing build exit"
net_pids "$T/err"
gone "$HELPER_PID" || fail "helper $HELPER_PID left"
gone "$PROXY_PID" || fail "proxy $PROXY_PID left"
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
no_qemu_left
echo ok
