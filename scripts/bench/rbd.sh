#!/usr/bin/env bash
# RBD side by side: `vblk serve` vs qemu-storage-daemon, each exporting the same Ceph RBD image
# (driver=rbd, librbd's defaults for both: no cache option is given, so both run with librbd's
# rbd_cache as the conf sets it) through vhost-user-blk with one IoThread, each driven by the same
# client (`vblk bench --target vhost-user:SOCKET`, as the other bench scripts). Per round and backend:
# WARMUP seconds (default 5) of 4 KiB random reads and writes at QD32, not reported (the JVM compiles
# vblk's request path in its first seconds; qsd gets the same), then 4 KiB random reads at QD1 and
# QD32, then 4 KiB random writes at QD1 and QD32, DURATION seconds each.
# The backend order alternates from round to round; the report gives each round's figures, then the
# median over the rounds of every figure.
#
#   scripts/bench/rbd.sh [--rounds N] [--duration S] [--size MIB] [--conf CEPH_CONF --pool P] [--dir DIR]
#                        [--footprint NODES] [--warmup S]
#
# Then (unless --footprint 0) each backend's footprint: one daemon serving 1 and then NODES (default 4)
# images, one rbd node and export each: its threads, resident memory and TCP connections to the
# cluster after a short workload (FOOTPRINT lines; the README's note on scale). --rounds 0 runs only that.
#
# Without --conf the script starts the tests' throwaway single-node cluster (one monitor, one OSD on
# memstore, cephx, pool size 1: drivers/src/test/java/io/vblk/drivers/rbd/CephCluster.java, run from
# this checkout's build; build it first with ./mvn25 -B -q -pl tools -am package -DskipTests) and stops
# it at the end. With --conf it uses that cluster and creates (and removes) an image in pool P there.
# The image (default 256 MiB) is written in full before the first round, so reads hit real objects.
# Needs qemu-storage-daemon with its rbd module (Debian: qemu-system-common, qemu-block-extra) and rbd
# (ceph-common); scripts/install-test-deps.sh installs them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=3 duration=10 size=256 conf="" pool=rbd dir="" nodes=4 warmup=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --conf) conf=$2; shift 2 ;;
    --pool) pool=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --footprint) nodes=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    *) echo "usage: $0 [--rounds N] [--duration S] [--size MIB] [--conf CEPH_CONF --pool P] [--dir DIR] [--footprint NODES] [--warmup S]" >&2; exit 2 ;;
  esac
done
for p in qemu-storage-daemon rbd python3; do
  command -v "$p" >/dev/null || { echo "$p is missing (Debian: qemu-system-common, ceph-common, python3; scripts/install-test-deps.sh)" >&2; exit 1; }
