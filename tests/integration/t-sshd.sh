#!/usr/bin/env bash
# The ssh server (qctl-sshd) with the real OpenSSH client, in a network
# namespace made for the test (lib.sh deletes it, whatever the outcome).
# sshd-driver plays the manager through qctl/sshd.c's API and holds one
# build, b1, whose commands run locally with /bin/sh; its shell is a fake
# that echoes.  Checked: a right key runs a command (output, stderr, exit
# status, stdin both ways, more output than the windows); a wrong key, an
# unknown build and a build no longer held are refused; a PTY shell; a
# manager "close" ends a live session with its reason; the process is not
# root, has no capabilities, no_new_privs, seccomp 2, an empty
# environment and fds 0-4 only; forwarding, X11 and sftp are refused;
# garbage does not kill it; connection limit and login grace; it dies with
# its manager.
. "$(dirname "$0")/lib.sh"
# lib.sh's fail, with the driver's events
fail() {
	echo "FAIL: $*" >&2
	for f in "$T/events" "$T/driver.err" "$T/events2"; do
		[ -f "$f" ] && { echo "--- $f" >&2; grep -v "key 1 for" "$f" | tail -40 >&2; }
	done
	exit 1
}
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root"; exit 77; }
for c in ip ssh ssh-keygen sftp python3; do
	command -v $c >/dev/null || { echo "SKIP: no $c"; exit 77; }
done

make -C "$TOP" --no-print-directory "${QCTL_BUILD#"$TOP"/}/libqctl.a" \
	"${QCTL_BUILD#"$TOP"/}/qctl-sshd" >/dev/null
$QCTL_CC $QCTL_CFLAGS -D_GNU_SOURCE -I"$TOP/qctl" -O2 -o "$T/sshd-driver" \
	"$TOP/tests/integration/sshd-driver.c" "$QCTL_BUILD/libqctl.a" \
	$(pkg-config --libs jansson yaml-0.1 libarchive libcrypto libseccomp \
	  libcap-ng)

test_netns
PORT=2222
ssh-keygen -q -t ed25519 -N '' -C host -f "$T/hostkey"
ssh-keygen -q -t rsa -b 3072 -N '' -C host -f "$T/hostkey-rsa"
ssh-keygen -q -t ed25519 -N '' -C user -f "$T/user"
ssh-keygen -q -t ed25519 -N '' -C wrong -f "$T/wrong"
ssh-keygen -q -t ecdsa -N '' -C user2 -f "$T/user2"
# the operator's list: a comment, a line with options (not used), keys
{
	echo "# operator keys"
	echo "from=\"10.0.0.1\" $(cat "$T/wrong.pub")"
	cat "$T/user.pub" "$T/user2.pub"
} >"$T/keys"
for k in hostkey hostkey-rsa; do
	echo "[127.0.0.1]:$PORT $(cut -d' ' -f1,2 "$T/$k.pub")"
	echo "[127.0.0.1]:2223 $(cut -d' ' -f1,2 "$T/$k.pub")"
done >"$T/known"
want_fpr=$(ssh-keygen -l -E sha256 -f "$T/user.pub" | cut -d' ' -f2)
wrong_fpr=$(ssh-keygen -l -E sha256 -f "$T/wrong.pub" | cut -d' ' -f2)

# The driver's commands come through a fifo that a sleeper keeps open.
mkfifo "$T/cmd"
sleep 100000 >"$T/cmd" &
BG_PIDS+=($!)
# (in $T/wd: the commands it runs are found by their cwd at the end)
mkdir "$T/wd"
(cd "$T/wd" && exec ip netns exec "$NS" "$T/sshd-driver" \
	-S "$QCTL_BUILD/qctl-sshd" -k "$T/hostkey" -k "$T/hostkey-rsa" \
	-a "$T/keys" "$PORT" <"$T/cmd" >"$T/events" 2>"$T/driver.err") &
DRIVER=$!
BG_PIDS+=($DRIVER)
wait_for --timeout 60 --what "the sshd to be ready" --alive "$DRIVER" \
	has_line "$T/events" '"event":"ready"'
