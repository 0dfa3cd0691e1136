#!/usr/bin/env python3
"""slow_reader.py SERVER [SLOW [SECONDS]]: what one slow reader costs a chat room.

Starts SERVER (step2_multiclient/server or server_epoll) on a free port with
five flooders (processes that send 100-byte lines as fast as the relay takes
them and read everything), a chatter that sends a line every 50 ms, a
listener that notes when each chatter line arrives, and, unless SLOW is
"none", one slow reader: it takes SLOW KiB every 100 ms ("never": it never
reads). Prints the flooders' lines received per second, the chatter's
latency (p50, p99, max) and whether and when the slow reader was dropped.
Used by docs/02-multiclient.md#the-slow-reader.
"""
import multiprocessing as mp
import socket
import tempfile
import subprocess
import sys
import threading
import time

LINE = b"x" * 99 + b"\n"


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(4096)  # the welcome (and maybe some joined lines)
    return s


def flooder(port, seconds, result):
    s = connect(port)
    stop = time.monotonic() + seconds
    got = 0

    def send():
        batch = LINE * 64
        try:
            while time.monotonic() < stop:
                s.sendall(batch)
        except OSError:
            pass

    t = threading.Thread(target=send, daemon=True)
    t.start()
    s.settimeout(0.5)
    while time.monotonic() < stop:
        try:
            data = s.recv(1 << 16)
        except socket.timeout:
            continue
        if not data:
            break
        got += data.count(b"\n")
    result.put(got)


def main():
    server = sys.argv[1]
    slow = sys.argv[2] if len(sys.argv) > 2 else "none"
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 8.0
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen([server, "--port", "0", "--bind", "127.0.0.1"],
                            stdout=subprocess.PIPE, stderr=log)
    port = int(proc.stdout.readline().decode().rsplit(":", 1)[1])
    try:
        slow_sock = connect(port) if slow != "none" else None
        listener = connect(port)
        chatter = connect(port)
        results = mp.Queue()
        floods = [mp.Process(target=flooder, args=(port, seconds, results)) for _ in range(5)]
        for f in floods:
            f.start()
        dropped = {}
        latencies = []

        def listen():
            buf = b""
            listener.settimeout(0.5)
            end = time.monotonic() + seconds + 1
            while time.monotonic() < end:
                try:
                    data = listener.recv(1 << 16)
                except socket.timeout:
                    continue
                if not data:
                    return
                now = time.monotonic()
                buf += data
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if b": t=" in line:
                        latencies.append(now - float(line.split(b"t=")[1]))
                    elif line.endswith(b"left (too slow)"):
                        dropped.setdefault("at", now - start)

        def read_slowly():
            if slow == "never":
                return
            while True:
                try:
                    if not slow_sock.recv(int(slow) * 1024):
                        return
                except OSError:
                    return
                time.sleep(0.1)

        def drain(sock):  # the chatter reads everything too (or it would be the slow one)
            try:
                while sock.recv(1 << 16):
                    pass
            except OSError:
                pass

        start = time.monotonic()
        threads = [threading.Thread(target=listen, daemon=True),
                   threading.Thread(target=drain, args=(chatter,), daemon=True)]
        for t in threads:
            t.start()
        if slow_sock is not None:
            threading.Thread(target=read_slowly, daemon=True).start()
        while time.monotonic() < start + seconds:
            chatter.sendall(b"t=%.6f\n" % time.monotonic())
            time.sleep(0.05)
        honest = sum(results.get(timeout=30) for _ in floods)
        for f in floods:
            f.join()
        threads[0].join()
        latencies.sort()
        def pct(p):
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")
        print(f"slow={slow} honest_lines_per_s={honest / seconds:.0f} "
              f"chatter_ms_p50={pct(0.5):.1f} p99={pct(0.99):.1f} max={pct(1.0):.1f} "
              f"chatter_lines={len(latencies)} "
              f"slow_dropped={'at %.2f s' % dropped['at'] if 'at' in dropped else 'no'}", end=" ")
    finally:
        proc.terminate()
        proc.wait()
        log.seek(0)
        print(f"dropped_as_too_slow={log.read().count(b'too slow')}")


if __name__ == "__main__":
    main()
