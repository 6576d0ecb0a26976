# qctl serve: QMP negotiation rules; three builds at once finish with the
# right results and their events in order; build-cancel ends a running build
# and frees what it held; a client that leaves mid-build changes nothing;
# malformed input (bad JSON, a 10 MiB line, wrong types, unknown commands,
# commands before negotiation) gets errors while another client is served;
# socat works as a client; SIGTERM cancels, reaps, removes the socket, exit 0.
. "$(dirname "$0")/serve-lib.sh"

serve_start --max-parallel 3
expect_eq "$(stat -c %a "$SOCK")" 660 "socket mode"
want_gid=$(getent group qctl | cut -d: -f3 || true)
[ -n "$want_gid" ] || want_gid=$(id -g root)
expect_eq "$(stat -c %g "$SOCK")" "$want_gid" "socket group"

mkdir -p "$T/src"
echo marker >"$T/src/marker"
cat >"$T/r.yaml" <<'R'
steps:
  - {name: bad, run: "echo about to fail; exit 7"}
  - {name: never, run: "true"}
R

serve_py "$T" <<'PY'
import os, sys, time
from qmpclient import QMP, QMPError

sock, pid, T = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def fds():
    return len(os.listdir("/proc/%d/fd" % pid))

def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)

# -- negotiation -------------------------------------------------------------
a = QMP(sock)
g = a.greeting["QMP"]
check(set(g["version"]["qemu"]) == {"major", "minor", "micro"}, "greeting: version.qemu")
check(g["version"]["package"].startswith("qctl "), "greeting: package")
check(g["capabilities"] == [], "greeting: capabilities")
a.send({"execute": "query-version", "id": 1})
m = a.recv()
check(m["error"]["class"] == "CommandNotFound" and m["id"] == 1 and
      "qmp_capabilities" in m["error"]["desc"], "before negotiation: %r" % m)
a.send({"execute": "build-list", "id": "x"})
m = a.recv()
check(m["error"]["class"] == "CommandNotFound" and m["id"] == "x", "before negotiation: %r" % m)
check(a.negotiate() == {}, "qmp_capabilities returns {}")
try:
    a.cmd("qmp_capabilities")
    check(False, "second qmp_capabilities accepted")
except QMPError as e:
    check(e.cls == "CommandNotFound", "second qmp_capabilities: %s" % e)
check(a.cmd("query-version")["package"] == g["version"]["package"], "query-version")
# no newline after a request, as qemu.qmp sends them; two in one write
a.send_raw(b'{"execute": "query-version", "id": "n1"}{"execute": "build-list", "id": "n2"}')
check(a.recv()["id"] == "n1" and a.recv() == {"return": [], "id": "n2"}, "requests without newlines")
names = [c["name"] for c in a.cmd("query-commands")]
for n in ("build-submit", "build-list", "build-status", "build-cancel", "build-log",
          "vm-stats", "vm-pause", "vm-resume", "query-version", "query-commands", "quit"):
    check(n in names, "query-commands lacks " + n)
try:
    a.cmd("quit")
    check(False, "quit accepted without --allow-quit")
except QMPError as e:
    check(e.cls == "GenericError" and "allow-quit" in e.desc, "quit refused: %s" % e)
idle = QMP(sock)            # never negotiates: must get no events
print("negotiation ok")

# -- three builds at once ------------------------------------------------------
t0 = time.monotonic()
ids = {}
ids["pass"] = a.cmd("build-submit", recipe={
    "steps": [{"name": "hello", "run": "echo hello-$QCTL_STEP"},
              {"name": "two", "run": "test -f /src/marker"}]},
    source=T + "/src")["id"]
ids["fail"] = a.cmd("build-submit", path=T + "/r.yaml")["id"]
r = a.cmd("build-submit", recipe={"env": {"X": "42"},
                                  "steps": [{"name": "env", "run": "test \"$X\" = 42"}]})
ids["env"] = r["id"]
check(r["status"] == "running", "third build runs at once with --max-parallel 3")
check(len(a.cmd("build-list")) == 3, "build-list has 3")
res = {}
for k, i in ids.items():
    res[k] = a.wait_event("BUILD_FINISHED", timeout=240, build=i)["data"]["result"]
