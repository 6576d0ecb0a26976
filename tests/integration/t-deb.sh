# timeout: 1500
# The Debian package: dpkg-buildpackage -b -uc -us in a copy of the tree
# (whose files are the tree's, and stay so after debian/rules clean);
# lintian without errors or warnings (overrides in debian/, each with its
# reason); then a fresh Debian root made by mmdebstrap from this host's apt
# sources, where apt installs the .deb with its dependencies from the
# registry.  There: qctl version and qctl run --help work, version -v finds
# the helpers in /usr/libexec/qctl and the minimal image the postinst made
# in /var/lib/qctl/images (from the installed kernel, nothing downloaded),
# mandoc -Tlint says nothing about the installed pages, the group qctl
# exists; the installed qctl, with that root as its root and a clean
# environment, runs a build in that image; `apt-get remove` takes the image
# away and `purge` /var/lib/qctl.  Without the registry, the part after
# lintian skips (exit 77).
. "$(dirname "$0")/lib.sh"
plain_pass_only "the package is built with the distribution's flags, never sanitized: the same test as the plain pass's"

for tool in dpkg-buildpackage lintian mmdebstrap; do
	command -v $tool >/dev/null || fail "$tool missing (make deps)"
done
say_time() { echo "$1: $(($SECONDS - t0)) s"; t0=$SECONDS; }

# -- the package, built in a copy ---------------------------------------------
S=$T/src/qctl
mkdir -p "$S"
if git -C "$TOP" rev-parse --git-dir >/dev/null 2>&1; then
	git -C "$TOP" ls-files -z >"$T/files"
else # a tree without git: all but what builds make
	(cd "$TOP" && find . -path ./build -prune -o -path ./images/out -prune -o \
		-path ./images/cache -prune -o ! -type d -printf '%P\0') >"$T/files"
fi
tar -C "$TOP" --null -T "$T/files" -cf - | tar -C "$S" -xf -
(cd "$S" && find . ! -type d | sort) >"$T/before"
t0=$SECONDS
(cd "$S" && DEB_BUILD_OPTIONS="parallel=2 nocheck" dpkg-buildpackage -b -uc -us) \
	>"$T/build.log" 2>&1 || { tail -40 "$T/build.log"; fail "dpkg-buildpackage -b -uc -us"; }
say_time "dpkg-buildpackage"
deb=$(ls "$T"/src/qctl_*_amd64.deb)
[ -f "$deb" ] || fail "no qctl .deb"
(cd "$S" && debian/rules clean) >>"$T/build.log" 2>&1 || fail "debian/rules clean"
(cd "$S" && find . ! -type d | sort) >"$T/after"
diff -u "$T/before" "$T/after" || fail "the tree after a build and debian/rules clean differs"

rc=0
lintian --fail-on error,warning "$T"/src/qctl_*_amd64.changes >"$T/lintian" 2>&1 || rc=$?
grep -v '^running with root privileges' "$T/lintian" || true
[ $rc = 0 ] || fail "lintian: errors or warnings (above)"
say_time "lintian"

# -- a fresh Debian root, the package installed by apt ---------------------------
if registry_down; then
	echo "SKIP: the package registry is out of reach (the package built, lintian clean)"
	exit 77
fi
. /etc/os-release
suite=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
"$TOP/images/mkimage-debian.sh" --print-sources --suite "$suite" |
	grep -v '^#' >"$T/sources" || fail "the host's apt sources for $suite"
aptopts=()
while IFS= read -r line; do
	case $line in
	'Acquire::Check-Valid-Until "false";' | 'Acquire::Check-Date "false";')
		aptopts+=("--aptopt=${line%;}") ;;
	esac
done < <(apt-config dump)

# The checks run in mmdebstrap's customize hook, while its chroot has /proc,
# /sys and /dev; they leave their findings in $T/chk.
mkdir -p "$T/chk"
cat >"$T/hook.sh" <<'SH'
#!/bin/sh
# t-deb's customize hook: $1 is the new root, qctl installed by apt.
set -eu
r=$1 c=$QCTL_CHK
chroot "$r" qctl version >"$c/version"
chroot "$r" qctl run --help >"$c/help"
chroot "$r" qctl version -v >"$c/paths" 2>&1 || echo "rc=$?" >>"$c/paths"
chroot "$r" getent group qctl >"$c/group" || true
# mandoc looks references up in its mandoc.db, which Debian does not make
chroot "$r" makewhatis /usr/share/man
: >"$c/lint"
for p in man1/qctl.1 man5/qctl-recipe.5 man8/qctl-serve.8; do
	chroot "$r" sh -c "gzip -dc /usr/share/man/$p.gz | mandoc -Tlint" \
		>>"$c/lint" 2>&1 || echo "$p: rc=$?" >>"$c/lint"
