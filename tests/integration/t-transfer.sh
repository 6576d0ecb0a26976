# Source in (nested dirs, a name with spaces, binary data) arrives intact;
# artifacts come back with the right sha256, symlinks from the guest don't.
. "$(dirname "$0")/lib.sh"
src="$T/src"
mkdir -p "$src/a/b/c" "$src/with space"
printf 'top\n' >"$src/top.txt"
printf 'deep\n' >"$src/a/b/c/deep file.txt"
head -c 300000 /dev/urandom >"$src/with space/blob.bin"
ln -s top.txt "$src/link"
(cd "$src" && find . -type f -print0 | sort -z | xargs -0 sha256sum) >"$T/host.sums"
cat >"$T/r.yaml" <<'R'
steps:
  - name: check
    run: |
      find . -type f -print0 | sort -z | xargs -0 sha256sum > /tmp/guest.sums
      cat /tmp/guest.sums
      test "$(readlink link)" = top.txt
  - name: make
    run: |
      mkdir -p out/sub
      head -c 100000 /dev/urandom > out/rand.bin
      echo "artifact with space" > "out/sub/a b.txt"
      ln -s /etc/passwd out/evil
      sha256sum out/rand.bin "out/sub/a b.txt"
artifacts: ["out/*", "out/sub/*", "nothing-matches/*"]
R
run_qctl 0 --json --source "$src" --artifacts "$T/arts" "$T/r.yaml"
grep '^check| ' "$T/err" | sed 's/^check| //' >"$T/guest.sums"
diff -u "$T/host.sums" "$T/guest.sums" || fail "source differs in the guest"
grep '^make| ' "$T/err" | sed 's/^make| //' >"$T/guest-art.sums"
(cd "$T/arts" && sha256sum out/rand.bin "out/sub/a b.txt") >"$T/host-art.sums"
diff -u "$T/guest-art.sums" "$T/host-art.sums" || fail "artifacts differ"
for f in out/rand.bin "out/sub/a b.txt"; do
	want=$(cd "$T/arts" && sha256sum "$f" | cut -d' ' -f1)
	got=$(json "$T/out" "[a['sha256'] for a in r['artifacts'] if a['path']=='$f'][0]")
	expect_eq "$got" "$want" "sha256 of $f in result"
done
[ ! -e "$T/arts/out/evil" ] && [ ! -L "$T/arts/out/evil" ] || fail "guest symlink landed on the host"
no_qemu_left
echo ok
