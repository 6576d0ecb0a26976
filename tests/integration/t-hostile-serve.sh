# Hostile guests under `qctl serve`: eight builds of the hostile image (bad
# header, EXIT twice, a flood, a closed channel, a slowloris, a panic, a
# guest deaf to POWEROFF, escapes on console and output) and one normal
# build, all at once.  The normal build passes untouched (its output, its
# artifact, its events in order); each hostile one ends with its exit code
# and reason; the server stays up and answers throughout, holds no more fds
# than before, writes no raw terminal control to its log, and nothing of
# any build is left.
. "$(dirname "$0")/serve-lib.sh"

[ -f "$QCTL_IMAGES/hostile/initrd.img" ] ||
	fail "no hostile image in $QCTL_IMAGES (make hostile-image)"

serve_start --max-parallel 9
mkdir -p "$T/src"
head -c 100000 /dev/urandom >"$T/src/marker"
sha=$(sha256sum "$T/src/marker" | cut -d' ' -f1)

serve_py "$T" "$sha" <<'PY'
import os, sys, time
from qmpclient import QMP

sock, pid, T, sha = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
STEP_S = 10

def check(cond, what):
    if not cond:
        raise SystemExit("FAIL: " + what)

def fds():
    return len(os.listdir("/proc/%d/fd" % pid))

c = QMP(sock, timeout=240)
c.negotiate()
base = fds()

def hostile(mode, one_step=False):
    steps = [{"name": "h", "run": "#hostile " + mode, "timeout": "%ds" % STEP_S}]
    if not one_step:
        steps.append({"name": "after", "run": "echo second-step"})
    return {"image": "hostile", "memory": "192M", "steps": steps,
            "limits": {"wall_time": "120s", "log_bytes": "1M"}}

# mode: (status, exit code, words of the reason)
want = {
    "over-max": ("error", 4, "bad frame header (len 65537"),
    "exit-twice": ("error", 4, "unexpected EXIT frame"),
    "flood": ("limit", 3, "wrote more than 1048576 bytes"),
    "close": ("error", 4, "guest agent closed its channel"),
    "slowloris": ("limit", 3, 'step "h" timed out after 10.0s'),
    "panic": ("error", 4, "the guest reset (a kernel panic"),
    "deaf": ("passed", 0, "all 1 steps passed"),
    "console": ("passed", 0, "all 2 steps passed"),
}
t0 = time.monotonic()
ids = {}
normal = c.cmd("build-submit", recipe={
    "memory": "192M", "limits": {"wall_time": "120s"},
    "steps": [{"name": "one", "run": "sha256sum /src/marker; sleep 5; echo one-done"},
              {"name": "two", "run": "cp /src/marker /src/copy && echo two-done"}],
    "artifacts": ["copy"]}, source=T + "/src")["id"]
for m in want:
    ids[m] = c.cmd("build-submit", recipe=hostile(m, m == "deaf"))["id"]
listed = c.cmd("build-list")
check(len(listed) == 9 and all(b["status"] == "running" for b in listed),
      "all nine run at once: %r" % [b["status"] for b in listed])

res, span = {}, {}
for k, i in list(ids.items()) + [("normal", normal)]:
    e = c.wait_event("BUILD_FINISHED", build=i)
    res[k] = e["data"]["result"]
    span[k] = e["timestamp"]["seconds"] + e["timestamp"]["microseconds"] / 1e6
    # the server answers while the others run
    check(c.cmd("query-version")["package"].startswith("qctl"), "query-version")
print("nine builds in %.1fs" % (time.monotonic() - t0))

for m, (status, code, words) in want.items():
    r = res[m]
    print("%-11s %-6s exit %d: %s" % (m, r["status"], r["exit_code"], r["reason"]))
    check(r["status"] == status and r["exit_code"] == code, "%s: %r" % (m, r))
    check(words in r["reason"], "%s: reason %r" % (m, r["reason"]))
    # within the deadlines: the step's timeout, or the power-off grace
    # (5 s) and quit (2 s) of a guest that ignores POWEROFF; 5 s slack
    s = [x for x in r["steps"] if x["started_ms"] is not None][-1]
    after = r["stats"]["wall_ms"] - s["started_ms"]
    if m == "slowloris":
        check(STEP_S * 1000 <= after <= STEP_S * 1000 + 5000, "%s: %d ms" % (m, after))
    elif m == "deaf":
        check(after - s["duration_ms"] <= 7000 + 5000, "%s: %d ms" % (m, after))
    else:
        check(after < STEP_S * 1000, "%s: %d ms after its step started" % (m, after))

# the normal build, untouched
r = res["normal"]
check(r["status"] == "passed" and r["exit_code"] == 0, "normal: %r" % r)
check([s["exit_code"] for s in r["steps"]] == [0, 0], "normal steps")
check([(a["path"], a["sha256"]) for a in r["artifacts"]] == [("copy", sha)],
      "normal artifacts: %r" % r["artifacts"])
log = c.cmd("build-log", id=normal, offset=0, max=1 << 20)
lines = [l for l in log["data"].splitlines() if "| " in l]
check(lines == ["one| %s  /src/marker" % sha, "one| one-done", "two| two-done"],
      "normal build's output: %r" % lines)
seen = [(e["event"] + " " + e["data"].get("step", "")).strip()
        for e in c.events if e["data"].get("build") == normal]
check(seen == ["BUILD_STARTED", "STEP_STARTED one", "STEP_FINISHED one",
               "STEP_STARTED two", "STEP_FINISHED two"], "normal events: %r" % seen)
# ... and it ran beside them: started before each hostile one ended
start = [e for e in c.events if e["event"] == "BUILD_STARTED"
         and e["data"]["build"] == normal][0]["timestamp"]["seconds"]
check(all(start <= span[m] for m in want), "the normal build overlapped none")

# everything is released
for _ in range(100):
    if fds() == base:
        break
    time.sleep(0.1)
check(fds() == base, "server fds %d, %d before the builds" % (fds(), base))
check(all(b["status"] != "running" for b in c.cmd("build-list")), "build-list")
with open(T + "/ids", "w") as f:
    for r in res.values():
        f.write(os.path.basename(r["run_dir"]) + "\n")
print("ok")
PY

no_qemu_left
mapfile -t ids <"$T/ids"
left=$(leftover_cgroups "${ids[@]}")
[ -z "$left" ] || fail "cgroups left: $left"
terminal_clean "$T/serve.log"
terminal_clean "$T/serve.out"
# finished builds keep their run directories until the server forgets them
serve_stop
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "run root not empty: $(ls "$QCTL_RUN_ROOT")"
no_state_records "$T/state"
echo ok
