#!/bin/sh
# fetch-kernel.sh [DIR]: fetch the Debian amd64 kernel the rescue VM tests
# boot, unpack it under DIR (default $LIFEBOAT_CACHE/kernel) and generate its
# modules.dep. Idempotent: a second run with the same DIR only prints the
# result. Go tests find it through internal/vm.DebianKernel, which uses
# $LIFEBOAT_CACHE/kernel, else .cache/kernel in the module root.
#
# Prints shell assignments, so callers can eval the output:
#   KVER=6.1.0-56-amd64
#   VMLINUZ=DIR/6.1.0-56-amd64/boot/vmlinuz-6.1.0-56-amd64
#   VMLINUX=DIR/6.1.0-56-amd64/boot/vmlinux-6.1.0-56-amd64
#   MODULES=DIR/6.1.0-56-amd64/lib/modules/6.1.0-56-amd64
#   ROOT=DIR/6.1.0-56-amd64
#
# VMLINUX is the kernel unpacked from VMLINUZ (an ELF with a PVH entry):
# QEMU starts it directly, which under TCG saves the 4-5 s the compressed
# kernel spends unpacking itself. It is empty if it could not be unpacked.
#
# The tests pin the kernel (PINNED below, or $LIFEBOAT_KERNEL_PACKAGE) so that
# a run is repeatable. Debian's security archive drops an old kernel ABI when it
# publishes a new one; then the package that `apt-cache depends
# linux-image-amd64` names is used instead and a warning says so. DIR/kver
# records which one the cache holds.
#
# Needs: apt-get, apt-cache, dpkg-deb, depmod (Debian package kmod), xz.
set -eu

PINNED=linux-image-6.1.0-56-amd64

dir=${1:-}
if [ -z "$dir" ] && [ -n "${LIFEBOAT_CACHE:-}" ]; then
	dir=$LIFEBOAT_CACHE/kernel
fi
if [ -z "$dir" ]; then
	echo "usage: $0 DIR (or set LIFEBOAT_CACHE: DIR is \$LIFEBOAT_CACHE/kernel)" >&2
	exit 2
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# Test binaries of several packages may ask at once: one fetch at a time.
if command -v flock >/dev/null 2>&1; then
	exec 9>"$dir/.lock"
	flock 9
fi

# unpack_vmlinux ROOT KVER: extract the ELF kernel from Debian's
# xz-compressed bzImage, once.
unpack_vmlinux() {
	z=$1/boot/vmlinuz-$2
	x=$1/boot/vmlinux-$2
	[ -s "$x" ] && return 0
	off=$(LC_ALL=C grep -abo "$(printf '\3757zXZ')" "$z" | head -n 1 | cut -d: -f1)
	[ -n "$off" ] || return 0
	tail -c +$((off + 1)) "$z" | xz -dc --single-stream >"$x.tmp" 2>/dev/null || true
	if [ "$(head -c 4 "$x.tmp" | od -An -tx1 | tr -d ' ')" = 7f454c46 ]; then
		mv "$x.tmp" "$x"
	else
		rm -f "$x.tmp"
	fi
}

say() {
	kver=$1
	root=$dir/$kver
	unpack_vmlinux "$root" "$kver"
	vmlinux=$root/boot/vmlinux-$kver
	[ -s "$vmlinux" ] || vmlinux=
	echo "KVER=$kver"
	echo "VMLINUZ=$root/boot/vmlinuz-$kver"
	echo "VMLINUX=$vmlinux"
	echo "MODULES=$root/lib/modules/$kver"
	echo "ROOT=$root"
}

unpacked() {
	[ -f "$dir/$1/.complete" ] && [ -f "$dir/$1/boot/vmlinuz-$1" ]
}

pkg=${LIFEBOAT_KERNEL_PACKAGE:-$PINNED}

# Fast path: the pinned kernel, or the one recorded last time, is unpacked.
if unpacked "${pkg#linux-image-}"; then
	say "${pkg#linux-image-}"
	exit 0
fi

# Without apt (not a Debian host), what an earlier run fetched will do.
if ! command -v apt-cache >/dev/null 2>&1; then
	if [ -f "$dir/kver" ] && unpacked "$(cat "$dir/kver")"; then
		echo "$0: warning: no apt-cache, using the cached $(cat "$dir/kver")" >&2
		say "$(cat "$dir/kver")"
		exit 0
	fi
	echo "$0: no apt-cache to fetch $pkg with" >&2
	exit 1
fi

# has_pkg PKG: the package index knows PKG.
has_pkg() {
	apt-cache show "$1" >/dev/null 2>&1
}

# current: the versioned package linux-image-amd64 depends on.
current() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n 1
}

if ! has_pkg "$pkg"; then
	cur=$(current)
	if [ -z "$cur" ]; then
		# An empty or stale package index: refresh it once.
		apt-get update -qq >&2
		has_pkg "$pkg" || cur=$(current)
	fi
	if ! has_pkg "$pkg"; then
		if [ -z "$cur" ] || ! has_pkg "$cur"; then
			echo "$0: neither $pkg nor linux-image-amd64 is in the package index" >&2
			exit 1
		fi
		echo "$0: warning: pinned $pkg is gone from the archive, using $cur" >&2
		pkg=$cur
	fi
fi

kver=${pkg#linux-image-}
if unpacked "$kver"; then
	say "$kver"
	exit 0
fi

tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# apt's sandbox user (_apt) cannot write into a private temporary
# directory: download as the caller.
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >&2)
deb=$(ls "$tmp"/*.deb)
rm -rf "${dir:?}/$kver"
mkdir -p "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
# The .deb ships no modules.dep: generate it for the tree we unpacked.
depmod -b "$tmp/root" "$kver"
dpkg-deb -f "$deb" Package Version >"$tmp/root/.package"
mv "$tmp/root" "$dir/$kver"
touch "$dir/$kver/.complete"
echo "$kver" >"$dir/kver"
say "$kver"
