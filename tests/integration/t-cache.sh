#!/usr/bin/env bash
# The recipe cache (docs/cache.md): what a passing build's fetch steps
# wrote is seen by the next build, in fetch and non-fetch steps; a
# non-fetch step cannot write it (EROFS), and what it writes after
# remounting it read-write as root is not kept (the host copied the disk
# when the fetch steps ended); a build that fails, ends on a limit or is
# cancelled leaves no trace; two submitters' keys of one name never meet;
# a small --cache-max evicts the least recently used keys; serve keeps
# its keys in its --cache-dir and removes a dead build's sealed copy
# there when it starts; nothing but the stored images (and their lock
# files) is left behind.
. "$(dirname "$0")/serve-lib.sh"

CM=$T/state/cache/$(id -u)
# recipe FILE KEY FETCH_SCRIPT [NONE_SCRIPT] [NONE_TIMEOUT]
recipe() {
	cat >"$1" <<R
cache: {key: $2, paths: [/var/cache/dl, /opt/deps], size: 32M}
steps:
  - name: fetch
    network: fetch
    run: |
$(printf '%s\n' "$3" | sed 's/^/      /')
R
	[ -z "${4:-}" ] || cat >>"$1" <<R
  - name: use
${5:+    timeout: $5
}    run: |
$(printf '%s\n' "$4" | sed 's/^/      /')
R
}
status() { json "$T/out" 'r["status"]'; }
cache_of() { json "$T/out" 'r["cache"]["'"$1"'"]'; }
has_out() { grep -q -- "$1" "$T/err" || fail "$2 (no '$1' in the output)"; }
lacks_out() { ! grep -q -- "$1" "$T/err" || fail "$2 ('$1' in the output)"; }

# recipe errors (exit 2, no VM): a fetch step after a non-fetch step
cat >"$T/bad.yaml" <<'R'
cache: {key: a, paths: [/var/cache/dl]}
steps:
  - {name: use, run: "true"}
  - {name: fetch, network: fetch, run: "true"}
R
run_qctl 2 "$T/bad.yaml"
grep -q 'fetch step "fetch" comes after step "use"' "$T/err" || fail "order error: $(cat "$T/err")"
cat >"$T/bad.yaml" <<'R'
cache: {key: a, paths: [/src/node_modules]}
steps: [{name: s, run: "true"}]
R
run_qctl 2 "$T/bad.yaml"
grep -q 'cache.paths\[0\]: "/src/node_modules": /src and what is under it' "$T/err" || fail "path error: $(cat "$T/err")"

# (1) a miss, kept; then a hit, seen in both kinds of step
recipe "$T/a.yaml" a 'ls /var/cache/dl; echo one >/var/cache/dl/f; mkdir -p /opt/deps/x; echo two >/opt/deps/x/g' \
	'cat /var/cache/dl/f /opt/deps/x/g'
run_qctl 0 --json "$T/a.yaml"
expect_eq "$(cache_of lookup)/$(cache_of kept)" miss/True "first build's cache"
[ -f "$CM/a.img" ] || fail "a.img not stored after a pass"
recipe "$T/a2.yaml" a 'cat /var/cache/dl/f && echo fetch-saw-$(cat /opt/deps/x/g)' \
	'echo use-saw-$(cat /var/cache/dl/f)-$(cat /opt/deps/x/g)'
run_qctl 0 --json "$T/a2.yaml"
expect_eq "$(cache_of lookup)" hit "second build's lookup"
has_out 'fetch| fetch-saw-two' "the fetch step does not see the cache"
has_out 'use| use-saw-one-two' "the non-fetch step does not see the cache"
run_dir_gone

# (1b) a path the cache has no directory for starts with the image's
# content there (a new volume's rule), copied once: the next build sees
# what the last one left, not the image again
cat >"$T/i.yaml" <<'R'
cache: {key: img, paths: [/etc], size: 32M}
steps:
  - name: fetch
    network: fetch
    run: |
      echo "image-hosts-$(grep -c localhost /etc/hosts)-$(cat /etc/hostname)"
      rm /etc/hostname; echo mine >/etc/mine
R
run_qctl 0 --json "$T/i.yaml"
expect_eq "$(cache_of lookup)" miss "a new key's lookup"
has_out 'fetch| image-hosts-2-builder' "a new cache path did not start with the image's files"
cat >"$T/i2.yaml" <<'R'
cache: {key: img, paths: [/etc], size: 32M}
steps:
  - {name: use, run: 'test ! -e /etc/hostname && echo "img-$(cat /etc/mine)-$(grep -c localhost /etc/hosts)"'}
R
run_qctl 0 --json "$T/i2.yaml"
has_out 'use| img-mine-2' "the second build saw the image's files again, or not the first build's"
rm -f "$CM"/img.*	# not one of the keys (5)'s eviction order counts
# (1c) the image's content does not fit the cache: the setup fails (exit
# 4) with cp's first complaint, not hundreds, and nothing is kept
if [ -f "$QCTL_IMAGES/debian/image.json" ]; then
	cat >"$T/full.yaml" <<'R'
