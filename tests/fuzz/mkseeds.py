#!/usr/bin/env python3
"""Write the seed corpora of the fuzz targets: tests/fuzz/corpus/<target>/.

Small, meaningful inputs per target: valid ones (what the real peer sends)
and the edge cases the code has branches for.  Deterministic; run it again
after changing it and commit what it writes (`make fuzz` only reads the
seeds, from a scratch copy).  Unit-test data is copied where it fits.

    tests/fuzz/mkseeds.py          # from the top of the tree
"""
import io
import json
import os
import shutil
import struct
import tarfile

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(TOP, "tests", "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def copy_dir(target, src, prefix=""):
    src = os.path.join(TOP, src)
    for n in sorted(os.listdir(src)):
        p = os.path.join(src, n)
        if os.path.isfile(p) and not n.endswith((".py", "README")):
            with open(p, "rb") as f:
                put(target, prefix + n, f.read())


def js(o):
    return json.dumps(o, separators=(",", ":"))


# ---- agent: frames the host reads from the guest -------------------------
AGENT = dict(HELLO=64, STARTED=65, STDOUT=66, STDERR=67, EXIT=68, ERROR=69,
             PONG=70, FILE_DONE=71, DATA=5)


def frame(t, payload=b"", id_=0, flags=0, length=None):
    n = len(payload) if length is None else length
    return struct.pack("<IHHI", n, AGENT[t] if isinstance(t, str) else t,
                       flags, id_) + payload


def u32(v):
    return struct.pack("<I", v & 0xffffffff)


def agent():
    hello = frame("HELLO", u32(2) + b"qctl-guestagent 0.1\0Linux 6.1.0\0")
    run = (hello + frame("STARTED", u32(123), 1) +
           frame("STDOUT", b"building...\n", 1) +
           frame("STDERR", b"warning: \x1b[31mred\x1b[0m\n", 1) +
           frame("EXIT", u32(0) + u32(0), 1))
    put("fuzz-agent", "run-pass", run)
    put("fuzz-agent", "run-signalled",
        hello + frame("EXIT", u32(-1) + u32(9), 2))
    put("fuzz-agent", "hello-terse", frame("HELLO", u32(1)))
    put("fuzz-agent", "hello-unterminated", frame("HELLO", u32(1) + b"abc"))
    put("fuzz-agent", "error-and-done",
        frame("ERROR", u32(2) + b"exec foo: No such file\0", 3) +
        frame("FILE_DONE", u32(0) + b"ok\0", 4) +
        frame("FILE_DONE", u32(1) + b"tar: \xff\xfe\0", 5))
    put("fuzz-agent", "exit-out-of-range", frame("EXIT", u32(256) + u32(65)))
    put("fuzz-agent", "exit-short", frame("EXIT", u32(0)))
    put("fuzz-agent", "bad-flags", frame("PONG", b"", 0, flags=1))
    put("fuzz-agent", "len-too-big", frame("DATA", b"", 0, length=65537))
    put("fuzz-agent", "partial-frame", frame("STDOUT", b"x" * 40)[:30])
    put("fuzz-agent", "data", frame("DATA", bytes(range(256)), 7))


# ---- artifacts: the guest's tar of artifacts -----------------------------
def tar(members, fmt=tarfile.GNU_FORMAT):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=fmt) as t:
        for m in members:
            info, data = m
            t.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = b.getvalue()
    # drop the record padding: the two zero blocks that end it suffice
    end = len(raw)
    while end >= 512 and raw[end - 512:end] == bytes(512):
        end -= 512
    return raw[:end] + bytes(1024)


def ti(name, data=b"", typ=tarfile.REGTYPE, link="", size=None):
    i = tarfile.TarInfo(name)
    i.type = typ
    i.linkname = link
    i.mtime = 1700000000
    i.mode = 0o644
    i.size = size if size is not None else (
        len(data) if typ == tarfile.REGTYPE else 0)
    return (i, data if typ == tarfile.REGTYPE else None)


