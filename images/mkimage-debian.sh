#!/bin/bash
# mkimage-debian.sh [OPTIONS] GUESTAGENT OUTDIR - build a Debian builder image.
#
# The back end of `qctl image build` (docs/images.md), which validates an
# image definition and passes its values here as arguments; every value is
# checked again here, since the script can be run by hand.
#
#   --name NAME          image.json's name            (required)
#   --suite SUITE        Debian suite, e.g. bookworm  (required)
#   --variant VARIANT    mmdebstrap variant           (default buildd)
#   --package PKG        a package to install         (repeatable)
#   --source-type TYPE   deb or deb-src               (repeatable; default deb)
#   --setup CMD          run in the chroot by sh -c   (repeatable, in order)
#   --npm                record the host's npm registry in /etc/npmrc
#   --transport T        agent (default) or ssh: sshd and images/ssh/ in the
#                        root, the agent only boots it (docs/ssh-transport.md)
#   --cpus N, --memory BYTES   defaults a recipe gets (image.json)
#   --root-size BYTES|auto     size of rootfs.img     (default auto)
#   --print-sources      print the apt sources the image would get (and
#                        their hosts), build nothing; needs only --suite
#
# OUTDIR gets what mkimage-minimal.sh makes (kernel, initramfs with the
# guest agent as /init plus the overlay module) and rootfs.img, an ext4
# image of the mmdebstrap'd root made by mke2fs -d, without mounting
# anything.  The package sources are the host's apt sources for SUITE,
# SUITE-updates and SUITE-security, read at build time; no mirror name is
# written into this script.  The image is built in a temporary directory
# beside OUTDIR and renamed into place: an interrupted run leaves the
# previous image, and nothing of the run.  QCTL_EATMYDATA=0: dpkg with
# fsync (default: without, through mmdebstrap's eatmydata hooks).
# QCTL_APT_DIR: the apt configuration directory to read instead of /etc/apt
# (for tests).
set -euo pipefail

die() {
	echo "mkimage-debian: $*" >&2
	exit 1
}

say() {
	echo "mkimage-debian: $*" >&2
}

usage() {
	sed -n '2,20s/^# \{0,1\}//p' "$0" >&2
	exit 2
}

name= suite= variant=buildd npm=0 transport=agent cpus= memory= root_size=auto print=0
packages=() types=() setup=()
while [ $# -gt 0 ]; do
	case $1 in
	--name) name=${2?}; shift 2 ;;
	--suite) suite=${2?}; shift 2 ;;
	--variant) variant=${2?}; shift 2 ;;
	--package) packages+=("${2?}"); shift 2 ;;
	--source-type) types+=("${2?}"); shift 2 ;;
	--setup) setup+=("${2?}"); shift 2 ;;
	--npm) npm=1; shift ;;
	--transport) transport=${2?}; shift 2 ;;
	--cpus) cpus=${2?}; shift 2 ;;
	--memory) memory=${2?}; shift 2 ;;
	--root-size) root_size=${2?}; shift 2 ;;
	--print-sources) print=1; shift ;;
	--help | -h) usage ;;
	--) shift; break ;;
	-*) die "unknown option $1 (see --help)" ;;
	*) break ;;
	esac
done
[ $# -eq 2 ] || [ $print = 1 ] || usage
[ ${#types[@]} -gt 0 ] || types=(deb)

# --- the values, checked again ----------------------------------------------
case $name in
'' | .* | *[!A-Za-z0-9_.-]*)
	[ $print = 1 ] || die "--name: letters, digits, . _ - (not first .)" ;;
esac
case $suite in
'' | -* | *[!a-z0-9.-]*) die "--suite: a Debian suite name such as bookworm" ;;
esac
case $variant in
extract | custom | essential | apt | required | minbase | buildd | important | \
	debootstrap | standard) ;;
*) die "--variant: not an mmdebstrap variant: $variant" ;;
esac
for p in ${packages[@]+"${packages[@]}"}; do
	# Debian policy's package names; nothing that apt reads as an option,
	# a pattern or a file
	[[ $p =~ ^[a-z0-9][a-z0-9+.-]+$ ]] || die "--package: bad name $p"
