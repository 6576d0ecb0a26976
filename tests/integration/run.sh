#!/usr/bin/env bash
# Run every integration test (or those named); print a summary line CI can
# read.  A test that cannot run here exits 77 (automake's "skip") after
# saying why: it is counted and named as skipped, never as passed.
cd "$(dirname "$0")"
pass=0 failed=0 skipped=0 names=() skips=()
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(t-*.sh)
for t in "${tests[@]}"; do
	start=$(date +%s)
	rc=0
	# a log of this run's own: other checkouts may run the same test now
	log=$(mktemp "/tmp/qctl-it-$t.XXXXXX.log")
	# 10 minutes, unless the script says otherwise in a line of its own:
	# "# timeout: SECONDS" (the real builds)
	limit=$(sed -n 's/^# timeout: \([0-9][0-9]*\)$/\1/p' "$t" | head -n1)
	timeout "${limit:-600}" bash "$t" >"$log" 2>&1 || rc=$?
	[ $rc != 124 ] || echo "FAIL: killed after ${limit:-600} s (run.sh)" >>"$log"
	if [ $rc = 0 ]; then
		pass=$((pass + 1)); echo "PASS $t ($(( $(date +%s) - start ))s)"
	elif [ $rc = 77 ]; then
		skipped=$((skipped + 1)); skips+=("$t")
		echo "SKIP $t: $(grep -m1 '^SKIP' "$log" | sed 's/^SKIP:* *//')"
	else
		failed=$((failed + 1)); names+=("$t"); echo "FAIL $t ($(( $(date +%s) - start ))s)"
		sed 's/^/    /' "$log" | tail -40
		# the reason again, in case output above pushed it out of the tail
		grep -a -m3 -E '^(FAIL|==[0-9]+==ERROR|sanitizers:)' "$log" | sed 's/^/  why: /'
	fi
	rm -f "$log"
done
[ $skipped = 0 ] || echo "skipped: ${skips[*]}"
[ $failed = 0 ] || echo "failed: ${names[*]}"
echo "integration: $pass passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
