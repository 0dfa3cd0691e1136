#!/usr/bin/env bash
# tests/bench/run.sh: `make bench` (and `make bench QUICK=1`).
#
# Runs every scenario of tests/bench/loadgen against this project's servers
# and, in the same run, against what a user would pick instead, alternating
# (A B A B A B) and taking medians. The figure compared is the server's own
# CPU per unit of work (the load generator shares the 2 cores and saturates
# first), next to the throughput the load generator saw.
#
# Prints a markdown table, and writes it with the machine's description and a
# plot to docs/benchmarks.md and docs/benchmarks-clients.svg (QUICK=1 writes
# to build/bench/ instead, so a quick look never replaces the real figures).
# Every server is started fresh for its run, in its own process group, and
# killed with that group at the end: nothing is left running.
set -Eeuo pipefail
trap 'echo "run.sh: line $LINENO failed: $BASH_COMMAND" >&2' ERR

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LOADGEN=${LOADGEN:-$ROOT/build/g++/bin/loadgen}
QUICK=${QUICK:-}
OUT=$ROOT/build/bench
mkdir -p "$OUT" "$OUT/peers"
if [ -n "$QUICK" ]; then
    DOC=$OUT/benchmarks.md SVG=$OUT/benchmarks-clients.svg REPS=1
else
    DOC=$ROOT/docs/benchmarks.md SVG=$ROOT/docs/benchmarks-clients.svg REPS=3
fi
START=$(date +%s)
# --doc-only: rewrite the document from the last run's files in build/bench/
# (after editing tests/bench/benchmarks.md.in), without measuring again.
DOC_ONLY=""
[ "${1:-}" = --doc-only ] && DOC_ONLY=1
have() { command -v "$1" >/dev/null 2>&1; }
log() { printf '[%4d s] %s\n' "$(($(date +%s) - START))" "$*" >&2; }

# ---------------------------------------------------------------- servers
PIDS=()
# Where the server (with every process it forks) and the load generator run:
# a `taskset -c N` prefix, or `env` (which runs the command as it is) for
# wherever the scheduler puts them.
SERVER_PIN=(env) LOADGEN_PIN=(env)
# pin SERVER_CPU LOADGEN_CPU, or pin with no arguments for the scheduler's choice.
pin() {
    if [ $# -eq 2 ]; then SERVER_PIN=(taskset -c "$1") LOADGEN_PIN=(taskset -c "$2")
    else SERVER_PIN=(env) LOADGEN_PIN=(env); fi
}
# The CPUs this run may use (Cpus_allowed_list, e.g. "0-1" or "0,2-3"), one per word.
allowed_cpus() {
    local part
    IFS=, read -ra parts < <(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
    for part in "${parts[@]}"; do
        if [[ $part == *-* ]]; then seq "${part%-*}" "${part#*-}"; else echo "$part"; fi
    done | tr '\n' ' '
}
read -ra CPUS <<<"$(allowed_cpus)"
CAN_PIN="" CAN_SPLIT=""
have taskset && CAN_PIN=1
[ -n "$CAN_PIN" ] && [ "${#CPUS[@]}" -ge 2 ] && CAN_SPLIT=1
# A placement is named by its row's suffix: ...one (server and load generator
# on one CPU), ...two (the server on one, the load generator on another) or
# ...free (wherever the scheduler puts them). place NAME pins for it.
place() {
    case $1 in
    *one) pin "${CPUS[0]}" "${CPUS[0]}" ;;
    *two) pin "${CPUS[0]}" "${CPUS[1]}" ;;
    *) pin ;;
    esac
}
where() {
    case $1 in
    *one) echo "server and load generator on one CPU" ;;
    *two) echo "server on one CPU, load generator on the other" ;;
    *) echo "wherever the scheduler puts them" ;;
    esac
}
cleanup() {
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -KILL -- "-$p" 2>/dev/null || true
    done
}
trap cleanup EXIT

# A free port: one nobody listens on (ss), picked at random.
free_port() {
    local p
    while :; do
        p=$((20000 + RANDOM % 20000))
        ss -Hltn "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
}

wait_listening() { # PORT PID
    for _ in $(seq 200); do
        ss -Hltn "sport = :$1" | grep -q . && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.02
    done
    return 1
}

# ngircd's configuration: loopback, no limit on connections (its default
# allows 5 per address), no DNS, ident or PAM lookups at connect, and no flood
# penalty (MaxPenaltyTime = 0: by default each command from a client that
# sends fast delays its next ones, so a benchmark would measure the penalty).
ngircd_conf() { # PORT
    cat <<EOF
[Global]
Name = bench.irc.local
Info = make bench
Listen = 127.0.0.1
Ports = $1
MotdPhrase = make bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxPenaltyTime = 0
[Options]
DNS = no
Ident = no
PAM = no
EOF
}

# start NAME: start a server, set SPID and SPORT. Each is its own session
# (setsid), so stop() can end it and every child it forked.
start() {
    local name=$1 port
    port=$(free_port)
    local ours=""
    case $name in
    echo) ours="$ROOT/step1_echo/server" ;;
    select) ours="$ROOT/step2_multiclient/server --max-clients 1000" ;;
    epoll) ours="$ROOT/step2_multiclient/server_epoll --max-clients 20000" ;;
    tls) ours="$ROOT/step3_tls/server --max-clients 1000" ;;
    esac
    if [ -n "$ours" ]; then
        # shellcheck disable=SC2086
        setsid "${SERVER_PIN[@]}" $ours --port "$port" --bind 127.0.0.1 >/dev/null 2>"$OUT/$name.err" &
    else
        case $name in
        socat) setsid "${SERVER_PIN[@]}" socat "TCP-LISTEN:$port,bind=127.0.0.1,fork,reuseaddr" EXEC:cat \
            >/dev/null 2>&1 & ;;
        ncat-exec) setsid "${SERVER_PIN[@]}" ncat -l -k 127.0.0.1 "$port" --sh-exec cat >/dev/null 2>&1 & ;;
        ncat-chat) setsid "${SERVER_PIN[@]}" ncat -l -k --chat -m 20000 127.0.0.1 "$port" >/dev/null 2>&1 & ;;
        ncat-ssl) setsid "${SERVER_PIN[@]}" ncat -l -k --chat -m 20000 --ssl --ssl-cert "$CERT" --ssl-key "$KEY" \
            127.0.0.1 "$port" >/dev/null 2>&1 & ;;
        s_server) setsid "${SERVER_PIN[@]}" openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$CERT" \
            -key "$KEY" >/dev/null 2>&1 </dev/null & ;;
        # The servers people run for fan-out, as private instances on
        # loopback with their defaults but for what a benchmark on a free
        # port needs (docs/benchmarks.md lists these settings and why).
        redis | redis-tls)
            local dir=$OUT/peers/$name listen=(--port "$port")
            mkdir -p "$dir"
            [ "$name" = redis-tls ] && listen=(--port 0 --tls-port "$port" --tls-cert-file "$CERT"
                --tls-key-file "$KEY" --tls-ca-cert-file "$CA" --tls-auth-clients no)
            setsid "${SERVER_PIN[@]}" redis-server --bind 127.0.0.1 "${listen[@]}" --save "" \
                --appendonly no --protected-mode no --daemonize no --dir "$dir" --logfile "$dir/log" \
                >/dev/null 2>&1 </dev/null & ;;
        nats) setsid "${SERVER_PIN[@]}" nats-server -a 127.0.0.1 -p "$port" >"$OUT/peers/nats.log" 2>&1 </dev/null & ;;
        ngircd)
            ngircd_conf "$port" >"$OUT/peers/ngircd.conf"
            setsid "${SERVER_PIN[@]}" ngircd -n -f "$OUT/peers/ngircd.conf" >"$OUT/peers/ngircd.log" 2>&1 </dev/null & ;;
        *) log "unknown server $name"; return 1 ;;
        esac
    fi
    SPID=$!
    SPORT=$port
    PIDS+=("$SPID")
    wait_listening "$port" "$SPID" || { log "$name did not start"; return 1; }
}

