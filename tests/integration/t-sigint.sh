# SIGINT mid-build: exit 130, status cancelled, no QEMU, no run directory.
. "$(dirname "$0")/lib.sh"
cat >"$T/r.yaml" <<'R'
steps:
  - {name: long, run: "echo started; sleep 600"}
R
"$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" &
pid=$!
BG_PIDS+=("$pid")
wait_step long "$T/err" "$pid"
[ -n "$(qemu_pids_of_test)" ] || fail "no QEMU seen while the step runs"
kill -INT $pid
rc=0; wait $pid || rc=$?
expect_eq "$rc" 130 "exit code after SIGINT"
expect_eq "$(json "$T/out" 'r["status"]')" cancelled status
no_qemu_left
run_dir_gone
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "run root not empty: $(ls "$QCTL_RUN_ROOT")"
echo ok
