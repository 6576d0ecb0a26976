# kill -9 of the manager mid-build, then `qctl gc`: no QEMU, helper or
# proxy process, namespace, cgroup or run directory of that build remains.
. "$(dirname "$0")/lib.sh"

wait_started() { wait_step "$1" "$T/err" "$pid"; }

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
wait_for --timeout 30 --what "QEMU $q to die with its manager" gone "$q"
[ -d "$run_dir" ] || fail "run dir vanished before gc (test is not testing gc)"
"$QCTL" gc >"$T/gc" 2>&1 || fail "gc failed: $(cat "$T/gc")"
cat "$T/gc"
grep -q "removed run directory" "$T/gc" || fail "gc did not report the run dir"
[ ! -e "$run_dir" ] || fail "run dir left: $run_dir"
case "$cg" in
/qctl/) ;;	# no cgroup2 on this host
*) [ ! -e "$cg" ] || fail "cgroup left: $cg" ;;
esac
no_state_records "$QCTL_STATE_DIR"
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
	wait_for --timeout 30 --what "process $p ($(cat /proc/$p/comm 2>/dev/null)) to be gone" gone "$p"
done
[ ! -e "/run/netns/$ns" ] || fail "namespace pin left: $ns"
[ ! -e "$run_dir" ] || fail "run dir left: $run_dir"
no_state_records "$QCTL_STATE_DIR"
no_qemu_left

# 3. qctl serve killed with -9 during a build with network; a new serve
# reaps what it left
SOCK=$T/sock
ip netns exec "$NS" "$QCTL" serve --socket "$SOCK" --state-dir "$QCTL_STATE_DIR" \
	--run-root "$QCTL_RUN_ROOT" --accel tcg >"$T/serve.log" 2>&1 &
spid=$!
BG_PIDS+=("$spid")
wait_for --timeout 60 --what "qctl serve's socket" --alive "$spid" --log "$T/serve.log" test -S "$SOCK"
python3 "$TOP/tests/integration/qmpclient.py" "$SOCK" build-submit \
	'{"recipe": {"allow": ["127.0.0.1:9"], "steps": [{"name": "c", "network": "fetch", "run": "echo started; sleep 300"}]}}' \
	>"$T/submit" || fail "submit: $(cat "$T/submit")"
# the build's record names its QEMU, helper and proxy; then its step runs
record_complete() {
	rec=$(ls "$QCTL_STATE_DIR"/*.json 2>/dev/null | head -1)
	[ -n "$rec" ] && json "$rec" 'r["qemu"]["pid"]' >/dev/null 2>&1 &&
		json "$rec" 'r["proxy"]["pid"]' >/dev/null 2>&1
}
wait_for --timeout 300 --what "serve's build record with QEMU and proxy pids" \
	--alive "$spid" --log "$T/serve.log" record_complete
ns=$(json "$rec" 'r["netns"]')
run_dir=$(json "$rec" 'r["run_dir"]')
cg=$(json "$rec" 'r.get("cgroup_root","") + "/qctl/" + r.get("cgroup_name","")')
pids="$(json "$rec" 'r["qemu"]["pid"]') $(json "$rec" 'r["helper"]["pid"]') $(json "$rec" 'r["proxy"]["pid"]')"
wait_step c "$run_dir/build.log" "$spid"
kill -9 "$spid"
wait "$spid" 2>/dev/null || true
# a new server reaps on start
"$QCTL" serve --socket "$T/sock2" --state-dir "$QCTL_STATE_DIR" \
	--run-root "$QCTL_RUN_ROOT" --accel tcg >"$T/serve2.log" 2>&1 &
spid=$!
BG_PIDS+=("$spid")
wait_for --timeout 60 --what "the second qctl serve's socket" --alive "$spid" \
	--log "$T/serve2.log" test -S "$T/sock2"
kill -TERM "$spid"
wait "$spid" 2>/dev/null || true
cat "$T/serve2.log"
for p in $pids; do
	wait_for --timeout 30 --what "process $p ($(cat /proc/$p/comm 2>/dev/null)) to be gone" gone "$p"
done
[ ! -e "/run/netns/$ns" ] || fail "namespace pin left: $ns"
[ ! -e "$run_dir" ] || fail "run dir left: $run_dir"
case "$cg" in
/qctl/) ;;
*) [ ! -e "$cg" ] || fail "cgroup left: $cg" ;;
esac
no_state_records "$QCTL_STATE_DIR"
no_qemu_left
echo ok