stop() {
    kill -TERM -- "-$SPID" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.02; done
    kill -KILL -- "-$SPID" 2>/dev/null || true
    wait "$SPID" 2>/dev/null || true
}

# run NAME SCENARIO ARGS...: a fresh server NAME, one loadgen run; prints
# the loadgen's key=value line (also kept in build/bench/raw.txt).
run() {
    local name=$1 scenario=$2
    shift 2
    start "$name" || { echo "failed=1"; return; }
    local line
    line=$("${LOADGEN_PIN[@]}" "$LOADGEN" "$scenario" "$SPORT" --server-pid "$SPID" "$@" 2>>"$OUT/loadgen.err") ||
        line="$line failed=1"
    stop
    echo "$name $scenario $* :: $line" >>"$OUT/raw.txt"
    echo "$line"
}

# get KEY LINE: the value of KEY in a key=value line.
get() { tr ' ' '\n' <<<"$2" | sed -n "s/^$1=//p" | head -1; }

median() { # numbers on stdin
    sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# ---------------------------------------------------------------- results
declare -A VAL  # VAL[row/candidate/key] = "v1 v2 v3"
record() { # ROW CANDIDATE LINE KEY...
    local row=$1 cand=$2 line=$3 k
    shift 3
    for k in "$@"; do VAL[$row/$cand/$k]+="$(get "$k" "$line") "; done
}
med() { tr ' ' '\n' <<<"${VAL[$1/$2/$3]:-}" | { grep -v '^$' || true; } | median; }
fmt() { # number -> 3 significant digits
    [ -z "$1" ] && { echo "–"; return; }
    awk -v x="$1" 'BEGIN { a = x < 0 ? -x : x; if (a >= 100) printf "%.0f", x; else if (a >= 10) printf "%.1f", x; else if (a >= 1) printf "%.2f", x; else printf "%.3f", x }'
}
ratio() { [ -z "$1" ] || [ -z "$2" ] && { echo "–"; return; }; awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "–"; else printf "%.2f", a / b }'; }

# label_of NAME: how the tables and the plot name a server.
label_of() {
    case $1 in
    select) echo "select (ours)" ;; epoll) echo "epoll (ours)" ;; tls) echo "TLS (ours)" ;;
    redis) echo "Redis pub/sub" ;; redis-tls) echo "Redis pub/sub over TLS" ;;
    nats) echo "nats-server" ;; ngircd) echo "ngircd" ;; *) echo "$1" ;;
    esac
}
ROWS=()
row() {
    local out="|" x
    for x in "$@"; do out+=" $x |"; done
    ROWS+=("$out")
}
# compare ROW LABEL KEY UNIT OURS THEIRS TARGET_TEXT OK_EXPR
# OK_EXPR is awk on r (ours/theirs), empty for none.
compare() {
    local rowid=$1 label=$2 key=$3 unit=$4 ours=$5 theirs=$6 target=$7 ok=$8
    local a b r met
    a=$(med "$rowid" "$ours" "$key")
    b=$(med "$rowid" "$theirs" "$key")
    r=$(ratio "$a" "$b")
    met=""
    if [ -n "$ok" ] && [ "$r" != "–" ]; then
        met=$(awk -v r="$r" "BEGIN { print ($ok) ? \"yes\" : \"**no**\" }")
    fi
    row "$label" "$unit" "$(fmt "$a") ($ours)" "$(fmt "$b") ($theirs)" "$r" "$target" "$met"
}

# ---------------------------------------------------------------- sizes
if [ -n "$QUICK" ]; then
    RT_ROUNDS=5000 BULK_MB=256 BULK_LIMIT=1 BIG_S=0.5 RELAY_LINES=30 HS_COUNT=100
    JOIN_SELECT=1000 JOIN_EPOLL=10000 JOIN_TLS=500 JOIN_LIMIT=15 NCAT_JOIN=300 NCAT_LIMIT=3
    IDLE_N=1000 IDLE_LINES=300 SELECT_POINTS="10 1000" EPOLL_POINTS="10 1000"
    FAN_L100=100 FAN_L20=1000 BURST_LINES=740 DEPTH_LINES=200 HH_COUNT=1000
    SLOW_VARIANTS="64" SLOW_BASE=2 SLOW_SHORT=4 SLOW_LONG=4
else
    RT_ROUNDS=20000 BULK_MB=256 BULK_LIMIT=5 BIG_S=1 RELAY_LINES=100 HS_COUNT=300
    JOIN_SELECT=1000 JOIN_EPOLL=10000 JOIN_TLS=1000 JOIN_LIMIT=30 NCAT_JOIN=1000 NCAT_LIMIT=10
    IDLE_N=10000 IDLE_LINES=300 SELECT_POINTS="10 100 300 1000" EPOLL_POINTS="10 100 1000 3000 10000"
    FAN_L100=600 FAN_L20=6000 BURST_LINES=2640 DEPTH_LINES=2000 HH_COUNT=1000
    SLOW_VARIANTS="4 16 32 64 never" SLOW_BASE=3 SLOW_SHORT=6 SLOW_LONG=20
fi
# Our servers listen with a backlog of 1024, so the load generator lets up to
# 1000 connections join at once; ncat's backlog is 10, so it gets 100 (more
# would only drop SYNs and cost it 1 s retransmissions).
OURS_WINDOW=(--window 1000)

# ---------------------------------------------------------------- TLS material
HAVE_TLS=""
if [ -x "$ROOT/step3_tls/server" ]; then
    [ -f "$ROOT/step3_tls/certs/server.crt" ] || make -C "$ROOT" --no-print-directory certs >&2
    CERT=$ROOT/step3_tls/certs/server.crt KEY=$ROOT/step3_tls/certs/server.key CA=$ROOT/step3_tls/certs/ca.crt
    [ -f "$CERT" ] && HAVE_TLS=1
