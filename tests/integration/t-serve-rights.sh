#!/usr/bin/env bash
# qctl serve reads what a client names with the client's rights only: a
# member of the qctl group who cannot read root's files gets none of their
# bytes into a guest or a log, through a source tree (/etc, /root, hard and
# symbolic links in its own tree) or an image directory; a FIFO image.json
# gets an error while another build on the same server runs on.
. "$(dirname "$0")/serve-lib.sh"

U=qctlit$$
D=$(mktemp -d /tmp/qctl-it-rights.XXXXXX)
SECRET=$D/root-only/secret
TOKEN=qctl-secret-$$-$RANDOM$RANDOM
userdel_on_exit() { userdel "$U" 2>/dev/null || true; rm -rf "$D"; }
trap 'rc=$?; [ $rc = 0 ] || tail -40 "$T/serve.log" >&2; serve_kill; userdel_on_exit; (exit $rc); cleanup_test' EXIT

useradd -M -N -g nogroup -G qctl -s /usr/sbin/nologin "$U"
chmod 755 "$D"
# a root-only file on the same file system as the client's tree
mkdir -m 755 "$D/root-only"
echo "$TOKEN" >"$SECRET"
chmod 600 "$SECRET"
# the client's own tree, with a hard link (made by root: the kernel's
# protected_hardlinks would stop the client) and a symlink to root's files
mkdir "$D/tree"
echo hello >"$D/tree/ok.txt"
chown -R "$U:nogroup" "$D/tree"
ln "$SECRET" "$D/tree/hl"	# (a chown -R after this would give it away)
ln -s "$SECRET" "$D/tree/sl"
chown -h "$U:nogroup" "$D/tree/sl"
[ "$(stat -c %U:%a "$SECRET")" = root:600 ] || fail "test set-up: secret not root's"
# a client's image directory whose initrd is a symlink to a root-only file
mkdir "$D/img"
cp "$TOP/images/out/minimal/image.json" "$TOP/images/out/minimal/vmlinuz" "$D/img/"
ln -s "$SECRET" "$D/img/initrd.img"
chown -R "$U:nogroup" "$D/img"
# images with a root disk: one a symlink to root's file, one root's own
for r in rimg-link rimg-root; do
	mkdir "$D/$r"
	python3 - "$TOP/images/out/minimal/image.json" "$D/$r/image.json" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
j.pop("kernel_pvh", None)
j["root"] = "rootfs.img"
json.dump(j, open(sys.argv[2], "w"))
P
	cp "$TOP/images/out/minimal/vmlinuz" "$TOP/images/out/minimal/initrd.img" "$D/$r/"
done
ln -s "$SECRET" "$D/rimg-link/rootfs.img"
chown -R "$U:nogroup" "$D/rimg-link" "$D/rimg-root"
cp "$SECRET" "$D/rimg-root/rootfs.img"
chmod 600 "$D/rimg-root/rootfs.img"
# a real one the client may read (if this host has it): it boots, and its
# root disk went in as the client's open file
DEBIAN_IMG=
[ ! -f "$QCTL_IMAGES/debian/image.json" ] || DEBIAN_IMG=$(cd "$QCTL_IMAGES/debian" && pwd)
# ... and one whose image.json is a FIFO
mkdir "$D/fifo-img"
mkfifo "$D/fifo-img/image.json"
chown -R "$U:nogroup" "$D/fifo-img"
mkdir "$D/out" && chown "$U" "$D/out"
cp "$TOP/tests/integration/qmpclient.py" "$D/"
chmod 644 "$D/qmpclient.py"
# what must never show up: our token, and root's line of /etc/shadow
SHADOW_ROOT=$(grep '^root:' /etc/shadow)

SOCK=$D/sock
serve_start
[ "$(stat -c %G "$SOCK")" = qctl ] || fail "socket group is $(stat -c %G "$SOCK")"

setpriv --reuid="$U" --regid=nogroup --init-groups env \
	PYTHONPATH="$D" /usr/bin/python3 - "$SOCK" "$D" "$DEBIAN_IMG" >"$T/client.out" 2>&1 <<'PY' ||
import json, sys, time
from qmpclient import QMP, QMPError
sock, D, debian = sys.argv[1], sys.argv[2], sys.argv[3]
c = QMP(sock, timeout=180)
c.negotiate()

