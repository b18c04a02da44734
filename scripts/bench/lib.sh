# Shell functions the bench scripts share; sourced (`. "$here/scripts/bench/lib.sh"`) after they set
# `here` (the checkout), `dir` (the work directory) and `pids=()` (what their cleanup kills).

# wait_sock SOCK [TENTHS]: waits up to TENTHS tenths of a second (default 600) for the socket SOCK.
wait_sock() {
  for _ in $(seq 1 "${2:-600}"); do [ -S "$1" ] && return 0; sleep 0.1; done
  echo "no socket $1" >&2; return 1
}

# start_backend BACKEND LOG ARGS...: starts `vblk serve ARGS` (BACKEND vblk) or
# `qemu-storage-daemon ARGS` (any other) in the background, output in LOG; its pid in $pid and pids.
start_backend() {
  local b=$1 log=$2
  shift 2
  if [ "$b" = vblk ]; then
    "$here/vblk" serve "$@" >"$log" 2>&1 & pid=$!
  else
    qemu-storage-daemon "$@" >"$log" 2>&1 & pid=$!
  fi
  pids+=("$pid")
}

# bench_figures JSON: the iops and latency of a `vblk bench --json` result, on one line; the file
# itself when it is no result.
bench_figures() {
  python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print("iops=%.0f p50_us=%.1f p99_us=%.1f" % (j["iops"], j["latency_us"]["p50"], j["latency_us"]["p99"]))' \
    "$1" 2>/dev/null || { echo; cat "$1"; }
}
