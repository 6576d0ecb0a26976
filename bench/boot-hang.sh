#!/bin/bash
# bench/boot-hang.sh [--write] - how often a TCG boot hangs, per machine type.
#
# Boots HANG_N times each, interleaved (variant 1, variant 2, ..., then
# again), with a per-boot timeout; a boot that does not reach power-off in
# time is a hang.  Kinds of boot (HANG_KINDS):
#   floor  raw QEMU with qctl's options, the image's kernel and initrd and
#          bench/poweroff-init as PID 1 (see bench/run.sh)
#   qctl   build/qctl run of the trivial recipe with QCTL_MACHINE set and
#          boot_timeout = HANG_TIMEOUT; qctl retries a hung boot once, so
#          each "retrying with a fresh VM" in its log counts as a hang, and
#          so does a run that fails to boot at all.  Plain q35/microvm only.
# Prints a markdown section (hangs, boot-time distribution, where hung
# boots stopped) on stdout; --write puts it into docs/benchmarks.md.
#
# Knobs (environment): HANG_N boots per variant and kind (25),
# HANG_TIMEOUT seconds per boot (20), HANG_VARIANTS machine specs ("q35
# microvm"; "microvm,pit=on" overrides qctl's machine options, floor
# only), HANG_KINDS ("floor qctl"), HANG_KEEP=DIR keeps the console logs
# of hung boots, HANG_LABEL names the docs section (for several
# configurations side by side), BENCH_QCTL, and those of bench/lib.sh:
# QCTL_IMAGE_DIR, BENCH_APPEND (e.g. ignore_loglevel, to see where a hung
# boot stops), BENCH_KERNEL, BENCH_INITRD_COMPRESS.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=$(bench_write_flag "bench/boot-hang.sh" "$@")
N=${HANG_N:-25}
TIMEOUT=${HANG_TIMEOUT:-20}
VARIANTS=${HANG_VARIANTS:-q35 microvm}
KINDS=${HANG_KINDS:-floor qctl}
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "HANG_N must be a positive integer"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "HANG_TIMEOUT must be whole seconds"
for k in $KINDS; do
	case $k in
	floor) ;;
	qctl) [ -x "$QCTL" ] || die "$QCTL missing (run make all)" ;;
	*) die "HANG_KINDS: unknown kind $k" ;;
	esac
done
[ -z "${HANG_KEEP:-}" ] || mkdir -p "$HANG_KEEP"

BENCH_TMP=$(mktemp -d /tmp/qctl-boot-hang.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP

bench_prepare_image
bench_floor_initrd
export QCTL_RUN_ROOT=$BENCH_TMP/runs
mkdir -p "$QCTL_RUN_ROOT"
recipe=$BENCH_TMP/trivial.yaml
printf 'limits: {boot_timeout: %ss}\nsteps: [{name: t, run: "true"}]\n' \
	"$TIMEOUT" >"$recipe"
facts=$(host_facts)
started=$(date -u '+%Y-%m-%d %H:%M UTC')

# One key per variant and kind: "q35.floor", "microvm,pit=on.floor", ...
keys=()
for v in $VARIANTS; do
	for k in $KINDS; do
		if [ "$k" = qctl ] && [ "$v" != q35 ] && [ "$v" != microvm ]; then
			echo "boot-hang: skipping qctl for $v (QCTL_MACHINE is" \
				"q35 or microvm)" >&2
			continue
		fi
		keys+=("$v.$k")
	done
done
[ "${#keys[@]}" -gt 0 ] || die "nothing to boot"
declare -A boots=() hangs=() fails=()
for key in "${keys[@]}"; do
	boots[$key]=0 hangs[$key]=0 fails[$key]=0
	: >"$BENCH_TMP/$key.times"
	: >"$BENCH_TMP/$key.stops"
done

# The last line of each boot in a console log (a retried qctl run holds
# two boots, each starting at SeaBIOS), escapes and timestamps stripped.
stop_lines() {
	[ -r "$1" ] || return 0
	tr -d '\r' <"$1" | sed 's/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' |
		awk '/SeaBIOS \(version/ && n++ { print last; last = "" }
			/[^[:space:]]/ { last = $0 }
			END { print last }' |
		sed 's/^\[ *[0-9.]*\] //' | cut -c1-100
}

hung() { # KEY STOP_LINE N [CONSOLE_LOG]
	local key=$1 stop=${2:-(no output)} i=$3

	hangs[$key]=$((hangs[$key] + 1))
	echo "$stop" >>"$BENCH_TMP/$key.stops"
	echo "  hang: $key boot $i stopped at: $stop" >&2
	[ -z "${HANG_KEEP:-}" ] || [ -z "${4:-}" ] ||
		cp "$4" "$HANG_KEEP/$(echo "$key" | tr ',=' '__')-$i.log" 2>/dev/null ||
		true
}

boot_floor() { # VARIANT KEY I
	local log=$BENCH_TMP/console.log

	rm -f "$log"
	floor_argv "$1" "$log"
	BENCH_OUT=$BENCH_TMP/qemu.out run_timed "$TIMEOUT" "${FLOOR_ARGV[@]}"
	boots[$2]=$((boots[$2] + 1))
	if [ "$T_TIMEDOUT" = 1 ]; then
		hung "$2" "$(stop_lines "$log" | tail -n1)" "$3" "$log"
	elif [ "$T_RC" != 0 ] || [ "$(guest_poweroff_time "$log")" = - ]; then
		fails[$2]=$((fails[$2] + 1))
		echo "  failed: $2 boot $3 (rc $T_RC)" >&2
	else
		echo "$T_WALL" >>"$BENCH_TMP/$2.times"
	fi
}

boot_qctl() { # MACHINE KEY I
	local rd retries b

	BENCH_OUT=$BENCH_TMP/qctl.out QCTL_MACHINE=$1 \
		run_timed $((2 * TIMEOUT + 30)) \
		"$QCTL" run -v --keep --accel tcg --image "$BENCH_IMAGE" "$recipe"
	rd=$(ls -d "$QCTL_RUN_ROOT"/run-* 2>/dev/null | head -n1)
	retries=$(grep -c 'retrying with a fresh VM' "$BENCH_TMP/qctl.out" || true)
	boots[$2]=$((boots[$2] + 1 + retries))
	# qctl keeps appending to console.log across its retry: one stop
	# line per boot, the last one is the final attempt's
	stop_lines "${rd:-/nonexistent}/console.log" >"$BENCH_TMP/stops"
	for ((r = 1; r <= retries; r++)); do
		hung "$2" "$(sed -n "${r}p" "$BENCH_TMP/stops")" "$3" \
			"$rd/console.log"
	done
	if [ "$T_TIMEDOUT" = 1 ] || grep -q 'did not answer within' \
		"$BENCH_TMP/qctl.out"; then
		hung "$2" "$(tail -n1 "$BENCH_TMP/stops")" "$3" "$rd/console.log"
	elif [ "$T_RC" != 0 ]; then
		fails[$2]=$((fails[$2] + 1))
		echo "  failed: $2 run $3 (rc $T_RC)" >&2
		tail -n 5 "$BENCH_TMP/qctl.out" >&2
	else
		b=$(sed -n 's/.*"boot_ms": *\([0-9][0-9]*\).*/\1/p' \
			"$rd/result.json" 2>/dev/null | head -n1)
		# the boot time of the attempt that worked: spawn to HELLO,
		# plus the rest of the run (step, power-off), i.e. the wall
		# time minus the hung attempts
		[ -z "$b" ] || echo "$T_WALL $b" |
			awk -v r="$retries" -v t="$TIMEOUT" \
				'{ printf "%.3f\n", $1 - r * t }' \
				>>"$BENCH_TMP/$2.times"
	fi
	[ -z "$rd" ] || rm -rf "$rd"
}

for i in $(seq 1 "$N"); do
	for key in "${keys[@]}"; do
		v=${key%.*}
		case ${key##*.} in
		floor) boot_floor "$v" "$key" "$i" ;;
		qctl) boot_qctl "$v" "$key" "$i" ;;
		esac
	done
	line="round $i/$N:"
	for key in "${keys[@]}"; do
		line="$line $key ${hangs[$key]}/${boots[$key]} hung;"
	done
	echo "$line" >&2