def refused(what, args, want):
    t0 = time.monotonic()
    try:
        r = c.cmd("build-submit", **args)
    except QMPError as e:
        if want not in e.desc:
            raise SystemExit("FAIL: %s: %s" % (what, e.desc))
        print("%s refused in %.2fs: %s" % (what, time.monotonic() - t0, e.desc))
        return
    raise SystemExit("FAIL: %s accepted: %r" % (what, r))

def finished(i):
    r = c.wait_event("BUILD_FINISHED", timeout=300, build=i)["data"]["result"]
    log = ""
    off = 0
    while True:
        ch = c.cmd("build-log", id=i, offset=off)
        log += ch["data"]
        if ch["next"] == off:
            break
        off = ch["next"]
    return r, log

# A long build first: it must run on, untouched, while the others fail
# (long enough to outlast the refusals on a loaded host by far).
long_id = c.cmd("build-submit", recipe={"steps": [
    {"name": "long", "run": "sleep 20; echo long-done"}]})["id"]

builds = {}
builds["etc"] = c.cmd("build-submit", recipe={"source": "/etc", "steps": [
    {"name": "leak", "run": "cat /src/shadow /src/gshadow 2>&1; true"}]})["id"]
builds["links"] = c.cmd("build-submit", recipe={"source": D + "/tree", "steps": [
    {"name": "leak", "run": "cat /src/hl /src/sl 2>&1; ls -l /src; true"}]})["id"]
refused("source /root", {"recipe": {"source": "/root", "steps": [
    {"name": "t", "run": "true"}]}}, "Permission denied")
refused("image with a symlinked initrd", {"recipe": {"image": D + "/img",
    "steps": [{"name": "t", "run": "true"}]}}, "symbolic link")
refused("image with a symlinked root disk", {"recipe": {"image": D + "/rimg-link",
    "steps": [{"name": "t", "run": "true"}]}}, "symbolic link")
refused("image with root's root disk", {"recipe": {"image": D + "/rimg-root",
    "steps": [{"name": "t", "run": "true"}]}}, "Permission denied")
if debian:
    builds_ok = c.cmd("build-submit", recipe={"image": debian, "steps": [
        {"name": "t", "run": "cat /etc/debian_version"}]})["id"]
refused("FIFO image.json", {"recipe": {"image": D + "/fifo-img",
    "steps": [{"name": "t", "run": "true"}]}}, "not a regular file")
refused("recipe file of root's", {"path": D + "/root-only/secret"},
        "Permission denied")

if c.cmd("build-status", id=long_id)["status"] not in ("queued", "running"):
    raise SystemExit("FAIL: the long build did not wait for its turn")
out = {}
for name, i in builds.items():
    r, log = finished(i)
    out[name] = {"result": r, "log": log}
if debian:
    r, log = finished(builds_ok)
    if r["status"] != "passed" or not any(ch.isdigit() for ch in log):
        raise SystemExit("FAIL: the client's debian image: %r" % r)
    print("the client's debian image booted: %s" % r["status"])
r, log = finished(long_id)
if r["status"] != "passed" or "long-done" not in log:
    raise SystemExit("FAIL: the build beside the refused ones: %r" % r)
json.dump(out, open(D + "/out/out.json", "w"))
print("client ok")
PY
	{ cat "$T/client.out" >&2; fail "client"; }
cat "$T/client.out"

python3 - "$D/out/out.json" "$TOKEN" "$SHADOW_ROOT" <<'PY' || fail "results"
import json, sys
out, token, shadow = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
for name, o in out.items():
    r = o["result"]
    blob = json.dumps(o)
    if token in blob or shadow in blob:
        raise SystemExit("FAIL: %s: root-only bytes reached the client" % name)
    # the tree could not be read as the client: an error naming why
    if r["status"] != "error" or "Permission denied" not in r["reason"]:
        raise SystemExit("FAIL: %s: %s: %s" % (name, r["status"], r["reason"]))
    print("%s: %s" % (name, r["reason"]))
PY
# nor in anything the server kept (run directories, console logs)
if grep -rqsF -e "$TOKEN" "$QCTL_RUN_ROOT"; then fail "token in a run directory"; fi
grep -q "submitted by uid $(id -u "$U")" "$T/serve.log" || fail "client uid not logged"
serve_stop
no_qemu_left
echo ok
