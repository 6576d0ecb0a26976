#!/bin/bash
# bench/run.sh [--write] - how far qctl's boot-to-power-off is from the floor.
#
# Side by side, interleaved (floor, qctl, floor, qctl, ...; one unrecorded
# warm-up pair first) so that the noise of other jobs on the host hits
# both alike:
#   floor  raw qemu-system-x86_64 with qctl's machine, CPU, memory, devices
#          and sandbox, booting the image's kernel and initrd plus a second
#          archive with bench/poweroff-init as rdinit: fork to QEMU's exit.
#   qctl   `build/qctl run -q` of `steps: [{name: t, run: "true"}]`:
#          start to exit.
# Prints a markdown section (medians, min/max, ratio of medians) on stdout;
# --write also puts it into docs/benchmarks.md.  Called by `make bench`.
#
# Knobs (environment): BENCH_N runs each (10), BENCH_TIMEOUT seconds per
# run (120), BENCH_QCTL (build/qctl), and those of bench/lib.sh:
# QCTL_IMAGE_DIR, QCTL_MACHINE, BENCH_APPEND, BENCH_KERNEL,
# BENCH_INITRD_COMPRESS.  Under TCG, QCTL_MACHINE=microvm boots hang at TSC
# calibration unless BENCH_APPEND=tsc_early_khz=<host TSC kHz> is given
# (docs/benchmarks.md, "Boot hangs").
set -euo pipefail
# qctl's cold boot against the floor (snapshot starts: bench/libvirt.sh)
export QCTL_BENCH_ARGS=--no-snapshot
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=$(bench_write_flag "bench/run.sh" "$@")
N=${BENCH_N:-10}
TIMEOUT=${BENCH_TIMEOUT:-120}
MACHINE=${QCTL_MACHINE:-q35}
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
[ -x "$QCTL" ] || die "$QCTL missing (run make all)"
command -v "$QEMU_BIN" >/dev/null || die "$QEMU_BIN not found"