done
stat -c '%a %n' "$r/var/lib/qctl" "$r/var/lib/qctl/images" >"$c/dirs" 2>&1 || true
cp "$r/var/lib/qctl/images/minimal/image.json" "$c/image.json" 2>/dev/null || true
chroot "$r" dpkg-query -W -f '${Package}\n' 'linux-image-[0-9]*-cloud-amd64' >"$c/kernel"
ls -A "$r/var/cache/qctl" >"$c/cache" 2>/dev/null || true
SH
chmod 0755 "$T/hook.sh"
chmod 0755 "$T" "$T/src"
chmod 0644 "$deb"
H=/usr/share/mmdebstrap/hooks
hooks=(--hook-dir="$H/file-mirror-automount")
[ ! -d "$H/eatmydata" ] || hooks+=(--hook-dir="$H/eatmydata")
QCTL_CHK=$T/chk unshare --mount --propagation private -- \
	mmdebstrap --mode=root --variant=apt --format=directory "${hooks[@]}" \
	--include="$deb" --include=mandoc ${aptopts[@]+"${aptopts[@]}"} \
	--customize-hook='"$QCTL_CHK/../hook.sh" "$1"' \
	"$suite" "$T/root" "$T/sources" >"$T/mmdebstrap.log" 2>&1 ||
	{ tail -40 "$T/mmdebstrap.log"; fail "mmdebstrap with the .deb"; }
say_time "mmdebstrap, apt-get install of the .deb, checks"
# the postinst's image has the installed kernel, and nothing was downloaded
kpkg=$(cat "$T/chk/kernel")
[ -n "$kpkg" ] || fail "no linux-image-*-cloud-amd64 installed with qctl"
[ -f "$T/chk/image.json" ] || fail "no image made by the postinst"
expect_eq "linux-image-$(json "$T/chk/image.json" 'r["kernel_version"]')" "$kpkg" \
	"the image's kernel"
[ ! -s "$T/chk/cache" ] || fail "the postinst downloaded: $(cat "$T/chk/cache")"
version=$(dpkg-deb -f "$deb" Version)
expect_eq "$(cat "$T/chk/version")" "qctl $version" "qctl version"
grep -q "^usage: qctl run" "$T/chk/help" || fail "qctl run --help: $(cat "$T/chk/help")"
for h in qctl-netfilter qctl-proxy qctl-sshd guestagent; do
	grep -qx "$(printf '%-15s %s' "$h" "/usr/libexec/qctl/$h")" "$T/chk/paths" ||
		fail "version -v: $h: $(cat "$T/chk/paths")"
done
grep -qx "$(printf '%-15s %s' "image minimal" /var/lib/qctl/images/minimal)" "$T/chk/paths" ||
	fail "version -v: the postinst's image: $(cat "$T/chk/paths")"
[ ! -s "$T/chk/lint" ] || fail "mandoc -Tlint on the installed pages: $(cat "$T/chk/lint")"
grep -q "^qctl:" "$T/chk/group" || fail "no group qctl after the install"

# -- the installed qctl runs a build in the postinst's image --------------------
# In a mount namespace of its own, the new root becomes the root (pivot_root,
# not chroot: qctl's jail for QEMU pivots again, which a chroot refuses),
# with /proc, the host's /sys and /dev, and a fresh /run.
cat >"$T/root/root/r.yaml" <<'R'
steps:
  - {name: hello, run: "echo from-the-installed-qctl; uname -r"}
R
cat >"$T/boot.sh" <<'SH'
set -eu
R=$1
mount --bind "$R" "$R"
mount -t proc proc "$R/proc"
mount --rbind /sys "$R/sys"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o mode=0755 tmpfs "$R/run"
cd "$R"
mkdir -p .host
pivot_root . .host
# the environment of a fresh login: none of the test's QCTL_* variables
exec /usr/sbin/chroot . env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root \
	qctl run --json /root/r.yaml
SH
rc=0
unshare --mount --propagation private -- bash "$T/boot.sh" "$T/root" \
	>"$T/out" 2>"$T/err" || rc=$?
[ $rc = 0 ] || { tail -20 "$T/err"; fail "the installed qctl run exited $rc"; }
expect_eq "$(json "$T/out" 'r["status"]')" passed "the installed qctl's build"
grep -q "hello| from-the-installed-qctl" "$T/err" || fail "no output from the installed qctl's build"
grep -q "hello| ${kpkg#linux-image-}" "$T/err" || fail "the guest did not run the installed kernel"
say_time "a build by the installed qctl"
[ -z "$(findmnt -rn -o TARGET | grep "^$T" || true)" ] || fail "mounts left under $T"

# -- remove, purge ----------------------------------------------------------------
rmdir "$T/root/.host"
chroot "$T/root" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -q qctl \
	>"$T/remove.log" 2>&1 || { cat "$T/remove.log"; fail "apt-get remove qctl"; }
[ ! -e "$T/root/var/lib/qctl/images/minimal" ] || fail "apt-get remove left /var/lib/qctl/images/minimal"
chroot "$T/root" env DEBIAN_FRONTEND=noninteractive apt-get purge -y -q qctl \
	>"$T/remove.log" 2>&1 || { cat "$T/remove.log"; fail "apt-get purge qctl"; }
[ ! -e "$T/root/var/lib/qctl" ] || fail "apt-get purge left /var/lib/qctl"
rm -rf --one-file-system "$T/root"
echo "PASS"
