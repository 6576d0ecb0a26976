# A real build (issue 10): examples/debian-hello.yaml in the debian image.
# apt-get source and build-dep go through qctl's proxy to the image's
# package hosts only; dpkg-buildpackage runs with the network closed (the
# recipe's probe says so); the test step installs the .deb and runs it;
# the .deb files come back with their sha256.  Skips (77) only when the
# package registry is out of reach.
# timeout: 2700
. "$(dirname "$0")/lib.sh"
# the sanitized pass leaves it out: t-debian-shared and t-image-allow take
# its manager paths there (lib.sh)
plain_pass_only "a 10-15 minute compile under TCG"
need_image debian apt
img="$QCTL_IMAGES/debian"
run_qctl 0 --json --artifacts "$T/art" "$TOP/examples/debian-hello.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" passed status
expect_eq "$(json "$T/out" '[s["name"] for s in r["steps"] if s["exit_code"] == 0]')" \
	'["fetch", "build", "test"]' "steps passed"
grep -q '^build| PROBE: network closed' "$T/err" || fail "no closed-network probe in the build step"
grep -q '^test| Hello, world!$' "$T/err" || fail "hello did not greet"
grep -q '^test| built by qctl$' "$T/err" || fail "hello --greeting"
# every request went to a host of the image's apt list, and was allowed
net_on_list "$T/out" "$img/image.json" apt fetch
# the artifacts: hello's .deb at least, each as recorded
python3 - "$T/out" "$T/art" <<'P' || fail "artifacts"
import hashlib, json, os, sys
r = json.load(open(sys.argv[1]))
arts = r["artifacts"]
assert any(a["path"].startswith("hello_") and a["path"].endswith(".deb") for a in arts), arts
for a in arts:
    assert a["path"].endswith(".deb"), a
    data = open(os.path.join(sys.argv[2], a["path"]), "rb").read()
    assert len(data) == a["bytes"] and hashlib.sha256(data).hexdigest() == a["sha256"], a
P
json "$T/out" '" ".join("%s %.0fs" % (s["name"], s["duration_ms"] / 1000) for s in r["steps"]) + " boot %.1fs wall %.0fs" % (r["stats"]["boot_ms"] / 1000, r["stats"]["wall_ms"] / 1000)'
no_qemu_left
run_dir_gone
echo ok
