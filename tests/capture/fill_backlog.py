#!/usr/bin/env python3
"""fill_backlog.py PORT N HOLD: open N connections to a busy iterative server, hold them HOLD s.

The first connection is accepted and served; the others finish their handshake
in the kernel and wait in the accept queue, until the queue (listen backlog)
is full: then the server's kernel ignores the final ACK / SYN and connect()
stays pending. Prints how many connect()s completed. Non-blocking, so nothing
here waits forever. Used by docs/tcp-on-the-wire.md#the-accept-queue-overflows.
"""
import select
import socket
import sys
import time

port, n, hold = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
    time.sleep(0.005)
time.sleep(0.3)
_, writable, _ = select.select([], socks, [], 0)
done = [s for s in writable if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0]
print(f"{len(done)} of {n} connect()s completed; {n - len(done)} still pending", flush=True)
time.sleep(hold)
for s in socks:
    s.close()
