#!/usr/bin/env bash
# tests/capture/demo.sh TOPIC: the small experiments docs/tcp-on-the-wire.md quotes.
#
#   nagle         16 KiB echo round trips: socat+cat (Nagle meets delayed ACK) vs stage 1
#   zero-window   a client that stops reading: the windows close, probes, the update
#   backlog       the accept queue of the iterative stage 1 server overflows
#   time-wait     the server closes first: TIME_WAIT on its port, and SO_REUSEADDR
#   mss           loopback's MSS, and the MSS with an Ethernet-sized MTU
#   retransmit    segments that get no ACK: the retransmission timer backs off
#   sockets       the 4-tuple, descriptors, the accept queue and the buffers, seen by ss
#   fork          stage 2's server_fork: who holds which socket after fork()
#
# Loopback only. mss and retransmit change lo's MTU or take lo down, so they
# run in a private network namespace of their own (unshare -n, needs root);
# the others need tcpdump's privilege (CAP_NET_RAW). Each run takes a few
# seconds; every process started here is stopped by its PID.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
server_bin=$root/step1_echo/server
client_bin=$root/step1_echo/client
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do
        kill "$p" 2>/dev/null || continue
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n$ %s\n' "$*"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_listening() { # PORT
    for _ in $(seq 100); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        sleep 0.05
    done
    echo "nothing listens on $1" >&2
    return 1
}
wait_for() { # FILE PATTERN: until FILE has a line matching PATTERN, at most 5 s
    # -s: a background job's shell creates FILE, and this may look first.
    for _ in $(seq 250); do
        grep -qs "$2" "$1" && return 0
        sleep 0.02
    done
    return 0 # the caller goes on and checks what it needs
}
start_server() { # [ARGS...]: stage 1 server on a free port; sets $port
    "$server_bin" --port 0 --bind 127.0.0.1 "$@" >"$work/server.out" 2>"$work/server.err" &
    pids+=($!)
    server_pid=$!
    wait_for "$work/server.out" '^listening on'
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/server.out")
}
start_tcpdump() { # FILTER...
    tcpdump -i lo -n -s 128 -U --immediate-mode -w "$work/cap.pcap" "$@" 2>"$work/tcpdump.err" &
    pids+=($!)
    tcpdump_pid=$!
    for _ in $(seq 100); do
        grep -q 'listening on' "$work/tcpdump.err" && return 0
        kill -0 "$tcpdump_pid" 2>/dev/null || break
        sleep 0.05
    done
    cat "$work/tcpdump.err" >&2
    echo "tcpdump cannot capture: it needs CAP_NET_RAW (run as root)" >&2
    exit 1
}
stop_tcpdump() {
    sleep 0.1
    kill -INT "$tcpdump_pid"
    wait "$tcpdump_pid" 2>/dev/null || true
}
show_packets() { tcpdump -r "$work/cap.pcap" -n -ttttt "$@" 2>/dev/null; }

nagle() {
    local p
    p=$(free_port)
    say "socat TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr,fork EXEC:cat &"
    socat "TCP-LISTEN:$p,bind=127.0.0.1,reuseaddr,fork" EXEC:cat &
    pids+=($!)
    wait_listening "$p"
    say "python3 tests/capture/echo_rounds.py $p 16384 2"
    python3 "$here/echo_rounds.py" "$p" 16384 2
    start_server
    say "./step1_echo/server --port 0 --bind 127.0.0.1 &   # listening on 127.0.0.1:$port"
    say "python3 tests/capture/echo_rounds.py $port 16384 2"
    python3 "$here/echo_rounds.py" "$port" 16384 2
    start_tcpdump "tcp port $p"
    say "tcpdump -i lo -n 'tcp port $p' & python3 tests/capture/echo_rounds.py $p 16384 0.1"
    python3 "$here/echo_rounds.py" "$p" 16384 0.1
    stop_tcpdump
    show_packets
}

zero_window() {
    start_server
    say "./step1_echo/server --port 0 --bind 127.0.0.1 &   # listening on 127.0.0.1:$port"
    start_tcpdump "tcp port $port"
    say "python3 tests/capture/stop_reading.py $port 1.0 &   # and, 0.8 s later:"
    python3 "$here/stop_reading.py" "$port" 1.0 >"$work/client.out" &
    local client=$!
    pids+=($client)
    sleep 0.8
    say "ss -tnoi '( sport = :$port or dport = :$port )'"
    ss -tnoi "( sport = :$port or dport = :$port )"
    wait "$client"
    cat "$work/client.out"
    stop_tcpdump
    say "tcpdump -r capture.pcap -n -ttttt | grep -c ."
    show_packets | grep -c .
    say "tcpdump -r capture.pcap -n -ttttt | grep -n -E 'win 0,.* length 0' | head -6   # pure ACKs with a closed window"
    show_packets | grep -n -E 'win 0,.* length 0' | head -6 || true
    local last
    last=$(show_packets | grep -n -E 'win 0,' | tail -1 | cut -d: -f1)
    say "tcpdump -r capture.pcap -n -ttttt | sed -n '$((last - 2)),$((last + 4))p'   # around the last zero window"
    show_packets | sed -n "$((last - 2)),$((last + 4))p"
}

