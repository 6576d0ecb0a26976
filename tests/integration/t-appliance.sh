# timeout: 1500
# The appliance (issue 12, docs/appliance.md): make image-appliance, boot
# it under QEMU here with a results disk and its control port on a
# virtio-serial chardev, and drive the qctl serve inside from the host
# through that socket with a plain QMP client:
#   - the host socket is the operator's alone (mode 0700);
#   - the greeting and query-version come through the relay;
#   - a malformed request gets an error and the server goes on serving;
#   - a trivial build runs nested (TCG inside TCG on this host: minutes)
#     and ends with BUILD_FINISHED passed, its output in build-log;
#   - a second client (after the first left) gets its own greeting and
#     sees the finished build;
#   - quit powers the appliance off, and the results disk (read on the
#     host with debugfs, never mounted) holds the build's result.json and
#     artifact.
# Time to ready and the nested build's times are printed (docs/benchmarks.md
# records them).  Plain pass only: the nested boot alone is 4-5 minutes.
. "$(dirname "$0")/lib.sh"

plain_pass_only "the nested build takes 4-5 minutes (TCG inside TCG)"
command -v debugfs >/dev/null || fail "debugfs not found (e2fsprogs; make deps)"

t0=$SECONDS
make -s -C "$TOP" --no-print-directory image-appliance >"$T/image.log" 2>&1 ||
	{ cat "$T/image.log" >&2; fail "make image-appliance"; }
echo "make image-appliance: $((SECONDS - t0)) s"
A=$TOP/images/out/appliance
for f in initrd.img cmdline image.json; do
	[ -s "$A/$f" ] || fail "$A/$f missing"
done
expect_eq "$(json "$A/image.json" 'r["name"]')" appliance "image.json name"

truncate -s 256M "$T/results.img"
mkfs.ext4 -q -F -L results "$T/results.img"

# booted as an operator would: images/appliance/boot chooses the
# accelerator (TCG here) and execs QEMU, so its PID is QEMU's
SOCK=$T/ctl.sock
start_ns=$(date +%s%N)
"$TOP/images/appliance/boot" -r "$T/results.img" -l "$T/console.log" \
	-o "qctl.verbose=1 qctl.snapshot=0" "$A" "$SOCK" >"$T/qemu.out" 2>&1 &
AP=$!
BG_PIDS+=("$AP")
(wait_for --timeout 300 --what "the appliance's ready line" --alive "$AP" \
	--log "$T/console.log" has_line "$T/console.log" "^appliance: ready") ||
	{ cat "$T/qemu.out" >&2; fail "the appliance did not come up"; }
ready_ms=$((($(date +%s%N) - start_ns) / 1000000))
outer=$(tr '\0' ' ' </proc/"$AP"/cmdline | sed -n 's/.* -accel \([a-z]*\) .*/\1/p')
echo "appliance ready after ${ready_ms} ms (accel ${outer:-?})"
# the socket is the operator's alone: whoever connects is root inside
expect_eq "$(stat -c %a "$SOCK")" 700 "mode of the exported socket"
# an appliance under TCG has TCG's CPU, whose emulated SVM lets kvm_amd
# load: the server inside must see through it
if [ "$outer" = tcg ]; then
	has_line "$T/console.log" "accel tcg" ||
		fail "under TCG, the server inside did not choose TCG:" \
			"$(grep 'accel' "$T/console.log")"
fi

PYTHONPATH="$TOP/tests/integration" python3 - "$SOCK" "$T" <<'EOF' || fail "the session through the exported socket"
import json, sys, time
from qmpclient import QMP, QMPError

sock, T = sys.argv[1], sys.argv[2]
c = QMP(sock, timeout=120)
assert "QMP" in c.greeting, c.greeting
c.negotiate()
v = c.cmd("query-version")
assert v["package"].startswith("qctl"), v

# garbage on the wire: an error, and the session goes on
c.send_raw(b'{"execute": nope}\n')
r = c.recv(timeout=60)
assert "error" in r, r
c.send_raw(b'{"execute": "no-such-command"}\n')
r = c.recv(timeout=60)
assert r.get("error", {}).get("class") == "CommandNotFound", r
assert c.cmd("query-version") == v

t0 = time.time()
b = c.cmd("build-submit", recipe={
    "limits": {"boot_timeout": "20m", "wall_time": "30m"},
    "steps": [{"name": "hello",
               "run": "mkdir -p out; echo nested-$((6 * 7)) | tee out/answer"}],
    "artifacts": ["out/*"],
})
ev = c.wait_event("BUILD_FINISHED", timeout=1500, build=b["id"])
wall = time.time() - t0
res = ev["data"]["result"]
assert res["status"] == "passed", res
assert res["steps"][0]["exit_code"] == 0, res
log = c.cmd("build-log", id=b["id"])
assert "nested-42" in log["data"], log
print("nested build (%s): %.1f s from submit to BUILD_FINISHED, boot %d ms, "
      "step %d ms" % (res["accel"], wall, res["stats"]["boot_ms"],
                      res["steps"][0]["duration_ms"]))
json.dump(res, open(T + "/result.json", "w"))
c.close()

# the next host client: its own session, the same server
time.sleep(0.5)
d = QMP(sock, timeout=120)
assert "QMP" in d.greeting, d.greeting
d.negotiate()
ids = [x["id"] for x in d.cmd("build-list")]
assert b["id"] in ids, ids
assert d.cmd("quit") == {}
EOF

wait_for --timeout 120 --what "the appliance to power off after quit" \
	--log "$T/console.log" gone "$AP"
rc=0
wait "$AP" || rc=$?
expect_eq "$rc" 0 "QEMU's exit status after the appliance powered off"
has_line "$T/console.log" "powering off" || fail "no power-off line"

# the results disk, read without mounting it
runs=$(debugfs -R "ls /runs" "$T/results.img" 2>/dev/null |
	grep -o 'run-[A-Za-z0-9]*' | sort -u)
[ "$(echo "$runs" | wc -w)" = 1 ] || fail "results disk: runs '$runs'"
debugfs -R "cat /runs/$runs/result.json" "$T/results.img" 2>/dev/null \
	>"$T/disk-result.json"
expect_eq "$(json "$T/disk-result.json" 'r["status"]')" passed \
	"result.json on the results disk"
# qctl.snapshot=0: the one nested build boots cold and saves no state
# (saving one under TCG inside TCG costs it about 20 s, for nothing here)
expect_eq "$(json "$T/disk-result.json" 'r["boot"] + "/" + str(r["snapshot_saved"])')" \
	cold/False "the nested build's boot (qctl.snapshot=0)"
answer=$(debugfs -R "cat /runs/$runs/artifacts/out/answer" \
	"$T/results.img" 2>/dev/null)
expect_eq "$answer" nested-42 "the artifact on the results disk"
if debugfs -R "stat /runs/$runs/disk.img" "$T/results.img" 2>&1 |
	grep -q "Inode:"; then
	fail "the scratch disk stayed on the results disk"
fi
echo "PASS: t-appliance"
