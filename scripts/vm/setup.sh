#!/usr/bin/env bash
# Builds the test VM's initramfs from what is installed; installs and downloads nothing:
#   - host tools, from Debian packages that scripts/install-test-deps.sh installs: qemu-system-x86_64
#     (qemu-system-x86), qemu-storage-daemon (qemu-system-common), fio, busybox-static, cpio, kmod,
#     gzip, xz-utils. A missing one stops this script naming its package.
#   - the guest kernel in the cache, which scripts/vm/fetch-kernel.sh (run by
#     scripts/install-test-deps.sh) fetched. A missing one stops this script naming that script.
#   - the initramfs (cpio newc, gzip): busybox-static, the virtio-pci + virtio-blk modules and their
#     dependencies in load order, fio with every shared library it links, and scripts/vm/guest/init.
#
# Idempotent: everything is cached in $VBLK_VM_CACHE (default $XDG_CACHE_HOME/vblk-vm or
# ~/.cache/vblk-vm); a second run checks a stamp and does nothing.
#
# Environment:
#   VBLK_VM_CACHE          cache directory
#   VBLK_VM_KERNEL_PKG     the kernel package the cache must hold (default: whichever it holds)
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
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
# qemu-system-x86 ships qemu-system-x86_64; qemu-storage-daemon is in qemu-system-common (its dependency).
missing=()
for p in qemu-system-x86 qemu-system-common busybox-static fio cpio kmod gzip xz-utils; do
  have_pkg "$p" || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] || vm_die "missing packages: ${missing[*]}; install them with" \
  "\`apt-get install ${missing[*]}\` or run scripts/install-test-deps.sh as root"
for t in qemu-system-x86_64 qemu-storage-daemon fio cpio gzip depmod modprobe; do
  command -v "$t" >/dev/null || vm_die "$t not found on PATH although its package is installed"
done
busybox_bin=/bin/busybox
[ -x "$busybox_bin" ] || vm_die "$busybox_bin missing (busybox-static)"

# ---------------------------------------------------------------- guest kernel (fetched, not built here)
kernel_dir="$cache/kernel"
if [ ! -f "$kernel_dir/package" ] || [ ! -f "$cache/vmlinuz" ]; then
  vm_die "no guest kernel in $cache; fetch it with scripts/vm/fetch-kernel.sh" \
    "(scripts/install-test-deps.sh runs it)"
fi
if [ -n "${VBLK_VM_KERNEL_PKG:-}" ] && [ "$VBLK_VM_KERNEL_PKG" != "$(cut -d' ' -f1 <"$kernel_dir/package")" ]; then
  vm_die "the cache holds $(cut -d' ' -f1 <"$kernel_dir/package"), not VBLK_VM_KERNEL_PKG=$VBLK_VM_KERNEL_PKG;" \
    "fetch it with VBLK_VM_KERNEL_PKG=$VBLK_VM_KERNEL_PKG scripts/vm/fetch-kernel.sh"
fi
read -r kpkg kdebver kver <"$kernel_dir/package"

# ---------------------------------------------------------------- stamp check (warm path)
init_src="$here/guest/init"
[ -f "$init_src" ] || vm_die "missing $init_src"
pkgver() { dpkg-query -W -f='${Version}' "$1"; }
tools_id="format=$BUILD_FORMAT fio=$(pkgver fio) busybox=$(pkgver busybox-static) init=$(sha256sum <"$init_src" | cut -c1-16)"
boot_kernel() {
  if [ -f "$cache/vmlinux" ] && [ "${VBLK_VM_BZIMAGE:-0}" != 1 ]; then echo "$cache/vmlinux"; else echo "$cache/vmlinuz"; fi
}
if [ -f "$cache/stamp" ] && [ -f "$cache/initramfs.cpio.gz" ] \
   && [ "$(cat "$cache/stamp")" = "$tools_id kernel=$kpkg $kdebver $kver" ]; then
  vm_log "up to date ($cache)"
  echo "kernel=$(boot_kernel)"
  echo "initrd=$cache/initramfs.cpio.gz"
  exit 0
fi

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