image: debian
cache: {key: full, paths: [/usr/share], size: 16M}
steps:
  - {name: fetch, network: fetch, run: "echo never"}
R
	run_qctl 4 --json "$T/full.yaml"
	has_out "guest setup failed (exit 1, signal 0): cache: copying the image's /usr/share into the cache failed: cp: .*No space left on device" \
		"a copy that does not fit"
	[ "$(grep -c 'qctl: setup: ' "$T/err")" -le 2 ] || fail "more than cp's first complaint: $(grep -c 'qctl: setup: ' "$T/err") lines"
	lacks_out 'fetch| never' "a step ran after the setup failed"
	[ ! -e "$CM/full.img" ] || fail "a cache that failed its copy was kept"
	rm -f "$CM"/full.*
else
	echo "(1c) skipped: no debian image"
fi

# (2) a non-fetch step: EROFS; then root remounts it read-write and
# writes: the build passes, the next one does not see that file
recipe "$T/b.yaml" a 'true' \
	'if echo x >/var/cache/dl/ro 2>/tmp/e; then echo WROTE; else cat /tmp/e; fi
busybox mount -o remount,rw /run/qctl-cache && echo sneak >/var/cache/dl/sneak && sync && echo SNEAKED'
run_qctl 0 --json "$T/b.yaml"
has_out 'Read-only file system' "a non-fetch step's write was not refused"
lacks_out 'use| WROTE' "a non-fetch step wrote the cache"
has_out 'use| SNEAKED' "test set-up: root's remount and write in the guest"
expect_eq "$(cache_of kept)" True "the fetch step's cache after a pass"
recipe "$T/b2.yaml" a 'ls /var/cache/dl; test ! -e /var/cache/dl/sneak && echo no-sneak'
run_qctl 0 --json "$T/b2.yaml"
has_out 'fetch| no-sneak' "a write after the fetch steps was kept"

# (3) poison written in fetch, then a failing step / a step timeout / a
# cancel: no trace
recipe "$T/c.yaml" a 'echo bad >/var/cache/dl/poison; echo bad >/var/cache/dl/f' 'exit 3'
run_qctl 1 --json "$T/c.yaml"
expect_eq "$(status)/$(cache_of kept)" failed/False "a failed build's cache"
recipe "$T/d.yaml" a 'echo bad >/var/cache/dl/poison2' 'sleep 60' 2s
run_qctl 3 --json "$T/d.yaml"
expect_eq "$(status)/$(cache_of kept)" limit/False "a limit-ended build's cache"
# ... and a cancelled one (SIGINT while its non-fetch step runs)
recipe "$T/i.yaml" a 'echo bad >/var/cache/dl/poison3' 'echo started; sleep 120'
"$QCTL" run --json "$T/i.yaml" >"$T/out" 2>"$T/err" &
pid=$!
wait_step use "$T/err" "$pid"
kill -INT "$pid"
rc=0; wait "$pid" || rc=$?
expect_eq "$rc" 130 "exit code after SIGINT"
expect_eq "$(status)/$(cache_of kept)" cancelled/False "a cancelled build's cache"
recipe "$T/e.yaml" a 'ls /var/cache/dl; test ! -e /var/cache/dl/poison && test ! -e /var/cache/dl/poison2 && test ! -e /var/cache/dl/poison3 && echo clean-$(cat /var/cache/dl/f)'
run_qctl 0 --json "$T/e.yaml"
has_out 'fetch| clean-one' "a failed or limit-ended build's poison was kept"

# nothing of the builds left: only stored images and their locks
left=$(cd "$T/state" && find . -type f ! -path './cache/*/*.img' ! -path './cache/*/*.lock' ! -path './snapshots/*')
[ -z "$left" ] || fail "left in the state dir: $left"
left=$(find "$QCTL_RUN_ROOT" -mindepth 1)
[ -z "$left" ] || fail "left in the run root: $left"

# (5) eviction under a cap of 6M: b (4M) is kept beside a; when c (4M)
# is kept, the least recently used go until the rest fit: a (used last in
# (3)), then b; never c, which its build still holds
recipe "$T/f.yaml" b 'head -c 4194304 /dev/urandom >/var/cache/dl/big'
run_qctl 0 --json --cache-max 6M "$T/f.yaml"
lacks_out 'cache: evicted' "an eviction under the cap"
[ -e "$CM/a.img" ] && [ -e "$CM/b.img" ] || fail "a or b gone while under the cap"
recipe "$T/g.yaml" c 'head -c 4194304 /dev/urandom >/var/cache/dl/big'
run_qctl 0 --json --cache-max 6M "$T/g.yaml"
expect_eq "$(grep -o 'cache: evicted [a-z]* of uid' "$T/err" | tr '\n' ' ')" \
	"cache: evicted a of uid cache: evicted b of uid " "evictions, in LRU order"
