#!/usr/bin/env python3
"""abandoned_handshakes.py SERVER CERTDIR: memory after 950 TLS handshakes abandoned half-way.

Starts the stage 3 SERVER on a free port, opens 950 connections that each send
the first half of a ClientHello, closes them all, and prints the server's
VmRSS before, while they are open, right after, and 2.3 s later.
Used by docs/02-multiclient.md#tuning (MemoryTrim).
"""
import socket
import ssl
import subprocess
import sys
import time

binary, certs = sys.argv[1], sys.argv[2]
srv = subprocess.Popen([binary, "--port", "0", "--bind", "127.0.0.1",
                        "--cert", certs + "/server.crt", "--key", certs + "/server.key"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
port = int(srv.stdout.readline().decode().rsplit(":", 1)[1])


def rss():
    with open(f"/proc/{srv.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1])


ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
client = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
try:
    client.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = outgoing.read()
half = hello[:len(hello) // 2]
try:
    print("before", rss(), "kB")
    socks = []
    for _ in range(950):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(half)
        socks.append(s)
    time.sleep(0.5)
    print("950 half handshakes open", rss(), "kB")
    for s in socks:
        s.close()
    time.sleep(0.3)
    print("just closed", rss(), "kB")
    time.sleep(2.0)
    print("2.3 s after", rss(), "kB")
finally:
    srv.terminate()
    srv.wait()
