# `qctl run --shell-on-failure` on a real terminal (a pseudo-terminal this
# test drives, as a user's terminal emulator would): when a step fails, a
# shell comes up in the VM, in /src, with the failed step's environment and
# the terminal's size; what the user types runs there (^C reaches the
# guest's foreground job, not qctl; a resize reaches `stty size`); `exit`
# ends the build with the original failure (exit 1), the hold and the
# session recorded in the result.  A hold that expires ends the shell and
# the build the same way, and so does a limit (the wall time: the limits
# count while held).  Without a terminal the option is a usage error.
. "$(dirname "$0")/lib.sh"
mkdir -p "$T/src"
echo "from-the-host" >"$T/src/hostfile"
cat >"$T/r.yaml" <<R
source: $T/src
env: {GREETING: hello-from-recipe}
limits: {wall_time: 10m}
steps:
  - {name: make, run: "echo made-by-step >made"}
  - {name: check, run: "echo checking; exit 7"}
  - {name: never, run: "echo SHOULD-NOT-RUN"}
R

# no terminal: refused before anything starts
rc=0
"$QCTL" run --shell-on-failure "$T/r.yaml" </dev/null >"$T/out" 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "--shell-on-failure without a terminal"
grep -q "needs a terminal" "$T/err" || fail "no reason: $(cat "$T/err")"

drive() {
	PYTHONPATH="$TOP/tests/integration" python3 - "$QCTL" "$@" <<'PY'
import fcntl, os, pty, select, signal, struct, sys, termios, time

qctl, mode, recipe, result, log = sys.argv[1:6]

def setsize(fd, rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

pid, fd = pty.fork()
if pid == 0:
    os.execv(qctl, [qctl, "run", "--shell-on-failure", "--result", result,
                    recipe])
setsize(fd, 33, 101)
seen = b""
out = open(log, "wb")

def read_until(what, timeout):
    global seen
    end = time.time() + timeout
    while what not in seen:
        left = end - time.time()
        if left <= 0:
            sys.exit("FAIL: never saw %r; the terminal showed:\n%s" %
                     (what, seen[-3000:].decode(errors="replace")))
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            continue
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            sys.exit("FAIL: the terminal closed before %r:\n%s" %
                     (what, seen[-3000:].decode(errors="replace")))
        out.write(chunk)
        out.flush()
        seen += chunk

def typed(line):
    os.write(fd, line.encode() + b"\r")

read_until(b"a shell in the failed build's VM", 600)
if mode.startswith("wait:"):
    # the shell sits there until something else ends the hold
    read_until(mode[5:].encode(), 300)
else:
    # the arithmetic is done by the guest's shell: its echo of the typed
    # line shows $((6*7)), only its output shows 42
    typed("echo M1-$((6*7)) $(cat made) $(cat hostfile) step=$QCTL_STEP "
          "$GREETING pwd=$(pwd) size=$(stty size) tty=$(tty)")
    read_until(b"M1-42", 120)
    read_until(b"\n", 10)
    line = seen[seen.rindex(b"M1-42"):].split(b"\r")[0].split(b"\n")[0]
    print(line.decode(errors="replace"))
    # ^C goes to the guest's foreground job; qctl and the shell stay
    typed("sleep 300")
    time.sleep(1)
    os.write(fd, b"\x03")
    typed("echo after-$((1+1))-int")
    read_until(b"after-2-int", 60)
    # a resize reaches the guest's terminal
    setsize(fd, 40, 120)
    time.sleep(0.5)
    typed("echo SZ-$(stty size | tr ' ' x)")
    read_until(b"SZ-40x120", 60)
    typed("exit")
# qctl ends with the build's own code
end = time.time() + 300
while True:
    try:
        r, _, _ = select.select([fd], [], [], 1)
        if r:
            chunk = os.read(fd, 65536)
            out.write(chunk)
            seen += chunk
    except OSError:
        pass
    wpid, status = os.waitpid(pid, os.WNOHANG)
    if wpid:
        break
    if time.time() > end:
        os.kill(pid, signal.SIGKILL)
        sys.exit("FAIL: qctl did not end after the shell")
print("rc=%d" % os.waitstatus_to_exitcode(status))
PY
}

drive shell "$T/r.yaml" "$T/res.json" "$T/term.log" >"$T/drive" ||
	{ cat "$T/drive"; fail "driving the terminal"; }
cat "$T/drive"
line=$(grep '^M1-42' "$T/drive")
for want in made-by-step from-the-host step=check hello-from-recipe \
	pwd=/src "size=33 101" tty=/dev/pts/; do
	case $line in *"$want"*) ;; *) fail "the shell's line lacks '$want': $line" ;; esac
