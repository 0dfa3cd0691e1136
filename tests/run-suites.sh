#!/usr/bin/env bash
# tests/run-suites.sh BUILD_DIR SUITE...: run doctest suites, then one total line.
#
# Each suite is a doctest binary BUILD_DIR/bin/test-SUITE. Its summary line
#   [doctest] test cases: 12 | 11 passed | 1 failed | 0 skipped
# is added up; a suite that crashes or times out counts as one failure.
# The last line printed is "N passed, M failed"; exit status 1 if M > 0.
set -u
build=$1
shift
passed=0
failed=0
for suite in "$@"; do
    bin="$build/bin/test-$suite"
    echo "=== suite $suite"
    if [ ! -x "$bin" ]; then
        echo "missing test binary $bin"
        failed=$((failed + 1))
        continue
    fi
    log=$(mktemp)
    timeout --kill-after=10 "${SUITE_TIMEOUT:-600}" "$bin" ${DOCTEST_ARGS:-} 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    summary=$(grep -a '^\[doctest\] test cases:' "$log" | tail -1)
    rm -f "$log"
    if [ -n "$summary" ]; then
        p=$(sed -E 's/.*\| *([0-9]+) passed.*/\1/' <<<"$summary")
        f=$(sed -E 's/.*\| *([0-9]+) failed.*/\1/' <<<"$summary")
        passed=$((passed + p))
        failed=$((failed + f))
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
            echo "suite $suite exited $rc"
            failed=$((failed + 1))
        fi
    else
        echo "suite $suite ended without a summary (exit $rc)"
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
