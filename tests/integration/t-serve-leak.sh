# qctl serve does not grow: 50 trivial builds, submitted one after another
# through one server (two at a time), leave its open fds and its RSS where
# 5 builds left them (fds equal, RSS within 2 MiB).
. "$(dirname "$0")/serve-lib.sh"
# sanitized, RSS means nothing and every build path is in t-serve (lib.sh)
plain_pass_only "50 builds; ASan's RSS makes the bound meaningless"

serve_start --max-parallel 2
serve_py <<'PY'
import sys, time
from qmpclient import QMP

sock, pid = sys.argv[1], int(sys.argv[2])
N, FIRST, WINDOW = 50, 5, 2
recipe = {"steps": [{"name": "t", "run": "true"}]}

def fds():
    return len(__import__("os").listdir("/proc/%d/fd" % pid))

def rss_kib():
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

c = QMP(sock)
c.negotiate()
done = 0
inflight = []
t0 = time.monotonic()
marks = {}

def settle():
    # The engine's build is freed a loop round after BUILD_FINISHED (a
    # timer: timers run after a round's I/O).  Each round trip is read
    # in a later round than the one before answered it: by the second
    # the freeing round is over, however slow the host; a third for luck.
    for _ in range(3):
        c.cmd("build-list")

for n in range(1, N + 1):
    inflight.append(c.cmd("build-submit", recipe=recipe)["id"])
    while len(inflight) >= WINDOW or (n in (FIRST, N) and inflight):
        e = c.wait_event("BUILD_FINISHED", timeout=240)
        i = e["data"]["build"]
        r = e["data"]["result"]
        if r["status"] != "passed":
            raise SystemExit("FAIL: build %s: %s: %s" % (i, r["status"], r["reason"]))
        inflight.remove(i)
        done += 1
    if n in (FIRST, N):
        settle()
        marks[n] = (fds(), rss_kib())
        print("after %2d builds (%.0fs): %d fds, RSS %d KiB" %
              (n, time.monotonic() - t0, marks[n][0], marks[n][1]), flush=True)
    c.events.clear()
(f5, r5), (f50, r50) = marks[FIRST], marks[N]
if f50 != f5:
    raise SystemExit("FAIL: fds grew from %d to %d" % (f5, f50))
# (Under ASan freed memory waits in a quarantine of up to 256 MiB, so RSS
# says nothing there; LeakSanitizer checks the server when it exits.)
if r50 - r5 > 2048:
    raise SystemExit("FAIL: RSS grew by %d KiB (> 2 MiB)" % (r50 - r5))
kept = c.cmd("build-list")
if len(kept) > 16 or any(b["status"] != "passed" for b in kept):
    raise SystemExit("FAIL: build-list after %d: %r" % (N, kept))
print("%d builds in %.0fs; fds %d -> %d, RSS %d -> %d KiB" %
      (N, time.monotonic() - t0, f5, f50, r5, r50))
PY
# only the remembered builds' run directories remain, and QEMU is gone
expect_eq "$(ls "$QCTL_RUN_ROOT" | wc -l)" 16 "run directories of remembered builds"
no_qemu_left
serve_stop
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "run root not empty: $(ls "$QCTL_RUN_ROOT")"
echo ok
