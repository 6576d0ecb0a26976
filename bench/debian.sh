#!/bin/bash
# bench/debian.sh [--write] - the debian builder image (issue 10): how long
# it takes to reach a build's first step, whether that grows with the
# base's size, and how long a real package build takes.
#
# 1. Boot to first step.  Interleaved rounds (one unrecorded warm-up round
#    first) of:
#      floor    raw qemu-system-x86_64 with qctl's machine options and the
#               debian image's CPUs and memory, booting its kernel and
#               initrd plus bench/poweroff-init as rdinit, with the same
#               disks qctl gives it (rootfs.img read-only, serial
#               qctl-root; a 2G scratch disk): fork to QEMU's exit.
#      minimal, debian, debian at 1 CPU / 512M (the minimal image's VM),
#               debian at 2 CPUs / 512M
#               `qctl run --json --image DIR` of `steps: [{name: t, run:
#               "true"}]`: the result's steps[0].started_ms (build start
#               to the step's EXEC) and the wall time of the whole run.
# 2. Start-up against base size.  Two bases made in BENCH_TMP from a copy
#    of the debian image's rootfs.img (images/out is never written):
#    "small" (resize2fs -M) and "big" (grown to BENCH_BIG_SIZE, with
#    BENCH_FILL_MIB of /dev/urandom written into its file system by
#    debugfs).  The trivial recipe interleaved on both, warm; then one run
#    each with only that base's rootfs.img evicted from the page cache
#    (posix_fadvise DONTNEED on that one file: the shared host's cache is
#    otherwise left alone).
# 3. examples/debian-hello.yaml once: wall time, boot, each step.
# Prints a markdown section on stdout; --write also puts it into
# docs/benchmarks.md.  Called by `make bench` when images/out/debian exists.
#
# Knobs (environment): BENCH_N rounds (5), BENCH_TIMEOUT seconds per
# trivial run (180), BENCH_HELLO=0 skips the hello build,
# BENCH_HELLO_TIMEOUT (2700 s; the recipe's own wall_time is 40m),
# BENCH_BIG_SIZE (5G), BENCH_FILL_MIB (4096), BENCH_COLD=0 skips the cold
# runs, QCTL_DEBIAN_DIR (images/out/debian), QCTL_MINIMAL_DIR
# (images/out/minimal), BENCH_QCTL (build/qctl), QCTL_MACHINE (q35).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=$(bench_write_flag "bench/debian.sh" "$@")
N=${BENCH_N:-5}
TIMEOUT=${BENCH_TIMEOUT:-180}
HELLO=${BENCH_HELLO:-1}
HELLO_TIMEOUT=${BENCH_HELLO_TIMEOUT:-2700}
BIG_SIZE=${BENCH_BIG_SIZE:-5G}
FILL_MIB=${BENCH_FILL_MIB:-4096}
COLD=${BENCH_COLD:-1}
MACHINE=${QCTL_MACHINE:-q35}
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
DEB_DIR=${QCTL_DEBIAN_DIR:-$BENCH_TOP/images/out/debian}
MIN_DIR=${QCTL_MINIMAL_DIR:-$BENCH_TOP/images/out/minimal}
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
[[ $FILL_MIB =~ ^[0-9]+$ ]] || die "BENCH_FILL_MIB must be a number"
[ -x "$QCTL" ] || die "$QCTL missing (run make all)"
[ -f "$DEB_DIR/image.json" ] || die "$DEB_DIR missing (run make image-debian)"
[ -f "$MIN_DIR/image.json" ] || die "$MIN_DIR missing (run make image)"
command -v "$QEMU_BIN" >/dev/null || die "$QEMU_BIN not found"
for t in python3 resize2fs e2fsck debugfs dumpe2fs fincore; do
	command -v "$t" >/dev/null || die "$t not found"