def artifacts():
    put("fuzz-artifacts", "one-file", tar([ti("out/x.deb", b"hello\n")]))
    put("fuzz-artifacts", "dirs-and-files",
        tar([ti("out", typ=tarfile.DIRTYPE), ti("out/a.txt", b"a" * 100),
             ti("out/sub/b.bin", bytes(range(256))), ti("./c", b"")]))
    put("fuzz-artifacts", "same-name-twice",
        tar([ti("x", b"first version"), ti("./x", b"second")]))
    put("fuzz-artifacts", "dotdot", tar([ti("../escape", b"x")]))
    put("fuzz-artifacts", "absolute", tar([ti("/etc/passwd", b"x")]))
    put("fuzz-artifacts", "symlink-then-through",
        tar([ti("l", typ=tarfile.SYMTYPE, link="/tmp"), ti("l/x", b"x")]))
    put("fuzz-artifacts", "hardlink",
        tar([ti("a", b"data"), ti("b", typ=tarfile.LNKTYPE, link="a")]))
    put("fuzz-artifacts", "device",
        tar([ti("dev", typ=tarfile.CHRTYPE), ti("fifo", typ=tarfile.FIFOTYPE)]))
    put("fuzz-artifacts", "long-name-pax",
        tar([ti("d/" * 40 + "f", b"deep")], fmt=tarfile.PAX_FORMAT))
    put("fuzz-artifacts", "long-name-gnu", tar([ti("n" * 300, b"long")]))
    put("fuzz-artifacts", "control-in-name", tar([ti("a\x1b[2Jb", b"x")]))
    # a header whose size is past the cap, then only a little data
    put("fuzz-artifacts", "over-cap-size",
        ti("big", size=1 << 20)[0].tobuf(tarfile.GNU_FORMAT) + b"q" * 512)
    put("fuzz-artifacts", "truncated-data",
        tar([ti("t", b"z" * 2000)])[:512 + 700])
    put("fuzz-artifacts", "empty", bytes(1024))


# ---- cgroup and /proc files ----------------------------------------------
def cgroup():
    copy_dir("fuzz-cgroup-parse", "tests/unit/data/cgroup")
    put("fuzz-cgroup-parse", "pids", "1\n42\n4194304\n")
    put("fuzz-cgroup-parse", "controllers", "cpuset cpu io memory pids\n")
    put("fuzz-cgroup-parse", "proc-io",
        "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\n"
        "write_bytes: 6\ncancelled_write_bytes: 0\n")


# ---- control socket: first byte = chunking/events/slow; client stream ----
# chunk = (b & 63) + 1 bytes per write, events if b & 64, a client that
# does not read if b & 128.  Mostly 64-byte chunks: a byte per loop round
# is slow (one seed keeps small chunks for the framer's boundaries).
def control():
    neg = b'{"execute":"qmp_capabilities"}'
    echo = b'{"execute":"echo","arguments":{"s":"x","n":1,"b":true,' \
           b'"o":{},"a":[1,2],"x":null},"id":7}'
    put("fuzz-control", "negotiated-echo", b"\x7f" + echo + b"\n" +
        b'{"execute":"fail","id":"s"}\r\n{"execute":"query-nothing"}')
    put("fuzz-control", "negotiate-self", b"\x3f" + neg + b"\n" + echo)
    put("fuzz-control", "before-negotiation", b"\x3f" + echo)
    put("fuzz-control", "bad-args", b"\x7f" +
        b'{"execute":"echo","arguments":{"s":1}}'
        b'{"execute":"echo","arguments":{"t":"x"}}'
        b'{"execute":"echo"}{"execute":7}{"arguments":{}}[1]"str" 5\n')
    put("fuzz-control", "garbage-then-good", b"\x43" +
        b"}}} not json\n" + b'{"a":"\x01"}\n' + echo)
    put("fuzz-control", "too-long", b"\x7f" + b'{"execute":"echo",'
        b'"arguments":{"s":"' + b"y" * 600 + b'"}}' + echo)
    put("fuzz-control", "deep", b"\x7f" + b"[" * 70 + b"]" * 70 + echo)
    put("fuzz-control", "slow-reader", b"\xff" + echo * 40)


