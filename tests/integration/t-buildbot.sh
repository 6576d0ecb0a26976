# timeout: 420
# The Buildbot integration (integrations/buildbot): a master of Debian's
# Buildbot with the QctlRun step and two workers (max_builds 1 each), all
# on 127.0.0.1 at ports picked now.  Eight builds forced through the
# master's HTTP API (JSON-RPC "force", the API served by the stand-in
# base plugin in integrations/buildbot/api-only: Debian has no
# buildbot-www): passing recipes SUCCESS with their artifact on the
# master, failing ones FAILURE, a step timeout and a wall time FAILURE
# with "limit exceeded: ..." and qctl_limit, a recipe error and a
# refused run root EXCEPTION (two distinct summaries), a
# build stopped through the API CANCELLED (qctl got SIGTERM: exit 130,
# its result kept); the step's output and result in the build's logs;
# both workers built.  Then master and workers stopped by their
# twistd.pid: no process of theirs, no qctl, no QEMU left.
. "$(dirname "$0")/lib.sh"
plain_pass_only "CI time: the sanitized pass would only rerun qctl run" \
	"paths that t-pass, t-fail, t-timeout, t-limits and t-recipe-errors take"
for tool in buildbot buildbot-worker; do
	command -v "$tool" >/dev/null || fail "$tool missing (make deps installs it)"
done
BB=$TOP/integrations/buildbot
WORKERS="w1 w2"

