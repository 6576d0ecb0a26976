# ssh into a held build of `qctl serve` (issue 11), with the real OpenSSH
# client, in a network namespace of the test's own.  A failing build whose
# recipe asks for a hold (capped by --max-hold 60s) stays up; its files
# are read with `ssh -p PORT b1@127.0.0.1 'cat /src/...'` with the
# recipe's key (and the operator's); exit codes, stdin and a PTY go
# through; a wrong key, another build's id, and a connection after the
# hold expired are refused; after the hold the build ends with its own
# failure and nothing of its VM is left.  One build's recipe key does not
# open another build.  build-cancel ends a live
# session, with the reason on the client's stderr.  qctl-sshd runs as
# neither root nor with any capability, under seccomp (from /proc).
. "$(dirname "$0")/lib.sh"
for c in ip ssh ssh-keygen python3; do
	command -v $c >/dev/null || fail "$c is missing (make deps)"
done
test_netns
PORT=2222
ssh-keygen -q -t ed25519 -N '' -C host -f "$T/hostkey"
ssh-keygen -q -t ed25519 -N '' -C user -f "$T/user"
ssh-keygen -q -t ed25519 -N '' -C user2 -f "$T/user2"
ssh-keygen -q -t ed25519 -N '' -C operator -f "$T/op"
ssh-keygen -q -t ed25519 -N '' -C wrong -f "$T/wrong"
cp "$T/op.pub" "$T/authorized"
echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$T/hostkey.pub")" >"$T/known"
user_fpr=$(ssh-keygen -l -E sha256 -f "$T/user.pub" | cut -d' ' -f2)

SOCK=$T/sock
# not through in_ns: $! must be the server itself
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" \
	QCTL_STATE_DIR="$QCTL_STATE_DIR" "$QCTL" serve --socket "$SOCK" \
	--state-dir "$T/state" --run-root "$QCTL_RUN_ROOT" -v \
	--ssh "127.0.0.1:$PORT" --ssh-host-key "$T/hostkey" \
	--ssh-authorized-keys "$T/authorized" --max-hold 60s \
	>"$T/serve.out" 2>"$T/serve.log" &
SERVE_PID=$!
BG_PIDS+=("$SERVE_PID")
wait_for --timeout 60 --what "the ssh server to be ready" --alive "$SERVE_PID" \
	--log "$T/serve.log" has_line "$T/serve.log" 'ssh: serving on'
test -S "$SOCK" || fail "no control socket"

# the ssh server: not root, no capabilities, no new privileges, seccomp
SSHD=$(sed -n 's/.*ssh: serving on .* (pid \([0-9]*\), confined).*/\1/p' "$T/serve.log" | head -1)
[ -n "$SSHD" ] && [ -r "/proc/$SSHD/status" ] || fail "no qctl-sshd pid in the log"
st=/proc/$SSHD/status
awk '/^Uid:/ { for (i = 2; i <= 5; i++) if ($i == 0) exit 1 }' "$st" ||
	fail "qctl-sshd has uid 0: $(grep ^Uid "$st")"
awk '/^Gid:/ { for (i = 2; i <= 5; i++) if ($i == 0) exit 1 }' "$st" ||
	fail "qctl-sshd has gid 0: $(grep ^Gid "$st")"
for f in CapInh CapPrm CapEff CapBnd CapAmb; do
	expect_eq "$(awk -v f="$f:" '$1 == f { print $2 }' "$st")" 0000000000000000 "qctl-sshd $f"
done
expect_eq "$(awk '$1 == "NoNewPrivs:" { print $2 }' "$st")" 1 "qctl-sshd NoNewPrivs"
expect_eq "$(awk '$1 == "Seccomp:" { print $2 }' "$st")" 2 "qctl-sshd Seccomp"
expect_eq "$(readlink "/proc/$SSHD/exe")" "$(readlink -f "$QCTL_BUILD/qctl-sshd")" "qctl-sshd binary"

SSH_OPTS=(-F /dev/null -p "$PORT" -o BatchMode=yes -o ConnectTimeout=30
	-o UserKnownHostsFile="$T/known" -o StrictHostKeyChecking=yes
	-o IdentitiesOnly=yes -o IdentityAgent=none -o LogLevel=ERROR)
