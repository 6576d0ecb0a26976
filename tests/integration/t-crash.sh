# kill -9 of the manager mid-build, then `qctl gc`: no QEMU, helper or
# proxy process, namespace, cgroup or run directory of that build remains.
. "$(dirname "$0")/lib.sh"

wait_started() {
	for i in $(seq 240); do grep -q "^$1| started" "$T/err" 2>/dev/null && return 0; sleep 0.5; done
	fail "step $1 never started"
}

# 1. no network: QEMU and its cgroup
cat >"$T/a.yaml" <<'R'
steps: [{name: a, run: "echo started; sleep 300"}]
R
"$QCTL" run -v "$T/a.yaml" >"$T/err" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
wait_started a
rec=$(ls "$QCTL_STATE_DIR"/*.json)
run_dir=$(json "$rec" 'r["run_dir"]')
cg=$(json "$rec" 'r.get("cgroup_root","") + "/qctl/" + r.get("cgroup_name","")')
q=$(json "$rec" 'r["qemu"]["pid"]')
[ -d "$run_dir" ] || fail "no run dir $run_dir"
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
for i in $(seq 50); do kill -0 "$q" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$q" 2>/dev/null || fail "QEMU $q survived its manager"
[ -d "$run_dir" ] || fail "run dir vanished before gc (test is not testing gc)"
"$QCTL" gc >"$T/gc" 2>&1 || fail "gc failed: $(cat "$T/gc")"
cat "$T/gc"
grep -q "removed run directory" "$T/gc" || fail "gc did not report the run dir"
[ ! -e "$run_dir" ] || fail "run dir left: $run_dir"
case "$cg" in
/qctl/) ;;	# no cgroup2 on this host
*) [ ! -e "$cg" ] || fail "cgroup left: $cg" ;;
esac
[ -z "$(ls "$QCTL_STATE_DIR")" ] || fail "state record left"
no_qemu_left

# 2. with network, the manager inside a test namespace
test_netns
cat >"$T/b.yaml" <<'R'
allow: ["127.0.0.1:9"]
steps: [{name: b, network: fetch, run: "echo started; sleep 300"}]
R
# not through in_ns: $! must be the manager itself (ip and env exec it)
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" \
	QCTL_IMAGES="$QCTL_IMAGES" "$QCTL" run -v "$T/b.yaml" >"$T/err" 2>&1 &
pid=$!
BG_PIDS+=("$pid")
wait_started b
rec=$(ls "$QCTL_STATE_DIR"/*.json)
ns=$(json "$rec" 'r["netns"]')
run_dir=$(json "$rec" 'r["run_dir"]')
pids="$(json "$rec" 'r["qemu"]["pid"]') $(json "$rec" 'r["helper"]["pid"]') $(json "$rec" 'r["proxy"]["pid"]')"
[ -e "/run/netns/$ns" ] || fail "no namespace pin $ns"
# the ip netns exec wrapper is $pid; the manager is its child (exec'd)
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
"$QCTL" gc >"$T/gc" 2>&1 || fail "gc failed: $(cat "$T/gc")"
cat "$T/gc"
for p in $pids; do
	for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$p" 2>/dev/null || fail "process $p ($(cat /proc/$p/comm 2>/dev/null)) left"
done
[ ! -e "/run/netns/$ns" ] || fail "namespace pin left: $ns"
[ ! -e "$run_dir" ] || fail "run dir left: $run_dir"
[ -z "$(ls "$QCTL_STATE_DIR")" ] || fail "state record left"
no_qemu_left
echo ok