fi
HAVE_EPOLL=""
[ -x "$ROOT/step2_multiclient/server_epoll" ] && HAVE_EPOLL=1
HAVE_SELECT=""
[ -x "$ROOT/step2_multiclient/server" ] && HAVE_SELECT=1

if [ -z "$DOC_ONLY" ]; then
: >"$OUT/raw.txt"
# ================================================================ echo
log "echo: 64-byte round trips, bulk, 16 KiB round trips ($REPS x alternating)"
ECHO_ALT=(echo socat ncat-exec)
# One message in flight: each round trip puts the server and the load
# generator to sleep and wakes each of them once. Where they run decides what a
# wake-up costs (on this project's 2-vCPU virtual machine, 3 µs of server CPU
# per round trip on one CPU and 30 µs across two: benchmarks.md says why), and
# left to the scheduler that changes from run to run. So the 64-byte round
# trip is measured three ways, alternating: everything on one CPU (rt64one:
# the servers' own work), server and load generator on two CPUs (rt64two: the
# price of waking another CPU included), and wherever the scheduler puts them
# (rt64free). taskset pins the server with everything it forks (socat's cat
# too). The first placement of the list carries the targets in the table.
PLACEMENTS=(rt64free)
# shellcheck disable=SC2206 # ${CAN_SPLIT:+rt64two}: the word, or none
[ -n "$CAN_PIN" ] && PLACEMENTS=(rt64one ${CAN_SPLIT:+rt64two} rt64free)
for i in $(seq $((REPS == 1 ? 3 : REPS + 2))); do
    for placement in "${PLACEMENTS[@]}"; do
        # On one CPU a run is short and steady: every round; across CPUs
        # REPS of them (3, or 1 in QUICK), to stay within the time bound.
        [ "$placement" != rt64one ] && [ "$i" -gt "$REPS" ] && continue
        place "$placement"
        for c in "${ECHO_ALT[@]}"; do
            record "$placement" "$c" \
                "$(run "$c" echo-rtt --rounds "$RT_ROUNDS" --bytes 64 --time-limit 20)" \
                server_us_per_rt rt_per_s p50_us
        done
    done
done
pin
for _ in $(seq "$REPS"); do
    for c in echo socat ncat-exec; do
        # ncat --sh-exec deadlocks on a stream both ways (see the notes): 5 s at most.
        record bulk "$c" "$(run "$c" echo-bulk --mbytes "$BULK_MB" --time-limit "$BULK_LIMIT")" \
            mb_per_s server_ms_per_mb complete
    done
    for c in "${ECHO_ALT[@]}"; do
        record rt16k "$c" "$(run "$c" echo-rtt --rounds 1000000 --bytes 16384 --time-limit "$BIG_S")" \
            rt_per_s server_us_per_rt p50_us
    done
done
# iperf3 on loopback: the ceiling for moving bytes through TCP here.
IPERF=""
if have iperf3; then
    for _ in $(seq "$REPS"); do
        p=$(free_port)
        setsid iperf3 -s -1 -B 127.0.0.1 -p "$p" >/dev/null 2>&1 &
        ip=$!
        PIDS+=("$ip")
        wait_listening "$p" "$ip" || true
        v=$(iperf3 -c 127.0.0.1 -p "$p" -t "$( [ -n "$QUICK" ] && echo 1 || echo 2)" -J 2>/dev/null |
            sed -n 's/.*"bits_per_second":[[:space:]]*\([0-9.e+]*\).*/\1/p' | tail -1)
        wait "$ip" 2>/dev/null || true
        [ -n "$v" ] && IPERF+="$(awk -v b="$v" 'BEGIN { printf "%.1f", b / 8e6 }') "
    done
fi
IPERF_MED=$(tr ' ' '\n' <<<"$IPERF" | grep -v '^$' | median)

# ================================================================ relay
if [ -n "$HAVE_SELECT" ]; then
    log "relay: 100 clients x $RELAY_LINES lines of 100 bytes"
    RELAY_ALT=(select)
    [ -n "$HAVE_EPOLL" ] && RELAY_ALT+=(epoll)
    RELAY_ALT+=(ncat-chat)
    for _ in $(seq "$REPS"); do
        for c in "${RELAY_ALT[@]}"; do
            w=("--welcome" "* welcome ")
            [ "$c" = ncat-chat ] && w=("--welcome" "")
            record relay "$c" "$(run "$c" relay --clients 100 --lines "$RELAY_LINES" --bytes 100 \
                "${w[@]}" --time-limit 30)" server_ns_per_msg msgs_per_s lost duplicated \
                out_of_order corrupt delivered expected
        done
        if [ -n "$HAVE_TLS" ]; then
            for c in tls ncat-ssl; do
                w=("--welcome" "* welcome ")
                [ "$c" = ncat-ssl ] && w=("--welcome" "")
                record relay-tls "$c" "$(run "$c" relay --tls --clients 100 --lines "$RELAY_LINES" \
                    --bytes 100 "${w[@]}" --time-limit 30)" server_ns_per_msg msgs_per_s lost \
                    duplicated out_of_order corrupt delivered expected
            done
        fi
    done

    log "join: $JOIN_SELECT clients (select), $JOIN_EPOLL (epoll), $NCAT_JOIN (ncat --chat)"
    record join select "$(run select idle --clients "$JOIN_SELECT" "${OURS_WINDOW[@]}" --hold 0.2 \
        --time-limit "$JOIN_LIMIT")" join_s joined server_bytes_per_client server_idle_cpu_ms \
        server_join_cpu_s
    [ -n "$HAVE_EPOLL" ] && record join epoll "$(run epoll idle --clients "$JOIN_EPOLL" \
        "${OURS_WINDOW[@]}" --hold 0.2 --time-limit "$JOIN_LIMIT")" join_s joined \
        server_bytes_per_client server_idle_cpu_ms server_join_cpu_s
    record join ncat-chat "$(run ncat-chat idle --clients "$NCAT_JOIN" --welcome "" --hold 0.2 \
        --time-limit "$NCAT_LIMIT")" join_s joined server_bytes_per_client server_idle_cpu_ms
    if [ -n "$HAVE_TLS" ]; then
        record join tls "$(run tls idle --tls --clients "$JOIN_TLS" "${OURS_WINDOW[@]}" --hold 0.2 \
            --time-limit "$JOIN_LIMIT")" join_s joined server_bytes_per_client
        record join ncat-ssl "$(run ncat-ssl idle --tls --welcome "" --clients "$JOIN_TLS" --hold 0.2 \
            --time-limit "$NCAT_LIMIT")" join_s joined server_bytes_per_client
    fi

    # Idle clients should cost epoll nothing: 100 active clients whose lines
    # the chat core answers to the sender only (an unknown command: no work
    # that grows with the number of clients), alone and beside 10,000 idle ones.
    # The first round of lines is measured apart (--warmup 1): after 10,000
    # joins it meets cold caches and a heap full of the join's freed memory,
    # a cost paid once, not per message. Both figures go in the table.
    # Where the server and the load generator run changes how many lines the
    # server finds per wake-up, and with it the CPU per line (by hand, the same
    # run unpinned gave 390-690 ns per line alone), so the comparison is made
    # with the server on one CPU and the load generator on the other (idle100two,
    # the row with the target), and again unpinned (idle100free), alternating.
    if [ -n "$HAVE_EPOLL" ]; then
        log "epoll: 100 active clients, alone and with $IDLE_N idle ones"
        IDLE_PLACEMENTS=(idle100free)
        if [ -n "$CAN_SPLIT" ]; then
            IDLE_PLACEMENTS=(idle100two idle100free)
            [ -n "$QUICK" ] && IDLE_PLACEMENTS=(idle100two) # to stay within its minute
        fi
        for _ in $(seq "$REPS"); do
            for placement in "${IDLE_PLACEMENTS[@]}"; do
                place "$placement"
                record "$placement" alone "$(run epoll relay --commands --clients 100 --lines "$IDLE_LINES" \
                    --warmup 1 --time-limit 30)" server_ns_per_msg server_warmup_ms server_ns_per_msg_all lost
                record "$placement" with-idle "$(run epoll relay --commands --clients 100 --idle "$IDLE_N" \
                    "${OURS_WINDOW[@]}" --lines "$IDLE_LINES" --warmup 1 --time-limit 40)" \
                    server_ns_per_msg server_warmup_ms server_ns_per_msg_all lost
            done
        done
        pin
    fi

    # The plot: 10 active clients (answered commands, as above) among N in all.
    log "plot: CPU per message and memory per client against the number of clients"
    : >"$OUT/clients.dat"
    for n in $SELECT_POINTS; do
        l=$(run select relay --commands --clients 10 --idle $((n - 10)) --lines 1000 --batch 20 --warmup 1 "${OURS_WINDOW[@]}" \
            --time-limit 30)
        echo "select $n $(get server_ns_per_msg "$l") $(get server_bytes_per_client "$l")" >>"$OUT/clients.dat"
    done
    if [ -n "$HAVE_EPOLL" ]; then
        for n in $EPOLL_POINTS; do
            l=$(run epoll relay --commands --clients 10 --idle $((n - 10)) --lines 1000 --batch 20 --warmup 1 "${OURS_WINDOW[@]}" \
                --time-limit 40)
            echo "epoll $n $(get server_ns_per_msg "$l") $(get server_bytes_per_client "$l")" >>"$OUT/clients.dat"
        done
    fi