backlog() {
    start_server
    say "./step1_echo/server --port 0 --bind 127.0.0.1 &   # listening on 127.0.0.1:$port, backlog 16"
    start_tcpdump "tcp port $port and tcp[tcpflags] & tcp-syn != 0"
    say "nstat -az TcpExtListenOverflows TcpExtListenDrops   # before (counters of the whole machine)"
    nstat -az TcpExtListenOverflows TcpExtListenDrops | tail -n +2
    say "python3 tests/capture/fill_backlog.py $port 25 1.5 &   # and, 0.6 s later:"
    python3 "$here/fill_backlog.py" "$port" 25 1.5 &
    local client=$!
    pids+=($client)
    sleep 0.6
    say "ss -lnt 'sport = :$port'"
    ss -lnt "sport = :$port"
    say "ss -tn state syn-sent 'dport = :$port' | wc -l   # connect()s still waiting for SYN+ACK (+1 header line)"
    ss -tn state syn-sent "dport = :$port" | wc -l
    wait "$client"
    say "nstat -az TcpExtListenOverflows TcpExtListenDrops   # after"
    nstat -az TcpExtListenOverflows TcpExtListenDrops | tail -n +2
    stop_tcpdump
    local late
    late=$(show_packets 'tcp[tcpflags] == tcp-syn' | tail -1 | sed -E 's/.*127\.0\.0\.1\.([0-9]+) >.*/\1/')
    say "tcpdump -r capture.pcap -n -ttttt 'tcp[tcpflags] & tcp-syn != 0 and port $late'   # one connect() that waited"
    show_packets "tcp[tcpflags] & tcp-syn != 0 and port $late"
}

time_wait() {
    start_server
    say "./step1_echo/server --port 0 --bind 127.0.0.1 &   # listening on 127.0.0.1:$port"
    say "python3 -c 'connect to 127.0.0.1:$port; one byte echoed; wait for the FIN (recv() -> 0), close' &"
    local echoed=$work/echoed
    python3 -c "import socket; s = socket.create_connection(('127.0.0.1', $port)); s.sendall(b'x'); s.recv(1); print('echoed', flush=True); s.recv(1); s.close()" >"$echoed" &
    local client=$!
    pids+=($client)
    # The echo shows the server is serving this client (not merely that the
    # handshake is done: a connection still in the accept queue gets an RST).
    wait_for "$echoed" echoed
    say "kill -TERM $server_pid   # the server closes first: its FIN goes out first"
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    wait "$client" 2>/dev/null || true   # it read the FIN and closed
    say "ss -tan '( sport = :$port or dport = :$port )'"
    ss -tan "( sport = :$port or dport = :$port )"
    say "python3 -c 'bind 127.0.0.1:$port without SO_REUSEADDR'"
    python3 -c "
import socket
s = socket.socket()
try:
    s.bind(('127.0.0.1', $port)); print('bound')
except OSError as e:
    print('bind:', e.strerror)
" || true
    say "python3 -c 'bind 127.0.0.1:$port with SO_REUSEADDR'"
    python3 -c "
import socket
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('127.0.0.1', $port)); s.listen(); print('bound and listening')
"
    say "./step1_echo/server --port $port --bind 127.0.0.1   # sets SO_REUSEADDR itself"
    "$server_bin" --port "$port" --bind 127.0.0.1 >"$work/again.out" 2>&1 &
    local again=$!
    pids+=($again)
    sleep 0.3
    cat "$work/again.out"
}

sockets() {
    start_server
    say "./step1_echo/server --port 0 --bind 127.0.0.1 &   # pid $server_pid, listening on 127.0.0.1:$port"
    say "python3 -c 'two connections to 127.0.0.1:$port, idle' &"
    python3 -c "
import socket, time
a = socket.create_connection(('127.0.0.1', $port))
b = socket.create_connection(('127.0.0.1', $port))
time.sleep(30)" &
    pids+=($!)
    for _ in $(seq 100); do
        [ "$(ss -Htn state established "sport = :$port" | wc -l)" -ge 2 ] && break
        sleep 0.05
    done
    sleep 0.1
    say "ss -tanp '( sport = :$port or dport = :$port )'"
    ss -tanp "( sport = :$port or dport = :$port )" | sed -E 's/,fd=/ fd=/g'
    say "ls -l /proc/$server_pid/fd   # descriptors 0-9 (higher ones: whatever the shell passed in)"
    local f
    for f in /proc/"$server_pid"/fd/*; do
        [ "${f##*/}" -le 9 ] && echo "${f##*/} -> $(readlink "$f")"
    done | sort -n
    say "ss -tm state established 'sport = :$port'   # skmem: r = receive queue, rb = receive buffer, t = send queue, tb = send buffer"
    ss -tm state established "sport = :$port"
}

