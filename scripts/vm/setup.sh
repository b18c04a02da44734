#!/usr/bin/env bash
# Prepares everything the real-VM test needs, from Debian packages only:
#   - host tools (apt-get): qemu-system-x86_64, qemu-storage-daemon, fio, busybox-static, cpio, kmod
#   - a guest kernel: Debian's linux-image package, downloaded with `apt-get download` and unpacked
#     with `dpkg-deb -x` (never installed on the host). When the kernel has CONFIG_PVH, its
#     uncompressed ELF image is extracted from /boot/vmlinuz too: QEMU boots that directly through
#     the PVH entry point, which skips the real-mode decompressor (about 3.5 s under TCG).
#   - an initramfs (cpio newc, gzip): busybox-static, the virtio-pci + virtio-blk modules and their
#     dependencies in load order, fio with every shared library it links, and scripts/vm/guest/init.
#
# Idempotent: everything is cached in $VBLK_VM_CACHE (default $XDG_CACHE_HOME/vblk-vm or
# ~/.cache/vblk-vm); a second run checks a stamp and does nothing.
#
# Environment:
#   VBLK_VM_CACHE          cache directory
#   VBLK_VM_KERNEL_PKG     kernel package to use (default: what Debian's linux-image-amd64 depends on)
#   VBLK_VM_NO_APT=1       never call apt-get (fail if a tool is missing)
#   VBLK_VM_BZIMAGE=1      boot the compressed bzImage instead of the extracted ELF kernel
#
# Prints the paths of the kernel and initramfs on its last two lines:
#   kernel=<path>
#   initrd=<path>
set -euo pipefail

readonly BUILD_FORMAT=1   # bump when the initramfs layout built here changes

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/lib.sh"

cache=$(vm_cache_dir)
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock -w 600 9 || vm_die "another setup holds $cache/.lock"

# ---------------------------------------------------------------- host tools
need_pkgs=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# qemu-system-x86 ships qemu-system-x86_64; qemu-storage-daemon is in qemu-system-common (its dependency).
for p in qemu-system-x86 qemu-system-common busybox-static fio cpio kmod gzip xz-utils; do
  have_pkg "$p" || need_pkgs+=("$p")
done
apt_updated=0
apt_update_once() {
  if [ "$apt_updated" = 0 ]; then
    vm_log "apt-get update"
    apt-get update -q >&2
    apt_updated=1
  fi
}
apt_lists_present() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }
if [ "${#need_pkgs[@]}" -gt 0 ]; then
  [ "${VBLK_VM_NO_APT:-0}" = 1 ] && vm_die "missing packages: ${need_pkgs[*]} (VBLK_VM_NO_APT=1)"
  [ "$(id -u)" = 0 ] || vm_die "missing packages: ${need_pkgs[*]}; run as root or install them"
  apt_lists_present || apt_update_once
  vm_log "apt-get install ${need_pkgs[*]}"
  if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2; then
    [ "$apt_updated" = 1 ] && vm_die "apt-get install failed"
    apt_update_once
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_pkgs[@]}" >&2 \
      || vm_die "apt-get install failed"
  fi
fi
for t in qemu-system-x86_64 qemu-storage-daemon fio cpio gzip depmod modprobe; do
  command -v "$t" >/dev/null || vm_die "$t not found after installing packages"
done
busybox_bin=/bin/busybox
[ -x "$busybox_bin" ] || vm_die "$busybox_bin missing (busybox-static)"

# ---------------------------------------------------------------- stamp check (warm path)
init_src="$here/guest/init"
[ -f "$init_src" ] || vm_die "missing $init_src"
pkgver() { dpkg-query -W -f='${Version}' "$1"; }
tools_id="format=$BUILD_FORMAT fio=$(pkgver fio) busybox=$(pkgver busybox-static) init=$(sha256sum <"$init_src" | cut -c1-16)"
kernel_dir="$cache/kernel"
boot_kernel() {
  if [ -f "$cache/vmlinux" ] && [ "${VBLK_VM_BZIMAGE:-0}" != 1 ]; then echo "$cache/vmlinux"; else echo "$cache/vmlinuz"; fi
}
if [ -f "$cache/stamp" ] && [ -f "$cache/vmlinuz" ] && [ -f "$cache/initramfs.cpio.gz" ] \
   && [ -f "$kernel_dir/package" ]; then
  kpkg_cached=$(cat "$kernel_dir/package")
  if [ -z "${VBLK_VM_KERNEL_PKG:-}" ] || [ "${VBLK_VM_KERNEL_PKG}" = "${kpkg_cached%% *}" ]; then
    if [ "$(cat "$cache/stamp")" = "$tools_id kernel=$kpkg_cached" ]; then
      vm_log "up to date ($cache)"
      echo "kernel=$(boot_kernel)"
      echo "initrd=$cache/initramfs.cpio.gz"
      exit 0
    fi
  fi
fi

# ---------------------------------------------------------------- guest kernel
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
  vm_log "kernel cached: $(cat "$kernel_dir/package")"
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
read -r kpkg kdebver kver <"$kernel_dir/package"

# ---------------------------------------------------------------- initramfs
vm_log "building initramfs"
root="$cache/tmp.initramfs"
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,mnt,etc,root,usr/bin,usr/sbin,lib/modules/"$kver"}
cp "$busybox_bin" "$root/bin/busybox"
for applet in $("$busybox_bin" --list); do
  [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$kernel_dir"/modules/*.ko "$kernel_dir/modules/load-order" "$root/lib/modules/$kver/"

# fio and every shared object it needs, at the paths the dynamic loader resolved on the host.
fio_bin=$(command -v fio)
cp "$fio_bin" "$root/usr/bin/fio"
libdirs=()
while read -r lib; do
  [ -n "$lib" ] || continue
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
  d=$(dirname "$lib")
  case " ${libdirs[*]} " in *" $d "*) ;; *) libdirs+=("$d") ;; esac
done < <(ldd "$fio_bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}')
ld_path=$(IFS=:; echo "${libdirs[*]}")
printf 'LD_LIBRARY_PATH=%s\n' "$ld_path" >"$root/etc/vblk-env"
printf 'KVER=%s\n' "$kver" >>"$root/etc/vblk-env"

cp "$init_src" "$root/init"
chmod 755 "$root/init"
# The kernel opens /dev/console before running /init; the rest of /dev comes from devtmpfs.
if [ "$(id -u)" = 0 ]; then
  mknod -m 600 "$root/dev/console" c 5 1
  mknod -m 666 "$root/dev/null" c 1 3
fi

# Prove the payload runs before packing it: fio with only the copied libraries.
if [ "$(id -u)" = 0 ]; then
  chroot "$root" /bin/busybox env LD_LIBRARY_PATH="$ld_path" /usr/bin/fio --version >/dev/null \
    || vm_die "fio does not run inside the initramfs tree (missing library?)"
fi

( cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 ) \
  | gzip -6 >"$cache/initramfs.cpio.gz.tmp"
mv "$cache/initramfs.cpio.gz.tmp" "$cache/initramfs.cpio.gz"
rm -rf "$root"
echo "$tools_id kernel=$kpkg $kdebver $kver" >"$cache/stamp"
vm_log "initramfs $(du -h "$cache/initramfs.cpio.gz" | cut -f1) (kernel $kver)"
echo "kernel=$(boot_kernel)"
echo "initrd=$cache/initramfs.cpio.gz"
