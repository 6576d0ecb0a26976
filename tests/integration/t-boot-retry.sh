# A guest that never brings its agent up misses boot_timeout: the build is
# retried once with a fresh VM, then ends as an infrastructure error (4).
. "$(dirname "$0")/lib.sh"
img="$QCTL_IMAGES/minimal"
mkdir -p "$T/hang"
ln -s "$img/vmlinuz" "$T/hang/vmlinuz"
ln -s "$img/initrd.img" "$T/hang/initrd.img"
# rdinit=/bin/cat: PID 1 reads the console forever, no agent ever answers
python3 - "$img/image.json" "$T/hang/image.json" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
j["name"] = "hang"
j["cmdline"] = j["cmdline"] + " rdinit=/bin/cat"
json.dump(j, open(sys.argv[2], "w"))
P
cat >"$T/r.yaml" <<'R'
limits: {boot_timeout: 4s}
steps: [{name: never, run: "echo SHOULD-NOT-RUN"}]
R
run_qctl 4 --json --image "$T/hang" "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" error status
json "$T/out" 'r["reason"]' | grep -q '2 attempts' || fail "reason: $(json "$T/out" 'r["reason"]')"
grep -q 'retrying with a fresh VM' "$T/err" || fail "no retry announced"
! grep -q SHOULD-NOT-RUN "$T/err" || fail "step ran"
no_qemu_left
run_dir_gone
echo ok