fi

# ================================================================ TLS
if [ -n "$HAVE_TLS" ]; then
    log "TLS: full handshakes, ours vs openssl s_server"
    for _ in $(seq "$REPS"); do
        for c in tls s_server; do
            record hs "$c" "$(run "$c" handshakes --tls --count "$HS_COUNT" --parallel 1 \
                --time-limit 20)" server_ms_per_hs hs_per_s
        done
    done
fi
AES=""
if have openssl; then
    AES=$(openssl speed -seconds 1 -bytes 16384 -evp aes-256-gcm 2>/dev/null |
        awk 'tolower($1) == "aes-256-gcm" { v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000 / 1e6 }')
fi

# ================================================================ fan-out: the servers people run
# The same room in each protocol (loadgen relay --proto): every line to every
# other client, checked. Senders at most 20 lines ahead of the average
# receiver with 100 clients, 100 ahead with 20, the same for every server:
# without a bound the servers' queue limits decide the run (the section
# "without pacing" below shows how).
PEERS=()
have redis-server && PEERS+=(redis) && [ -n "$HAVE_TLS" ] && PEERS+=(redis-tls)
have nats-server && PEERS+=(nats)
have ngircd && PEERS+=(ngircd)
OURS_FAN=()
[ -n "$HAVE_SELECT" ] && OURS_FAN+=(select)
[ -n "$HAVE_EPOLL" ] && OURS_FAN+=(epoll)
[ -n "$HAVE_TLS" ] && OURS_FAN+=(tls)
FAN_ALL=("${OURS_FAN[@]}" "${PEERS[@]}")
# fan_args NAME: how the load generator talks to NAME.
fan_args() {
    case $1 in
    tls) echo "--proto chat --tls" ;;
    redis) echo "--proto resp" ;;
    redis-tls) echo "--proto resp --tls" ;;
    nats) echo "--proto nats" ;;
    # ngircd accepts a burst of connections slowly: 500 a second.
    ngircd) echo "--proto irc --connect-rate 500" ;;
    *) echo "--proto chat" ;;
    esac
}
FAN_SIZES=("100:$FAN_L100:20")
[ -z "$QUICK" ] && FAN_SIZES+=("20:$FAN_L20:100") # (QUICK: 100 clients only, to stay within 2 min)
log "fan-out: ${FAN_ALL[*]}: ${FAN_SIZES[*]} (clients:lines:ahead, $REPS x alternating)"
for _ in $(seq "$REPS"); do
    for size in "${FAN_SIZES[@]}"; do
        IFS=: read -r n l ah <<<"$size"
        for c in "${FAN_ALL[@]}"; do
            # shellcheck disable=SC2046 # fan_args: several words
            record "fan$n" "$c" "$(run "$c" relay $(fan_args "$c") --clients "$n" --lines "$l" --bytes 100 \
                --ahead "$ah" --time-limit 90)" server_ns_per_msg loadgen_ns_per_msg loadgen_busy msgs_per_s \
                lost duplicated out_of_order corrupt dropped expected
        done
    done
done

# Without pacing: 100 clients each write 640 lines (64 KiB) at once, then
# the rest as fast as the kernel takes them, and read as fast as they can.
# Who is dropped, how far behind, with what notice.
log "without pacing: 100 clients x $BURST_LINES lines, all servers"
for c in "${FAN_ALL[@]}"; do
    [ -n "$QUICK" ] && [ "$c" = redis-tls ] && continue # (QUICK: to stay within 2 min)
    # shellcheck disable=SC2046
    record burst "$c" "$(run "$c" relay $(fan_args "$c") --clients 100 --lines "$BURST_LINES" --bytes 100 \
        --unpaced --time-limit 90)" dropped first_drop_s drop_depth_min drop_depth_max drop_note lost \
        lost_dropped msgs_per_s expected server_rss_kb
