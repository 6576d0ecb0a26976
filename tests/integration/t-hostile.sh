# Hostile guests under `qctl run`: the test agent of images/out/hostile
# (tests/hostile/hostile.c) breaks the agent protocol on purpose, and builds
# on the normal image attack PID 1 or fill /src.  Every build ends within
# its deadlines with the right exit code and a reason that names what
# happened; qctl's output carries no raw terminal control; nothing is left
# (QEMU, run directory, state record, cgroup, network namespace).
. "$(dirname "$0")/lib.sh"

[ -f "$QCTL_IMAGES/hostile/initrd.img" ] ||
	fail "no hostile image in $QCTL_IMAGES (make hostile-image)"
# the production agent and image have none of it
! grep -qaF '#hostile' "$TOP/build/guestagent" ||
	fail "build/guestagent contains the hostile agent"
! grep -qaF '#hostile' "$QCTL_IMAGES/minimal/initrd.img" ||
	fail "the minimal image contains the hostile agent"

STEP_S=10		# the hostile step's timeout
WALL_S=200		# every build's wall_time
SHUTDOWN_MS=7000	# build-int.h: POWEROFF_GRACE_MS + QUIT_GRACE_MS
SLACK_MS=5000		# killing and reaping QEMU on a loaded host
JOBS=${QCTL_HOSTILE_JOBS:-7}	# builds at once (2 cores, TCG)
test_netns		# one case has a fetch step: its namespace must go too

# hostile MODE [yaml]: a recipe whose step "h" is MODE, then a normal step
hostile() {
	cat >"$T/$1.yaml" <<R
image: hostile
memory: 192M
limits: {boot_timeout: 60s, wall_time: ${WALL_S}s, log_bytes: 1M}
${2:-}
steps:
  - {name: h, run: "#hostile $1", timeout: ${STEP_S}s${3:-}}
  - {name: after, run: "echo second-step"}
R
}

# CASES: NAME RC STATUS KIND REASON-REGEX.  KIND is how the end is bounded,
# from the step's start: "now" (the violation ends it before the step's
# timeout), "timeout" (the timeout ends it, plus the kill), "shutdown" (the
# step passes; the guest is stopped after the power-off grace); or from the
# start of the build: "boot" (no step ran; within three boot timeouts: a
# boot, its retry, and setup or a stalled upload); "stall" (the artifacts
# stand still: a boot timeout after the step, plus the kill); "wall" (the
# wall time ends it, plus the kill).
CASES=()
# QCTL_HOSTILE_ONLY="name ...": only these cases (to look at one)
case_add() {
	case " ${QCTL_HOSTILE_ONLY:-$1} " in *" $1 "*) CASES+=("$*") ;; esac
}
# more of the same kind (each build costs ~7 s of CPU here): with
# QCTL_HOSTILE_FULL=1 only
extra() { [ "${QCTL_HOSTILE_FULL:-0}" = 1 ]; }

# Before any step, chosen on the kernel command line (qctl.hostile=MODE)
# of a copy of the image: HELLO, the manager's setup, the source upload.
# The boot timeout bounds the setup, and the upload while it stands still.
BOOT_S=60
head -c 3000000 /dev/urandom >"$T/src.blob"
mkdir -p "$T/src" && mv "$T/src.blob" "$T/src/blob"
boot_mode() {
	mkdir -p "$T/img-$1"
	for f in vmlinuz vmlinux initrd.img; do
		[ ! -e "$QCTL_IMAGES/hostile/$f" ] ||
			ln -s "$QCTL_IMAGES/hostile/$f" "$T/img-$1/$f"
	done
	# (no python: a start of it costs seconds on this loaded host)
	printf '{"name":"hostile-%s","kernel":"vmlinuz","kernel_pvh":"vmlinux","initrd":"initrd.img","cmdline":"%s qctl.hostile=%s"}\n' \
		"$1" "$(cat "$QCTL_IMAGES/hostile/cmdline")" "$1" >"$T/img-$1/image.json"
	cat >"$T/$1.yaml" <<R
image: $T/img-$1
memory: 192M
source: $T/src
limits: {boot_timeout: ${BOOT_S}s, wall_time: ${WALL_S}s}
steps: [{name: never, run: "echo SHOULD-NOT-RUN"}]
R
}
# The longest first.
boot_mode setup-silent;		case_add setup-silent 4 error boot '^guest setup did not finish within 60s \(the boot timeout\)$'
boot_mode upload-silent;	case_add upload-silent 4 error boot '^source upload made no progress for 60s \(the boot timeout\)$'
extra && boot_mode upload-deaf && case_add upload-deaf 4 error boot '^source upload made no progress for 60s \(the boot timeout\)$'
boot_mode setup-flood;		case_add setup-flood 4 error boot '^guest setup wrote more than 16384 bytes of output$'
boot_mode hello-len0;		case_add hello-len0 4 error boot 'broke the protocol: short HELLO$'
extra && boot_mode hello-version && case_add hello-version 4 error boot 'broke the protocol: agent speaks protocol 99, not 2$'

