# make install DESTDIR=...: every path and mode of the tree; the units
# (systemd-analyze verify); then, in a mount namespace of the test's own
# where the tree is bound at its real prefix (/usr/local) and its man pages
# are /usr/share/man, with no QCTL_IMAGES, QCTL_NETFILTER,
# QCTL_PROXY or QCTL_SSHD: mandoc -Tlint says nothing about the installed
# pages; the installed qctl answers --help, finds its helpers, guest agent,
# image back ends and the installed minimal image in the installed paths
# (qctl version -v, image build --dry-run), and runs a build with a fetch
# step (the installed qctl-netfilter and qctl-proxy) in the test's network
# namespace.  make uninstall leaves no file behind.
. "$(dirname "$0")/lib.sh"

R=$T/root
P=/usr/local
# the helper programs, as the makefile lists them (a new one is one word
# there)
helpers=$(make -s -C "$TOP" --no-print-directory \
	--eval 'print-helpers: ; @echo $(HELPERS)' print-helpers)
[ -n "$helpers" ] || fail "no HELPERS in the makefile"
t0=$SECONDS
# the programs under test: build/san's in the sanitized pass
make -s -C "$TOP" install SANITIZE="${QCTL_SANITIZE:-}" DESTDIR="$R" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; fail "make install DESTDIR=$R"; }
echo "make install: $((SECONDS - t0)) s"

# -- the tree: exactly these paths, with these modes ----------------------------
{
	for d in bin lib lib/systemd lib/systemd/system lib/sysusers.d \
		lib/tmpfiles.d libexec libexec/qctl share share/man share/man/man1 \
		share/man/man5 share/man/man8 share/qctl share/qctl/ssh; do
		echo "755 d $P/$d"
	done
	echo "755 f $P/bin/qctl"
	for h in $helpers; do
		echo "755 f $P/libexec/qctl/$h"
	done
	for f in qctl.service qctl.socket; do echo "644 f $P/lib/systemd/system/$f"; done
	echo "644 f $P/lib/sysusers.d/qctl.conf"
	echo "644 f $P/lib/tmpfiles.d/qctl.conf"
	echo "644 f $P/share/man/man1/qctl.1"
	echo "644 f $P/share/man/man5/qctl-recipe.5"
	echo "644 f $P/share/man/man8/qctl-serve.8"
	for f in minimal.yaml debian.yaml debian-node.yaml debian-ssh.yaml; do echo "644 f $P/share/qctl/$f"; done
	echo "755 f $P/share/qctl/ssh/init"
	echo "644 f $P/share/qctl/ssh/sshd_config"
	for f in mkimage-minimal.sh mkimage-debian.sh; do echo "755 f $P/share/qctl/$f"; done
	# the minimal image goes along when it was made (make check makes it)
	if [ -f "$TOP/images/out/minimal/image.json" ]; then
		echo "755 d $P/share/qctl/images"
		echo "755 d $P/share/qctl/images/minimal"
		for f in $(ls "$TOP/images/out/minimal"); do
			echo "644 f $P/share/qctl/images/minimal/$f"
		done
	fi
	echo "755 d /usr"
	echo "755 d $P"
} | sort -k3 >"$T/want"
(cd "$R" && find . -mindepth 1 -printf '%m %y /%P\n') | sort -k3 >"$T/got"
diff -u "$T/want" "$T/got" || fail "the installed tree differs from the expected one"
cmp -s "$TOP/images/out/minimal/initrd.img" "$R$P/share/qctl/images/minimal/initrd.img" ||
	[ ! -f "$TOP/images/out/minimal/image.json" ] || fail "installed initrd.img differs"
grep -qx "ExecStart=$P/bin/qctl serve --socket /run/qctl.sock" "$R$P/lib/systemd/system/qctl.service" ||
	fail "qctl.service: ExecStart: $(grep ExecStart "$R$P/lib/systemd/system/qctl.service")"
grep -qx "ListenStream=/run/qctl.sock" "$R$P/lib/systemd/system/qctl.socket" ||
	fail "qctl.socket: ListenStream"
grep -qx "g qctl - -" "$R$P/lib/sysusers.d/qctl.conf" || fail "sysusers: group qctl"
for d in "/run/qctl 0700" "/var/lib/qctl/runs 0700" "/var/lib/qctl/images 0755"; do
	grep -qx "d ${d% *} ${d#* } root root -" "$R$P/lib/tmpfiles.d/qctl.conf" ||
		fail "tmpfiles: no 'd $d root root -'"