done
have_deb=0
for t in "${types[@]}"; do
	case $t in
	deb) have_deb=1 ;;
	deb-src) ;;
	*) die "--source-type: deb or deb-src, not $t" ;;
	esac
done
[ $have_deb = 1 ] || die "--source-type: deb is needed to install anything"
case $transport in
agent) ;;
ssh)
	# the guest end of the ssh transport
	case " ${packages[*]-} " in
	*" openssh-server "*) ;;
	*) packages+=(openssh-server) ;;
	esac
	;;
*) die "--transport: agent or ssh, not $transport" ;;
esac
case $cpus$memory in
*[!0-9]*) die "--cpus and --memory: decimal numbers" ;;
esac
case $root_size in
auto) ;;
'' | *[!0-9]*) die "--root-size: bytes or auto" ;;
esac
for tool in python3 apt-config; do
	command -v "$tool" >/dev/null || die "$tool not found (run make deps)"
done
if [ $print = 1 ]; then
	work=$(mktemp -d)
else
	[ $EUID -eq 0 ] ||
		die "run as root (mke2fs -d keeps the owners only then)"
	for tool in mmdebstrap mke2fs e2fsck unshare; do
		command -v "$tool" >/dev/null ||
			die "$tool not found (run make deps)"
	done
	agent=$(realpath "$1")
	out=$(realpath -m "$2")
	here=$(cd "$(dirname "$0")" && pwd)
	[ -x "$agent" ] || die "$agent: not an executable (run make first)"
	[ -x "$here/mkimage-minimal.sh" ] ||
		die "no mkimage-minimal.sh beside $0"
	mkdir -p "$(dirname "$out")"
	work=$(mktemp -d "$(dirname "$out")/.mkimage-debian.XXXXXX")
fi
# apt downloads as _apt (its sandbox) only where _apt can reach
chmod 0755 "$work"
# mmdebstrap runs in a mount namespace of its own (below), so nothing can
# stay mounted under $work; --one-file-system all the same: never follow
# a leftover bind mount of /dev or /proc out of the tree.
cleanup() {
	trap '' INT TERM HUP	# a second ^C must not cut the clean-up short
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

start=$(date +%s)

# --- package sources from the host's apt configuration ----------------------
# Records "URI<TAB>SUITE<TAB>COMPONENTS" for every enabled repository of
# /etc/apt/sources.list and sources.list.d/*.list and *.sources (apt ignores
# other names) whose suite is SUITE, SUITE-updates or SUITE-security.
# Repositories signed by a key other than Debian's archive keyring are left
# out: the image would not have their key.
host_sources() {
	local d=${QCTL_APT_DIR:-/etc/apt} files=()

	[ -f "$d/sources.list" ] && files+=("$d/sources.list")
	for f in "$d"/sources.list.d/*.list "$d"/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	awk -v suite="$suite" '
	function keep(s) {
		return s == suite || s == suite "-updates" || s == suite "-security"
	}
	function trusted(k) {
		return k == "" || k ~ /^\/usr\/share\/keyrings\/debian-archive-[a-z-]*keyring\.gpg$/
	}
	function emit(uris, suites, comps, key,   nu, ns, u, s, i, j) {
		if (!trusted(key)) {
			printf "mkimage-debian: %s: skipping a repository signed by %s\n",
				FILENAME, key > "/dev/stderr"
			return
		}
		nu = split(uris, u, /[ \t]+/)
		ns = split(suites, s, /[ \t]+/)
		for (i = 1; i <= nu; i++)
			for (j = 1; j <= ns; j++)
				if (u[i] != "" && keep(s[j]))
					print u[i] "\t" s[j] "\t" comps
	}
	function flush() {
		if (inst && enabled != "no" && types ~ /(^|[ \t])deb(-src)?([ \t]|$)/)
			emit(uris, suites, comps, key)
		inst = 0; types = uris = suites = comps = key = ""; enabled = ""
	}
	FNR == 1 { flush(); deb822 = FILENAME ~ /\.sources$/ }
	# one-line style: deb [options] URI SUITE COMPONENT...
	!deb822 {
		sub(/#.*/, "")
		if ($1 != "deb" && $1 != "deb-src")
			next
		line = $0; opts = ""
		if (match(line, /\[[^]]*\]/)) {
			opts = substr(line, RSTART + 1, RLENGTH - 2)
			line = substr(line, 1, RSTART - 1) substr(line, RSTART + RLENGTH)
		}
		n = split(line, f, /[ \t]+/)
		k = ""
		if (match(opts, /signed-by=[^ \t]+/))
			k = substr(opts, RSTART + 10, RLENGTH - 10)
		c = ""
		for (i = 4; i <= n; i++)
			c = c (c == "" ? "" : " ") f[i]
		if (n >= 4)
			emit(f[2], f[3], c, k)
		next
	}
	# deb822: stanzas of "Field: value", continuation lines indented
	/^[ \t]*$/ { flush(); next }
	/^#/ { next }
	/^[ \t]/ { if (field == "signed-by") key = "(an inline key)"; next }
	{
		field = tolower($0); sub(/:.*/, "", field)
		v = $0; sub(/^[^:]*:[ \t]*/, "", v); sub(/[ \t]+$/, "", v)
		inst = 1
		if (field == "types") types = v
		else if (field == "uris") uris = v
		else if (field == "suites") suites = v
		else if (field == "components") comps = v
		else if (field == "enabled") enabled = tolower(v)
		else if (field == "signed-by") key = (v == "" ? "(an inline key)" : v)
	}
	END { flush() }
	' "${files[@]}" | awk -F'\t' '!seen[$1 "\t" $2]++'
}

