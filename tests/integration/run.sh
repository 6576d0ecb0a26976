#!/usr/bin/env bash
# Run every integration test (or those named); print a summary line CI can
# read.  A test that cannot run here exits 77 (automake's "skip") after
# saying why: it is counted and named as skipped, never as passed.
#
# QCTL_IT_JOBS scripts run at a time (default 1).  Each script has its own
# temp dir, run root, state dir, namespaces and ports, so they do not meet;
# a script with a "# timeout:" line (the real builds, the longest) starts
# first so that the short ones fill the other slots meanwhile.
cd "$(dirname "$0")"
jobs=${QCTL_IT_JOBS:-1}
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(t-*.sh)
res=$(mktemp -d /tmp/qctl-it-run.XXXXXX)
trap 'rm -rf "$res"' EXIT

limit_of() { sed -n 's/^# timeout: \([0-9][0-9]*\)$/\1/p' "$1" | head -n1; }

# the declared long ones first, in the order given; then the rest
order=()
for t in "${tests[@]}"; do [ -n "$(limit_of "$t")" ] && order+=("$t"); done
for t in "${tests[@]}"; do [ -n "$(limit_of "$t")" ] || order+=("$t"); done

# run_one T: the script under its time limit; its status and time go to
# $res, its output to a log of this run's own (other checkouts may run the
# same test now)
run_one() {
	local t=$1 start rc=0 log limit
	start=$(date +%s)
	log=$(mktemp "/tmp/qctl-it-$t.XXXXXX.log")
	# 10 minutes, unless the script says otherwise in a line of its own:
	# "# timeout: SECONDS" (the real builds)
	limit=$(limit_of "$t")
	timeout "${limit:-600}" bash "$t" >"$log" 2>&1 || rc=$?
	[ $rc != 124 ] || echo "FAIL: killed after ${limit:-600} s (run.sh)" >>"$log"
	echo "$rc $(( $(date +%s) - start )) $log" >"$res/$t"
}

# report T: one line (and a failure's log) as the script ends
report() {
	local t=$1 rc secs log
	read -r rc secs log <"$res/$t"
	if [ "$rc" = 0 ]; then
		echo "PASS $t (${secs}s)"
	elif [ "$rc" = 77 ]; then
		echo "SKIP $t: $(grep -m1 '^SKIP' "$log" | sed 's/^SKIP:* *//')"
	else
		echo "FAIL $t (${secs}s)"
		sed 's/^/    /' "$log" | tail -40
		# the reason again, in case output above pushed it out of the tail
		grep -a -m3 -E '^(FAIL|==[0-9]+==ERROR|sanitizers:)' "$log" | sed 's/^/  why: /'
	fi
	rm -f "$log"
}

declare -A pid_of=()	# script -> its runner's pid, while it runs
reported=()
reap() { # report every finished script once
	local t
	for t in "${!pid_of[@]}"; do
		kill -0 "${pid_of[$t]}" 2>/dev/null && continue
		wait "${pid_of[$t]}" 2>/dev/null
		unset "pid_of[$t]"
		[ -s "$res/$t" ] ||
			echo "1 0 /dev/null" >"$res/$t"	# its runner died
		report "$t"
		reported+=("$t")
	done
}
for t in "${order[@]}"; do
	while [ ${#pid_of[@]} -ge "$jobs" ]; do
		wait -n 2>/dev/null || true
		reap
	done
	run_one "$t" &
	pid_of[$t]=$!
done
while [ ${#pid_of[@]} -gt 0 ]; do
	wait -n 2>/dev/null || true
	reap
done

pass=0 failed=0 skipped=0 names=() skips=()
for t in "${order[@]}"; do
	read -r rc _ <"$res/$t"
	case $rc in
	0) pass=$((pass + 1)) ;;
	77) skipped=$((skipped + 1)); skips+=("$t") ;;
	*) failed=$((failed + 1)); names+=("$t") ;;
	esac
done
[ $skipped = 0 ] || echo "skipped: ${skips[*]}"
[ $failed = 0 ] || echo "failed: ${names[*]}"
echo "integration: $pass passed, $failed failed, $skipped skipped ($jobs at a time)"
[ "$failed" = 0 ]
