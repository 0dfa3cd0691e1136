#!/bin/sh
# tests/bench/check-deps.sh: the tools only `make bench` needs.
#
# iperf3 (the loopback ceiling) and gnuplot (the plot) are not needed to build
# or test, so common/check-deps.sh leaves them alone; this installs them the
# same way (apt-get as root or with password-less sudo) or says how. Without
# them the bench still runs and leaves out that row or the plot.
set -eu
missing=""
command -v iperf3 >/dev/null 2>&1 || missing="$missing iperf3"
command -v gnuplot >/dev/null 2>&1 || missing="$missing gnuplot-nox"
command -v socat >/dev/null 2>&1 || missing="$missing socat"
command -v ncat >/dev/null 2>&1 || missing="$missing ncat"
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
else
    echo "bench: missing$missing; run: sudo apt-get install -y$missing (continuing without)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: missing$missing; no apt-get here (continuing without)" >&2
    exit 0
fi
echo "bench: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq >&2 || true
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >&2 ||
    echo "bench: could not install$missing (continuing without)" >&2
