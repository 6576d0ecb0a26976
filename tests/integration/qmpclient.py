#!/usr/bin/env python3
"""qmpclient.py - a small QMP client (python3 stdlib only) for qctl serve.

As a library (the integration tests):

    c = QMP("/run/qctl.sock")          # reads the greeting
    c.negotiate()                      # qmp_capabilities
    r = c.cmd("build-submit", recipe={"steps": [{"name": "t", "run": "true"}]})
    ev = c.wait_event("BUILD_FINISHED", build=r["id"])

As a command:

    qmpclient.py SOCKET COMMAND ['{"json": "arguments"}']

negotiates, runs one command and prints its return value as JSON (exit 0),
or the error (exit 1).
"""
import json
import select
import socket
import sys
import time


class QMPError(Exception):
    """An error reply: cls is its class, desc its description."""

    def __init__(self, cls, desc, reply=None):
        super().__init__("%s: %s" % (cls, desc))
        self.cls = cls
        self.desc = desc
        self.reply = reply


class QMP:
    def __init__(self, path, timeout=60.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.timeout = timeout
        self.buf = b""
        self.events = []  # events received, in order, not yet taken
        self.next_id = 0
        self.greeting = self.recv()

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        self.sock.sendall(data)

    def send(self, obj):
        self.send_raw(json.dumps(obj).encode() + b"\n")

    def recv(self, timeout=None):
        """The next message (reply, error or event) as a dict."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no message from the server")
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                continue
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("server closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def reply(self, want_id, timeout=None):
        """The reply with id want_id; events seen meanwhile are kept."""
        while True:
            m = self.recv(timeout)
            if "event" in m:
                self.events.append(m)
                continue
            if m.get("id") == want_id:
                return m
            raise AssertionError("unexpected message %r" % (m,))

    def execute(self, name, args=None, timeout=None):
        """Send a command, return the whole reply (return or error)."""
        self.next_id += 1
        req = {"execute": name, "id": self.next_id}
        if args is not None:
            req["arguments"] = args
        self.send(req)
        return self.reply(self.next_id, timeout)

    def cmd(self, name, timeout=None, **args):
        """Run a command: its return value, or QMPError."""
        r = self.execute(name, args if args else None, timeout)
        if "error" in r:
            raise QMPError(r["error"]["class"], r["error"]["desc"], r)
        return r["return"]

    def negotiate(self):
        return self.cmd("qmp_capabilities")

    def wait_event(self, name, timeout=None, **data):
        """The first event called name whose data has the given items;
        earlier events stay in self.events."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for i, e in enumerate(self.events):
                if e["event"] == name and all(
                        e.get("data", {}).get(k) == v
                        for k, v in data.items()):
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s %r event" % (name, data))
            m = self.recv(left)
            if "event" not in m:
                raise AssertionError("unexpected message %r" % (m,))
            self.events.append(m)


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write(__doc__)
        return 2
    c = QMP(argv[1])
    c.negotiate()
    args = json.loads(argv[3]) if len(argv) == 4 else None
    r = c.execute(argv[2], args)
    c.close()
    if "error" in r:
        print(json.dumps(r["error"]))
        return 1
    print(json.dumps(r["return"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
