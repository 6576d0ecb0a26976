# Snapshot starts (docs/snapshots.md): the first build of a VM shape boots
# cold and saves its VM at HELLO; later ones start from that state, each
# with its own random bytes, the right clock and its own disk; another
# shape, another image, --no-snapshot or a state that will not load all
# boot cold, and a broken state is removed.
. "$(dirname "$0")/lib.sh"
cat >"$T/r.yaml" <<'R'
steps:
  - name: id
    run: |
      echo "rand $(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')"
      echo "uuid $(cat /proc/sys/kernel/random/uuid)"
      echo "now $(date +%s)"
      echo "host $(hostname)"
      echo "disk $(cat /src/mark 2>/dev/null || echo none)"
      echo "mark $(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')" | tee /src/mark
artifacts: [mark]
R
SNAPS="$QCTL_STATE_DIR/snapshots"
nsnaps() { find "$SNAPS" -name '*.vmstate' 2>/dev/null | wc -l; }
val() { sed -n "s/^id| $1 //p" "$T/err"; }
# build N ARGS...: run the recipe, check what every build must show
build() {
	local n=$1 before after now
	shift
	before=$(date +%s)
	run_qctl 0 --json --artifacts "$T/art$n" "$@" "$T/r.yaml"
	after=$(date +%s)
	expect_eq "$(json "$T/out" 'r["status"]')" passed "build $n"
	now=$(val now)
	[ "$now" -ge $((before - 1)) ] && [ "$now" -le $((after + 1)) ] ||
		fail "build $n: the guest's clock says $now, the host's was $before..$after"
	expect_eq "$(val host)" builder "build $n: hostname"
	# its own scratch disk: nothing of an earlier build's /src
	expect_eq "$(val disk)" none "build $n: /src of another build"
	expect_eq "$(cat "$T/art$n/mark")" "mark $(val mark)" "build $n: artifact"
	rand[n]=$(val rand)
	uuid[n]=$(val uuid)
	[ "${#rand[n]}" = 64 ] || fail "build $n: no random bytes"
	cp "$T/out" "$T/out$n"
	cp "$T/err" "$T/err$n"
}
declare -a rand uuid

build 1
expect_eq "$(json "$T/out" 'r["boot"]')" cold "1: boot"
expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" True "1: saved"
expect_eq "$(nsnaps)" 1 "1: snapshots"
expect_eq "$(stat -c %a "$SNAPS")" 700 "snapshot directory mode"
first=$(find "$SNAPS" -name '*.vmstate')
# a state saved a while ago: a clock not set on resume would be behind
sleep 3
for n in 2 3; do
	build $n
	expect_eq "$(json "$T/out" 'r["boot"]')" snapshot "$n: boot"
	expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" False "$n: saved"
	grep -q 'started from snapshot' "$T/err" || fail "$n: no word of the snapshot"
done
# no two builds share random state: not the kernel's CRNG output, not
# a UUID drawn from it
[ "${rand[1]}" != "${rand[2]}" ] && [ "${rand[1]}" != "${rand[3]}" ] &&
	[ "${rand[2]}" != "${rand[3]}" ] ||
	fail "two builds read the same random bytes: ${rand[*]}"
[ "${uuid[2]}" != "${uuid[3]}" ] || fail "two builds drew the same UUID"
# restored builds start faster than the cold one (a ratio, not a time:
# the bench measures it, docs/benchmarks.md)
b1=$(json "$T/out1" 'r["stats"]["boot_ms"]')
b2=$(json "$T/out2" 'r["stats"]["boot_ms"]')
[ "$b2" -lt "$b1" ] || fail "restored boot ${b2} ms not below the cold one ${b1} ms"

# --no-snapshot: cold, nothing saved, nothing used
build 4 --no-snapshot
expect_eq "$(json "$T/out" 'r["boot"]')" cold "4: boot"
expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" False "4: saved"

# another VM shape (memory) is another snapshot
sed -i '1i memory: 384M' "$T/r.yaml"
build 5
expect_eq "$(json "$T/out" 'r["boot"]')" cold "5: boot"
expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" True "5: saved"
expect_eq "$(nsnaps)" 2 "5: snapshots"
sed -i '1d' "$T/r.yaml"

# the same image rewritten (a new initrd): its old state is not used
cp -a "$QCTL_IMAGES/minimal" "$T/img"
build 6 --image "$T/img"
expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" True "6: saved"
cat "$T/img/initrd.img" >"$T/initrd" && cat "$T/initrd" >"$T/img/initrd.img"
build 7 --image "$T/img"
expect_eq "$(json "$T/out" 'r["boot"]')" cold "7: a rewritten image's boot"
expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" True "7: saved"

# a state that will not load (its stream cut short): a cold boot that
# passes, and the state is gone
broken=$first
[ -f "$broken" ] || fail "the first snapshot is gone"
truncate -s 200000 "$broken"
build 8
grep -q 'did not start: removed; booting cold' "$T/err" ||
	fail "8: a broken state was not reported"
expect_eq "$(json "$T/out" 'r["boot"]')" cold "8: boot"
[ ! -e "$broken" ] || fail "8: the broken state was kept"
no_qemu_left
# the next build saves it anew
build 9
expect_eq "$(json "$T/out" 'r["snapshot_saved"]')" True "9: saved again"
build 10
expect_eq "$(json "$T/out" 'r["boot"]')" snapshot "10: boot"
[ -z "$(find "$SNAPS" -name '*.tmp' -o -name '*.new')" ] ||
	fail "temporary snapshot files left: $(ls "$SNAPS")"
no_qemu_left
run_dir_gone
echo ok
