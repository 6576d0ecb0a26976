# QEMU runs confined: unprivileged uid/gid, no capabilities (bounding set
# included), no_new_privs, QEMU's seccomp sandbox, an environment of PATH
# alone, a cgroup of its own, and exactly the fds it needs.  The fds are
# checked as a whole, by kind, access mode and owner (qemu_fds below):
# anything else QEMU holds -- a manager's pidfd, signalfd, timerfd or
# epoll, a pipe, the run directory, another build's file, a socket whose
# other end is not this build's manager -- fails the test.  Twice: a
# build without network (no NIC at all) and one with a fetch step (the
# tap).
. "$(dirname "$0")/lib.sh"
command -v ss >/dev/null || fail "ss (iproute2) missing: QEMU's sockets cannot be checked"

# qemu_fds QEMU_PID MANAGER_PID RUN_DIR NET: QEMU's fd table is exactly
# what it needs (NET: 1 if the build has a tap).  Prints the table.
qemu_fds() {
	local q=$1 mgr=$2
	# unix sockets live in the namespace of whoever made them: QEMU's
	# three were made by the manager, in its namespace
	nsenter --net="/proc/$mgr/ns/net" ss -xanH >"$T/ss" ||
		fail "ss in the manager's network namespace"
	python3 - "$q" "$mgr" "$3" "$QCTL_IMAGES/minimal" "$4" "$T/ss" <<'PY' ||
import collections, fcntl, json, os, re, sys

qpid, mgr, run_dir, image, net, ss = sys.argv[1:]
image = os.path.realpath(image)
problems = []


def bad(fmt, *a):
    problems.append(fmt % a)


def fdinfo(fd):
    info = {}
    with open("/proc/%s/fdinfo/%d" % (qpid, fd)) as f:
        for line in f:
            k, _, v = line.partition(":")
            info.setdefault(k, []).append(v.strip())
    return info


MODES = {os.O_RDONLY: "r", os.O_WRONLY: "w", os.O_RDWR: "rw"}
fds = {}
for e in os.listdir("/proc/%s/fd" % qpid):
    fd = int(e)
    try:
        target = os.readlink("/proc/%s/fd/%d" % (qpid, fd))
        info = fdinfo(fd)
    except FileNotFoundError:
        continue        # closed while we looked: QEMU's own, transient
    flags = int(info["flags"][0], 8)
    fds[fd] = (target, MODES[flags & 3], flags, info)
for fd in sorted(fds):
    print("  %3d %-4s %s" % (fd, fds[fd][1], fds[fd][0]))

# unix socket inode -> (type, peer inode), as the manager's namespace
# sees them
peer = {}
for line in open(ss):
    t = line.split()
    peer[t[-3]] = (t[0], t[-1])
mgr_socks = set()
for e in os.listdir("/proc/%s/fd" % mgr):
    try:
        m = re.match(r"socket:\[(\d+)\]$", os.readlink("/proc/%s/fd/%s" % (mgr, e)))
    except FileNotFoundError:
        continue
    if m:
        mgr_socks.add(m.group(1))

cmdline = open("/proc/%s/cmdline" % qpid).read().split("\0")
kvm = "kvm" in cmdline[cmdline.index("-accel") + 1].split(",")
cpus = int(cmdline[cmdline.index("-smp") + 1].split(",")[0])
img = json.load(open(os.path.join(image, "image.json")))
seen_peers = set()


def take(fd):
    """fds[fd], removed from what is left to account for."""
    if fd not in fds:
        bad("fd %d missing", fd)
        return None, None, 0, {}
    return fds.pop(fd)


def boot_file(fd, names, what):
    """A file of this image, read-only, or a sealed private copy (the
    image was not readable by QEMU's uid: vm.c's open_for_qemu)."""
    target, mode, _, _ = take(fd)
    if target is None:
        return
    if target.startswith("/memfd:qctl-boot"):
        with open("/proc/%s/fd/%d" % (qpid, fd), "rb") as f:
            seals = fcntl.fcntl(f.fileno(), fcntl.F_GET_SEALS)
        want = (fcntl.F_SEAL_WRITE | fcntl.F_SEAL_GROW |
                fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_SEAL)
        if seals & want != want:
            bad("fd %d (%s): memfd copy not sealed (seals %#x)", fd, what, seals)
        return
    if target not in [os.path.join(image, n) for n in names if n]:
        bad("fd %d (%s) is %s, not this image's %s", fd, what, target, names)
    if mode != "r":
        bad("fd %d (%s) open %s, not read-only", fd, what, mode)


# 0: nothing to read, ever (child_setup's /dev/null)
t, m, _, _ = take(0)
if (t, m) != ("/dev/null", "rw"):
    bad("fd 0 is %s (%s), not /dev/null", t, m)
# 1, 2: QEMU's own messages go to this build's qemu.log, append only
for fd in (1, 2):
    t, m, fl, _ = take(fd)
    if t != os.path.join(run_dir, "qemu.log") or m != "w" or not fl & os.O_APPEND:
        bad("fd %d is %s (%s, flags %o), not %s/qemu.log write-only append",
            fd, t, m, fl, run_dir)
# 3 QMP, 4 the agent's virtio-serial chardev, 5 the serial console: one
# end each of a socketpair whose other end this build's manager holds --
# nothing in the filesystem that anyone else could connect to
for fd, what in ((3, "QMP"), (4, "agent"), (5, "console")):
    t, m, _, _ = take(fd)
    s = re.match(r"socket:\[(\d+)\]$", t or "")
    if not s:
        bad("fd %d (%s) is %s, not a socket", fd, what, t)
        continue
    kind, p = peer.get(s.group(1), (None, None))
    if kind != "u_str":
        bad("fd %d (%s): %s is not a unix stream socket of the manager's "
            "namespace (%s)", fd, what, t, kind)
    elif p not in mgr_socks:
        bad("fd %d (%s): its peer socket:[%s] is not the manager's", fd, what, p)
    elif p in seen_peers:
        bad("fd %d (%s): peer socket:[%s] shared with another channel", fd, what, p)
    seen_peers.add(p)
# 6: the tap in the builder's namespace, only for a build with network;
# a build without has no NIC at all: the slot is left closed, and QEMU's
# own fds may take the number (below)
if net == "1":
    t, m, _, info = take(6)
    if t != "/dev/net/tun" or m != "rw" or info.get("iff") != ["qtap0"]:
        bad("fd 6 is %s (%s, iff %s), not the tap qtap0", t, m, info.get("iff"))
# 7, 8: the kernel (bzImage or the PVH vmlinux) and the initrd
boot_file(7, (img["kernel"], img.get("kernel_pvh")), "kernel")
boot_file(8, (img["initrd"],), "initrd")

# The rest is only what QEMU made after exec: child_setup closed all but
# 0-10, and QEMU moves 9 and 10 (the scratch disk and its read-only
# twin) into fd set 1 and closes them, so their numbers (and 6 without
# a tap) are reused.  A
# manager's fd that leaked through an exec would show up as one of the
# manager's kinds (pidfd, signalfd, timerfd, eventpoll, socket, a file
# of the run directory) and is accounted for by none of the rules below.
left = collections.Counter()
extra = []
for fd, (t, m, fl, info) in sorted(fds.items()):
    if t == os.path.join(run_dir, "disk.img"):
        left["disk " + m] += 1
    elif t == "anon_inode:[signalfd]":
        # QEMU's main loop takes SIGBUS, SIGALRM, SIGIO through one;
        # the manager's holds SIGINT, SIGTERM, SIGHUP
        mask = int(info["sigmask"][0], 16)
        if any(mask & (1 << (s - 1)) for s in (2, 15, 1)):
            bad("fd %d: a signalfd for SIGINT/SIGTERM/SIGHUP (mask %x): "
                "the manager's", fd, mask)
        left["signalfd"] += 1
    elif t == "anon_inode:[eventfd]":
        # QEMU's event notifiers: one per virtqueue (virtio-serial's 31
        # ports alone make 64), the main loop's, the AIO contexts'.  The
        # manager makes none, so the kind is enough; the number follows
        # QEMU's device model and is only bounded
        left["eventfd"] += 1
    elif t == "anon_inode:[eventpoll]":
        # an AioContext moves to epoll once it watches 64 fds
        # (fdmon-epoll): its targets must all be QEMU's own fds
        for tfd in info.get("tfd", []):
            n = int(tfd.split()[0])
            ino = re.search(r"ino:([0-9a-f]+)", tfd)
            try:
                mine = os.stat("/proc/%s/fd/%d" % (qpid, n)).st_ino
            except FileNotFoundError:
                mine = None
            if not ino or mine != int(ino.group(1), 16):
                bad("fd %d: an epoll watching a file that is not QEMU's "
                    "fd %d: the manager's?", fd, n)
        left["eventpoll"] += 1
    elif t == "anon_inode:[io_uring]":
        left["io_uring"] += 1   # QEMU's fdmon-io_uring; the manager has none
    elif kvm and t == "/dev/kvm" and m == "rw":
        left["kvm"] += 1
    elif kvm and t == "anon_inode:kvm-vm":
        left["kvm-vm"] += 1
    elif kvm and re.match(r"anon_inode:kvm-vcpu:\d+$", t):
        left[t] += 1
    else:
        extra.append("%d -> %s (%s)" % (fd, t, m))
for e in extra:
    bad("unexpected fd %s", e)
# exact counts, except for what QEMU's internals decide (ranges)
want = {
    # the fd-set members (read-write, read-only) and the block driver's
    # own dup of the read-write one when it opened /dev/fdset/1
    "disk rw": (2, 2), "disk r": (1, 1),
    "signalfd": (1, 1), "eventfd": (1, 256),
    "eventpoll": (0, 1), "io_uring": (0, 1),
}
if kvm:
    want.update({"kvm": (1, 1), "kvm-vm": (1, 1)})
    want.update({"anon_inode:kvm-vcpu:%d" % i: (1, 1) for i in range(cpus)})
for k in set(want) | set(left):
    lo, hi = want.get(k, (0, 0))
    if not lo <= left[k] <= hi:
        bad("%d fds of kind %s, expected %s", left[k], k,
            lo if lo == hi else "%d..%d" % (lo, hi))
print("  (%d eventfds, accel %s)" % (left["eventfd"], "kvm" if kvm else "tcg"))
for p in problems:
    print("FD PROBLEM: " + p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
		fail "QEMU $q holds other fds than it needs"
}

# check_qemu QEMU_PID MANAGER_PID: who QEMU is and what it holds
check_qemu() {
	local q=$1 mgr=$2 st=/proc/$1/status rec cgname cgroot
	field() { awk -v k="$1:" '$1 == k { print $2; exit }' "$st"; }
	expect_eq "$(field PPid)" "$mgr" "QEMU's parent"
	[ "$(field Uid)" != 0 ] || fail "QEMU runs as uid 0"
	[ "$(field Gid)" != 0 ] || fail "QEMU runs as gid 0"
	awk '$1 == "Uid:" { if ($2 != $3 || $3 != $4 || $4 != $5) exit 1 }' "$st" || fail "uids differ: $(grep Uid "$st")"
	for c in CapEff CapPrm CapBnd CapInh CapAmb; do
		expect_eq "$(field $c)" 0000000000000000 "$c"
	done
	expect_eq "$(field NoNewPrivs)" 1 NoNewPrivs
	expect_eq "$(field Seccomp)" 2 "Seccomp (QEMU -sandbox)"
	# vm.c's envp: PATH and nothing of the manager's
	expect_eq "$(tr '\0' '\n' <"/proc/$q/environ")" "PATH=/usr/sbin:/usr/bin:/sbin:/bin" "QEMU's environment"
	rec=$(ls "$QCTL_STATE_DIR"/*.json)
	RUN_DIR=$(json "$rec" 'r["run_dir"]')
	# QEMU sits in its own per-VM cgroup wherever the manager sees a
	# cgroup v2 (not under `ip netns exec`, which mounts a /sys of its own)
	cgname=$(json "$rec" 'r.get("cgroup_name", "")')
	cgroot=$(json "$rec" 'r.get("cgroup_root", "")')
	if awk '$9 == "cgroup2" { found = 1 } END { exit !found }' "/proc/$mgr/mountinfo"; then
		[ -n "$cgname" ] || fail "cgroup v2 is mounted, but the build has no cgroup"
	fi
	if [ -n "$cgname" ]; then
		expect_eq "$(sed -n 's/^0:://p' "/proc/$q/cgroup")" "/qctl/$cgname" "QEMU's cgroup"
		grep -qx "$q" "$cgroot/qctl/$cgname/cgroup.procs" || fail "QEMU not in cgroup.procs"
		CGROUP_DIR=$cgroot/qctl/$cgname
	else
		CGROUP_DIR=
	fi
}

# 1. no network
cat >"$T/r.yaml" <<'R'
steps: [{name: wait, run: "echo started; sleep 600"}]
R
# confined_build PID NET WHAT: the manager PID's build is in its step:
# check its QEMU (fds with NET 0/1), end it with SIGINT, nothing left
confined_build() {
	local pid=$1 qpid rc=0
	BG_PIDS+=("$pid")
	wait_step wait "$T/err" "$pid"
	qpid=$(qemu_pids_of_test)
	[ -n "$qpid" ] || fail "no QEMU found"
	check_qemu "$qpid" "$pid"
	echo "QEMU's fds, $3:"
	qemu_fds "$qpid" "$pid" "$RUN_DIR" "$2"
	kill -INT "$pid"
	wait "$pid" || rc=$?
	expect_eq "$rc" 130 "exit after SIGINT ($3)"
	no_qemu_left
	[ -z "$CGROUP_DIR" ] || [ ! -e "$CGROUP_DIR" ] || fail "cgroup left after the build ($3)"
}

: >"$T/out"; : >"$T/err"	# emptied now: the job itself may empty them only after the wait below has read the last run's lines
"$QCTL" run -v --json "$T/r.yaml" >"$T/out" 2>"$T/err" &
confined_build $! 0 "no network"

# 2. a fetch step: the tap is fd 6 (the manager in a namespace of the
# test's, as every network test)
test_netns
cat >"$T/n.yaml" <<'R'
allow: ["127.0.0.1:9"]
steps: [{name: wait, network: fetch, run: "echo started; sleep 600"}]
R
# not through in_ns: $! must be the manager itself (ip and env exec it)
: >"$T/out"; : >"$T/err"	# emptied now: the job itself may empty them only after the wait below has read the last run's lines
ip netns exec "$NS" env QCTL_RUN_ROOT="$QCTL_RUN_ROOT" QCTL_STATE_DIR="$QCTL_STATE_DIR" \
	QCTL_IMAGES="$QCTL_IMAGES" "$QCTL" run -v --json "$T/n.yaml" >"$T/out" 2>"$T/err" &
confined_build $! 1 "with network"
[ -z "$(leftover_netns)" ] || fail "namespace left: $(leftover_netns)"
echo ok