done
# The qctl runs boot the images as they are; the floor must boot the same.
[ -z "${BENCH_APPEND:-}${BENCH_KERNEL:-}" ] &&
	[ "${BENCH_INITRD_COMPRESS:-keep}" = keep ] ||
	die "BENCH_APPEND, BENCH_KERNEL and BENCH_INITRD_COMPRESS are for bench/run.sh"
DEB_DIR=$(cd "$DEB_DIR" && pwd)
MIN_DIR=$(cd "$MIN_DIR" && pwd)
DEB_ROOT=$DEB_DIR/$(json_get "$DEB_DIR/image.json" 'r["root"]')
[ -f "$DEB_ROOT" ] || die "$DEB_DIR: no root image"

BENCH_TMP=$(mktemp -d /tmp/qctl-bench-debian.XXXXXX)
# Nothing we started may outlive us: the timed child by PID (lib.sh), and
# any QEMU whose command line names our temporary directory or images.
debian_cleanup() {
	local p

	bench_cleanup
	for p in $(own_qemus "$BENCH_TMP" "$DEB_DIR/" "$MIN_DIR/"); do
		kill -KILL "$p" 2>/dev/null || true
	done
}
trap debian_cleanup EXIT
trap 'exit 130' INT TERM HUP

t_start=$EPOCHREALTIME
started=$(date -u '+%Y-%m-%d %H:%M UTC')
facts=$(host_facts)
export QCTL_RUN_ROOT=$BENCH_TMP/runs QCTL_MACHINE=$MACHINE
mkdir -p "$QCTL_RUN_ROOT"
recipe=$BENCH_TMP/trivial.yaml
printf 'steps: [{name: t, run: "true"}]\n' >"$recipe"
# the debian image in the minimal image's VM, and with its CPUs but not
# its memory: what the bigger VM costs, apart from the root disk
recipe_1c=$BENCH_TMP/trivial-1cpu.yaml
printf 'cpus: 1\nmemory: 512M\nsteps: [{name: t, run: "true"}]\n' >"$recipe_1c"
recipe_2c=$BENCH_TMP/trivial-2cpu.yaml
printf 'cpus: 2\nmemory: 512M\nsteps: [{name: t, run: "true"}]\n' >"$recipe_2c"

# The floor boots the debian image as qctl does (see floor_argv).
QCTL_IMAGE_DIR=$DEB_DIR bench_prepare_image
bench_floor_initrd
deb_cpus=$(json_get "$DEB_DIR/image.json" 'r.get("cpus", 1)')
deb_mib=$(json_get "$DEB_DIR/image.json" 'r.get("memory", 512 << 20) >> 20')
export FLOOR_SMP=$deb_cpus FLOOR_MEM=$deb_mib FLOOR_ROOT=$DEB_ROOT
export FLOOR_TB_SIZE=256 # LIMIT_TCG_TB_MIB, as qctl/qemu-argv.c says it

ms_to_s() {
	awk -v m="$1" 'BEGIN { if (m == "-") print "-"; else printf "%.3f", m / 1000 }'
}

run_floor() {
	local log=$BENCH_TMP/floor-console.log

	rm -f "$log"
	floor_argv "$MACHINE" "$log"
	BENCH_OUT=$BENCH_TMP/floor-qemu.out run_timed "$TIMEOUT" "${FLOOR_ARGV[@]}"
	if [ "$T_RC" != 0 ] || [ "$T_TIMEDOUT" = 1 ] ||
		[ "$(guest_poweroff_time "$log")" = - ]; then
		echo "floor run failed (rc $T_RC, timed out $T_TIMEDOUT);" \
			"console tail:" >&2
		tail -c 600 "$log" >&2 || true
		echo >&2
		return 1
	fi
	R_WALL=$T_WALL
}

