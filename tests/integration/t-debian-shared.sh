# Two builds of the debian image at once share its base read-only (issue
# 10): each writes over its whole root, each sees only its own writes, and
# the base image's checksum is the same after both.
. "$(dirname "$0")/lib.sh"
need_image debian apt
img="$QCTL_IMAGES/debian"
root=$img/$(json "$img/image.json" 'r["root"]')
before=$(sha256sum <"$root")
for n in 1 2; do
	cat >"$T/r$n.yaml" <<R
image: debian
limits: {boot_timeout: 2m, wall_time: 10m}
steps:
  - name: write
    run: |
      set -e
      echo $n > /etc/qctl-mark-$n
      rm -rf /usr/share/doc
      dd if=/dev/zero of=/usr/filler bs=1M count=64 status=none
      sync
  - name: look
    run: ls /etc/qctl-mark-* && test ! -e /usr/share/doc && cat /etc/debian_version
R
	"$QCTL" run --json "$T/r$n.yaml" >"$T/out$n" 2>"$T/err$n" &
	BG_PIDS+=($!)
done
for n in 1 2; do
	rc=0
	wait "${BG_PIDS[$((n - 1))]}" || rc=$?
	[ $rc = 0 ] || { tail -20 "$T/err$n"; fail "build $n exited $rc"; }
	grep -q "^look| /etc/qctl-mark-$n\$" "$T/err$n" || fail "build $n lost its own write"
	! grep -q "qctl-mark-$((3 - n))" "$T/err$n" || fail "build $n saw the other build's write"
	[ "$(json "$T/out$n" 'r["run_dir"]')" ] && [ ! -e "$(json "$T/out$n" 'r["run_dir"]')" ] ||
		fail "build $n left its run directory"
done
BG_PIDS=()
after=$(sha256sum <"$root")
expect_eq "$after" "$before" "base image checksum"
no_qemu_left
echo ok
