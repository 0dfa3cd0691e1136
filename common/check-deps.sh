#!/bin/sh
# common/check-deps.sh: is everything the build and the tests need here?
#
# Checks for the compiler, OpenSSL 3 headers, doctest and the tools the
# interop tests talk to. Anything missing is installed with apt-get when we
# are root or have password-less sudo; otherwise we stop and print the exact
# command to run. Prints nothing when all is present.
#
#   check-deps.sh --optional COMMAND=PACKAGE...
#       the same for tools one target can do without (make bench: iperf3,
#       gnuplot, redis-server, nats-server, ngircd): install them if we can,
#       else say how, and exit 0 either way.
set -eu

optional=""
if [ "${1:-}" = "--optional" ]; then
    optional=1
    shift
fi
missing=""
need() { # need PACKAGE TEST...
    pkg=$1
    shift
    if ! "$@" >/dev/null 2>&1; then missing="$missing $pkg"; fi
}
have() { command -v "$1"; }

if [ -n "$optional" ]; then
    for spec in "$@"; do need "${spec#*=}" have "${spec%%=*}"; done
else
    cxx=${CXX:-g++}
    case "$cxx" in
    *clang*) need clang have "$cxx" ;;
    *) need g++ have "$cxx" ;;
    esac
    need make have make
    need libssl-dev test -f /usr/include/openssl/ssl.h
    need openssl have openssl
    need doctest-dev test -f /usr/include/doctest/doctest.h
    need netcat-openbsd sh -c 'nc -h 2>&1 | grep -q -i "openbsd\|-U"'
    need socat have socat
    need ncat have ncat
    need iproute2 have ss
    need procps have ps
    need sslscan have sslscan
    # The docs' runnable sessions (tests/docs) use these too.
    need strace have strace
    need python3 have python3
fi

[ -z "$missing" ] && exit 0

# Cannot install: stop (exit 1), or for --optional tools go on without them.
give_up() {
    if [ -n "$optional" ]; then
        echo "(continuing without them)" >&2
        exit 0
    fi
    exit 1
}

echo "missing:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
else
    echo "run: sudo apt-get update && sudo apt-get install -y$missing" >&2
    give_up
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "no apt-get here: install$missing with your package manager" >&2
    give_up
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# Another apt may be at work: on a fresh machine apt-daily updates the lists
# at boot, and two `make test` side by side both install. apt-get waits for
# dpkg's lock when told to (DPkg::Lock::Timeout), but `update` never waits for
# the lists' lock (apt 2.6): try it again while that is the reason, up to 10 min.
apt_update() {
    tries=0
    while ! err=$($sudo apt-get update -qq 2>&1 >/dev/null); do
        printf '%s\n' "$err" >&2
        printf '%s\n' "$err" | grep -q 'Could not get lock' || return 1
        tries=$((tries + 1))
        [ "$tries" -lt 120 ] || return 1
        echo "(another apt holds the lock: trying again in 5 s)" >&2
        sleep 5
    done
}
apt_update || give_up
# shellcheck disable=SC2086
$sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing >&2 ||
    give_up
