#!/bin/bash
# bench/libvirt.sh [--write] - the same VM through libvirt, qctl and raw QEMU.
#
# Interleaved in one run (floor, qctl, libvirt, floor, ...; one unrecorded
# round first, which also lets libvirt probe QEMU's capabilities):
#   floor    raw QEMU as bench/run.sh starts it (lib.sh's floor_argv, with
#            qctl's accelerator and TCG cache size): fork to exit.
#   qctl     `qctl run -q --no-snapshot` of `steps: [{name: t, run:
#            "true"}]`: a cold boot.
#   snapshot the same `qctl run -q`, started from the snapshot (state
#            directory of its own; the unrecorded round saves it).
#   libvirt  `virsh create` of a transient domain with the floor's guest
#            (same kernel, initrd + poweroff-init, command line, machine,
#            CPU model, vCPUs, memory, accelerator, devices, no NIC) and
#            on_poweroff destroy: from virsh's start to the domain's
#            lifecycle event "Stopped" (it is gone then: transient).
# Then memory (VmRSS/VmHWM of libvirtd and virtlogd, idle and with one
# domain, from /proc; qctl serve's beside them) and control round trips:
# `virsh domstate` and `virsh qemu-monitor-command ... query-status` on a
# paused domain (virsh --timing, one connection, BENCH_RTT_N calls)
# against `build-list` on qctl serve's socket (tests/integration's
# qmpclient.py, one connection, BENCH_RTT_N calls), alternating.  And the
# number of QMP commands libvirt sends before `cont` (its monitor log, one
# unrecorded run).
#
# libvirt here is Debian's libvirtd (make bench-deps), but not the
# system's instance: the script starts its own libvirtd and virtlogd in a
# new mount and network namespace (unshare), with /etc/libvirt (a copy
# without any network definition), /run, /var/lib/libvirt,
# /var/log/libvirt and /var/cache/libvirt bound to directories under its
# temporary directory.  So it defines and starts no network, touches no
# host interface or firewall (its network namespace has only a loopback
# that stays down), and leaves no state behind; virsh reaches it through
# the socket's path in that directory.  In the namespace /dev/kvm, if
# any, is a node with Debian's udev mode (root:kvm 0660), as on a Debian
# host with udev: otherwise libvirt's QEMU user cannot open it, libvirt
# finds its capability cache stale at every lookup and probes QEMU again
# (~5 s each under TCG, several per `virsh create`).  The cgroup
# directories libvirt makes ("machine" in each hierarchy) are removed
# afterwards if they did not exist before.  Daemons, virsh and QEMUs are
# stopped by PID on every exit.
#
# Knobs: BENCH_N rounds (5), BENCH_TIMEOUT s per boot (120), BENCH_RTT_N
# (200), BENCH_QCTL, and bench/lib.sh's QCTL_IMAGE_DIR, BENCH_APPEND,
# BENCH_KERNEL, BENCH_INITRD_COMPRESS.  q35 only.  The accelerator is
# what `qctl run --accel auto` picks (result.json "accel"), for all three.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=$(bench_write_flag "bench/libvirt.sh" "$@")
N=${BENCH_N:-5}
TIMEOUT=${BENCH_TIMEOUT:-120}
RTT_N=${BENCH_RTT_N:-200}
MACHINE=q35
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
[[ $RTT_N =~ ^[1-9][0-9]*$ ]] || die "BENCH_RTT_N must be a positive integer"
[ "${QCTL_MACHINE:-q35}" = q35 ] || die "q35 only (the domain XML is q35's)"
[ "$(id -u)" = 0 ] || die "run as root (libvirtd, namespaces, qctl serve)"
[ -x "$QCTL" ] || die "$QCTL missing (run make all)"
for c in "$QEMU_BIN" libvirtd virtlogd virsh virt-admin unshare; do
	command -v "$c" >/dev/null ||
		die "$c not found (make bench-deps installs libvirt)"
done
QEMU_PATH=$(command -v "$QEMU_BIN")

BENCH_TMP=$(mktemp -d /tmp/qctl-bench-libvirt.XXXXXX)
# libvirt's QEMU runs as libvirt-qemu: it must reach the files in $LV
chmod 0711 "$BENCH_TMP"
LV=$BENCH_TMP/lv
URI="qemu:///system?socket=$LV/run/libvirt/libvirt-sock"
AURI="libvirtd:///system?socket=$LV/run/libvirt/libvirt-admin-sock"
LV_PID=		# unshare, then libvirtd (exec)
LOGD_PID=	# virtlogd
EV_PID=		# virsh event
SERVE_PID=	# qctl serve
CG_NEW=		# cgroup "machine" directories that did not exist before

