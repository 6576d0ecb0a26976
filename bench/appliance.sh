#!/bin/bash
# bench/appliance.sh [--write] - the appliance (docs/appliance.md): time to
# ready, and a build nested in it against the same build on this host.
#
# Each round boots images/out/appliance with images/appliance/boot (the
# host's accelerator choice: TCG here) and times QEMU's start to the
# console's "appliance: ready" line (kernel, modules, qctl serve listening,
# relay up); then, in the first BENCH_NESTED rounds (1), submits a one-step
# build through the exported socket (boot, step, BUILD_FINISHED), quits the
# appliance, and runs the same recipe with `qctl run --json` on this host
# right after, so that each nested build has its host twin measured beside
# it.  BENCH_N rounds (3).  Prints a markdown section; --write also puts it
# into docs/benchmarks.md.  Called by `make bench` when images/out/appliance
# exists (make image-appliance).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=$(bench_write_flag "bench/appliance.sh" "$@")
N=${BENCH_N:-3}
NESTED=${BENCH_NESTED:-1}
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
A=$BENCH_TOP/images/out/appliance
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
[[ $NESTED =~ ^[0-9]+$ ]] || die "BENCH_NESTED must be a number"
[ -x "$QCTL" ] || die "$QCTL missing (run make all)"
[ -f "$A/image.json" ] || die "$A missing (make image-appliance)"

BENCH_TMP=$(mktemp -d /tmp/qctl-bench.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP
export QCTL_RUN_ROOT=$BENCH_TMP/runs
mkdir -p "$QCTL_RUN_ROOT"
recipe='{"limits": {"boot_timeout": "20m", "wall_time": "30m"},
 "steps": [{"name": "hello", "run": "echo hello; uname -r"}]}'
printf '%s\n' "$recipe" >"$BENCH_TMP/recipe.json"
# the host's twin: the same recipe as YAML (JSON is YAML)
cp "$BENCH_TMP/recipe.json" "$BENCH_TMP/qctl.yaml"

: >"$BENCH_TMP/ready"
: >"$BENCH_TMP/nested.wall"
: >"$BENCH_TMP/nested.boot"
: >"$BENCH_TMP/host.wall"
: >"$BENCH_TMP/host.boot"
# seconds since the date +%s%N stamp $1
secs_since() {
	awk -v a="$1" -v b="$(date +%s%N)" 'BEGIN { printf "%.3f\n", (b - a) / 1e9 }'
}
facts=$(host_facts)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for i in $(seq "$N"); do
	sock=$BENCH_TMP/ctl.sock con=$BENCH_TMP/console.$i
	rm -f "$sock"
	t0=$(date +%s%N)
	"$BENCH_TOP/images/appliance/boot" -l "$con" "$A" "$sock" \
		>"$BENCH_TMP/qemu.$i" 2>&1 &
	BENCH_CHILD=$!
	until grep -q '^appliance: ready' "$con" 2>/dev/null; do
		kill -0 "$BENCH_CHILD" 2>/dev/null ||
			die "round $i: the appliance ended before ready: $(tail -5 "$con")"
		[ $((($(date +%s%N) - t0) / 1000000000)) -lt 600 ] ||
			die "round $i: not ready after 600 s"
		sleep 0.05
	done
	secs_since "$t0" >>"$BENCH_TMP/ready"
	nested=0
	[ "$i" -gt "$NESTED" ] || nested=1
	PYTHONPATH="$BENCH_TOP/tests/integration" python3 - "$sock" \
		"$BENCH_TMP" "$nested" <<'PY' || die "round $i: the session failed"
import json, sys, time
from qmpclient import QMP
sock, tmp, nested = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
c = QMP(sock, timeout=120)
c.negotiate()
if nested:
    t0 = time.time()
    b = c.cmd("build-submit", recipe=json.load(open(tmp + "/recipe.json")))
    ev = c.wait_event("BUILD_FINISHED", timeout=1800, build=b["id"])
    res = ev["data"]["result"]
    assert res["status"] == "passed", res
    with open(tmp + "/nested.wall", "a") as f:
        f.write("%.3f\n" % (time.time() - t0))
    with open(tmp + "/nested.boot", "a") as f:
        f.write("%.3f\n" % (res["stats"]["boot_ms"] / 1000))
c.cmd("quit")
PY
	wait "$BENCH_CHILD" || die "round $i: QEMU exited with status $?"
	BENCH_CHILD=
	[ "$nested" = 1 ] || continue
	t0=$(date +%s%N)
	(cd "$BENCH_TMP" && "$QCTL" run -q --json qctl.yaml) >"$BENCH_TMP/host.json" ||
		die "round $i: the host build failed: $(cat "$BENCH_TMP/host.json")"
	secs_since "$t0" >>"$BENCH_TMP/host.wall"
	json_get "$BENCH_TMP/host.json" 'r["stats"]["boot_ms"] / 1000' >>"$BENCH_TMP/host.boot"
done

row() { # LABEL FILE
	local s
	s=$(stats "$2")
	set -- "$1" $s
	printf '| %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$5"
}
ratio() { # A B: median(A) / median(B)
	local a b
	a=$(stats "$1" | cut -d' ' -f1)
	b=$(stats "$2" | cut -d' ' -f1)
	if [ "$a" = - ] || [ "$b" = - ]; then echo -; else
		awk -v a="$a" -v b="$b" 'BEGIN { printf "%.1f\n", a / b }'; fi
}
sec=$BENCH_TMP/section.md
{
	echo "## The appliance (\`bench/appliance.sh\`, generated $started)"
	echo
	echo "Command: \`BENCH_N=$N BENCH_NESTED=$NESTED bench/appliance.sh --write\`."
	echo "$facts"
	echo "- appliance: $(stat -c %s "$A/initrd.img" | awk '{ printf "%.0f MiB", $1 / 1048576 }')" \
		"initramfs, $(sed -n 's/.*"cpus":\([0-9]*\).*/\1/p' "$A/image.json") vCPUs," \
		"$(sed -n 's/.*"memory":\([0-9]*\).*/\1/p' "$A/image.json" | awk '{ printf "%d MiB", $1 / 1048576 }'), booted by images/appliance/boot"
	echo
	echo "| seconds | median | min | max | n |"
	echo "| --- | --- | --- | --- | --- |"
	row "appliance: QEMU start to ready" "$BENCH_TMP/ready"
	row "nested build: submit to BUILD_FINISHED" "$BENCH_TMP/nested.wall"
	row "nested build: boot to agent" "$BENCH_TMP/nested.boot"
	row "same build on this host: qctl run" "$BENCH_TMP/host.wall"
	row "same build on this host: boot to agent" "$BENCH_TMP/host.boot"
	echo
	echo "Nested against host, medians: whole build $(ratio "$BENCH_TMP/nested.wall" "$BENCH_TMP/host.wall")x," \
		"boot $(ratio "$BENCH_TMP/nested.boot" "$BENCH_TMP/host.boot")x."
	echo "Each nested build ran with its host twin right after it."
}>"$sec"
cat "$sec"
[ "$write" = 0 ] || doc_replace "$BENCH_TOP/docs/benchmarks.md" appliance "$sec"