# ---- proxy: request heads -------------------------------------------------
def http_req():
    H = "fuzz-http-req"
    put(H, "get-absolute",
        "GET http://allowed.example:443/path?q=1 HTTP/1.1\r\n"
        "Host: allowed.example:443\r\nUser-Agent: apt\r\n"
        "Proxy-Connection: keep-alive\r\nConnection: close\r\n\r\n")
    put(H, "get-wildcard",
        "GET http://deb.Example.COM./x HTTP/1.0\r\nHost: deb.example.com\r\n\r\n")
    put(H, "connect", "CONNECT allowed.example:443 HTTP/1.1\r\n"
        "Host: allowed.example:443\r\n\r\n")
    put(H, "connect-ipv6", "CONNECT [::1]:8080 HTTP/1.1\r\n\r\n")
    put(H, "get-ipv4", "GET http://127.0.0.1:8080/ HTTP/1.1\r\n"
        "Host: 127.0.0.1:8080\r\n\r\n")
    put(H, "https-url", "GET https://allowed.example/ HTTP/1.1\r\n\r\n")
    put(H, "origin-form", "GET /index.html HTTP/1.1\r\nHost: a.example\r\n\r\n")
    put(H, "bare-lf", "GET http://a.example/ HTTP/1.1\nHost: a.example\n\n")
    put(H, "folded-header", "GET http://a.example/ HTTP/1.1\r\n"
        "X: a\r\n b\r\nHost: a.example\r\n\r\n")
    put(H, "userinfo", "GET http://user:pw@allowed.example:443/ HTTP/1.1\r\n\r\n")
    put(H, "incomplete", "GET http://a.example/ HTTP/1.1\r\nHost: a")
    put(H, "smuggle", "POST http://allowed.example:443/ HTTP/1.1\r\n"
        "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET")
    put(H, "percent-host", "GET http://allowed%2eexample:443/ HTTP/1.1\r\n\r\n")


def image():
    I = "fuzz-image"
    put(I, "minimal", js({"kernel": "vmlinuz", "initrd": "initrd.img",
                          "cmdline": "console=ttyS0 quiet", "name": "minimal"}))
    put(I, "pvh", js({"kernel_pvh": "vmlinux", "kernel": "vmlinuz",
                      "initrd": "initrd.img", "cmdline": "console=ttyS0"}))
    put(I, "defaults", "{}")
    put(I, "path-out", js({"kernel": "../../etc/shadow"}))
    put(I, "slash", js({"initrd": "a/b"}))
    put(I, "dotfile", js({"kernel": ".hidden"}))
    put(I, "empty-name", js({"kernel": ""}))
    put(I, "long-name", js({"kernel": "k" * 256}))
    put(I, "wrong-types", js({"kernel": 1, "cmdline": [], "name": {}}))
    put(I, "not-object", "[\"vmlinuz\"]")
    put(I, "duplicate", '{"kernel":"a","kernel":"b"}')
    put(I, "unicode", '{"name":"\\u00e9t\\u00e9 \\ud83d\\ude00","cmdline":"a\\tb"}')
    put(I, "nul-escape", '{"kernel":"a\\u0000b"}')
    put(I, "syntax", '{"kernel": "vmlinuz",')
    put(I, "debian", js({"name": "debian", "kernel": "vmlinuz",
                         "kernel_pvh": "vmlinux", "initrd": "initrd.img",
                         "cmdline": "console=ttyS0 quiet", "root": "rootfs.img",
                         "cpus": 2, "memory": 2147483648,
                         "hosts": {"apt": ["mirror.example:80",
                                           "security.example:80"],
                                   "npm": ["registry.example:443"]}}))
    put(I, "ssh", js({"name": "debian-ssh", "kernel": "vmlinuz",
                      "initrd": "initrd.img", "root": "rootfs.img",
                      "transport": "ssh"}))
    put(I, "ssh-bad", js({"kernel": "vmlinuz", "transport": "ssh"}))
    put(I, "hosts-bad", js({"root": "../rootfs.img", "cpus": 0,
                            "hosts": {"APT": ["x"], "npm": ["image:apt", 1]}}))


def imagedef():
    T = "fuzz-imagedef"
    for n in sorted(os.listdir(os.path.join(TOP, "images"))):
        if n.endswith(".yaml"):
            with open(os.path.join(TOP, "images", n), "rb") as f:
                put(T, "shipped-" + n, f.read())
    put(T, "all-keys.yaml",
        "name: d\nbase: {suite: bookworm, variant: minbase}\n"
        "packages: [git, g++]\nsources: [deb, deb-src]\nnpm: true\n"
        "setup: [\"echo 'x'\"]\ncpus: 2\nmemory: 2G\nroot_size: auto\n")
    put(T, "initramfs-bad.yaml",
        "name: m\nbase: initramfs\npackages: [git]\n")
    put(T, "bad-package.yaml",
        "name: d\nbase:\n  suite: bookworm\npackages:\n  - \"-oX\"\n")


def nf_counters():
    copy_dir("fuzz-nf-counters", "tests/unit/data/nft")