# "host:port" of a URI (port 80 for http, 443 for https unless given)
uri_hostport() {
	python3 - "$1" <<'EOF'
import sys, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
if u.scheme not in ("http", "https") or not u.hostname:
    sys.exit(1)
port = u.port or (443 if u.scheme == "https" else 80)
host = "[%s]" % u.hostname if ":" in u.hostname else u.hostname
print("%s:%d" % (host, port))
EOF
}

sources="$work/qctl.sources"
apt_hosts=()
: >"$sources"
have_suite=0
while IFS=$'\t' read -r uri s comps; do
	if ! hp=$(uri_hostport "$uri"); then
		say "skipping $uri: only http and https reach a builder"
		continue
	fi
	case $uri in
	*://*@*) say "skipping a URI with credentials in it"; continue ;;
	esac
	[ "$s" != "$suite" ] || have_suite=1
	printf 'Types: %s\nURIs: %s\nSuites: %s\nComponents: %s\n\n' \
		"${types[*]}" "$uri" "$s" "${comps:-main}" >>"$sources"
	case " ${apt_hosts[*]-} " in
	*" $hp "*) ;;
	*) apt_hosts+=("$hp") ;;
	esac
done < <(host_sources)
[ $have_suite = 1 ] ||
	die "the host's apt sources have no http(s) repository for $suite"
if [ $print = 1 ]; then
	cat "$sources"
	echo "# hosts: ${apt_hosts[*]}"
	exit 0
fi

# A dated snapshot mirror has expired Release files; the image needs the same
# leniency as the host.  Only these two keys are carried over: never a proxy.
aptopts=()
while IFS= read -r line; do
	case $line in
	'Acquire::Check-Valid-Until "false";' | 'Acquire::Check-Date "false";')
		aptopts+=("--aptopt=${line%;}")
		;;
	esac
done < <(apt-config dump)

