#!/usr/bin/env bash
# qcow2 side by side: `vblk serve` vs qemu-storage-daemon, each exporting a qcow2 node (over a file
# node, aio=threads, page cache) through vhost-user-blk with one IoThread, each driven by the same
# client (`vblk bench --target vhost-user:SOCKET`). Per round and backend: a fresh qcow2 image
# (qemu-img create, 1 GiB), random 4 KiB writes at QD32 (every first write to a cluster allocates it),
# then random 4 KiB reads at QD32 over what is now allocated, then `qemu-img check`. The backend order
# alternates from round to round; the report gives each round's figures.
#
#   scripts/bench/qcow2.sh [--rounds N] [--duration S] [--dir DIR]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=2 duration=10 dir=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration S] [--dir DIR]" >&2; exit 2 ;;
  esac
done
for p in qemu-img qemu-storage-daemon; do
  command -v "$p" >/dev/null || { echo "$p is missing (Debian: qemu-utils, qemu-system-common; scripts/install-test-deps.sh)" >&2; exit 1; }
done
[ -n "$dir" ] || dir=$(mktemp -d)
mkdir -p "$dir"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

. "$here/scripts/bench/lib.sh"

run_one() { # backend round
  local b=$1 r=$2 img="$dir/$1-$2.qcow2" sock="$dir/$1-$2.sock" pid
  qemu-img create -q -f qcow2 "$img" 1G
  local bd=(--blockdev "driver=file,node-name=f,filename=$img" --blockdev "driver=qcow2,node-name=q,file=f"
            --object iothread,id=io0
            --export "type=vhost-user-blk,id=e,node-name=q,addr.type=unix,addr.path=$sock,writable=on,iothread=io0")
  start_backend "$b" "$dir/$b-$r.log" "${bd[@]}"
  wait_sock "$sock" 300
  for rw in randwrite randread; do
    "$here/vblk" bench --target "vhost-user:$sock" --rw $rw --qd 32 --bs 4k --duration "${duration}s" --json \
      >"$dir/$b-$r-$rw.json"
    printf '%s round %s %s: ' "$b" "$r" "$rw"
    bench_figures "$dir/$b-$r-$rw.json"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '%s round %s: qemu-img check: %s\n' "$b" "$r" "$(qemu-img check "$img" 2>&1 | head -1)"
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="vblk qsd"; else order="qsd vblk"; fi
  for b in $order; do run_one "$b" "$r"; done
done
