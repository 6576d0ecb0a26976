# timeout: 600
# The GitLab Runner custom executor (integrations/gitlab/, issue 13),
# driven as the runner drives it (the runner itself is not in Debian):
# config's JSON; per job, prepare, then run SCRIPT STAGE for each stage,
# then cleanup, with CUSTOM_ENV_CI_JOB_ID, BUILD_FAILURE_EXIT_CODE and
# SYSTEM_FAILURE_EXIT_CODE set (to unusual values, so that the driver is
# seen to use them).  qctl serve --ssh runs in the test's own namespace.
#  - two jobs at once, each in its own VM kept across its stages: a file
#    one stage writes, the next reads; the other job's VM does not have it
#  - a failing script: BUILD_FAILURE_EXIT_CODE, its own code in
#    BUILD_EXIT_CODE_FILE; after_script still runs in the same VM
#  - a job cancelled mid-stage (SIGTERM to run, as the runner sends it):
#    run ends at once, the stage's process in the VM is killed
#  - prepare killed (SIGKILL) while its VM boots: cleanup still ends it
#  - run without prepare, an image the runner does not offer, a garbled
#    server, a serve without --ssh: SYSTEM_FAILURE_EXIT_CODE, nothing left
#  - cleanup: the build ends (held builds pass), the job's key is removed,
#    no QEMU is left
. "$(dirname "$0")/lib.sh"
for c in ip ssh ssh-keygen python3; do
	command -v $c >/dev/null || fail "$c is missing (make deps)"
done
test_netns
PORT=2222
DRV=$TOP/integrations/gitlab
ssh-keygen -q -t ed25519 -N '' -C host -f "$T/hostkey"
: >"$T/authorized"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$T/hostkey.pub")" >"$T/known"
SOCK=$T/sock
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" \
	QCTL_STATE_DIR="$QCTL_STATE_DIR" "$QCTL" serve --socket "$SOCK" \
	--state-dir "$T/state" --run-root "$QCTL_RUN_ROOT" -v \
	--max-parallel 2 --ssh "127.0.0.1:$PORT" --ssh-host-key "$T/hostkey" \
	--ssh-authorized-keys "$T/authorized" --max-hold 10m \
	>"$T/serve.out" 2>"$T/serve.log" &
SERVE_PID=$!
BG_PIDS+=("$SERVE_PID")
wait_for --timeout 60 --what "the ssh server to be ready" --alive "$SERVE_PID" \
	--log "$T/serve.log" has_line "$T/serve.log" 'ssh: serving on'

cat >"$T/gitlab.json" <<EOF
{"socket": "$SOCK", "ssh": "127.0.0.1:$PORT", "known_hosts": "$T/known",
 "state_dir": "$T/jobs", "image": "minimal", "hold": "1h",
 "recipe": {"limits": {"wall_time": "15m"}}}
EOF
export QCTL_GITLAB_CONFIG=$T/gitlab.json BUILD_FAILURE_EXIT_CODE=37 \
	SYSTEM_FAILURE_EXIT_CODE=38

# drv JOB EXE ARGS...: one executable as the runner calls it
drv() {
	local job=$1 exe=$2
	shift 2
	CUSTOM_ENV_CI_JOB_ID=$job timeout 300 ip netns exec "$NS" "$DRV/$exe" "$@"
}
# stage JOB STAGE EXPECTED_RC: run the script on stdin as that stage
stage() {
	local rc=0
	cat >"$T/$1-$2.sh"
	drv "$1" run "$T/$1-$2.sh" "$2" >"$T/$1-$2.out" 2>"$T/$1-$2.err" || rc=$?
	[ "$rc" = "$3" ] || {
		cat "$T/$1-$2.out" "$T/$1-$2.err" >&2
		fail "job $1 stage $2 exited $rc, expected $3"
	}
}
qstatus() { # BUILD: its status and held flag
	PYTHONPATH="$TOP/tests/integration" python3 "$TOP/tests/integration/qmpclient.py" \
		"$SOCK" build-status "{\"id\": \"$1\"}" |
		python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["status"], r.get("held"))'
}

# config
drv 0 config >"$T/config.json" || fail "config failed"
expect_eq "$(json "$T/config.json" 'r["driver"]["name"]')" qctl "config driver"
expect_eq "$(json "$T/config.json" 'r["builds_dir"]')" /src/builds "config builds_dir"
expect_eq "$(json "$T/config.json" 'r["builds_dir_is_shared"]')" False "config shared"

