#!/usr/bin/env bash
# Side-by-side benchmark: `vblk serve` vs qemu-storage-daemon, both exporting vhost-user-blk with an
# IoThread (qsd's strongest setting), both driven by the same client (`vblk bench --target
# vhost-user:SOCKET`), in one run, on the same image, unpinned AND pinned, reporting medians of
# alternating rounds. For the file case vblk runs twice (aio=native and aio=io_uring), and host fio
# (libaio, O_DIRECT, same file) runs in EVERY round with its defaults and batched
# (--iodepth_batch_submit=16 --iodepth_batch_complete_min=16): the disk's own figure drifts, so only
# ratios against fio's best setting in the same rounds mean anything. The order of the participants
# rotates from round to round.
#
#   scripts/bench/compare.sh [--quick] [--rounds N] [--duration S] [--pin both|split|none]
#                            [--dir DIR] [--image FILE] [--image-size MIB] [--only null|file]
#                            [--queues "1 2"] [--qds "1 32"] [--rws "randread randwrite"]
#                            [--out FILE.md] [--keep]
#
#   --quick        2 s per run, 1 queue, randread only (about 10 minutes); the full run takes about 60
#   --rounds N     rounds per case, at least 3 (default 3)
#   --duration S   seconds per measured run (default 5)
#   --pin both     (default) every case unpinned, then pinned
#     split        pinned only: client on CPU 0, the back-end (all its threads) on CPU 1, fio on both
#     none         unpinned only: client and back-end share the CPUs as the scheduler likes
#   --dir DIR      scratch directory for sockets, logs, raw results (default: a new mktemp dir,
#                  removed at exit unless --keep)
#   --image FILE   the raw image for the file case (default DIR/image.raw, written with zeros so
#                  every block is allocated and reads reach the disk)
#   --image-size   MiB of the image when it is created (default 1024)
#   --out FILE     also write the Markdown report there
#
# Per run it records IOPS, p50/p99 latency, the server's CPU per request (utime+stime from
# /proc/PID/stat over the run; fio: its own usr+sys), and the client's kicks and interrupts (call
# eventfd signals) per request. Every daemon started here is stopped on exit (trap).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

rounds=3 duration=5 pin=both dir="" image="" image_mib=1024 only="" out="" keep=0 quick=0
queues_list="1 2" qds="1 32" rws="randread randwrite"
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1; duration=2; queues_list="1"; rws="randread"; shift ;;
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
case "$pin" in both) pins="none split" ;; split|none) pins=$pin ;;
  *) echo "compare.sh: --pin both|split|none, got '$pin'" >&2; exit 2 ;; esac
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
place() { # PIN
  if [ "$1" = split ]; then cli_cpu="taskset -c 0"; srv_cpu="taskset -c 1"; fio_cpu="taskset -c 0,1"
  else cli_cpu=""; srv_cpu=""; fio_cpu=""; fi
}
clk_tck=$(getconf CLK_TCK)
# utime+stime of PID in clock ticks (fields 14 and 15 of /proc/PID/stat, counted after the ")"
# that ends the command name, which may hold spaces).
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

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