done
ls /usr/lib/*/qemu/block-rbd.so >/dev/null 2>&1 \
  || { echo "qemu-storage-daemon's rbd module is missing (Debian: qemu-block-extra; scripts/install-test-deps.sh)" >&2; exit 1; }
# Build the launcher's jar now if it needs it (./vblk builds on first use), never while measuring:
# the later calls run the jar as it is.
"$here/vblk" --version >/dev/null
export VBLK_NO_BUILD=1
[ -n "$dir" ] || dir=$(mktemp -d)
mkdir -p "$dir"
image="vblk-bench-$$"
pids=() cluster_pid=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -z "$conf" ] || rbd -c "$conf" rm --no-progress "$pool/$image" >/dev/null 2>&1 || true
  if [ -n "$cluster_pid" ]; then
    kill "$cluster_pid" 2>/dev/null || true   # its shutdown hook stops the monitor and the OSD
    wait "$cluster_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
. "$here/scripts/bench/lib.sh"

if [ -z "$conf" ]; then
  . "$here/scripts/jdk25-env.sh"
  cp="$here/tools/target/classes:$(cat "$here/tools/target/test-classpath.txt" 2>/dev/null)"
  [ -f "$here/tools/target/test-classpath.txt" ] && [ -f "$here/drivers/target/vblk-drivers-0.1.0-SNAPSHOT-tests.jar" ] \
    || { echo "no test build to start a cluster from; run: ./mvn25 -B -q -pl tools -am package -DskipTests (or pass --conf)" >&2; exit 1; }
  java --enable-native-access=ALL-UNNAMED -cp "$cp" io.vblk.drivers.rbd.CephCluster "$dir/ceph" \
    </dev/null >"$dir/cluster.out" 2>&1 & cluster_pid=$!
  for _ in $(seq 1 1800); do
    grep -q '^ceph-conf=' "$dir/cluster.out" 2>/dev/null && break
    kill -0 "$cluster_pid" 2>/dev/null || { echo "the cluster did not start:" >&2; tail -50 "$dir/cluster.out" >&2; exit 1; }
    sleep 0.1
  done
  conf=$(sed -n 's/^ceph-conf=//p' "$dir/cluster.out")
  [ -n "$conf" ] || { echo "the cluster did not start within 180 s" >&2; tail -50 "$dir/cluster.out" >&2; exit 1; }
  echo "cluster: $conf"
fi

rbd -c "$conf" create --size "${size}M" "$pool/$image"
rbd -c "$conf" bench --io-type write --io-size 4M --io-threads 4 --io-total "${size}M" --io-pattern seq \
  "$pool/$image" >"$dir/fill.log" 2>&1
echo "image: $pool/$image, ${size} MiB, written in full"

run_one() { # backend round
  local b=$1 r=$2 sock="$dir/$1-$2.sock" pid
  local bd=(--blockdev "driver=rbd,node-name=r,pool=$pool,image=$image,conf=$conf"
            --object iothread,id=io0
            --export "type=vhost-user-blk,id=e,node-name=r,addr.type=unix,addr.path=$sock,writable=on,iothread=io0")
  start_backend "$b" "$dir/$b-$r.log" "${bd[@]}"
  wait_sock "$sock"
  [ "$warmup" = 0 ] || "$here/vblk" bench --target "vhost-user:$sock" --rw randrw --qd 32 --bs 4k \
    --duration "${warmup}s" >/dev/null
  for rw in randread randwrite; do
    for qd in 1 32; do
      "$here/vblk" bench --target "vhost-user:$sock" --rw $rw --qd $qd --bs 4k --duration "${duration}s" --json \
        >"$dir/$b-$r-$rw-$qd.json"
      { printf 'RESULT backend=%s round=%s test=%s-qd%s ' "$b" "$r" "$rw" "$qd"
        bench_figures "$dir/$b-$r-$rw-$qd.json"
      } | tee -a "$dir/results.txt"
    done
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true   # the image's exclusive lock goes with the process
}

# Footprint (the README's note on scale): one daemon serving 1 and then NODES images (one rbd node and
# one export each, all on one IoThread), idle after one connection; its threads, resident memory and
# TCP connections to the cluster. Same for qemu-storage-daemon.
footprint() { # backend nodes
  local b=$1 n=$2 args=() i pid sock
  for i in $(seq 1 "$n"); do
    rbd -c "$conf" create --size 16M "$pool/$image-fp$i" 2>/dev/null || true
    sock="$dir/fp-$b-$n-$i.sock"
    args+=(--blockdev "driver=rbd,node-name=r$i,pool=$pool,image=$image-fp$i,conf=$conf"
           --export "type=vhost-user-blk,id=e$i,node-name=r$i,addr.type=unix,addr.path=$sock,writable=on,iothread=io0")
  done
  start_backend "$b" "$dir/fp-$b-$n.log" --object iothread,id=io0 "${args[@]}"
  pids+=("$pid")
  wait_sock "$dir/fp-$b-$n-$n.sock"
  # one short verifying run on the last export, so every layer has done I/O
  "$here/vblk" bench --target "vhost-user:$dir/fp-$b-$n-$n.sock" --rw randrw --qd 8 --bs 4k --requests 200 >/dev/null
  # ./vblk execs java, so $pid is the daemon itself for both backends
  printf 'FOOTPRINT backend=%s rbd_nodes=%s threads=%s rss_mib=%s tcp_connections=%s\n' "$b" "$n" \
    "$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")" \
    "$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")" \
    "$(ss -tnp 2>/dev/null | grep -c "pid=$pid,")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then order="vblk qsd"; else order="qsd vblk"; fi
  for b in $order; do run_one "$b" "$r"; done
done

if [ "$nodes" -gt 0 ]; then
  for b in vblk qsd; do footprint "$b" 1; footprint "$b" "$nodes"; done
  for i in $(seq 1 "$nodes"); do rbd -c "$conf" rm --no-progress "$pool/$image-fp$i" >/dev/null 2>&1 || true; done
fi
[ "$rounds" -gt 0 ] || exit 0
echo "medians over $rounds rounds (${duration} s per test, after ${warmup} s of warm-up):"
python3 - "$dir/results.txt" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    m = re.match(r"RESULT backend=(\S+) round=\d+ test=(\S+) iops=(\S+) p50_us=(\S+) p99_us=(\S+)", line)
    if m:
        rows.setdefault((m[2], m[1]), []).append(tuple(float(x) for x in m.group(3, 4, 5)))
print("| test | backend | IOPS | p50 us | p99 us | rounds |")
print("|---|---|---:|---:|---:|---:|")
for (test, b), v in sorted(rows.items()):
    med = [statistics.median(x[i] for x in v) for i in range(3)]
    print("| %s | %s | %.0f | %.1f | %.1f | %d |" % (test, b, med[0], med[1], med[2], len(v)))
PY