# -- stop everything this test started, by the pids in twistd.pid ---------
# descendants PID: the processes under PID (a worker's qctl, its QEMU)
descendants() {
	local c
	for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
		echo "$c"
		descendants "$c"
	done
}
# bb_stop DIR: SIGTERM to the twistd of DIR (then -9 after 30 s); a qctl
# it leaves running gets SIGTERM too (qctl tears its VM down on it)
bb_stop() {
	local pid kids p
	[ -f "$1/twistd.pid" ] || return 0
	pid=$(cat "$1/twistd.pid")
	kill -0 "$pid" 2>/dev/null || return 0
	kids=$(descendants "$pid")
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	for p in $kids; do kill -TERM "$p" 2>/dev/null || true; done
	for p in $kids; do
		for _ in $(seq 1 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null || true
	done
}
bb_stop_all() {
	local w
	for w in $WORKERS; do bb_stop "$T/$w"; done
	bb_stop "$T/master"
	for w in $WORKERS; do
		QCTL_RUN_ROOT=$T/$w/runs QCTL_STATE_DIR=$T/$w/state \
			"$QCTL" gc >/dev/null 2>&1 || true
	done
}
bb_logs() { # the master's, short: the reason must stay in run.sh's tail
	[ -f "$T/master/twistd.log" ] || return 0
	echo "--- tail of master/twistd.log" >&2
	tail -12 "$T/master/twistd.log" | cut -c1-200 >&2
}
trap 'rc=$?; [ $rc = 0 ] || [ $rc = 77 ] || bb_logs; bb_stop_all; set +e; (exit $rc); cleanup_test' EXIT

# -- two free ports on 127.0.0.1, held together so that they differ --------
read -r PB_PORT WWW_PORT < <(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
API=http://127.0.0.1:$WWW_PORT/api/v2

# -- recipes ---------------------------------------------------------------
mkdir -p "$T/recipes"
for n in 1 2; do
	cat >"$T/recipes/pass$n.yaml" <<R
image: minimal
limits: {wall_time: 2m}
steps:
  - {name: make, run: "echo making pass$n; mkdir -p out && echo artifact-of-pass$n > out/hello.txt"}
artifacts: ["out/*"]
R
done
for n in 1; do
	cat >"$T/recipes/fail$n.yaml" <<R
image: minimal
steps:
  - {name: check, run: "echo checking fail$n; exit 7"}
R
done
cat >"$T/recipes/timeout.yaml" <<'R'
image: minimal
steps:
  - {name: slow, run: "echo start; sleep 300", timeout: 3s}
R
cat >"$T/recipes/walltime.yaml" <<'R'
image: minimal
limits: {wall_time: 8s}
steps:
  - {name: slow, run: "echo start; sleep 300"}
R
cat >"$T/recipes/cancel.yaml" <<'R'
image: minimal
limits: {wall_time: 2m}
steps:
  - {name: wait, run: "echo waiting; sleep 300"}
R
# forced with "--run-root /tmp" (1777): qctl refuses it, exit 4
cp "$T/recipes/pass1.yaml" "$T/recipes/infra.yaml"
cat >"$T/recipes/error.yaml" <<'R'
image: minimal
stepz: []
R
# (the two EXCEPTIONs last: Buildbot quarantines a worker for 10 s
# after one)
RECIPES="pass1 cancel fail1 timeout pass2 walltime infra error"

# -- the master ------------------------------------------------------------
buildbot create-master -q "$T/master" >"$T/create-master.log" 2>&1 ||
	{ cat "$T/create-master.log"; fail "buildbot create-master"; }
cat >"$T/master/master.cfg" <<M
from buildbot.plugins import schedulers, util, worker
from qctl_buildbot import qctl_steps

c = BuildmasterConfig = {}
c['title'] = 'qctl t-buildbot'
c['buildbotNetUsageData'] = None	# no report to anyone
c['buildbotURL'] = 'http://127.0.0.1:$WWW_PORT/'
c['protocols'] = {'pb': {'port': 'tcp:$PB_PORT:interface=127.0.0.1'}}
c['www'] = {'port': 'tcp:$WWW_PORT:interface=127.0.0.1'}
c['db'] = {'db_url': 'sqlite:///state.sqlite'}
c['collapseRequests'] = False	# eight forced builds stay eight
c['workers'] = [worker.Worker(n, 'pw-' + n, max_builds=1)
                for n in ('w1', 'w2')]
c['builders'] = [util.BuilderConfig(
    name='qctl', workernames=['w1', 'w2'],
    factory=util.BuildFactory(qctl_steps(
        util.Property('recipe'), qctl='$QCTL',
        extra_args=util.Transform(str.split,
                                  util.Property('args', default='')))))]
c['schedulers'] = [schedulers.ForceScheduler(
    name='force', builderNames=['qctl'],
    properties=[util.StringParameter(name='recipe', default=''),
                util.StringParameter(name='args', default='')])]
M
start=$SECONDS
PYTHONPATH=$BB/api-only:$BB buildbot start "$T/master" >"$T/master-start.log" 2>&1 ||
	{ cat "$T/master-start.log" "$T/master/twistd.log" 2>/dev/null | tail -40; fail "buildbot start"; }

# -- two workers, each with its own run root and state directory ----------
for w in $WORKERS; do
	buildbot-worker create-worker -q --umask=0o22 "$T/$w" \
		"127.0.0.1:$PB_PORT" "$w" "pw-$w" >"$T/create-$w.log" 2>&1 ||
		{ cat "$T/create-$w.log"; fail "buildbot-worker create-worker $w"; }
	QCTL_RUN_ROOT=$T/$w/runs QCTL_STATE_DIR=$T/$w/state \
		buildbot-worker start "$T/$w" >"$T/start-$w.log" 2>&1 ||
		{ cat "$T/start-$w.log"; fail "buildbot-worker start $w"; }
done

# api.py: the master's HTTP API (127.0.0.1 only, no proxy)
cat >"$T/api.py" <<'P'
import json, sys, time, urllib.request
api, cmd = sys.argv[1], sys.argv[2]
net = urllib.request.build_opener(urllib.request.ProxyHandler({}))

def get(path):
    with net.open(api + path, timeout=30) as f:
        return json.load(f)

def post(path, body):
    req = urllib.request.Request(api + path, json.dumps(body).encode(),
                                 {"Content-Type": "application/json"})
    with net.open(req, timeout=30) as f:
        return json.load(f)

def wait_check(ok):	# for wait_for: not yet (or no API yet) is 1
    try:
        sys.exit(0 if ok() else 1)
    except OSError:
        sys.exit(1)

if cmd == "workers-connected":	# both workers are attached
    wait_check(lambda: sum(1 for w in get("/workers")["workers"]
                           if w["connected_to"]) == 2)
elif cmd == "force":		# force RECIPE...: one build each
    bid = get("/builders?name=qctl")["builders"][0]["builderid"]
    for i, recipe in enumerate(sys.argv[3:]):
        # the infrastructure error: a run root qctl refuses
        args = "--run-root /tmp" if recipe.endswith("/infra.yaml") else ""
        r = post("/forceschedulers/force",
                 {"jsonrpc": "2.0", "method": "force", "id": i,
                  "params": {"builderid": bid, "recipe": recipe,
                             "args": args}})
        assert "result" in r, r
elif cmd == "stop":		# stop RECIPE MARK: once its stdio has MARK
    def stop():
        for b in get("/builds?complete=false&property=recipe")["builds"]:
            if b["properties"].get("recipe", [""])[0] != sys.argv[3]:
                continue
            for st in get("/builds/%d/steps" % b["buildid"])["steps"]:
                if st["name"] != "qctl":
                    continue
                for l in get("/steps/%d/logs" % st["stepid"])["logs"]:
                    c = get("/logs/%d/contents" % l["logid"])["logchunks"]
                    if l["name"] == "stdio" and any(sys.argv[4] in x["content"] for x in c):
                        r = post("/builds/%d" % b["buildid"],
                                 {"jsonrpc": "2.0", "method": "stop", "id": 1,
                                  "params": {"reason": "t-buildbot"}})
                        assert "result" in r, r
                        return True
        return False
    wait_check(stop)
elif cmd == "done":		# done N: N builds complete
    wait_check(lambda: len(get("/builds?complete=true")["builds"])
               >= int(sys.argv[3]))
elif cmd == "report":		# one JSON line per build
    wn = {w["workerid"]: w["name"] for w in get("/workers")["workers"]}
    for b in get("/builds")["builds"]:
        p = get("/builds/%d?property=*" % b["buildid"])["builds"][0]["properties"]
        steps = get("/builds/%d/steps" % b["buildid"])["steps"]
        q = [s for s in steps if s["name"] == "qctl"][0]
        logs = get("/steps/%d/logs" % q["stepid"])["logs"]
        text = {l["name"]: "".join(c["content"] for c in get(
                    "/logs/%d/contents" % l["logid"])["logchunks"])
                for l in logs}
        print(json.dumps({
            "number": b["number"], "results": b["results"],
            "secs": b["complete_at"] - b["started_at"],
            "state": b["state_string"], "worker": wn[b["workerid"]],
            "recipe": p["recipe"][0], "step_results": q["results"],
            "step_state": q["state_string"],
            "props": {k: v[0] for k, v in p.items() if k.startswith("qctl_")},
            "logs": sorted(text),
            "stdio": text.get("stdio", ""),
            "result": json.loads(text["result.json"]) if "result.json" in text else None,
            "upload": [s["results"] for s in steps if s["name"] == "qctl artifacts"],
        }))
P
api() { python3 "$T/api.py" "$API" "$@"; }
wait_for --timeout 90 --what "the master's API and both workers attached" \
	--log "$T/master/twistd.log" api workers-connected
echo "master and workers up after $((SECONDS - start)) s"
# the master listens on 127.0.0.1 only (its PB and web ports, nothing else)
mpid=$(cat "$T/master/twistd.pid")
ss -Hltnp | grep -F "pid=$mpid," | awk '{print $4}' | sort >"$T/listen"
expect_eq "$(tr '\n' ' ' <"$T/listen")" \
	"$(printf '127.0.0.1:%s\n' "$PB_PORT" "$WWW_PORT" | sort | tr '\n' ' ')" \
	"the master's listening sockets"

args=()
for r in $RECIPES; do args+=("$T/recipes/$r.yaml"); done
api force "${args[@]}" || fail "forcing builds through the API"
# the build of cancel.yaml stopped through the API once its step runs
wait_for --timeout 120 --what "cancel.yaml's step to start, then its stop" \
	--log "$T/master/twistd.log" api stop "$T/recipes/cancel.yaml" "wait| waiting"
wait_for --timeout 240 --what "eight builds to complete" \
	--log "$T/master/twistd.log" api done 8
echo "eight builds done after $((SECONDS - start)) s"
api report >"$T/report"

# -- the checks ------------------------------------------------------------
python3 - "$T/report" "$T/master" <<'P' || fail "build results (above)"
import json, os, sys
SUCCESS, FAILURE, EXCEPTION, CANCELLED = 0, 2, 4, 6
builds = [json.loads(l) for l in open(sys.argv[1])]
master = sys.argv[2]
assert len(builds) == 8, "%d builds" % len(builds)
workers = {b["worker"] for b in builds}
assert workers == {"w1", "w2"}, "builds ran on %s only" % workers
for b in builds:
    name = os.path.basename(b["recipe"])[:-5]
    p = b["props"]
    def want(cond, what):
        short = {k: v for k, v in b.items() if k not in ("stdio", "result")}
        assert cond, "%s (build %d): %s: %s" % (name, b["number"], what, short)
    want(b["results"] == b["step_results"], "build result is the step's")
    if name != "error":	# (qctl refuses that recipe with no result)
        want("result.json" in b["logs"] and
             b["result"]["exit_code"] == p["qctl_exit_code"], "result.json log")
    # the guest's lines, on stderr ("e" in the log); not for the errors
    # (no VM) nor the wall time (its 8 s may end in the boot)
    mark = {"pass": "make| making", "fail": "check| checking",
            "timeout": "slow| start", "cancel": "wait| waiting"}.get(
                name.rstrip("0123456789"))
    if mark:
        want(any(l.startswith("e") and mark in l
                 for l in b["stdio"].splitlines()), "step output in stdio")
    if name.startswith("pass"):
        want(b["results"] == SUCCESS, "SUCCESS")
        want(p["qctl_exit_code"] == 0 and p["qctl_status"] == "passed", "props")
        want(b["upload"] == [SUCCESS], "artifact upload ran")
        f = os.path.join(master, "artifacts/qctl/%d/out/hello.txt" % b["number"])
        want(os.path.isfile(f) and open(f).read() == "artifact-of-%s\n" % name,
             "artifact %s on the master" % f)
    elif name.startswith("fail"):
        want(b["results"] == FAILURE, "FAILURE")
        want(p["qctl_exit_code"] == 1 and p["qctl_status"] == "failed", "props")
        want(b["step_state"].startswith("failed"), "a plain failure's summary")
        want("limit" not in b["step_state"] and "qctl_limit" not in p,
             "no limit on a plain failure")
    elif name in ("timeout", "walltime"):
        lim = {"timeout": "timeout", "walltime": "wall_time"}[name]
        want(b["results"] == FAILURE, "FAILURE")
        want(p["qctl_exit_code"] == 3 and p["qctl_status"] == "limit", "props")
        want(p.get("qctl_limit") == lim, "qctl_limit %s" % lim)
        want(b["step_state"] == "limit exceeded: " + p["qctl_reason"],
             "the limit's summary")
        want("limit exceeded: " in b["state"], "the build's summary")
    elif name == "cancel":	# qctl got SIGTERM, tore down, exited 130
        want(b["results"] == CANCELLED, "CANCELLED")
        want(p["qctl_exit_code"] == 130 and p["qctl_status"] == "cancelled",
             "props")
        want(b["step_state"].startswith("cancelled"), "summary")
    elif name == "infra":
        want(b["results"] == EXCEPTION, "EXCEPTION")
        want(p["qctl_exit_code"] == 4 and p["qctl_status"] == "error", "props")
        want(b["step_state"].startswith("infrastructure error: run root /tmp"),
             "summary")
    elif name == "error":
        want(b["results"] == EXCEPTION, "EXCEPTION")
        want(p["qctl_exit_code"] == 2, "props")
        want(b["step_state"].startswith("recipe error: ") and
             "stepz: unknown key" in b["step_state"], "summary")
    print("ok %-9s build %d on %s, %2d s: %s" % (
        name, b["number"], b["worker"], b["secs"], b["step_state"]))
P

# -- stop by pid; nothing of theirs left -----------------------------------
for d in $WORKERS master; do
	pid=$(cat "$T/$d/twistd.pid")
	kill -TERM "$pid"
	wait_for --timeout 60 --what "$d (pid $pid) to exit on SIGTERM" \
		--log "$T/$d/twistd.log" gone "$pid"
	[ ! -e "$T/$d/twistd.pid" ] || fail "$d left its twistd.pid"
done
left=
for p in /proc/[0-9]*; do
	# a process working in this test's directory: the master's and the
	# workers' twistd, a build's qctl and QEMU
	case $(readlink "$p/cwd" 2>/dev/null) in "$T"|"$T"/*) left="$left ${p#/proc/}" ;; esac
done
[ -z "$left" ] || { ps -o pid,ppid,args -p "$(echo $left | tr ' ' ,)" >&2; fail "processes left:$left"; }
for w in $WORKERS; do
	QCTL_RUN_ROOT=$T/$w/runs no_qemu_left
	[ -z "$(ls -A "$T/$w/runs" 2>/dev/null)" ] || fail "run directories left in $w/runs"
done
echo "ok: $((SECONDS - start)) s from the master's start to its stop"
