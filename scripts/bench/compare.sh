#!/usr/bin/env bash
# Side-by-side benchmark: `vblk serve` vs qemu-storage-daemon, both exporting vhost-user-blk, both
# driven by the same client (`vblk bench --target vhost-user:SOCKET`), in one run, on the same image,
# alternating the back-ends round by round (A B, then B A, ...) and reporting medians. For the file
# case, host fio (libaio, O_DIRECT, same file, same bs/qd) runs in the same rounds as the baseline.
#
#   scripts/bench/compare.sh [--quick] [--rounds N] [--duration S] [--pin split|none]
#                            [--dir DIR] [--image FILE] [--image-size MIB] [--only null|file]
#                            [--queues "1 2"] [--qds "1 32"] [--rws "randread randwrite"]
#                            [--out FILE.md]
#
#   --quick        2 s per run, 1 queue only (about 4 minutes); the full run takes about 14
#   --rounds N     rounds per back-end and case, at least 3 (default 3)
#   --duration S   seconds per measured run (default 5)
#   --pin split    (default) client on CPU 0, the back-end (all its threads) on CPU 1, fio on both;
#     none         no pinning: client and back-end share both CPUs as the scheduler likes
#   --dir DIR      scratch directory for sockets, logs, raw results (default: a new mktemp dir,
#                  removed at exit unless --keep)
#   --image FILE   the raw image for the file case (default DIR/image.raw, written with zeros so
#                  every block is allocated and reads reach the disk)
#   --image-size   MiB of the image when it is created (default 1024)
#   --out FILE     also write the Markdown report there
#
# Every daemon started here is stopped on exit (trap), whatever happens.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

rounds=3 duration=5 pin=split dir="" image="" image_mib=1024 only="" out="" keep=0 quick=0
queues_list="1 2" qds="1 32" rws="randread randwrite"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; duration=2; queues_list="1"; shift ;;
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --pin) pin=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --image) image=$2; shift 2 ;;
    --image-size) image_mib=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --queues) queues_list=$2; shift 2 ;;
    --qds) qds=$2; shift 2 ;;
    --rws) rws=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compare.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[0-9]+$ ]] && [ "$rounds" -ge 3 ] || { echo "compare.sh: --rounds must be >= 3" >&2; exit 2; }
case "$pin" in split|none) ;; *) echo "compare.sh: --pin split|none, got '$pin'" >&2; exit 2 ;; esac
for t in jq fio qemu-storage-daemon taskset awk; do
  command -v "$t" >/dev/null || { echo "compare.sh: needs $t on PATH" >&2; exit 2; }
done

