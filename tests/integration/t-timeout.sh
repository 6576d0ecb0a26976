# A step over its timeout is killed: status limit, exit 3, limit "timeout".
. "$(dirname "$0")/lib.sh"
cat >"$T/r.yaml" <<'R'
steps:
  - {name: slow, run: "echo start; sleep 300", timeout: 3s}
  - {name: never, run: "echo SHOULD-NOT-RUN"}
R
start=$(date +%s)
run_qctl 3 --json "$T/r.yaml"
took=$(( $(date +%s) - start ))
[ "$took" -lt 60 ] || fail "timeout took ${took}s to act"
expect_eq "$(json "$T/out" 'r["status"]')" limit status
expect_eq "$(json "$T/out" 'r["limit"]["name"]')" timeout "limit name"
expect_eq "$(json "$T/out" 'r["limit"]["max"]')" 3000 "limit max"
expect_eq "$(json "$T/out" 'r["steps"][0]["signal"]')" 9 "killed step"
# not before its 3 s, by the step's own clock
expect_eq "$(json "$T/out" 'r["steps"][0]["duration_ms"] >= 3000')" True \
	"step killed after $(json "$T/out" 'r["steps"][0]["duration_ms"]') ms, not before 3000"
! grep -q SHOULD-NOT-RUN "$T/err" || fail "a step after the timeout ran"
no_qemu_left
run_dir_gone
echo ok
