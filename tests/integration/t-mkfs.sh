# The scratch disk's mkfs.ext4 runs beside the event loop, never waited
# for in it: one that fails, or that hangs past the boot timeout, ends the
# build as an infrastructure error (exit 4) with a clear reason, and
# leaves no process, run directory or record behind; a SIGINT while it
# runs ends the build at once (exit 130).
. "$(dirname "$0")/lib.sh"

# A fake mkfs.ext4 first in PATH; its mode is read from $T/mode.  It
# sleeps in a child of its own, so that killing only it would not do.
mkdir "$T/bin"
cat >"$T/bin/mkfs.ext4" <<EOF
#!/bin/sh
echo \$\$ >"$T/mkfs.pid"
case "\$(cat "$T/mode")" in
fail) echo "fake mkfs.ext4: no space for inode tables" >&2; exit 1 ;;
hang) sleep 300; exit 0 ;;
esac
EOF
chmod 0755 "$T/bin/mkfs.ext4"
FAKE_PATH="$T/bin:$PATH"

cat >"$T/r.yaml" <<'R'
limits: {boot_timeout: 3s}
steps: [{name: a, run: "true"}]
R

# nothing left of a fake mkfs (its process group) nor of the build
nothing_left() {
	local pg i
	pg=$(cat "$T/mkfs.pid")
	no_group() { ! pgrep -g "$pg" >/dev/null; }
	wait_for --timeout 30 --what "$1: mkfs's processes ($(pgrep -g "$pg" -a | tr '\n' ' ')) to be gone" no_group
	run_dir_gone
	[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "$1: run root not empty: $(ls "$QCTL_RUN_ROOT")"
	[ -z "$(ls -A "$QCTL_STATE_DIR")" ] || fail "$1: state record left: $(ls "$QCTL_STATE_DIR")"
	no_qemu_left
}

# 1. mkfs.ext4 fails
echo fail >"$T/mode"
rc=0
env PATH="$FAKE_PATH" "$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 4 "exit code when mkfs fails"
expect_eq "$(json "$T/out" 'r["status"]')" error status
json "$T/out" 'r["reason"]' | grep -q "mkfs.ext4 exited with status 1" ||
	fail "reason: $(json "$T/out" 'r["reason"]')"
nothing_left "failing mkfs"
# and what it said is in build.log (kept)
rc=0
env PATH="$FAKE_PATH" "$QCTL" run --keep --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 4 "exit code when mkfs fails (--keep)"
d=$(json "$T/out" 'r["run_dir"]')
grep -q "fake mkfs.ext4: no space for inode tables" "$d/build.log" ||
	fail "mkfs's message not in build.log: $(cat "$d/build.log")"
rm -rf "$d"
echo "ok: failing mkfs"

# 2. mkfs.ext4 hangs past the deadline (the boot timeout, 3s)
echo hang >"$T/mode"
rc=0
start=$(date +%s)
env PATH="$FAKE_PATH" timeout 60 "$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 4 "exit code when mkfs hangs"
[ $(( $(date +%s) - start )) -lt 30 ] || fail "the deadline took $(( $(date +%s) - start ))s"
json "$T/out" 'r["reason"]' | grep -q "mkfs.ext4 did not finish within 3s" ||
	fail "reason: $(json "$T/out" 'r["reason"]')"
nothing_left "hanging mkfs"
echo "ok: hanging mkfs"

# 3. SIGINT while mkfs.ext4 runs: the loop is not stuck in it
sed -i 's/boot_timeout: 3s/boot_timeout: 120s/' "$T/r.yaml"
rm -f "$T/mkfs.pid"
env PATH="$FAKE_PATH" "$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" &
pid=$!
BG_PIDS+=("$pid")
# mkfs.pid is written by the fake as it starts its 300 s: the SIGINT
# lands while it runs, with no need to wait any longer
wait_for --timeout 60 --what "the fake mkfs to run" --alive "$pid" --log "$T/err" test -s "$T/mkfs.pid"
kill -INT "$pid"
wait_for --timeout 30 --what "qctl to end after SIGINT (blocked in mkfs?)" gone "$pid"
rc=0
wait "$pid" || rc=$?
expect_eq "$rc" 130 "exit code after SIGINT"
expect_eq "$(json "$T/out" 'r["status"]')" cancelled status
nothing_left "SIGINT during mkfs"
echo ok
