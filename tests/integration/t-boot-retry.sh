# A guest that never brings its agent up misses boot_timeout, and one that
# goes down before its agent answers resets: either way the build is retried
# once with a fresh VM, then ends as an infrastructure error (4).
. "$(dirname "$0")/lib.sh"
img="$QCTL_IMAGES/minimal"
# variant NAME RDINIT: the minimal image whose PID 1 is RDINIT
variant() {
	mkdir -p "$T/$1"
	ln -s "$img/vmlinuz" "$T/$1/vmlinuz"
	ln -s "$img/initrd.img" "$T/$1/initrd.img"
	python3 - "$img/image.json" "$T/$1/image.json" "$1" "$2" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
j["name"] = sys.argv[3]
j.pop("kernel_pvh", None)
j["cmdline"] = j["cmdline"] + " rdinit=" + sys.argv[4]
json.dump(j, open(sys.argv[2], "w"))
P
}
# rdinit=/bin/cat: PID 1 reads the console forever, no agent ever answers
variant hang /bin/cat
# no such init and no root device: the kernel panics, and panic=-1 resets
variant reset /no-such-init
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

# a boot timeout far beyond the reset's few seconds: on a loaded host a
# short one would end the boot before the kernel got to its panic
sed 's/boot_timeout: 4s/boot_timeout: 60s/' "$T/r.yaml" >"$T/r60.yaml"
run_qctl 4 --json --image "$T/reset" "$T/r60.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" error status
json "$T/out" 'r["reason"]' | grep -q 'guest reset' ||
	fail "reason: $(json "$T/out" 'r["reason"]')"
expect_eq "$(grep -c 'went down while booting.*retrying with a fresh VM' "$T/err")" 1 \
	"retries announced"
! grep -q SHOULD-NOT-RUN "$T/err" || fail "step ran"
no_qemu_left
run_dir_gone
echo ok