# run_trivial IMAGE_DIR [RECIPE]: sets R_FIRST (steps[0].started_ms),
# R_BOOT (boot_ms) and R_WALL (fork to exit), in seconds.
run_trivial() {
	local out=$BENCH_TMP/result.json v

	rm -f "$out"
	BENCH_OUT=$out BENCH_ERR=$BENCH_TMP/qctl.err run_timed "$TIMEOUT" \
		"$QCTL" run --json -q --accel tcg --image "$1" "${2:-$recipe}"
	v=$(json_get "$out" '"%d %d" % (r["steps"][0]["started_ms"],
		r["stats"]["boot_ms"]) if r["status"] == "passed" else None')
	if [ "$T_RC" != 0 ] || [ "$T_TIMEDOUT" = 1 ] || [ "$v" = - ]; then
		echo "qctl run --image $1 failed (rc $T_RC, timed out" \
			"$T_TIMEDOUT):" >&2
		tail -n 20 "$BENCH_TMP/qctl.err" >&2 || true
		return 1
	fi
	R_FIRST=$(ms_to_s "${v% *}")
	R_BOOT=$(ms_to_s "${v#* }")
	R_WALL=$T_WALL
}

# record KIND ROUND: append the last run's figures (not of round 0).
record() {
	[ "$2" -gt 0 ] || return 0
	echo "$R_WALL" >>"$BENCH_TMP/$1.wall"
	[ "$1" = floor ] && return 0
	echo "$R_FIRST" >>"$BENCH_TMP/$1.first"
	echo "$R_BOOT" >>"$BENCH_TMP/$1.boot"
}

declare -A fails
# one KIND ROUND CMD...: run, record, count a failure, say how it went.
one() {
	local kind=$1 round=$2
	shift 2

	if "$@"; then
		record "$kind" "$round"
		if [ "$kind" = floor ]; then
			printf ' %s %s s' "$kind" "$R_WALL" >&2
		else
			printf ' %s %s/%s s' "$kind" "$R_FIRST" "$R_WALL" >&2
		fi
	else
		[ "$round" -eq 0 ] || fails[$kind]=$((${fails[$kind]:-0} + 1))
		printf ' %s failed' "$kind" >&2
	fi
}

round_label() {
	if [ "$1" -eq 0 ]; then
		printf 'warm-up:' >&2
	else
		printf 'round %d/%d:' "$1" "$N" >&2
	fi
}

# --- 1. boot to first step ------------------------------------------------
echo "== 1. boot to first step: floor, minimal, debian, debian 1 CPU, debian 2 CPUs 512M" >&2
for i in $(seq 0 "$N"); do
	round_label "$i"
	one floor "$i" run_floor
	one minimal "$i" run_trivial "$MIN_DIR"
	one debian "$i" run_trivial "$DEB_DIR"
	one debian1 "$i" run_trivial "$DEB_DIR" "$recipe_1c"
	one debian2 "$i" run_trivial "$DEB_DIR" "$recipe_2c"
	echo >&2
done

# --- 2. start-up against base size ----------------------------------------
echo "== 2. bases: small (resize2fs -M) and big ($BIG_SIZE, $FILL_MIB MiB filler)" >&2
t_bases=$EPOCHREALTIME
# make_base NAME: an image directory of symlinks to the debian image's
# kernels and initrd, its own copy of rootfs.img, image.json adjusted.
make_base() {
	local d=$BENCH_TMP/base-$1 f

	mkdir -p "$d"
	for f in vmlinux vmlinuz initrd.img; do
		[ ! -e "$DEB_DIR/$f" ] || ln -s "$DEB_DIR/$f" "$d/$f"
	done
	cp --sparse=always "$DEB_ROOT" "$d/rootfs.img"
	# resize2fs wants a file system checked since its last change
	e2fsck -fy "$d/rootfs.img" >"$BENCH_TMP/e2fsck-$1.log" 2>&1 ||
		die "e2fsck of the $1 copy failed"
}
make_base small
resize2fs -M "$BENCH_TMP/base-small/rootfs.img" >"$BENCH_TMP/resize-small.log" 2>&1 ||
	die "resize2fs -M failed: $(tail -n3 "$BENCH_TMP/resize-small.log")"
