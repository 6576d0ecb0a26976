#!/bin/bash
# mkimage-appliance.sh STAGE OUTDIR - build the appliance (docs/appliance.md).
#
# STAGE is a `make install DESTDIR=STAGE INSTALL_IMAGE=1` tree: qctl, its
# helpers and the minimal builder image.  OUTDIR gets what the minimal
# image has (vmlinuz, vmlinux, initrd.img, cmdline, image.json): the same
# Debian cloud kernel, and an initramfs that holds, besides busybox, the
# staged qctl, qemu-system-x86_64 with its libraries, firmware and TCG
# module, mkfs.ext4, the kernel modules nested builders need (tun, veth,
# netfilter, kvm) with busybox depmod's index, and images/appliance/'s two
# init stages.  Every program's libraries are copied from this host, found
# with ldd: the appliance runs the host's QEMU, the one the tests use.
#
# The initramfs is the whole root: nothing is kept between boots but what
# the operator mounts in (a results disk, serial qctl-results).
#
# mkimage-minimal.sh does the kernel, busybox and packing; this script is
# its QCTL_IMAGE_HOOK (called back as HOOK ROOT KVER MODDIR).
set -euo pipefail

die() {
	echo "mkimage-appliance: $*" >&2
	exit 1
}

here=$(cd "$(dirname "$0")" && pwd)

# The programs the appliance runs, beside the staged qctl (PATH names).
HOST_PROGRAMS="qemu-system-x86_64 mke2fs"
# QEMU's TCG is a loadable module in Debian's build.
QEMU_MODDIR=/usr/lib/x86_64-linux-gnu/qemu
QEMU_MODULES="accel-tcg-x86_64.so"
# QEMU's firmware (BIOS, option ROMs), dereferenced.
QEMU_DATA="/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu"
# Kernel modules, which mkimage-minimal.sh adds with their dependencies
# (busybox modprobe and the kernel's autoloading find them through
# depmod's index): whole trees for nftables, single ones for the rest.
MODULE_TREES="net/netfilter net/ipv4/netfilter net/ipv6/netfilter"
MODULE_NAMES="tun veth kvm kvm_intel kvm_amd vhost_net vhost_vsock
	vmw_vsock_virtio_transport"

# Copy a host file to the same path under the root (dereferenced).
put() {
	local src=$1 root=$2

	# (a busybox applet of the same name gives way: its mke2fs lacks
	# what qctl asks of mkfs.ext4)
	if [ -L "$root$src" ]; then
		rm -f "$root$src"
	elif [ -e "$root$src" ]; then
		return 0
	fi
	mkdir -p "$root$(dirname "$src")"
	cp -L "$src" "$root$src"
}

# An ELF file's libraries and their interpreter, as ldd resolves them.
libs_of() {
	ldd "$1" 2>/dev/null | sed -n 's/.*=> \(\/[^ ]*\) .*/\1/p; s/^\t\(\/[^ ]*\) .*/\1/p'
}

