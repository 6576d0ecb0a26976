# Shared helpers for integration tests (sourced).  Each test runs in its own
# temp dir, with its own run root, and must leave no QEMU behind.
#
# The programs under test are in $QCTL_BUILD: build/ by default, build/san
# under `make integration SANITIZE=1`.  A script names every program of the
# build through it ("$QCTL_BUILD/qctl-proxy"), never as build/...; one that
# compiles a driver against that build's libraries uses $QCTL_CC and
# $QCTL_CFLAGS (the sanitized build's -fsanitize flags; empty otherwise).
# QCTL_SANITIZE is 1 for the sanitized build: only for what ASan changes
# (memory use, speed), never to skip a check of qctl's behaviour.
set -euo pipefail
TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
QCTL_BUILD=${QCTL_BUILD:-$TOP/build}
QCTL_CC=${QCTL_CC:-cc}
QCTL_CFLAGS=${QCTL_CFLAGS:-}
QCTL="$QCTL_BUILD/qctl"
T=$(mktemp -d /tmp/qctl-it.XXXXXX)
export QCTL_RUN_ROOT="$T/runs"
export QCTL_STATE_DIR="$T/state"
export QCTL_IMAGES="${QCTL_IMAGES:-$TOP/images/out}"
trap 'cleanup_test' EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# QEMU processes of runs under this test's run root (its VM names carry
# the run id, "qctl-run-XXXXXX").
qemu_pids_of_test() {
	local p
	for p in /proc/[0-9]*; do
		[ -r "$p/cmdline" ] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "qemu-system.*-name qctl-run-" || continue
		local id
		id=$(tr '\0' '\n' <"$p/cmdline" | grep -A1 -x -- -name | tail -1 | sed 's/^qctl-//; s/,.*//')
		[ -e "$QCTL_RUN_ROOT/$id" ] && echo "${p#/proc/}"
	done
	return 0
}

# Background qctl processes a test started; killed on the way out.
BG_PIDS=()
# Network namespaces a test made; deleted on the way out.
TEST_NETNS=()

# test_netns: make a namespace with loopback up; its name goes to $NS.
# The manager and the upstream servers of network tests live in it, so no
# packet ever leaves this machine.
test_netns() {
	NS="qctl-it-$$-${#TEST_NETNS[@]}"
	ip netns add "$NS"
	TEST_NETNS+=("$NS")
	ip netns exec "$NS" ip link set lo up
}

# in_ns CMD...: run a command inside the test namespace.  For a background
# process whose pid goes to BG_PIDS, call `ip netns exec "$NS" ...` directly
# so that $! is the process itself, not a subshell around it.
in_ns() { ip netns exec "$NS" "$@"; }

# qctl's per-build namespaces (qctl-run-*) made under this test's run root
leftover_netns() {
	local n
	for n in $(ls /run/netns 2>/dev/null); do
		case "$n" in qctl-run-*) [ -e "$QCTL_RUN_ROOT/${n#qctl-}" ] && echo "$n" ;; esac
	done
	return 0
}

cleanup_test() {
	local rc=$? pids p
	for p in "${BG_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
	done
	for p in "${BG_PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	# a manager killed above leaves its cgroup, namespace, ...: reap them
	[ ${#BG_PIDS[@]} = 0 ] || "$QCTL" gc >/dev/null 2>&1 || true
	for p in "${TEST_NETNS[@]}"; do
		ip netns del "$p" 2>/dev/null || true
		# files a test gave the namespace (ip netns exec mounts them)
		rm -rf "/etc/netns/$p"
	done
	rmdir /etc/netns 2>/dev/null || true	# only if now empty
	pids=$(qemu_pids_of_test)
	if [ -n "$pids" ]; then
		echo "cleanup: killing leftover QEMU $pids" >&2
		kill -9 $pids 2>/dev/null || true
		rc=1
	fi
	rm -rf "$T"
	exit $rc
}

# json FILE EXPR: evaluate a python expression on the parsed JSON as `r`
json() {
	python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$1" "$2"
}

expect_eq() { [ "$1" = "$2" ] || fail "$3: expected '$2', got '$1'"; }

# run_qctl EXPECTED_RC ARGS...: run qctl run, keep stdout/stderr in $T
run_qctl() {
	local want=$1 rc=0
	shift
	"$QCTL" run "$@" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" != "$want" ]; then
		echo "--- stdout"; tail -30 "$T/out"; echo "--- stderr"; tail -30 "$T/err"
		fail "qctl run $* exited $rc, expected $want"
	fi
}

no_qemu_left() {
	local pids p i
	# a QEMU killed a moment ago may still be on its way out
	for i in $(seq 50); do
		pids=$(qemu_pids_of_test)
		[ -z "$pids" ] && return 0
		sleep 0.1
	done
	for p in $pids; do
		echo "leftover QEMU $p: $(ps -o pid,ppid,stat,etime -p "$p" | tail -1)" >&2
	done
	fail "QEMU still running: $pids"
}

run_dir_gone() {
	local d
	d=$(json "$T/out" 'r["run_dir"]')
	[ ! -e "$d" ] || fail "run directory $d left behind"
}
