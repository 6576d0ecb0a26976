#!/bin/sh
# run-target.sh FO NAME SECONDS TIMEOUT RSS_MB: one libFuzzer target for
# SECONDS from a scratch copy of its committed seeds (tests/fuzz/corpus/
# NAME), its log and any crash input in FO/run/NAME/.  `make fuzz` runs
# FUZZ_JOBS of these at a time; the exit status is the target's.
set -u
fo=$1 n=$2 secs=$3 tmo=$4 rss=$5
d=$fo/run/$n
rm -rf "$d"
mkdir -p "$d/corpus"
if [ -d "tests/fuzz/corpus/$n" ]; then
	cp -R "tests/fuzz/corpus/$n/." "$d/corpus/"
fi
set --
[ -f "tests/fuzz/$n.dict" ] && set -- "-dict=tests/fuzz/$n.dict"
printf '  %-8s %s (%ss)\n' FUZZ "$n" "$secs"
if ! "$fo/$n" -max_total_time="$secs" -timeout="$tmo" -rss_limit_mb="$rss" \
	-artifact_prefix="$d/" -print_final_stats=1 "$@" "$d/corpus" \
	>"$d/log" 2>&1; then
	echo "== $n FAILED; the end of $d/log:"
	tail -n 40 "$d/log"
	touch "$d/FAILED"
	exit 1
fi
