# A real build (issue 10): examples/node-app in the debian-node image.
# `npm ci` in a fetch step reaches the npm registry only through qctl's
# proxy (CONNECT, the image's npm hosts); `npm test` runs with the network
# closed.  Skips (77) only when the registry is out of reach.
. "$(dirname "$0")/lib.sh"
# sanitized, t-proxy-clients covers CONNECT and t-image-allow the image's
# list (lib.sh)
plain_pass_only "a real npm install; its paths are covered by t-proxy-clients and t-image-allow"
need_image debian-node npm
img="$QCTL_IMAGES/debian-node"
# the example, plus a step that tries npm ci again with the network closed
# and the cache emptied: the image tells npm to use its cache only there
# (image.json step_env), so it fails at once, naming the cache, instead of
# retrying the registry for two minutes (a hang would be exit 3)
sed "s#^source: \.\$#source: $TOP/examples/node-app#" \
	"$TOP/examples/node-app/qctl.yaml" >"$T/r.yaml"
grep -q "^source: $TOP/examples/node-app\$" "$T/r.yaml" || fail "recipe rewrite"
tail -n1 "$T/r.yaml" | grep -q 'run: npm test' || fail "steps are not last in the example"
cat >>"$T/r.yaml" <<'R'
  - name: offline
    timeout: 1m
    run: |
      rm -rf node_modules ~/.npm
      if npm ci --no-audit --no-fund; then echo "OFFLINE: npm ci worked"; exit 1; fi
      echo "OFFLINE: npm ci failed with the network closed"
R
run_qctl 0 --json "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["status"]')" passed status
grep -q '^offline| OFFLINE: npm ci failed with the network closed$' "$T/err" ||
	fail "npm ci in a closed step"
grep -q '^offline| npm ERR! code ENOTCACHED$' "$T/err" ||
	fail "npm in a closed step did not fail on its cache"
grep -q '^test| # pass 3$' "$T/err" || fail "npm test did not pass its 3 tests"
grep -q '^test| # fail 0$' "$T/err" || fail "npm test failures"
net_on_list "$T/out" "$img/image.json" npm deps CONNECT
json "$T/out" '" ".join("%s %.0fs" % (s["name"], s["duration_ms"] / 1000) for s in r["steps"]) + " boot %.1fs wall %.0fs" % (r["stats"]["boot_ms"] / 1000, r["stats"]["wall_ms"] / 1000)'
no_qemu_left
run_dir_gone
echo ok