# two jobs prepared at once, each its own VM
drv 101 prepare >"$T/p101.out" 2>"$T/p101.err" &
P1=$!
drv 102 prepare >"$T/p102.out" 2>"$T/p102.err" &
P2=$!
wait $P1 || fail "prepare of job 101: $(cat "$T/p101.err")"
wait $P2 || fail "prepare of job 102: $(cat "$T/p102.err")"
b101=$(cat "$T/jobs/job-101/build")
b102=$(cat "$T/jobs/job-102/build")
[ "$b101" != "$b102" ] || fail "two jobs share build $b101"
expect_eq "$(qstatus "$b101")" "running True" "job 101's build after prepare"
grep -q "ready, held" "$T/p101.err" || fail "prepare said: $(cat "$T/p101.err")"

stage 101 get_sources 0 <<'EOF'
mkdir -p /src/builds/proj && cd /src/builds/proj
echo "source of 101" >README
echo fetched
EOF
expect_eq "$(cat "$T/101-get_sources.out")" fetched "get_sources output"
stage 101 step_script 0 <<'EOF'
cd /src/builds/proj
cat README
echo to-stderr >&2
# what the script runs keeps its own stdin: not the rest of the script
read -r line || echo "stdin is empty"
echo after-read
EOF
expect_eq "$(cat "$T/101-step_script.out")" "source of 101
stdin is empty
after-read" "step_script sees get_sources' file"
grep -qx to-stderr "$T/101-step_script.err" || fail "stderr not passed: $(cat "$T/101-step_script.err")"
stage 102 step_script 0 <<'EOF'
test -e /src/builds/proj/README && echo "sees 101's file" || echo own-vm
EOF
expect_eq "$(cat "$T/102-step_script.out")" own-vm "job 102's VM"

# a failing script: the runner's build failure code, the real one in the file
export BUILD_EXIT_CODE_FILE=$T/exit-code
stage 102 build_script 37 <<'EOF'
echo failing; exit 7
EOF
expect_eq "$(cat "$T/exit-code")" 7 "BUILD_EXIT_CODE_FILE"
unset BUILD_EXIT_CODE_FILE
stage 102 after_script 0 <<'EOF'
echo after
EOF
expect_eq "$(cat "$T/102-after_script.out")" after "after_script after a failure"

# cancelled mid-stage: SIGTERM to run
cat >"$T/101-long.sh" <<'EOF'
echo $$ >/src/long.pid
echo started
sleep 300
echo never
EOF
CUSTOM_ENV_CI_JOB_ID=101 ip netns exec "$NS" "$DRV/run" "$T/101-long.sh" \
	step_script >"$T/long.out" 2>"$T/long.err" &
LONG=$!
BG_PIDS+=("$LONG")
wait_for --timeout 120 --what "the long stage to start" --alive "$LONG" \
	has_line "$T/long.out" '^started$'
t0=$SECONDS
kill -TERM "$LONG"
rc=0; wait "$LONG" || rc=$?
expect_eq "$rc" 37 "a cancelled stage's exit code"
[ $((SECONDS - t0)) -le 30 ] || fail "run took $((SECONDS - t0)) s to stop"
grep -q "stopped by signal 15" "$T/long.err" || fail "run said: $(cat "$T/long.err")"
! grep -q never "$T/long.out" || fail "the stage went on"
# the stage's shell is gone from the VM (ps may lag: wait for it)
cat >"$T/probe.sh" <<'EOF'
for i in $(seq 1 50); do
	kill -0 "$(cat /src/long.pid)" 2>/dev/null || { echo gone; exit 0; }
	sleep 0.2
done
echo alive
EOF
drv 101 run "$T/probe.sh" after_script >"$T/probe.out" 2>&1 || fail "probe: $(cat "$T/probe.out")"
expect_eq "$(cat "$T/probe.out")" gone "the cancelled stage's process"

# cleanup: the held builds end (passed: their one step did), keys go
for j in 101 102; do
	b=$(cat "$T/jobs/job-$j/build")
	drv $j cleanup >"$T/c$j.out" 2>&1 || fail "cleanup of job $j: $(cat "$T/c$j.out")"
	grep -q "build $b ended (passed)" "$T/c$j.out" || fail "cleanup $j said: $(cat "$T/c$j.out")"
	[ ! -e "$T/jobs/job-$j" ] || fail "job $j's state (its key) is left"
done
drv 101 cleanup >/dev/null 2>&1 || fail "a second cleanup is not a no-op"
grep -q "released over the control socket" "$T/serve.log" ||
	fail "serve did not log the release"

