# qctl image build: a broken definition exits 2 naming key and line, with
# no back end run; a good one reaches the back end with each value one
# argument (nothing of it read by a shell); a failing back end exits 4.
# Fake back ends only: no image is built.
. "$(dirname "$0")/lib.sh"

scripts="$T/scripts"
mkdir -p "$scripts"
# A back end that records its argv, one argument a line, and succeeds.
for s in mkimage-debian.sh mkimage-minimal.sh; do
	cat >"$scripts/$s" <<'EOF'
#!/bin/sh
printf '%s\n' "$0" "$@" >"$QCTL_TEST_ARGV"
env | grep -E '^QCTL_IMAGE_(NAME|CPUS|MEMORY)=' | sort >"$QCTL_TEST_ARGV.env"
exit "${QCTL_TEST_RC:-0}"
EOF
	chmod +x "$scripts/$s"
done
export QCTL_IMAGE_SCRIPTS="$scripts" QCTL_TEST_ARGV="$T/argv"
export QCTL_IMAGES="$T/images"

check_bad() {
	local name=$1 pattern=$2 rc=0

	rm -f "$T/argv"
	"$QCTL" image build --agent /bin/true "$T/$name.yaml" >"$T/out" \
		2>"$T/err" || rc=$?
	expect_eq "$rc" 2 "exit code for $name"
	grep -q -- "$pattern" "$T/err" ||
		{ cat "$T/err"; fail "$name: message lacks '$pattern'"; }
	[ ! -e "$T/argv" ] || fail "$name: the back end ran"
}

printf 'name: x\nbase: initramfs\nbogus: 1\n' >"$T/unknown.yaml"
check_bad unknown 'unknown.yaml:3: unknown key "bogus"'
printf 'name: x\nbase: {suite: bookworm}\npackages: [git, "-oAPT::X=1"]\n' \
	>"$T/option.yaml"
check_bad option 'option.yaml:3: packages\[1\]: .*not a Debian package name'
printf 'name: x\nbase: initramfs\nsetup: ["true"]\n' >"$T/initramfs.yaml"
check_bad initramfs 'initramfs.yaml:3: setup: only for a Debian base'
printf 'name: x\nbase: {suite: bookworm}\nmemory: 12X\n' >"$T/size.yaml"
check_bad size 'size.yaml:3: memory: bad size'
printf 'name: [x\n' >"$T/syntax.yaml"
check_bad syntax 'syntax.yaml:2: YAML syntax error'
rc=0
"$QCTL" image build "$T/none.yaml" 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "missing file"
rc=0
"$QCTL" image build --name '../x' "$T/unknown.yaml" 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "bad --name"
rc=0
"$QCTL" image frobnicate 2>"$T/err" || rc=$?
expect_eq "$rc" 2 "unknown subcommand"

# Each value arrives as one argument, as written: quotes, $(...), spaces.
cat >"$T/good.yaml" <<'EOF'
name: good
base: {suite: bookworm, variant: minbase}
packages: [git, g++]
sources: [deb, deb-src]
npm: true
setup: ["echo '$(touch /tmp/never)' ; x=\"a b\"", "true"]
cpus: 3
memory: 1G
EOF
"$QCTL" image build --agent /bin/true "$T/good.yaml" 2>"$T/err" ||
	{ cat "$T/err"; fail "good definition"; }
cat >"$T/want" <<EOF
$scripts/mkimage-debian.sh
--name
good
--suite
bookworm
--variant
minbase
--package
git
--package
g++
--source-type
deb
--source-type
deb-src
--npm
--setup
echo '\$(touch /tmp/never)' ; x="a b"
--setup
true
--cpus
3
--memory
1073741824
--root-size
auto
--
/bin/true
$T/images/good
EOF
diff -u "$T/want" "$T/argv" || fail "the back end's arguments"

# base: initramfs runs mkimage-minimal.sh with its knobs; --out and --name
printf 'name: tiny\nbase: initramfs\ncpus: 1\nmemory: 256M\n' >"$T/tiny.yaml"
"$QCTL" image build --agent /bin/true --name other --out "$T/o" \
	"$T/tiny.yaml" 2>"$T/err" || { cat "$T/err"; fail "initramfs"; }
printf '%s\n' "$scripts/mkimage-minimal.sh" /bin/true "$T/o" >"$T/want"
diff -u "$T/want" "$T/argv" || fail "mkimage-minimal.sh's arguments"
printf 'QCTL_IMAGE_CPUS=1\nQCTL_IMAGE_MEMORY=268435456\nQCTL_IMAGE_NAME=other\n' \
	>"$T/want"
diff -u "$T/want" "$T/argv.env" || fail "mkimage-minimal.sh's environment"

# A failing back end is exit 4; a missing one too.
rc=0
QCTL_TEST_RC=1 "$QCTL" image build --agent /bin/true "$T/good.yaml" \
	2>"$T/err" || rc=$?
expect_eq "$rc" 4 "failing back end"
grep -q 'the build failed' "$T/err" || { cat "$T/err"; fail "no reason"; }
rc=0
QCTL_IMAGE_SCRIPTS="$T/nowhere" "$QCTL" image build --agent /bin/true \
	"$T/good.yaml" 2>"$T/err" || rc=$?
expect_eq "$rc" 4 "missing back end"
[ ! -e /tmp/never ] || fail "a setup command ran in a shell"
echo ok
