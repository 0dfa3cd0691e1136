#!/usr/bin/env bash
# tests/grade/check.sh BUILD_DIR: proof that `make grade` grades (make grade-check).
#
# For each stage: the reference programs pass every check; the untouched
# exercise, made fresh from the reference, builds and fails its first check
# with the first TODO's hint; every bug of
# tests/grade/mutations/stageN.txt is caught by its check; and for stage 1 a
# server in another language (tests/grade/echo_server.py) passes.
# Last line: "N passed, M failed".
set -u
build=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cd "$root"
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# result NAME OK: one line per item, and the totals.
result() {
    if [ "$2" = ok ]; then
        echo "PASS  $1"
        passed=$((passed + 1))
    else
        echo "FAIL  $1"
        sed 's/^/      | /' "$log" | tail -20
        failed=$((failed + 1))
    fi
}
all_passed() { grep -qE '^[1-9][0-9]* passed, 0 failed$' "$log" && echo ok; }

grade() { python3 "$here/grade.py" --build "$build" "$@" >"$log" 2>&1; }

# stage N DIR FIRST_TODO FIRST_SECTION REFERENCE_PROGRAMS...
stage() {
    local n=$1 dir=$2 todo=$3 section=$4
    shift 4
    local refs=() exs=() p
    for p in "$@"; do
        refs+=("$p=$dir/$p")
    done
    grade --stage "$n" "${refs[@]}"
    result "stage $n: the reference programs pass every check" "$(all_passed)"

    rm -rf "$build/grade-check/$dir"
    if [ "$todo" = - ]; then
        :  # no exercise for this stage yet
    elif python3 "$here/exercise.py" "$dir" --out "$build/grade-check/$dir/exercise" >"$log" 2>&1 &&
        make --no-print-directory -C "$build/grade-check/$dir/exercise" >>"$log" 2>&1; then
        for p in "$@"; do  # the programs the exercise has
            if [ -f "$build/grade-check/$dir/exercise/$p.cpp" ]; then
                exs+=("$p=$build/grade-check/$dir/exercise/$p")
            fi
        done
        grade --stage "$n" --first-failure "${exs[@]}"
        local first
        first=$(grep -m1 -E '^(PASS|FAIL) ' "$log")
        if [[ $first == "FAIL  1."* ]] && grep -q "stopped at: TODO $todo:" "$log" &&
            grep -q "read:     $section\$" "$log"; then
            result "stage $n: the untouched exercise fails check 1 with TODO $todo and $section" ok
        else
            result "stage $n: the untouched exercise fails check 1 with TODO $todo and $section" no
        fi
    else
        result "stage $n: the exercise is made and builds" no
    fi

    CXX="${CXX:-g++}" python3 "$here/mutate.py" --stage "$n" --build "$build" >"$log" 2>&1
    local caught
    caught=$(grep -E '^caught [0-9]+ of [0-9]+$' "$log")
    echo "      $caught"
    if [ -n "$caught" ] && [ "$(echo "$caught" | awk '{print ($2 == $4 && $4 >= 10)}')" = 1 ]; then
        result "stage $n: every seeded bug is caught by its check ($caught)" ok
    else
        result "stage $n: every seeded bug is caught by its check (${caught:-no result})" no
    fi
}

stage 1 step1_echo 1 docs/01-echo.md#socket server client
grade --stage 1 server="$here/echo_server.py"
result "stage 1: a Python echo server (tests/grade/echo_server.py) passes the server checks" \
    "$(all_passed)"
stage 2 step2_multiclient 1 docs/02-multiclient.md#fork server_fork server client
stage 3 step3_tls 1 docs/03-tls.md#ssl_accept server client

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
