# bench/lib.sh - helpers shared by bench/run.sh, bench/boot-hang.sh, bench/cache.sh,
# bench/debian.sh and bench/libvirt.sh
# (sourced, not run).  Everything lives in $BENCH_TMP, which the caller's
# EXIT trap removes; every process started here is recorded by PID and
# killed by PID, never by name.
#
# Knobs (environment):
#   QCTL_IMAGE_DIR   image directory (default images/out/minimal)
#   QCTL_MACHINE     q35 (default) or microvm, as for qctl run
#   BENCH_APPEND     extra kernel command line, for the floor and qctl alike
#   BENCH_KERNEL     auto (default: the image's kernel_pvh if any, as qctl) or
#                    bzimage (its "kernel"), for the floor and qctl alike
#   BENCH_INITRD_COMPRESS  keep (default), none, gzip, lz4, zstd or xz:
#                    recompress the image's initrd, for both alike
#   QCTL_QEMU        QEMU binary (default qemu-system-x86_64), as for qctl

BENCH_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export LC_ALL=C
QEMU_BIN=${QCTL_QEMU:-qemu-system-x86_64}
BENCH_CHILD=		# PID of the process being timed
BENCH_WD=		# PID of its watchdog

die() {
	echo "${0##*/}: $*" >&2
	exit 1
}

# PIDs of the direct children of $1 (e.g. the QEMU under a qctl).
child_pids() {
	cat /proc/"$1"/task/*/children 2>/dev/null || true
}

# Kill $1 and its direct children by PID (SIGKILL); no name matching.
kill_tree() {
	local p=$1 c

	[ -n "$p" ] || return 0
	for c in $(child_pids "$p"); do
		kill -KILL "$c" 2>/dev/null || true
	done
	kill -KILL "$p" 2>/dev/null || true
}

# The caller's EXIT trap calls this: nothing we started may outlive us.
bench_cleanup() {
	if [ -n "$BENCH_WD" ]; then
		kill -TERM "$BENCH_WD" 2>/dev/null || true
	fi
	if [ -n "$BENCH_CHILD" ]; then
		kill_tree "$BENCH_CHILD"
		wait "$BENCH_CHILD" 2>/dev/null || true
	fi
	[ -z "$BENCH_WD" ] || wait "$BENCH_WD" 2>/dev/null || true
	[ -z "${BENCH_TMP:-}" ] || rm -rf "$BENCH_TMP"
}

# CHILDREN_CPU = user+sys seconds of all reaped children of this shell.
# (`times` must run in this shell: a subshell has no children of its own.)
children_cpu() {
	local u s

	times >"$BENCH_TMP/times"
	{
		read -r _ _
		read -r u s
	} <"$BENCH_TMP/times"
	# "1m2.345s" -> seconds
	CHILDREN_CPU=$(awk -v u="$u" -v s="$s" 'function sec(x,  m) {
		m = x; sub(/m.*/, "", m); sub(/^[0-9]+m/, "", x); sub(/s$/, "", x)
		return m * 60 + x }
		BEGIN { printf "%.3f\n", sec(u) + sec(s) }')
}

# run_timed TIMEOUT_S CMD...: run CMD in the background, kill it (and its
# children) by PID after TIMEOUT_S.  Sets T_WALL (s, fork to exit), T_CPU
# (user+sys s of CMD and everything it reaped), T_RC and T_TIMEDOUT (0|1).
# Output goes to $BENCH_OUT (default /dev/null), stderr too unless
# $BENCH_ERR names a file of its own.
run_timed() {
	local to=$1 t0 t1 c0 c1
	shift

	children_cpu
	c0=$CHILDREN_CPU
	t0=$EPOCHREALTIME
	if [ -n "${BENCH_ERR:-}" ]; then
		"$@" >"${BENCH_OUT:-/dev/null}" 2>"$BENCH_ERR" &
	else
		"$@" >"${BENCH_OUT:-/dev/null}" 2>&1 &
	fi
	BENCH_CHILD=$!
	[ -z "${BENCH_PEEK:-}" ] || "$BENCH_PEEK" "$BENCH_CHILD"
	(
		trap 'kill -TERM $s 2>/dev/null; exit 0' TERM
		sleep "$to" &
		s=$!
		wait "$s"
		echo timeout >"$BENCH_TMP/timedout"
		for c in $(child_pids "$BENCH_CHILD"); do
			kill -KILL "$c" 2>/dev/null || true
		done
		kill -KILL "$BENCH_CHILD" 2>/dev/null || true
	) &
	BENCH_WD=$!
	T_RC=0
	wait "$BENCH_CHILD" 2>/dev/null || T_RC=$?
	t1=$EPOCHREALTIME
	BENCH_CHILD=
	kill -TERM "$BENCH_WD" 2>/dev/null || true
	wait "$BENCH_WD" 2>/dev/null || true
	BENCH_WD=
	children_cpu
	c1=$CHILDREN_CPU
	T_TIMEDOUT=0
	if [ -e "$BENCH_TMP/timedout" ]; then
		T_TIMEDOUT=1
		rm -f "$BENCH_TMP/timedout"
	fi
	T_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	T_CPU=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.3f", b - a }')
}