hostile truncated;		case_add truncated 3 limit timeout 'step "h" timed out after 10.0s'
hostile slowloris;		case_add slowloris 3 limit timeout 'step "h" timed out after 10.0s'
extra && hostile silent && case_add silent 3 limit timeout 'step "h" timed out after 10.0s'
hostile deaf
sed -i '/name: after/d' "$T/deaf.yaml"	# the agent is deaf after step h
case_add deaf 0 passed shutdown 'all 1 steps passed'
hostile len0-exit;		case_add len0-exit 4 error now 'broke the protocol: EXIT of 0 bytes'
extra && hostile len0-started && case_add len0-started 4 error now 'broke the protocol: malformed STARTED \(0 bytes\)'
extra && hostile len0-error && case_add len0-error 4 error now 'broke the protocol: short status frame'
hostile over-max;		case_add over-max 4 error now 'broke the protocol: bad frame header \(len 65537, flags 0\)'
# with a fetch step: a namespace, helper and proxy to tear down as well
hostile len-4g 'allow: ["127.0.0.1:9"]' ', network: fetch'
case_add len-4g 4 error now 'broke the protocol: bad frame header \(len 4294967295,'
extra && hostile bad-flags && case_add bad-flags 4 error now 'bad frame header \(len 2, flags 0x8000\)'
extra && hostile truncated-close && case_add truncated-close 4 error now '^guest agent closed its channel$'
hostile close;			case_add close 4 error now '^guest agent closed its channel$'
hostile unknown-id;		case_add unknown-id 4 error now 'unexpected STDOUT frame \(type 66, [0-9]+ bytes\) for id 1100$'
extra && hostile unknown-type && case_add unknown-type 4 error now 'unexpected unknown frame \(type 30583, 1 bytes\) for id 100$'
hostile exit-twice;		case_add exit-twice 4 error now 'unexpected EXIT frame \(type 68, 8 bytes\) for id 100$'
hostile stdout-after-exit;	case_add stdout-after-exit 4 error now 'unexpected STDOUT frame .* for id 100$'
hostile exit-before-started;	case_add exit-before-started 4 error now 'unexpected EXIT frame .* for id 100 before STARTED$'
extra && hostile hello-again && case_add hello-again 4 error now 'broke the protocol: HELLO twice'
hostile error-esc;		case_add error-esc 4 error now '^step could not start: denied \?\]0;owned'
hostile flood;			case_add flood 3 limit now 'step "h" wrote more than 1048576 bytes of output'
# floods that no byte limit would count
hostile empty-flood;		case_add empty-flood 4 error now 'broke the protocol: empty STDOUT frame for id 100$'
extra && hostile pong-flood && case_add pong-flood 4 error now 'unexpected PONG frame \(type 70, 32768 bytes\) for id 100$'
hostile console;		case_add console 0 passed now 'all 2 steps passed'
hostile panic;			case_add panic 4 error now 'guest shut down unexpectedly: the guest reset \(a kernel panic or a reboot\)'
extra && hostile poweroff && case_add poweroff 4 error now 'guest shut down unexpectedly: the guest powered off'

# Deaf after the step, so its artifacts never come: the collection fails
# when it stands still for a boot timeout; else the wall time ends it, and
# a failed step's result stands.
ART_WALL_S=60
art() {
	cat >"$T/$1.yaml" <<R
image: hostile
memory: 192M
limits: {boot_timeout: $2, wall_time: $3}
steps: [{name: h, run: "#hostile $4", timeout: ${STEP_S}s}]
artifacts: ["x"]
R
}
art art-stall ${BOOT_S}s ${WALL_S}s deaf;		case_add art-stall 4 error stall '^artifact collection made no progress for 60s \(the boot timeout\)$'
art art-wall 60s ${ART_WALL_S}s deaf;			case_add art-wall 3 limit wall '^build exceeded its wall time of 60s$'
art art-wall-failed 60s ${ART_WALL_S}s deaf-fail;	case_add art-wall-failed 1 failed wall '^step "h" failed with exit code 1$'

