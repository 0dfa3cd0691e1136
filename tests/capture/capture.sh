#!/usr/bin/env bash
# tests/capture/capture.sh STAGE: record a stage's scripted session on lo.
#
# Starts the stage's server (--port 0 --bind 127.0.0.1 --explain), starts
# tcpdump on lo for that port only, runs the stage's scripted client session,
# stops tcpdump, and writes one transcript: the commands, what the clients
# printed, the packets twice (relative and absolute sequence numbers), the
# --explain lines of server and client, and the TIME_WAIT sockets left behind.
#
#   make capture STAGE=1           -> build/captures/stage1.txt and stage1.pcap
#   make capture STAGE=1 UPDATE=1  -> docs/captures/stage1.txt and .pcap, the
#                                     committed ones the docs quote
#   OUT=/tmp/x.txt tests/capture/capture.sh 1
#
# Capturing needs CAP_NET_RAW (root has it); without it we say so and exit 1.
# Every process started here is stopped by its PID on exit.
set -euo pipefail

stage=${1:-}
root=$(cd "$(dirname "$0")/../.." && pwd)
case "$stage" in
1) dir=step1_echo ;;
2) dir=step2_multiclient ;;
3) dir=step3_tls ;;
*)
    echo "usage: $0 1|2|3" >&2
    exit 2
    ;;
esac
# A scratch directory unless asked: the docs quote docs/captures/, and a new
# run (new ports, new sequence numbers) would no longer match what they say.
out=${OUT:-$root/build/captures/stage$stage.txt}
mkdir -p "$(dirname "$out")"
pcap=${out%.txt}.pcap
server_bin=$root/$dir/server
client_bin=$root/$dir/client
for b in "$server_bin" "$client_bin"; do
    if [ ! -x "$b" ]; then
        echo "capture: ${b#"$root"/} is not built yet: run make step$stage first" >&2
        exit 1
    fi
done
if ! command -v tcpdump >/dev/null 2>&1; then
    echo "capture: tcpdump is not installed (apt-get install tcpdump)" >&2
    exit 1
fi

work=$(mktemp -d)
server_pid=""
tcpdump_pid=""
cleanup() {
    local p
    for p in $tcpdump_pid $server_pid; do
        kill "$p" 2>/dev/null || continue
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# wait_for FILE PATTERN PID: until FILE matches PATTERN (5 s), or PID has died.
wait_for() {
    for _ in $(seq 100); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

# 1. The server, on a free loopback port, narrating.
"$server_bin" --port 0 --bind 127.0.0.1 --explain >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
if ! wait_for "$work/server.out" '^listening on ' "$server_pid"; then
    echo "capture: $dir/server did not start:" >&2
    cat "$work/server.err" >&2
    exit 1
fi
port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$work/server.out")

# 2. tcpdump on lo, this port only. --immediate-mode: hand each packet over at once
# (else libpcap batches them for up to a second, and SIGINT would lose the batch);
# -U: write each packet to the file at once.
tcpdump -i lo -n -U --immediate-mode -w "$work/capture.pcap" "tcp port $port" 2>"$work/tcpdump.err" &
tcpdump_pid=$!
if ! wait_for "$work/tcpdump.err" 'listening on' "$tcpdump_pid"; then
    wait "$tcpdump_pid" 2>/dev/null || true
    tcpdump_pid=""
    echo "capture: tcpdump cannot capture on lo here:" >&2
    sed 's/^/  /' "$work/tcpdump.err" >&2
    if grep -qi 'permission\|not permitted' "$work/tcpdump.err"; then
        echo "capture: capturing packets needs the CAP_NET_RAW capability (raw packet sockets)," \
            "which this user ($(id -un)) does not have. Run it as root (sudo make capture" \
            "STAGE=$stage), or grant tcpdump the capability once:" \
            "sudo setcap cap_net_raw,cap_net_admin=eip $(command -v tcpdump)" >&2
    fi
    exit 1
fi

# 3. The scripted session. Each client's stdout and stderr are kept.
client="${dir}/client"
session_log=$work/session.txt
: >"$session_log"
run() { # run NAME 'shell input generator': one client, its input from the generator
    local name=$1 gen=$2
    echo "\$ ($gen) | ./$client --explain 127.0.0.1 $port" >>"$session_log"
    bash -c "$gen" | "$client_bin" --explain 127.0.0.1 "$port" >"$work/$name.out" 2>"$work/$name.err"
}
case "$stage" in
1)
    # Two connections one after the other: two random initial sequence
    # numbers, a half-close each, and the client's TIME_WAIT afterwards.
    run client1 "printf 'hello\n'; sleep 0.2; printf 'tcp on the wire\n'"
    run client2 "printf 'again\n'"
    ;;
2 | 3)
    # Two chat clients: alice speaks, bob answers, both leave.
    run alice "sleep 0.2; printf '/nick alice\n'; sleep 0.3; printf 'hello bob\n'; sleep 0.6" &
    alice=$!
    sleep 0.15
    run bob "sleep 0.3; printf '/nick bob\n'; sleep 0.3; printf 'hi alice\n'; sleep 0.2" &
    bob=$!
    wait "$alice" "$bob"
    ;;
