# Every limit stops the build with status limit, exit 3 and its name; the
# disk cannot grow past its size; a fork bomb hurts only its own guest.
. "$(dirname "$0")/lib.sh"

limit_run() {	# limit_run NAME RECIPE-FILE [qctl args]: expect exit 3, limit NAME
	local name=$1 file=$2 rc=0
	shift 2
	"$QCTL" run --json "$@" "$file" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = 3 ] || { tail -20 "$T/err"; fail "$name: exit $rc, expected 3"; }
	expect_eq "$(json "$T/out" 'r["status"]')" limit "$name status"
	expect_eq "$(json "$T/out" 'r["limit"]["name"]')" "$name" "limit name"
	grep -q "LIMIT_EXCEEDED $name" "$T/err" || fail "$name: no LIMIT_EXCEEDED line"
	no_qemu_left
}

# cpu_time: host CPU time of the VM
cat >"$T/cpu.yaml" <<'R'
limits: {cpu_time: 5s, wall_time: 2m}
steps: [{name: burn, run: "while :; do :; done"}]
R
limit_run cpu_time "$T/cpu.yaml"
expect_eq "$(json "$T/out" 'r["limit"]["unit"]')" usec "cpu_time unit"
expect_eq "$(json "$T/out" '5000000 < r["limit"]["value"] < 20000000')" True "cpu_time value"

# log_bytes: output beyond the cap ends the build; the log stays ~1 MiB
cat >"$T/log.yaml" <<'R'
limits: {log_bytes: 1M}
steps:
  - name: flood
    run: |
      line=$(head -c 1000 /dev/zero | tr '\0' x)
      while :; do echo "$line"; done
R
limit_run log_bytes "$T/log.yaml" --keep
log="$(json "$T/out" 'r["run_dir"]')/build.log"
size=$(stat -c %s "$log")
[ "$size" -ge 1000000 ] && [ "$size" -le 1200000 ] || fail "build.log is $size bytes"
rm -rf "$(json "$T/out" 'r["run_dir"]')"

# wall_time
cat >"$T/wall.yaml" <<'R'
limits: {wall_time: 10s}
steps: [{name: nap, run: "sleep 600"}]
R
start=$(date +%s)
limit_run wall_time "$T/wall.yaml"
took=$(( $(date +%s) - start ))
# not before its 10 s (the manager's own account), and not stuck (the
# step would sleep 600 s): how long past 10 s, a loaded host decides
expect_eq "$(json "$T/out" 'r["limit"]["max"]')" 10000 "wall_time max"
expect_eq "$(json "$T/out" 'r["limit"]["value"] >= 10000')" True "wall_time value $(json "$T/out" 'r["limit"]["value"]') reaches 10 s"
[ "$took" -ge 10 ] && [ "$took" -le 120 ] || fail "wall_time 10s took ${took}s"

# disk: the guest gets ENOSPC inside; the host file stays within the size
cat >"$T/disk.yaml" <<'R'
limits: {disk: 64M}
steps:
  - name: fill
    run: |
      dd if=/dev/urandom of=big bs=1M count=200 2>err; rc=$?
      cat err; echo "dd-exit=$rc"; grep -q 'No space left' err
R
rc=0
"$QCTL" run --json --keep "$T/disk.yaml" >"$T/out" 2>"$T/err" || rc=$?
# the disk limit is the disk's size: ENOSPC in the guest, which the step
# checks, and no qctl limit (exit 3 would hide a missing ENOSPC)
[ "$rc" = 0 ] || { tail "$T/err"; fail "disk fill exit $rc, expected 0"; }
grep -q 'fill| dd-exit=1' "$T/err" || fail "no ENOSPC in the guest"
img="$(json "$T/out" 'r["run_dir"]')/disk.img"
alloc=$(( $(stat -c %b "$img") * $(stat -c %B "$img") ))
[ "$alloc" -le $((64 * 1048576 + 1048576)) ] || fail "disk.img allocates $alloc bytes"
expect_eq "$(json "$T/out" 'r["stats"]["disk_written_bytes"] > 30000000')" True "disk_written_bytes"
rm -rf "$(json "$T/out" 'r["run_dir"]')"
no_qemu_left

# fork bomb: the host stays responsive, the build ends by its limits
cat >"$T/bomb.yaml" <<'R'
limits: {wall_time: 20s}
steps: [{name: bomb, run: "b() { b | b & }; b; sleep 600"}]
R
"$QCTL" run --json "$T/bomb.yaml" >"$T/out" 2>"$T/err" &
pid=$!
BG_PIDS+=("$pid")
worst=0 end=$((SECONDS + 300))
while kill -0 $pid 2>/dev/null; do
	[ "$SECONDS" -lt "$end" ] || fail "the fork bomb's build still runs after 300 s (wall_time 20s)"
	t0=$(date +%s%N)
	sh -c true || fail "the host could not fork and exec during the fork bomb"
	t1=$(date +%s%N)
	ms=$(( (t1 - t0) / 1000000 ))
	[ "$ms" -gt "$worst" ] && worst=$ms
	sleep 0.5
done
rc=0; wait $pid || rc=$?
echo "fork bomb: worst host fork+exec ${worst} ms, exit $rc"
# A bomb that got out of its guest would make the host's own fork fail
# or stall for good; a loaded host takes a second now and then anyway.
[ "$worst" -lt 10000 ] || fail "host unresponsive: ${worst} ms for sh -c true"
expect_eq "$rc" 3 "fork bomb build exit"
expect_eq "$(json "$T/out" 'r["limit"]["name"]')" wall_time "fork bomb limit"
no_qemu_left

# stats of a build that writes a file and prints output
cat >"$T/stats.yaml" <<'R'
limits: {cpu_time: 10m}
steps: [{name: w, run: "dd if=/dev/urandom of=f bs=1M count=4 2>/dev/null; sync; echo written"}]
R
run_qctl 0 --json "$T/stats.yaml"
for k in cpu_usec mem_peak_bytes disk_written_bytes log_bytes wall_ms boot_ms; do
	expect_eq "$(json "$T/out" "r['stats']['$k'] > 0")" True "stats.$k"
done
expect_eq "$(json "$T/out" "r['stats']['disk_written_bytes'] >= 4194304")" True "disk_written_bytes >= 4 MiB"
# a cpu_time limit is enforced one way or the other, and says which
how=$(json "$T/out" 'r["enforcement"].get("cpu_time", "missing")')
case "$how" in kernel|poll) ;; *) fail "enforcement of cpu_time: $how" ;; esac
echo ok
