# shellcheck shell=bash
# Shared helpers for scripts/vm/*.sh and scripts/qsd/*.sh (sourced, not run).

vm_log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
vm_die() { vm_log "error: $*"; exit 1; }
# Prints the comment block at the top of script $1 (its usage).
vm_usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$1"; }

# The cache directory: $VBLK_VM_CACHE, else $XDG_CACHE_HOME/vblk-vm, else ~/.cache/vblk-vm.
vm_cache_dir() {
  if [ -n "${VBLK_VM_CACHE:-}" ]; then echo "$VBLK_VM_CACHE"
  elif [ -n "${XDG_CACHE_HOME:-}" ]; then echo "$XDG_CACHE_HOME/vblk-vm"
  else echo "${HOME:-/root}/.cache/vblk-vm"
  fi
}

# Seconds since the epoch with milliseconds, e.g. 1700000000.123
vm_now() { date +%s.%3N; }
# Difference b - a of two vm_now values, with one decimal.
vm_elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

# True when a UNIX socket is listening on the absolute path $1 (read from /proc/net/unix:
# flag 00010000 is __SO_ACCEPTCON, set by listen()). Does not connect.
vm_socket_listening() {
  awk -v p="$1" '$NF == p && $4 == "00010000" { found = 1 } END { exit !found }' /proc/net/unix
}

# Stops process $1: SIGTERM, then SIGKILL after $2 seconds (default 10). Returns once it is gone.
vm_stop_pid() {
  local pid=$1 grace=${2:-10} i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < grace * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  vm_log "pid $pid ignored SIGTERM for ${grace}s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  return 1
}

# Converts a size with an optional K/M/G/T suffix (powers of 1024) to bytes: vm_bytes 1G -> 1073741824
vm_bytes() {
  local n=${1%[KkMmGgTt]} mult=1
  [[ "$n" =~ ^[0-9]+$ ]] || return 1
  case "$1" in
    *[Kk]) mult=1024 ;; *[Mm]) mult=$((1024 ** 2)) ;; *[Gg]) mult=$((1024 ** 3)) ;; *[Tt]) mult=$((1024 ** 4)) ;;
  esac
  echo $((n * mult))
}
