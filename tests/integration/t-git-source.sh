#!/usr/bin/env bash
# source: {git: REPO, ref: REF}: the manager fetches a local repository on
# the host and checks out exactly the commit the ref names (recorded in
# the result), without .git, hooks or the repository's configuration; a
# bad ref is a recipe error (exit 2) that boots no VM and leaves nothing;
# a fetch that hangs is killed at the boot timeout (exit 4), by ^C (130)
# or, its manager killed, by qctl gc; under qctl serve the fetch has the
# client's rights: a root-only repository is refused at build-submit, one
# whose .git only is root's when the fetch runs (exit_code 2), and the
# client's own is built.
. "$(dirname "$0")/serve-lib.sh"

U=qctlgit$$
D=$(mktemp -d /tmp/qctl-it-git.XXXXXX)
FIFO_REPO=
git_cleanup() {
	userdel "$U" 2>/dev/null || true
	rm -rf "$D"
}
trap 'rc=$?; [ $rc = 0 ] || tail -40 "$T/serve.log" >&2 2>/dev/null; serve_kill; git_cleanup; (exit $rc); cleanup_test' EXIT

# git for the test's own set-up: no user's configuration
g() { git -c user.name=qctl-test -c user.email=test@invalid -c init.defaultBranch=main "$@"; }

# -- a repository with two commits: f.txt differs between them ------------
REPO=$T/repo
g init -q "$REPO"
echo content-one >"$REPO/f.txt"
g -C "$REPO" add f.txt
g -C "$REPO" commit -q -m one
C1=$(g -C "$REPO" rev-parse HEAD)
g -C "$REPO" tag -a -m "first" v1
echo content-two >"$REPO/f.txt"
g -C "$REPO" commit -q -a -m two
C2=$(g -C "$REPO" rev-parse HEAD)
[ "$C1" != "$C2" ] || fail "test set-up: one commit"

recipe() { # FILE SOURCE-MAPPING [LIMITS]
	cat >"$1" <<R
source: $2
${3:-}
steps:
  - name: show
    run: cat /src/f.txt; ls -a /src
R
}

# built() REF WANT-COMMIT WANT-CONTENT
built() {
	recipe "$T/r.yaml" "{git: $REPO, ref: $1}"
	run_qctl 0 --json "$T/r.yaml"
	expect_eq "$(json "$T/out" 'r["status"]')" passed "ref $1: status"
	expect_eq "$(json "$T/out" 'r["source"]["commit"]')" "$2" "ref $1: commit recorded"
	expect_eq "$(json "$T/out" 'r["source"]["ref"]')" "$1" "ref $1: ref recorded"
	expect_eq "$(json "$T/out" 'r["source"]["git"]')" "$REPO" "ref $1: repository recorded"
	grep -qx "show| $3" "$T/err" || { tail -20 "$T/err"; fail "ref $1: f.txt is not $3"; }
	# the work tree only: no .git (nor anything else of ours) in /src
	grep -qx 'show| \.git' "$T/err" && fail "ref $1: .git was sent to the guest"
	grep -qx 'show| f.txt' "$T/err" || fail "ref $1: ls -a /src shows no f.txt"
	no_qemu_left
	run_dir_gone
}
built "$C1" "$C1" content-one
built main "$C2" content-two
built v1 "$C1" content-one	# an annotated tag: its commit
echo "commit, branch and tag: checked out and recorded"

# -- a bad ref: exit 2 naming it and the recipe's line, no VM, nothing left
recipe "$T/r.yaml" "{git: $REPO, ref: no-such-branch}"
run_qctl 2 --json "$T/r.yaml"
grep -q 'r.yaml:1: source: ref "no-such-branch" is not a branch, tag or commit' "$T/err" ||
	{ cat "$T/err"; fail "bad ref: unclear message"; }
