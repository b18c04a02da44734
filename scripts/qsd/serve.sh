#!/usr/bin/env bash
# Starts a vhost-user-blk backend in the background and prints its pid on stdout once the socket
# listens. The reference backend is qemu-storage-daemon; any program taking the same options (such
# as `vblk serve`) can be started instead with --exec.
#
#   serve.sh --socket PATH (--image FILE [--size SIZE] [--format raw|qcow2] | --null SIZE) [--queues N]
#            [--aio native|io_uring|threads] [--direct on|off] [--qmp PATH] [--log FILE]
#            [--exec "COMMAND"] [--wait SECONDS]
#
#   --image FILE   export a raw file (created sparse with --size, default 1G, when missing)
#   --format F     raw (default) or qcow2: a qcow2 node over the file node (the image created with
#                  qemu-img create -f qcow2 when missing)
#   --null SIZE    export a null-co node of SIZE bytes (suffixes K, M, G, T: powers of 1024) (reads return no defined data: not for
#                  verify jobs)
#   --queues N     num-queues of the export (default 1)
#   --aio, --direct  aio= and cache.direct= of a file node (default native, on)
#   --qmp PATH     also open a QMP monitor on this UNIX socket (qemu-storage-daemon only)
#   --log FILE     the daemon's stdout and stderr (default: PATH.log)
#   --exec CMD     the daemon command (default qemu-storage-daemon); split on spaces
#   --wait S       how long to wait for the socket to listen (default 20)
#
# Stop it with scripts/qsd/stop.sh PID.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/../vm/lib.sh"

sock="" image="" size=1G format=raw null="" queues=1 aio=native direct=on qmp="" log="" exe=qemu-storage-daemon wait_s=20
while [ $# -gt 0 ]; do
  case "$1" in
    --socket) sock=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --format) format=$2; shift 2 ;;
    --null) null=$2; shift 2 ;;
    --queues) queues=$2; shift 2 ;;
    --aio) aio=$2; shift 2 ;;
    --direct) direct=$2; shift 2 ;;
    --qmp) qmp=$2; shift 2 ;;
    --log) log=$2; shift 2 ;;
    --exec) exe=$2; shift 2 ;;
    --wait) wait_s=$2; shift 2 ;;
    -h|--help) vm_usage "$0"; exit 0 ;;
    *) vm_die "unknown option $1 (see --help)" ;;
  esac
done
[ -n "$sock" ] || vm_die "--socket PATH is required"
[ -n "$image" ] || [ -n "$null" ] || vm_die "one of --image FILE or --null SIZE is required"
[ -z "$image" ] || [ -z "$null" ] || vm_die "--image and --null exclude each other"
[[ "$queues" =~ ^[1-9][0-9]*$ ]] || vm_die "--queues must be a positive integer, got '$queues'"
[ "$format" = raw ] || [ "$format" = qcow2 ] || vm_die "--format accepts raw or qcow2, got '$format'"

# /proc/net/unix shows the path as bound: use absolute paths throughout.
abspath() { local d; d=$(cd "$(dirname "$1")" && pwd) || vm_die "no directory for $1"; echo "$d/$(basename "$1")"; }
sock=$(abspath "$sock")
log=${log:-$sock.log}
rm -f "$sock"

if [ -n "$image" ]; then
  image=$(abspath "$image")
  if [ ! -e "$image" ] && [ "$format" = qcow2 ]; then
    qemu-img create -q -f qcow2 "$image" "$size" || vm_die "qemu-img create of $image failed (package qemu-utils)"
    vm_log "created qcow2 image $image ($size)"
  elif [ ! -e "$image" ]; then
    truncate -s "$size" "$image"
    vm_log "created sparse image $image ($size)"
  fi
  blockdev="driver=file,node-name=$([ "$format" = qcow2 ] && echo f0 || echo d0),filename=$image,cache.direct=$direct,aio=$aio"
else
  bytes=$(vm_bytes "$null") || vm_die "--null: bad size '$null'"
  blockdev="driver=null-co,node-name=d0,size=$bytes"
fi

read -r -a cmd <<<"$exe"
args=(--blockdev "$blockdev")
[ "$format" = raw ] || [ -n "$null" ] || args+=(--blockdev "driver=qcow2,node-name=d0,file=f0")
args+=(
      --export "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$sock,writable=on,num-queues=$queues")
if [ -n "$qmp" ]; then
  qmp=$(abspath "$qmp"); rm -f "$qmp"
  args+=(--chardev "socket,id=qmp0,path=$qmp,server=on,wait=off" --monitor chardev=qmp0)
fi

vm_log "starting: ${cmd[*]} ${args[*]}"
# setsid: the daemon does not get the caller's terminal signals; its output goes to the log.
setsid "${cmd[@]}" "${args[@]}" </dev/null >"$log" 2>&1 &
pid=$!

deadline=$(( $(date +%s) + wait_s ))
until vm_socket_listening "$sock"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    st=0; wait "$pid" 2>/dev/null || st=$?
    cat "$log" >&2
    vm_die "backend exited (status $st) before listening on $sock"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    cat "$log" >&2
    vm_stop_pid "$pid" 5 || true
    vm_die "backend did not listen on $sock within ${wait_s}s"
  fi
  sleep 0.05
done
if [ -n "$qmp" ]; then
  until vm_socket_listening "$qmp"; do
    kill -0 "$pid" 2>/dev/null || vm_die "backend exited before its QMP socket listened"
    [ "$(date +%s)" -lt "$deadline" ] || vm_die "QMP socket $qmp did not listen within ${wait_s}s"
    sleep 0.05
  done
fi
echo "$pid"
