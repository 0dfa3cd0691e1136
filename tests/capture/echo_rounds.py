#!/usr/bin/env python3
"""echo_rounds.py PORT [SIZE] [SECONDS]: how many SIZE-byte echo round trips per second?

Sends SIZE bytes in one sendall(), reads until all SIZE bytes came back, and
repeats for SECONDS on 127.0.0.1:PORT. Prints rounds, rounds/s and the slowest
round. Used by docs/tcp-on-the-wire.md#nagle-meets-delayed-ack.
"""
import socket
import sys
import time

port = int(sys.argv[1])
size = int(sys.argv[2]) if len(sys.argv) > 2 else 16384
seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 2.0
payload = bytes(i % 251 for i in range(size))

s = socket.create_connection(("127.0.0.1", port))
rounds, slowest = 0, 0.0
start = time.monotonic()
while time.monotonic() - start < seconds:
    t0 = time.monotonic()
    s.sendall(payload)
    got = 0
    while got < size:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        got += len(chunk)
    slowest = max(slowest, time.monotonic() - t0)
    rounds += 1
elapsed = time.monotonic() - start
s.close()
print(f"{rounds} rounds of {size} bytes in {elapsed:.2f} s: {rounds / elapsed:.0f} round trips/s, "
      f"slowest {slowest * 1000:.1f} ms")