esac
sleep 0.3 # the last ACKs
timewait=$(ss -tan state time-wait "( sport = :$port or dport = :$port )")

# 4. Stop tcpdump (SIGINT flushes it) and the server.
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=""
kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""

# 5. The transcript.
mkdir -p "$(dirname "$out")"
cp "$work/capture.pcap" "$pcap"
explain_of() { grep '^explain: ' "$1" | sed 's/^explain: //' || true; }
{
    echo "# Stage $stage on the wire: a real capture"
    echo
    echo "Made by: make capture STAGE=$stage   (tests/capture/capture.sh)"
    echo "Kernel:  $(uname -sr); tcpdump $(tcpdump --version 2>&1 | head -1 | awk '{print $3}')"
    echo "Server:  ./$dir/server --port 0 --bind 127.0.0.1 --explain   -> listening on 127.0.0.1:$port"
    echo "Packets: $(basename "$pcap") in this directory (tcpdump -r it, or open it in Wireshark)"
    echo
    echo "## The session"
    echo
    cat "$session_log"
    for f in "$work"/*.out; do
        name=$(basename "$f" .out)
        [ "$name" = server ] && continue
        echo
        echo "### what $name printed on stdout"
        cat "$f"
    done
    echo
    echo "## Packets, relative sequence numbers"
    echo
    echo "\$ tcpdump -r $(basename "$pcap") -n -ttttt"
    echo "(time since the first packet; seq/ack count bytes from each side's initial"
    echo " sequence number, which only the SYN and SYN+ACK show in full)"
    echo
    tcpdump -r "$work/capture.pcap" -n -ttttt 2>/dev/null
    echo
    echo "## Packets, absolute sequence numbers"
    echo
    echo "\$ tcpdump -r $(basename "$pcap") -n -ttttt -S"
    echo "(the 32-bit numbers really in the TCP headers)"
    echo
    tcpdump -r "$work/capture.pcap" -n -ttttt -S 2>/dev/null
    echo
    echo "## --explain, server (stderr of ./$dir/server --explain)"
    echo
    explain_of "$work/server.err"
    for f in "$work"/*.err; do
        name=$(basename "$f" .err)
        case "$name" in server | tcpdump) continue ;; esac
        echo
        echo "## --explain, $name (stderr of ./$client --explain)"
        echo
        explain_of "$f"
        grep -v '^explain: ' "$f" || true
    done
    echo
    echo "## Left behind: TIME_WAIT"
    echo
    echo "\$ ss -tan state time-wait '( sport = :$port or dport = :$port )'   (0.3 s after the session)"
    echo "$timewait"
} >"$out"
echo "capture: wrote ${out#"$root"/} and ${pcap#"$root"/} ($(tcpdump -r "$pcap" 2>/dev/null | wc -l) packets)"
case "$out" in
"$root"/docs/captures/*)
    echo "capture: these are the committed captures the docs quote: check them with make test-explain" ;;
*)
    echo "capture: docs/captures/ is unchanged; make capture STAGE=$stage UPDATE=1 replaces it" ;;
esac
