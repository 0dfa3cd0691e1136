#!/usr/bin/env python3
"""stop_reading.py PORT [PAUSE]: a client that sends to an echo server but stops reading.

Sends as fast as it can without reading for PAUSE seconds (default 1.0): the
echo comes back, fills our small receive buffer, our window drops to 0, the
server's send buffer fills, it stops reading, its window drops to 0, and our
send() finally refuses more. Then it reads everything back and exits.
Used by docs/tcp-on-the-wire.md#window-control-a-reader-that-stops-the-zero-window.
"""
import socket
import sys
import time

port = int(sys.argv[1])
pause = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)  # before connect: a small window
s.connect(("127.0.0.1", port))
s.setblocking(False)
chunk = b"x" * 65536
sent, start, blocked_at = 0, time.monotonic(), None
while time.monotonic() - start < pause:
    try:
        sent += s.send(chunk)
    except BlockingIOError:
        if blocked_at is None:
            blocked_at = time.monotonic() - start
        time.sleep(0.01)
print(f"sent {sent} bytes without reading; send() first refused more after "
      f"{blocked_at * 1000:.0f} ms" if blocked_at is not None else f"sent {sent} bytes, never blocked",
      flush=True)
s.shutdown(socket.SHUT_WR)
s.setblocking(True)
got = 0
while True:
    data = s.recv(1 << 20)
    if not data:
        break
    got += len(data)
print(f"then read back {got} bytes", flush=True)