SSHD=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["pid"])' "$T/events")
cmd() { echo "$*" >"$T/cmd"; }

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
sshd_alive() { kill -0 "$SSHD" 2>/dev/null || fail "qctl-sshd $SSHD died"; }

# ---- the process -------------------------------------------------------
st=/proc/$SSHD/status
for u in $(awk '/^(Uid|Gid):/ {print $2, $3, $4, $5}' "$st"); do
	[ "$u" != 0 ] || fail "sshd has id 0: $(grep -E '^(Uid|Gid):' "$st")"
done
[ "$(awk '/^Uid:/ {print $2}' "$st")" = "$(id -u nobody)" ] ||
	fail "sshd is not nobody: $(grep ^Uid: "$st")"
for f in CapEff CapPrm CapInh CapAmb CapBnd; do
	expect_eq "$(awk "/^$f:/ {print \$2}" "$st")" 0000000000000000 "$f"
done
expect_eq "$(awk '/^NoNewPrivs:/ {print $2}' "$st")" 1 NoNewPrivs
expect_eq "$(awk '/^Seccomp:/ {print $2}' "$st")" 2 Seccomp
expect_eq "$(awk '/^Groups:/ {print $2}' "$st")" "" Groups
expect_eq "$(tr '\0' ' ' </proc/$SSHD/environ | wc -c)" 0 "environment size"
expect_eq "$(ls /proc/$SSHD/fd | sort -n | tr '\n' ' ')" "0 1 2 3 4 " "fds"
expect_eq "$(readlink /proc/$SSHD/fd/0)" /dev/null "stdin"

# ---- a command with the right key ---------------------------------------
rc=0
sshc user b1 'echo hello; echo oops >&2; exit 3' >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 3 "exit status of the remote command"
expect_eq "$(cat "$T/out")" hello "stdout"
grep -qx oops "$T/err" || fail "stderr lacks 'oops': $(cat "$T/err")"
grep -qF "\"fingerprint\":\"$want_fpr\"" "$T/events" ||
	fail "open without the key's fingerprint $want_fpr"
has_line "$T/events" '"event":"open".*"peer":"127.0.0.1 port [0-9]+"' ||
	fail "open without the peer"
# a signal is the client's to see as such
rc=0
sshc user b1 'kill -TERM $$' >/dev/null 2>"$T/err" || rc=$?
[ "$rc" != 0 ] || fail "a command killed by SIGTERM exited 0"
# the RSA host key, when the client asks for it (the pinned one)
out=$(sshc user b1 -o HostKeyAlgorithms=rsa-sha2-512 'echo rsa host') ||
	fail "the RSA host key did not do"
expect_eq "$out" "rsa host" "RSA host key"
# the second key type of the list (ECDSA) works too
out=$(sshc user2 b1 'echo ecdsa ok') || fail "the ECDSA key was refused"
expect_eq "$out" "ecdsa ok" "ECDSA login"

# stdin to the command, EOF, and more data than the windows hold
n=$(seq 1 200000 | sshc user b1 'wc -l') || fail "stdin to wc failed"
expect_eq "$(echo $n)" 200000 "lines through stdin"
head -c 3000000 /dev/urandom >"$T/blob"
sum=$(sshc user b1 'cat' <"$T/blob" | sha256sum | cut -d' ' -f1) ||
	fail "cat through ssh failed"
expect_eq "$sum" "$(sha256sum <"$T/blob" | cut -d' ' -f1)" "3 MB round trip"
size=$(sshc user b1 'head -c 20000000 /dev/zero' | wc -c)
expect_eq "$size" 20000000 "20 MB of output"
sshd_alive

# ---- refusals ------------------------------------------------------------
rc=0
sshc wrong b1 true 2>"$T/err" || rc=$?
expect_eq "$rc" 255 "wrong key"
grep -q "Permission denied (publickey)" "$T/err" || fail "wrong key: $(cat "$T/err")"
grep -qF "authentication refused for b1: key $wrong_fpr not allowed" "$T/events" ||
	fail "no log of the refused key"
