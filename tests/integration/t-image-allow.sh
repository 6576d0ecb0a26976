# allow: ["image:NAME"] (issue 10): the image's recorded host list NAME is
# what the proxy allows, and nothing else; a list the image lacks, or one it
# recorded empty, is a recipe error (exit 2) before anything boots.  The
# image is the minimal one with a made-up "hosts" in its image.json; the
# manager and two upstreams (8080 on the image's list, 8081 not) run in a
# namespace of the test's own.
. "$(dirname "$0")/lib.sh"
img="$T/listed"
mkdir -p "$img"
for f in vmlinuz vmlinux initrd.img; do
	[ ! -e "$QCTL_IMAGES/minimal/$f" ] || ln -s "$QCTL_IMAGES/minimal/$f" "$img/$f"
done
python3 - "$QCTL_IMAGES/minimal/image.json" "$img/image.json" <<'P'
import json, sys
j = json.load(open(sys.argv[1]))
j["name"] = "listed"
j["hosts"] = {"mirror": ["127.0.0.1:8080"], "empty": []}
json.dump(j, open(sys.argv[2], "w"))
P
test_netns
ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" 8080 --tag listed &
BG_PIDS+=($!)
ip netns exec "$NS" python3 "$TOP/tests/integration/upstream.py" 8081 --tag unlisted &
BG_PIDS+=($!)
up() { in_ns python3 -c 'import socket,sys; [socket.create_connection(("127.0.0.1",p),1) for p in (8080,8081)]' 2>/dev/null; }
wait_for --timeout 60 --what "the upstreams on 8080 and 8081" up
qctl_ns() {
	in_ns env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" \
		QCTL_IMAGES="$QCTL_IMAGES" "$QCTL" run --json --image "$img" "$@"
}
cat >"$T/r.yaml" <<'R'
allow: ["image:mirror"]
steps:
  - name: fetch
    network: fetch
    run: |
      wget -q -O got.txt http://127.0.0.1:8080/file.txt && echo "LISTED:$(cat got.txt)"
      wget -O - http://127.0.0.1:8081/file.txt 2>&1 | grep -q 403 && echo "UNLISTED:403"
R
rc=0
qctl_ns "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
[ "$rc" = 0 ] || { tail -30 "$T/err"; fail "exit $rc"; }
grep -q '^fetch| LISTED:hello-from-listed$' "$T/err" || fail "the listed host was not reached"
grep -q '^fetch| UNLISTED:403$' "$T/err" || fail "a host off the list was not refused"
expect_eq "$(json "$T/out" '[(e["host"], e["port"], e["allowed"]) for e in r["network"]]')" \
	'[["127.0.0.1", 8080, true], ["127.0.0.1", 8081, false]]' "network record"
run_dir_gone

for bad in nosuch empty; do
	sed "s/image:mirror/image:$bad/" "$T/r.yaml" >"$T/bad.yaml"
	rc=0
	qctl_ns "$T/bad.yaml" >"$T/out" 2>"$T/err" || rc=$?
	expect_eq "$rc" 2 "exit code of image:$bad"
	json "$T/out" 'r["reason"]' | grep -q "allow \"image:$bad\": image listed recorded no" ||
		fail "reason for image:$bad: $(json "$T/out" 'r["reason"]')"
	! grep -q "guest up" "$T/err" || fail "image:$bad booted a VM"
	run_dir_gone
done
no_qemu_left
echo ok