# json_str FILE KEY: a string value of a flat JSON file without quotes or
# backslashes in values (mkimage-minimal.sh guarantees that for image.json).
json_str() {
	sed -n 's/.*"'"$2"'" *: *"\([^"\\]*\)".*/\1/p' "$1" | head -n1
}

# Compression of an initrd, by magic: none gzip xz zstd lz4 lzo bzip2 lzma.
initrd_compression() {
	local m

	m=$(od -An -tx1 -N6 "$1" | tr -d ' \n')
	case $m in
	303730373031*) echo none ;;
	1f8b*) echo gzip ;;
	fd377a585a00) echo xz ;;
	28b52ffd*) echo zstd ;;
	02214c18*) echo lz4 ;;
	894c5a4f*) echo lzo ;;
	425a68*) echo bzip2 ;;
	5d0000*) echo lzma ;;
	*) echo unknown ;;
	esac
}

decompress_cmd() {
	case $1 in
	none) echo cat ;;
	gzip) echo "gzip -dc" ;;
	xz) echo "xz -dc" ;;
	zstd) echo "zstd -dcq" ;;
	lz4) echo "lz4 -dc" ;;
	bzip2) echo "bzip2 -dc" ;;
	lzma) echo "xz -dc --format=lzma" ;;
	*) return 1 ;;
	esac
}

# The way the kernel can read each: xz only with CRC32, lz4 only legacy.
compress_cmd() {
	case $1 in
	none) echo cat ;;
	gzip) echo "gzip -n -9" ;;
	xz) echo "xz -9 --check=crc32" ;;
	zstd) echo "zstd -19 -q" ;;
	lz4) echo "lz4 -l -9 -q" ;;
	*) return 1 ;;
	esac
}

# bench_prepare_image: sets IMG_DIR, IMG_KERNEL (what qctl/image.c picks:
# the uncompressed "kernel_pvh" when the image has one, else "kernel"; the
# knob BENCH_KERNEL=bzimage forces the latter for both), IMG_INITRD (maybe
# recompressed), IMG_CMDLINE (plus BENCH_APPEND), IMG_COMPRESS, and
# BENCH_IMAGE, an image directory for qctl with exactly those.
bench_prepare_image() {
	local dir=${QCTL_IMAGE_DIR:-$BENCH_TOP/images/out/minimal} k p i c

	[ -f "$dir/image.json" ] ||
		die "$dir/image.json missing (run make image, or set QCTL_IMAGE_DIR)"
	IMG_DIR=$(cd "$dir" && pwd)
	k=$(json_str "$IMG_DIR/image.json" kernel)
	p=$(json_str "$IMG_DIR/image.json" kernel_pvh)
	i=$(json_str "$IMG_DIR/image.json" initrd)
	IMG_KERNEL=$IMG_DIR/${k:-vmlinuz}
	IMG_BOOT=bzImage
	if [ -n "$p" ] && [ -f "$IMG_DIR/$p" ] &&
		[ "${BENCH_KERNEL:-auto}" != bzimage ]; then
		IMG_KERNEL=$IMG_DIR/$p
		IMG_BOOT="PVH ($p)"
	fi
	IMG_INITRD=$IMG_DIR/${i:-initrd.img}
	IMG_CMDLINE=$(json_str "$IMG_DIR/image.json" cmdline)
	[ -f "$IMG_KERNEL" ] && [ -f "$IMG_INITRD" ] ||
		die "$IMG_DIR: kernel or initrd missing"
	IMG_CMDLINE="$IMG_CMDLINE${BENCH_APPEND:+ $BENCH_APPEND}"
	case $IMG_CMDLINE in
	*'"'* | *'\'*) die "BENCH_APPEND must not hold quotes or backslashes" ;;
	esac
	IMG_COMPRESS=$(initrd_compression "$IMG_INITRD")
	c=${BENCH_INITRD_COMPRESS:-keep}
	if [ "$c" != keep ] && [ "$c" != "$IMG_COMPRESS" ]; then
		$(decompress_cmd "$IMG_COMPRESS") <"$IMG_INITRD" |
			$(compress_cmd "$c") >"$BENCH_TMP/initrd.img" ||
			die "cannot recompress the initrd as $c"
		IMG_INITRD=$BENCH_TMP/initrd.img
		IMG_COMPRESS=$c
	fi
	# the kernel under a neutral name: qctl boots whatever "kernel" is
	BENCH_IMAGE=$BENCH_TMP/image
	mkdir -p "$BENCH_IMAGE"
	ln -s "$IMG_KERNEL" "$BENCH_IMAGE/kernel"
	ln -s "$IMG_INITRD" "$BENCH_IMAGE/initrd.img"
	printf '{"name":"bench","kernel":"kernel","initrd":"initrd.img","cmdline":"%s"}\n' \
		"$IMG_CMDLINE" >"$BENCH_IMAGE/image.json"
}