# The normal image: signals for PID 1 (all but those it handles are
# dropped by the kernel), then SIGTERM, its power-off request.
cat >"$T/kill1.yaml" <<R
memory: 192M
limits: {boot_timeout: 60s, wall_time: ${WALL_S}s}
steps:
  - name: h
    run: for s in KILL SEGV BUS ABRT ILL FPE STOP HUP INT QUIT; do kill -\$s 1; done; sleep 1; echo pid1-alive
  - {name: after, run: "echo second-step"}
  - {name: term, run: "kill -TERM 1; sleep 600", timeout: ${STEP_S}s}
R
case_add kill1 4 error now 'guest shut down unexpectedly: the guest powered off'
# ... and /src filled up: ENOSPC in the guest, the agent carries on
cat >"$T/fill.yaml" <<R
memory: 192M
limits: {boot_timeout: 60s, wall_time: ${WALL_S}s, disk: 64M}
steps:
  - {name: h, run: "dd if=/dev/zero of=/src/fill bs=1M; echo dd-exit=\$?", timeout: ${STEP_S}s}
  - {name: after, run: "echo x > /src/small && echo small-written"}
artifacts: ["small"]
R
case_add fill 0 passed now 'all 2 steps passed'

# -- run them, JOBS at a time ---------------------------------------------
declare -A NAME_OF=() T0=() RC=() MS=()
launch() {
	local n=$1
	# ip netns exec execs qctl: $! is the manager itself
	ip netns exec "$NS" "$QCTL" run -v --json "$T/$n.yaml" \
		>"$T/$n.out" 2>"$T/$n.err" &
	NAME_OF[$!]=$n
	T0[$n]=$(date +%s%N)
	BG_PIDS+=("$!")
}
exited() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

