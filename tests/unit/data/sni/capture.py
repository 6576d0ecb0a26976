#!/usr/bin/env python3
"""Record the first bytes TLS clients send (their ClientHello records).

Listens on 127.0.0.1:PORT, saves what each connection sends before it goes
quiet (a client waits for the ServerHello) into OUTDIR/NAME.bin, one file
per name given on the command line, in order of connection.  Used once to
make the captures in this directory (see README); never contacts anything
but loopback.
"""
import socket
import sys

port, outdir, names = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(4)
print("listening", flush=True)
for name in names:
    c, _ = srv.accept()
    c.settimeout(1.0)
    data = b""
    try:
        while len(data) < 65536:
            b = c.recv(65536)
            if not b:
                break
            data += b
    except socket.timeout:
        pass
    c.close()
    with open(f"{outdir}/{name}.bin", "wb") as f:
        f.write(data)
    print(name, len(data), flush=True)