NF_REQ = dict(SETUP=1, OPEN=2, CLOSE=3, COUNTERS=4, TEARDOWN=5)


def nf_hdr(t, n, seq=1, res=0):
    return struct.pack("=IIII", t, n, seq, res)


def nf_setup(ifname=b"qtap0", host=b"169.254.77.1", guest=b"169.254.77.2",
             quota=1000, port=3128, res=0):
    # res: the last u32, now ssh_port (0: none)
    body = (ifname.ljust(16, b"\0")[:16] + host.ljust(16, b"\0")[:16] +
            guest.ljust(16, b"\0")[:16] + struct.pack("=QII", quota, port, res))
    return nf_hdr(1, 80) + body


def nf_request():
    N = "fuzz-nf-request"
    put(N, "setup", nf_setup())
    put(N, "setup-ssh", nf_setup(res=22))
    put(N, "setup-ssh-is-proxy", nf_setup(res=3128))
    put(N, "setup-max", nf_setup(ifname=b"abcdefghijklmno", quota=1 << 50,
                                 port=65535))
    put(N, "setup-inject", nf_setup(ifname=b'q"; flush', host=b"1.2.3.4}"))
    put(N, "setup-no-nul", nf_setup(ifname=b"x" * 16))
    put(N, "setup-port0", nf_setup(port=0, quota=0))
    put(N, "setup-port-big", nf_setup(port=65536, quota=(1 << 50) + 1))
    put(N, "setup-leading-zero", nf_setup(host=b"169.254.077.1"))
    for name, t in NF_REQ.items():
        if t != 1:
            put(N, name.lower(), nf_hdr(t, 16))
    put(N, "open-reserved", nf_hdr(2, 16, res=1))
    put(N, "open-wrong-len", nf_hdr(2, 80) + bytes(64))
    put(N, "reply-type", nf_hdr(65, 16))
    put(N, "short", nf_hdr(2, 16)[:10])


def proxy_config():
    P = "fuzz-proxy-config"
    good = {"t": "config", "v": 1, "uid": 65534, "gid": 65534,
            "connect_ms": 2000, "idle_ms": 300000, "max_bytes": 0,
            "allow": ["deb.debian.org:443", "*.example.com:80",
                      "127.0.0.1:8080", "[::1]:8080"]}
    put(P, "good", js(good))
    put(P, "empty-allow", js(dict(good, allow=[])))
    put(P, "bad-entry", js(dict(good, allow=["nohostport", "a:0", ":80",
                                             "a:65536", "*.:1"])))
    put(P, "extra-key", js(dict(good, extra=1)))
    put(P, "missing-key", js({k: v for k, v in good.items() if k != "uid"}))
    put(P, "bounds", js(dict(good, uid=-1, connect_ms=0, idle_ms=86400001)))
    put(P, "version", js(dict(good, v=2)))
    put(P, "wrong-t", js(dict(good, t="window")))


def proxy_msg():
    M = "fuzz-proxy-msg"
    ready = js({"t": "ready"})
    req = {"t": "req", "w": 1, "method": "CONNECT", "host": "deb.debian.org",
           "port": 443, "allowed": True,
           "reason": "allowlisted as deb.debian.org:443", "up": 10,
           "down": 20}
    lines = [ready, js(req),
             js(dict(req, w=2, method="GET", host="example.com", port=80,
                     allowed=False, reason="not in the allowlist")),
             js(dict(req, w=0, method="-", host="", port=0, allowed=False,
                     reason="unparsable request", up=0, down=0)),
             js({"t": "bytes", "up": 100, "down": 2000}),
             js({"t": "bytes", "up": 100, "down": 2001})]
    put(M, "session", "\n".join(lines))
    put(M, "fail-first", js({"t": "fail", "msg": "seccomp: \x1b[31m\u00e9"}))
    put(M, "req-before-ready", js(req) + "\n" + ready)
    put(M, "ready-extra-key", js({"t": "ready", "x": 1}) + "\n" + ready)
    put(M, "bad-records", "\n".join([
        ready,
        js(dict(req, w=3)), js(dict(req, w=-1)), js(dict(req, port=65536)),
        js(dict(req, up=-1)), js(dict(req, method="get")),
        js(dict(req, method="A" * 16)), js(dict(req, host="a b")),
        js(dict(req, host="h" * 256)), js(dict(req, reason="r" * 401)),
        js(dict(req, reason="\u00e9")), js(dict(req, extra=1)),
        js({k: v for k, v in req.items() if k != "allowed"}),
        js(dict(req, allowed=1))]))
    put(M, "bytes-backwards", "\n".join([
        ready, js({"t": "bytes", "up": 5, "down": 5}),
        js({"t": "bytes", "up": 4, "down": 6}),
        js({"t": "bytes", "up": 9223372036854775807, "down": 6})]))
    put(M, "garbage", ready + "\n{\"t\":1}\n{\"t\":\"what\"}\n[]\n"
        "{\"t\":\"req\",\"t\":\"req\"}\n\n{")
    put(M, "oversized", ready + "\n" + js(dict(req, reason="x" * 2100)))