expect_eq "$(json "$T/out" 'r["exit_code"]')" 2 "bad ref: exit_code in the result"
expect_eq "$(json "$T/out" 'r["status"]')" error "bad ref: status"
expect_eq "$(json "$T/out" 'r["source"]["commit"]')" None "bad ref: no commit recorded"
grep -q 'guest up' "$T/err" && fail "bad ref: a VM was booted"
no_qemu_left
run_dir_gone
# no repository there: the same
recipe "$T/r.yaml" "{git: $T/none, ref: main}"
run_qctl 2 "$T/r.yaml"
grep -q "source: cannot read repository $T/none: No such file" "$T/out" ||
	{ cat "$T/out" "$T/err"; fail "missing repository: unclear message"; }
# the recipe itself: network URLs and unknown keys (no fetch at all)
recipe "$T/r.yaml" "{git: 'https://example.invalid/x.git', ref: main}"
run_qctl 2 "$T/r.yaml"
grep -q 'r.yaml:1: source.git: .*network URLs are not allowed' "$T/err" || { cat "$T/err"; fail "https URL"; }
recipe "$T/r.yaml" "{git: $REPO, branch: main}"
run_qctl 2 "$T/r.yaml"
grep -q 'r.yaml:1: source.branch: unknown key' "$T/err" || { cat "$T/err"; fail "unknown key"; }
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "bad refs left $(ls "$QCTL_RUN_ROOT")"
echo "bad ref, missing repository, network URL, unknown key: exit 2, nothing left"

# -- a repository whose hooks and config would run commands ----------------
EVIL=$T/evil
MARK=$T/marker
g clone -q "$REPO" "$EVIL"
printf '#!/bin/sh\necho "$0 $*" >>%s\nexit 0\n' "$MARK" >"$T/trap.sh"
chmod 755 "$T/trap.sh"
for h in post-checkout post-merge reference-transaction pre-upload \
	post-update pre-receive update fsmonitor-watchman; do
	cp "$T/trap.sh" "$EVIL/.git/hooks/$h"
done
git config -f "$EVIL/.git/config" core.fsmonitor "$T/trap.sh"
git config -f "$EVIL/.git/config" core.hooksPath "$EVIL/.git/hooks"
git config -f "$EVIL/.git/config" uploadpack.packObjectsHook "$T/trap.sh"
git config -f "$EVIL/.git/config" core.sshCommand "$T/trap.sh"
git config -f "$EVIL/.git/config" core.alternateRefsCommand "$T/trap.sh"
git config -f "$EVIL/.git/config" filter.trap.smudge "$T/trap.sh"
git config -f "$EVIL/.git/config" filter.trap.clean cat
git config -f "$EVIL/.git/config" filter.trap.required true
# a commit that asks for that filter and a submodule
echo '* filter=trap' >"$EVIL/.gitattributes"
g -C "$EVIL" -c core.fsmonitor=false -c core.hooksPath=/dev/null add .gitattributes
printf '[submodule "sub"]\n\tpath = sub\n\turl = %s\n' "$REPO" >"$EVIL/.gitmodules"
g -C "$EVIL" -c core.fsmonitor=false -c core.hooksPath=/dev/null add .gitmodules
g -C "$EVIL" -c core.fsmonitor=false -c core.hooksPath=/dev/null \
	update-index --add --cacheinfo "160000,$C1,sub"
g -C "$EVIL" -c core.fsmonitor=false -c core.hooksPath=/dev/null commit -q -m evil
[ ! -e "$MARK" ] || fail "test set-up: the trap went off already"
cat >"$T/r.yaml" <<R
source: {git: $EVIL}
steps:
  - name: show
    run: cat /src/f.txt; ls -a /src; echo "sub:$(ls -A /src/sub 2>/dev/null | wc -l)"
R
run_qctl 0 --json "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["source"]["ref"]')" HEAD "default ref"
expect_eq "$(json "$T/out" 'r["source"]["commit"]')" "$(g -C "$EVIL" rev-parse HEAD)" "evil: commit"
[ ! -e "$MARK" ] || { cat "$MARK"; fail "a hook or config of the repository ran: $(cat "$MARK")"; }
grep -qx 'show| content-two' "$T/err" || fail "evil: f.txt"
grep -qx 'show| .gitmodules' "$T/err" || fail "evil: .gitmodules not in /src"
# the submodule's directory is there and empty: not fetched
grep -qx 'show| sub:0' "$T/err" || { grep '^show|' "$T/err"; fail "evil: the submodule was checked out"; }
no_qemu_left
run_dir_gone
# the trap was armed: git's own status in that repository springs it
g -C "$EVIL" status >/dev/null 2>&1 || true
[ -e "$MARK" ] || fail "test set-up: core.fsmonitor of the repository never runs"
echo "hooks, fsmonitor, upload-pack hook, smudge filter, submodule: none ran"