fork_demo() {
    local bin=$root/step2_multiclient/server_fork
    if [ ! -x "$bin" ]; then
        echo "step2_multiclient/server_fork is not built yet: make step2" >&2
        exit 1
    fi
    "$bin" --port 0 --bind 127.0.0.1 --explain >"$work/server.out" 2>"$work/server.err" &
    pids+=($!)
    server_pid=$!
    wait_for "$work/server.out" '^listening on'
    port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/server.out")
    say "./step2_multiclient/server_fork --port 0 --bind 127.0.0.1 --explain &   # pid $server_pid, listening on 127.0.0.1:$port"
    say "python3 -c 'connect to 127.0.0.1:$port, send hello, read the echo, stay' &"
    python3 -c "
import socket, time
s = socket.create_connection(('127.0.0.1', $port))
s.sendall(b'hello\n'); s.recv(100); time.sleep(30)" &
    local client=$!
    pids+=($client)
    wait_for "$work/server.err" 'send('
    say "ss -tanp '( sport = :$port )'"
    ss -tanp "( sport = :$port )" | sed -E 's/,fd=/ fd=/g'
    say "kill $client   # the client leaves"
    kill "$client"
    wait "$client" 2>/dev/null || true
    sleep 0.3
    say "grep '^explain: ' server.err   # the parent's and the child's narration"
    grep '^explain: ' "$work/server.err" | grep -v 'poll()\|select()' | cut -c1-200
}

in_namespace() { # run the rest of this script in a private network namespace
    if [ "${DEMO_IN_NETNS:-}" != 1 ]; then
        exec unshare -n env DEMO_IN_NETNS=1 "$0" "$@"
    fi
    ip link set lo up
}

mss() {
    start_server
    start_tcpdump "tcp[tcpflags] & tcp-syn != 0"
    say "ip link show lo | head -1"
    ip link show lo | head -1
    say "echo hi | ./step1_echo/client --explain 127.0.0.1 $port 2>&1 | grep TCP_INFO | head -1"
    echo hi | "$client_bin" --explain 127.0.0.1 "$port" 2>&1 | grep 'TCP_INFO' | head -1
    stop_tcpdump
    say "tcpdump -n 'tcp[tcpflags] & tcp-syn != 0'"
    show_packets
    kill -TERM "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    say "ip link set lo mtu 1500   # an Ethernet-sized MTU, in this private namespace only"
    ip link set lo mtu 1500
    start_server
    start_tcpdump "tcp[tcpflags] & tcp-syn != 0"
    say "echo hi | ./step1_echo/client --explain 127.0.0.1 $port 2>&1 | grep TCP_INFO | head -1"
    echo hi | "$client_bin" --explain 127.0.0.1 "$port" 2>&1 | grep 'TCP_INFO' | head -1
    stop_tcpdump
    say "tcpdump -n 'tcp[tcpflags] & tcp-syn != 0'"
    show_packets
}

retransmit() {
    start_server
    say "./step1_echo/server --port 0 --bind 127.0.0.1 &   # in a private network namespace"
    python3 -u -c "
import socket, sys, time
s = socket.create_connection(('127.0.0.1', $port))
s.sendall(b'one\n'); print('echoed:', s.recv(100))
print('lo goes down now', flush=True)
time.sleep(0.3)
s.sendall(b'two\n'); t = time.monotonic()
print('echoed:', s.recv(100), 'after %.1f s' % (time.monotonic() - t))
" >"$work/client.out" &
    local client=$!
    pids+=($client)
    wait_for "$work/client.out" 'lo goes down'
    say "ip link set lo down   # segments now vanish: no ACK comes back"
    ip link set lo down
    local t
    for t in 0.5 0.7 0.8 1.0; do
        sleep "$t"
        say "ss -tnoi state established 'dport = :$port'   # the client's socket"
        ss -tnoi state established "dport = :$port" | tail -n +2
    done
    say "ip link set lo up"
    ip link set lo up
    wait "$client" || true
    cat "$work/client.out"
}

topic=${1:-}
case "$topic" in
nagle) nagle ;;
zero-window) zero_window ;;
backlog) backlog ;;
time-wait) time_wait ;;
sockets) sockets ;;
fork) fork_demo ;;
mss)
    in_namespace "$@"
    mss
    ;;
retransmit)
    in_namespace "$@"
    retransmit
    ;;
*)
    sed -n '2,15p' "$0" >&2
    exit 2
    ;;
esac