def qmp():
    Q = "fuzz-qmp"
    greet = js({"QMP": {"version": {"qemu": {"micro": 0, "minor": 2,
                                              "major": 7}, "package": ""},
                        "capabilities": ["oob"]}}) + "\r\n"
    caps = js({"return": {}, "id": 2}) + "\r\n"
    status = js({"return": {"status": "running", "running": True},
                 "id": 1}) + "\r\n"
    ev = js({"event": "STOP", "data": {},
             "timestamp": {"seconds": 1700000000,
                           "microseconds": 5}}) + "\r\n"
    # first byte: < 128 one write, else chunks of (b & 63) + 1 bytes
    put(Q, "session", "\x00" + greet + caps + status + ev +
        js({"return": {}, "id": 3}) + "\r\n")
    put(Q, "session-chunked", "\x87" + greet + caps + status + ev)
    put(Q, "error-reply", "\x00" + greet + caps +
        js({"error": {"class": "GenericError", "desc": "\x1b[2J no"},
            "id": 1}) + "\n")
    put(Q, "second-greeting", "\x00" + greet + greet)
    put(Q, "unknown-id", "\x00" + greet + js({"return": {}, "id": 99}) + "\n")
    put(Q, "no-greeting", "\x00" + status)
    put(Q, "long-line", "\x00" + greet + "{\"event\":\"" + "x" * 600 +
        "\"}\n")
    put(Q, "bad-json", "\x00" + greet + "{\"return\": \n" + "nonsense\n")
    put(Q, "late-reply", "\x00" + greet + caps + status + ev +
        js({"return": {}, "id": 4}) + "\n" + js({"return": {}, "id": 5}) + "\n")


def gitsrc():
    G = "fuzz-gitsrc"
    put(G, "not-a-repo", "\xff" + "fatal: '/x' does not appear to be a git "
        "repository\nfatal: Could not read from remote repository.\n\n"
        "Please make sure you have the correct access rights\nand the "
        "repository exists.\n")
    put(G, "hints", "\x40" + "error: x\nhint: do this\nhint: and that\n")
    put(G, "controls", "\x0a" + "a\x1b[31mred\x07\r\n\tb  c\x7f\xc3\xa9")
    put(G, "ref", "\x00" + "refs/heads/feature/x-1")
    put(G, "commit", "\x00" + "0123456789abcdef0123456789abcdef01234567")
    put(G, "url", "\x00" + "file:///srv/git/app.git")


