# The proxy is a program of its own, started from nothing of the manager's:
# during a build with a fetch step, its /proc/PID/exe is qctl-proxy, its
# environment is empty, it runs as an unprivileged uid with only its own
# fds (the listener, made in the builder's namespace, on 3), and so do its
# resolvers.  The manager's namespace has an address that is not loopback
# (192.0.2.1 on a dummy interface of the test's namespace, where the
# manager runs; a port-less bridge where the kernel has no dummy driver):
# a name resolving to it is refused unless that IP:port is
# listed, and allowed when it is.  Then a proxy that is slow to get ready:
# a fetch step that starts first gets its window once the proxy is ready.
# Then one that never gets ready: the build boots meanwhile (start-up does
# not block the manager's loop), opens no network, and fails at the
# deadline.
. "$(dirname "$0")/lib.sh"
test_netns
in_ns ip link add qctl-self0 type dummy 2>/dev/null ||
	in_ns ip link add qctl-self0 type bridge
in_ns ip addr add 192.0.2.1/32 dev qctl-self0
in_ns ip link set qctl-self0 up
# "self.test" names it for the manager's processes (ip netns exec mounts
# this file over /etc/hosts); lib.sh removes it with the namespace
mkdir -p "/etc/netns/$NS"
printf '127.0.0.1 localhost\n192.0.2.1 self.test\n' >"/etc/netns/$NS/hosts"
for port in 8090 8091; do
	ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" \
		--bind 192.0.2.1 --tag self "$port" &
	BG_PIDS+=($!)
done
up() { in_ns python3 -c 'import socket; [socket.create_connection(("192.0.2.1",p),1) for p in (8090,8091)]' 2>/dev/null; }
wait_for --timeout 60 --what "the upstreams on 192.0.2.1" up
cat >"$T/r.yaml" <<R
allow: ["self.test:8090", "self.test:8091", "192.0.2.1:8091"]
steps:
  - name: fetch
    network: fetch
    run: |
      wget -O - http://self.test:8090/file.txt 2>&1 | grep -q 403 && echo "SELF-UNLISTED:403"
      wget -q -O - http://self.test:8091/file.txt | grep -q hello-from-self && echo "SELF-LISTED:200"
      wget -q -O - http://192.0.2.1:8091/file.txt | grep -q hello-from-self && echo "SELF-IP:200"
      echo "HOLD:start"
      sleep 10
R
# A variable in the manager's environment that the proxy must not see.
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" \
	QCTL_STATE_DIR="$QCTL_STATE_DIR" QCTL_IMAGES="$QCTL_IMAGES" \
	QCTL_TEST_SECRET=hunter2 \
	"$QCTL" run -v --json "$T/r.yaml" >"$T/out" 2>"$T/err" &
mgr=$!
BG_PIDS+=($mgr)
wait_for --timeout 300 --what "the fetch step's HOLD:start" --alive "$mgr" --log "$T/err" \
	has_line "$T/err" 'HOLD:start'
net_pids "$T/err"
hp=$HELPER_PID pp=$PROXY_PID
builder_ns=$(sed -n 's/.*network: namespace \(qctl-run-[^,]*\),.*/\1/p' "$T/err")
[ -n "$builder_ns" ] || fail "no namespace in the log"

# $1: a process of the proxy (the relay or a resolver)
check_exec() {
	local pid=$1 exe
	exe=$(readlink "/proc/$pid/exe")
	expect_eq "$exe" "$QCTL_BUILD/qctl-proxy" "pid $pid exe"
	expect_eq "$(tr '\0' ' ' <"/proc/$pid/cmdline")" "qctl-proxy " "pid $pid cmdline"
	expect_eq "$(wc -c <"/proc/$pid/environ")" 0 "pid $pid environment bytes"
	grep -q '^Uid:	\([1-9][0-9]*\)	\1	\1	\1$' "/proc/$pid/status" ||
		fail "pid $pid uid: $(grep Uid: "/proc/$pid/status")"
	grep -q '^Gid:	\([1-9][0-9]*\)	\1	\1	\1$' "/proc/$pid/status" ||
		fail "pid $pid gid: $(grep Gid: "/proc/$pid/status")"
	grep -q '^Groups:[[:space:]]*$' "/proc/$pid/status" || fail "pid $pid has groups"
	grep -q '^CapEff:	0000000000000000$' "/proc/$pid/status" || fail "pid $pid capabilities"
	grep -q '^CapBnd:	0000000000000000$' "/proc/$pid/status" || fail "pid $pid bounding set"
	grep -q '^NoNewPrivs:	1$' "/proc/$pid/status" || fail "pid $pid no_new_privs"
	grep -q '^Seccomp:	2$' "/proc/$pid/status" || fail "pid $pid seccomp"
}
# "fd target" lines, sorted by fd
fds_of() {
	local f
	for f in /proc/$1/fd/*; do
		echo "${f##*/} $(readlink "$f" | sed 's/socket:\[[0-9]*\]/socket/')"
	done | sort -n
}

check_exec "$pp"
expect_eq "$(sed -n 's/^PPid:	//p' "/proc/$pp/status")" "$mgr" "proxy's parent"
# stdio on /dev/null, listener 3, control 4, then epoll and the four
# resolvers' sockets; nothing else
fds_of "$pp" >"$T/fds"
expect_eq "$(head -5 "$T/fds" | tr '\n' ' ')" "0 /dev/null 1 /dev/null 2 /dev/null 3 socket 4 socket " "proxy fds 0-4"
expect_eq "$(tail -n +6 "$T/fds" | cut -d' ' -f2 | sort | uniq -c |
	awk '{ printf "%s %s; ", $1, $2 }')" \
	"1 anon_inode:[eventpoll]; 4 socket; " "proxy fds above 4"
