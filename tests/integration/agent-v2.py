#!/usr/bin/env python3
"""Drive the minimal image's agent (PID 1 in a VM) through protocol
version 2's STDIN and PTY jobs, speaking the frames of agent-proto.h
directly: what only a VM shows (the agent as init, devpts as init.c mounts
it, the image's busybox shell, stty and tty, the virtio-serial port).  The
same cases without a VM, in more detail: tests/unit/test-guestagent.c.

    agent-v2.py IMAGE-DIR ACCEL WORKDIR     (ACCEL: kvm or tcg, as qctl chose)

Exits 0, or 1 after a line "FAIL: ...".  QEMU is always killed on the way
out.
"""
import json
import os
import re
import socket
import struct
import subprocess
import sys

EXEC, SIGNAL, STDIN, STDIN_END, WINSIZE, POWEROFF = 1, 2, 9, 10, 11, 7
HELLO, STARTED, STDOUT, STDERR, EXIT, ERROR = 64, 65, 66, 67, 68, 69
SHELL, F_STDIN, PTY = 1, 2, 4


def fail(msg):
    print("FAIL: agent v2: " + msg)
    sys.exit(1)


def u32(v):
    return struct.pack("<I", v & 0xffffffff)


class Agent:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.out = {}

    def send(self, typ, id_, payload=b""):
        self.s.sendall(struct.pack("<IHHI", len(payload), typ, 0, id_) +
                       payload)

    def exec(self, id_, flags, script):
        self.send(EXEC, id_, u32(flags | SHELL) + u32(1) + u32(0) + b"/\0" +
                  script.encode() + b"\0")

    def frame(self):
        while True:
            if len(self.buf) >= 12:
                n, t, f, i = struct.unpack("<IHHI", self.buf[:12])
                if n > 65536 or f:
                    fail("bad header from the agent")
                if len(self.buf) >= 12 + n:
                    p = self.buf[12:12 + n]
                    self.buf = self.buf[12 + n:]
                    if t == STDOUT:
                        self.out[i] = self.out.get(i, b"") + p
                    return t, i, p
            d = self.s.recv(65536)
            if not d:
                fail("the agent closed its port")
            self.buf += d

    def until(self, id_, text):
        """Frames until id_'s output holds text; ERROR or EXIT fail."""
        while text not in self.out.get(id_, b""):
            t, i, p = self.frame()
            if i == id_ and t in (ERROR, EXIT):
                fail("job %d ended (%d %r) before writing %r: %r" %
                     (id_, t, p, text, self.out.get(id_)))

    def exit(self, id_):
        """Frames until EXIT of id_: (code, signal)."""
        while True:
            t, i, p = self.frame()
            if i != id_:
                continue
            if t == ERROR:
                fail("job %d: ERROR %r" % (id_, p))
            if t == EXIT:
                return struct.unpack("<ii", p)


def main():
    imgdir, accel, work = sys.argv[1:4]
    img = json.load(open(os.path.join(imgdir, "image.json")))
    path = os.path.join(work, "agent-v2.sock")
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(60)
    qemu = subprocess.Popen([
        "qemu-system-x86_64", "-nodefaults", "-no-user-config",
        "-display", "none", "-no-reboot",
        "-machine", "q35,smbus=off,vmport=off,sata=off,usb=off,graphics=off",
        "-accel", accel, "-cpu", "host" if accel == "kvm" else "max",
        "-m", "256", "-kernel", os.path.join(imgdir, img["kernel"]),
        "-initrd", os.path.join(imgdir, img["initrd"]),
        "-append", img.get("cmdline", ""),
        "-serial", "file:" + os.path.join(work, "agent-v2-console.log"),
        "-chardev", "socket,id=agent,path=" + path,
        "-device", "virtio-serial-pci",
        "-device", "virtserialport,chardev=agent,name=org.qctl.agent.0"],
        stdin=subprocess.DEVNULL)
    try:
        conn, _ = srv.accept()
        conn.settimeout(60)
        run(Agent(conn))
        try:
            qemu.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("no power off after POWEROFF")
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait()


def run(a):
    t, i, p = a.frame()
    # version 3 only adds IDENTITY (t-snapshot): version 2's frames hold
    if t != HELLO or struct.unpack("<I", p[:4])[0] not in (2, 3):
        fail("first frame %d %r is not HELLO of version 2 or 3" % (t, p[:8]))

    # a terminal: tty, the default window, WINSIZE, a line read, TERM
    a.exec(1, PTY, 'tty; stty size; echo "ready:$TERM"; read x; stty size; '
           'echo "x=$x"')
    a.until(1, b"ready:dumb\r\n")
    a.send(WINSIZE, 1, u32(40) + u32(120))
    a.send(STDIN, 1, b"hi\n")
    if a.exit(1) != (0, 0):
        fail("PTY job did not exit 0: %r" % a.out.get(1))
    if not re.fullmatch(rb"/dev/pts/\d+\r\n24 80\r\nready:dumb\r\nhi\r\n"
                        rb"40 120\r\nx=hi\r\n", a.out.get(1, b"")):
        fail("PTY job wrote %r" % a.out.get(1))

    # a stdin pipe: cat until STDIN_END
    a.exec(2, F_STDIN, "cat; echo end")
    a.send(STDIN, 2, b"abc\n" * 3)
    a.send(STDIN_END, 2)
    if a.exit(2) != (0, 0) or a.out.get(2) != b"abc\n" * 3 + b"end\n":
        fail("STDIN job wrote %r" % a.out.get(2))

    # busybox sh with job control: SIGNAL reaches the foreground job
    # (the job prints "up" itself: it is in the foreground by then)
    a.exec(3, PTY, "trap 'echo trapped' INT; set -m; "
           "sh -c 'echo up; exec sleep 100'; echo \"after:$?\"")
    a.until(3, b"up")
    a.send(SIGNAL, 3, u32(2))
    if a.exit(3) != (0, 0) or b"after:130" not in a.out.get(3, b""):
        fail("job-control shell after SIGINT: %r" % a.out.get(3))

    # ^C typed on the terminal
    a.exec(4, PTY, "echo up; exec sleep 100")
    a.until(4, b"up")
    a.send(STDIN, 4, b"\x03")
    if a.exit(4) != (-1, 2):
        fail("^C did not interrupt: %r" % a.out.get(4))
    a.send(POWEROFF, 0)


if __name__ == "__main__":
    main()