done
# Depth: senders up to 100 lines ahead of the average receiver (10,000 lines,
# about 1 MB, in flight for each reader).
log "depth: 100 clients x $DEPTH_LINES lines, 100 ahead"
for c in "${FAN_ALL[@]}"; do
    [ "$c" = ngircd ] || [ "$c" = redis-tls ] && continue
    [ -n "$QUICK" ] && [[ " ${PEERS[*]} " == *" $c "* ]] && continue # (QUICK: ours only)
    # shellcheck disable=SC2046
    record depth "$c" "$(run "$c" relay $(fan_args "$c") --clients 100 --lines "$DEPTH_LINES" --bytes 100 \
        --ahead 100 --time-limit 90)" dropped lost lost_dropped first_drop_s drop_depth_min expected
done

# ================================================================ one slow-draining reader
# Five flooders (each at most 100 lines ahead of the average honest reader)
# and a chatter; after a baseline, one more client drains K KiB per 100 ms,
# or never reads. Baseline and slow phase in the same loadgen run.
if [ ${#OURS_FAN[@]} -gt 0 ]; then
    log "one slow-draining reader: ${OURS_FAN[*]} x ($SLOW_VARIANTS), ${SLOW_BASE} s + ${SLOW_SHORT}-${SLOW_LONG} s each"
    for v in $SLOW_VARIANTS; do
        for c in "${OURS_FAN[@]}"; do
            ph=$SLOW_SHORT
            { [ "$v" = 64 ] || [ "$v" = never ]; } && ph=$SLOW_LONG
            part=$(awk -v p="$ph" 'BEGIN { print (p >= 20) ? 5 : p / 4 }')
            how=(--slow-kib "$v")
            [ "$v" = never ] && how=(--never-reads)
            tlsopt=()
            [ "$c" = tls ] && tlsopt=(--tls)
            record "slow-$c" "$v" "$(run "$c" slow "${tlsopt[@]}" --flooders 5 --ahead 100 --bytes 100 "${how[@]}" \
                --baseline "$SLOW_BASE" --phase "$ph" --part "$part" --time-limit $((SLOW_BASE + ph + 30)))" \
                base_lines_per_s lines_per_s base_p99_ms p99_ms first_p99_ms last_p99_ms slow_dropped \
                slow_left_s honest_dropped lost duplicated phase_s
        done
    done
fi

# ================================================================ abandoned TLS handshakes
if [ -n "$HAVE_TLS" ]; then
    log "TLS: memory after $HH_COUNT abandoned handshakes"
    record halfhello tls "$(run tls half-hello --count "$HH_COUNT" --window 200 --time-limit 60)" \
        server_rss_idle_kb server_rss_held_kb server_rss_after_kb after_vs_idle fresh_handshake connected
fi

# ================================================================ table
TABLE=$OUT/table.md
{
    echo "| scenario | figure (lower is better unless /s) | ours | theirs | ours/theirs | target | met |"
    echo "|---|---|---|---|---|---|---|"
} >"$TABLE"
# The target (half of socat's, at most ncat's) is held on one CPU, where the
# figure is the servers' own work; across CPUs both pay the same price to wake
# the other CPU (benchmarks.md: "Where a round trip's time goes"), and the
# row "socat's minus ours" shows that the work ours saves is the same there.
for placement in "${PLACEMENTS[@]}"; do
    target=("" "")
    [ "$placement" = "${PLACEMENTS[0]}" ] && target=("≤ 0.5" "r <= 0.5")
    compare "$placement" "echo, 64 B round trips, 1 connection: $(where "$placement")" server_us_per_rt \
        "server µs per round trip" echo socat "${target[@]}"
    compare "$placement" "" server_us_per_rt "server µs per round trip" echo ncat-exec "≤ 1" "r <= 1"
    a=$(med "$placement" echo server_us_per_rt) b=$(med "$placement" socat server_us_per_rt)
    [ -n "$a" ] && [ -n "$b" ] &&
        row "" "server µs per round trip, socat's minus ours" "$(fmt "$(awk -v a="$a" -v b="$b" 'BEGIN { print b - a }')")" "" "" "" ""
    compare "$placement" "" p50_us "p50 round trip µs (load generator)" echo socat "" ""
done
compare bulk "echo bulk, one stream both ways" mb_per_s "MB/s" echo socat "≥ 3" "r >= 3"
compare bulk "" server_ms_per_mb "server ms per MB" echo socat "" ""
if [ "$(med bulk ncat-exec complete)" = 0 ]; then
    row "" "MB/s" "$(fmt "$(med bulk echo mb_per_s)") (echo)" \
        "stalls: $(fmt "$(med bulk ncat-exec mb_per_s)") MB/s, never finishes (ncat-exec)" "–" "" ""
else
    compare bulk "" mb_per_s "MB/s" echo ncat-exec "" ""
fi
if [ -n "$IPERF_MED" ]; then
    a=$(med bulk echo mb_per_s)
    r=$(ratio "$a" "$IPERF_MED")
    row "" "MB/s vs iperf3 loopback (one way)" "$(fmt "$a") (echo)" "$(fmt "$IPERF_MED") (iperf3)" "$r" "≥ 0.33" \
        "$(awk -v r="$r" 'BEGIN { print (r >= 0.33) ? "yes" : "**no**" }')"
fi
a=$(med rt16k echo rt_per_s)
compare rt16k "echo, 16 KiB round trips" rt_per_s "round trips/s" echo socat "ours ≥ 5000/s" ""
ROWS[-1]="${ROWS[-1]%  |} $(awk -v a="$a" 'BEGIN { print (a != "" && a >= 5000) ? "yes" : "**no**" }') |"
compare rt16k "" rt_per_s "round trips/s" echo ncat-exec "" ""
if [ -n "$HAVE_SELECT" ]; then
    for c in select epoll; do
        [ -n "${VAL[relay/$c/server_ns_per_msg]:-}" ] || continue
        compare relay "relay, 100 clients, 100 B lines ($c)" server_ns_per_msg "server ns per delivered message" "$c" ncat-chat "≤ 1" "r <= 1"
        compare relay "" msgs_per_s "delivered messages/s" "$c" ncat-chat "" ""
    done
    for c in select epoll ncat-chat; do
        [ -n "${VAL[relay/$c/lost]:-}" ] || continue
        row "" "lost / duplicated / out of order / corrupt ($c, median of $REPS)" \
            "$(med relay "$c" lost) / $(med relay "$c" duplicated) / $(med relay "$c" out_of_order) / $(med relay "$c" corrupt) of $(med relay "$c" expected)" "" "" "0" ""
    done
    if [ -n "${VAL[relay-tls/tls/server_ns_per_msg]:-}" ]; then
        compare relay-tls "relay over TLS, 100 clients" server_ns_per_msg "server ns per delivered message" tls ncat-ssl "≤ 1" "r <= 1"
        for c in tls ncat-ssl; do
            row "" "lost / duplicated / out of order / corrupt ($c)" \
                "$(med relay-tls "$c" lost) / $(med relay-tls "$c" duplicated) / $(med relay-tls "$c" out_of_order) / $(med relay-tls "$c" corrupt) of $(med relay-tls "$c" expected)" "" "" "0" ""
        done
    fi
    js=$(med join select join_s)
    row "join: $JOIN_SELECT clients, select" "seconds until every welcome (server CPU s)" "$(fmt "$js") ($(fmt "$(med join select server_join_cpu_s)"), select)" \
        "$(med join ncat-chat joined) of $NCAT_JOIN connected in $(fmt "$(med join ncat-chat join_s)") s (ncat --chat)" "" "< 2 s" \
        "$(awk -v a="$js" 'BEGIN { print (a != "" && a < 2) ? "yes" : "**no**" }')"
    if [ -n "$HAVE_EPOLL" ]; then
        je=$(med join epoll join_s)
        row "join: $JOIN_EPOLL clients, epoll" "seconds until every welcome (server CPU s)" "$(fmt "$je") ($(fmt "$(med join epoll server_join_cpu_s)"), $(med join epoll joined) joined)" "" "" "< 10 s" \
            "$(awk -v a="$je" -v n="$(med join epoll joined)" -v want="$JOIN_EPOLL" 'BEGIN { print (a != "" && a < 10 && n == want) ? "yes" : "**no**" }')"
    fi
    for c in select epoll; do
        b=$(med join "$c" server_bytes_per_client)
        [ -n "$b" ] || continue
        row "memory per idle client ($c)" "server RSS bytes per client" "$(fmt "$b") ($c)" \
            "$(fmt "$(med join ncat-chat server_bytes_per_client)") (ncat --chat)" \
            "$(ratio "$b" "$(med join ncat-chat server_bytes_per_client)")" "≤ 1024" \
            "$(awk -v a="$b" 'BEGIN { print (a <= 1024) ? "yes" : "**no**" }')"
    done
    if [ -n "${VAL[join/tls/server_bytes_per_client]:-}" ]; then
        b=$(med join tls server_bytes_per_client)
        row "memory per idle client (TLS)" "server RSS bytes per client" "$(fmt "$b") (tls)" \
            "$(fmt "$(med join ncat-ssl server_bytes_per_client)") (ncat --ssl --chat)" \
            "$(ratio "$b" "$(med join ncat-ssl server_bytes_per_client)")" "≤ 24576" \
            "$(awk -v a="$b" 'BEGIN { print (a <= 24576) ? "yes" : "**no**" }')"
    fi
    if [ -n "$HAVE_EPOLL" ]; then
        for placement in "${IDLE_PLACEMENTS[@]}"; do
            target=("" "")
            [ "$placement" = "${IDLE_PLACEMENTS[0]}" ] && target=("≤ 1.25" "r <= 1.25")
            compare "$placement" "epoll, 100 active + $IDLE_N idle vs 100 alone: $(where "$placement")" server_ns_per_msg \
                "server ns per message (answered command), after the first round" with-idle alone "${target[@]}"
            compare "$placement" "" server_warmup_ms \
                "server ms for the first round (1000 commands), paid once" with-idle alone "" ""
            compare "$placement" "" server_ns_per_msg_all \
                "server ns per message, first round included" with-idle alone "" ""
        done
    fi
fi
if [ -n "$HAVE_TLS" ]; then
    compare hs "TLS full handshakes" server_ms_per_hs "server ms per handshake" tls s_server "≤ 1" "r <= 1"
fi
[ -n "$AES" ] && row "openssl speed -evp aes-256-gcm, 16 KiB blocks" "MB/s, one core" "" "$AES (openssl)" "" "" ""
if [ -n "${VAL[halfhello/tls/server_rss_after_kb]:-}" ]; then
    a=$(med halfhello tls server_rss_after_kb) i=$(med halfhello tls server_rss_idle_kb)
    r=$(ratio "$a" "$i")
    row "TLS: memory after $HH_COUNT abandoned handshakes (half a ClientHello each, then closed)" \
        "server RSS once they are gone vs idle" \
        "$(fmt "$(awk -v k="$a" 'BEGIN { print k / 1024 }')") MB after, $(fmt "$(awk -v k="$(med halfhello tls server_rss_held_kb)" 'BEGIN { print k / 1024 }')") MB with them (tls)" \
        "$(fmt "$(awk -v k="$i" 'BEGIN { print k / 1024 }')") MB idle (the same server)" "$r" "≤ 1.5" \
        "$(awk -v r="$r" -v f="$(med halfhello tls fresh_handshake)" 'BEGIN { print (r != "–" && r <= 1.5 && f == 1) ? "yes" : "**no**" }')"
fi
printf '%s\n' "${ROWS[@]}" >>"$TABLE"

# range ROW CANDIDATE KEY: "min-max" of the runs.
range() {
    local v
    v=$(tr ' ' '\n' <<<"${VAL[$1/$2/$3]:-}" | { grep -v '^$' || true; } | sort -g)
    [ -n "$v" ] && echo "$(fmt "$(head -1 <<<"$v")")-$(fmt "$(tail -1 <<<"$v")")"
}
# worst ROW CANDIDATE KEY: the largest of the runs.
worst() { tr ' ' '\n' <<<"${VAL[$1/$2/$3]:-}" | { grep -v '^$' || true; } | sort -g | tail -1; }
yn() { awk "BEGIN { print ($1) ? \"yes\" : \"**no**\" }"; }

# ---- fan-out against the servers people run
{
    if [ -n "${FAN_ALL:-}" ] && [ -n "${VAL[fan100/${FAN_ALL[0]}/server_ns_per_msg]:-}" ]; then
        echo "| clients × lines each (pacing) | server | server ns per delivered message: median (range of $REPS) | load generator ns per message (share of a core) | delivered messages/s | lost / duplicated / out of order / corrupt / dropped clients (worst run) |"
        echo "|---|---|---|---|---|---|"
        for size in "${FAN_SIZES[@]}"; do
            IFS=: read -r n l ah <<<"$size"
            first=1
            for c in "${FAN_ALL[@]}"; do
                [ -n "${VAL[fan$n/$c/server_ns_per_msg]:-}" ] || continue
                lbl=""
                [ -n "$first" ] && lbl="$n × $l ($ah ahead)"
                first=""
                echo "| $lbl | $(label_of "$c") | $(fmt "$(med "fan$n" "$c" server_ns_per_msg)") ($(range "fan$n" "$c" server_ns_per_msg)) | $(fmt "$(med "fan$n" "$c" loadgen_ns_per_msg)") ($(fmt "$(med "fan$n" "$c" loadgen_busy)")) | $(fmt "$(med "fan$n" "$c" msgs_per_s)") | $(worst "fan$n" "$c" lost) / $(worst "fan$n" "$c" duplicated) / $(worst "fan$n" "$c" out_of_order) / $(worst "fan$n" "$c" corrupt) / $(worst "fan$n" "$c" dropped) of $(med "fan$n" "$c" expected) |"
            done
        done
        echo
        echo "| ours vs theirs: server CPU per delivered message | clients | ours (ns) | theirs (ns) | ours/theirs | target | met |"
        echo "|---|---|---|---|---|---|---|"
        for pair in select:redis:0.6 epoll:redis:0.6 select:nats:0.5 epoll:nats:0.5 select:ngircd:0.5 \
            epoll:ngircd:0.5 tls:redis-tls:0.5; do
            IFS=: read -r a b t <<<"$pair"
            for size in "${FAN_SIZES[@]}"; do
                IFS=: read -r n _ _ <<<"$size"
                x=$(med "fan$n" "$a" server_ns_per_msg) y=$(med "fan$n" "$b" server_ns_per_msg)
                if [ -z "$x" ] || [ -z "$y" ]; then continue; fi
                r=$(ratio "$x" "$y")
                echo "| $(label_of "$a") vs $(label_of "$b") | $n | $(fmt "$x") | $(fmt "$y") | $r | ≤ $t | $(yn "\"$r\" != \"–\" && $r <= $t") |"
            done
        done
    else
        echo "(not measured: none of redis-server, nats-server, ngircd found)"
    fi
} >"$OUT/peers.md"

# ---- without pacing
{
    if [ -n "${VAL[burst/${FAN_ALL[0]:-x}/dropped]:-}" ]; then
        echo "| server | clients dropped (of 100) | first drop after | how far behind the first dropped was (lines the others had written that it had not received) | the dropped client's last notice before it was closed | lost between clients still connected | lines the dropped did not get | delivered messages/s | server memory at the end (MB) |"
        echo "|---|---|---|---|---|---|---|---|---|"
        for c in "${FAN_ALL[@]}"; do
            d=$(med burst "$c" dropped)
            [ -n "$d" ] || continue
            if [ "$d" = 0 ]; then
                echo "| $(label_of "$c") | 0 | – | – | – | $(med burst "$c" lost) of $(med burst "$c" expected) | 0 | $(fmt "$(med burst "$c" msgs_per_s)") | $(fmt "$(awk -v k="$(med burst "$c" server_rss_kb)" 'BEGIN { print k / 1024 }')") |"
            else
                note=$(tr ' ' '\n' <<<"${VAL[burst/$c/drop_note]:-}" | { grep -v '^$' || true; } | head -1 | tr '_' ' ' | sed 's/|/\\|/g')
                if [ -z "$note" ] || [ "$note" = "(none)" ]; then note="none"; else note="\`$note\`"; fi
                echo "| $(label_of "$c") | $d | $(fmt "$(med burst "$c" first_drop_s)") s | from $(med burst "$c" drop_depth_min) | $note | $(med burst "$c" lost) of $(med burst "$c" expected) | $(med burst "$c" lost_dropped) | $(fmt "$(med burst "$c" msgs_per_s)") | $(fmt "$(awk -v k="$(med burst "$c" server_rss_kb)" 'BEGIN { print k / 1024 }')") |"
            fi
        done
        echo
        echo "With senders at most 100 lines ahead of the average receiver (100 clients × $DEPTH_LINES lines):"
        echo
        echo "| server | clients dropped (of 100) | lost between clients still connected | how far behind the dropped were |"
        echo "|---|---|---|---|"
        for c in "${FAN_ALL[@]}"; do
            d=$(med depth "$c" dropped)
            [ -n "$d" ] || continue
            echo "| $(label_of "$c") | $d | $(med depth "$c" lost) of $(med depth "$c" expected) | $([ "$d" = 0 ] && echo – || echo "$(med depth "$c" drop_depth_min) lines") |"
        done
    else
        echo "(not measured)"
    fi
} >"$OUT/unpaced.md"

# ---- one slow-draining reader, depth and burst
{
    if [ ${#OURS_FAN[@]} -gt 0 ] && [ -n "${VAL[slow-${OURS_FAN[0]}/${SLOW_VARIANTS%% *}/lines_per_s]:-}" ]; then
        echo "| relay | slow reader drains | run (s) | honest lines/s: baseline → with it | ≥ 0.8× | chatter p99 ms: baseline → with it (limit) | met | chatter p99 ms: first → last part | no growth | slow reader dropped after (s) |"
        echo "|---|---|---|---|---|---|---|---|---|---|"
        for c in "${OURS_FAN[@]}"; do
            for v in $SLOW_VARIANTS; do
                k="slow-$c"
                [ -n "${VAL[$k/$v/lines_per_s]:-}" ] || continue
                bl=$(med "$k" "$v" base_lines_per_s) wl=$(med "$k" "$v" lines_per_s)
                bp=$(med "$k" "$v" base_p99_ms) wp=$(med "$k" "$v" p99_ms)
                fp=$(med "$k" "$v" first_p99_ms) lp=$(med "$k" "$v" last_p99_ms)
                lim=$(awk -v b="$bp" 'BEGIN { l = 2 * b; print (l > 250) ? l : 250 }')
                r=$(ratio "$wl" "$bl")
                what="$v KiB per 100 ms"
                [ "$v" = never ] && what="never reads"
                left=$(med "$k" "$v" slow_left_s)
                dropped="never"
                awk -v x="$left" 'BEGIN { exit !(x >= 0) }' && dropped=$(fmt "$left")
                echo "| $(label_of "$c") | $what | $(fmt "$(med "$k" "$v" phase_s)") | $(fmt "$bl") → $(fmt "$wl") ($r×) | $(yn "\"$r\" != \"–\" && $r >= 0.8") | $(fmt "$bp") → $(fmt "$wp") (≤ $(fmt "$lim")) | $(yn "$wp <= $lim") | $(fmt "$fp") → $(fmt "$lp") | $(yn "$lp <= 50 || $lp <= 1.5 * $fp") | $dropped |"
            done
        done
        echo
        echo "| honest readers under load | relay | clients dropped (of 100) | lines lost | target | met |"
        echo "|---|---|---|---|---|---|"
        for c in "${OURS_FAN[@]}"; do
            d=$(med depth "$c" dropped)
            [ -n "$d" ] || continue
            echo "| depth: 100 clients, senders up to 100 lines ahead, $DEPTH_LINES lines each | $(label_of "$c") | $d | $(med depth "$c" lost) of $(med depth "$c" expected) | nobody dropped, nothing lost | $(yn "$d == 0 && $(med depth "$c" lost) == 0 && $(med depth "$c" lost_dropped) == 0") |"
        done
        for c in "${OURS_FAN[@]}"; do
            d=$(med burst "$c" dropped)
            [ -n "$d" ] || continue
            echo "| burst: 100 clients × 640 lines (64 KiB) at once, then $((BURST_LINES - 640)) more each, unpaced | $(label_of "$c") | $d | $(med burst "$c" lost) of $(med burst "$c" expected) (+ $(med burst "$c" lost_dropped) not delivered to the dropped) | nobody dropped, nothing lost | $(yn "$d == 0 && $(med burst "$c" lost) == 0") |"
        done
    else
        echo "(not measured)"
    fi
} >"$OUT/slow.md"

# ---- the fan-out points for the plot
: >"$OUT/fanout.dat"
for c in "${FAN_ALL[@]}"; do
    for size in "${FAN_SIZES[@]}"; do
        IFS=: read -r n _ _ <<<"$size"
        v=$(med "fan$n" "$c" server_ns_per_msg)
        [ -n "$v" ] && echo "$c $n $v" >>"$OUT/fanout.dat"
    done
done
cat "$OUT/peers.md" "$OUT/unpaced.md" "$OUT/slow.md"

ELAPSED=$(($(date +%s) - START))
echo "$ELAPSED" >"$OUT/elapsed"
date -u '+%Y-%m-%d %H:%M UTC' >"$OUT/when"
cat "$TABLE"
echo
echo "($ELAPSED s; raw runs in build/bench/raw.txt)"

fi # DOC_ONLY
ELAPSED=$(cat "$OUT/elapsed")
TABLE=$OUT/table.md
# ================================================================ plot
# Three panels: the two of 10 active clients among N (ours), and the fan-out
# against the servers people run. Titles are plain text (noenhanced): in
# gnuplot's enhanced mode the _ of server_epoll would make a subscript.
if have gnuplot && [ -s "$OUT/clients.dat" ]; then
    fan_plot="" fan_panels=2 width=900
    if [ -s "$OUT/fanout.dat" ]; then
        fan_panels=3 width=1350
        while read -r c; do
            case $c in
            select) color="#9400d3" ;; epoll) color="#009e73" ;; tls) color="#56b4e9" ;;
            redis) color="#e69f00" ;; redis-tls) color="#8b4513" ;; nats) color="#0072b2" ;;
            *) color="#e51e10" ;;
            esac
            fan_plot+="${fan_plot:+, }\"< grep '^$c ' $OUT/fanout.dat\" using 2:3 with linespoints lw 2 lc rgb \"$color\" title \"$(label_of "$c")\""
        done < <(cut -d' ' -f1 "$OUT/fanout.dat" | awk '!seen[$0]++')
    fi
    gnuplot <<EOF 2>>"$OUT/gnuplot.err" || log "gnuplot failed: see $OUT/gnuplot.err"
