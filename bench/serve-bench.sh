#!/bin/bash
# bench/serve-bench.sh [--write] - what qctl serve costs.
#
#   RSS    VmRSS (and VmHWM) of the qctl serve process with 0, 1 and 4 VMs
#          running (builds of `sleep`, measured once every VM is in its
#          step), and the RSS of one of its QEMUs for scale.
#   RTT    QMP round trip of query-version on qctl's socket against
#          query-status on QEMU's own QMP socket (qemu-system-x86_64 -S
#          -machine none), same client (tests/integration/qmpclient.py,
#          one command at a time), BENCH_RTT_N each, median and p99.
#
# Prints a markdown section; --write also puts it into docs/benchmarks.md.
# Needs root (qctl serve), the minimal image (make image) and build/qctl.
# Every process it starts is killed by PID on the way out.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=0
case ${1:-} in
"") ;;
--write) write=1 ;;
*) echo "usage: bench/serve-bench.sh [--write]" >&2; exit 2 ;;
esac
N=${BENCH_RTT_N:-2000}
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
[ -x "$QCTL" ] || die "$QCTL missing (run make all)"
[ "$(id -u)" = 0 ] || die "run as root (qctl serve manages VMs)"
command -v "$QEMU_BIN" >/dev/null || die "$QEMU_BIN not found"
export QCTL_IMAGES=${QCTL_IMAGES:-$BENCH_TOP/images/out}
[ -f "$QCTL_IMAGES/minimal/image.json" ] || die "no minimal image (make image)"

BENCH_TMP=$(mktemp -d /tmp/qctl-serve-bench.XXXXXX)
SERVE_PID=
QEMU_PID=
cleanup() {
	local p
	for p in $SERVE_PID $QEMU_PID; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for _ in $(seq 1 100); do
		kill -0 $SERVE_PID $QEMU_PID 2>/dev/null || break
		sleep 0.1
	done
	for p in $SERVE_PID $QEMU_PID; do
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	[ -z "$SERVE_PID" ] ||
		"$QCTL" gc --state-dir "$BENCH_TMP/state" >/dev/null 2>&1 || true
	rm -rf "$BENCH_TMP"
}
trap 'rc=$?; [ $rc = 0 ] || tail -20 "$BENCH_TMP/serve.log" >&2; cleanup' EXIT
trap 'exit 130' INT TERM HUP

SOCK=$BENCH_TMP/qctl.sock
"$QCTL" serve --socket "$SOCK" --max-parallel 4 --accel tcg \
	--state-dir "$BENCH_TMP/state" --run-root "$BENCH_TMP/runs" \
	>"$BENCH_TMP/serve.out" 2>"$BENCH_TMP/serve.log" &
SERVE_PID=$!
QSOCK=$BENCH_TMP/qemu-qmp.sock
"$QEMU_BIN" -S -machine none -nodefaults -display none -no-user-config \
	-qmp "unix:$QSOCK,server=on,wait=off" >"$BENCH_TMP/qemu.out" 2>&1 &
QEMU_PID=$!
for _ in $(seq 1 100); do
	[ -S "$SOCK" ] && [ -S "$QSOCK" ] && break
	sleep 0.1
done
[ -S "$SOCK" ] || { cat "$BENCH_TMP/serve.log" >&2; die "qctl serve did not start"; }
[ -S "$QSOCK" ] || { cat "$BENCH_TMP/qemu.out" >&2; die "QEMU did not start"; }
facts=$(host_facts)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

PYTHONPATH=$BENCH_TOP/tests/integration python3 - "$SOCK" "$SERVE_PID" \
	"$QSOCK" "$N" >"$BENCH_TMP/results" <<'PY'
import os, statistics, sys, time
from qmpclient import QMP

sock, pid, qsock, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])

def status(p, key):
    for line in open("/proc/%d/status" % p):
        if line.startswith(key + ":"):
            return int(line.split()[1])

def rtt(c, cmd):
    for _ in range(100):            # warm-up
        c.cmd(cmd)
    ts = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        c.cmd(cmd)
        ts.append((time.perf_counter_ns() - t0) / 1000)
    ts.sort()
    return statistics.median(ts), ts[int(len(ts) * 0.99) - 1], ts[0]

