#!/usr/bin/env bash
# Boots the test guest under qemu-system-x86_64 (TCG) with a vhost-user-blk-pci disk on a backend's
# socket, runs a job in the guest and exits with the guest's rc.
#
#   run-guest.sh --socket PATH [--queues N] [--mem 512M] [--smp N]
#                [--job check|fio-verify|randrw|flush|write-marker|read-marker|grow|all[,...]]
#                [--timeout 300] [--marker TOKEN] [--marker-offset BYTES] [--expect-size BYTES]
#                [--fio-size SIZE] [--secs N] [--reconnect S] [--log FILE] [--verbose]
#                [--packed] [--qemu-arg ARG]...
#
#   --socket PATH     the backend's vhost-user socket (it must already listen)
#   --queues N        num-queues of the device; the guest checks it sees N queues (default 1)
#   --mem SIZE        guest memory, shared memfd (default 512M)
#   --smp N           vCPUs (default: N queues, at least 1; virtio-blk uses at most one queue per vCPU)
#   --job J[,J...]    what the guest runs after the "check" step, which always runs (default check)
#   --timeout S       QEMU is killed after S seconds (default 300); exit status 124 then
#   --marker TOKEN    token for write-marker/read-marker (required by those jobs)
#   --expect-size B   the guest checks the disk has exactly B bytes
#   --fio-size SIZE   bytes each fio verify job covers (default 32M)
#   --secs N          runtime of each random read/write job in seconds (default 5)
#   --reconnect S     QEMU reconnects to the socket S seconds after losing the backend (chardev
#                     reconnect=S), so the backend may be restarted while the guest runs
#   --log FILE        keep the console output here too
#   --verbose         kernel messages on the console (no "quiet")
#   --packed          the device uses packed virtqueues (vhost-user-blk-pci packed=on: QEMU then
#                     negotiates VIRTIO_F_RING_PACKED when the backend offers it)
#   --qemu-arg ARG    extra argument for qemu-system-x86_64 (repeatable)
#
# Stdout: the guest console, then one host line:
#   VBLK-HOST result rc=<guest rc> qemu_status=<n> boot_s=<s> disk_s=<s> total_s=<s>
# Exit status: the guest's rc; 124 when the timeout killed QEMU; 125 when the guest ended without
# printing "VBLK-VM done rc=<n>"; 2 for bad options or a failed setup.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/lib.sh"

sock="" queues=1 mem=512M smp="" job=check timeout_s=300 marker="" marker_offset="" expect_size=""
fio_size="" secs="" reconnect="" log="" verbose=0 extra=() packed=
usage() { vm_usage "$0"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) sock=$2; shift 2 ;;
    --queues) queues=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --smp) smp=$2; shift 2 ;;
    --job) job=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --marker) marker=$2; shift 2 ;;
    --marker-offset) marker_offset=$2; shift 2 ;;
    --expect-size) expect_size=$2; shift 2 ;;
    --fio-size) fio_size=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --reconnect) reconnect=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --verbose) verbose=1; shift ;;
    --qemu-arg) extra+=("$2"); shift 2 ;;
    --packed) packed=",packed=on"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) vm_log "unknown option $1"; usage >&2; exit 2 ;;
  esac
done
bad() { vm_log "error: $*"; exit 2; }
[ -n "$sock" ] || bad "--socket PATH is required"
[ -S "$sock" ] || bad "$sock is not a socket (start the backend first)"
[[ "$queues" =~ ^[1-9][0-9]*$ ]] || bad "--queues must be a positive integer"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || bad "--timeout must be a positive integer"
[ -z "$reconnect" ] || [[ "$reconnect" =~ ^[1-9][0-9]*$ ]] || bad "--reconnect must be a positive integer"
smp=${smp:-$queues}
[[ "$smp" =~ ^[1-9][0-9]*$ ]] || bad "--smp must be a positive integer"
[[ "$job" =~ ^[a-z,-]+$ ]] || bad "--job: letters, '-' and ',' only"
[[ "$marker" =~ ^[A-Za-z0-9._-]{0,24}$ ]] || bad "--marker: up to 24 of [A-Za-z0-9._-]"
case ",$job," in *,write-marker,*|*,read-marker,*) [ -n "$marker" ] || bad "--marker TOKEN is needed by $job" ;; esac