t_all=$(date +%s)
queue=()
for c in "${CASES[@]}"; do queue+=("${c%% *}"); done
while [ ${#queue[@]} -gt 0 ] || [ ${#NAME_OF[@]} -gt 0 ]; do
	while [ ${#queue[@]} -gt 0 ] && [ ${#NAME_OF[@]} -lt "$JOBS" ]; do
		launch "${queue[0]}"
		queue=("${queue[@]:1}")
	done
	sleep 0.2
	for p in "${!NAME_OF[@]}"; do
		n=${NAME_OF[$p]}
		if ! exited "$p"; then
			# no build may outlive its wall time and the teardown:
			# one that does is killed (exit 137) and fails below
			[ $(( ($(date +%s%N) - T0[$n]) / 1000000 )) -gt $(( WALL_S * 1000 + SHUTDOWN_MS + SLACK_MS )) ] ||
				continue
			echo "FAIL: $n: qctl still running past its wall time" >&2
			kill -9 "$p"
		fi
		rc=0
		wait "$p" || rc=$?
		RC[$n]=$rc
		MS[$n]=$(( ($(date +%s%N) - T0[$n]) / 1000000 ))
		unset "NAME_OF[$p]"
	done
done
echo "${#CASES[@]} builds in $(( $(date +%s) - t_all )) s, $JOBS at a time"

# -- check each, in one python: a start per case costs seconds here --------
for c in "${CASES[@]}"; do
	n=${c%% *}
	printf '%s\t%s\t%s\n' "$c" "${RC[$n]}" "${MS[$n]}"
done >"$T/cases"
python3 - "$T" "$STEP_S" "$WALL_S" "$SHUTDOWN_MS" "$SLACK_MS" "$BOOT_S" \
	"$ART_WALL_S" <<'P' >"$T/ids" ||
import json, os, re, sys
T, step_s, wall_s, shut, slack, boot_s, art_wall_s = sys.argv[1], \
    *map(int, sys.argv[2:])
tmo = step_s * 1000
bad = 0
def clean(f):
    # no ESC, DEL or C1 (raw or UTF-8 encoded) on qctl's terminal side
    s = open(f, "rb").read().decode("utf-8", "surrogateescape")
    m = re.search("[\x1b\x7f\x80-\x9f\udc80-\udcff]", s)
    return None if not m else "raw control at %d: %r" % (
        m.start(), s[max(0, m.start() - 20):m.start() + 20])
for line in open(T + "/cases"):
    case, got_rc, ms = line.rstrip("\n").split("\t")
    name, rc, status, kind, rx = case.split(" ", 4)
    errs = []
    if got_rc != rc:
        errs.append("exit %s, expected %s" % (got_rc, rc))
    try:
        r = json.load(open("%s/%s.out" % (T, name)))
    except ValueError as e:
        r = None
        errs.append("no result JSON: %s" % e)
    if r:
        if r["status"] != status or r["exit_code"] != int(rc):
            errs.append("status %s/%s, expected %s/%s" % (
                r["status"], r["exit_code"], status, rc))
        if not re.search(rx, r["reason"]):
            errs.append("reason does not match %r" % rx)
        want = None if status != "limit" else (
            "log_bytes" if "output" in rx else
            "wall_time" if "wall time" in rx else "timeout")
        if (r["limit"] or {}).get("name") != want:
            errs.append("limit %r, expected %r" % (r["limit"], want))
        # the step that ended the build: the last one that started
        ran = [x for x in r["steps"] if x["started_ms"] is not None]
        s = ran[-1] if ran else {"started_ms": 0, "duration_ms": 0}
        after = r["stats"]["wall_ms"] - s["started_ms"]
        if kind == "boot" and (ran or after > 3 * boot_s * 1000 + slack):
            errs.append("%d steps ran, ended after %d ms" % (len(ran), after))
        if kind == "now" and not after < tmo:
            # ended by what the guest did, not by the step's deadline
            errs.append("ended %d ms after its step started (timeout %d)"
                        % (after, tmo))
        if kind == "timeout" and not tmo <= after <= tmo + slack:
            errs.append("ended %d ms after its step started" % after)
        rest = after - s["duration_ms"]
        if kind == "stall" and not boot_s * 1000 <= rest <= boot_s * 1000 + slack:
            errs.append("ended %d ms after its step" % rest)
        wall = r["stats"]["wall_ms"]
        if kind == "wall" and not art_wall_s * 1000 <= wall <= art_wall_s * 1000 + slack:
            errs.append("ended after %d ms" % wall)
        if kind == "shutdown" and after - s["duration_ms"] > shut + slack:
            # POWEROFF ignored: QEMU stopped after the grace periods
            errs.append("shutdown took %d ms" % (after - s["duration_ms"]))
        if name == "fill" and [a["path"] for a in r["artifacts"]] != ["small"]:
            errs.append("artifacts %r" % r["artifacts"])
        if os.path.exists(r["run_dir"]):
            errs.append("run directory %s left" % r["run_dir"])
        print(os.path.basename(r["run_dir"]))
        print("%-20s exit %s in %5.1fs (%5.1fs after the step started): %s"
              % (name, rc, r["stats"]["wall_ms"] / 1000, after / 1000,
                 r["reason"]), file=sys.stderr)
    if int(ms) > wall_s * 1000 + shut + slack:
        errs.append("qctl took %s ms" % ms)
    for f in ("out", "err"):
        e = clean("%s/%s.%s" % (T, name, f))
        if e:
            errs.append("%s: %s" % (f, e))
    for e in errs:
        bad += 1
        print("FAIL: %s: %s" % (name, e), file=sys.stderr)
        if e.startswith(("exit", "no result")):
            sys.stderr.write(open("%s/%s.err" % (T, name)).read()[-1500:])
sys.exit(bad != 0)
P
	fail "results above"
mapfile -t ids <"$T/ids"

# what the guest showed, as text, and what it could not stop
ran() { [ -n "${RC[$1]:-}" ]; }
! grep -q SHOULD-NOT-RUN "$T"/*.err || fail "a step ran after a broken boot"
if ran console; then
	grep -q '^h| visible-marker ' "$T/console.err" || fail "console: the marker line is missing"
	grep -q '^h| after-junk$' "$T/console.err" || fail "console: the line after the junk is missing"
	grep -q '^after| second-step$' "$T/console.err" || fail "console: second step"
fi
! ran deaf || grep -q '^h| step done; ignoring POWEROFF' "$T/deaf.err" || fail "deaf: its step output"
if ran kill1; then
	grep -q '^h| pid1-alive$' "$T/kill1.err" || fail "kill1: PID 1 did not survive the signals it does not handle"
	grep -q '^after| second-step$' "$T/kill1.err" || fail "kill1: the agent did not serve after the signals"
fi
if ran fill; then
	grep -q '^h| dd-exit=1$' "$T/fill.err" || fail "fill: no ENOSPC in the guest"
	grep -q '^after| small-written$' "$T/fill.err" || fail "fill: no write after ENOSPC"
fi

# nothing left of any of them
no_qemu_left
for id in "${ids[@]}"; do
	[ ! -e "/run/netns/qctl-$id" ] || fail "namespace qctl-$id left"
done
left=$(leftover_cgroups "${ids[@]}")
[ -z "$left" ] || fail "cgroups left: $left"
no_state_records "$QCTL_STATE_DIR"
[ -z "$(ls -A "$QCTL_RUN_ROOT" 2>/dev/null)" ] || fail "run root not empty: $(ls "$QCTL_RUN_ROOT")"
echo ok
