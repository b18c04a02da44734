#!/usr/bin/env bash
# NBD export benchmark: vblk's NBD export against qemu-nbd over the same raw image, driven by the
# same client (qemu-img bench: 4 KiB requests at queue depth 32, sequential offsets), alternating
# server by server for ROUNDS rounds. Both export over a UNIX socket with the page cache (vblk:
# file driver aio=threads on an IoThread; qemu-nbd --cache=writeback). Needs qemu-utils.
# Usage: scripts/nbd-bench.sh [ROUNDS] [COUNT]   (defaults 3, 100000)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
rounds=${1:-3}
count=${2:-100000}
dir=$(mktemp -d)
trap 'kill $(cat "$dir/vblk.pid") 2>/dev/null || true; kill $(cat "$dir/qnbd.pid") 2>/dev/null || true; rm -rf "$dir"' EXIT
truncate -s 1G "$dir/img.raw"
dd if=/dev/urandom of="$dir/img.raw" bs=1M count=1024 conv=notrunc status=none
"$here/vblk" serve --blockdev "driver=file,node-name=d0,filename=$dir/img.raw" --object iothread,id=io0 \
  --nbd-server "addr.type=unix,addr.path=$dir/vblk.sock" \
  --export type=nbd,id=e0,node-name=d0,name=disk,writable=on,iothread=io0 >"$dir/vblk.log" 2>&1 &
echo $! >"$dir/vblk.pid"
qemu-nbd --fork --persistent -e 8 --pid-file "$dir/qnbd.pid" -k "$dir/qnbd.sock" -f raw -x disk --cache=writeback "$dir/img.raw"
for _ in $(seq 1 120); do grep -q 'ready' "$dir/vblk.log" && break; sleep 1; done
grep -q 'ready' "$dir/vblk.log" || { cat "$dir/vblk.log"; exit 1; }
bench() { # prints requests per second
  local t
  t=$(qemu-img bench -f raw -c "$count" -d 32 -s 4096 "nbd+unix:///disk?socket=$1" | sed -n 's/.*completed in \([0-9.]*\) seconds.*/\1/p')
  awk -v c="$count" -v t="$t" 'BEGIN { printf "%.0f\n", c / t }'
}
bench "$dir/vblk.sock" >/dev/null; bench "$dir/qnbd.sock" >/dev/null   # warm-up
for r in $(seq 1 "$rounds"); do
  echo "round $r: vblk $(bench "$dir/vblk.sock") req/s, qemu-nbd $(bench "$dir/qnbd.sock") req/s"
done
