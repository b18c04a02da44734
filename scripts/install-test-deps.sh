#!/usr/bin/env bash
# Installs everything the tests need that Maven does not fetch; .ci/run runs it before the tests,
# and a developer runs it once (as root) before the full suite. The tests themselves install
# nothing: a missing component fails its test naming the package and this script.
#   - Debian packages: qemu-system-x86 (the test VM), qemu-system-common (qemu-storage-daemon),
#     busybox-static, fio, cpio, kmod, gzip, xz-utils (the test VM's initramfs, built by
#     scripts/vm/setup.sh), prometheus (the metrics integration test), qemu-utils (qemu-img and
#     qemu-io: the qcow2 tests make, fill, check and compare images with them).
#   - the test VM's guest kernel, fetched into the VM cache by scripts/vm/fetch-kernel.sh (Debian's
#     linux-image package, downloaded and unpacked, never installed on the host).
# Safe to run again: it installs only what is missing. VBLK_TEST_PACKAGES replaces the package list.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
packages=${VBLK_TEST_PACKAGES:-qemu-system-x86 qemu-system-common busybox-static fio cpio kmod gzip xz-utils prometheus qemu-utils}
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
"$here/vm/fetch-kernel.sh"