lv_stop() {
	local d p

	if [ -n "$LV_PID" ] && kill -0 "$LV_PID" 2>/dev/null; then
		for d in $(timeout 20 virsh -q -c "$URI" list --name 2>/dev/null); do
			timeout 20 virsh -q -c "$URI" destroy "$d" >/dev/null 2>&1 || true
		done
	fi
	for p in $EV_PID $LV_PID $LOGD_PID; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for _ in $(seq 1 100); do
		kill -0 $EV_PID $LV_PID $LOGD_PID 2>/dev/null || break
		sleep 0.1
	done
	for p in $EV_PID $LV_PID $LOGD_PID; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	EV_PID= LV_PID= LOGD_PID=
	[ -z "${EV_FD:-}" ] || exec {EV_FD}<&-
	EV_FD=
	# a QEMU libvirt started and did not stop (it is not our child)
	for p in $(own_qemus "$BENCH_TMP"); do
		kill -KILL "$p" 2>/dev/null || true
	done
	for d in $CG_NEW; do
		[ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	CG_NEW=
}

cleanup() {
	# a signal during `IFS= read` runs this trap with that IFS
	local IFS=$' \t\n'

	lv_stop
	if [ -n "$SERVE_PID" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null || true
		for _ in $(seq 1 100); do
			kill -0 "$SERVE_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
		"$QCTL" gc --state-dir "$BENCH_TMP/state" >/dev/null 2>&1 || true
	fi
	bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- the private libvirtd ---------------------------------------------------

lv_start() {
	local d

	mkdir -p "$LV"/{etc,run,lib,log,cache,dev}
	chmod 0755 "$LV"
	cp -a /etc/libvirt/. "$LV/etc/"
	# no network definitions at all, so nothing to autostart
	rm -rf "$LV/etc/qemu/networks" "$LV/etc/qemu/autostart" \
		"$LV/etc/storage"
	# libvirt without systemd makes "machine" in each cgroup hierarchy
	for d in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
		[ -e "${d}machine" ] || CG_NEW="$CG_NEW ${d}machine"
	done
	cat >"$LV/ns.sh" <<EOF
set -e
mount -t tmpfs -o mode=0755 tmpfs "$LV/dev"
if [ -c /dev/kvm ]; then
	# Debian's udev rule for /dev/kvm, here only
	mknod -m 0660 "$LV/dev/kvm" c \$((0x\$(stat -c %t /dev/kvm))) \
		\$((0x\$(stat -c %T /dev/kvm)))
	chgrp kvm "$LV/dev/kvm" || true
	mount --bind "$LV/dev/kvm" /dev/kvm
fi
mount --bind "$LV/etc" /etc/libvirt
mount --bind "$LV/lib" /var/lib/libvirt
mount --bind "$LV/log" /var/log/libvirt
mount --bind "$LV/cache" /var/cache/libvirt
mount --bind "$LV/run" /run
virtlogd >"$LV/virtlogd.out" 2>&1 &
echo \$! >"$LV/virtlogd.pid"
exec libvirtd
EOF
	unshare --mount --net --propagation private -- sh "$LV/ns.sh" \
		>"$LV/libvirtd.out" 2>&1 &
	LV_PID=$!
	for _ in $(seq 1 300); do
		[ -S "$LV/run/libvirt/libvirt-sock" ] && [ -s "$LV/virtlogd.pid" ] &&
			break
		kill -0 "$LV_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -s "$LV/virtlogd.pid" ] && LOGD_PID=$(cat "$LV/virtlogd.pid")
	[ -S "$LV/run/libvirt/libvirt-sock" ] || {
		tail -20 "$LV/libvirtd.out" >&2
		die "libvirtd did not start"
	}
	# lifecycle events, one line each, read by lv_wait_stopped
	mkfifo "$LV/events"
	stdbuf -oL virsh -q -c "$URI" event --loop --event lifecycle \
		>"$LV/events" 2>"$LV/events.err" &
	EV_PID=$!
	exec {EV_FD}<"$LV/events"
}

# lv_wait_stopped NAME TIMEOUT_S: read events until NAME's "Stopped".
lv_wait_stopped() {
	local line end=$((SECONDS + $2))

	while [ "$SECONDS" -lt "$end" ]; do
		IFS= read -r -t "$2" line <&"$EV_FD" || return 1
		case $line in
		*"domain '$1'"*Stopped*) return 0 ;;
		esac
	done
	return 1
}

# lv_domain_xml NAME: the floor's VM as libvirt domain XML, on stdout.
lv_domain_xml() {
	local type=qemu cpu="<cpu mode='maximum'/>"
	local tcg="<tcg><tb-cache unit='MiB'>256</tb-cache></tcg>"

	if [ "$ACCEL" = kvm ]; then
		type=kvm cpu="<cpu mode='host-passthrough'/>" tcg=
	fi
	cat <<EOF
<domain type='$type'>
  <name>$1</name>
  <memory unit='MiB'>512</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <kernel>$LV/kernel</kernel>
    <initrd>$LV/initrd.img</initrd>
    <cmdline>$IMG_CMDLINE rdinit=/poweroff-init</cmdline>
  </os>
  <features><acpi/><apic/><vmport state='off'/>$tcg</features>
  $cpu
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>$QEMU_PATH</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw' discard='unmap' detect_zeroes='unmap'/>
      <source file='$LV/scratch.raw'/>
      <target dev='vda' bus='virtio'/>
      <serial>scratch</serial>
    </disk>
    <controller type='usb' model='none'/>
    <serial type='file'><source path='$LV/console-$1.log'/><target port='0'/></serial>
    <channel type='null'><target type='virtio' name='org.qctl.agent.0'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
}

# run_libvirt NAME: one create-to-gone; sets L_WALL, L_CREATE (virsh
# create's own time) and L_GUEST, or returns 1.
run_libvirt() {
	local name=$1 t0 t1 t2 log=$LV/console-$1.log rc=0

	lv_domain_xml "$name" >"$LV/$name.xml"
	rm -f "$log"
	t0=$EPOCHREALTIME
	timeout "$TIMEOUT" virsh -q -c "$URI" create "$LV/$name.xml" \
		>"$LV/create.out" 2>&1 || rc=$?
	t1=$EPOCHREALTIME
	if [ "$rc" != 0 ]; then
		echo "virsh create failed (rc $rc):" >&2
		cat "$LV/create.out" >&2
		return 1
	fi
	if ! lv_wait_stopped "$name" "$TIMEOUT"; then
		echo "libvirt run: no Stopped event for $name" >&2
		cat "$LV/events.err" >&2 || true
		virsh -q -c "$URI" destroy "$name" >/dev/null 2>&1 || true
		tail -c 600 "$log" >&2 || true
		return 1
	fi
	t2=$EPOCHREALTIME
	L_GUEST=$(guest_poweroff_time "$log")
	L_WALL=$(awk -v a="$t0" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
	L_CREATE=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	if [ "$L_GUEST" = - ]; then
		echo "libvirt run: the guest did not power off:" >&2
		tail -c 600 "$log" >&2 || true
		return 1
	fi
	lv_phases "$name" "$t0" "$t2"
}

# lv_phases NAME T0 T2: split a run at the wall-clock stamps libvirt
# writes in the domain's log when it starts QEMU ("starting up") and when
# it begins to stop it ("shutting down": after the guest's SHUTDOWN):
# L_PRE before QEMU's start, L_QEMU from there to the stop, L_POST the
# stop and clean-up to the Stopped event; "-" if a stamp is missing.
lv_phases() {
	local qlog=$LV/log/qemu/$1.log up down

	L_PRE=- L_QEMU=- L_POST=- L_SETUP=-
	up=$(sed -n 's/^\([0-9-]* [0-9:.]*+0000\): starting up.*/\1/p' \
		"$qlog" 2>/dev/null | tail -n1)
	down=$(sed -n 's/^\([0-9-]* [0-9:.]*+0000\): shutting down.*/\1/p' \
		"$qlog" 2>/dev/null | tail -n1)
	[ -n "$up" ] && [ -n "$down" ] || return 0
	up=$(date -d "$up" +%s.%N) && down=$(date -d "$down" +%s.%N) || return 0
	L_PRE=$(awk -v a="$2" -v b="$up" 'BEGIN { printf "%.3f", b - a }')
	L_SETUP=$(awk -v a="$L_CREATE" -v b="$L_PRE" 'BEGIN { printf "%.3f", a - b }')
	L_QEMU=$(awk -v a="$up" -v b="$down" 'BEGIN { printf "%.3f", b - a }')
	L_POST=$(awk -v a="$down" -v b="$3" 'BEGIN { printf "%.3f", b - a }')
}

# lv_count_phases: in the monitor-logged run, the wall-clock stamps of
# libvirt's "starting up", its `cont`, QEMU's SHUTDOWN event as libvirt
# read it, and "shutting down": C_SETUP (starting up to cont), C_RUN
# (cont to SHUTDOWN), C_REACT (SHUTDOWN to shutting down), or "-".
lv_count_phases() {
	local mlog=$LV/log/monitor.log qlog=$LV/log/qemu/lvbench-count.log
	local up cont sd down

	C_SETUP=- C_RUN=- C_REACT=-
	up=$(sed -n 's/^\([0-9-]* [0-9:.]*+0000\): starting up.*/\1/p' \
		"$qlog" 2>/dev/null | tail -n1)
	down=$(sed -n 's/^\([0-9-]* [0-9:.]*+0000\): shutting down.*/\1/p' \
		"$qlog" 2>/dev/null | tail -n1)
	cont=$(grep -a 'QEMU_MONITOR_IO_WRITE.*"execute":"cont"' "$mlog" |
		tail -n1 | cut -c1-28)
	sd=$(grep -a 'QEMU_MONITOR_RECV_EVENT.*"event": *"SHUTDOWN"' "$mlog" |
		tail -n1 | cut -c1-28)
	[ -n "$up" ] && [ -n "$down" ] && [ -n "$cont" ] && [ -n "$sd" ] ||
		return 0
	up=$(date -d "$up" +%s.%N) && cont=$(date -d "$cont" +%s.%N) &&
		sd=$(date -d "$sd" +%s.%N) && down=$(date -d "$down" +%s.%N) ||
		return 0
	C_SETUP=$(awk -v a="$up" -v b="$cont" 'BEGIN { printf "%.3f", b - a }')
	C_RUN=$(awk -v a="$cont" -v b="$sd" 'BEGIN { printf "%.3f", b - a }')
	C_REACT=$(awk -v a="$sd" -v b="$down" 'BEGIN { printf "%.3f", b - a }')
	# QEMU's own stamp (-msg timestamp=on) on the signal libvirt sent it
	C_TERM=$(sed -n 's/^\([0-9T:.-]*Z\) .*terminating on signal \([0-9]*\).*/\1 \2/p' \
		"$qlog" | tail -n1)
	if [ -n "$C_TERM" ]; then
		C_SIG=${C_TERM#* }
		C_TERM=$(date -d "${C_TERM% *}" +%s.%N) &&
			C_TERM=$(awk -v a="$sd" -v b="$C_TERM" 'BEGIN { printf "%.3f", b - a }') ||
			C_TERM=-
	else
		C_TERM=-
	fi
}

# rss PID: "VmRSS VmHWM" in KiB, or "- -".
rss() {
	awk '/^VmRSS:/ { r = $2 } /^VmHWM:/ { h = $2 }
		END { if (r == "") print "- -"; else print r, h }' \
		"/proc/$1/status" 2>/dev/null || echo "- -"
}

# --- preparation ------------------------------------------------------------

bench_prepare_image
bench_floor_initrd
export QCTL_RUN_ROOT=$BENCH_TMP/runs QCTL_MACHINE=$MACHINE
mkdir -p "$QCTL_RUN_ROOT"
recipe=$BENCH_TMP/trivial.yaml
printf 'steps: [{name: t, run: "true"}]\n' >"$recipe"
facts=$(host_facts)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# qctl first, as it will run: its accelerator is everyone's
export BENCH_ACCEL=auto
run_qctl || die "qctl's first run failed"
ACCEL=$Q_ACCEL
case $ACCEL in
tcg | kvm) ;;
*) die "cannot tell qctl's accelerator (result.json accel: $ACCEL)" ;;
esac
# the floor as qctl starts QEMU (its TCG cache is 256 MiB: qemu-argv.c)
export FLOOR_ACCEL=$ACCEL FLOOR_TB_SIZE=256
echo "accelerator (qctl --accel auto): $ACCEL" >&2

lv_start
# libvirt's own copies: its DAC driver chowns what the domain uses
cp "$IMG_KERNEL" "$LV/kernel"
cp "$FLOOR_INITRD" "$LV/initrd.img"
truncate -s 2G "$LV/scratch.raw"
read -r lvd_rss0 lvd_hwm0 < <(rss "$LV_PID")
read -r logd_rss0 logd_hwm0 < <(rss "$LOGD_PID")

for f in floor qctl snap libvirt; do
	for m in wall guest create pre qemu post setup; do
		: >"$BENCH_TMP/$f.$m"
	done
done
fails_floor=0 fails_qctl=0 fails_snap=0 fails_libvirt=0
SNAP_STATE=$BENCH_TMP/snap-state
# the cold contender and the first check: no snapshot
export QCTL_BENCH_ARGS=--no-snapshot
# qctl from a snapshot: QCTL_STATE_DIR of its own, default arguments
run_snap() {
	local r=0

	QCTL_BENCH_ARGS= QCTL_STATE_DIR=$SNAP_STATE run_qctl || r=1
	S_WALL=${Q_WALL:-} S_GUEST=$Q_GUEST
	return $r
}

for i in $(seq 0 "$N"); do
	# round 0 warms caches (and libvirt's capability probe); not recorded
	contend floor run_floor wall=F_WALL guest=F_GUEST
	fw=$C_OUT
	contend qctl run_qctl wall=Q_WALL guest=Q_GUEST
	qw=$C_OUT
	contend snap run_snap wall=S_WALL guest=S_GUEST
	sw=$C_OUT
	contend libvirt "run_libvirt lvbench-$i" wall=L_WALL guest=L_GUEST \
		create=L_CREATE pre=L_PRE qemu=L_QEMU post=L_POST setup=L_SETUP
	lw=$C_OUT
	[ "$i" -eq 0 ] && what=warm-up || what="run $i/$N"
	echo "$what: floor $fw s, qctl $qw s, snapshot $sw s, libvirt $lw s" >&2
done

# QMP commands before cont: one more (unrecorded) run with the monitor log
qmp_count=- qmp_total=- C_SETUP=- C_RUN=- C_REACT=- C_TERM=- C_SIG=-
if virt-admin -q -c "$AURI" daemon-log-filters "1:qemu.qemu_monitor" &&
	virt-admin -q -c "$AURI" daemon-log-outputs \
		"1:file:/var/log/libvirt/monitor.log 3:stderr"; then
	if run_libvirt lvbench-count; then
		# libvirt numbers its commands on a monitor libvirt-1, -2, ...
		qmp_count=$(sed -n 's/.*QEMU_MONITOR_SEND_MSG: .*"execute":"cont".*"id":"libvirt-\([0-9]*\)".*/\1/p' \
			"$LV/log/monitor.log" | tail -n1)
		qmp_total=$(grep -c 'QEMU_MONITOR_SEND_MSG' "$LV/log/monitor.log" || true)
		[ -n "$qmp_count" ] || qmp_count=-
		lv_count_phases
	fi
	virt-admin -q -c "$AURI" daemon-log-outputs "3:stderr" || true
	virt-admin -q -c "$AURI" daemon-log-filters "" || true
fi
cp "$LV/log/qemu/lvbench-1.log" "$BENCH_TMP/lv-qemu.log" 2>/dev/null || true

# --- memory and round trips -------------------------------------------------

read -r lvd_rss1 lvd_hwm1 < <(rss "$LV_PID")
read -r logd_rss1 logd_hwm1 < <(rss "$LOGD_PID")
lv_domain_xml lvbench-rtt >"$LV/rtt.xml"
virsh -q -c "$URI" create --paused "$LV/rtt.xml" >/dev/null ||
	die "virsh create --paused failed"
sleep 1
read -r lvd_rss2 lvd_hwm2 < <(rss "$LV_PID")
read -r logd_rss2 logd_hwm2 < <(rss "$LOGD_PID")

SOCK=$BENCH_TMP/qctl.sock
"$QCTL" serve --socket "$SOCK" --state-dir "$BENCH_TMP/state" \
	--run-root "$BENCH_TMP/serve-runs" >"$BENCH_TMP/serve.out" \
	2>"$BENCH_TMP/serve.log" &
SERVE_PID=$!
for _ in $(seq 1 100); do
	[ -S "$SOCK" ] && break
	sleep 0.1
done
[ -S "$SOCK" ] || { cat "$BENCH_TMP/serve.log" >&2; die "qctl serve did not start"; }
sleep 0.5
read -r serve_rss serve_hwm < <(rss "$SERVE_PID")

# virsh --timing prints "(Time: X ms)" after each command of a batch
virsh_rtt() { # OUT CMD...: RTT_N calls of CMD in one virsh, ms a line
	local out=$1 cmd
	shift
	cmd=$(printf '%s' "$*")
	for ((k = 0; k < RTT_N + 20; k++)); do
		printf '%s\n' "$cmd"
	done >"$LV/batch"
	virsh -t -q -c "$URI" <"$LV/batch" 2>&1 |
		sed -n 's/.*(Time: \([0-9.]*\) ms).*/\1/p' | tail -n "$RTT_N" >>"$out"
}
qctl_rtt() { # OUT: RTT_N build-list calls on one connection, ms a line
	PYTHONPATH=$BENCH_TOP/tests/integration python3 - "$SOCK" "$RTT_N" \
		>>"$1" <<'PY'
import sys, time
from qmpclient import QMP
c = QMP(sys.argv[1])
c.negotiate()
n = int(sys.argv[2])
for _ in range(20):
    c.cmd("build-list")
for _ in range(n):
    t0 = time.perf_counter_ns()
    c.cmd("build-list")
    print("%.3f" % ((time.perf_counter_ns() - t0) / 1e6))
PY
}
: >"$BENCH_TMP/rtt.domstate"
: >"$BENCH_TMP/rtt.qmc"
: >"$BENCH_TMP/rtt.qctl"
for r in 1 2 3; do
	virsh_rtt "$BENCH_TMP/rtt.domstate" "domstate lvbench-rtt"
	qctl_rtt "$BENCH_TMP/rtt.qctl"
	virsh_rtt "$BENCH_TMP/rtt.qmc" \
		"qemu-monitor-command lvbench-rtt '{\"execute\":\"query-status\"}'"
done
virsh -q -c "$URI" destroy lvbench-rtt >/dev/null 2>&1 || true
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

# --- report -----------------------------------------------------------------

lv_stop

read -r fmed fmin fmax fn < <(stats "$BENCH_TMP/floor.wall")
read -r qmed qmin qmax qn < <(stats "$BENCH_TMP/qctl.wall")
read -r lmed lmin lmax ln < <(stats "$BENCH_TMP/libvirt.wall")
read -r smed smin smax sn < <(stats "$BENCH_TMP/snap.wall")
read -r lcre _ _ _ < <(stats "$BENCH_TMP/libvirt.create")
read -r lpre _ _ _ < <(stats "$BENCH_TMP/libvirt.pre")
read -r lqemu _ _ _ < <(stats "$BENCH_TMP/libvirt.qemu")
read -r lpost _ _ _ < <(stats "$BENCH_TMP/libvirt.post")
read -r lsetup _ _ _ < <(stats "$BENCH_TMP/libvirt.setup")
read -r fgu _ _ _ < <(stats "$BENCH_TMP/floor.guest")
read -r qgu _ _ _ < <(stats "$BENCH_TMP/qctl.guest")
read -r lgu _ _ _ < <(stats "$BENCH_TMP/libvirt.guest")
[ "$fn" -gt 0 ] && [ "$qn" -gt 0 ] && [ "$ln" -gt 0 ] && [ "$sn" -gt 0 ] ||
	die "not enough successful runs to report"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
read -r rds _ _ rdsn < <(stats "$BENCH_TMP/rtt.domstate")
read -r rqm _ _ rqmn < <(stats "$BENCH_TMP/rtt.qmc")
read -r rqc _ _ rqcn < <(stats "$BENCH_TMP/rtt.qctl")
mib() { [ "$1" = - ] && echo - || awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
sum() { awk -v a="$1" -v b="$2" 'BEGIN { print a + b }'; }
lvver=$(libvirtd --version | sed 's/^libvirtd (libvirt) //')
rel=${IMG_DIR#"$BENCH_TOP"/}
envs="BENCH_N=$N"
[ "$RTT_N" = 200 ] || envs="$envs BENCH_RTT_N=$RTT_N"
[ -z "${BENCH_APPEND:-}" ] || envs="$envs BENCH_APPEND='$BENCH_APPEND'"
[ -z "${BENCH_KERNEL:-}" ] || envs="$envs BENCH_KERNEL=$BENCH_KERNEL"
[ -z "${BENCH_QCTL:-}" ] || envs="$envs BENCH_QCTL=$BENCH_QCTL"
[ "${BENCH_INITRD_COMPRESS:-keep}" = keep ] ||
	envs="$envs BENCH_INITRD_COMPRESS=$BENCH_INITRD_COMPRESS"
[ "$rel" = images/out/minimal ] || envs="$envs QCTL_IMAGE_DIR=$rel"

sec=$BENCH_TMP/section.md
{
	echo "## The same VM through libvirt"
	echo
	echo "Measured $started with \`$envs bench/libvirt.sh --write\`"
	echo "(\`make bench\` runs it with the defaults, after \`make bench-deps\`"
	echo "installs Debian's libvirt-daemon-system): libvirt $lvver, its"
	echo "libvirtd and virtlogd started by the script in a private mount and"
	echo "network namespace (system mode, Debian's configuration without"
	echo "networks; see the script's header). One VM, three ways: machine q35,"
	echo "accelerator $ACCEL (what \`qctl run --accel auto\` picked), 1 CPU,"
	echo "512 MiB, image $rel (kernel as $IMG_BOOT), command line"
	echo "\`$IMG_CMDLINE\`; the floor and libvirt add"
	echo "\`rdinit=/poweroff-init\` (PID 1 powers off at once), qctl runs"
	echo "\`steps: [{name: t, run: \"true\"}]\` through its agent, cold"
	echo "(\`--no-snapshot\`) and from a snapshot. Floor, qctl, snapshot and"
	echo "libvirt alternate, after one unrecorded round."
	echo
	echo "$facts"
	echo "- load average at end: $load_end"
	echo
	echo "| | runs | median s | min s | max s | / floor | / qctl | guest clock at power-off s (median) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	echo "| floor: raw QEMU, fork to exit | $fn | $fmed | $fmin | $fmax | 1.00 | $(ratio "$fmed" "$qmed") | $fgu |"
	echo "| qctl run -q --no-snapshot (cold boot), start to exit | $qn | $qmed | $qmin | $qmax | $(ratio "$qmed" "$fmed") | 1.00 | $qgu |"
	echo "| qctl run -q from a snapshot, start to exit | $sn | $smed | $smin | $smax | **$(ratio "$smed" "$fmed")** | $(ratio "$smed" "$qmed") | - |"
	echo "| libvirt: \`virsh create\` to the \"Stopped\" event | $ln | $lmed | $lmin | $lmax | $(ratio "$lmed" "$fmed") | **$(ratio "$lmed" "$qmed")** | $lgu |"
	echo
	echo "libvirt's run in phases (medians, s; from the stamps libvirt writes"
	echo "in the domain's log): virsh start to QEMU's start $lpre; QEMU's"
	echo "start to libvirt's \"shutting down\" (boot, power-off, libvirt"
	echo "handling the SHUTDOWN event) $lqemu, against the floor's whole QEMU"
	echo "$fmed; \"shutting down\" to the Stopped event $lpost. \`virsh"
	echo "create\` itself returned after $lcre s, $lsetup s after QEMU's start"
	echo "(QEMU's start-up, libvirt's QMP set-up, \`cont\`; the floor's"
	echo "vCPU starts as soon as QEMU is up). qctl's figure includes more guest work than the other two"
	echo "(the agent: modules, a mount, the step), so libvirt / qctl understates"
	echo "what libvirt adds above the floor: compare the / floor column."
	echo "Failed runs: floor $fails_floor, qctl $fails_qctl, snapshot $fails_snap, libvirt $fails_libvirt."
	echo
	echo "**Snapshot starts** (docs/snapshots.md): a build from a snapshot is"
	echo "$(ratio "$fmed" "$smed")x faster than the cold-boot floor (floor / snapshot,"
	echo "medians; the goal is 3x) and $(ratio "$qmed" "$smed")x faster than qctl's cold boot."
	echo "The snapshot was saved by the unrecorded round;"
	echo "its guest powers off with no boot behind it, so its clock column is"
	echo "not comparable and left out."
	echo
	echo "Samples in run order (s): floor $(paste -sd' ' "$BENCH_TMP/floor.wall");"
	echo "qctl $(paste -sd' ' "$BENCH_TMP/qctl.wall");"
	echo "snapshot $(paste -sd' ' "$BENCH_TMP/snap.wall");"
	echo "libvirt $(paste -sd' ' "$BENCH_TMP/libvirt.wall")."
	echo
	echo "**QMP commands before \`cont\`**: libvirt's \`cont\` was command"
	echo "libvirt-$qmp_count on the domain's monitor (its monitor log, in a"
	echo "separate unrecorded run that sent $qmp_total monitor commands in all,"
	echo "capability probe included if one ran); qctl sends"
	echo "\`qmp_capabilities\` and \`cont\`. In that run (slowed by the"
	echo "monitor log) libvirt's \"starting up\" to its \`cont\` took $C_SETUP s,"
	echo "\`cont\` to QEMU's SHUTDOWN event (the guest's boot and power-off)"
	echo "$C_RUN s, SHUTDOWN to libvirt's \"shutting down\" $C_REACT s, of"
	echo "which SHUTDOWN to QEMU's \"terminating on signal $C_SIG\" (QEMU's own"
	echo "log stamp) $C_TERM s."
	echo
	echo "What the domain XML cannot say the same way: q35's \`smbus\`, \`sata\`"
	echo "and \`graphics\` stay on under libvirt, which adds three PCIe root"
	echo "ports, an explicit RAM backend, a secret object and \`-rtc"
	echo "base=utc\` (command line below); the guest is otherwise the floor's."
	echo
	echo "**Memory** (VmRSS / VmHWM MiB, from /proc):"
	echo
	echo "| process | at start | after the boots | one paused domain |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| libvirtd | $(mib "$lvd_rss0") / $(mib "$lvd_hwm0") | $(mib "$lvd_rss1") / $(mib "$lvd_hwm1") | $(mib "$lvd_rss2") / $(mib "$lvd_hwm2") |"
	echo "| virtlogd | $(mib "$logd_rss0") / $(mib "$logd_hwm0") | $(mib "$logd_rss1") / $(mib "$logd_hwm1") | $(mib "$logd_rss2") / $(mib "$logd_hwm2") |"
	echo "| libvirt's daemons together | $(mib "$(sum "$lvd_rss0" "$logd_rss0")") | $(mib "$(sum "$lvd_rss1" "$logd_rss1")") | $(mib "$(sum "$lvd_rss2" "$logd_rss2")") |"
	echo "| qctl serve, idle | $(mib "$serve_rss") / $(mib "$serve_hwm") | | |"
	echo
	echo "\`qctl run\` has no daemon at all; \`qctl serve\` is its long-running"
	echo "form (bench/serve-bench.sh measures it with VMs)."
	echo
	echo "**Control round trip** (ms, median of $RTT_N calls x 3 alternating"
	echo "rounds after 20 unrecorded each, one connection per round):"
	echo
	echo "| call | samples | median ms | / qctl |"
	echo "| --- | ---: | ---: | ---: |"
	echo "| qctl serve socket, \`build-list\` (qmpclient.py, time around the call) | $rqcn | $rqc | 1.00 |"
	echo "| \`virsh domstate\` on a paused domain (virsh --timing) | $rdsn | $rds | $(ratio "$rds" "$rqc") |"
	echo "| \`virsh qemu-monitor-command ... query-status\` (libvirt RPC + QMP) | $rqmn | $rqm | $(ratio "$rqm" "$rqc") |"
	echo
	echo "Both clients time the call inside one process (a Python client"
	echo "against virsh, C); neither includes process start-up."
	echo
	echo "<details><summary>libvirt's QEMU command line</summary>"
	echo
	echo '```'
	if [ -s "$BENCH_TMP/lv-qemu.log" ]; then
		awk '/qemu-system/ { p = 1 } p { print } p && !/\\$/ { exit }' \
			"$BENCH_TMP/lv-qemu.log" | sed "s#$BENCH_TMP/#TMP/#g"
	else
		echo "(not seen)"
	fi
	echo '```'
	echo
	echo "</details>"
} >"$sec"
cat "$sec"
if [ "$write" = 1 ]; then
	doc=$BENCH_TOP/docs/benchmarks.md
	doc_replace "$doc" bench-libvirt "$sec"
	echo "libvirt.sh: updated $doc" >&2
fi