set terminal svg size $width,400 dynamic font "sans,11" background "white"
set termoption noenhanced
set output "$SVG"
set multiplot layout 1,$fan_panels
set logscale x
set xlabel "clients connected (N), 10 of them active"
set key top left
set grid
set title "server CPU per message: select vs epoll"
set ylabel "server CPU ns per message (answered command)"
set xrange [5:20000]
plot "< grep '^select' $OUT/clients.dat" using 2:3 with linespoints title "server (select)", \
     "< grep '^epoll' $OUT/clients.dat" using 2:3 with linespoints title "server_epoll"
set title "memory per client (from 100 clients: 10 fit in one 4 KiB page)"
set ylabel "server resident memory, bytes per client"
set xrange [50:20000]
set yrange [0:*]
set key top right
plot "< grep '^select' $OUT/clients.dat" using 2:(\$2 >= 100 ? \$4 : 1/0) with linespoints title "server (select)", \
     "< grep '^epoll' $OUT/clients.dat" using 2:(\$2 >= 100 ? \$4 : 1/0) with linespoints title "server_epoll"
if ($fan_panels == 3) {
    unset logscale x
    set xrange [10:110]
    set xtics (20, 100)
    set yrange [0:*]
    set key top left reverse Left samplen 2
    set offsets 0, 0, graph 0.75, 0
    set title "fan-out: every line to every other client"
    set xlabel "clients, all sending"
    set ylabel "server CPU ns per delivered message (median)"
    plot $fan_plot
}
unset multiplot
EOF
fi