print("three builds in %.1fs" % (time.monotonic() - t0))
check(res["pass"]["status"] == "passed" and res["pass"]["exit_code"] == 0, "pass: %r" % res["pass"])
check(res["env"]["status"] == "passed", "env: %r" % res["env"])
check(res["fail"]["status"] == "failed" and res["fail"]["exit_code"] == 1, "fail: %r" % res["fail"])
check([s["exit_code"] for s in res["fail"]["steps"]] == [7, None], "fail steps")
check(a.cmd("build-status", id=ids["fail"])["result"] == res["fail"], "status result = event result")
# events, per build, in order
want = {"pass": ["BUILD_STARTED", "STEP_STARTED hello", "STEP_FINISHED hello",
                 "STEP_STARTED two", "STEP_FINISHED two", "BUILD_FINISHED"],
        "fail": ["BUILD_STARTED", "STEP_STARTED bad", "STEP_FINISHED bad", "BUILD_FINISHED"],
        "env": ["BUILD_STARTED", "STEP_STARTED env", "STEP_FINISHED env", "BUILD_FINISHED"]}
seen = {k: [] for k in ids}
# BUILD_FINISHED events were taken by wait_event; the rest are queued in order
for e in a.events:
    for k, i in ids.items():
        if e["data"].get("build") == i:
            seen[k].append((e["event"] + " " + e["data"].get("step", "")).strip())
            check("seconds" in e["timestamp"] and "microseconds" in e["timestamp"], "timestamp")
for k in ids:
    check(seen[k] + ["BUILD_FINISHED"] == want[k], "%s events: %r" % (k, seen[k]))
fin = [e for e in a.events if e["event"] == "STEP_FINISHED" and e["data"]["build"] == ids["fail"]]
check(fin[0]["data"]["exit_code"] == 7, "STEP_FINISHED exit_code")
a.events.clear()
log = a.cmd("build-log", id=ids["pass"], offset=0)
check("hello| hello-hello" in log["data"] and log["eof"], "build-log: %r" % log)
tail = a.cmd("build-log", id=ids["pass"], max=100)
check(tail["next"] == tail["size"] and len(tail["data"]) <= 100, "build-log tail")
print("three builds ok")