# bench_floor_initrd: FLOOR_INITRD = the image's initrd, then a second
# newc archive holding /poweroff-init, compressed like the first (the
# kernel unpacks concatenated archives, compressed or not).
bench_floor_initrd() {
	local root=$BENCH_TMP/floor-root size pad

	mkdir -p "$root"
	# no libc if we can (see poweroff-init.c), else a static libc one
	cc -static -O2 -s -nostdlib -DBENCH_NOSTDLIB -o "$root/poweroff-init" \
		"$BENCH_TOP/bench/poweroff-init.c" 2>/dev/null ||
		cc -static -O2 -s -o "$root/poweroff-init" \
			"$BENCH_TOP/bench/poweroff-init.c" ||
		die "cannot build bench/poweroff-init.c (need a static libc)"
	(cd "$root" && echo poweroff-init |
		cpio -o -H newc -R 0:0 --quiet) >"$BENCH_TMP/poweroff.cpio"
	FLOOR_INITRD=$BENCH_TMP/floor-initrd.img
	cp "$IMG_INITRD" "$FLOOR_INITRD"
	# an uncompressed archive must start 4-aligned; a compressed one must
	# follow the last without a gap (lz4's decoder takes zeros for a chunk)
	size=$(stat -c %s "$FLOOR_INITRD")
	pad=$(((4 - size % 4) % 4))
	[ "$IMG_COMPRESS" != none ] || [ "$pad" -eq 0 ] ||
		head -c "$pad" /dev/zero >>"$FLOOR_INITRD"
	$(compress_cmd "$IMG_COMPRESS") <"$BENCH_TMP/poweroff.cpio" \
		>>"$FLOOR_INITRD" ||
		die "cannot compress the floor's archive as $IMG_COMPRESS"
}

# peek_qemu_argv PID: wait (up to 10 s) for a QEMU child of PID (a qctl)
# and write its command line to $BENCH_TMP/qctl-qemu-argv, one word a line.
# Polls, so only for a warm-up run that is not measured.
peek_qemu_argv() {
	local c i

	for ((i = 0; i < 500; i++)); do
		for c in $(child_pids "$1"); do
			if tr '\0' '\n' <"/proc/$c/cmdline" 2>/dev/null |
				grep -q '^-machine$'; then
				tr '\0' '\n' <"/proc/$c/cmdline" \
					>"$BENCH_TMP/qctl-qemu-argv" || true
				return 0
			fi
		done
		sleep 0.02
	done
	return 0
}

