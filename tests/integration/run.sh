#!/usr/bin/env bash
# Run every integration test; print a summary line CI can read.
cd "$(dirname "$0")"
pass=0 failed=0 names=()
for t in t-*.sh; do
	start=$(date +%s)
	if timeout 600 bash "$t" >"/tmp/qctl-it-$t.log" 2>&1; then
		pass=$((pass + 1)); echo "PASS $t ($(( $(date +%s) - start ))s)"
	else
		failed=$((failed + 1)); names+=("$t"); echo "FAIL $t"
		sed 's/^/    /' "/tmp/qctl-it-$t.log" | tail -40
	fi
	rm -f "/tmp/qctl-it-$t.log"
done
echo "integration: $pass passed, $failed failed"
[ "$failed" = 0 ]
