#!/bin/bash
# mkimage-minimal.sh GUESTAGENT OUTDIR - build the "minimal" builder image.
#
# OUTDIR gets: vmlinuz (Debian's cloud kernel, unpacked from its package),
# initrd.img (newc cpio: guestagent as /init, static busybox, the virtio
# modules in dependency order), cmdline (what the manager appends) and
# image.json.  Kernel packages are cached in images/cache/ of the source
# tree, or /var/cache/qctl for an installed copy of this script (override
# with QCTL_IMAGE_CACHE); the image is built in a temporary directory and
# renamed into place, so an interrupted run leaves the previous image
# intact.
#
# QCTL_KERNEL_FROM=installed takes the kernel from the newest installed
# linux-image-*-cloud-amd64 package (/boot and /lib/modules) instead of
# downloading the package: what the Debian package's postinst does, so
# that an install makes the image without a download of its own.
#
# When the tool for the kernel's compression (lz4 for Debian's) is present
# it also writes vmlinux, the uncompressed ELF, which QEMU boots through the
# PVH entry point: no decompression and no real-mode setup, a few hundred
# ms less under TCG.  image.json then names it as "kernel_pvh".
#
# Knobs (environment): QCTL_INITRD_COMPRESS=none|gzip (default none: under
# TCG the kernel's gunzip costs more than reading the larger initrd),
# QCTL_CMDLINE, QCTL_IMAGE_NAME (image.json's name, default minimal; the
# test image "hostile" is this image with a test agent), QCTL_EXTRA_MODULES
# (more modules for the initramfs, appended to MODULES: mkimage-debian.sh
# adds overlay; built-in ones are skipped), QCTL_EXTRA_MODULE_TREES
# (directories under the kernel's kernel/, every module in them: the
# appliance's netfilter), QCTL_IMAGE_CPUS and
# QCTL_IMAGE_MEMORY (bytes; recorded in image.json as the defaults a recipe
# gets, see docs/images.md), SOURCE_DATE_EPOCH (default: the kernel's
# timestamp) and QCTL_IMAGE_HOOK: a program run as `HOOK ROOT KVER MODDIR`
# on the finished tree before it is packed (mkimage-appliance.sh adds the
# appliance's programs and modules there; GUESTAGENT is then the /init it
# wants).
set -euo pipefail

# Modules the agent needs: the virtio transports (PCI for q35, MMIO for
# microvm), the serial port it talks over, a block disk and a NIC.
MODULES="virtio_pci virtio_mmio virtio_console virtio_blk virtio_net"
# Everything busybox offers but init, which is guestagent's job.
SKIP_APPLETS="init linuxrc"
KERNEL_META=linux-image-cloud-amd64
# Kernel command line, each option measured under TCG (q35, 1 vCPU):
#   quiet              every console byte is a trapped port write (~0.05 s)
#   cryptomgr.notests  the crypto self-tests cost ~0.2 s of a ~1.6 s boot
#   tsc=reliable       no clocksource watchdog: a loaded host must not make
#                      the guest fall back to the HPET, whose every read is
#                      an MMIO exit
#   panic=-1           a panic resets at once; -no-reboot makes QEMU exit
# no_timer_check, i8042.*, pci=lastbus=0, 8250.nr_uarts=1, mitigations=off,
# random.trust_cpu=on showed no difference within the noise and are left out
# (pci=lastbus=0 would also hide devices behind a PCIe root port).
CMDLINE_DEFAULT="console=ttyS0 quiet panic=-1 no_timer_check cryptomgr.notests tsc=reliable"

die() {
	echo "mkimage-minimal: $*" >&2
	exit 1
}

