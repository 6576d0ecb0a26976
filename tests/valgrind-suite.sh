#!/bin/sh
# valgrind-suite.sh VALGRIND_FLAGS_FILE LOGDIR SUITE [SKIP-FILTER]: one unit
# suite under memcheck for `make check-valgrind`, one log per process in
# LOGDIR/SUITE/.  Exit 1, showing why, if the suite failed or any log has
# a memcheck error or a definite leak (criterion ignores how a worker
# exits, so the logs decide).
set -f	# the flags hold globs for valgrind, not for the shell
flags=$(cat "$1")
t=$3
n=${t##*/}
d=$2/$n
mkdir -p "$d"
printf '  %-8s %s\n' VALGRIND "$n"
rc=0
# shellcheck disable=SC2086 # flags are words
valgrind $flags --log-file="$d/%p.log" "$t" --jobs=1 \
	${4:+--filter "!($4)"} >"$d/out" 2>&1 || { tail -n 20 "$d/out"; rc=1; }
set +f
bad=$(grep -lE 'ERROR SUMMARY: [1-9]|== (Invalid|Jump to|Conditional jump|Use of uninitialised|Syscall param|Mismatched|Source and destination|Argument .* of function)' "$d"/*.log)
for l in $bad; do
	echo "== $l"
	grep -v '^==[0-9]*== *$' "$l" | head -n 60
	rc=1
done
[ "$rc" = 0 ] || echo "check-valgrind: $n FAILED"
exit $rc