# (the wrong key is on the list, behind options that the sshd could not
# enforce: that line is not used, and said so)
has_line "$T/events" 'key 1 for build b1: not a public key line' ||
	fail "the line with options was not reported"
rc=0
sshc user b2 true 2>"$T/err" || rc=$?
expect_eq "$rc" 255 "another build's id"
grep -q "Permission denied (publickey)" "$T/err" || fail "b2: $(cat "$T/err")"
has_line "$T/events" '"event":"keys","build":"b2"' ||
	fail "b2's keys were never asked for"
rc=0
sshc user 'x/../b1' true 2>/dev/null || rc=$?
expect_eq "$rc" 255 "a user name that is not a build id"
# password and keyboard-interactive are not offered at all
rc=0
timeout 60 ip netns exec "$NS" ssh "${SSH_OPTS[@]}" -o BatchMode=no \
	-o PreferredAuthentications=password,keyboard-interactive \
	-o NumberOfPasswordPrompts=0 b1@127.0.0.1 true </dev/null \
	2>"$T/err" || rc=$?
expect_eq "$rc" 255 "password login"
grep -q "Permission denied (publickey)" "$T/err" ||
	fail "password: $(cat "$T/err")"
# six failed attempts end the connection (seven wrong keys offered)
many=()
for i in 1 2 3 4 5 6 7; do
	ssh-keygen -q -t ed25519 -N '' -f "$T/many$i"
	many+=(-i "$T/many$i")
done
rc=0
timeout 120 ip netns exec "$NS" ssh "${SSH_OPTS[@]}" "${many[@]}" \
	b1@127.0.0.1 true 2>"$T/err" || rc=$?
expect_eq "$rc" 255 "seven wrong keys"
wait_for --timeout 30 --what "a log of too many failures" \
	has_line "$T/events" 'closing: too many authentication failures'
# forwarding of every kind (-W and -L open direct-tcpip channels), X11
# and sftp
rc=0
sshc user b1 -W 127.0.0.1:22 </dev/null 2>"$T/err" || rc=$?
expect_eq "$rc" 255 "ssh -W"
grep -q "stdio forwarding failed" "$T/err" || fail "-W: $(cat "$T/err")"
rc=0
sshc user b1 -o ExitOnForwardFailure=yes -R 0:127.0.0.1:1 true 2>"$T/err" || rc=$?
expect_eq "$rc" 255 "ssh -R"
grep -q "remote port forwarding failed" "$T/err" || fail "-R: $(cat "$T/err")"
wait_for --timeout 60 --what "a log of the refused direct-tcpip channel" \
	has_line "$T/events" 'channel type 2 refused'
rc=0
DISPLAY=:0 sshc user b1 -o ForwardX11=yes -o ExitOnForwardFailure=yes \
	true 2>"$T/err" || rc=$?
grep -q "X11 forwarding request failed" "$T/err" || fail "X11: $(cat "$T/err")"
rc=0
echo ls | timeout 60 ip netns exec "$NS" sftp -F /dev/null -b - -P "$PORT" \
	-o BatchMode=yes -o UserKnownHostsFile="$T/known" \
	-o IdentitiesOnly=yes -o IdentityAgent=none -i "$T/user" \
	b1@127.0.0.1 >/dev/null 2>"$T/err" || rc=$?
[ "$rc" != 0 ] || fail "sftp worked"
grep -q "subsystem request failed" "$T/err" || fail "sftp: $(cat "$T/err")"
has_line "$T/events" 'subsystem sftp refused' || fail "no log of sftp"
sshd_alive

# ---- a PTY shell ---------------------------------------------------------
rc=0
printf 'hello there\nexit\n' | TERM=xterm-256color sshc user b1 -tt \
	>"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 0 "shell exit status"
grep -q "fake-shell term=xterm-256color" "$T/out" || fail "pty: $(cat "$T/out")"
grep -q "hello there" "$T/out" || fail "no echo: $(cat "$T/out")"
has_line "$T/events" '"pty":true,"term":"xterm-256color"' || fail "no pty in open"

