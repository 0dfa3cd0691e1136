#!/usr/bin/env python3
"""tests/grade/echo_server.py: stage 1's echo server in Python, graded by the
same checks as the C++ one (make grade STAGE=1 SERVER=tests/grade/echo_server.py),
to show that the grader judges behaviour on the wire, not the language."""
import argparse
import errno
import os
import select
import signal
import socket
import sys


def log(*parts):
    print(*parts, sep="", file=sys.stderr, flush=True)


def main():
    parser = argparse.ArgumentParser(prog="server", description="iterative TCP echo server")
    parser.add_argument("-p", "--port", type=int, default=7001, metavar="PORT")
    parser.add_argument("-b", "--bind", default="0.0.0.0", metavar="ADDR")
    opts = parser.parse_args()
    if not 0 <= opts.port <= 65535:
        parser.error("port out of range")  # usage on stderr, exit 2

    # SIGINT/SIGTERM write to this pipe, so select() below wakes up for them.
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)

    family, _, _, _, addr = socket.getaddrinfo(opts.bind, opts.port, 0, socket.SOCK_STREAM,
                                               0, socket.AI_PASSIVE)[0]
    where = "%s:%d" % (addr[0], addr[1]) if family == socket.AF_INET else "[%s]:%d" % addr[:2]
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(addr)
    except OSError as e:
        log("bind ", where, ": ", os.strerror(e.errno))
        return 1
    listener.listen(16)
    host, port = listener.getsockname()[:2]
    line = "listening on %s:%d" % (host if family == socket.AF_INET else "[%s]" % host, port)
    print(line, flush=True)
    log(line)

    def wait(sock):  # False once a signal asks us to stop
        ready, _, _ = select.select([sock, wake_r], [], [])
        return wake_r not in ready

    accept_failing = False
    while wait(listener):
        try:
            client, peer = listener.accept()
        except OSError as e:
            if e.errno in (errno.ECONNABORTED, errno.EAGAIN):
                continue
            if not accept_failing:  # out of descriptors: log once, pause, no spinning
                log("accept: ", os.strerror(e.errno))
            accept_failing = True
            select.select([wake_r], [], [], 0.1)
            continue
        accept_failing = False
        name = "%s:%d" % peer[:2]
        log(name, " connected")
        echoed, reason, stop = 0, "", False
        with client:
            while True:
                if not wait(client):
                    stop = True
                    break
                try:
                    data = client.recv(256 * 1024)
                    if not data:  # the client's FIN
                        break
                    client.sendall(data)  # loops over partial sends
                    echoed += len(data)
                except OSError as e:  # a reset, a broken pipe
                    reason = " (%s)" % os.strerror(e.errno)
                    break
        log(name, " closed, ", echoed, " bytes", reason)
        if stop:
            break
    log("shutting down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
