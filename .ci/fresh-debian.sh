#!/usr/bin/env bash
# .ci/fresh-debian.sh: README.md's Quickstart on a truly fresh machine.
#
# Builds a minimal Debian 12 (debootstrap --variant=minbase) in a temporary
# directory, adds what any real machine has (git to clone with, /etc/hosts),
# clones this checkout's HEAD into it, runs the one apt-get line the README's
# Quickstart names (found in the README itself, between the
# `fresh-machine` comments) and then `make test` inside the chroot. A package
# that happens to be on the developer's machine can therefore never hide a
# missing install step.
#
#   .ci/fresh-debian.sh [COMMAND]     COMMAND defaults to "make test"
#
# Needs root (debootstrap, chroot, mounts), debootstrap and a Debian mirror
# (MIRROR, default http://deb.debian.org/debian). Everything mounted is
# unmounted on exit, whatever happens; the directory is then removed.
set -euo pipefail
cd "$(dirname "$0")/.."
command=${1:-make test}
mirror=${MIRROR:-http://deb.debian.org/debian}

if [ "$(id -u)" -ne 0 ]; then
    echo "fresh-debian: needs root (debootstrap, chroot)" >&2
    exit 1
fi
# DPkg::Lock::Timeout: wait while another apt holds dpkg's lock (apt-daily on a
# fresh machine, or another run beside this one) instead of failing at once.
command -v debootstrap >/dev/null ||
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >&2

# The Quickstart's line, e.g. "apt-get update && apt-get install -y make".
line=$(sed -n '/<!-- fresh-machine -->/,/<!-- \/fresh-machine -->/p' README.md |
    grep -E '^(sudo )?apt-get ' | sed -e 's/^sudo //' -e 's/ *#.*$//')
if [ -z "$line" ]; then
    echo "fresh-debian: README.md has no apt-get line between <!-- fresh-machine --> markers" >&2
    exit 1
fi

root=$(mktemp -d /tmp/ci-fresh-debian.XXXXXX)
chmod 755 "$root" # it becomes /, which every user must be able to enter
mounts=()
cleanup() {
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
    done
    # Never follow a mount we failed to undo into the host's /dev or /proc.
    if ! grep -q " $root" /proc/mounts; then
        rm -rf --one-file-system "$root"
    else
        echo "fresh-debian: $root still has mounts; left in place" >&2
    fi
}
trap cleanup EXIT
mount_in() { # mount_in TYPE-OR-BIND SOURCE TARGET
    mkdir -p "$root/$3"
    if [ "$1" = bind ]; then mount --bind "$2" "$root/$3"; else mount -t "$1" "$2" "$root/$3"; fi
    mounts+=("$root/$3")
}

echo "fresh-debian: debootstrap --variant=minbase bookworm (a few minutes)"
debootstrap --variant=minbase --include=git bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
    { tail -20 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' >"$root/etc/hosts"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" # name service, as any machine has
mount_in proc proc proc
mount_in sysfs sysfs sys
mount_in bind /dev dev
mount_in bind /dev/pts dev/pts

git clone -q "$PWD" "$root/root/project"
echo "fresh-debian: the README's line: $line"
echo "fresh-debian: then: $command"
chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    LANG=C.UTF-8 /bin/bash -c "set -e; cd /root/project; export DEBIAN_FRONTEND=noninteractive; $line; $command"
