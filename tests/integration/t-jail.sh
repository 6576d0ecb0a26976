# Two builds at once: each QEMU runs as a uid/gid of its own (neither 0),
# in network and mount namespaces of its own (no host files under its
# root), with no capabilities and no_new_privs; the uid locks are gone
# afterwards, and a killed manager's uid is freed by `qctl gc`.
. "$(dirname "$0")/lib.sh"

cat >"$T/r.yaml" <<'R'
steps: [{name: wait, run: "echo started; sleep 300"}]
R
"$QCTL" run -v "$T/r.yaml" >"$T/err1" 2>&1 &
p1=$!
BG_PIDS+=("$p1")
"$QCTL" run -v "$T/r.yaml" >"$T/err2" 2>&1 &
p2=$!
BG_PIDS+=("$p2")
wait_step wait "$T/err1" "$p1"
wait_step wait "$T/err2" "$p2"
q=$(qemu_pids_of_test)
set -- $q
[ $# = 2 ] || fail "expected 2 QEMUs, found: $q"
# q1 is build 1's QEMU (its manager is p1): pid order says nothing
if [ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$1/status")" = "$p1" ]; then
	q1=$1 q2=$2
else
	q1=$2 q2=$1
fi
[ "$(awk '$1 == "PPid:" { print $2 }' "/proc/$q1/status")" = "$p1" ] ||
	fail "no QEMU of build 1 among $q"

field() { awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status"; }
host_net=$(readlink /proc/self/ns/net)
for p in $q1 $q2; do
	st=/proc/$p/status
	[ "$(field $p Uid)" != 0 ] || fail "QEMU $p runs as uid 0"
	[ "$(field $p Gid)" != 0 ] || fail "QEMU $p runs as gid 0"
	awk '$1 == "Uid:" || $1 == "Gid:" { if ($2 != $3 || $3 != $4 || $4 != $5) exit 1 }' "$st" ||
		fail "QEMU $p: ids differ: $(grep -E '^(Uid|Gid)' "$st")"
	# no supplementary group (kvm's only with KVM)
	g=$(awk '$1 == "Groups:" { $1 = ""; print }' "$st" | tr -d ' ')
	[ -z "$g" ] || [ "$(getent group kvm | cut -d: -f3)" = "$g" ] || fail "QEMU $p groups: $g"
	for c in CapEff CapPrm CapBnd CapInh CapAmb; do
		expect_eq "$(field $p $c)" 0000000000000000 "QEMU $p $c"
	done
	expect_eq "$(field $p NoNewPrivs)" 1 "QEMU $p NoNewPrivs"
	expect_eq "$(field $p Seccomp)" 2 "QEMU $p Seccomp"
	[ "$(readlink /proc/$p/ns/net)" != "$host_net" ] || fail "QEMU $p in the host's network namespace"
	[ "$(readlink /proc/$p/ns/mnt)" != "$(readlink /proc/self/ns/mnt)" ] || fail "QEMU $p in the host's mount namespace"
	# the jail's network: nothing but lo
	links=$(nsenter -t "$p" -n ip -o link show | awk -F': ' '{ print $2 }' | tr '\n' ' ')
	expect_eq "$links" "lo " "QEMU $p's network devices"
	# the jail's root: QEMU's files only
	r=/proc/$p/root
	[ -e "$r/proc/self" ] || fail "QEMU $p has no /proc"
	[ -e "$r$(readlink -f "$(command -v qemu-system-x86_64)")" ] || fail "QEMU's binary not in its root"
	for h in /etc/shadow /etc/passwd /home /root /var /run /tmp /sys /work "$T"; do
		[ ! -e "$r$h" ] || fail "QEMU $p sees host $h"
	done
	[ ! -e "$r/dev/vda" ] && [ ! -e "$r/dev/tty" ] || fail "QEMU $p sees host devices: $(ls "$r/dev")"
	# its /proc, read as its uid, shows only that uid's processes (root
	# would see all), and no /proc/sys or kcore (subset=pid)
	u=$(field $p Uid)
	others=$(setpriv --reuid="$u" --regid="$u" --clear-groups /usr/bin/python3 -c '
import os, sys
r = "/proc/%s/root/proc" % sys.argv[1]
print(" ".join(e for e in os.listdir(r) if e.isdigit() and e not in (sys.argv[1], str(os.getpid()))))
' "$p") || fail "cannot list QEMU $p's /proc as uid $u"
	[ -z "$others" ] || fail "QEMU $p's /proc shows other processes: $others"
	[ -e "$r/proc/self" ] && [ ! -e "$r/proc/sys" ] && [ ! -e "$r/proc/kcore" ] ||
		fail "QEMU $p's /proc is not subset=pid"
done
u1=$(field $q1 Uid) u2=$(field $q2 Uid)
[ "$u1" != "$u2" ] || fail "both QEMUs run as uid $u1"
[ "$(field $q1 Gid)" != "$(field $q2 Gid)" ] || fail "both QEMUs run as one gid"
[ "$(readlink /proc/$q1/ns/net)" != "$(readlink /proc/$q2/ns/net)" ] || fail "QEMUs share a network namespace"
# each build's record names its uid, and its lock is held
for u in $u1 $u2; do
	[ -e "$QCTL_STATE_DIR/uid-$u.lock" ] || fail "no lock for uid $u: $(ls "$QCTL_STATE_DIR")"
	grep -lq "\"uid\": *$u\b" "$QCTL_STATE_DIR"/*.json || fail "no record names uid $u"
done

# build 1 ends normally (SIGINT): its uid is given back at once
kill -INT "$p1"
rc=0; wait "$p1" || rc=$?
expect_eq "$rc" 130 "exit after SIGINT"
[ ! -e "$QCTL_STATE_DIR/uid-$u1.lock" ] || fail "uid $u1 still locked after its build"
# build 2's manager is killed: its lock stays until gc, which frees it
kill -9 "$p2"
wait "$p2" 2>/dev/null || true
wait_for --timeout 30 --what "QEMU $q2 to die with its manager" gone "$q2"
[ -e "$QCTL_STATE_DIR/uid-$u2.lock" ] || fail "a killed manager's lock vanished before gc (test is not testing gc)"
"$QCTL" gc >"$T/gc" 2>&1 || fail "gc failed: $(cat "$T/gc")"
cat "$T/gc"
grep -q "freed uid $u2" "$T/gc" || fail "gc did not free uid $u2"
no_state_records "$QCTL_STATE_DIR"
! ps -e -o uid= | grep -qxE " *($u1|$u2)" || fail "processes left as uid $u1/$u2"
no_qemu_left
echo ok
