#!/usr/bin/env python3
"""Test upstream HTTP server: /file.txt, /big (N bytes), /slow (a byte
every 100 ms, forever).  Listens on 127.0.0.1 (or --bind ADDR), inside the
test's own network namespace; stops by itself after --lifetime seconds."""
import argparse, http.server, socketserver, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("port", type=int)
ap.add_argument("--tag", default="upstream")
ap.add_argument("--lifetime", type=int, default=600)
ap.add_argument("--bind", default="127.0.0.1")
a = ap.parse_args()


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.startswith("/big"):
            n = int(self.path.split("=")[1]) if "=" in self.path else 4 << 20
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            chunk = b"x" * 65536
            try:
                while n > 0:
                    self.wfile.write(chunk[: min(n, len(chunk))])
                    n -= len(chunk)
            except OSError:
                pass  # the proxy or the build went away: expected
        elif self.path == "/slow":
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(6000):
                    self.wfile.write(b".")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
        else:
            body = ("hello-from-%s\n" % a.tag).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)


class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = S((a.bind, a.port), H)
threading.Timer(a.lifetime, srv.shutdown).start()
srv.serve_forever()