# ---- the manager closes a live session -----------------------------------
sshc user b1 'sleep 1000' >"$T/cout" 2>"$T/cerr" &
CLIENT=$!
BG_PIDS+=($CLIENT)
wait_for --timeout 60 --what "the sleep's session" --alive "$CLIENT" \
	has_line "$T/events" '"command":"sleep 1000"'
cmd "close-all hold expired"
rc=0
wait "$CLIENT" || rc=$?
expect_eq "$rc" 255 "exit status of a closed session"
grep -q "^qctl: hold expired" "$T/cerr" || fail "no reason: $(cat "$T/cerr")"
wait_for --timeout 30 --what "the closed event" \
	has_line "$T/events" '"event":"closed".*"reason":"hold expired"'

# a close does not wait behind output the client does not read: `yes`
# into a client whose stdout nobody reads fills every window on the way
(echo $BASHPID >"$T/ypid"; exec ip netns exec "$NS" ssh "${SSH_OPTS[@]}" \
	-i "$T/user" b1@127.0.0.1 yes 2>/dev/null) | sleep 100000 &
BG_PIDS+=($!)
wait_for --timeout 60 --what "the yes session" \
	has_line "$T/events" '"command":"yes"'
sleep 2 # let the windows fill
BG_PIDS+=($(cat "$T/ypid"))
cmd "close-all hold expired again"
wait_for --timeout 30 --what "the stalled session to close" \
	has_line "$T/events" '"event":"closed".*"reason":"hold expired again"'
kill -9 "$(cat "$T/ypid")" 2>/dev/null || true
sshd_alive

# sessions per connection: four at once through one connection (OpenSSH's
# multiplexing), a fifth refused
ip netns exec "$NS" ssh "${SSH_OPTS[@]}" -i "$T/user" -o ControlMaster=yes \
	-o ControlPath="$T/mux" -N b1@127.0.0.1 2>"$T/muxerr" &
MUX=$!
BG_PIDS+=($MUX)
wait_for --timeout 60 --what "the multiplexing master" --alive "$MUX" \
	test -S "$T/mux"
MUXO=(-o ControlPath="$T/mux" -o ControlMaster=no)
for i in 1 2 3 4; do
	sshc user b1 "${MUXO[@]}" "sleep 100$i" >/dev/null 2>&1 &
	BG_PIDS+=($!)
	wait_for --timeout 60 --what "multiplexed session $i" \
		has_line "$T/events" "\"command\":\"sleep 100$i\""
done
# (the client, refused by its master, falls back to a connection of its
# own: the fifth runs, but not on the master's connection)
sshc user b1 "${MUXO[@]}" 'echo fifth' >/dev/null 2>&1 || true
has_line "$T/events" 'more than 4 sessions refused' ||
	fail "no log of the session limit"
peer_of() { grep -F "\"command\":\"$1\"" "$T/events" | sed 's/.*"peer":"\([^"]*\)".*/\1/'; }
[ "$(peer_of 'sleep 1001')" = "$(peer_of 'sleep 1004')" ] ||
	fail "the four sessions were not on one connection"
[ "$(peer_of 'echo fifth')" != "$(peer_of 'sleep 1001')" ] ||
	fail "a fifth session ran on the master's connection"
cmd "close-all mux done"
closed_mux() { [ "$(grep -c '"reason":"mux done"' "$T/events")" = 4 ]; }
wait_for --timeout 30 --what "the four sessions to close" closed_mux
kill "$MUX" 2>/dev/null || true
sshd_alive

# ---- garbage on the port ---------------------------------------------------
timeout 60 ip netns exec "$NS" python3 - "$PORT" <<'EOF' || fail "garbage client"
import os, socket, sys
port = int(sys.argv[1])
for junk in (os.urandom(70000), b"SSH-2.0-x\r\n" + os.urandom(5000),
             b"GET / HTTP/1.0\r\n\r\n", b"SSH-2.0-" + b"A" * 100000 + b"\r\n",
             b"\x00" * 4096):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(20)
    try:
        s.sendall(junk)
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
EOF
sshd_alive
out=$(sshc user b1 'echo still serving') || fail "no service after garbage"
expect_eq "$out" "still serving" "after garbage"