BENCH_TMP=$(mktemp -d /tmp/qctl-bench.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

bench_prepare_image
bench_floor_initrd
export QCTL_RUN_ROOT=$BENCH_TMP/runs QCTL_MACHINE=$MACHINE
mkdir -p "$QCTL_RUN_ROOT"
recipe=$BENCH_TMP/trivial.yaml
printf 'steps: [{name: t, run: "true"}]\n' >"$recipe"
facts=$(host_facts)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

for f in floor qctl; do
	for m in wall cpu guest boot; do
		: >"$BENCH_TMP/$f.$m"
	done
done
fails_floor=0
fails_qctl=0

for i in $(seq 0 "$N"); do
	# run 0 warms the page cache and QEMU's binary; it is not recorded
	if run_floor; then
		if [ "$i" -gt 0 ]; then
			echo "$F_WALL" >>"$BENCH_TMP/floor.wall"
			echo "$F_CPU" >>"$BENCH_TMP/floor.cpu"
			echo "$F_GUEST" >>"$BENCH_TMP/floor.guest"
		fi
		fw=$F_WALL
	else
		[ "$i" -eq 0 ] || fails_floor=$((fails_floor + 1))
		fw=failed
	fi
	peek=
	[ "$i" -gt 0 ] || peek=peek_qemu_argv
	if run_qctl $peek; then
		if [ "$i" -gt 0 ]; then
			echo "$Q_WALL" >>"$BENCH_TMP/qctl.wall"
			echo "$Q_CPU" >>"$BENCH_TMP/qctl.cpu"
			echo "$Q_GUEST" >>"$BENCH_TMP/qctl.guest"
			echo "$Q_BOOT" >>"$BENCH_TMP/qctl.boot"
		fi
		qw=$Q_WALL
	else
		[ "$i" -eq 0 ] || fails_qctl=$((fails_qctl + 1))
		qw=failed
	fi
	if [ "$i" -eq 0 ]; then
		echo "warm-up: floor $fw s, qctl $qw s" >&2
	else
		echo "run $i/$N: floor $fw s, qctl $qw s" >&2
	fi
done

read -r fmed fmin fmax fn < <(stats "$BENCH_TMP/floor.wall")
read -r qmed qmin qmax qn < <(stats "$BENCH_TMP/qctl.wall")
read -r fcpu _ _ _ < <(stats "$BENCH_TMP/floor.cpu")
read -r qcpu _ _ _ < <(stats "$BENCH_TMP/qctl.cpu")
read -r fgu _ _ _ < <(stats "$BENCH_TMP/floor.guest")
read -r qgu _ _ _ < <(stats "$BENCH_TMP/qctl.guest")
read -r qboot _ _ _ < <(stats "$BENCH_TMP/qctl.boot")
[ "$fn" -gt 0 ] && [ "$qn" -gt 0 ] || die "no successful runs to report"
ratio=$(awk -v q="$qmed" -v f="$fmed" 'BEGIN { printf "%.2f", q / f }')
cratio=$(awk -v q="$qcpu" -v f="$fcpu" 'BEGIN { printf "%.2f", q / f }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.15) ? "met" : "not met" }')
rel=${IMG_DIR#"$BENCH_TOP"/}
cmd="bench/run.sh --write"
envs="BENCH_N=$N"
[ "$MACHINE" = q35 ] || envs="$envs QCTL_MACHINE=$MACHINE"
[ -z "${BENCH_APPEND:-}" ] || envs="$envs BENCH_APPEND='$BENCH_APPEND'"
[ -z "${BENCH_KERNEL:-}" ] || envs="$envs BENCH_KERNEL=$BENCH_KERNEL"
[ -z "${BENCH_QCTL:-}" ] || envs="$envs BENCH_QCTL=$BENCH_QCTL"
[ "${BENCH_INITRD_COMPRESS:-keep}" = keep ] ||
	envs="$envs BENCH_INITRD_COMPRESS=$BENCH_INITRD_COMPRESS"
[ "$rel" = images/out/minimal ] || envs="$envs QCTL_IMAGE_DIR=$rel"

sec=$BENCH_TMP/section.md
{
	echo "## Boot to power-off: qctl against the floor"
	echo
	echo "Measured $started with \`$envs $cmd\`"
	echo "(\`make bench\` runs it with the defaults): machine $MACHINE, TCG,"
	echo "1 CPU, 512 MiB, image $rel (kernel booted as $IMG_BOOT, initrd compression $IMG_COMPRESS),"
	echo "kernel command line \`$IMG_CMDLINE\`"
	echo "(the floor adds \`rdinit=/poweroff-init\`). Floor and qctl runs"
	echo "alternate, after one unrecorded pair, so that other jobs on the host"
	echo "slow both alike."
	echo
	echo "$facts"
	echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "| | runs | median s | min s | max s | ratio of medians | CPU s (median) | guest clock at power-off s (median) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	echo "| floor: raw QEMU, kernel + initrd, PID 1 powers off | $fn | $fmed | $fmin | $fmax | 1.00 | $fcpu | $fgu |"
	echo "| qctl run -q, \`steps: [{name: t, run: \"true\"}]\` | $qn | $qmed | $qmin | $qmax | **$ratio** | $qcpu | $qgu |"
	echo
	echo "Target qctl <= 1.15 x floor (ratio of wall-time medians): **$verdict**."
	echo "Ratio of CPU medians: $cratio (CPU is user+sys of the QEMU, and qctl,"
	echo "process tree: less sensitive than wall time to other jobs on the"
	echo "host). qctl's spawn-to-HELLO (result.json \`boot_ms\`), median: $qboot s."
	echo "The guest clock is the printk time of \`reboot: Power down\`."
	echo "Failed runs: floor $fails_floor, qctl $fails_qctl."
	echo
	echo "Samples in run order (s): floor $(paste -sd' ' "$BENCH_TMP/floor.wall");"
	echo "qctl $(paste -sd' ' "$BENCH_TMP/qctl.wall")."
	echo
	echo "<details><summary>QEMU command lines</summary>"
	echo
	echo "$("$QCTL" version 2>&1 | head -n1) ran QEMU as follows (from /proc during the"
	echo "warm-up run); the floor's command line is the same but for -S,"
	echo "-no-shutdown, QMP, the chardev backends, the scratch disk's path and"
	echo "the initrd:"
	echo
	echo '```'
	if [ -s "$BENCH_TMP/qctl-qemu-argv" ]; then
		# one option and its value a line
		awk 'NR > 1 && /^-/ { printf "\n" } { printf "%s ", $0 }
			END { printf "\n" }' "$BENCH_TMP/qctl-qemu-argv"
	else
		echo "(not seen)"
	fi
	echo '```'
	echo
	echo "The floor:"
	echo
	echo '```'
	floor_argv "$MACHINE" console.log
	printf '%s\n' "${FLOOR_ARGV[@]}" | awk 'NR > 1 && /^-/ { printf "\n" }
		{ printf "%s ", $0 } END { printf "\n" }' |
		sed "s#$BENCH_TMP/#TMP/#g"
	echo '```'
	echo
	echo "</details>"
} >"$sec"
cat "$sec"
if [ "$write" = 1 ]; then
	doc=$BENCH_TOP/docs/benchmarks.md
	doc_init "$doc"
	doc_replace "$doc" bench-run "$sec"
	echo "run.sh: updated $doc" >&2
fi