hook() {
	local root=$1 kver=$2 moddir=$3 stage=${QCTL_APPLIANCE_STAGE:?}
	local f p n=0

	# QEMU finds its firmware and modules relative to its own directory
	# (/usr/bin/../share/qemu): /usr/bin and /usr/sbin are real here,
	# not busybox's links to /bin
	local d
	for d in usr/bin usr/sbin; do
		[ ! -L "$root/$d" ] || rm -f "$root/$d"
		mkdir -p "$root/$d"
	done
	# the staged install, merged into busybox's tree
	tar -C "$stage" --exclude=./usr/local/share/man \
		--exclude=./usr/share/man -cf - . |
		tar -C "$root" --keep-directory-symlink -xf -
	# /usr/lib is /lib here, as /lib is /usr/lib on the host: a library
	# has one place whichever name ldd gives it
	mkdir -p "$root/lib" "$root/lib64"
	[ -L "$root/usr/lib" ] || { rm -rf "${root:?}/usr/lib" &&
		ln -s ../lib "$root/usr/lib"; }
	[ -L "$root/usr/lib64" ] || ln -s ../lib64 "$root/usr/lib64"

	for p in $HOST_PROGRAMS; do
		f=$(command -v "$p") || die "$p not found (run make deps)"
		put "$f" "$root"
		# mkfs.ext4 is how qctl calls it
		[ "$p" != mke2fs ] ||
			ln -sf mke2fs "$root$(dirname "$f")/mkfs.ext4"
	done
	[ ! -f /etc/mke2fs.conf ] || put /etc/mke2fs.conf "$root"
	for p in $QEMU_MODULES; do
		[ -f "$QEMU_MODDIR/$p" ] || die "$QEMU_MODDIR/$p: missing"
		put "$QEMU_MODDIR/$p" "$root"
	done
	for p in $QEMU_DATA; do
		[ -d "$p" ] || continue
		mkdir -p "$root$p"
		cp -rL "$p/." "$root$p/"
	done
	# every ELF file's libraries (ldd gives the whole closure)
	while IFS= read -r -d '' f; do
		[ "$(head -c4 "$f" | od -An -tx1 | tr -d ' ')" = 7f454c46 ] ||
			continue
		for p in $(libs_of "$f"); do
			put "$p" "$root"
			n=$((n + 1))
		done
	done < <(find "$root/bin" "$root/usr/bin" "$root/usr/sbin" "$root/usr/local" \
		"$root$QEMU_MODDIR" \
		-type f -print0)

	# the kernel modules (MODULE_NAMES, MODULE_TREES) are in already,
	# with their dependencies: mkimage-minimal.sh put them there; busybox
	# depmod indexes them for modprobe and the kernel's autoloading
	cp "$moddir/modules.builtin" "$root/lib/modules/$kver/" 2>/dev/null || :
	busybox depmod -b "$root" "$kver"

	# the second init stage and the system's few files
	install -m 0755 "$here/appliance/appliance-init" \
		"$root/sbin/qctl-appliance-init"
	echo appliance >"$root/etc/hostname"
	sed -i 's/ builder$/ appliance/' "$root/etc/hosts"
	grep -q '^qctl:' "$root/etc/group" || echo 'qctl:x:997:' >>"$root/etc/group"
	mkdir -p "$root/results" "$root/var/lib/qctl"
	echo "mkimage-appliance: $n library copies checked," \
		"$(find "$root/lib/modules/$kver" -name '*.ko' | wc -l) modules" >&2
}

# (the hook: mkimage-minimal.sh calls this script back with the tree)
if [ -n "${QCTL_APPLIANCE_HOOK:-}" ]; then
	hook "$@"
	exit 0
fi

[ $# -eq 2 ] || die "usage: $0 STAGE OUTDIR"
stage=$(realpath "$1")
out=$(realpath -m "$2")
for f in "$stage"/usr/*/bin/qctl "$stage"/usr/bin/qctl; do
	[ -x "$f" ] && break
done
[ -x "$f" ] || die "$stage: no staged qctl (make install DESTDIR=$stage)"
for i in "$stage"/usr/*/share/qctl/images/minimal/image.json \
	"$stage"/usr/share/qctl/images/minimal/image.json; do
	[ -f "$i" ] && break
done
[ -f "$i" ] || die "$stage: no staged minimal image (INSTALL_IMAGE=1, make image)"
command -v ldd >/dev/null || die "ldd not found"
QCTL_EXTRA_MODULES=$(echo $MODULE_NAMES) QCTL_EXTRA_MODULE_TREES=$MODULE_TREES \
	QCTL_APPLIANCE_STAGE=$stage QCTL_APPLIANCE_HOOK=1 QCTL_IMAGE_NAME=appliance \
	QCTL_IMAGE_HOOK="$here/mkimage-appliance.sh" \
	QCTL_IMAGE_CPUS=${QCTL_IMAGE_CPUS:-2} \
	QCTL_IMAGE_MEMORY=${QCTL_IMAGE_MEMORY:-2147483648} \
	exec "$here/mkimage-minimal.sh" "$here/appliance/init" "$out"
