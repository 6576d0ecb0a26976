# The first failing step stops the build with exit 1; later steps never run.
. "$(dirname "$0")/lib.sh"
cat >"$T/r.yaml" <<'R'
steps:
  - {name: good, run: "true"}
  - {name: bad, run: "echo about to fail; exit 3"}
  - {name: never, run: "echo SHOULD-NOT-RUN"}
R
run_qctl 1 --json "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" failed status
expect_eq "$(json "$T/out" 'r["steps"][1]["exit_code"]')" 3 "failing step exit code"
expect_eq "$(json "$T/out" 'r["steps"][2]["exit_code"]')" None "skipped step"
json "$T/out" 'r["reason"]' | grep -q '"bad"' || fail "reason does not name the step"
! grep -q SHOULD-NOT-RUN "$T/err" || fail "a step after the failure ran"
no_qemu_left
run_dir_gone
echo ok