# floor_argv MACHINE CONSOLE_LOG: FLOOR_ARGV = what qctl/qemu-argv.c
# builds, minus -S, -no-shutdown and QMP (nothing drives this VM, so its
# QEMU must start by itself and exit at power-off; qctl's reads the block
# statistics after SHUTDOWN and is told to quit): same machine options,
# CPU, memory, kernel, devices (the agent's virtio-serial port, on a null
# chardev here, and the scratch disk: a sparse file of the recipe's
# default 2G, left unformatted since no one mounts it) and sandbox; console
# to a file.  No NIC: the trivial recipe has no fetch step, so qctl gives
# it none.  The kernel runs /poweroff-init as PID 1.  Keep in step with
# qctl/qemu-argv.c; bench/run.sh prints qctl's own argv to compare.
# MACHINE is q35 or microvm, optionally with options that override qctl's
# (QEMU takes the last of a repeated key): "microvm,pit=on".
# Optional, for images other than the minimal one (unset: as above):
# FLOOR_SMP and FLOOR_MEM (MiB) what qctl gives the VM (the image's
# defaults); FLOOR_ROOT the image's rootfs.img, added read-only with
# serial qctl-root as qctl adds it; FLOOR_TB_SIZE (MiB) "-accel
# tcg,tb-size=N" as qctl says it, instead of the machine's accel=tcg;
# FLOOR_ACCEL kvm what qctl does with KVM (-accel kvm, -cpu host) instead
# of TCG (the default, tcg).
floor_argv() {
	local machine=${1%%,*} extra=${1#*,} log=$2 mopt dev blk accel=accel=tcg,
	local cpu=max

	[ "$extra" != "$1" ] || extra=
	[ -z "${FLOOR_TB_SIZE:-}" ] || accel=
	case ${FLOOR_ACCEL:-tcg} in
	tcg) ;;
	kvm) accel= cpu=host ;;
	*) die "FLOOR_ACCEL must be tcg or kvm" ;;
	esac
	case $machine in
	q35)
		mopt="q35,${accel}smbus=off,vmport=off,sata=off,usb=off,graphics=off"
		dev=virtio-serial-pci
		blk=virtio-blk-pci
		;;
	microvm)
		mopt="microvm,${accel}pit=off,pic=off,rtc=on,isa-serial=on"
		dev=virtio-serial-device
		blk=virtio-blk-device
		;;
	*) die "machine must be q35 or microvm[,OPTIONS]: $1" ;;
	esac
	[ -e "$BENCH_TMP/scratch.raw" ] || truncate -s 2G "$BENCH_TMP/scratch.raw"
	FLOOR_ARGV=("$QEMU_BIN" -name floor,debug-threads=on
		-nodefaults -no-user-config -display none -no-reboot
		-machine "$mopt${extra:+,$extra}")
	if [ "${FLOOR_ACCEL:-tcg}" = kvm ]; then
		FLOOR_ARGV+=(-accel kvm)
	elif [ -n "${FLOOR_TB_SIZE:-}" ]; then
		FLOOR_ARGV+=(-accel "tcg,tb-size=$FLOOR_TB_SIZE")
	fi
	FLOOR_ARGV+=(-cpu "$cpu" -smp "${FLOOR_SMP:-1}" -m "${FLOOR_MEM:-512}"
		-kernel "$IMG_KERNEL" -initrd "$FLOOR_INITRD"
		-append "$IMG_CMDLINE rdinit=/poweroff-init"
		-chardev "file,id=console,path=$log" -serial chardev:console
		-chardev null,id=agent -device "$dev"
		-device virtserialport,chardev=agent,name=org.qctl.agent.0
		-drive "if=none,id=disk0,file=$BENCH_TMP/scratch.raw,format=raw,discard=unmap,detect-zeroes=unmap"
		-device "$blk,drive=disk0,serial=scratch")
	[ -z "${FLOOR_ROOT:-}" ] || FLOOR_ARGV+=(
		-drive "if=none,id=disk1,file=$FLOOR_ROOT,format=raw,read-only=on"
		-device "$blk,drive=disk1,serial=qctl-root")
	FLOOR_ARGV+=(-parallel none -monitor none
		-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny)
}

