# A passing recipe: exit 0, status passed, one result entry per step,
# the guest's output streamed with step prefixes, nothing left behind.
. "$(dirname "$0")/lib.sh"
cat >"$T/r.yaml" <<'R'
steps:
  - name: hello
    run: echo "out:$GREETING"; echo "err line" >&2
  - {name: kernel, run: "uname -r"}
env: {GREETING: world}
R
run_qctl 0 --json "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" passed status
expect_eq "$(json "$T/out" 'r["exit_code"]')" 0 exit_code
expect_eq "$(json "$T/out" 'len(r["steps"])')" 2 "step count"
expect_eq "$(json "$T/out" '[s["exit_code"] for s in r["steps"]]')" "[0, 0]" "step exit codes"
expect_eq "$(json "$T/out" 'r["limit"]')" None limit
expect_eq "$(json "$T/out" 'r["stats"]["boot_ms"] > 0 and r["stats"]["wall_ms"] >= r["stats"]["boot_ms"]')" True stats
expect_eq "$(json "$T/out" 'r["accel"] in ("tcg","kvm")')" True accel
grep -q '^hello| out:world$' "$T/err" || fail "step output not streamed with prefix"
grep -q '^hello| err line$' "$T/err" || fail "stderr not streamed"
grep -q '^kernel| [0-9]' "$T/err" || fail "uname -r missing"
no_qemu_left
run_dir_gone
# Protocol version 2 (STDIN and PTY jobs), which qctl itself does not use
# yet, against the agent as PID 1 of the same image, with the accelerator
# qctl chose (6 s under TCG)
accel=$(json "$T/out" 'r["accel"]')
python3 "$TOP/tests/integration/agent-v2.py" "$QCTL_IMAGES/minimal" "$accel" "$T" ||
	fail "agent protocol v2 in the minimal image"
echo ok