done

# -- in the installed layout ----------------------------------------------------
test_netns
cat >"$T/installed.sh" <<'SH'
set -eu
R=$1 P=$2
shift 2
mount --bind "$R$P" "$P"
# mandoc looks the pages' references to each other up in /usr/share/man
# only, and in its mandoc.db (Debian's man-db makes none): there, the
# installed pages alone, indexed
mount -t tmpfs tmpfs /usr/share/man
cp -r "$R$P/share/man/." /usr/share/man/
makewhatis /usr/share/man
# a host's own installed images must not answer for the installed tree's
[ ! -d /var/lib/qctl/images ] || mount -t tmpfs tmpfs /var/lib/qctl/images
cd "$R"
exec env -u QCTL_IMAGES -u QCTL_NETFILTER -u QCTL_PROXY -u QCTL_SSHD \
	-u QCTL_IMAGE_SCRIPTS "$@"
SH
# installed CMD...: CMD in the test's netns with the tree in place
installed() {
	ip netns exec "$NS" unshare --mount --propagation private -- \
		bash "$T/installed.sh" "$R" "$P" "$@"
}

out=$(installed mandoc -Tlint /usr/share/man/man1/qctl.1 \
	/usr/share/man/man5/qctl-recipe.5 /usr/share/man/man8/qctl-serve.8 2>&1) ||
	fail "mandoc -Tlint failed: $out"
[ -z "$out" ] || fail "mandoc -Tlint on the installed pages: $out"

if command -v systemd-analyze >/dev/null; then
	out=$(installed systemd-analyze verify "$P/lib/systemd/system/qctl.socket" \
		"$P/lib/systemd/system/qctl.service" 2>&1) ||
		fail "systemd-analyze verify: $out"
	[ -z "$out" ] || fail "systemd-analyze verify: $out"
else
	echo "systemd-analyze missing: units not verified"
fi

installed "$P/bin/qctl" run --help >"$T/help" || fail "qctl run --help"
grep -q "^usage: qctl run" "$T/help" || fail "qctl run --help: $(head -1 "$T/help")"
installed "$P/bin/qctl" version -v >"$T/paths" || { cat "$T/paths"; fail "qctl version -v"; }
for h in qctl-netfilter qctl-proxy qctl-sshd guestagent; do
	grep -qx "$(printf '%-15s %s' "$h" "$P/libexec/qctl/$h")" "$T/paths" ||
		fail "version -v: $h not in $P/libexec/qctl: $(cat "$T/paths")"
done
if [ -f "$TOP/images/out/minimal/image.json" ]; then
	grep -qx "$(printf '%-15s %s' "image minimal" "$P/share/qctl/images/minimal")" "$T/paths" ||
		fail "version -v: image: $(cat "$T/paths")"
fi
installed "$P/bin/qctl" image build --dry-run "$P/share/qctl/minimal.yaml" >"$T/dry" ||
	fail "image build --dry-run"
expect_eq "$(cat "$T/dry")" \
	"QCTL_IMAGE_NAME=minimal $P/share/qctl/mkimage-minimal.sh $P/libexec/qctl/guestagent /var/lib/qctl/images/minimal" \
	"image build --dry-run from the install"

if [ -f "$TOP/images/out/minimal/image.json" ]; then
	cat >"$T/r.yaml" <<'R'
steps:
  - {name: fetch, network: fetch, run: "echo window-open"}
  - {name: hello, run: "echo installed-qctl-ran"}
R
	rc=0
	installed "$P/bin/qctl" run --accel tcg --json "$T/r.yaml" >"$T/out" 2>"$T/err" || rc=$?
	[ $rc = 0 ] || { tail -20 "$T/err"; fail "installed qctl run exited $rc"; }
	expect_eq "$(json "$T/out" 'r["status"]')" passed "installed build status"
	grep -q "hello| installed-qctl-ran" "$T/err" || fail "no step output from the installed build"
	no_qemu_left
fi

make -s -C "$TOP" uninstall SANITIZE="${QCTL_SANITIZE:-}" DESTDIR="$R" >"$T/install.log" 2>&1 ||
	{ cat "$T/install.log"; fail "make uninstall"; }
left=$(cd "$R" && find . ! -type d)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "PASS"
