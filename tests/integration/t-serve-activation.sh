# qctl serve started by systemd's socket activation (LISTEN_PID, LISTEN_FDS,
# fd 3), driven by systemd-socket-activate as systemd would: the server
# takes the socket it is given instead of making one, serves a build on it,
# and leaves it in place at SIGTERM (it is systemd's); a socket bound
# elsewhere than --socket, or two sockets, are refused (exit 2) before
# anything starts; LISTEN_* meant for another process are ignored (the
# server makes its own socket, 0660).
. "$(dirname "$0")/serve-lib.sh"

command -v systemd-socket-activate >/dev/null || {
	echo "SKIP: no systemd-socket-activate (package systemd)"
	exit 77
}

# activate ARGS...: qctl serve behind systemd-socket-activate, which makes
# $SOCK, then execs qctl (the same pid) at the first connection.
# It passes on only the environment it is told to (-E): the images (a
# sanitized qctl in build/san is not beside them) and the sanitizers'
# report options.
pass_env=()
for v in QCTL_IMAGES ASAN_OPTIONS UBSAN_OPTIONS; do
	[ -z "${!v:-}" ] || pass_env+=(-E "$v")
done
activate() {
	systemd-socket-activate "${pass_env[@]}" -l "$SOCK" "$@" "$QCTL" serve --socket "$SOCK" \
		--state-dir "$T/state" --run-root "$QCTL_RUN_ROOT" --accel tcg -v \
		>"$T/serve.out" 2>"$T/serve.log" &
	SERVE_PID=$!
	BG_PIDS+=("$SERVE_PID")
	wait_for --timeout 30 --what "systemd-socket-activate's socket" \
		--alive "$SERVE_PID" --log "$T/serve.log" test -S "$SOCK"
}

# -- a build on systemd's socket ----------------------------------------------
activate
ino=$(stat -c %i "$SOCK")
serve_py <<'PY'
import sys
from qmpclient import QMP
c = QMP(sys.argv[1])            # the connection that makes it exec qctl
c.negotiate()
b = c.cmd("build-submit", recipe={"steps": [{"name": "hi", "run": "echo activated"}]})["id"]
ev = c.wait_event("BUILD_FINISHED", timeout=300, build=b)
if ev["data"]["result"]["status"] != "passed":
    raise SystemExit("FAIL: build on the activated socket: %r" % ev["data"]["result"])
print("activated build passed")
PY
grep -q "listening on $SOCK (systemd's socket" "$T/serve.log" ||
	fail "serve did not say it took systemd's socket: $(grep listening "$T/serve.log")"
expect_eq "$(stat -c %i "$SOCK")" "$ino" "the socket is systemd's, not remade"
kill -TERM "$SERVE_PID"
wait_for --timeout 60 --what "qctl serve to exit after SIGTERM" --log "$T/serve.log" \
	gone "$SERVE_PID"
rc=0; wait "$SERVE_PID" || rc=$?
SERVE_PID=
expect_eq "$rc" 0 "activated qctl serve's exit status after SIGTERM"
[ -S "$SOCK" ] || fail "the activated server removed systemd's socket"
expect_eq "$(stat -c %i "$SOCK")" "$ino" "systemd's socket after exit"
rm -f "$SOCK"

# -- refusals: exit 2 before anything starts ------------------------------------
# refused_activation WHAT PATTERN SOCKET ARGS...: a connection to SOCKET
# makes it exec qctl, which must exit 2 saying PATTERN
refused_activation() {
	local what=$1 pat=$2 sock=$3 rc=0
	shift 3
	systemd-socket-activate "$@" >"$T/serve.out" 2>"$T/serve.log" &
	SERVE_PID=$!
	BG_PIDS+=("$SERVE_PID")
	wait_for --timeout 30 --what "the socket ($what)" --alive "$SERVE_PID" \
		--log "$T/serve.log" test -S "$sock"
	python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(1)' \
		"$sock" 2>/dev/null || true
	wait_for --timeout 30 --what "qctl serve to refuse ($what)" gone "$SERVE_PID"
	wait "$SERVE_PID" || rc=$?
	SERVE_PID=
	expect_eq "$rc" 2 "exit status ($what)"
	grep -q "$pat" "$T/serve.log" || fail "$what: no '$pat' in: $(cat "$T/serve.log")"
	rm -f "$SOCK" "$T/other.sock"
}
refused_activation "bound elsewhere" "fd 3 is bound to $T/other.sock, not to --socket $SOCK" \
	"$T/other.sock" -l "$T/other.sock" bash -c 'ln -s other.sock "$1"; exec "$2" serve --socket "$1" --accel tcg' \
	_ "$SOCK" "$QCTL"
refused_activation "two sockets" "LISTEN_FDS=2: qctl serve takes exactly one socket" \
	"$SOCK" -l "$SOCK" -l "$T/other.sock" "$QCTL" serve --socket "$SOCK" --accel tcg

# -- LISTEN_* for another process: ignored, the server makes its socket ----------
LISTEN_PID=1 LISTEN_FDS=1 serve_start
expect_eq "$(stat -c %a "$SOCK")" 660 "own socket's mode"
grep -q "listening on $SOCK (mode 0660" "$T/serve.log" ||
	fail "LISTEN_PID=1: $(grep listening "$T/serve.log")"
serve_stop
echo "PASS"