# sshc KEY USER ARGS...: the OpenSSH client in the namespace
sshc() {
	local key=$1 user=$2
	shift 2
	timeout 120 ip netns exec "$NS" ssh "${SSH_OPTS[@]}" -i "$T/$key" \
		"$user@127.0.0.1" "$@"
}

# qmp SCRIPT: python with a negotiated client `q` on the socket
qmp() {
	PYTHONPATH="$TOP/tests/integration" python3 - "$SOCK" "$@" <<PY
import json, sys
from qmpclient import QMP
q = QMP(sys.argv[1], timeout=600)
q.negotiate()
$(cat)
PY
}

recipe() { # HOLD [KEY]: a build that leaves files in /src, then fails
	python3 - "$1" "$(cat "$T/${2:-user}.pub")" <<'PY'
import json, sys
print(json.dumps({
    "hold_on_failure": sys.argv[1],
    "ssh_keys": [sys.argv[2]],
    "limits": {"wall_time": "10m"},
    "steps": [
        {"name": "make", "run": "echo secret-$((6*7)) >/src/out.txt"},
        {"name": "check", "run": "echo failing; exit 3"},
    ]}))
PY
}
recipe 10m >"$T/r1.json"
recipe 10m user2 >"$T/r2.json"

# b1 (the user's key) and b2 (user2's), both held
qmp "$T/r1.json" "$T/r2.json" <<'PY' >"$T/held1" || fail "b1 and b2 were not held"
for n, f in ((1, sys.argv[2]), (2, sys.argv[3])):
    r = q.cmd("build-submit", recipe=json.load(open(f)))
    assert r["id"] == "b%d" % n, r
e = q.wait_event("BUILD_HELD", timeout=600, build="b1")
q.wait_event("BUILD_HELD", timeout=600, build="b2")
print(json.dumps(e["data"]))
for b in ("b1", "b2"):
    st = q.cmd("build-status", id=b)
    assert st["held"] is True and st["status"] == "running", st
PY
# a recipe's key opens its own build only
rc=0; sshc user b2 true 2>"$T/cross.err" || rc=$?
expect_eq "$rc" 255 "b1's key into b2"
rc=0; sshc user2 b1 true 2>"$T/cross.err" || rc=$?
expect_eq "$rc" 255 "b2's key into b1"
out=$(sshc user2 b2 'cat /src/out.txt') || fail "b2's own key: $out"
expect_eq "$out" secret-42 "b2 through its own key"
qmp <<'PY' || fail "b2 did not end after build-cancel"
q.cmd("build-cancel", id="b2")
q.wait_event("BUILD_FINISHED", timeout=120, build="b2")
PY
expect_eq "$(json "$T/held1" 'r["hold_ms"]')" 60000 "hold capped by --max-hold"
expect_eq "$(json "$T/held1" 'r["step"]')" check "held at the failed step"

# the recipe's key reads the failed build's files, in the step's world
out=$(sshc user b1 'cat /src/out.txt; echo "step=$QCTL_STEP pwd=$(pwd)"') ||
	fail "ssh with the recipe's key: $out"
expect_eq "$out" "secret-42
step=check pwd=/src" "ssh cat /src/out.txt"
rc=0; sshc user b1 'exit 5' || rc=$?
expect_eq "$rc" 5 "a command's exit status"
out=$(echo hello | sshc user b1 'cat >/src/in.txt; wc -c </src/in.txt') ||
	fail "stdin through ssh"
expect_eq "$(echo $out)" 6 "stdin through ssh"
out=$(sshc user b1 -tt 'tty; stty size' </dev/null | tr -d '\r') ||
	fail "a PTY through ssh: $out"
