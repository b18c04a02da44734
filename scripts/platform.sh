# shellcheck shell=bash
# Sourceable: stops (return/exit 1, with a message) unless this machine is x86_64 Linux.
# vblk's native constants are x86_64 Linux's: the syscall numbers it calls directly (io_setup 206,
# io_submit 209, io_getevents 208, ... differ on aarch64), open(2) flags such as O_DIRECT (0x4000;
# 0x10000 on aarch64), and the C struct layouts it reads and writes (iocb, io_event, msghdr, ...),
# and it links Netty's linux-x86_64 native jar.
_vblk_os=$(uname -s 2>/dev/null || echo unknown)
_vblk_arch=$(uname -m 2>/dev/null || echo unknown)
if [ "$_vblk_os" != Linux ] || [ "$_vblk_arch" != x86_64 ]; then
  echo "error: vblk runs only on x86_64 Linux, and this machine is $_vblk_os $_vblk_arch." >&2
  echo "       Its native constants (syscall numbers, O_DIRECT and other flags, struct layouts such as" >&2
  echo "       iocb and msghdr) are x86_64 Linux's; on another machine they would be wrong." >&2
  unset _vblk_os _vblk_arch
  return 1 2>/dev/null || exit 1
fi
unset _vblk_os _vblk_arch
