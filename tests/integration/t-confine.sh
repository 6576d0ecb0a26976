# QEMU runs confined: unprivileged uid/gid, no capabilities (bounding set
# included), no_new_privs, QEMU's seccomp sandbox.
. "$(dirname "$0")/lib.sh"
# (The SIGINT below ends the step: it only has to outlast the checks,
# which took over 30 s on a loaded host with the sanitized build.)
cat >"$T/r.yaml" <<'R'
steps: [{name: wait, run: "echo started; sleep 300"}]
R
"$QCTL" run --json "$T/r.yaml" >"$T/out" 2>"$T/err" &
pid=$!
BG_PIDS+=("$pid")
for i in $(seq 1 240); do
	grep -q '^wait| started' "$T/err" 2>/dev/null && break
	sleep 0.5
done
qpid=$(qemu_pids_of_test)
[ -n "$qpid" ] || fail "no QEMU found"
st=/proc/$qpid/status
field() { awk -v k="$1:" '$1 == k { print $2; exit }' "$st"; }
[ "$(field Uid)" != 0 ] || fail "QEMU runs as uid 0"
[ "$(field Gid)" != 0 ] || fail "QEMU runs as gid 0"
awk '$1 == "Uid:" { if ($2 != $3 || $3 != $4 || $4 != $5) exit 1 }' "$st" || fail "uids differ: $(grep Uid "$st")"
for c in CapEff CapPrm CapBnd CapInh CapAmb; do
	expect_eq "$(field $c)" 0000000000000000 "$c"
done
expect_eq "$(field NoNewPrivs)" 1 NoNewPrivs
expect_eq "$(field Seccomp)" 2 "Seccomp (QEMU -sandbox)"
# QEMU holds no file of the manager's: only its log, kernel, initrd, disk
for l in /proc/$qpid/fd/*; do
	t=$(readlink "$l")
	case "$t" in
	/dev/null|*/qemu.log|*/vmlinuz|*/vmlinux|*/initrd.img|*/disk.img|/dev/kvm) ;;
	/*) fail "QEMU holds ${l##*/} -> $t" ;;
	pidfd*|*signalfd*) [ "${l##*/}" -gt 8 ] || fail "inherited $t" ;;
	esac
done
[ "$(cat /proc/$qpid/environ | tr '\0' '\n' | wc -l)" -le 2 ] || fail "QEMU environment not minimal"
# QEMU sits in its own per-VM cgroup (where the host has cgroup v2)
rec=$(ls "$QCTL_STATE_DIR"/*.json)
cgname=$(json "$rec" 'r.get("cgroup_name", "")')
cgroot=$(json "$rec" 'r.get("cgroup_root", "")')
if [ -n "$cgname" ]; then
	expect_eq "$(sed -n 's/^0:://p' /proc/$qpid/cgroup)" "/qctl/$cgname" "QEMU's cgroup"
	[ -d "$cgroot/qctl/$cgname" ] || fail "no cgroup dir"
	grep -qx "$qpid" "$cgroot/qctl/$cgname/cgroup.procs" || fail "QEMU not in cgroup.procs"
fi
kill -INT $pid
rc=0; wait $pid || rc=$?
expect_eq "$rc" 130 "exit after SIGINT"
no_qemu_left
[ -z "$cgname" ] || [ ! -e "$cgroot/qctl/$cgname" ] || fail "cgroup left after the build"
echo ok