# -- a fetch that never ends: killed at the boot timeout, by ^C, by gc -------
SLOW=$T/slow
g clone -q --bare "$REPO" "$SLOW"
g -C "$SLOW" pack-refs --all
rm -f "$SLOW/packed-refs"
mkfifo "$SLOW/packed-refs"	# git's read of the refs blocks for ever
git_left() { pgrep -f -- "$SLOW" || true; }

recipe "$T/r.yaml" "{git: $SLOW, ref: main}" "limits: {boot_timeout: 2s}"
start=$SECONDS
run_qctl 4 --json "$T/r.yaml"
[ $((SECONDS - start)) -lt 60 ] || fail "timeout: took $((SECONDS - start))s"
grep -q "fetching $SLOW took longer than 2s (limits.boot_timeout)" "$T/err" || { cat "$T/err"; fail "timeout message"; }
run_dir_gone
wait_for --timeout 30 --what "the timed-out git to go" test -z "$(git_left)"

recipe "$T/r.yaml" "{git: $SLOW, ref: main}"
: >"$T/out"; : >"$T/err"	# emptied now: the job itself may empty them only after the wait below has read the last run's lines
"$QCTL" run "$T/r.yaml" >"$T/out" 2>"$T/err" &
QP=$!
BG_PIDS+=("$QP")
wait_for --timeout 60 --alive "$QP" --what "the fetch to start" \
	sh -c "ls -d '$QCTL_RUN_ROOT'/run-*/git >/dev/null 2>&1"
kill -INT "$QP"
rc=0
wait "$QP" || rc=$?
expect_eq "$rc" 130 "^C during the fetch"
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "^C left $(ls "$QCTL_RUN_ROOT")"
wait_for --timeout 30 --what "git to go after ^C" test -z "$(git_left)"

: >"$T/out"; : >"$T/err"	# emptied now: the job itself may empty them only after the wait below has read the last run's lines
"$QCTL" run "$T/r.yaml" >"$T/out" 2>"$T/err" &
QP=$!
BG_PIDS+=("$QP")
wait_for --timeout 60 --alive "$QP" --what "the fetch to start" \
	sh -c "ls -d '$QCTL_RUN_ROOT'/run-*/git >/dev/null 2>&1"
kill -9 "$QP"
wait "$QP" 2>/dev/null || true
BG_PIDS=()
wait_for --timeout 30 --what "git to go with its manager" test -z "$(git_left)"
"$QCTL" gc >"$T/gc.out" 2>&1 || { cat "$T/gc.out"; fail "qctl gc"; }
[ -z "$(ls -A "$QCTL_RUN_ROOT")" ] || fail "gc left $(ls "$QCTL_RUN_ROOT")"
echo "a hanging fetch: boot timeout (exit 4), ^C (130), killed manager + gc: nothing left"

# -- qctl serve: the client's rights --------------------------------------
useradd -M -N -g nogroup -G qctl -s /usr/sbin/nologin "$U"
chmod 755 "$D"
# git needs search rights on the directories above its work directory
# (the run root is mounted over in its own namespace: docs/git-source.md)
chmod 711 "$T"
TOKEN=qctl-git-secret-$$-$RANDOM$RANDOM
mkdir -m 700 "$D/root-only"
g init -q "$D/root-only/repo"
echo "$TOKEN" >"$D/root-only/repo/f.txt"
g -C "$D/root-only/repo" add f.txt
g -C "$D/root-only/repo" commit -q -m secret
# one whose directory opens but whose .git is root's alone: only the
# fetch itself (as the client) can find out
mkdir -m 755 "$D/half"
g clone -q "$D/root-only/repo" "$D/half/repo"
chmod 755 "$D/half/repo"
chmod 700 "$D/half/repo/.git"
# the client's own repository
g clone -q "$REPO" "$D/own"
chown -R "$U:nogroup" "$D/own"
mkdir "$D/out" && chown "$U" "$D/out"
cp "$TOP/tests/integration/qmpclient.py" "$D/" && chmod 644 "$D/qmpclient.py"
SOCK=$D/sock
serve_start
setpriv --reuid="$U" --regid=nogroup --init-groups env \
	PYTHONPATH="$D" /usr/bin/python3 - "$SOCK" "$D" "$C2" >"$T/client.out" 2>&1 <<'PY' ||