[ $# -eq 2 ] || die "usage: $0 GUESTAGENT OUTDIR"
agent=$(realpath "$1")
out=$(realpath -m "$2")
here=$(cd "$(dirname "$0")" && pwd)
# the source tree's images/cache; an installed script's is under /var
if [ -f "$here/../GNUmakefile" ]; then
	cache=${QCTL_IMAGE_CACHE:-$here/cache}
else
	cache=${QCTL_IMAGE_CACHE:-/var/cache/qctl}
fi
kernel_from=${QCTL_KERNEL_FROM:-download}
compress=${QCTL_INITRD_COMPRESS:-none}
cmdline=${QCTL_CMDLINE:-$CMDLINE_DEFAULT}
image_name=${QCTL_IMAGE_NAME:-minimal}
extra_modules=${QCTL_EXTRA_MODULES:-}
extra_trees=${QCTL_EXTRA_MODULE_TREES:-}
image_cpus=${QCTL_IMAGE_CPUS:-}
image_memory=${QCTL_IMAGE_MEMORY:-}

case $cmdline in
*'"'* | *\\*) die "the kernel command line must not hold quotes or backslashes" ;;
esac
case $image_name in
'' | *[!A-Za-z0-9_.-]*) die "QCTL_IMAGE_NAME: letters, digits, . _ - only" ;;
esac
case $extra_modules in
*[!A-Za-z0-9_\ -]*) die "QCTL_EXTRA_MODULES: module names separated by spaces" ;;
esac
case $extra_trees in
*[!A-Za-z0-9_/\ -]* | *..*) die "QCTL_EXTRA_MODULE_TREES: paths under kernel/ separated by spaces" ;;
esac
case $image_cpus$image_memory in
*[!0-9]*) die "QCTL_IMAGE_CPUS and QCTL_IMAGE_MEMORY: decimal numbers" ;;
esac
MODULES="$MODULES $extra_modules"
[ -x "$agent" ] || die "$agent: not an executable (run make first)"
busybox=/bin/busybox
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null |
	grep -q 'install ok installed' ||
	die "busybox-static is not installed (run make deps)"
case $kernel_from in
download | installed) ;;
*) die "QCTL_KERNEL_FROM must be download or installed" ;;
esac
for tool in cpio dpkg-deb dpkg-query apt-get apt-cache strip; do
	command -v "$tool" >/dev/null || die "$tool not found (run make deps)"
done

mkdir -p "$(dirname "$out")"
[ "$kernel_from" = installed ] || mkdir -p "$cache"
work=$(mktemp -d "$(dirname "$out")/.mkimage.XXXXXX")
trap 'rm -rf "$work"' EXIT