def recipe():
    R = "fuzz-recipe"
    with open(os.path.join(TOP, "examples", "hello.yaml"), "rb") as f:
        put(R, "hello.yaml", f.read())
    put(R, "full.yaml", """image: minimal
cpus: 2
memory: 512M
source: .
env: {LANG: C.UTF-8, X: "a b"}
allow:
  - "127.0.0.1:8080"
  - "*.debian.org:443"
  - "[::1]:80"
limits:
  wall_time: 10m
  cpu_time: 5m
  boot_timeout: 60s
  disk: 2G
  log_bytes: 10M
  net_bytes: 100M
  artifacts_bytes: 100M
steps:
  - name: deps
    network: fetch
    run: apt-get install -y libfoo-dev
  - name: build
    run: make
    timeout: 5m
  - name: test
    run: |
      make check
      echo done
artifacts:
  - "out/*.deb"
""")
    put(R, "git-source.yaml", """source:
  git: ../repo.git
  ref: refs/tags/v1.2
steps:
  - {name: a, run: "cat /src/f.txt"}
""")
    put(R, "git-source-bad.yaml", """steps: [{name: a, run: x}]
source: {git: "file:///srv/r", ref: "0123456789abcdef0123456789abcdef01234567", x: 1}
""")
    put(R, "json.json", js({"image": "/abs/image", "steps": [
        {"name": "a", "run": "true", "network": "none", "timeout": "1s"}],
        "limits": {"disk": "1K"}}))
    put(R, "json-surrogates.json",
        '{"steps":[{"name":"\\ud83d\\ude00","run":"echo \\u00e9"}]}')
    put(R, "unknown-key.yaml", 'steps: [{name: a, run: "true"}]\nbogus: 1\n')
    put(R, "bad-size.yaml", 'memory: 12X\nsteps: [{name: a, run: "true"}]\n')
    put(R, "no-steps.yaml", "image: minimal\n")
    put(R, "syntax.yaml", 'steps: [{name: a, run: "true"}\n')
    put(R, "binary.yaml", b"\x00\xff\xfe garbage")
    put(R, "duplicate-step.yaml",
        "steps:\n  - {name: a, run: x}\n  - {name: a, run: y}\n")
    put(R, "bad-allow.yaml",
        'allow: ["nohost", "a:0", "1.2.3.4", "*:80"]\nsteps: [{name: a, run: x}]\n')
    put(R, "anchors.yaml", "x: &a {name: s, run: r}\nsteps: [*a, *a]\n")
    put(R, "tags.yaml", "steps: !!seq [{name: !!str a, run: !!binary aGk=}]\n")
    put(R, "durations.yaml", "limits: {wall_time: 1h30m, cpu_time: 0s, "
        "boot_timeout: 999999999999h}\nsteps: [{name: a, run: x, timeout: -1s}]\n")
    put(R, "relative-source.yaml", "source: ../../etc\nimage: ../img\n"
        "steps: [{name: a, run: x}]\n")


# ---- result: the byte format of fuzz-result.c's build() ------------------
def rstr(s):
    if s is None:
        return b"\xff"
    if isinstance(s, str):
        s = s.encode()
    return bytes([len(s)]) + s


def ri64(v):
    if 0 <= v < 64:
        return bytes([v << 2])
    return b"\x02" + struct.pack(">q", v)


def ru64(v):
    return struct.pack(">Q", v)


def result_seed(flags, status, reason, limit=None, accel=None, run_dir=None,
                steps=(), stats=(0,) * 8, arts=(), network=(), enforce=(),
                net_log=None):
    b = bytes([flags, status]) + rstr(reason)
    if flags & 1:
        name, unit, value, mx = limit
        b += rstr(name) + rstr(unit) + ri64(value) + ri64(mx)
    if flags & 2:
        b += rstr(accel)
    b += rstr(run_dir) + bytes([len(steps)])
    for name, fetch, ran, code, sig, start, dur in steps:
        b += bytes([fetch | ran << 1]) + rstr(name) + ri64(code) + \
            ri64(sig) + ri64(start) + ri64(dur)
    b += b"".join(ri64(v) for v in stats)
    b += bytes([len(arts)])
    for path, size, sha in arts:
        b += rstr(path) + ru64(size) + sha
    if flags & 8:
        b += bytes([len(network)])
        for method, host, reason_, port, up, down in network:
            b += rstr(method) + rstr(host) + rstr(reason_) + ru64(port) + \
                ru64(up) + ru64(down)
    if flags & 16:
        b += bytes([len(enforce)])
        for k, v in enforce:
            b += rstr(k) + bytes([v])
    if flags & 32:
        b += rstr(net_log)
    return b


