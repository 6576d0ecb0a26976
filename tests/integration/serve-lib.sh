# Shared by the qctl serve tests (sourced instead of lib.sh, which it
# sources): start, stop and talk to one server of the test's own.
. "$(dirname "$0")/lib.sh"

# -- the server, by PID; stopped (SIGTERM, then -9) and gc'd on any exit ----
SOCK=$T/sock
SERVE_PID=
serve_start() {
	"$QCTL" serve --socket "$SOCK" --state-dir "$T/state" \
		--run-root "$QCTL_RUN_ROOT" --accel tcg -v "$@" \
		>"$T/serve.out" 2>"$T/serve.log" &
	SERVE_PID=$!
	BG_PIDS+=("$SERVE_PID")
	wait_for --timeout 60 --what "qctl serve's socket" --alive "$SERVE_PID" \
		--log "$T/serve.log" test -S "$SOCK"
}
serve_alive() { [ -n "$SERVE_PID" ] && kill -0 "$SERVE_PID" 2>/dev/null; }
serve_stop() { # SIGTERM: exit 0 within 30 s, socket removed
	local rc=0
	kill -TERM "$SERVE_PID"
	wait_for --timeout 30 --what "qctl serve to exit after SIGTERM" --log "$T/serve.log" \
		gone "$SERVE_PID"
	wait "$SERVE_PID" || rc=$?
	SERVE_PID=
	expect_eq "$rc" 0 "qctl serve exit status after SIGTERM"
	[ ! -e "$SOCK" ] || fail "socket left behind"
}
serve_kill() {
	if serve_alive; then
		kill -TERM "$SERVE_PID"
		for _ in $(seq 1 200); do serve_alive || break; sleep 0.1; done
		kill -9 "$SERVE_PID" 2>/dev/null || true
		"$QCTL" gc --state-dir "$T/state" >/dev/null 2>&1 || true
	fi
}
serve_py() { PYTHONPATH="$TOP/tests/integration" python3 - "$SOCK" "$SERVE_PID" "$@"; }
# (set +e: under set -e, `(exit 1)` would end the shell before cleanup_test,
# leaving $T, namespaces and QEMUs of a failed test behind)
trap 'rc=$?; [ $rc = 0 ] || [ $rc = 77 ] || [ ! -f "$T/serve.log" ] || tail -40 "$T/serve.log" >&2; serve_kill; set +e; (exit $rc); cleanup_test' EXIT

