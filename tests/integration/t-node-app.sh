# A real build (issue 10): examples/node-app in the debian-node image.
# `npm ci` in a fetch step reaches the npm registry only through qctl's
# proxy (CONNECT, the image's npm hosts); `npm test` runs with the network
# closed.  Skips (77) only when the registry is out of reach.
. "$(dirname "$0")/lib.sh"
need_image debian-node npm
img="$QCTL_IMAGES/debian-node"
(cd "$TOP/examples/node-app" && run_qctl 0 --json)
expect_eq "$(json "$T/out" 'r["status"]')" passed status
grep -q '^test| # pass 3$' "$T/err" || fail "npm test did not pass its 3 tests"
grep -q '^test| # fail 0$' "$T/err" || fail "npm test failures"
python3 - "$T/out" "$img/image.json" <<'P' || fail "network record"
import json, sys
r = json.load(open(sys.argv[1]))
hosts = set(json.load(open(sys.argv[2]))["hosts"]["npm"])
net = r["network"]
assert net, "no request recorded"
for e in net:
    assert e["step"] == "deps" and e["allowed"], e
    assert e["method"] == "CONNECT", e
    assert "%s:%d" % (e["host"], e["port"]) in hosts, e
P
json "$T/out" '" ".join("%s %.0fs" % (s["name"], s["duration_ms"] / 1000) for s in r["steps"]) + " boot %.1fs wall %.0fs" % (r["stats"]["boot_ms"] / 1000, r["stats"]["wall_ms"] / 1000)'
no_qemu_left
run_dir_gone
echo ok