make_base big
truncate -s "$BIG_SIZE" "$BENCH_TMP/base-big/rootfs.img"
resize2fs "$BENCH_TMP/base-big/rootfs.img" >"$BENCH_TMP/resize-big.log" 2>&1 ||
	die "resize2fs to $BIG_SIZE failed: $(tail -n3 "$BENCH_TMP/resize-big.log")"
if [ "$FILL_MIB" -gt 0 ]; then
	# real data, not holes or zeros: the file must take the space
	head -c "${FILL_MIB}M" /dev/urandom >"$BENCH_TMP/filler"
	debugfs -w -R "write $BENCH_TMP/filler /filler" \
		"$BENCH_TMP/base-big/rootfs.img" >"$BENCH_TMP/debugfs.log" 2>&1 ||
		die "debugfs write failed: $(tail -n3 "$BENCH_TMP/debugfs.log")"
	rm -f "$BENCH_TMP/filler"
fi
declare -A size_app size_alloc size_used size_fill
for b in small big; do
	f=$BENCH_TMP/base-$b/rootfs.img
	e2fsck -fn "$f" >"$BENCH_TMP/check-$b.log" 2>&1 ||
		die "e2fsck -fn of the $b base: $(tail -n5 "$BENCH_TMP/check-$b.log")"
	python3 - "$DEB_DIR/image.json" "$BENCH_TMP/base-$b/image.json" \
		"debian-$b" "$(stat -c %s "$f")" <<'P'