done
grep -qx 'rc=1' "$T/drive" || fail "qctl did not exit 1 after the shell"
expect_eq "$(json "$T/res.json" 'r["status"]')" failed status
json "$T/res.json" 'r["reason"]' | grep -q 'step "check" failed with exit code 7' ||
	fail "the reason is not the step's: $(json "$T/res.json" 'r["reason"]')"
expect_eq "$(json "$T/res.json" 'r["steps"][2]["exit_code"]')" None "step after the failure"
expect_eq "$(json "$T/res.json" 'r["hold"]["ended"]')" "the shell exited" "hold end"
expect_eq "$(json "$T/res.json" 'r["hold"]["max_ms"]')" 1800000 "default hold"
expect_eq "$(json "$T/res.json" 'len(r["hold"]["sessions"])')" 1 sessions
expect_eq "$(json "$T/res.json" 'r["hold"]["sessions"][0]["who"]')" terminal who
expect_eq "$(json "$T/res.json" 'r["hold"]["sessions"][0]["pty"]')" True pty
expect_eq "$(json "$T/res.json" 'r["hold"]["sessions"][0]["exit_code"]')" 0 "shell exit"
! grep -q SHOULD-NOT-RUN "$T/term.log" || fail "a step after the failure ran"
no_qemu_left

# a hold that expires ends the shell and the build
sed 's/^limits:/hold_on_failure: 4s\nlimits:/' "$T/r.yaml" >"$T/r2.yaml"
drive "wait:the hold expired" "$T/r2.yaml" "$T/res2.json" "$T/term2.log" >"$T/drive2" ||
	{ cat "$T/drive2"; fail "driving the terminal (expiry)"; }
grep -qx 'rc=1' "$T/drive2" || fail "qctl did not exit 1 after the hold expired"
expect_eq "$(json "$T/res2.json" 'r["hold"]["ended"]')" "the hold expired" "hold end"
expect_eq "$(json "$T/res2.json" 'r["hold"]["max_ms"]')" 4000 "recipe's hold"
expect_eq "$(json "$T/res2.json" 'r["hold"]["sessions"][0]["ended"]')" "the hold expired" "session end"
no_qemu_left

# the limits keep counting: the wall time ends the hold (and the shell),
# and the build keeps its failure
sed 's/^limits: {wall_time: 10m}$/limits: {wall_time: 40s}/' "$T/r.yaml" >"$T/r3.yaml"
grep -q 'wall_time: 40s' "$T/r3.yaml" || fail "recipe rewrite"
drive "wait:the shell ended: build exceeded its wall time" "$T/r3.yaml" \
	"$T/res3.json" "$T/term3.log" >"$T/drive3" ||
	{ cat "$T/drive3"; fail "driving the terminal (wall time)"; }
grep -qx 'rc=1' "$T/drive3" || fail "qctl did not exit 1 after the wall time"
expect_eq "$(json "$T/res3.json" 'r["status"]')" failed "status after the wall time"
expect_eq "$(json "$T/res3.json" 'r["hold"]["ended"]')" "build exceeded its wall time of 40s" "hold end"
no_qemu_left
for r in res res2 res3; do
	d=$(json "$T/$r.json" 'r["run_dir"]')
	[ ! -e "$d" ] || fail "run directory $d left behind"
done
echo ok
