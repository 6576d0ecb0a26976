# Artifact bombs from a hostile guest: deep directories, too many files,
# names and output with terminal escapes, and a sparse tar member standing
# for 100 GiB.  Each ends with a clear reason and exit code, the host holds
# nothing it should not (within artifacts_bytes, sha256s that match the
# files, nothing at all after a refusal), and no run dir or QEMU is left.
. "$(dirname "$0")/lib.sh"

# bomb_run RC NAME RECIPE [qctl args]: run with --artifacts $T/arts-NAME
bomb_run() {
	local want=$1 name=$2 recipe=$3
	shift 3
	run_qctl "$want" --json --artifacts "$T/arts-$name" "$@" "$recipe"
	no_qemu_left
}

# refused NAME STATUS: the artifacts directory the run made is gone
refused() {
	expect_eq "$(json "$T/out" 'r["status"]')" "$2" "$1 status"
	expect_eq "$(json "$T/out" 'len(r["artifacts"])')" 0 "$1: artifacts in the result"
	[ ! -e "$T/arts-$1" ] || fail "$1: refused artifacts left in $T/arts-$1: $(find "$T/arts-$1" | head -5)"
}

# 1. a path 41 levels deep: refused by name (error, exit 4)
cat >"$T/deep.yaml" <<'R'
steps:
  - name: bomb
    run: |
      d=out/$(printf 'd/%.0s' $(seq 40))
      mkdir -p "$d" && echo deep > "$d/f" && echo made
artifacts: ["out"]
R
bomb_run 4 deep "$T/deep.yaml"
refused deep error
grep -q 'path deeper than 32 levels' "$T/err" || fail "deep: no clear reason"
run_dir_gone

# 2. 21,000 files: past the entries cap (limit artifacts_entries, exit 3)
cat >"$T/many.yaml" <<'R'
steps:
  - name: bomb
    run: mkdir out && cd out && seq 21000 | xargs touch
artifacts: ["out"]
R
bomb_run 3 many "$T/many.yaml"
refused many limit
expect_eq "$(json "$T/out" 'r["limit"]["name"]')" artifacts_entries "many: limit"
expect_eq "$(json "$T/out" 'r["limit"]["max"]')" 20000 "many: limit max"
grep -q 'LIMIT_EXCEEDED artifacts_entries' "$T/err" || fail "many: no LIMIT_EXCEEDED line"
run_dir_gone

# 3. escapes in output and in names: the terminal sees them made visible,
# build.log keeps the bytes, the names are refused (error, exit 4)
cat >"$T/esc.yaml" <<'R'
steps:
  - name: bomb
    run: |
      printf 'title \033]0;owned\007 csi \302\2332J raw \233 del \177 end\n'
      mkdir out
      echo x > "$(printf 'out/\033[31mred')"
      echo x > "$(printf 'out/\302\2332J')"
      echo x > "$(printf 'out/del\177')"
artifacts: ["out/*"]
R
bomb_run 4 esc "$T/esc.yaml" --keep
refused esc error
grep -q "refusing \"out/.*\" from the guest: control character in name" "$T/err" ||
	fail "esc: no clear reason"
terminal_clean "$T/err"
grep -qxF 'bomb| title ?]0;owned? csi ?2J raw ? del ? end' "$T/err" ||
	fail "esc: output not shown with '?': $(grep '^bomb|' "$T/err")"
rundir=$(json "$T/out" 'r["run_dir"]')
LC_ALL=C grep -qaF "$(printf 'title \033]0;owned\007 csi \302\2332J raw \233 del \177 end')" \
	"$rundir/build.log" || fail "esc: build.log lost the raw bytes"
[ ! -e "$rundir/artifacts" ] || fail "esc: artifacts in the kept run dir"
rm -rf "$rundir"

# 4. a pax sparse member of 100 GiB in a 20 KiB tar: the guest is root and
# replaces its tar; the apparent size is what counts (limit, exit 3)
mkdir "$T/src"
truncate -s 100G "$T/huge"
printf hello | dd of="$T/huge" bs=1 seek=$((100 * 1024 * 1024 * 1024 - 5)) conv=notrunc status=none
tar -C "$T" --format=posix --sparse -cf "$T/src/bomb.tar" huge
rm "$T/huge"
# 5 MiB apparent, within the limit: taken, still sparse
truncate -s 5M "$T/disk.img"
printf 'SPARSE' | dd of="$T/disk.img" conv=notrunc status=none
printf hello | dd of="$T/disk.img" bs=1 seek=$((5 * 1024 * 1024 - 5)) conv=notrunc status=none
printf 'plain\n' >"$T/plain.txt"
tar -C "$T" --format=posix --sparse -cf "$T/src/ok.tar" disk.img plain.txt
rm "$T/disk.img" "$T/plain.txt"
[ "$(stat -c %s "$T/src/bomb.tar")" -lt 100000 ] || fail "the bomb is not small"
for which in bomb ok; do
	cat >"$T/$which.yaml" <<R
limits: {artifacts_bytes: 10M}
steps:
  - name: fake-tar
    run: |
      mkdir -p /usr/local/bin
      printf '#!/bin/sh\nexec cat /src/$which.tar\n' > /usr/local/bin/tar
      chmod 755 /usr/local/bin/tar
      touch anything
artifacts: ["anything"]
R
done
bomb_run 3 sparse "$T/bomb.yaml" --source "$T/src"
refused sparse limit
expect_eq "$(json "$T/out" 'r["limit"]["name"]')" artifacts_bytes "sparse: limit"
expect_eq "$(json "$T/out" 'r["limit"]["value"] >= 100 << 30')" True "sparse: apparent size counted"
run_dir_gone
# (the snapshot cache in the state directory is not the artifacts')
[ "$(du -sk --exclude=snapshots "$T" | cut -f1)" -lt 10240 ] ||
	fail "sparse: the host holds $(du -sh --exclude=snapshots "$T")"

bomb_run 0 sparse-ok "$T/ok.yaml" --source "$T/src"
expect_eq "$(json "$T/out" 'len(r["artifacts"])')" 2 "sparse-ok: artifacts"
expect_eq "$(stat -c %s "$T/arts-sparse-ok/disk.img")" $((5 * 1024 * 1024)) "sparse-ok: size on the host"
for f in disk.img plain.txt; do
	want=$(cd "$T/arts-sparse-ok" && sha256sum "$f" | cut -d' ' -f1)
	got=$(json "$T/out" "[a['sha256'] for a in r['artifacts'] if a['path']=='$f'][0]")
	expect_eq "$got" "$want" "sha256 of $f in result"
	want=$(stat -c %s "$T/arts-sparse-ok/$f")
	got=$(json "$T/out" "[a['bytes'] for a in r['artifacts'] if a['path']=='$f'][0]")
	expect_eq "$got" "$want" "bytes of $f in result"
done
[ "$(du -k "$T/arts-sparse-ok/disk.img" | cut -f1)" -lt 1024 ] || fail "sparse-ok: hole not kept"
run_dir_gone
echo ok
