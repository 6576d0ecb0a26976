#!/bin/sh
# The "test suite": run what build.sh made and check its output.
set -e
out=$(sh out/hello)
echo "$out"
case "$out" in
"$GREETING, built on "*) echo "PASS: greeting" ;;
*) echo "FAIL: unexpected output" >&2; exit 1 ;;
esac
sha256sum -c out/MANIFEST