# start_backend NAME KIND(null|file) QUEUES AIO -> sets started_pid; socket at $dir/NAME.sock
start_backend() {
  local name=$1 kind=$2 q=$3 sock="$dir/$1.sock" bd
  rm -f "$sock"
  if [ "$kind" = null ]; then bd="driver=null-co,node-name=d0,size=1073741824"
  else bd="driver=file,node-name=d0,filename=$image,aio=$4,cache.direct=on"; fi
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

# record KIND WHO RW QD Q ROUND IOPS P50 P99 LOAD CPU_US_PER_REQ KICKS_PER_REQ IRQS_PER_REQ
record() { printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$pin" "$@" >> "$raw"; }

bench_one() { # KIND WHO SOCK RW QD Q ROUND SERVER_PID
  local j l c0 c1 cpu; l=$(load1); c0=$(cpu_ticks "$8")
  j=$(run_client "$3" "$4" "$5" "$6" "$duration") || { log "client failed against $2"; return 1; }
  c1=$(cpu_ticks "$8")
  [ "$(jq -r .ok <<<"$j")" = true ] || { log "client reported an error against $2: $(jq -r .error <<<"$j")"; return 1; }
  cpu=$(jq -r --argjson t "$((c1 - c0))" --argjson hz "$clk_tck" \
    'if .requests > 0 then $t / $hz * 1e6 / .requests else 0 end' <<<"$j")
  record "$1" "$2" "$4" "$5" "$6" "$7" "$(jq -r .iops <<<"$j")" "$(jq -r .latency_us.p50 <<<"$j")" \
    "$(jq -r .latency_us.p99 <<<"$j")" "$l" "$cpu" "$(jq -r .kicks_per_request <<<"$j")" \
    "$(jq -r .notifications_per_request <<<"$j")"
  log "$pin $1 $2 $4 qd=$5 q=$6 round $7: $(jq -r '"\(.iops|floor) IOPS p50 \(.latency_us.p50) us p99 \(.latency_us.p99) us"' <<<"$j") server CPU ${cpu} us/req (load $l)"
}

fio_one() { # WHO(fio|fio-batched) RW QD Q ROUND
  local j l k b extra=(); l=$(load1)
  k=read; [ "$2" = randwrite ] && k=write
  if [ "$1" = fio-batched ]; then
    b=$(( $3 < 16 ? $3 : 16 )) # a batch never exceeds the depth
    extra=(--iodepth_batch_submit="$b" --iodepth_batch_complete_min="$b")
  fi
  # shellcheck disable=SC2086
  j=$($fio_cpu fio --name=host --filename="$image" --ioengine=libaio --direct=1 --rw="$2" --bs=4k \
    --iodepth="$3" "${extra[@]}" --numjobs="$4" --group_reporting --time_based --runtime="$duration" \
    --lat_percentiles=1 --randrepeat=0 --output-format=json 2>/dev/null)
  record file "$1" "$2" "$3" "$4" "$5" "$(jq -r ".jobs[0].$k.iops" <<<"$j")" \
    "$(jq -r ".jobs[0].$k.lat_ns.percentile[\"50.000000\"] / 1000" <<<"$j")" \
    "$(jq -r ".jobs[0].$k.lat_ns.percentile[\"99.000000\"] / 1000" <<<"$j")" "$l" \
    "$(jq -r ".jobs[0] | if .$k.iops > 0 then (.usr_cpu + .sys_cpu) * 1e4 / .$k.iops else 0 end" <<<"$j")" "" ""
  log "$pin file $1 $2 qd=$3 q=$4 round $5: $(jq -r ".jobs[0].$k.iops|floor" <<<"$j") IOPS (load $l)"
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
log "pins=[$pins] rounds=$rounds duration=${duration}s queues=[$queues_list] qds=[$qds] rws=[$rws] kinds=[$kinds]; $(uptime)"
for pin in $pins; do
  place "$pin"
  for kind in $kinds; do
    for q in $queues_list; do
      # Participants: name, and for a daemon its socket and pid. All daemons of a group run side
      # by side (idle while another is measured), one client at a time.
      who=() declare_pids=()
      if [ "$kind" = null ]; then
        start_backend "vblk-$kind-$q" null "$q" -; declare_pids+=("$started_pid"); who+=(vblk)
        start_backend "qsd-$kind-$q" null "$q" -; declare_pids+=("$started_pid"); who+=(qsd)
      else
        start_backend "vblk-native-$q" file "$q" native; declare_pids+=("$started_pid"); who+=(vblk-native)
        start_backend "vblk-io_uring-$q" file "$q" io_uring; declare_pids+=("$started_pid"); who+=(vblk-io_uring)
        start_backend "qsd-$kind-$q" file "$q" native; declare_pids+=("$started_pid"); who+=(qsd)
      fi
      sock_of() { case "$1" in vblk) echo "$dir/vblk-$kind-$q.sock" ;; qsd) echo "$dir/qsd-$kind-$q.sock" ;;
        *) echo "$dir/$1-$q.sock" ;; esac; }
      n=${#who[@]}
      # Warm-up (discarded): the JIT of the vblk daemons, and the same treatment for qsd.
      for i in $(seq 0 $((n - 1))); do run_client "$(sock_of "${who[$i]}")" randread 32 "$q" 2 >/dev/null; done
      parts=("${who[@]}"); [ "$kind" = file ] && parts+=(fio fio-batched)
      np=${#parts[@]}
      for r in $(seq "$rounds"); do
        for rw in $rws; do
          for qd in $qds; do
            for k in $(seq 0 $((np - 1))); do # rotating order: round r starts at participant r-1
              w=${parts[$(( (k + r - 1) % np ))]}
              case "$w" in
                fio|fio-batched) fio_one "$w" "$rw" "$qd" "$q" "$r" ;;
                *) for i in $(seq 0 $((n - 1))); do [ "${who[$i]}" = "$w" ] && p=${declare_pids[$i]}; done
                   bench_one "$kind" "$w" "$(sock_of "$w")" "$rw" "$qd" "$q" "$r" "$p" ;;
              esac
            done
          done
        done
      done
      for p in "${declare_pids[@]}"; do stop_backend "$p"; done
    done
  done