done

# p90 of the successful boots, next to stats' median/min/max
p90() {
	sort -g "$1" | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		i = int(0.9 * NR + 0.999); if (i < 1) i = 1
		printf "%.3f\n", v[i] }'
}

rel=${IMG_DIR#"$BENCH_TOP"/}
envs="HANG_N=$N HANG_TIMEOUT=$TIMEOUT"
[ "$VARIANTS" = "q35 microvm" ] || envs="$envs HANG_VARIANTS='$VARIANTS'"
[ "$KINDS" = "floor qctl" ] || envs="$envs HANG_KINDS='$KINDS'"
[ -z "${BENCH_APPEND:-}" ] || envs="$envs BENCH_APPEND='$BENCH_APPEND'"
[ -z "${BENCH_KERNEL:-}" ] || envs="$envs BENCH_KERNEL=$BENCH_KERNEL"
[ -z "${BENCH_QCTL:-}" ] || envs="$envs BENCH_QCTL=$BENCH_QCTL"
[ -z "${HANG_LABEL:-}" ] || envs="$envs HANG_LABEL=$HANG_LABEL"
[ "$rel" = images/out/minimal ] || envs="$envs QCTL_IMAGE_DIR=$rel"
sec=$BENCH_TMP/section.md
{
	echo "## Boot hangs under TCG${HANG_LABEL:+: $HANG_LABEL}"
	echo
	echo "Measured $started with \`$envs bench/boot-hang.sh --write\`:"
	echo "image $rel (kernel booted as $IMG_BOOT, initrd compression $IMG_COMPRESS), kernel command line"
	echo "\`$IMG_CMDLINE\` (the floor adds \`rdinit=/poweroff-init\`);"
	echo "a boot that has not powered off after ${TIMEOUT}s is a hang."
	echo
	echo "$facts"
	echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "| machine | boot | boots | hangs | other failures | median s | p90 s | min s | max s |"
	echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for key in "${keys[@]}"; do
		read -r med min max _ < <(stats "$BENCH_TMP/$key.times")
		echo "| ${key%.*} | ${key##*.} | ${boots[$key]} | ${hangs[$key]} |" \
			"${fails[$key]} | $med | $(p90 "$BENCH_TMP/$key.times") |" \
			"$min | $max |"
	done
	echo
	echo "Boot times are of the boots that powered off: fork to QEMU's exit"
	echo "for the floor, the whole \`qctl run\` for qctl."
	for key in "${keys[@]}"; do
		[ -s "$BENCH_TMP/$key.stops" ] || continue
		echo
		echo "Where the hung $key boots stopped (last console line, count):"
		echo
		sort "$BENCH_TMP/$key.stops" | uniq -c | sort -rn |
			while read -r c l; do echo "- $c x \`$l\`"; done
	done
} >"$sec"
cat "$sec"
if [ "$write" = 1 ]; then
	doc=$BENCH_TOP/docs/benchmarks.md
	doc_init "$doc"
	doc_replace "$doc" "bench-boot-hang${HANG_LABEL:+-$HANG_LABEL}" "$sec"
	echo "boot-hang.sh: updated $doc" >&2
fi