# --- the npm registry of the host -------------------------------------------
npm_registry=
if [ $npm = 1 ]; then
	user=${SUDO_USER:-root}
	home=$(getent passwd "$user" | cut -d: -f6)
	if command -v npm >/dev/null; then
		# as the user who asked, with their home: their ~/.npmrc
		npm_registry=$(runuser -u "$user" -- env HOME="$home" \
			npm config get registry 2>/dev/null || true)
	fi
	if [ -z "$npm_registry" ]; then
		for f in "$home/.npmrc" /etc/npmrc; do
			[ -f "$f" ] || continue
			npm_registry=$(sed -n 's/^[ \t]*registry[ \t]*=[ \t]*//p' "$f" |
				tail -n1)
			[ -z "$npm_registry" ] || break
		done
	fi
	# every build can read the image: a URL with credentials in it is
	# refused, not copied (and tokens, kept apart in .npmrc, never are)
	if [ -n "$npm_registry" ] &&
		! [[ $npm_registry =~ ^https?://[^/@[:space:]]+(/[^[:space:]]*)?$ ]]; then
		die "the host's npm registry is not a plain http(s) URL" \
			"(credentials are never copied into an image)"
	fi
	[ -n "$npm_registry" ] ||
		say "no npm registry configured on the host: the image keeps npm's default"
	# The certificates the host's npm trusts (its "cafile"): where TLS to
	# the registry is intercepted by a CA of the site's, the image's npm
	# must trust the same to reach the same registry.  Certificates
	# only, never a key.
	npm_cafile=
	if command -v npm >/dev/null; then
		npm_cafile=$(runuser -u "$user" -- env HOME="$home" \
			npm config get cafile 2>/dev/null || true)
	fi
	case $npm_cafile in
	'' | null | undefined) npm_cafile= ;;
	/*)
		[ -f "$npm_cafile" ] && [ -r "$npm_cafile" ] ||
			die "the host's npm cafile $npm_cafile is not a readable file"
		[ "$(stat -L -c %s "$npm_cafile")" -le $((4 << 20)) ] ||
			die "the host's npm cafile $npm_cafile is over 4 MiB"
		grep -q -- '-----BEGIN CERTIFICATE-----' "$npm_cafile" ||
			die "the host's npm cafile $npm_cafile holds no certificate"
		! grep -q -- 'PRIVATE KEY-----' "$npm_cafile" ||
			die "the host's npm cafile $npm_cafile holds a private key: not copied"
		cp -L "$npm_cafile" "$work/npm-ca.pem"
		say "npm: the host's npm cafile is copied into the image"
		;;
	*) die "the host's npm cafile is not an absolute path: $npm_cafile" ;;
	esac
fi

# --- boot part: kernel and initramfs ----------------------------------------
say "kernel and initramfs (mkimage-minimal.sh, plus overlay)"
t0=$(date +%s)
QCTL_EXTRA_MODULES="overlay ${QCTL_EXTRA_MODULES:-}" QCTL_IMAGE_NAME="$name" \
	"$here/mkimage-minimal.sh" "$agent" "$work/boot"
t_boot=$(($(date +%s) - t0))

# --- root: mmdebstrap -------------------------------------------------------
# The customize hook is fixed text: the setup commands reach it through the
# environment (mmdebstrap keeps the caller's), never pasted into a script.
cat >"$work/customize.sh" <<'EOF'
#!/bin/sh
# mkimage-debian.sh's customize hook: $1 is the chroot.
set -e
i=1
while [ "$i" -le "$QCTL_SETUP_COUNT" ]; do
	eval "cmd=\${QCTL_SETUP_$i}"
	echo "mkimage-debian: setup $i/$QCTL_SETUP_COUNT" >&2
	chroot "$1" /bin/sh -c "$cmd" ||
		{ echo "mkimage-debian: setup $i failed" >&2; exit 1; }
	i=$((i + 1))
done
if [ "$QCTL_NPM" = 1 ]; then
	chroot "$1" sh -c 'command -v npm' >/dev/null ||
		{ echo "mkimage-debian: npm: true, but no npm in the image" >&2; exit 1; }
	# where this npm reads its global configuration (Debian's: /etc/npmrc)
	g=$(chroot "$1" npm config get globalconfig)
	case $g in
	/*) ;;
	*) echo "mkimage-debian: npm's globalconfig: $g" >&2; exit 1 ;;
	esac
	mkdir -p "$1$(dirname "$g")"
	if [ -f "$QCTL_WORK/npm-ca.pem" ]; then
		mkdir -p "$1/etc/qctl"
		install -m 0644 "$QCTL_WORK/npm-ca.pem" "$1/etc/qctl/npm-ca.pem"
	fi
	{
		[ -z "$QCTL_NPM_REGISTRY" ] ||
			printf 'registry=%s\n' "$QCTL_NPM_REGISTRY"
		[ ! -f "$QCTL_WORK/npm-ca.pem" ] ||
			printf 'cafile=/etc/qctl/npm-ca.pem\n'
		printf 'fund=false\naudit=false\nupdate-notifier=false\n'
	} >"$1$g"
	printf '%s\n' "$g" >"$QCTL_WORK/npm-globalconfig"
	chroot "$1" npm config get registry >"$QCTL_WORK/npm-registry"
fi
EOF
chmod 0755 "$work/customize.sh"

export QCTL_SETUP_COUNT=${#setup[@]} QCTL_NPM=$npm
export QCTL_NPM_REGISTRY=$npm_registry QCTL_WORK=$work
for i in "${!setup[@]}"; do
	export "QCTL_SETUP_$((i + 1))=${setup[$i]}"
done
include=$(
	IFS=,
	echo "${packages[*]-}"
)

# dpkg without fsync (mmdebstrap's eatmydata hooks, which take eatmydata out
# again at the end): the tree is written to an image afterwards anyway.
EATMYDATA=/usr/share/mmdebstrap/hooks/eatmydata
root="$work/root"
say "root file system: mmdebstrap $suite ($variant, ${#packages[@]} packages)"
t0=$(date +%s)
# A mount namespace of its own: whatever mmdebstrap mounts in the chroot
# (/proc, /sys, /dev for the hooks) is gone when it exits, however it exits.
hooks=()
[ "${QCTL_EATMYDATA:-1}" = 0 ] || [ ! -d "$EATMYDATA" ] ||
	hooks+=(--hook-dir="$EATMYDATA")
unshare --mount --propagation private -- \
	mmdebstrap --mode=root --variant="$variant" --format=directory \
	${hooks[@]+"${hooks[@]}"} \
	${include:+--include="$include"} ${aptopts[@]+"${aptopts[@]}"} \
	--skip=cleanup/apt/lists --skip=cleanup/apt/cache \
	--customize-hook='"$QCTL_WORK/customize.sh" "$1"' \
	"$suite" "$root" "$sources"
t_root=$(($(date +%s) - t0))

# What the guest must not inherit from the host: its resolver (a builder
# has no DNS; the proxy resolves) and its name.
rm -f "$root/etc/resolv.conf" "$root/etc/hostname" "$root/etc/hosts"
echo builder >"$root/etc/hostname"
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost builder
::1		localhost ip6-localhost ip6-loopback
EOF
chmod 0644 "$root/etc/hostname" "$root/etc/hosts"
if [ $transport = ssh ]; then
	# The init that starts sshd, and sshd's settings: the host key and
	# authorized_keys are per build, put there by the manager (on the
	# scratch disk, the overlay's upper layer); the keys that installing
	# openssh-server made would be the same in every build: gone.
	for f in init sshd_config; do
		[ -f "$here/ssh/$f" ] || die "no ssh/$f beside $0"
	done
	install -m 0755 "$here/ssh/init" "$root/usr/local/sbin/qctl-ssh-init"
	install -m 0644 "$here/ssh/sshd_config" \
		"$root/etc/ssh/sshd_config.d/qctl.conf"
	rm -f "$root"/etc/ssh/ssh_host_*
fi
# apt's lists and its caches of them stay: a build's `apt-get update`
# then fetches only what changed since the image was made (under TCG,
# decompressing and parsing whole indexes takes minutes); the packages
# go, as mmdebstrap's own cleanup would have removed them.
rm -rf "$root"/var/cache/apt/archives/*.deb
# No translated package descriptions: mmdebstrap fetched none, and a
# builder reads none; without this a build's first `apt-get update` would
# download and parse them (6 MB for main) under TCG.
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/90qctl-no-translations"
chmod 0644 "$root/etc/apt/apt.conf.d/90qctl-no-translations"
ls "$root"/etc/apt/sources.list.d/*qctl.sources >/dev/null 2>&1 ||
	die "mmdebstrap did not record the sources in /etc/apt/sources.list.d"

# --- rootfs.img: ext4 made from the tree, nothing mounted ---------------------
t0=$(date +%s)
used=$(du -s --one-file-system --block-size=1 "$root" | cut -f1)
files=$(find "$root" -xdev | wc -l)
inodes=$((files + files / 10 + 1024))
if [ "$root_size" = auto ]; then
	# the tree, its inode tables, and a margin for metadata: the image is
	# mounted read-only under an overlay, so it needs no free space
	size=$((used + inodes * 256 + used / 10 + 64 * 1024 * 1024))
else
	size=$root_size
fi
size=$(((size + 4 * 1024 * 1024 - 1) / (4 * 1024 * 1024) * 4 * 1024 * 1024))
say "rootfs.img: $((used / 1048576)) MiB in $files files, image $((size / 1048576)) MiB"
# No journal (read-only under an overlay), no reserved blocks; -d keeps
# owners, modes, links, device nodes and extended attributes.
img="$work/boot/rootfs.img"
truncate -s "$size" "$img"
mke2fs -q -F -t ext4 -L qctl-root -O ^has_journal -m 0 -N "$inodes" \
	-E root_owner=0:0 -d "$root" "$img" ||
	die "mke2fs failed (a root_size of $size bytes too small?)"
e2fsck -fn "$img" >"$work/e2fsck.log" 2>&1 || {
	cat "$work/e2fsck.log" >&2
	die "e2fsck finds rootfs.img broken"
}
rm -rf --one-file-system "$root"
t_img=$(($(date +%s) - t0))

# --- image.json ---------------------------------------------------------------
npm_hosts=()
if [ $npm = 1 ]; then
	reg=$(cat "$work/npm-registry")
	if hp=$(uri_hostport "$reg"); then
		npm_hosts+=("$hp")
	else
		say "npm registry $reg: not http(s), not recorded"
	fi
fi
built=$(date -u +%Y-%m-%dT%H:%M:%SZ)
python3 - "$work/boot/image.json" "$name" "$suite" "$variant" "$size" \
	"$cpus" "$memory" "$built" "$transport" "${#packages[@]}" \
	${packages[@]+"${packages[@]}"} "${#apt_hosts[@]}" \
	${apt_hosts[@]+"${apt_hosts[@]}"} ${npm_hosts[@]+"${npm_hosts[@]}"} <<'EOF'
import json, sys
path, name, suite, variant, size, cpus, memory, built, transport, n, *rest = sys.argv[1:]
packages, rest = rest[:int(n)], rest[int(n):]
n_apt, rest = int(rest[0]), rest[1:]
with open(path) as f:
    meta = json.load(f)
meta.update({
    "name": name,
    "root": "rootfs.img",
    "root_bytes": int(size),
    "suite": suite,
    "variant": variant,
    "packages": packages,
    "hosts": {"apt": rest[:n_apt], "npm": rest[n_apt:]},
    "built": built,
})
if transport != "agent":
    meta["transport"] = transport
if cpus:
    meta["cpus"] = int(cpus)
if memory:
    meta["memory"] = int(memory)
if rest[n_apt:]:
    # npm retries a registry it cannot reach for about two minutes: in a
    # step without network, it is told to use its cache only, and fails
    # at once (or installs from what a fetch step cached)
    meta["step_env"] = {"none": ["npm_config_offline=true"]}
with open(path + ".tmp", "w") as f:
    json.dump(meta, f, separators=(",", ":"))
    f.write("\n")
EOF
mv "$work/boot/image.json.tmp" "$work/boot/image.json"
cp "$sources" "$work/boot/sources"

# --- into place ---------------------------------------------------------------
if [ -e "$out" ]; then
	mv -T "$out" "$work/old"
fi
mv -T "$work/boot" "$out"
say "$out: rootfs.img $((size / 1048576)) MiB ($((used / 1048576)) MiB used);" \
	"kernel ${t_boot}s, root ${t_root}s, rootfs.img ${t_img}s," \
	"all $(($(date +%s) - start))s"