import json, sys
m = json.load(open(sys.argv[1]))
m["name"], m["root_bytes"] = sys.argv[3], int(sys.argv[4])
json.dump(m, open(sys.argv[2], "w"))
P
	size_app[$b]=$(stat -c %s "$f")
	size_alloc[$b]=$(($(stat -c '%b * %B' "$f")))
	size_used[$b]=$(dumpe2fs -h "$f" 2>/dev/null | awk -F: '
		/^Block count/ { c = $2 } /^Free blocks/ { f = $2 }
		/^Block size/ { s = $2 } END { print (c - f) * s }')
	size_fill[$b]=$(debugfs -R "stat /filler" "$f" 2>/dev/null |
		sed -n 's/.*Size: \([0-9]*\).*/\1/p' | head -n1)
done
t_bases=$(awk -v a="$t_bases" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')

mib() { awk -v b="$1" 'BEGIN { if (b == "") print "-"; else printf "%.0f", b / 1048576 }'; }
echo "small: $(mib "${size_app[small]}") MiB apparent, $(mib "${size_alloc[small]}") MiB allocated;" \
	"big: $(mib "${size_app[big]}") MiB apparent, $(mib "${size_alloc[big]}") MiB allocated" \
	"(made in ${t_bases} s)" >&2
for i in $(seq 0 "$N"); do
	round_label "$i"
	one small "$i" run_trivial "$BENCH_TMP/base-small"
	one big "$i" run_trivial "$BENCH_TMP/base-big"
	echo >&2
done

# The cold runs: only the base's own file leaves the page cache.
evict() {
	sync "$1"
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)' "$1"
}
# resident FILE: bytes of FILE in the page cache.
resident() {
	fincore -bno RES "$1" 2>/dev/null | awk '{ print $1 + 0 }'
}
declare -A cold_first cold_wall cold_before cold_read
if [ "$COLD" = 1 ]; then
	printf 'cold (rootfs.img evicted):' >&2
	for b in small big; do
		f=$BENCH_TMP/base-$b/rootfs.img
		evict "$f"
		cold_before[$b]=$(resident "$f")
		if run_trivial "$BENCH_TMP/base-$b"; then
			cold_first[$b]=$R_FIRST cold_wall[$b]=$R_WALL
			cold_read[$b]=$(resident "$f")
			printf ' %s %s/%s s' "$b" "$R_FIRST" "$R_WALL" >&2
		else
			fails[cold-$b]=1
			cold_first[$b]=- cold_wall[$b]=- cold_read[$b]=
			printf ' %s failed' "$b" >&2
		fi
	done
	echo >&2
fi

# --- 3. the hello build ---------------------------------------------------
hello_status=skipped
if [ "$HELLO" != 0 ]; then
	echo "== 3. examples/debian-hello.yaml (10-15 min under TCG)" >&2
	hout=$BENCH_TMP/hello.json
	BENCH_OUT=$hout BENCH_ERR=$BENCH_TMP/hello.err run_timed "$HELLO_TIMEOUT" \
		"$QCTL" run --json --accel tcg --image "$DEB_DIR" \
		--artifacts "$BENCH_TMP/hello-artifacts" \
		"$BENCH_TOP/examples/debian-hello.yaml"
	hello_rc=$T_RC hello_wall=$T_WALL
	hello_status=$(json_get "$hout" 'r["status"]')
	[ "$T_TIMEDOUT" = 0 ] || hello_status="killed after ${HELLO_TIMEOUT} s"
	if [ "$hello_rc" != 0 ]; then
		fails[hello]=1
		echo "hello build failed (rc $hello_rc, $hello_status):" >&2
		tail -n 30 "$BENCH_TMP/hello.err" >&2 || true
	fi
	echo "hello: $hello_status in $hello_wall s" >&2
fi

# --- leftovers and the report ---------------------------------------------
left=$(own_qemus "$BENCH_TMP" "$DEB_DIR/" "$MIN_DIR/" | wc -l)
t_total=$(awk -v a="$t_start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", (b - a) / 60 }')

# row LABEL KIND: a table row of first-step and wall statistics.
row() {
	local fm fmin fmax wm wmin wmax wn bm

	read -r wm wmin wmax wn < <(stats "$BENCH_TMP/$2.wall")
	if [ "$2" = floor ]; then
		fm=- fmin=- fmax=- bm=-
	else
		read -r fm fmin fmax _ < <(stats "$BENCH_TMP/$2.first")
		read -r bm _ _ _ < <(stats "$BENCH_TMP/$2.boot")
	fi
	echo "| $1 | $wn | $fm | $fmin | $fmax | $bm | $wm | $wmin | $wmax |"
}
med() { stats "$BENCH_TMP/$1" | cut -d' ' -f1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2f", a / b }'; }
samples() { paste -sd' ' "$BENCH_TMP/$1" 2>/dev/null || echo -; }
nfails() { echo "${fails[$1]:-0}"; }

envs="BENCH_N=$N"
[ "$HELLO" != 0 ] || envs="$envs BENCH_HELLO=0"
[ "$COLD" = 1 ] || envs="$envs BENCH_COLD=0"
[ "$BIG_SIZE" = 5G ] || envs="$envs BENCH_BIG_SIZE=$BIG_SIZE"
[ "$FILL_MIB" = 4096 ] || envs="$envs BENCH_FILL_MIB=$FILL_MIB"
[ "$MACHINE" = q35 ] || envs="$envs QCTL_MACHINE=$MACHINE"
[ -z "${BENCH_QCTL:-}" ] || envs="$envs BENCH_QCTL=$BENCH_QCTL"
[ "$DEB_DIR" = "$BENCH_TOP/images/out/debian" ] || envs="$envs QCTL_DEBIAN_DIR=$DEB_DIR"
[ "$MIN_DIR" = "$BENCH_TOP/images/out/minimal" ] || envs="$envs QCTL_MINIMAL_DIR=$MIN_DIR"
drel=${DEB_DIR#"$BENCH_TOP"/}
mrel=${MIN_DIR#"$BENCH_TOP"/}
for k in floor minimal debian debian1 debian2 small big; do
	: >>"$BENCH_TMP/$k.wall"
	[ "$k" = floor ] || : >>"$BENCH_TMP/$k.first"
done

sec=$BENCH_TMP/section.md
{
	echo "## The debian image: boot to first step, base size, hello build"
	echo
	echo "Measured $started with \`$envs bench/debian.sh --write\`"
	echo "(\`make bench\` runs it with the defaults when $drel exists);"
	echo "the whole script took $t_total min. Machine $MACHINE, TCG; images"
	echo "$mrel and $drel (kernel booted as $IMG_BOOT, initrd compression"
	echo "$IMG_COMPRESS), $("$QCTL" version 2>&1 | head -n1)."
	echo
	echo "$facts"
	echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo
	echo "### Boot to first step"
	echo
	echo "\`qctl run --json --image DIR\` of \`steps: [{name: t, run: \"true\"}]\`:"
	echo "*first step* is the result's \`steps[0].started_ms\`, from the start"
	echo "of the build (run directory made) to the step's EXEC, so it holds"
	echo "the scratch disk's mkfs, QEMU's start, the boot, the agent's set-up"
	echo "(for debian: finding both disks, the overlay, the chroot) and the"
	echo "manager's set-up EXEC; *boot* is \`boot_ms\` (QEMU spawn to HELLO);"
	echo "*wall* is fork to exit of the whole \`qctl run\`. Without \`cpus\` and"
	echo "\`memory\` in the recipe, minimal gets 1 CPU and 512 MiB and debian"
	echo "its image's $deb_cpus CPUs and $deb_mib MiB; the last two rows are debian"
	echo "with \`cpus: 1, memory: 512M\` (minimal's VM) and \`cpus: 2, memory:"
	echo "512M\`, to tell the root disk's cost from the bigger VM's. The floor is raw QEMU with qctl's"
	echo "machine options, debian's $deb_cpus CPUs and $deb_mib MiB, its kernel and initrd"
	echo "into \`rdinit=/poweroff-init\`, and the same two disks (rootfs.img"
	echo "read-only with serial qctl-root, a 2G scratch disk): fork to QEMU's"
	echo "exit, so its only column is wall. The five alternate, in this order,"
	echo "after one unrecorded round."
	echo
	echo "| | runs | first step median s | min | max | boot median s | wall median s | min | max |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	row "floor: raw QEMU, debian's kernel, initrd, disks; PID 1 powers off" floor
	row "qctl, minimal" minimal
	row "qctl, debian ($deb_cpus CPUs, $deb_mib MiB)" debian
	row "qctl, debian at 1 CPU, 512 MiB" debian1
	row "qctl, debian at 2 CPUs, 512 MiB" debian2
	echo
	echo "| ratio of medians | first step | wall |"
	echo "| --- | ---: | ---: |"
	echo "| debian / minimal | **$(ratio "$(med debian.first)" "$(med minimal.first)")** | $(ratio "$(med debian.wall)" "$(med minimal.wall)") |"
	echo "| debian 1 CPU 512 MiB / minimal | $(ratio "$(med debian1.first)" "$(med minimal.first)") | $(ratio "$(med debian1.wall)" "$(med minimal.wall)") |"
	echo "| debian 2 CPUs 512 MiB / minimal | $(ratio "$(med debian2.first)" "$(med minimal.first)") | $(ratio "$(med debian2.wall)" "$(med minimal.wall)") |"
	echo "| debian / floor (floor: fork to exit) | **$(ratio "$(med debian.first)" "$(med floor.wall)")** | $(ratio "$(med debian.wall)" "$(med floor.wall)") |"
	echo
	echo "Failed runs: floor $(nfails floor), minimal $(nfails minimal), debian"
	echo "$(nfails debian), debian 1 CPU $(nfails debian1), debian 2 CPUs 512 MiB $(nfails debian2)."
	echo "Samples in run order (s): floor $(samples floor.wall); first step"
	echo "minimal $(samples minimal.first); debian $(samples debian.first);"
	echo "debian 1 CPU $(samples debian1.first); debian 2 CPUs 512 MiB $(samples debian2.first)."
	echo
	echo "### Per-build start-up against the base's size"
	echo
	echo "Two bases made from a copy of $drel/rootfs.img (the image itself is"
	echo "never written): *small*, \`resize2fs -M\` of the copy, and *big*, a"
	echo "copy grown to $BIG_SIZE with \`resize2fs\` and $FILL_MIB MiB from"
	echo "/dev/urandom written into its file system as \`/filler\` by \`debugfs"
	echo "-w -R write\` (no mount); \`e2fsck -fn\` clean afterwards. Each is an"
	echo "image directory of symlinks to debian's kernels and initrd, its own"
	echo "rootfs.img and a copy of image.json; making both took $t_bases s."
	echo
	echo "| base | rootfs.img apparent MiB | allocated MiB | file system used MiB | /filler MiB |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	for b in small big; do
		echo "| $b | $(mib "${size_app[$b]}") | $(mib "${size_alloc[$b]}") | $(mib "${size_used[$b]}") | $(mib "${size_fill[$b]:-}") |"
	done
	echo
	echo "The trivial recipe on each, interleaved (small, big), one unrecorded"
	echo "run of each first: both are measured **warm**, their rootfs.img in the"
	echo "host's page cache (the big one was just written)."
	echo
	echo "| | runs | first step median s | min | max | boot median s | wall median s | min | max |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	row "small base, warm" small
	row "big base, warm" big
	echo
	echo "Ratio of medians big / small: first step **$(ratio "$(med big.first)" "$(med small.first)")**,"
	echo "wall $(ratio "$(med big.wall)" "$(med small.wall)"). Failed runs: small $(nfails small), big $(nfails big)."
	echo "Samples in run order (first step, s): small $(samples small.first);"
	echo "big $(samples big.first)."
	if [ "$COLD" = 1 ]; then
		echo
		echo "One **cold** run each afterwards: only that base's rootfs.img was"
		echo "dropped from the page cache first (\`posix_fadvise(DONTNEED)\` on"
		echo "the file, after \`sync\`; the rest of the shared host's cache, QEMU,"
		echo "kernel and initrd included, stays warm: no \`drop_caches\`). *Read*"
		echo "is how much of rootfs.img was in the page cache after the run"
		echo "(\`fincore\`), i.e. what the build read from its base."
		echo
		echo "| base, cold | first step s | wall s | resident before MiB | read by the build MiB |"
		echo "| --- | ---: | ---: | ---: | ---: |"
		for b in small big; do
			echo "| $b | ${cold_first[$b]} | ${cold_wall[$b]} | $(mib "${cold_before[$b]}") | $(mib "${cold_read[$b]}") |"
		done
	fi
	echo
	echo "### The hello build"
	echo
	if [ "$HELLO" = 0 ]; then
		echo "Skipped (\`BENCH_HELLO=0\`)."
	else
		echo "\`qctl run --json --image $drel examples/debian-hello.yaml\`, once,"
		echo "after the runs above: $hello_status (exit $hello_rc), wall time"
		awk -v w="$hello_wall" 'BEGIN { printf "%.0f s (%.1f min)\n", w, w / 60 }'
		echo "fork to exit; result \`wall_ms\` $(ms_to_s "$(json_get "$hout" 'r["stats"]["wall_ms"]')") s,"
		echo "\`boot_ms\` $(ms_to_s "$(json_get "$hout" 'r["stats"]["boot_ms"]')") s."
		echo
		echo "| step | started s | duration s | exit |"
		echo "| --- | ---: | ---: | ---: |"
		json_get "$hout" '"\n".join("| %s | %.1f | %.1f | %s |" % (s["name"],
			s["started_ms"] / 1000, s["duration_ms"] / 1000,
			s["exit_code"]) for s in r["steps"] if s.get("started_ms") is not None)'
	fi
	echo
	echo "QEMU processes of this run left at the end: $left."
} >"$sec"
cat "$sec"
if [ "$write" = 1 ]; then
	doc=$BENCH_TOP/docs/benchmarks.md
	doc_replace "$doc" bench-debian "$sec"
	echo "debian.sh: updated $doc" >&2
fi