# One boot of each kind, for bench/run.sh and bench/libvirt.sh.  They
# use the caller's MACHINE, TIMEOUT, QCTL and recipe (a one-step recipe),
# BENCH_TMP, QCTL_RUN_ROOT and FLOOR_INITRD (bench_floor_initrd).
# run_floor: raw QEMU (floor_argv) to its exit; sets F_WALL, F_CPU and
# F_GUEST (guest clock at power-off), or returns 1.
# run_qctl [PEEK]: `qctl run -q --accel ${BENCH_ACCEL:-tcg}` with the
# words of $QCTL_BENCH_ARGS (--no-snapshot: a cold boot); sets
# Q_WALL, Q_CPU, Q_GUEST, Q_BOOT (result.json boot_ms) and Q_ACCEL (the
# accelerator qctl used), or returns 1.
run_floor() {
	local log=$BENCH_TMP/floor-console.log g

	rm -f "$log"
	floor_argv "$MACHINE" "$log"
	BENCH_OUT=$BENCH_TMP/floor-qemu.out run_timed "$TIMEOUT" "${FLOOR_ARGV[@]}"
	g=$(guest_poweroff_time "$log")
	if [ "$T_RC" != 0 ] || [ "$T_TIMEDOUT" = 1 ] || [ "$g" = - ]; then
		echo "floor run failed (rc $T_RC, timed out $T_TIMEDOUT);" \
			"console tail:" >&2
		tail -c 600 "$log" >&2 || true
		echo >&2
		return 1
	fi
	F_WALL=$T_WALL F_CPU=$T_CPU F_GUEST=$g
}

run_qctl() { # [PEEK]: also record qctl's QEMU argv (warm-up only)
	local rd b

	BENCH_PEEK=${1:-} BENCH_OUT=$BENCH_TMP/qctl.out run_timed "$TIMEOUT" \
		"$QCTL" run -q --keep --accel "${BENCH_ACCEL:-tcg}" ${QCTL_BENCH_ARGS:-} \
		--image "$BENCH_IMAGE" "$recipe"
	rd=$(ls -d "$QCTL_RUN_ROOT"/run-* 2>/dev/null | head -n1)
	Q_GUEST=-
	Q_BOOT=-
	Q_ACCEL=-
	if [ -n "$rd" ]; then
		Q_ACCEL=$(json_get "$rd/result.json" 'r["accel"]')
		Q_GUEST=$(guest_poweroff_time "$rd/console.log")
		b=$(sed -n 's/.*"boot_ms": *\([0-9][0-9]*\).*/\1/p' \
			"$rd/result.json" 2>/dev/null | head -n1)
		[ -z "$b" ] || Q_BOOT=$(awk -v b="$b" 'BEGIN { printf "%.3f", b / 1000 }')
	fi
	if [ "$T_RC" != 0 ] || [ "$T_TIMEDOUT" = 1 ]; then
		echo "qctl run failed (rc $T_RC, timed out $T_TIMEDOUT):" >&2
		tail -n 20 "$BENCH_TMP/qctl.out" >&2 || true
		[ -z "$rd" ] || tail -c 600 "$rd/console.log" >&2 || true
		echo >&2
		[ -z "$rd" ] || rm -rf "$rd"
		return 1
	fi
	[ -z "$rd" ] || rm -rf "$rd"
	Q_WALL=$T_WALL Q_CPU=$T_CPU
}

# contend NAME "FN [ARGS]" METRIC=VAR...: one contender's turn in round
# $i of an interleaved benchmark.  FN sets the VARs; after the unrecorded
# round 0 each VAR's value is appended to $BENCH_TMP/NAME.METRIC.  C_OUT
# is the first VAR's value, or "failed" (counted in fails_NAME from
# round 1 on).
contend() {
	local name=$1 fn=$2 pair var
	shift 2
	# shellcheck disable=SC2086 # FN and its arguments are words
	if ! $fn; then
		[ "$i" -eq 0 ] || eval "fails_$name=\$((fails_$name + 1))"
		C_OUT=failed
		return 0
	fi
	var=${1#*=}
	C_OUT=${!var}
	[ "$i" -ne 0 ] || return 0
	for pair; do
		var=${pair#*=}
		echo "${!var}" >>"$BENCH_TMP/$name.${pair%%=*}"
	done
}

# The guest clock (s) at "reboot: Power down" in a console log, or "-".
guest_poweroff_time() {
	local t

	t=$(tr -d '\r' <"$1" 2>/dev/null |
		sed -n 's/.*\[ *\([0-9][0-9]*\.[0-9]*\)\] reboot: .*/\1/p' |
		tail -n1)
	echo "${t:--}"
}

# json_get FILE EXPR: a Python expression over the parsed JSON file as `r`
# (as tests/integration/lib.sh's json), or "-" when it cannot be had.
json_get() {
	python3 -c 'import json, sys
try:
    r = json.load(open(sys.argv[1])); v = eval(sys.argv[2])
except Exception:
    v = None
print("-" if v is None else v)' "$1" "$2" 2>/dev/null || echo -
}

# own_qemus STRING...: PIDs of QEMU processes whose command line holds one
# of the STRINGs (paths only this run uses: its temporary directory, its
# images).  For the check that nothing we started is left.
own_qemus() {
	local d a s

	for d in /proc/[0-9]*; do
		a=$(tr '\0' ' ' 2>/dev/null <"$d/cmdline") || continue
		case $a in
		*qemu-system*) ;;
		*) continue ;;
		esac
		for s in "$@"; do
			case $a in
			*"$s"*) echo "${d#/proc/}"; break ;;
			esac
		done
	done
}