def result():
    R = "fuzz-result"
    sha = b"0123456789abcdef" * 4
    steps = [("deps", 1, 1, 0, 0, 812, 1530), ("build", 0, 1, -1, 9, 2400,
                                                300000)]
    put(R, "passed", result_seed(4, 1, "all 2 steps passed",
                                 run_dir="/var/lib/qctl/runs/run-1",
                                 steps=steps,
                                 stats=(302500, 1800, 123456, 268435456,
                                        4194304, 1000, 2000, 77),
                                 arts=[("out/x.deb", 4096, sha)]))
    put(R, "limit", result_seed(1 | 2 | 8 | 16 | 32, 3,
                                'step "build" timed out after 300.0s',
                                limit=("timeout", "ms", 300001, 300000),
                                accel="tcg", steps=steps,
                                network=[("CONNECT", "deb.debian.org",
                                          "allowlisted", 443, 10, 20),
                                         ("GET", "x", "refused", 80, 0, 0)],
                                enforce=[("cpu_time", 1), ("net_bytes", 0)],
                                net_log="/run/x/net.jsonl"))
    put(R, "hostile-strings", result_seed(
        1 | 2, 3, b'step "\xc3\x28" \x1b[2J failed',
        limit=(b"abcdefghijklmnopqrstuvwxyz0123\xc3\xa9", b"\xff", -1, 0),
        accel=b"\xfe", run_dir=b"/tmp/\xed\xa0\x80",
        steps=[(b"\xf4\x90\x80\x80", 0, 0, 5, 0, 0, 0), (None, 1, 1, 255,
                                                          64, 1, 1)],
        arts=[(b"a\xff\xfe.bin", 1, b"\x80" * 64), (None, (1 << 63) - 1,
                                                    sha)]))
    put(R, "extremes", result_seed(0, 5, None, steps=[
        ("s", 1, 1, 2**31 - 1, -(2**31), -(2**63), 2**63 - 1)],
        stats=(2**63 - 1, -(2**63), 0, 1, 2, 3, 4, 5)))
    put(R, "status-out-of-range", result_seed(0, 6, ""))


def sni():
    copy_dir("fuzz-sni", "tests/unit/data/sni")


# ---- the guest agent's decoders: one payload -----------------------------
def cstr(s):
    return (s.encode() if isinstance(s, str) else s) + b"\0"


def exec_payload(argv, env=(), cwd="/src", flags=0, argc=None, envc=None):
    return (u32(flags) + u32(len(argv) if argc is None else argc) +
            u32(len(env) if envc is None else envc) + cstr(cwd) +
            b"".join(cstr(a) for a in argv) + b"".join(cstr(e) for e in env))


def ga_decode():
    G = "fuzz-ga-decode"
    put(G, "exec-shell", exec_payload(["make check"], ["LANG=C.UTF-8",
                                                      "http_proxy=http://x"],
                                      flags=1))
    put(G, "exec-argv", exec_payload(["sh", "-c", "echo hi"],
                                     ["PATH=/bin", "HOME=/src", "A=1", "A=2",
                                      "EMPTY="]))
    put(G, "exec-bad-flags", exec_payload(["x"], flags=8))
    put(G, "exec-high-flags", exec_payload(["x"], flags=0x80000007))
    # version 2: stdin pipe, pseudo-terminal, both
    put(G, "exec-stdin", exec_payload(["cat"], flags=2))
    put(G, "exec-pty", exec_payload(["sh -i"], ["TERM=xterm-256color"],
                                    cwd="/", flags=5))
    put(G, "exec-pty-stdin", exec_payload(["sh"], flags=7))
    put(G, "exec-relative-cwd", exec_payload(["x"], cwd="src"))
    put(G, "exec-empty-argv0", exec_payload([""]))
    put(G, "exec-bad-env", exec_payload(["x"], ["=x", "NOEQ"]))
    put(G, "exec-counts-overflow", exec_payload(["x"], argc=1,
                                                envc=0xffffffff))
    put(G, "exec-count-past-end", exec_payload(["x"], argc=3))
    put(G, "exec-trailing", exec_payload(["x"]) + b"junk")
    put(G, "exec-many-env", exec_payload(["x"], ["K%d=v" % (i % 700)
                                                 for i in range(1023)]))
    put(G, "file-in", cstr("/src"))
    put(G, "file-in-trailing", cstr("/src") + b"x")
    put(G, "file-out", u32(2) + cstr("/src") + cstr("out/*.deb") + cstr("*.log"))
    put(G, "file-out-none", u32(0) + cstr("/src"))
    put(G, "file-out-empty-glob", u32(1) + cstr("/src") + cstr(""))
    put(G, "signal", u32(15))
    put(G, "signal-zero", u32(0))
    put(G, "signal-big", u32(65))
    put(G, "winsize", u32(24) + u32(80))
    put(G, "winsize-max", u32(65535) + u32(65535))
    put(G, "winsize-zero", u32(0) + u32(80))
    put(G, "winsize-big", u32(24) + u32(65536))
    put(G, "winsize-short", u32(24))
    put(G, "winsize-long", u32(24) + u32(80) + b"\0")