if [ -z "$dir" ]; then dir=$(mktemp -d "${TMPDIR:-/tmp}/vblk-compare.XXXXXX"); else mkdir -p "$dir"; keep=1; fi
dir=$(cd "$dir" && pwd)
raw="$dir/results.tsv"; : > "$raw"
pids=()
cleanup() {
  local p
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  [ "$keep" = 1 ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# CPU placement. split: the back-end process (vblk's JVM with its IoThread, JIT and GC threads, or
# qemu-storage-daemon with its main loop and IoThread) gets CPU 1, the client (guest vCPU threads
# and its JVM) gets CPU 0, so neither steals the other's time slice. fio gets both (it plays
# client and back-end at once).
if [ "$pin" = split ]; then cli_cpu="taskset -c 0"; srv_cpu="taskset -c 1"; fio_cpu="taskset -c 0,1"
else cli_cpu=""; srv_cpu=""; fio_cpu=""; fi

# Build once, then never rebuild mid-run.
(cd "$here" && ./vblk --version >/dev/null)
export VBLK_NO_BUILD=1
vblk="$here/vblk"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }

wait_sock() { # PATH PID
  local i
  for i in $(seq 300); do
    [ -S "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# start_backend NAME KIND(null|file) QUEUES -> sets started_pid; socket at $dir/NAME.sock
start_backend() {
  local name=$1 kind=$2 q=$3 sock="$dir/$1.sock" bd
  rm -f "$sock"
  if [ "$kind" = null ]; then bd="driver=null-co,node-name=d0,size=1073741824"
  else bd="driver=file,node-name=d0,filename=$image,aio=native,cache.direct=on"; fi
  local args=(--blockdev "$bd" --object iothread,id=io0
    --export "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$sock,writable=on,num-queues=$q,iothread=io0")
  local cmd
  if [ "${name%%-*}" = vblk ]; then cmd=("$vblk" serve); else cmd=(qemu-storage-daemon); fi
  # shellcheck disable=SC2086
  $srv_cpu "${cmd[@]}" "${args[@]}" > "$dir/$name.log" 2>&1 &
  started_pid=$!
  pids+=("$started_pid")
  local line="$srv_cpu ${cmd[*]} ${args[*]}"; line=${line#" "}; line=${line//"$dir/"/'$DIR/'}
  [ -n "$image" ] && line=${line//"$image"/'$IMAGE'}
  echo "${line/"$vblk"/./vblk}" >> "$dir/commands.txt"
  wait_sock "$sock" "$started_pid" || { echo "compare.sh: $name did not listen; log:" >&2; cat "$dir/$name.log" >&2; exit 1; }
}

stop_backend() { # PID
  kill "$1" 2>/dev/null || true
  local i; for i in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  local p new=(); for p in "${pids[@]}"; do [ "$p" != "$1" ] && new+=("$p"); done; pids=("${new[@]:-}")
}

# run_client SOCK RW QD Q DURATION -> JSON on stdout
run_client() {
  # shellcheck disable=SC2086
  $cli_cpu "$vblk" bench --target "vhost-user:$1" --rw "$2" --qd "$3" --queues "$4" --bs 4k \
    --duration "${5}s" --json --progress off
}

# record KIND BACKEND RW QD Q ROUND IOPS P50 P99 LOAD
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pin" "$@" >> "$raw"; }

bench_one() { # KIND BACKEND SOCK RW QD Q ROUND
  local j l; l=$(load1)
  j=$(run_client "$3" "$4" "$5" "$6" "$duration") || { log "client failed against $2"; return 1; }
  [ "$(jq -r .ok <<<"$j")" = true ] || { log "client reported an error against $2: $(jq -r .error <<<"$j")"; return 1; }
  record "$1" "$2" "$4" "$5" "$6" "$7" "$(jq -r .iops <<<"$j")" "$(jq -r .latency_us.p50 <<<"$j")" \
    "$(jq -r .latency_us.p99 <<<"$j")" "$l"
  log "$1 $2 $4 qd=$5 q=$6 round $7: $(jq -r '"\(.iops|floor) IOPS p50 \(.latency_us.p50) us p99 \(.latency_us.p99) us"' <<<"$j") (load $l)"
}

fio_one() { # RW QD Q ROUND
  local j l k; l=$(load1)
  k=read; [ "$1" = randwrite ] && k=write
  # shellcheck disable=SC2086
  j=$($fio_cpu fio --name=host --filename="$image" --ioengine=libaio --direct=1 --rw="$1" --bs=4k \
    --iodepth="$2" --numjobs="$3" --group_reporting --time_based --runtime="$duration" \
    --lat_percentiles=1 --randrepeat=0 --output-format=json 2>/dev/null)
  record file fio "$1" "$2" "$3" "$4" "$(jq -r ".jobs[0].$k.iops" <<<"$j")" \
    "$(jq -r ".jobs[0].$k.lat_ns.percentile[\"50.000000\"] / 1000" <<<"$j")" \
    "$(jq -r ".jobs[0].$k.lat_ns.percentile[\"99.000000\"] / 1000" <<<"$j")" "$l"
  log "file fio $1 qd=$2 q=$3 round $4: $(jq -r ".jobs[0].$k.iops|floor" <<<"$j") IOPS (load $l)"
}

kinds="null file"; [ -n "$only" ] && kinds=$only
if [[ " $kinds " == *" file "* ]]; then
  [ -n "$image" ] || image="$dir/image.raw"
  if [ ! -e "$image" ]; then
    log "writing a ${image_mib} MiB image (every block allocated)"
    dd if=/dev/zero of="$image" bs=1M count="$image_mib" oflag=direct status=none
  fi
  image=$(cd "$(dirname "$image")" && pwd)/$(basename "$image")
fi

start_s=$(date +%s)
log "pin=$pin rounds=$rounds duration=${duration}s queues=[$queues_list] qds=[$qds] rws=[$rws] kinds=[$kinds]; $(uptime)"
for kind in $kinds; do
  for q in $queues_list; do
    start_backend "vblk-$kind-$q" "$kind" "$q"; vpid=$started_pid
    start_backend "qsd-$kind-$q" "$kind" "$q"; qpid=$started_pid
    vs="$dir/vblk-$kind-$q.sock" qs="$dir/qsd-$kind-$q.sock"
    # Warm-up (discarded): the JIT of the vblk daemon, and the same treatment for qsd.
    run_client "$vs" randread 32 "$q" 2 >/dev/null; run_client "$qs" randread 32 "$q" 2 >/dev/null
    for r in $(seq "$rounds"); do
      for rw in $rws; do
        for qd in $qds; do
          if [ $((r % 2)) = 1 ]; then
            bench_one "$kind" vblk "$vs" "$rw" "$qd" "$q" "$r"; bench_one "$kind" qsd "$qs" "$rw" "$qd" "$q" "$r"
          else
            bench_one "$kind" qsd "$qs" "$rw" "$qd" "$q" "$r"; bench_one "$kind" vblk "$vs" "$rw" "$qd" "$q" "$r"
          fi
          [ "$kind" = file ] && fio_one "$rw" "$qd" "$q" "$r"
        done
      done
    done
    stop_backend "$vpid"; stop_backend "$qpid"
  done
done
elapsed=$(( $(date +%s) - start_s ))

report() {
  echo "## vblk serve vs qemu-storage-daemon over vhost-user-blk (pin=$pin)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r),"
  echo "$(qemu-storage-daemon --version | head -1), $(fio --version); rounds=$rounds, ${duration} s per run,"
  echo "medians over the rounds; back-ends alternated A B / B A per round; run took ${elapsed} s;"
  echo "load average (1 min) during the runs: min $(cut -f11 "$raw" | sort -g | head -1), max $(cut -f11 "$raw" | sort -g | tail -1)."
  echo
  echo "| backend | rw | QD | queues | vblk IOPS | qsd IOPS | vblk/qsd | vblk p50 µs | qsd p50 µs | p50 vblk/qsd | vblk p99 µs | qsd p99 µs | fio IOPS | fio p50 µs | vblk % fio | qsd % fio |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '
    function median(key,   n, i, j, t, a) {
      n = cnt[key]; if (n == 0) return "";
      for (i = 1; i <= n; i++) a[i] = val[key, i];
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(key, v) { cnt[key]++; val[key, cnt[key]] = v + 0 }
    {
      c = $2 SUBSEP $4 SUBSEP $5 SUBSEP $6
      if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
      add(c SUBSEP $3 SUBSEP "iops", $8); add(c SUBSEP $3 SUBSEP "p50", $9); add(c SUBSEP $3 SUBSEP "p99", $10)
    }
    function f0(x) { return x == "" ? "–" : sprintf("%.0f", x) }
    function f1(x) { return x == "" ? "–" : sprintf("%.1f", x) }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2f", a / b) }
    function pct(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.0f %%", 100 * a / b) }
    END {
      for (i = 1; i <= nc; i++) {
        c = order[i]; split(c, k, SUBSEP)
        vi = median(c SUBSEP "vblk" SUBSEP "iops"); qi = median(c SUBSEP "qsd" SUBSEP "iops"); fi = median(c SUBSEP "fio" SUBSEP "iops")
        v5 = median(c SUBSEP "vblk" SUBSEP "p50"); q5 = median(c SUBSEP "qsd" SUBSEP "p50"); f5 = median(c SUBSEP "fio" SUBSEP "p50")
        v9 = median(c SUBSEP "vblk" SUBSEP "p99"); q9 = median(c SUBSEP "qsd" SUBSEP "p99")
        printf "| %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
          (k[1] == "null" ? "null-co" : "file native+direct"), k[2], k[3], k[4], f0(vi), f0(qi), ratio(vi, qi),
          f1(v5), f1(q5), ratio(v5, q5), f1(v9), f1(q9), f0(fi), f1(f5), pct(vi, fi), pct(qi, fi)
      }
    }' "$raw"
  echo
  echo "Commands (\$DIR: scratch directory, \$IMAGE: the raw image; both daemons of a group run side by side, one client at a time):"
  echo
  echo '```'
  sort -u "$dir/commands.txt"
  echo "$cli_cpu ./vblk bench --target vhost-user:\$DIR/<daemon>.sock --rw RW --qd QD --queues Q --bs 4k --duration ${duration}s --json --progress off" | sed 's/^ //'
  [[ " $kinds " == *" file "* ]] && echo "$fio_cpu fio --name=host --filename=\$IMAGE --ioengine=libaio --direct=1 --rw=RW --bs=4k --iodepth=QD --numjobs=Q --group_reporting --time_based --runtime=$duration --lat_percentiles=1 --randrepeat=0 --output-format=json" | sed 's/^ //'
  echo '```'
  echo
  echo "Raw results (pin, backend kind, daemon, rw, qd, queues, round, IOPS, p50 µs, p99 µs, load1):"
  echo
  echo '```'
  cat "$raw"
  echo '```'
}
if [ -n "$out" ]; then report | tee "$out"; else report; fi