[ ! -e "$CM/a.img" ] && [ ! -e "$CM/b.img" ] || fail "a or b not evicted"
[ -e "$CM/c.img" ] || fail "c.img (just kept) evicted"
used=$(( $(stat -c '%b*%B' "$CM"/*.img) ))
[ "$used" -le $((6 << 20)) ] || fail "$used bytes of images over --cache-max 6M"

# (4) namespaces: under qctl serve, root's key "ns" is not uid U's "ns"
U=qctlit$$
D=$(mktemp -d /tmp/qctl-it-cache.XXXXXX)
trap 'rc=$?; [ $rc = 0 ] || tail -40 "$T/serve.log" >&2; serve_kill; userdel "$U" 2>/dev/null || true; rm -rf "$D"; set +e; (exit $rc); cleanup_test' EXIT
useradd -M -N -g nogroup -G qctl -s /usr/sbin/nologin "$U"
cp "$TOP/tests/integration/qmpclient.py" "$D/" && chmod 755 "$D" && chmod 644 "$D/qmpclient.py"
SOCK=$D/sock
# its caches in --cache-dir; a dead manager's sealed copy there is
# removed when serve starts (qctl gc's rule), a live one's would stay
SC=$T/serve-cache
mkdir -m 0700 "$SC" "$SC/0"
touch "$SC/0/.ns.pending.run-dead" "$SC/0/ns.lock"
serve_start --max-disk 3G --cache-dir "$SC"
grep -q "removed 1 pending cache copy .*($SC)" "$T/serve.out" ||
	fail "serve did not remove a dead build's pending copy: $(cat "$T/serve.out")"
[ ! -e "$SC/0/.ns.pending.run-dead" ] || fail "a dead build's pending copy stayed"
submit() { # KEY SCRIPT: the fetch step's output, as the calling user
	PYTHONPATH="$D" python3 - "$SOCK" "$1" "$2" <<'PY'
import sys
from qmpclient import QMP
c = QMP(sys.argv[1], timeout=180)
c.negotiate()
i = c.cmd("build-submit", recipe={
    "cache": {"key": sys.argv[2], "paths": ["/var/cache/dl"], "size": "32M"},
    "steps": [{"name": "fetch", "network": "fetch", "run": sys.argv[3]}]})["id"]
r = c.wait_event("BUILD_FINISHED", timeout=300, build=i)["data"]["result"]
log, off = "", 0
while True:
    ch = c.cmd("build-log", id=i, offset=off)
    log += ch["data"]
    if ch["next"] == off:
        break
    off = ch["next"]
print(r["status"], r["cache"]["lookup"])
print(log)
PY
}
submit ns 'echo root-was-here >/var/cache/dl/who' >"$T/s1" || fail "root's build"
grep -q '^passed miss' "$T/s1" || fail "root's first build under serve: $(head -1 "$T/s1")"
setpriv --reuid="$U" --regid=nogroup --init-groups env HOME=/ \
	bash -c "$(declare -f submit); D=$D SOCK=$SOCK submit ns 'cat /var/cache/dl/who 2>&1; echo u-was-here >/var/cache/dl/who'" \
	>"$T/s2" 2>&1 || fail "uid $U's build: $(tail -5 "$T/s2")"
grep -q '^passed miss' "$T/s2" || fail "uid $U saw root's key: $(head -1 "$T/s2")"
! grep -q 'root-was-here' "$T/s2" || fail "uid $U read root's cache"
submit ns 'cat /var/cache/dl/who' >"$T/s3" || fail "root's second build"
grep -q '^passed hit' "$T/s3" || fail "root's own key missed: $(head -1 "$T/s3")"
grep -q 'root-was-here' "$T/s3" || fail "root's cache lost its file"
! grep -q 'u-was-here' "$T/s3" || fail "uid $U's write reached root's key"
[ -f "$SC/$(id -u "$U")/ns.img" ] && [ -f "$SC/0/ns.img" ] || fail "no key of uid $U's own, or root's, in --cache-dir"
[ ! -e "$T/state/cache/$(id -u "$U")" ] || fail "serve kept a key outside its --cache-dir"
python3 - "$SOCK" <<'PY' || fail "a cache over --max-disk was not refused"
import sys
from qmpclient import QMP, QMPError
c = QMP(sys.argv[1], timeout=60)
c.negotiate()
try:
    c.cmd("build-submit", recipe={"cache": {"key": "big", "paths": ["/x"], "size": "4G"},
                                  "steps": [{"name": "s", "run": "true"}]})
except QMPError as e:
    assert "cache.size: 4096 MiB asked" in e.desc, e.desc
    sys.exit(0)
sys.exit(1)
PY
serve_stop
no_qemu_left
echo ok