case $out in /dev/pts/*) ;; *) fail "no terminal in ssh -tt: $out" ;; esac
# the operator's key enters any held build
out=$(sshc op b1 'id -u') || fail "the operator's key: $out"
expect_eq "$out" 0 "operator's ssh"
# refused: a wrong key, a build that does not exist
rc=0; sshc wrong b1 true 2>"$T/wrong.err" || rc=$?
expect_eq "$rc" 255 "a wrong key"
grep -q "Permission denied" "$T/wrong.err" || fail "wrong key: $(cat "$T/wrong.err")"
rc=0; sshc user b7 true 2>"$T/b7.err" || rc=$?
# (b7 never existed: refused like a wrong key)
expect_eq "$rc" 255 "another build's id"
grep -q "opened by $user_fpr from 127.0.0.1" "$T/serve.log" ||
	fail "no session logged with the key's fingerprint"

# the hold expires: the build ends with its own failure, the VM goes
qmp <<'PY' >"$T/fin1" || fail "b1 did not finish after its hold"
e = q.wait_event("BUILD_FINISHED", timeout=300, build="b1")
print(json.dumps(e["data"]["result"]))
PY
expect_eq "$(json "$T/fin1" 'r["status"]')" failed "b1 status"
expect_eq "$(json "$T/fin1" 'r["exit_code"]')" 1 "b1 exit code"
json "$T/fin1" 'r["reason"]' | grep -q 'step "check" failed with exit code 3' ||
	fail "b1 reason: $(json "$T/fin1" 'r["reason"]')"
expect_eq "$(json "$T/fin1" 'r["hold"]["ended"]')" "the hold expired" "b1 hold end"
expect_eq "$(json "$T/fin1" 'r["hold"]["max_ms"]')" 60000 "b1 hold"
expect_eq "$(json "$T/fin1" 'sorted(set(s["who"].split()[0] for s in r["hold"]["sessions"]))')" \
	"$(python3 -c 'import json,sys; print(json.dumps(sorted(sys.argv[1:])))' "$user_fpr" \
		"$(ssh-keygen -l -E sha256 -f "$T/op.pub" | cut -d' ' -f2)")" "sessions' keys"
rc=0; sshc user b1 true 2>"$T/late.err" || rc=$?
expect_eq "$rc" 255 "a connection after the hold"
[ -z "$(qemu_pids_of_test)" ] || fail "b1's QEMU is left after the hold"
[ -z "$(leftover_netns)" ] || fail "b1's namespace is left: $(leftover_netns)"

# build-cancel ends a live session and tells its client why
qmp "$T/r1.json" <<'PY' || fail "b3 was not held"
r = q.cmd("build-submit", recipe=json.load(open(sys.argv[2])))
assert r["id"] == "b3", r
q.wait_event("BUILD_HELD", timeout=600, build="b3")
PY
(rc=0; timeout 200 ip netns exec "$NS" ssh "${SSH_OPTS[@]}" -i "$T/user" \
	b3@127.0.0.1 'echo in; sleep 300' >"$T/live.out" 2>"$T/live.err" ||
	rc=$?; echo $rc >"$T/live.rc") &
LIVE=$!
BG_PIDS+=("$LIVE")
wait_for --timeout 120 --what "the live session" has_line "$T/live.out" '^in$'
qmp <<'PY' >"$T/fin2" || fail "b3 did not end after build-cancel"
q.cmd("build-cancel", id="b3")
e = q.wait_event("BUILD_FINISHED", timeout=120, build="b3")
print(json.dumps(e["data"]["result"]))
PY
wait_for --timeout 60 --what "the ssh client to end" --log "$T/serve.log" \
	test -s "$T/live.rc"
expect_eq "$(cat "$T/live.rc")" 255 "the cancelled session's exit status"
grep -q "cancelled" "$T/live.err" || fail "the client was not told why: $(cat "$T/live.err")"
expect_eq "$(json "$T/fin2" 'r["status"]')" failed "b3 keeps its failure"
json "$T/fin2" 'r["hold"]["ended"]' | grep -q "cancelled over the control socket" ||
	fail "b3 hold end: $(json "$T/fin2" 'r["hold"]["ended"]')"
[ -z "$(qemu_pids_of_test)" ] || fail "b3's QEMU is left"

kill -TERM "$SERVE_PID"
wait_for --timeout 30 --what "qctl serve to exit" gone "$SERVE_PID"
[ ! -d "/proc/$SSHD" ] || fail "qctl-sshd outlived the server"
[ -z "$(leftover_netns)" ] || fail "namespaces left: $(leftover_netns)"
echo ok