# The cached kernel and initramfs (a no-op when they are up to date).
paths=$("$here/setup.sh") || bad "setup.sh failed"
kernel=$(sed -n 's/^kernel=//p' <<<"$paths")
initrd=$(sed -n 's/^initrd=//p' <<<"$paths")

append="console=ttyS0 panic=-1 rdinit=/init vblk.job=$job vblk.queues=$queues"
[ "$verbose" = 1 ] || append+=" quiet"
[ -z "$marker" ] || append+=" vblk.marker=$marker"
[ -z "$marker_offset" ] || append+=" vblk.marker_offset=$marker_offset"
[ -z "$expect_size" ] || append+=" vblk.size=$expect_size"
[ -z "$fio_size" ] || append+=" vblk.fio_size=$fio_size"
[ -z "$secs" ] || append+=" vblk.secs=$secs"

# shellcheck disable=SC2054  # commas belong to QEMU option values
qemu=(qemu-system-x86_64
  -accel tcg -cpu max -smp "$smp" -m "$mem"
  -object "memory-backend-memfd,id=mem,size=$mem,share=on" -numa node,memdev=mem
  -chardev "socket,id=vu,path=$sock${reconnect:+,reconnect=$reconnect}"
  -device "vhost-user-blk-pci,chardev=vu,num-queues=$queues$packed"
  -kernel "$kernel" -initrd "$initrd" -append "$append"
  -nographic -nodefaults -no-user-config -serial stdio -no-reboot
  "${extra[@]}")

tmplog=""
if [ -z "$log" ]; then tmplog=$(mktemp); log=$tmplog; fi
: >"$log"
qpid=""
# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
  # Never leave QEMU behind: timeout(1) passes SIGTERM on to it.
  if [ -n "$qpid" ] && kill -0 "$qpid" 2>/dev/null; then
    kill -TERM "$qpid" 2>/dev/null || true
    vm_stop_pid "$qpid" 5 || true
  fi
  [ -z "$tmplog" ] || rm -f "$tmplog"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

vm_log "qemu: ${qemu[*]}"
t0=$(vm_now)
boot_s="" disk_s=""
# timeout(1) bounds QEMU's life even if this script is killed with SIGKILL.
exec {qout}< <(exec timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null 2>&1)
qpid=$!
while IFS= read -r line <&"$qout" || [ -n "$line" ]; do
  line=${line%$'\r'}
  printf '%s\n' "$line"
  printf '%s\n' "$line" >>"$log"
  case "$line" in
    *"VBLK-VM boot "*) boot_s=$(vm_elapsed "$t0" "$(vm_now)") ;;
    *"VBLK-VM disk "*) disk_s=$(vm_elapsed "$t0" "$(vm_now)") ;;
  esac
done
exec {qout}<&-
status=0
wait "$qpid" || status=$?
qpid=""
total_s=$(vm_elapsed "$t0" "$(vm_now)")

guest_rc=$(sed -n 's/^VBLK-VM done rc=\([0-9][0-9]*\)$/\1/p' "$log" | tail -1)
if [ "$status" = 124 ] || [ "$status" = 137 ]; then
  vm_log "timeout: QEMU killed after ${timeout_s}s"
  rc=124
elif [ -z "$guest_rc" ]; then
  vm_log "the guest ended without 'VBLK-VM done' (qemu status $status)"
  rc=125
else
  rc=$guest_rc
fi
echo "VBLK-HOST result rc=$rc qemu_status=$status boot_s=${boot_s:-none} disk_s=${disk_s:-none} total_s=$total_s"
exit "$rc"