# stats FILE: "median min max n" of the numbers in FILE ("-" lines skipped).
stats() {
	grep -v '^-$' "$1" 2>/dev/null | sort -g | awk '
		{ v[NR] = $1 }
		END {
			if (NR == 0) { print "- - - 0"; exit }
			m = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
			printf "%.3f %.3f %.3f %d\n", m, v[1], v[NR], NR
		}'
}

host_facts() {
	local cpu qv

	cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
	qv=$("$QEMU_BIN" --version | head -n1 | sed 's/^QEMU emulator version //')
	echo "- host: $(nproc) CPUs ($cpu), kernel $(uname -r)," \
		"QEMU $qv, accel tcg$( [ -e /sys/module/kvm_pvm ] &&
			echo ' (/dev/kvm is kvm_pvm: unusable for ordinary guests)')"
	echo "- load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" \
		"(other jobs share this host)"
}

# doc_init FILE: a docs/benchmarks.md with its header, unless it exists.
doc_init() {
	[ ! -e "$1" ] || return 0
	mkdir -p "$(dirname "$1")"
	cat >"$1" <<'EOF'
# Benchmarks

Generated sections below are rewritten by the scripts named in them; the
rest is written by hand.

- `bench/run.sh` (`make bench` prints it, `bench/run.sh --write` stores it):
  the floor, raw QEMU with qctl's machine, devices and options booting the
  image's kernel and initrd into a PID 1 that powers off at once, against
  `qctl run -q` of a one-step recipe running `true`; interleaved, medians,
  min/max, ratio of medians.  Target: qctl within 1.15x of the floor.
- `bench/boot-hang.sh --write`: how often a TCG boot hangs, per machine
  type, and where hung boots stop.
EOF
}

# doc_replace FILE TAG SECTION_FILE: put SECTION_FILE between
# <!-- TAG:begin --> and <!-- TAG:end --> in FILE, creating or appending.
doc_replace() {
	local doc=$1 tag=$2 sec=$3 tmp

	doc_init "$doc"
	tmp=$(mktemp "$doc.XXXXXX")
	if [ -f "$doc" ] && grep -q "^<!-- $tag:begin -->\$" "$doc"; then
		awk -v tag="$tag" -v sec="$sec" '
			$0 == "<!-- " tag ":begin -->" {
				print; while ((getline l < sec) > 0) print l
				close(sec); skip = 1; next }
			$0 == "<!-- " tag ":end -->" { skip = 0 }
			!skip' "$doc" >"$tmp"
	else
		{
			[ ! -f "$doc" ] || cat "$doc"
			echo "<!-- $tag:begin -->"
			cat "$sec"
			echo "<!-- $tag:end -->"
		} >"$tmp"
	fi
	chmod 0644 "$tmp"
	mv "$tmp" "$doc"
}

# bench_write_flag NAME ARGS...: print 1 for "--write", 0 for nothing;
# anything else is a usage error.
bench_write_flag() {
	local name=$1
	shift
	case "$#:${1:-}" in
	0:) echo 0 ;;
	1:--write) echo 1 ;;
	*) echo "usage: $name [--write]" >&2; exit 2 ;;
	esac
}