# ================================================================ the document
machine() {
    echo "- CPU: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -1), $(nproc) cores, shared by the load generator and the server"
    echo "- memory: $(free -g | awk '/^Mem:/ { print $2 }') GiB; kernel $(uname -r); $(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release)"
    echo "- compiler: $(g++ --version | head -1); OpenSSL: $(openssl version)"
    echo "- the others: $(ncat --version 2>&1 | head -1 | sed 's/ (.*//'); $(socat -V | sed -n 's/^socat version \([^ ]*\).*/socat \1/p'); $(iperf3 --version 2>/dev/null | head -1 | cut -d' ' -f1-2)"
    echo "- the servers people run: $(redis-server --version 2>/dev/null | cut -d' ' -f1-3); $(nats-server --version 2>/dev/null); $(ngircd --version 2>/dev/null | head -1 | cut -d- -f1)"
}
# The template with each <!-- NAME --> marker (peers, unpaced, slow) replaced
# by build/bench/NAME.md.
fill() {
    awk -v out="$OUT" '/^<!-- (peers|unpaced|slow) -->$/ {
        f = out "/" $2 ".md"
        while ((getline l < f) > 0) print l
        close(f)
        next
    } { print }'
}
{
    sed -n '1,/^<!-- table -->$/p' "$ROOT/tests/bench/benchmarks.md.in" | sed '$d'
    echo
    echo "Measured $(cat "$OUT/when") by \`make bench$([ -n "$QUICK" ] && echo ' QUICK=1')\` in $ELAPSED s:"
    echo
    machine
    echo
    cat "$TABLE"
    echo
    echo "![server CPU per message and memory per client against the number of clients](benchmarks-clients.svg)"
    echo
    echo "The points of the plot (\`build/bench/clients.dat\`: server, clients, ns per message, bytes per client):"
    echo
    echo '```text'
    cat "$OUT/clients.dat" 2>/dev/null || true
    echo '```'
    if [ -s "$OUT/fanout.dat" ]; then
        echo
        echo "The fan-out panel's points (\`build/bench/fanout.dat\`: server, clients, median ns per delivered message):"
        echo
        echo '```text'
        cat "$OUT/fanout.dat"
        echo '```'
    fi
    sed -n '/^<!-- table -->$/,$p' "$ROOT/tests/bench/benchmarks.md.in" | sed 1d | fill
} >"$DOC"
log "wrote $DOC and $SVG"
# docs/02-multiclient.md quotes the plot's points (tests/docs checks that they
# are this file's): a full run puts the new ones there too.
if [ -z "$QUICK" ] && [ -z "$DOC_ONLY" ] && [ -s "$OUT/clients.dat" ]; then
    MC=$ROOT/docs/02-multiclient.md
    awk -v dat="$OUT/clients.dat" '
        skip && $0 == "```" { skip = 0 }
        skip { next }
        { print }
        $0 == "$ cat build/bench/clients.dat" {
            while ((getline l < dat) > 0) print l
            skip = 1
        }' "$MC" >"$MC.new" && mv "$MC.new" "$MC"
    log "updated the plot's points in $MC: check the figures its text quotes from them"
fi