c = QMP(sock, timeout=300)
c.negotiate()
q = QMP(qsock)
q.negotiate()
qv = q.cmd("query-version")["qemu"]
print("qemu_version %d.%d.%d" % (qv["major"], qv["minor"], qv["micro"]))
# alternate, so that noise hits both alike
for rnd in range(2):
    m, p99, lo = rtt(c, "query-version")
    print("rtt qctl %d %.1f %.1f %.1f" % (rnd, m, p99, lo))
    m, p99, lo = rtt(q, "query-status")
    print("rtt qemu %d %.1f %.1f %.1f" % (rnd, m, p99, lo))
q.close()

time.sleep(0.5)
print("rss 0 %d %d -" % (status(pid, "VmRSS"), status(pid, "VmHWM")))
recipe = {"steps": [{"name": "hold", "run": "sleep 600"}]}
ids = []
for want in (1, 4):
    new = []
    while len(ids) < want:
        new.append(c.cmd("build-submit", recipe=recipe)["id"])
        ids.append(new[-1])
    for i in new:
        c.wait_event("STEP_STARTED", timeout=300, build=i)
    time.sleep(1)
    qrss = status(c.cmd("vm-stats", id=ids[0])["qemu_pid"], "VmRSS")
    print("rss %d %d %d %d" % (want, status(pid, "VmRSS"), status(pid, "VmHWM"), qrss))
    c.events.clear()
for i in ids:
    c.cmd("build-cancel", id=i)
for i in ids:
    c.wait_event("BUILD_FINISHED", timeout=60, build=i)
time.sleep(1)
print("rss after %d %d -" % (status(pid, "VmRSS"), status(pid, "VmHWM")))
PY

kib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
row_rss() {
	local label=$1 key=$2 r h q
	read -r _ _ r h q < <(grep "^rss $key " "$BENCH_TMP/results")
	if [ "$q" = - ]; then q=; else q=$(kib "$q"); fi
	echo "| $label | $(kib "$r") | $(kib "$h") | ${q:--} |"
}
row_rtt() {
	local who=$1 label=$2 m p lo
	# the second (warmer) round
	read -r _ _ _ m p lo < <(grep "^rtt $who 1 " "$BENCH_TMP/results")
	echo "| $label | $m | $p | $lo |"
}
rtt_ratio() {
	local a b
	read -r _ _ _ a _ _ < <(grep "^rtt qctl 1 " "$BENCH_TMP/results")
	read -r _ _ _ b _ _ < <(grep "^rtt qemu 1 " "$BENCH_TMP/results")
	awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f", b / a }'
}
qemu_v=$(sed -n 's/^qemu_version //p' "$BENCH_TMP/results")

sec=$BENCH_TMP/section.md
{
	echo "## qctl serve: memory and control-socket round trip"
	echo
	echo "Measured $started with \`bench/serve-bench.sh --write\`: one"
	echo "\`qctl serve --max-parallel 4 --accel tcg\`, builds of the minimal"
	echo "image (\`steps: [{name: hold, run: \"sleep 600\"}]\`, 1 CPU, 512 MiB),"
	echo "measured once every VM runs its step."
	echo
	echo "$facts"
	echo
	echo "| VMs running | server VmRSS MiB | server VmHWM MiB | one QEMU's VmRSS MiB |"
	echo "| ---: | ---: | ---: | ---: |"
	row_rss 0 0
	row_rss 1 1
	row_rss 4 4
	row_rss "0 (after the 4 were cancelled)" after
	echo
	echo "The server's own memory is a small fraction of one VM's: its per-build"
	echo "state is the engine's buffers (QMP, agent, upload window, log lines);"
	echo "guest memory lives in the QEMU processes."
	echo
	echo "Round trip of one command on an idle server, $N sequential calls after"
	echo "100 warm-up calls, same Python client (qmpclient.py) for both, second of"
	echo "two interleaved rounds (µs):"
	echo
	echo "| socket | median | p99 | min |"
	echo "| --- | ---: | ---: | ---: |"
	row_rtt qctl "qctl serve, \`query-version\`"
	row_rtt qemu "QEMU $qemu_v own QMP (\`-machine none -S\`), \`query-status\`"
	echo
	echo "QEMU's median is $(rtt_ratio) x qctl's. qctl frames, parses, checks"
	echo "and answers a command inline in its one event loop and replies with one"
	echo "\`send\`; QEMU's monitor parses in its I/O thread and hands each command"
	echo "to the main loop and back. Both figures include the same Python"
	echo "client's own time, so the servers alone differ by more than this ratio."
} >"$sec"
cat "$sec"
if [ "$write" = 1 ]; then
	doc=$BENCH_TOP/docs/benchmarks.md
	doc_replace "$doc" serve-bench "$sec"
	echo "serve-bench.sh: updated $doc" >&2
fi
