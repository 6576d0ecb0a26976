# Shared helpers for integration tests (sourced).  Each test runs in its own
# temp dir, with its own run root, and must leave no QEMU behind.
#
# The programs under test are in $QCTL_BUILD: build/ by default, build/san
# under `make integration SANITIZE=1`.  A script names every program of the
# build through it ("$QCTL_BUILD/qctl-proxy"), never as build/...; one that
# compiles a driver against that build's libraries uses $QCTL_CC and
# $QCTL_CFLAGS (the sanitized build's -fsanitize flags; empty otherwise).
# QCTL_SANITIZE is 1 for the sanitized build: only for what ASan changes
# (memory use, speed), never to skip a check of qctl's behaviour.  The
# exceptions, for CI's time budget, call plain_pass_only: t-debian-hello
# (a 10-15 minute compile under TCG), t-node-app (a real npm install),
# t-serve-leak (50 builds, and its RSS bound means nothing under ASan) and
# t-appliance (a build nested under TCG inside TCG: minutes; the
# appliance holds the plain build in any case), t-buildbot (eight
# plain `qctl run` builds under Buildbot).
# Every manager path they take is taken sanitized by shorter scripts
# (docs/testing.md names which).
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

# plain_pass_only WHY: skip (77) in the sanitized pass, saying why.
plain_pass_only() {
	if [ "${QCTL_SANITIZE:-}" = 1 ]; then
		echo "SKIP: left to the plain pass under SANITIZE=1: $*"
		exit 77
	fi
}

# QEMU processes of runs under this test's run root (its VM names carry
# the run id, "qctl-run-XXXXXX").
qemu_pids_of_test() {
	local p
	for p in /proc/[0-9]*; do
		[ -r "$p/cmdline" ] || continue
		tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -q "qemu-system.*-name qctl-run-" || continue
		local id
		# (a QEMU that exits meanwhile has no cmdline left: no id, and
		# the run root itself must not pass for its run directory)
		id=$(tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -A1 -x -- -name | tail -1 | sed 's/^qctl-//; s/,.*//')
		case $id in run-*) [ -e "$QCTL_RUN_ROOT/$id" ] && echo "${p#/proc/}" ;; esac
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
	local pids p end=$((SECONDS + 30))
	# a QEMU killed a moment ago may still be on its way out (a loaded
	# host can take seconds to get there): no QEMU within 30 s
	while pids=$(qemu_pids_of_test); [ -n "$pids" ]; do
		[ "$SECONDS" -lt "$end" ] || break
		sleep 0.2
	done
	[ -n "$pids" ] || return 0
	for p in $pids; do
		echo "leftover QEMU $p: $(ps -o pid,ppid,stat,etime -p "$p" | tail -1)" >&2
	done
	fail "QEMU still running 30 s on: $pids"
}

# no_state_records DIR: the state directory holds no crash-recovery
# record (its snapshots/ is a cache that stays, but with no file half
# written)
no_state_records() {
	local left
	left=$(ls -A "$1" 2>/dev/null | grep -vx snapshots || true)
	[ -z "$left" ] || fail "state records left: $left"
	left=$(find "$1/snapshots" -name '*.tmp' -o -name '*.new' 2>/dev/null)
	[ -z "$left" ] || fail "snapshot files half written: $left"
}

run_dir_gone() {
	local d
	d=$(json "$T/out" 'r["run_dir"]')
	[ ! -e "$d" ] || fail "run directory $d left behind"
}

# ---- waiting for events ---------------------------------------------------
# On a loaded host no sleep is long enough and every short margin fails
# now and then: tests wait for the event itself (a log line, a file, a
# process's end), polling under a generous deadline that fails the test
# with a message saying what never happened.

# wait_for [--timeout S] [--what TEXT] [--alive PID] [--log FILE] [--] CMD...
# Run CMD every 0.2 s until it succeeds.  Fail, naming TEXT (default: the
# command), after S seconds (default 120), or as soon as process PID has
# gone (what it was to do can no longer happen); the tail of FILE goes
# with the failure.
wait_for() {
	local timeout=120 what= alive= log= start=$SECONDS why
	while [ $# -gt 0 ]; do
		case $1 in
		--timeout) timeout=$2; shift 2 ;;
		--what) what=$2; shift 2 ;;
		--alive) alive=$2; shift 2 ;;
		--log) log=$2; shift 2 ;;
		--) shift; break ;;
		*) break ;;
		esac
	done
	[ $# -gt 0 ] || fail "wait_for: no command"
	until "$@"; do
		why=
		if [ -n "$alive" ] && ! kill -0 "$alive" 2>/dev/null; then
			# it may have happened just before the end
			"$@" && return 0
			why="process $alive ended first"
		elif [ $((SECONDS - start)) -ge "$timeout" ]; then
			why="nothing after ${timeout}s"
		fi
		if [ -n "$why" ]; then
			if [ -n "$log" ] && [ -e "$log" ]; then
				echo "--- tail of $log" >&2
				tail -30 "$log" >&2
			fi
			fail "waiting for ${what:-$*}: $why"
		fi
		sleep 0.2
	done
}

