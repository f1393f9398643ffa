#!/usr/bin/env bash
# Installs what building, testing and the demo need on a fresh Debian 12
# machine: the Debian packages below and the Go modules. Idempotent and quick
# when everything is already there.
set -euo pipefail

pkgs=(
  qemu-system-x86 qemu-utils   # the rescue VM
  qemu-system-arm u-boot-qemu  # real U-Boot as a bootloader-env peer
  mtd-utils                    # ubinize/mkfs.ubifs reference images, nandwrite
  u-boot-tools libubootenv-tool grub-common grub-pc-bin  # env peers, demo bootloader
  gdisk fdisk dosfstools mtools e2fsprogs  # partition/filesystem checks and images
  lz4 xz-utils zstd cpio kmod  # initramfs compression, depmod
  bmap-tools swupdate          # reference updaters for benchmarks
  iproute2 util-linux time openssl  # netns tests, losetup, /usr/bin/time -v, swupdate signing
  chromium                     # a real browser for the web pages' tests (internal/browser)
  python3-zeroconf             # another mDNS implementation resolves the rescue's name (mdns tests)
  curl                         # the recovery page's API driven as its docs show (webui tests)
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export PATH=/usr/local/go/bin:$PATH
go mod download