def text():
    T = "fuzz-text"
    put(T, "plain", "out/x.deb")
    put(T, "ansi", "\x1b[2J\x1b]0;title\x07red \x1b[31mX\x1b[0m\r\n")
    put(T, "c1-raw", b"a\x9b31mb\x85c")
    put(T, "c1-utf8", b"a\xc2\x9b31mb\xc2\x85c\xc2\xa0")
    put(T, "overlong", b"\xc0\xaf\xe0\x80\xaf\xf0\x80\x80\xaf")
    put(T, "surrogate", b"\xed\xa0\x80\xed\xbf\xbf")
    put(T, "astral", "\U0001f600 \u00e9t\u00e9 \u4e2d")
    put(T, "past-max", b"\xf4\x90\x80\x80\xf5\x80")
    put(T, "truncated", b"abc\xe4\xb8")
    put(T, "nul", b"a\0b\tc")
    put(T, "dotdot", "a/../b")
    put(T, "dots", "./a//b/./c/")
    put(T, "deep", "d/" * 33 + "f")
    put(T, "long-component", "x" * 256)


# ---- sshd-msg: frames between the manager and qctl-sshd -------------------
def sshd_msg():
    M = "fuzz-sshd-msg"
    T = dict(config=1, keys=2, opened=3, refused=4, stdout=5, stderr=6,
             eof=7, exit=8, close=9, ack=10, ready=32, fail=33, log=34,
             keys_req=35, open=36, stdin=37, s_eof=38, winch=39, s_ack=40,
             closed=41)

    def be(v):
        return struct.pack(">I", v & 0xffffffff)

    def st(b):
        b = b.encode() if isinstance(b, str) else b
        return be(len(b)) + b + b"\0"

    def fr(t, payload=b"", id_=0, flags=0):
        return struct.pack(">IHHI", 12 + len(payload), T[t], flags,
                           id_) + payload

    def pkts(*frames):
        return b"".join(struct.pack(">H", len(f)) + f for f in frames)

    def open_(id_, pty=True, cmd="cat /src/x"):
        return fr("open", st("b1") + st("SHA256:abc+/=") +
                  st("127.0.0.1 port 5") + bytes([pty]) +
                  st("xterm" if pty else "") + be(24 if pty else 0) +
                  be(80 if pty else 0) + bytes([cmd is not None]) +
                  st(cmd or ""), id_)

    ready = fr("ready")
    put(M, "session", pkts(
        ready, fr("log", st("ssh: a line")), fr("keys_req", st("b1"), 1),
        open_(2), fr("stdin", be(3) + b"abc", 2), fr("winch", be(5) + be(6), 2),
        fr("s_ack", be(50), 2), fr("s_eof", b"", 2),
        fr("closed", st("exited"), 2)))
    put(M, "shell-refused", pkts(ready, open_(3, pty=False, cmd=None),
                                 fr("stdin", be(1) + b"x", 3),
                                 fr("closed", st(""), 3)))
    put(M, "manager-frames", pkts(
        fr("config", be(1) + be(65534) + be(65534) + be(16) + be(4) +
           be(30000) + be(6) + be(1) + st("-----BEGIN KEY-----\nx\n")),
        fr("keys", be(2) + st("ssh-ed25519 AAAA a") + st("ssh-rsa B"), 1),
        fr("opened", b"", 2), fr("refused", st("no"), 3),
        fr("stdout", be(2) + b"hi", 2), fr("stderr", be(1) + b"\0", 2),
        fr("eof", b"", 2), fr("exit", be(1) + be(9), 2),
        fr("close", st("hold expired"), 2), fr("ack", be(10), 2)))
    put(M, "fail-first", pkts(fr("fail", st("seccomp: x"))))
    put(M, "bad", pkts(
        ready, fr("ready"), fr("open", b"", 0), fr("stdin", be(0), 9),
        fr("ack", be(0), 1, flags=1), b"\0\0\0\x0c\0\x63\0\0\0\0\0\1",
        fr("keys_req", be(3) + b"a/b\0", 4),
        fr("keys_req", be(2) + b"b1x", 5)))
    put(M, "window", pkts(ready, open_(2), *[
        fr("stdin", be(16384) + b"a" * 16384, 2) for _ in range(9)]))


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    for f in (agent, artifacts, cgroup, control, http_req, image, imagedef,
              nf_counters,
              nf_request, proxy_config, proxy_msg, qmp, recipe, result, sni,
              ga_decode, text, gitsrc, sshd_msg):
        f()
    for t in sorted(os.listdir(OUT)):
        print("%-20s %3d seeds" % (t, len(os.listdir(os.path.join(OUT, t)))))


if __name__ == "__main__":
    main()