# fd 3 is the listener on the tap's address in the builder's namespace
# (where the nftables helper lives; its name is mounted only in the
# manager's mount namespace)
nsenter --net="/proc/$hp/ns/net" ss -Htlnp >"$T/ss"
grep -q "169.254.77.1:3128 .*\"qctl-proxy\",pid=$pp,fd=3)" "$T/ss" ||
	fail "listener not on fd 3 in $builder_ns: $(cat "$T/ss")"
n=0
for r in $(cat "/proc/$pp/task/$pp/children"); do
	check_exec "$r"
	expect_eq "$(fds_of "$r" | tr '\n' ' ')" "0 /dev/null 1 /dev/null 2 /dev/null 3 socket " "resolver $r fds"
	n=$((n + 1))
done
expect_eq "$n" 4 "resolvers"

rc=0
wait "$mgr" || rc=$?
[ "$rc" = 0 ] || { tail -40 "$T/err"; fail "exit $rc"; }
for want in "fetch| SELF-UNLISTED:403" "fetch| SELF-LISTED:200" "fetch| SELF-IP:200"; do
	grep -qF "$want" "$T/err" || { grep '|' "$T/err"; fail "missing: $want"; }
done
json "$T/out" '[(n["host"], n["port"], n["allowed"]) for n in r["network"]]' >"$T/net"
grep -qF '["self.test", 8090, false]' "$T/net" || fail "refusal not recorded: $(cat "$T/net")"
grep -qF '["self.test", 8091, true]' "$T/net" || fail "listed IP:port not allowed: $(cat "$T/net")"
grep -qF '["192.0.2.1", 8091, true]' "$T/net" || fail "IP literal not allowed: $(cat "$T/net")"
json "$T/out" '[n["reason"] for n in r["network"] if n["port"] == 8090][0]' >"$T/why"
grep -qF 'resolves to 192.0.2.1 (an address of this host)' "$T/why" || fail "reason: $(cat "$T/why")"
! kill -0 "$pp" 2>/dev/null || fail "proxy $pp left"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"

# A proxy slow to start: the window of the fetch step that is waiting
# for it opens once it is ready.  The stand-in gets ready only once the
# manager says the step waits for it -- or, where the guest is slower to
# boot than the manager's 10 s start deadline allows, after 7 s (the
# deferral is then not exercised, and the test says so).  It runs as the
# proxy's uid, with no environment: it reads the manager's log through
# $T (0755) and names every program by its path.
chmod 755 "$T"
cat >"$T/slow" <<SH
#!/bin/sh
end=\$((\$(/bin/date +%s) + 7))
while ! /bin/grep -q 'waiting for the proxy' "$T/err" && [ \$(/bin/date +%s) -lt \$end ]; do
	/bin/sleep 0.1
done
exec $QCTL_BUILD/qctl-proxy
SH
chmod 755 "$T/slow"
cat >"$T/s.yaml" <<R
allow: ["self.test:8091", "192.0.2.1:8091"]
steps:
  - name: fetch
    network: fetch
    run: wget -q -O - http://self.test:8091/file.txt | grep -q hello-from-self && echo "SLOW-START:200"
R
rc=0
in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" QCTL_IMAGES="$QCTL_IMAGES" \
	QCTL_PROXY="$T/slow" "$QCTL" run -v --json "$T/s.yaml" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || { tail -30 "$T/err"; fail "slow proxy: exit $rc"; }
grep -qF "fetch| SLOW-START:200" "$T/err" || { tail -30 "$T/err"; fail "slow proxy: no fetch"; }
ready_line=$(grep -n 'network: proxy ready' "$T/err" | head -1 | cut -d: -f1)
[ -n "$ready_line" ] || fail "no 'proxy ready' in the log"
if grep -q 'waiting for the proxy' "$T/err"; then
	wait_line=$(grep -n 'waiting for the proxy' "$T/err" | head -1 | cut -d: -f1)
	[ "$wait_line" -lt "$ready_line" ] || fail "window opened before ready"
else
	echo "note: the guest took over 7 s to boot; the deferred window was not exercised" >&2
fi
no_qemu_left

# A proxy that never says ready: the VM boots meanwhile, no window opens,
# and the build fails (infrastructure, exit 4) at the deadline.
printf '#!/bin/sh\nexec /bin/sleep 600\n' >"$T/hang"
chmod 755 "$T/hang"
rc=0
in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" QCTL_IMAGES="$QCTL_IMAGES" \
	QCTL_PROXY="$T/hang" "$QCTL" run -v --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 4 "build with a proxy that never gets ready"
late=$(grep -n 'proxy: not ready after' "$T/err" | head -1 | cut -d: -f1)
[ -n "$late" ] || { tail -20 "$T/err"; fail "no deadline failure"; }
# QMP answered (the loop ran) while the proxy was still starting
up=$(grep -n 'VM running' "$T/err" | head -1 | cut -d: -f1)
[ -n "$up" ] && [ "$up" -lt "$late" ] ||
	{ tail -20 "$T/err"; fail "the VM did not start while the proxy was starting"; }
! grep -q 'fetch| SELF' "$T/err" || fail "network opened without a ready proxy"
expect_eq "$(json "$T/out" 'len(r["network"] or [])')" 0 "requests through a proxy that was not ready"
net_pids "$T/err"
gone "$PROXY_PID" || fail "stuck proxy $PROXY_PID left running"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
echo ok
