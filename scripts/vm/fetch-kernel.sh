#!/usr/bin/env bash
# Fetches the test VM's guest kernel into the VM cache: Debian's linux-image package, downloaded
# with `apt-get download` and unpacked with `dpkg-deb -x` (never installed on the host). Keeps
# vmlinuz, its config, modules.builtin and the virtio-pci/virtio-blk modules with their load order;
# when the kernel has CONFIG_PVH, also the uncompressed ELF image extracted from vmlinuz: QEMU
# boots that directly through the PVH entry point, which skips the real-mode decompressor (about
# 3.5 s under TCG).
#
# scripts/install-test-deps.sh runs this; the tests never do (scripts/vm/setup.sh only checks that
# the kernel is there). Idempotent: a kernel already in the cache is kept.
#
# Environment:
#   VBLK_VM_CACHE          cache directory (default $XDG_CACHE_HOME/vblk-vm or ~/.cache/vblk-vm)
#   VBLK_VM_KERNEL_PKG     kernel package to use (default: what Debian's linux-image-amd64 depends on)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/lib.sh"

cache=$(vm_cache_dir)
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 600 9 || vm_die "another setup holds $cache/.lock"
kernel_dir="$cache/kernel"

for t in apt-get apt-cache dpkg-deb depmod modprobe xz gzip; do
  command -v "$t" >/dev/null || vm_die "$t not found (packages: apt, dpkg, kmod, xz-utils, gzip)"
done
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    vm_log "apt-get update"
    apt-get update -q >&2
    apt_updated=1
  fi
}

pick_kernel_pkg() {
  if [ -n "${VBLK_VM_KERNEL_PKG:-}" ]; then echo "$VBLK_VM_KERNEL_PKG"; return; fi
  local dep
  dep=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  if [ -z "$dep" ]; then
    apt_update_once
    dep=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  fi
  [ -n "$dep" ] || vm_die "cannot find the kernel package linux-image-amd64 depends on (apt-cache)"
  echo "$dep"
}

# Unpacks $1 (a .deb) into $2 and says whether it carries /boot/vmlinuz-*.
unpack_kernel_deb() {
  rm -rf "$2"; mkdir -p "$2"
  dpkg-deb -x "$1" "$2"
  compgen -G "$2/boot/vmlinuz-*" >/dev/null
}

# Writes the uncompressed ELF kernel inside bzImage $1 to $3 when config $2 has CONFIG_PVH=y.
extract_vmlinux() {
  local bz=$1 config=$2 out=$3 magic tool off
  grep -q '^CONFIG_PVH=y' "$config" || return 1
  if grep -q '^CONFIG_KERNEL_XZ=y' "$config"; then magic=$'\xfd7zXZ'; tool="xz -dc"
  elif grep -q '^CONFIG_KERNEL_GZIP=y' "$config"; then magic=$'\x1f\x8b\x08'; tool="gzip -dc"
  else return 1
  fi
  # The payload is the first stream with that magic; decompressors stop at its end (trailing
  # bytes make them complain, hence 2>/dev/null, and the ELF check below).
  off=$(LC_ALL=C grep -abo "$magic" "$bz" | head -1 | cut -d: -f1)
  [ -n "$off" ] || return 1
  tail -c +$((off + 1)) "$bz" | $tool >"$out.tmp" 2>/dev/null || true
  if [ "$(head -c 4 "$out.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
    mv "$out.tmp" "$out"
  else
    rm -f "$out.tmp"; return 1
  fi
}

if [ -f "$kernel_dir/package" ] && [ -f "$cache/vmlinuz" ] \
   && { [ -z "${VBLK_VM_KERNEL_PKG:-}" ] || [ "$VBLK_VM_KERNEL_PKG" = "$(cut -d' ' -f1 <"$kernel_dir/package")" ]; }; then
  vm_log "kernel cached: $(cat "$kernel_dir/package") ($cache)"
else
  kpkg=$(pick_kernel_pkg)
  vm_log "kernel package: $kpkg"
  work="$cache/tmp.kernel"
  rm -rf "$work"; mkdir -p "$work/deb"
  ( cd "$work/deb" && apt-get -o APT::Sandbox::User=root download -q "$kpkg" >&2 ) || {
    apt_update_once
    ( cd "$work/deb" && apt-get -o APT::Sandbox::User=root download -q "$kpkg" >&2 ) || vm_die "apt-get download $kpkg failed"
  }
  deb=$(ls "$work"/deb/*.deb)
  if ! unpack_kernel_deb "$deb" "$work/root"; then
    # The signed image normally carries /boot/vmlinuz; fall back to the unsigned build.
    vm_log "$kpkg has no /boot/vmlinuz; trying $kpkg-unsigned"
    rm -f "$work"/deb/*.deb
    ( cd "$work/deb" && apt-get -o APT::Sandbox::User=root download -q "$kpkg-unsigned" >&2 ) || vm_die "apt-get download $kpkg-unsigned failed"
    deb=$(ls "$work"/deb/*.deb)
    kpkg="$kpkg-unsigned"
    unpack_kernel_deb "$deb" "$work/root" || vm_die "$kpkg has no /boot/vmlinuz"
  fi
  kver=$(basename "$(ls -d "$work"/root/lib/modules/*/)")
  kdebver=$(dpkg-deb -f "$deb" Version)
  # modules.dep is written by depmod at install time, not shipped: compute it on the unpacked tree.
  depmod -b "$work/root" "$kver"
  rm -rf "$kernel_dir"; mkdir -p "$kernel_dir/modules"
  cp "$work/root/boot/vmlinuz-$kver" "$cache/vmlinuz"
  rm -f "$cache/vmlinux"
  extract_vmlinux "$cache/vmlinuz" "$work/root/boot/config-$kver" "$cache/vmlinux" \
    || vm_log "no PVH-bootable vmlinux; booting the bzImage"
  cp "$work/root/boot/config-$kver" "$kernel_dir/config"
  cp "$work/root/lib/modules/$kver/modules.builtin" "$kernel_dir/modules.builtin"
  # Load order for virtio-pci (the transport) and virtio-blk; modprobe prints "builtin X" for
  # modules compiled into the kernel (listed in modules.builtin) and "insmod PATH" for the others.
  : >"$kernel_dir/modules/load-order"
  modprobe -d "$work/root" -S "$kver" -a --show-depends virtio_pci virtio_blk \
    | while read -r verb path _; do
        case "$verb" in
          insmod)
            name=$(basename "$path")
            grep -qx "$name" "$kernel_dir/modules/load-order" && continue
            cp "$path" "$kernel_dir/modules/$name"
            echo "$name" >>"$kernel_dir/modules/load-order"
            ;;
          builtin) echo "builtin: $path" >&2 ;;
        esac
      done
  echo "$kpkg $kdebver $kver" >"$kernel_dir/package"
  rm -rf "$work"     # the unpacked tree is ~400 MB; keep only what the guest needs
  vm_log "kernel $kver ($kpkg $kdebver); modules: $(tr '\n' ' ' <"$kernel_dir/modules/load-order")"
fi