import json, sys
from qmpclient import QMP, QMPError
sock, D, c2 = sys.argv[1], sys.argv[2], sys.argv[3]
c = QMP(sock, timeout=180)
c.negotiate()
step = [{"name": "show", "run": "cat /src/f.txt"}]

def finished(i):
    r = c.wait_event("BUILD_FINISHED", timeout=300, build=i)["data"]["result"]
    log, off = "", 0
    while True:
        ch = c.cmd("build-log", id=i, offset=off)
        log += ch["data"]
        if ch["next"] == off:
            break
        off = ch["next"]
    return r, log

def refused(what, args, want):
    try:
        r = c.cmd("build-submit", **args)
    except QMPError as e:
        if want not in e.desc:
            raise SystemExit("FAIL: %s: %s" % (what, e.desc))
        print("%s refused: %s" % (what, e.desc))
        return
    raise SystemExit("FAIL: %s accepted: %r" % (what, r))

refused("root-only repository", {"recipe": {"source": {
    "git": D + "/root-only/repo"}, "steps": step}}, "Permission denied")
refused("root-only repository, file://", {"recipe": {"source": {
    "git": "file://" + D + "/root-only/repo", "ref": "main"},
    "steps": step}}, "Permission denied")
root = c.cmd("build-submit", recipe={"source": {"git": D + "/half/repo"},
                                     "steps": step})["id"]
own = c.cmd("build-submit", recipe={"source": {"git": D + "/own", "ref": "main"},
                                    "steps": step})["id"]
rel = None
try:
    c.cmd("build-submit", recipe={"source": {"git": "own"}, "steps": step})
except QMPError as e:
    rel = e.desc
if not rel or "must be an absolute path" not in rel:
    raise SystemExit("FAIL: a relative git path in a recipe object: %r" % rel)
r, log = finished(root)
if r["status"] != "error" or r["exit_code"] != 2 or \
        "cannot fetch from" not in r["reason"] or r["source"]["commit"]:
    raise SystemExit("FAIL: root's .git: %r" % r)
print("root's .git: build refused: %s" % r["reason"])
blob = json.dumps([r, log])
r2, log2 = finished(own)
if r2["status"] != "passed" or r2["source"]["commit"] != c2 or \
        "show| content-two" not in log2:
    raise SystemExit("FAIL: the client's own repository: %r\n%s" % (r2, log2))
print("own repository built at %s" % r2["source"]["commit"])
json.dump({"blob": blob + json.dumps([r2, log2]),
           "run_dirs": [r["run_dir"], r2["run_dir"]]},
          open(D + "/out/out.json", "w"))
print("client ok")
PY
	{ cat "$T/client.out" >&2; fail "serve client"; }
cat "$T/client.out"
python3 - "$D/out/out.json" "$TOKEN" <<'PY' || fail "serve results"
import json, os, sys
o, token = json.load(open(sys.argv[1])), sys.argv[2]
if token in o["blob"]:
    raise SystemExit("FAIL: root's bytes reached the client")
for d in o["run_dirs"]:
    # serve keeps run directories for build-log; never the checkout,
    # and the run directory is root's alone again
    if d and os.path.exists(os.path.join(d, "git")):
        raise SystemExit("FAIL: checkout left in %s" % d)
    if d and os.stat(d).st_mode & 0o777 != 0o700:
        raise SystemExit("FAIL: %s is mode %o" % (d, os.stat(d).st_mode))
PY
if grep -rqsF -e "$TOKEN" "$QCTL_RUN_ROOT"; then fail "token in a run directory"; fi
serve_stop
no_qemu_left
echo ok
