#!/bin/bash
# bench/ssh-output.sh [--write] - step output through the qctl agent against
# the same through the ssh transport, on the same VM.
#
# The VM is the debian-ssh image's (kernel, initramfs, root, cpus 1, 1 GiB)
# both times: once as built ("transport": "ssh": sshd, qctl-sshbridge), once
# from a copy of its image.json without "transport" (the initramfs's agent
# stays PID 1 and serves on virtio-serial; same root).  One step writes
# BENCH_MIB MiB (256) of 128-byte lines to stdout; `qctl run -q --json`
# records the step's duration.  Interleaved (agent, ssh, agent, ...),
# BENCH_N pairs (3).  Prints a markdown section; --write also puts it into
# docs/benchmarks.md.  Called by `make bench` when images/out/debian-ssh
# exists (make image-debian-ssh).
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

write=$(bench_write_flag "bench/ssh-output.sh" "$@")
N=${BENCH_N:-3}
MIB=${BENCH_MIB:-256}
QCTL=${BENCH_QCTL:-$BENCH_TOP/build/qctl}
IMG=${QCTL_IMAGES:-$BENCH_TOP/images/out}/debian-ssh
[[ $N =~ ^[1-9][0-9]*$ ]] || die "BENCH_N must be a positive integer"
[[ $MIB =~ ^[1-9][0-9]*$ ]] || die "BENCH_MIB must be a positive integer"
[ -x "$QCTL" ] || die "$QCTL missing (run make all)"
[ -f "$IMG/image.json" ] || die "$IMG missing (make image-debian-ssh)"

BENCH_TMP=$(mktemp -d /tmp/qctl-bench.XXXXXX)
trap bench_cleanup EXIT
trap 'exit 130' INT TERM HUP
export QCTL_RUN_ROOT=$BENCH_TMP/runs
mkdir -p "$QCTL_RUN_ROOT" "$BENCH_TMP/agent-img"
for f in vmlinuz vmlinux initrd.img rootfs.img; do
	[ ! -e "$IMG/$f" ] || ln -s "$IMG/$f" "$BENCH_TMP/agent-img/$f"
done
python3 - "$IMG/image.json" "$BENCH_TMP/agent-img/image.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m.pop("transport", None)
m["name"] = "debian-ssh-as-agent"
json.dump(m, open(sys.argv[2], "w"))
PY
line=$(printf '%0127d' 0)
for t in agent ssh; do
	img=$IMG
	[ $t = ssh ] || img=$BENCH_TMP/agent-img
	cat >"$BENCH_TMP/$t.yaml" <<R
image: $img
cpus: 1
memory: 1G
limits: {log_bytes: $((MIB + 64))M, boot_timeout: 120s, wall_time: 30m}
steps: [{name: out, run: "yes $line | head -c $((MIB << 20))"}]
R
	: >"$BENCH_TMP/$t.step"
	: >"$BENCH_TMP/$t.cpu"
done
facts=$(host_facts)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
fails=0
for i in $(seq "$N"); do
	for t in agent ssh; do
		out=$BENCH_TMP/$t-$i.json
		if "$QCTL" run -q --json "$BENCH_TMP/$t.yaml" >"$out" \
			2>"$BENCH_TMP/$t-$i.err" &&
			[ "$(json_get "$out" 'r["status"]')" = passed ]; then
			json_get "$out" 'r["steps"][0]["duration_ms"] / 1000' \
				>>"$BENCH_TMP/$t.step"
			json_get "$out" 'r["stats"]["cpu_usec"] / 1e6' \
				>>"$BENCH_TMP/$t.cpu"
		else
			fails=$((fails + 1))
			echo "ssh-output.sh: $t run $i failed: $(tail -1 "$BENCH_TMP/$t-$i.err")" >&2
		fi
	done
done
left=$(own_qemus "$BENCH_TMP" | wc -l)

sec=$BENCH_TMP/section.md
{
	echo "## Step output: the agent against the ssh transport"
	echo
	echo "\`bench/ssh-output.sh\`, $started: $MIB MiB of 128-byte lines on"
	echo "one step's stdout, the same VM (debian-ssh: 1 cpu, 1 GiB) through the"
	echo "agent (virtio-serial) and through sshd and qctl-sshbridge; $N runs"
	echo "each, interleaved; failed runs: $fails."
	echo
	echo "$facts"
	echo
	echo "| transport | step s (median) | min | max | MiB/s (median) | QEMU CPU s (median) |"
	echo "| --- | ---: | ---: | ---: | ---: | ---: |"
	for t in agent ssh; do
		read -r med min max _ < <(stats "$BENCH_TMP/$t.step")
		read -r cmed _ _ _ < <(stats "$BENCH_TMP/$t.cpu")
		rate=$(awk -v m="$MIB" -v s="$med" 'BEGIN { if (s > 0) printf "%.1f", m / s; else print "-" }')
		echo "| $t | $med | $min | $max | $rate | $cmed |"
	done
	echo
	echo "QEMU processes of this run left at the end: $left."
} >"$sec"
cat "$sec"
if [ "$write" = 1 ]; then
	doc=$BENCH_TOP/docs/benchmarks.md
	doc_replace "$doc" bench-ssh-output "$sec"
	echo "ssh-output.sh: updated $doc" >&2
fi
