#!/usr/bin/env bash
# Split vs packed virtqueues, in process: `vblk bench` alternating the two rings round by round (so a
# change in machine load hits both alike), then the median of each figure per ring and queue depth.
#
#   scripts/bench/ring-compare.sh [ROUNDS] [DURATION] [QD...]     (defaults: 5 3s 1 32)
#
# Extra bench options go in $BENCH_ARGS (default: --driver null --rw randread --bs 4k).
# Prints one line per (qd, ring): median IOPS, p50/p99 latency in us, CPU us per request,
# notifications and kicks per request, over ROUNDS runs.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rounds=${1:-5} dur=${2:-3s}
shift $(( $# > 2 ? 2 : $# )) || true
qds=("$@")
[ ${#qds[@]} -gt 0 ] || qds=(1 32)
args=${BENCH_ARGS:---driver null --rw randread --bs 4k}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

num() {   # num JSON KEY -> the first number after "KEY":
  sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p" <<<"$1" | head -1
}
for qd in "${qds[@]}"; do
  for ((r = 1; r <= rounds; r++)); do
    for ring in split packed; do
      # shellcheck disable=SC2086  # BENCH_ARGS is a list of options
      j=$("$here/vblk" bench $args --qd "$qd" --duration "$dur" --ring "$ring" --json --progress off)
      lat=$(sed -n 's/.*"latency_us":{\([^}]*\)}.*/\1/p' <<<"$j")
      echo "$qd $ring $(num "$j" iops) $(num "{$lat" p50) $(num "{$lat" p99) $(num "$j" cpu_us_per_request)" \
        "$(num "$j" notifications_per_request) $(num "$j" kicks_per_request)" >>"$out"
      echo "round $r qd=$qd ring=$ring: $(tail -1 "$out")" >&2
    done
  done
done
printf '%-4s %-7s %10s %9s %9s %9s %9s %9s\n' qd ring iops p50_us p99_us cpu_us notif/req kicks/req
for qd in "${qds[@]}"; do
  for ring in split packed; do
    row=""
    for col in 3 4 5 6 7 8; do
      m=$(awk -v q="$qd" -v g="$ring" -v c="$col" '$1 == q && $2 == g { print $c }' "$out" | sort -g \
        | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
      row+=" $m"
    done
    # shellcheck disable=SC2086
    printf '%-4s %-7s %10.0f %9.1f %9.1f %9.2f %9.4f %9.4f\n' "$qd" "$ring" $row
  done
done
