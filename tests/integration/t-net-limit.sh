# Exceeding net_bytes ends the build: status limit, exit 3, net_bytes; and
# a QEMU killed with SIGKILL mid-fetch leaves no namespace, helper or proxy.
. "$(dirname "$0")/lib.sh"
test_netns
ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" 8080 &
BG_PIDS+=($!)
up() { in_ns python3 -c 'import socket; socket.create_connection(("127.0.0.1",8080),1)' 2>/dev/null; }
wait_for --timeout 60 --what "the upstream on 8080" up
# The step outlives the download by far: the limit, not the step's end,
# must stop the build, however late the manager's sampling gets to it
# (and if it never does, wall_time says so in 4 minutes).
cat >"$T/r.yaml" <<'R'
allow: ["127.0.0.1:8080"]
limits: {net_bytes: 1M, wall_time: 4m}
steps:
  - {name: big, network: fetch, run: "wget -q -O big http://127.0.0.1:8080/big=8388608; ls -l big; sleep 600"}
R
rc=0
in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" \
	QCTL_IMAGES="$QCTL_IMAGES" "$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 3 ] || { tail -30 "$T/err"; fail "exit $rc, expected 3"; }
expect_eq "$(json "$T/out" 'r["status"]')" limit status
expect_eq "$(json "$T/out" 'r["limit"]["name"]')" net_bytes "limit name"
expect_eq "$(json "$T/out" 'r["limit"]["max"]')" 1048576 "limit max"
expect_eq "$(json "$T/out" 'r["limit"]["value"] >= r["limit"]["max"]')" True "limit value reaches max: $(json "$T/out" 'r["limit"]')"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"

# SIGKILL to QEMU during a fetch step: infrastructure error, nothing left
cat >"$T/k.yaml" <<'R'
allow: ["127.0.0.1:8080"]
steps:
  - {name: wait, network: fetch, run: "echo started; sleep 120"}
R
# not through in_ns: $! must be the manager itself (ip and env exec it)
: >"$T/out"; : >"$T/err"	# emptied now: the job itself may empty them only after the wait below has read the last run's lines
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" \
	QCTL_IMAGES="$QCTL_IMAGES" "$QCTL" run -v --json "$T/k.yaml" >"$T/out" 2>"$T/err" &
pid=$!
BG_PIDS+=("$pid")
wait_step wait "$T/err" "$pid"
helpers=$(pgrep -P $pid | tr '\n' ' ')
q=$(qemu_pids_of_test)
[ -n "$q" ] || fail "no QEMU"
# what is checked below must include the helper and the proxy
net_pids "$T/err"
for h in "$HELPER_PID" "$PROXY_PID" "$q"; do
	case " $helpers " in *" $h "*) ;; *) fail "$h is not among qctl's children: $helpers" ;; esac
done
[ -n "$(leftover_netns)" ] || fail "no builder namespace while running"
kill -9 $q
rc=0; wait $pid || rc=$?
expect_eq "$rc" 4 "exit after QEMU was killed"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
for h in $helpers; do
	! kill -0 "$h" 2>/dev/null || fail "child $h of qctl ($(cat /proc/$h/comm 2>/dev/null)) still alive"
done

# the nftables helper dies mid-build: fail closed, exit 4, nothing left
: >"$T/out"; : >"$T/err"	# emptied now: the job itself may empty them only after the wait below has read the last run's lines
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" \
	QCTL_IMAGES="$QCTL_IMAGES" "$QCTL" run -v --json "$T/k.yaml" >"$T/out" 2>"$T/err" &
pid=$!
BG_PIDS+=("$pid")
wait_step wait "$T/err" "$pid"
net_pids "$T/err"
kill -9 "$HELPER_PID"
rc=0; wait $pid || rc=$?
expect_eq "$rc" 4 "exit after the helper died"
json "$T/out" 'r["reason"]' | grep -q 'helper' || fail "reason: $(json "$T/out" 'r["reason"]')"
gone "$PROXY_PID" || fail "proxy $PROXY_PID left"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
echo ok