# prepare killed while its VM boots: cleanup still ends the build
drv 103 prepare >"$T/p103.out" 2>"$T/p103.err" &
P3=$!
BG_PIDS+=("$P3")
wait_for --timeout 60 --what "job 103's build id" --alive "$P3" test -s "$T/jobs/job-103/build"
kill -KILL "$P3"
wait "$P3" 2>/dev/null || true
b103=$(cat "$T/jobs/job-103/build")
drv 103 cleanup >"$T/c103.out" 2>&1 || fail "cleanup after a crash: $(cat "$T/c103.out")"
grep -q "build $b103 ended" "$T/c103.out" || fail "cleanup 103 said: $(cat "$T/c103.out")"
[ ! -e "$T/jobs/job-103" ] || fail "job 103's state is left"

# system failures
rc=0; drv 104 run "$T/probe.sh" step_script >"$T/e1" 2>&1 || rc=$?
expect_eq "$rc" 38 "run without prepare"
grep -q "was prepare run" "$T/e1" || fail "run without prepare said: $(cat "$T/e1")"
rc=0; CUSTOM_ENV_CI_JOB_IMAGE=../../etc drv 105 prepare >"$T/e2" 2>&1 || rc=$?
expect_eq "$rc" 38 "an image path"
grep -q "is not one this runner offers" "$T/e2" || fail "prepare said: $(cat "$T/e2")"
[ ! -e "$T/jobs/job-105" ] || fail "a refused prepare left state"
rc=0; CUSTOM_ENV_CI_JOB_ID="1;x" ip netns exec "$NS" "$DRV/prepare" >"$T/e3" 2>&1 || rc=$?
expect_eq "$rc" 38 "a job id that is not a number"
echo '{"sokcet": 1}' >"$T/bad.json"
rc=0; QCTL_GITLAB_CONFIG=$T/bad.json drv 106 config >"$T/e4" 2>&1 || rc=$?
expect_eq "$rc" 38 "a misspelt setting"
grep -q "unknown key 'sokcet'" "$T/e4" || fail "config said: $(cat "$T/e4")"

# a garbled server: a clear system failure, no traceback
python3 - "$T/garbled.sock" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(1)
c, _ = s.accept(); c.sendall(b"{not json\n"); c.recv(1); c.close()
PY
GARBLED=$!
BG_PIDS+=("$GARBLED")
wait_for --timeout 30 --what "the garbled server" --alive "$GARBLED" test -S "$T/garbled.sock"
sed "s#\"socket\": \"[^\"]*\"#\"socket\": \"$T/garbled.sock\"#" "$T/gitlab.json" >"$T/garbled.json"
rc=0; QCTL_GITLAB_CONFIG=$T/garbled.json drv 108 prepare >"$T/e6" 2>&1 || rc=$?
expect_eq "$rc" 38 "prepare against a garbled server"
grep -q "JSONDecodeError" "$T/e6" && ! grep -q Traceback "$T/e6" ||
	fail "prepare said: $(cat "$T/e6")"
QCTL_GITLAB_CONFIG=$T/garbled.json drv 108 cleanup >/dev/null 2>&1 ||
	fail "cleanup after a prepare that submitted nothing"
[ ! -e "$T/jobs/job-108" ] || fail "job 108's key is left"

no_qemu_left
# a serve without --ssh holds nothing: prepare says so, cleanup ends it
kill -TERM "$SERVE_PID"
wait_for --timeout 30 --what "qctl serve to exit" gone "$SERVE_PID"
"$QCTL" serve --socket "$SOCK" --state-dir "$T/state" \
	--run-root "$QCTL_RUN_ROOT" >"$T/serve2.out" 2>"$T/serve2.log" &
SERVE_PID=$!
BG_PIDS+=("$SERVE_PID")
wait_for --timeout 60 --what "the second server" --alive "$SERVE_PID" test -S "$SOCK"
rc=0; drv 107 prepare >"$T/e5" 2>&1 || rc=$?
expect_eq "$rc" 38 "prepare against a serve without --ssh"
grep -q "needs --ssh" "$T/e5" || fail "prepare said: $(cat "$T/e5")"
drv 107 cleanup >/dev/null 2>&1 || fail "cleanup of job 107"
[ ! -e "$T/jobs/job-107" ] || fail "job 107's state is left"
kill -TERM "$SERVE_PID"
wait_for --timeout 30 --what "qctl serve to exit" gone "$SERVE_PID"
no_qemu_left
[ -z "$(leftover_netns)" ] || fail "namespaces left: $(leftover_netns)"
echo ok