# apt-get download into the cache; refresh the package lists only if needed.
fetch_deb() {
	local pkg=$1 dl="$work/dl"

	mkdir -p "$dl"
	if ! (cd "$dl" && apt-get download -q "$pkg" >/dev/null 2>&1); then
		echo "mkimage-minimal: apt-get download $pkg failed;" \
			"running apt-get update" >&2
		apt-get update -q >/dev/null
		(cd "$dl" && apt-get download -q "$pkg" >/dev/null)
	fi
	mv "$dl"/*.deb "$cache"/
}

# The versioned kernel package the metapackage depends on.
kernel_pkg_name() {
	apt-cache depends "$KERNEL_META" 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' |
		head -n1
}

# The newest installed versioned cloud kernel package, or nothing.
installed_kernel_pkg() {
	dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' \
		'linux-image-[0-9]*-cloud-amd64' 2>/dev/null |
		awk '$2 ~ /^ii/ { print $1 }' | sort -V | tail -n1
}

kdeb=
if [ "$kernel_from" = installed ]; then
	kpkg=$(installed_kernel_pkg)
	[ -n "$kpkg" ] || die "QCTL_KERNEL_FROM=installed: no" \
		"linux-image-*-cloud-amd64 package is installed" \
		"(apt-get install $KERNEL_META)"
	kver=${kpkg#linux-image-}
	# the package's files where dpkg put them: /boot and /lib/modules
	kroot=/
	echo "mkimage-minimal: kernel package $kpkg (installed)" >&2
else
	kdeb=$(ls "$cache"/linux-image-[0-9]*-cloud-amd64_*.deb 2>/dev/null |
		sort -V | tail -n1 || true)
fi
if [ "$kernel_from" = download ] && [ -z "$kdeb" ]; then
	ls "$cache"/"$KERNEL_META"_*.deb >/dev/null 2>&1 ||
		fetch_deb "$KERNEL_META"
	kpkg=$(kernel_pkg_name)
	if [ -z "$kpkg" ]; then
		apt-get update -q >/dev/null
		kpkg=$(kernel_pkg_name)
	fi
	[ -n "$kpkg" ] || die "cannot resolve the package behind $KERNEL_META"
	fetch_deb "$kpkg"
	kdeb=$(ls "$cache"/"$kpkg"_*.deb | sort -V | tail -n1)
fi
if [ "$kernel_from" = download ]; then
	echo "mkimage-minimal: kernel package $(basename "$kdeb")" >&2
	dpkg-deb -x "$kdeb" "$work/kernel"
	kroot=$work/kernel
	kver=$(ls "$work/kernel/lib/modules" | head -n1)
	[ -n "$kver" ] || die "no modules in $(basename "$kdeb")"
fi
vmlinuz="$kroot/boot/vmlinuz-$kver"
[ -f "$vmlinuz" ] || die "no vmlinuz-$kver in $kroot/boot"
moddir="$kroot/lib/modules/$kver"
[ -d "$moddir/kernel" ] || die "no modules in $moddir"
: "${SOURCE_DATE_EPOCH:=$(stat -c %Y "$vmlinuz")}"

# --- the uncompressed kernel for a PVH boot, when we can make it -----------
# bzImage: setup_sects at 0x1f1; payload_offset/length at 0x248/0x24c,
# relative to the protected-mode code after the setup sectors.
extract_vmlinux() {
	local img=$1 dst=$2 sects off len start magic tool

	grep -q '^CONFIG_PVH=y' "$kroot/boot/config-$kver" || return 1
	sects=$(od -An -tu1 -j $((0x1f1)) -N1 "$img" | tr -d ' ')
	off=$(od -An -tu4 -j $((0x248)) -N4 "$img" | tr -d ' ')
	len=$(od -An -tu4 -j $((0x24c)) -N4 "$img" | tr -d ' ')
	[ "$sects" -ne 0 ] || sects=4
	start=$(((sects + 1) * 512 + off))
	magic=$(od -An -tx1 -j "$start" -N4 "$img" | tr -d ' ')
	case $magic in
	02214c18) tool="lz4 -dc" ;;
	1f8b*) tool="gzip -dc" ;;
	fd377a58) tool="xz -dc" ;;
	28b52ffd) tool="zstd -dcq" ;;
	*) return 1 ;;
	esac
	command -v "${tool%% *}" >/dev/null || {
		echo "mkimage-minimal: no ${tool%% *}: skipping vmlinux (PVH)" >&2
		return 1
	}
	# the build appends the uncompressed size, which some tools call
	# trailing garbage: judge by the result, not the exit status
	tail -c +$((start + 1)) "$img" | head -c "$len" |
		$tool >"$dst" 2>/dev/null || true
	[ "$(od -An -tx1 -N4 "$dst" | tr -d ' ')" = 7f454c46 ] &&
		[ "$(stat -c %s "$dst")" -gt 1000000 ]
}

# --- modules, dependencies first ------------------------------------------
# The package ships no modules.dep (depmod makes it at install time), so
# read the same information, the "depends=" entry of each module's
# .modinfo section, straight from the .ko files.
declare -A modpath=()
while IFS= read -r rel; do
	name=$(basename "$rel" .ko)
	modpath[${name//-/_}]=$rel
done < <(cd "$moddir" && find kernel -name '*.ko' | LC_ALL=C sort)

mod_depends() {
	tr '\0' '\n' <"$1" | sed -n 's/^depends=//p' | head -n1
}

declare -A seen=()
order=()
visit() {
	local m=${1//-/_} rel deps d

	[ -z "${seen[$m]:-}" ] || return 0
	seen[$m]=1
	rel=${modpath[$m]:-}
	if [ -z "$rel" ]; then
		# built into this kernel: nothing to load
		grep -q "/${m}.ko\$" "$moddir/modules.builtin" 2>/dev/null &&
			return 0
		die "module $m is neither built in nor shipped in $kver"
	fi
	deps=$(mod_depends "$moddir/$rel")
	for d in ${deps//,/ }; do
		visit "$d"
	done
	order+=("$rel")
}
for m in $MODULES; do
	visit "$m"
done
for t in $extra_trees; do
	[ -d "$moddir/kernel/$t" ] || die "no kernel/$t in $kver's modules"
	while IFS= read -r rel; do
		visit "$(basename "$rel" .ko)"
	done < <(cd "$moddir" && find "kernel/$t" -name '*.ko' | LC_ALL=C sort)
done

# --- the initramfs tree ---------------------------------------------------
root="$work/root"
mkdir -p "$root"/{bin,dev,etc,proc,sys,tmp,run,root,mnt,var/tmp,usr}
chmod 1777 "$root/tmp" "$root/var/tmp"
chmod 0700 "$root/root"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
ln -s bin "$root/sbin"

install -m 0755 "$agent" "$root/init"
install -m 0755 "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
	case " $SKIP_APPLETS busybox " in
	*" $applet "*) continue ;;
	esac
	ln -s busybox "$root/bin/$applet"
done
for applet in sh tar cat uname echo ls mkdir rm cp mv sed grep head tail wc \
	sleep dd sha256sum find env true false md5sum; do
	[ -L "$root/bin/$applet" ] || die "busybox lacks the $applet applet"
done

cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
tty:x:5:
nogroup:x:65534:
EOF
cat >"$root/etc/hosts" <<'EOF'
127.0.0.1	localhost builder
::1		localhost ip6-localhost ip6-loopback
EOF
echo builder >"$root/etc/hostname"

# The kernel opens /dev/console for init before devtmpfs is mounted; the
# agent copes without it, but then early messages are lost.
mknod -m 0600 "$root/dev/console" c 5 1 2>/dev/null ||
	echo "mkimage-minimal: cannot mknod /dev/console (not root?)" >&2

: >"$root/etc/modules.order"
for rel in "${order[@]}"; do
	mkdir -p "$root/lib/modules/$kver/$(dirname "$rel")"
	# without debug info and the appended signature (nothing checks it
	# here): less for the guest kernel to read and relocate at boot
	strip --strip-debug -o "$root/lib/modules/$kver/$rel" "$moddir/$rel"
	echo "/lib/modules/$kver/$rel" >>"$root/etc/modules.order"
done

if [ -n "${QCTL_IMAGE_HOOK:-}" ]; then
	"$QCTL_IMAGE_HOOK" "$root" "$kver" "$moddir" ||
		die "$QCTL_IMAGE_HOOK failed"
fi

# --- pack -------------------------------------------------------------------
stage="$work/out"
mkdir -p "$stage"
find "$root" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
(cd "$root" && find . -print0 | LC_ALL=C sort -z |
	cpio --null -o -H newc -R 0:0 --reproducible --quiet) >"$work/initrd.cpio"
case $compress in
none) mv "$work/initrd.cpio" "$stage/initrd.img" ;;
gzip) gzip -n -9 <"$work/initrd.cpio" >"$stage/initrd.img" ;;
*) die "QCTL_INITRD_COMPRESS must be none or gzip" ;;
esac
cp "$vmlinuz" "$stage/vmlinuz"
pvh=
if extract_vmlinux "$vmlinuz" "$stage/vmlinux"; then
	pvh=',"kernel_pvh":"vmlinux"'
else
	rm -f "$stage/vmlinux"
fi
printf '%s\n' "$cmdline" >"$stage/cmdline"
defaults=
[ -z "$image_cpus" ] || defaults="$defaults,\"cpus\":$image_cpus"
[ -z "$image_memory" ] || defaults="$defaults,\"memory\":$image_memory"
cat >"$stage/image.json" <<EOF
{"name":"$image_name","kernel":"vmlinuz"$pvh,"initrd":"initrd.img","cmdline":"$cmdline","kernel_version":"$kver"$defaults}
EOF

# --- into place -------------------------------------------------------------
if [ -e "$out" ]; then
	mv -T "$out" "$work/old"
fi
mv -T "$stage" "$out"
echo "mkimage-minimal: $out (kernel $kver, initrd $(stat -c %s "$out/initrd.img") bytes," \
	"${#order[@]} modules)" >&2