# -- cancel a running build ------------------------------------------------------
base = fds()
i = a.cmd("build-submit", recipe={"steps": [{"name": "long", "run": "echo started; sleep 600"}]})["id"]
a.wait_event("STEP_STARTED", timeout=120, build=i)
st = a.cmd("vm-stats", id=i)
qpid = st["qemu_pid"]
check(qpid and os.path.exists("/proc/%d" % qpid), "vm-stats: a live QEMU pid")
check(st["step"] == "long" and st["stats"]["wall_ms"] > 0, "vm-stats: %r" % st)
check(fds() > base, "a running build holds fds")
def qemu_cpu():
    f = open("/proc/%d/stat" % qpid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def frozen():  # None where the host has no cgroup v2 for QEMU
    rel = [l[3:].strip() for l in open("/proc/%d/cgroup" % qpid) if l.startswith("0::")]
    for m in open("/proc/self/mountinfo"):
        f = m.split()
        if f[f.index("-") + 1] == "cgroup2" and rel and rel[0].startswith("/qctl/"):
            ev = open(f[4] + rel[0] + "/cgroup.events").read()
            return "frozen 1" in ev
    return None
def until(cond, what, timeout=60):
    # the kernel freezes a cgroup's tasks in its own time: wait for the
    # state, bounded, instead of sleeping and hoping
    end = time.monotonic() + timeout
    while not cond():
        check(time.monotonic() < end, "%s within %d s" % (what, timeout))
        time.sleep(0.05)
a.cmd("vm-pause", id=i)
check(a.cmd("build-status", id=i)["paused"] is True, "paused")
if frozen() is not None:
    until(lambda: frozen() is True, "QEMU's cgroup frozen while paused")
    c0 = qemu_cpu(); time.sleep(1.0)
    check(qemu_cpu() == c0, "no CPU used while paused")
a.cmd("vm-resume", id=i)
check(a.cmd("build-status", id=i)["paused"] is False, "resumed")
if frozen() is not None:
    until(lambda: frozen() is False, "QEMU's cgroup thawed")
a.cmd("vm-pause", id=i)   # and cancel it while paused
c = a.cmd("build-cancel", id=i)
check(c["status"] in ("running", "cancelled"), "build-cancel: %r" % c)
r = a.wait_event("BUILD_FINISHED", timeout=30, build=i)["data"]["result"]
check(r["status"] == "cancelled" and r["exit_code"] == 130, "cancelled: %r" % r)
check(a.cmd("build-status", id=i)["status"] == "cancelled", "status cancelled")
end = time.monotonic() + 60
while time.monotonic() < end:
    if not os.path.exists("/proc/%d" % qpid) and fds() == base:
        break
    time.sleep(0.05)
check(not os.path.exists("/proc/%d" % qpid), "QEMU gone after cancel")
check(fds() == base, "fds back to %d after cancel, not %d" % (base, fds()))
try:
    a.cmd("build-cancel", id=i)
    check(False, "cancel of a finished build accepted")
except QMPError as e:
    check("finished" in e.desc, "cancel finished: %s" % e)
a.events.clear()
print("cancel ok")

# -- a client leaves mid-build -------------------------------------------------
b = QMP(sock)
b.negotiate()
i = b.cmd("build-submit", recipe={"steps": [{"name": "s", "run": "sleep 2; echo done"}]})["id"]
b.wait_event("STEP_STARTED", timeout=120, build=i)
b.close()
r = a.wait_event("BUILD_FINISHED", timeout=120, build=i)["data"]["result"]
check(r["status"] == "passed", "build of a departed client: %r" % r)
check("s| done" in a.cmd("build-log", id=i)["data"], "its log")
a.events.clear()
print("departed client ok")

# -- malformed input, while another client is served ----------------------------
m = QMP(sock)
m.negotiate()
def err(raw, cls="GenericError", has_id=None):
    m.send_raw(raw)
    r = m.recv()
    check("error" in r and r["error"]["class"] == cls, "%r -> %r" % (raw[:60], r))
    check(r.get("id") == has_id, "%r -> id %r" % (raw[:60], r.get("id")))
    return r["error"]["desc"]
check("JSON parse error" in err(b'{"execute": "build-list", bad json}\n'), "bad JSON")
err(b'\xff\xfe garbage \x00\n')
err(b'[1, 2, 3]\n')
err(b'{"arguments": {}, "id": 5}\n', has_id=5)
check("expected: string" in err(b'{"execute": "build-status", "arguments": {"id": 42}, "id": "t"}\n',
                               has_id="t"), "wrong type")
err(b'{"execute": "build-log", "arguments": {"id": "b1", "offset": "0"}, "id": 6}\n', has_id=6)
err(b'{"execute": "build-submit", "arguments": {"recipe": "steps"}, "id": 7}\n', has_id=7)
err(b'{"execute": "build-submit", "arguments": {"recipe": {"steps": 3}}, "id": 8}\n', has_id=8)
err(b'{"execute": "no-such-command", "id": [1]}\n', "CommandNotFound", has_id=[1])
t1 = time.monotonic()
d = err(b'{"execute": "build-submit", "arguments": {"recipe": {"x": "' +
        b"A" * (10 << 20) + b'"}}, "id": "big"}\n')
check("longer than 1048576" in d, "10 MiB line: %s" % d)
print("10 MiB line refused in %.2fs" % (time.monotonic() - t1))
check(m.cmd("query-version")["package"].startswith("qctl"), "usable after 10 MiB")
d = err(b"x" * (3 << 20) + b"\n")
check(m.cmd("build-list") is not None, "usable after 3 MiB of garbage")
check(a.cmd("build-list") is not None, "the other client is still served")
print("malformed ok")

# the never-negotiated client got no events, only its greeting
idle.sock.settimeout(0.2)
try:
    data = idle.sock.recv(65536)
except OSError:
    data = b""
check(idle.buf == b"" and data == b"", "events before negotiation: %r" % data[:200])
idle.sock.settimeout(10)
check(idle.negotiate() == {}, "late negotiation")
print("ok")
PY

# socat, a generic client: negotiation and a command, line by line
if command -v socat >/dev/null; then
	printf '%s\n' '{"execute": "qmp_capabilities"}' \
		'{"execute": "query-version", "id": "s1"}' \
		'{"execute": "build-list", "id": "s2"}' |
		socat -t 60 - "UNIX-CONNECT:$SOCK" >"$T/socat.out"
	expect_eq "$(wc -l <"$T/socat.out")" 4 "socat: greeting and three replies"
	grep -q '^{"QMP": {"version": {"qemu": ' "$T/socat.out" || fail "socat: greeting"
	expect_eq "$(sed -n 2p "$T/socat.out" | tr -d '\r')" '{"return": {}}' "socat: negotiation"
	sed -n 3p "$T/socat.out" | grep -q '"package": "qctl .*"id": "s1"' || fail "socat: query-version"
	sed -n 4p "$T/socat.out" | grep -q '^{"return": \[{"id": "b1"' || fail "socat: build-list"
else
	echo "socat not installed: skipping the socat client"
fi

# SIGTERM with a build running: it ends cancelled, the server exits 0
serve_py <<'PY' &
import sys
from qmpclient import QMP
c = QMP(sys.argv[1])
c.negotiate()
i = c.cmd("build-submit", recipe={"steps": [{"name": "long", "run": "echo started; sleep 600"}]})["id"]
c.wait_event("STEP_STARTED", timeout=120, build=i)
print("running", flush=True)
e = c.wait_event("SHUTDOWN", timeout=60)
r = c.wait_event("BUILD_FINISHED", timeout=60, build=i)["data"]["result"]
if r["status"] != "cancelled":
    raise SystemExit("FAIL: status %s after SIGTERM" % r["status"])
try:
    while True:
        c.recv(30)
except EOFError:
    print("eof")
PY
client=$!
BG_PIDS+=("$client")
long_runs() { [ -n "$(qemu_pids_of_test)" ] && has_line "$T/serve.log" 'long\| started'; }
wait_for --timeout 300 --what "the long build's QEMU and its step" --alive "$client" \
	--log "$T/serve.log" long_runs
serve_stop
wait "$client" || fail "client saw no clean cancel and EOF"
no_qemu_left
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "run root not empty: $(ls "$QCTL_RUN_ROOT")"
no_state_records "$T/state"
grep -q 'submitted by uid 0' "$T/serve.log" || fail "submitter uid not logged"

# A client that is not root: what it names is read with its rights, not the
# server's; its uid is what the server records.
D=$(mktemp -d /tmp/qctl-it-serve.XXXXXX)
chmod 755 "$D"
mkdir -m 700 "$D/secret"
printf 'steps: [{name: t, run: "true"}]\n' >"$D/secret.yaml"
chmod 600 "$D/secret.yaml"
SOCK=$D/sock
serve_start --socket-mode 0666
setpriv --reuid=nobody --regid=nogroup --clear-groups env \
	PYTHONPATH="$TOP/tests/integration" /usr/bin/python3 - "$SOCK" "$D" <<'PY' ||
import sys
from qmpclient import QMP, QMPError
sock, D = sys.argv[1], sys.argv[2]
c = QMP(sock)
c.negotiate()
steps = [{"name": "t", "run": "true"}]
for what, args in (("recipe file", {"path": D + "/secret.yaml"}),
                   ("source", {"recipe": {"source": D + "/secret", "steps": steps}}),
                   ("source argument", {"recipe": {"steps": steps}, "source": D + "/secret"})):
    try:
        c.cmd("build-submit", **args)
        raise SystemExit("FAIL: nobody could use root's %s" % what)
    except QMPError as e:
        if "Permission denied" not in e.desc:
            raise SystemExit("FAIL: %s: %s" % (what, e.desc))
i = c.cmd("build-submit", recipe={"steps": steps})["id"]
if c.cmd("build-status", id=i)["uid"] != 65534:
    raise SystemExit("FAIL: uid of the submitter")
r = c.wait_event("BUILD_FINISHED", timeout=120, build=i)["data"]
if r["uid"] != 65534 or r["result"]["status"] != "passed":
    raise SystemExit("FAIL: nobody's build: %r" % r)
PY
	{ rm -rf "$D"; fail "unprivileged client"; }
grep -q 'submitted by uid 65534' "$T/serve.log" || fail "uid 65534 not logged"
serve_stop
rm -rf "$D"
no_qemu_left
echo ok