done
elapsed=$(( $(date +%s) - start_s ))

report() {
  echo "## vblk serve vs qemu-storage-daemon over vhost-user-blk (pin: $pins)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) CPUs ($(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1)), kernel $(uname -r),"
  echo "$(qemu-storage-daemon --version | head -1), $(fio --version); rounds=$rounds, ${duration} s per run,"
  echo "medians over the rounds; participants in rotating order per round; run took ${elapsed} s;"
  echo "load average (1 min) during the runs: min $(cut -f11 "$raw" | sort -g | head -1), max $(cut -f11 "$raw" | sort -g | tail -1)."
  echo
  echo "vblk/qsd: IOPS ratio; p50 ratio at QD1; fio best: the better of host fio's default and batched"
  echo "settings in the same rounds (IOPS: higher; p50: lower); CPU: server CPU µs per request; kicks and"
  echo "irqs (call eventfd signals) per request as the client counted them."
  echo
  echo "| pin | backend | rw | QD | q | vblk IOPS | qsd IOPS | **vblk/qsd** | QD1 p50 vblk/qsd | vblk p50 µs | qsd p50 µs | fio best IOPS | **vblk/fio best** | QD1 p50 − fio best µs | CPU µs/req vblk / qsd / fio | kicks/req vblk / qsd | irqs/req vblk / qsd |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  awk -F'\t' '
    function median(key,   n, i, j, t, a) {
      n = cnt[key]; if (n == 0) return "";
      for (i = 1; i <= n; i++) a[i] = val[key, i];
      for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
      return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    function add(key, v) { if (v == "") return; cnt[key]++; val[key, cnt[key]] = v + 0 }
    {
      c = $1 SUBSEP $2 SUBSEP $4 SUBSEP $5 SUBSEP $6
      if (!(c in seen)) { seen[c] = 1; order[++nc] = c }
      if ($3 ~ /^vblk/ && !((c, $3) in vseen)) { vseen[c, $3] = 1; vl[c] = vl[c] " " $3 }
      add(c SUBSEP $3 SUBSEP "iops", $8); add(c SUBSEP $3 SUBSEP "p50", $9)
      add(c SUBSEP $3 SUBSEP "cpu", $12); add(c SUBSEP $3 SUBSEP "kicks", $13); add(c SUBSEP $3 SUBSEP "irqs", $14)
    }
    function m(c, w, x) { return median(c SUBSEP w SUBSEP x) }
    function f0(x) { return x == "" ? "–" : sprintf("%.0f", x) }
    function f1(x) { return x == "" ? "–" : sprintf("%.1f", x) }
    function f2(x) { return x == "" ? "–" : sprintf("%.2f", x) }
    function f3(x) { return x == "" ? "–" : sprintf("%.3f", x) }
    function ratio(a, b) { return (a == "" || b == "" || b == 0) ? "–" : sprintf("%.2f", a / b) }
    function best(a, b, hi) { if (a == "") return b; if (b == "") return a; return hi ? (a > b ? a : b) : (a < b ? a : b) }
    END {
      for (i = 1; i <= nc; i++) {
        c = order[i]; split(c, k, SUBSEP)
        nv = split(substr(vl[c], 2), vs, " ")
        for (v = 1; v <= nv; v++) {
          w = vs[v]
          vi = m(c, w, "iops"); qi = m(c, "qsd", "iops"); v5 = m(c, w, "p50"); q5 = m(c, "qsd", "p50")
          fi = best(m(c, "fio", "iops"), m(c, "fio-batched", "iops"), 1)
          f5 = best(m(c, "fio", "p50"), m(c, "fio-batched", "p50"), 0)
          fc = best(m(c, "fio", "cpu"), m(c, "fio-batched", "cpu"), 0)
          be = k[2] == "null" ? "null-co" : (w == "vblk-io_uring" ? "file io_uring" : "file native")
          printf "| %s | %s | %s | %s | %s | %s | %s | **%s** | %s | %s | %s | %s | **%s** | %s | %s / %s / %s | %s / %s | %s / %s |\n",
            (k[1] == "split" ? "pinned" : "unpinned"), be, k[3], k[4], k[5], f0(vi), f0(qi), ratio(vi, qi),
            (k[4] == 1 ? ratio(v5, q5) : "–"), f1(v5), f1(q5), f0(fi), (fi == "" ? "–" : ratio(vi, fi)),
            (k[4] == 1 && f5 != "" ? sprintf("%+.1f", v5 - f5) : "–"),
            f2(m(c, w, "cpu")), f2(m(c, "qsd", "cpu")), (k[2] == "file" ? f2(fc) : "–"),
            f3(m(c, w, "kicks")), f3(m(c, "qsd", "kicks")), f3(m(c, w, "irqs")), f3(m(c, "qsd", "irqs"))
        }
      }
    }' "$raw"
  echo
  echo "Commands (\$DIR: scratch directory, \$IMAGE: the raw image; the daemons of a group run side by side, one client at a time;"
  echo "pinned runs prefix the daemons with taskset -c 1, the client with taskset -c 0, fio with taskset -c 0,1):"
  echo
  echo '```'
  sort -u "$dir/commands.txt" | sed 's/^taskset -c [0-9,]* //' | sort -u
  echo "./vblk bench --target vhost-user:\$DIR/<daemon>.sock --rw RW --qd QD --queues Q --bs 4k --duration ${duration}s --json --progress off"
  [[ " $kinds " == *" file "* ]] && echo "fio --name=host --filename=\$IMAGE --ioengine=libaio --direct=1 --rw=RW --bs=4k --iodepth=QD [--iodepth_batch_submit=16 --iodepth_batch_complete_min=16] --numjobs=Q --group_reporting --time_based --runtime=$duration --lat_percentiles=1 --randrepeat=0 --output-format=json"
  echo '```'
  echo
  echo "Raw results (pin, kind, participant, rw, qd, queues, round, IOPS, p50 µs, p99 µs, load1, server CPU µs/req, kicks/req, irqs/req):"
  echo
  echo '```'
  cat "$raw"
  echo '```'
}
if [ -n "$out" ]; then report | tee "$out"; else report; fi
