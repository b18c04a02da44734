#!/usr/bin/env bash
# Installs the Debian packages the integration tests use (the tests also install what they miss,
# so this only saves them the time). Safe to run again: it installs only what is missing.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
# qemu-system-x86: the VMs; qemu-system-common: qemu-storage-daemon; busybox-static, fio, cpio, kmod,
# gzip, xz-utils: the guest's initramfs (scripts/vm/setup.sh); prometheus: the metrics integration test.
packages=${VBLK_TEST_PACKAGES:-qemu-system-x86 qemu-system-common busybox-static fio cpio kmod gzip xz-utils prometheus}
for p in $packages; do
  have "$p" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "install-test-deps: need root to install: ${need[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
  echo "install-test-deps: installed ${need[*]}"
fi