# gone PID: the process has exited (and was reaped)
gone() { ! kill -0 "$1" 2>/dev/null; }

# has_line FILE PATTERN: FILE exists and a line matches (grep -E)
has_line() { grep -qE -- "$2" "$1" 2>/dev/null; }

# wait_step STEP FILE [PID]: until the guest's line "STEP| started" is in
# FILE (the step's first line of output; a boot under TCG on a loaded host
# can take minutes); with PID, fail at once if that manager ends first.
wait_step() {
	wait_for --timeout 300 --what "step $1 to start (\"$1| started\" in $2)" \
		--log "$2" ${3:+--alive "$3"} has_line "$2" "^$1\| started"
}

# net_pids FILE: HELPER_PID and PROXY_PID from the manager's -v log line
# "network: namespace ..., helper pid H, proxy pid P"
net_pids() {
	local line
	line=$(sed -n 's/.*helper pid \([0-9]*\), proxy pid \([0-9]*\).*/\1 \2/p' "$1" | head -1)
	[ -n "$line" ] || { tail -20 "$1" >&2; fail "no helper/proxy pids in $1 (run qctl with -v)"; }
	read -r HELPER_PID PROXY_PID <<<"$line"
}

# terminal_clean FILE: no ESC, DEL or C1 (raw or UTF-8 encoded) in what
# qctl wrote for a terminal
terminal_clean() {
	python3 - "$1" <<'P' || fail "raw control bytes on the terminal side of $1"
import re, sys
b = open(sys.argv[1], "rb").read()
# invalid UTF-8 bytes (a raw 0x9b among them) decode to U+DC80..U+DCFF
s = b.decode("utf-8", "surrogateescape")
bad = re.search("[\x1b\x7f\x80-\x9f\udc80-\udcff]", s)
if bad:
    print("at %d: %r" % (bad.start(), s[max(0, bad.start() - 20):bad.start() + 20]))
    sys.exit(1)
P
}

# leftover_cgroups RUN-ID...: VM cgroups (PID-RUNID-ATTEMPT under qctl/ of
# the cgroup2 mount) still there for these runs
leftover_cgroups() {
	local root id
	root=$(findmnt -n -t cgroup2 -o TARGET | head -1)
	[ -n "$root" ] && [ -d "$root/qctl" ] || return 0
	for id in "$@"; do
		ls "$root/qctl" | grep -F -- "-$id-" || true
	done
}

# ---- real builds ----------------------------------------------------------
# need_image NAME LIST: the builder image NAME (make image-NAME) and its
# package hosts LIST (image.json "hosts"), or a skip (exit 77) when they
# cannot be had because the package registry is out of reach.  A registry
# that answers but no image is a failure: `make integration` builds them.
need_image() {
	local name=$1 list=$2 img="$QCTL_IMAGES/$1" hp reach=0
	if [ -f "$img/image.json" ]; then
		for hp in $(json "$img/image.json" "' '.join(r.get('hosts',{}).get('$list',[]))"); do
			reachable "$hp" && reach=1 && break
		done
		[ $reach = 1 ] && return 0
		echo "SKIP: no package host of image $name ($list) answers"
		exit 77
	fi
	# no image: only a host without the registry may excuse that
	if registry_down; then
		echo "SKIP: image $name missing and the package registry is out of reach"
		exit 77
	fi
	fail "image $name missing (make image-$name) though the registry answers"
}

# reachable HOST:PORT: a TCP connect within 5 s (from this host, as the
# proxy connects; names resolved as the proxy would)
reachable() {
	timeout 5 bash -c "exec 3<>/dev/tcp/${1%:*}/${1##*:}" 2>/dev/null
}

# registry_down: none of the hosts of this host's apt sources answers
registry_down() {
	local u hp
	for u in $(apt-get indextargets --format '$(URI)' 2>/dev/null | sort -u); do
		hp=${u#*://}; hp=${hp%%/*}
		case $hp in *:*) ;; *) case $u in https:*) hp=$hp:443 ;; *) hp=$hp:80 ;; esac ;; esac
		reachable "$hp" && return 1
	done
	return 0
}

# net_on_list RESULT IMAGE_JSON LIST STEP [METHOD]: the result recorded
# requests, every one from STEP, allowed, to a host:port of the image's
# host list LIST (and, if given, every one a METHOD)
net_on_list() {
	python3 - "$@" <<'P' || fail "network record"
import json, sys
res, img, lst, step = sys.argv[1:5]
method = sys.argv[5] if len(sys.argv) > 5 else None
r = json.load(open(res))
hosts = set(json.load(open(img))["hosts"][lst])
net = r["network"]
assert net, "no request recorded"
for e in net:
    assert e["step"] == step and e["allowed"], e
    assert method is None or e["method"] == method, e
    assert "%s:%d" % (e["host"], e["port"]) in hosts, \
        "%s:%d is not on the image's %s list" % (e["host"], e["port"], lst)
P
}
