# Broken recipes exit 2 with a message naming the problem; no VM starts.
. "$(dirname "$0")/lib.sh"
check() {
	local name=$1 pattern=$2 rc=0
	"$QCTL" run "$T/$name.yaml" >"$T/out" 2>"$T/err" || rc=$?
	expect_eq "$rc" 2 "exit code for $name"
	grep -q -- "$pattern" "$T/err" || { cat "$T/err"; fail "$name: message lacks '$pattern'"; }
}
printf 'steps: [{name: a, run: "true"}]\nbogus: 1\n' >"$T/unknown.yaml"
check unknown 'bogus'
printf 'memory: 12X\nsteps: [{name: a, run: "true"}]\n' >"$T/badsize.yaml"
check badsize 'memory'
printf 'image: minimal\n' >"$T/nosteps.yaml"
check nosteps 'steps'
printf 'steps: [{name: a, run: "true"}\n' >"$T/syntax.yaml"
check syntax 'syntax.yaml:'
printf '\x00\xff\xfe garbage' >"$T/binary.yaml"
check binary 'binary.yaml'
rc=0; "$QCTL" run "$T/does-not-exist.yaml" 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "missing recipe file"
rc=0; "$QCTL" run --no-such-flag 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "unknown option"
rc=0; "$QCTL" run --accel fast "$T/unknown.yaml" 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "bad --accel"
echo ok
