# The recipe cache with apt (issue 14): the debian image's
# /var/cache/apt/archives cached; a fetch step downloads a few packages
# with --download-only through qctl's proxy to the image's apt hosts; run
# twice, the second fetch finds them in the cache and downloads no .deb
# ("Need to get 0 B"), and its proxy carried fewer bytes.  Both fetch
# times are printed, never asserted.  Skips (77) when the registry is out
# of reach.
# timeout: 600
. "$(dirname "$0")/lib.sh"
# sanitized, t-cache takes every path of the cache in the manager
plain_pass_only "real apt downloads; the cache's paths are covered by t-cache"
need_image debian apt
img="$QCTL_IMAGES/debian"
cat >"$T/r.yaml" <<'R'
image: debian
allow: ["image:apt"]
env: {DEBIAN_FRONTEND: noninteractive}
cache: {key: apt, paths: [/var/cache/apt/archives], size: 1G}
steps:
  - name: fetch
    network: fetch
    run: |
      set -e
      apt-get update -q >/dev/null
      apt-get install -q --download-only -y --no-install-recommends jq tree figlet
  - name: check
    run: |
      set -e
      ls /var/cache/apt/archives/*.deb
      dpkg -i /var/cache/apt/archives/*.deb >/dev/null
      echo '{"a":1}' | jq -c .
R
proxy_bytes() { json "$T/out" 'sum(int(x.get("bytes_down", x.get("bytes_in", 0)) or 0) for x in (r.get("network") or []))'; }
fetch_s() { json "$T/out" '"%.1f" % (r["steps"][0]["duration_ms"] / 1000)'; }
run_qctl 0 --json "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["cache"]["lookup"] + "/" + str(r["cache"]["kept"])')" miss/True "first build's cache"
grep -qE '^fetch\| Need to get [1-9]' "$T/err" || fail "the first fetch downloaded nothing"
grep -q '^check| {"a":1}' "$T/err" || fail "jq from the cached .deb did not run"
b1=$(proxy_bytes) t1=$(fetch_s)
run_qctl 0 --json "$T/r.yaml"
expect_eq "$(json "$T/out" 'r["cache"]["lookup"]')" hit "second build's cache"
grep -qE '^fetch\| Need to get 0 B' "$T/err" || fail "the second fetch downloaded .debs again: $(grep 'Need to get' "$T/err")"
grep -q '^check| {"a":1}' "$T/err" || fail "jq from the cached .deb did not run (second build)"
b2=$(proxy_bytes) t2=$(fetch_s)
net_on_list "$T/out" "$img/image.json" apt fetch
echo "fetch step: ${t1}s then ${t2}s; proxy bytes $b1 then $b2"
no_qemu_left
run_dir_gone
echo ok