# ---- a build no longer held ------------------------------------------------
cmd unhold
wait_for --timeout 30 --what "unhold" has_line "$T/events" '"event":"unheld"'
rc=0
sshc user b1 true 2>"$T/err" || rc=$?
expect_eq "$rc" 255 "a build no longer held"

# ---- limits: connections and the login grace (a second sshd) --------------
mkfifo "$T/cmd2"
sleep 100000 >"$T/cmd2" &
BG_PIDS+=($!)
ip netns exec "$NS" "$T/sshd-driver" -S "$QCTL_BUILD/qctl-sshd" -g 2000 \
	-c 2 -k "$T/hostkey" -a "$T/keys" 2223 <"$T/cmd2" >"$T/events2" \
	2>>"$T/driver.err" &
BG_PIDS+=($!)
wait_for --timeout 60 --what "the second sshd" has_line "$T/events2" '"event":"ready"'
timeout 60 ip netns exec "$NS" python3 - <<'EOF' || fail "limits"
import socket, time
def conn():
    s = socket.create_connection(("127.0.0.1", 2223))
    s.settimeout(20)
    return s
a, b = conn(), conn()
assert a.recv(100).startswith(b"SSH-2.0-"), "no banner"
assert b.recv(100).startswith(b"SSH-2.0-"), "no banner"
c = conn()
# the third is closed before any ssh byte
assert c.recv(100) == b"", "third connection served"
t0 = time.time()
# the first two say nothing more: closed after the grace time
for s in (a, b):
    try:
        while s.recv(100):
            pass
    except ConnectionResetError:
        pass
assert 1.0 < time.time() - t0 < 15, "grace took %.1f s" % (time.time() - t0)
EOF
has_line "$T/events2" 'refused: 2 connections already' || fail "no log of the limit"
has_line "$T/events2" 'not authenticated within the login grace time' ||
	fail "no log of the grace time"
# an authenticated connection without a session gives its place back
start=$SECONDS
rc=0
timeout 60 ip netns exec "$NS" ssh "${SSH_OPTS[@]/$PORT/2223}" -i "$T/user" \
	-N b1@127.0.0.1 2>/dev/null || rc=$?
[ "$rc" != 124 ] || fail "ssh -N was never closed"
[ $((SECONDS - start)) -lt 30 ] || fail "ssh -N closed after $((SECONDS - start)) s"
has_line "$T/events2" 'as b1: closing: no session within the grace time' ||
	fail "no log of the idle connection"
# a manager that never answers an open does not hold the client for ever
echo mute-opens >"$T/cmd2"
wait_for --timeout 30 --what "mute" has_line "$T/events2" '"event":"muted"'
start=$SECONDS
rc=0
timeout 60 ip netns exec "$NS" ssh "${SSH_OPTS[@]/$PORT/2223}" -i "$T/user" \
	b1@127.0.0.1 'echo answered' >"$T/out" 2>/dev/null || rc=$?
[ "$rc" != 124 ] && [ "$rc" != 0 ] || fail "an unanswered open: rc $rc"
[ ! -s "$T/out" ] || fail "an unanswered open ran: $(cat "$T/out")"
[ $((SECONDS - start)) -lt 30 ] || fail "the open waited $((SECONDS - start)) s"
has_line "$T/events2" '"reason":"no answer from the manager"' ||
	fail "no close of the unanswered open"

# ---- it dies with its manager ----------------------------------------------
cmd quit
wait "$DRIVER" || fail "the driver failed: $(tail -3 "$T/driver.err")"
wait_for --timeout 30 --what "qctl-sshd to end with its manager" gone "$SSHD"
# every command of every session ended with its session or the driver
left=
for p in /proc/[0-9]*; do
	[ "$(readlink "$p/cwd" 2>/dev/null)" != "$T/wd" ] || left="$left ${p#/proc/}"
done
[ -z "$left" ] || fail "commands left running:$left ($(ps -o cmd= -p "${left# }"))"
echo "PASS"
