#!/usr/bin/env bash
# Live migration of a running VM with a vhost-user-blk disk, between two QEMU processes on this
# host, each connected to its own backend daemon serving the same image.
#
#   migrate.sh [--exec "COMMAND"] [--vblk "COMMAND"] [--rounds N] [--mem SIZE] [--fio-size SIZE]
#              [--timeout S] [--keep]
#
#   --exec CMD     the backend daemon (default "<repo>/vblk serve"; "qemu-storage-daemon" for the
#                  reference), started twice by scripts/qsd/serve.sh on the same image
#   --vblk CMD     the vblk command whose "monitor" talks QMP to QEMU (default "<repo>/vblk")
#   --rounds N     migrations, back and forth between the two daemons (default 5)
#   --mem SIZE     guest memory, a shared memfd as vhost-user requires (default 512M)
#   --fio-size S   bytes each verified fio pass in the guest writes (default 16M)
#   --timeout S    the whole run is bounded by S seconds (default 1500)
#   --keep         keep the work directory (logs, consoles, image) and print its path
#
# The guest (scripts/vm/guest/init, job "migrate") runs fio with crc32c verification in a loop. Each
# round starts a QEMU with -incoming on the other daemon, migrates with QMP "migrate" over a UNIX
# socket, waits until the guest has finished a verified fio pass on the destination, and quits
# the source QEMU. After the last round the host writes the stop token into the image's last 4 KiB;
# the guest finishes its pass and powers off. Output lines for scripts:
#   VBLK-MIGRATE round=<n> from=<a|b> to=<a|b> status=completed total_ms=<n> downtime_ms=<n> setup_ms=<n>
#   VBLK-MIGRATE daemon=<a|b> log_on=<n> log_off=<n> hand_overs=<n>     (vblk's log lines, counted)
#   VBLK-MIGRATE result=pass|fail rounds=<n> iterations=<n> verify_errors=<n> reason=<...>
# Exit status 0 when every round completed and the guest finished with rc 0.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/lib.sh"

exe="$root/vblk serve" vblk="$root/vblk" rounds=5 mem=512M fio_size=16M timeout_s=1500 keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --exec) exe=$2; shift 2 ;;
    --vblk) vblk=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --mem) mem=$2; shift 2 ;;
    --fio-size) fio_size=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) vm_usage "$0"; exit 0 ;;
    *) vm_log "unknown option $1"; vm_usage "$0" >&2; exit 2 ;;
  esac
done
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || vm_die "--rounds must be a positive integer"
[[ "$timeout_s" =~ ^[1-9][0-9]*$ ]] || vm_die "--timeout must be a positive integer"

paths=$("$here/setup.sh") || vm_die "setup.sh failed"
kernel=$(sed -n 's/^kernel=//p' <<<"$paths")
initrd=$(sed -n 's/^initrd=//p' <<<"$paths")

workdir=$(mktemp -d "${TMPDIR:-/tmp}/vblk-migrate.XXXXXX")
deadline=$(( $(date +%s) + timeout_s ))
declare -A dpid=() qpid=()
result=fail reason=unfinished
# shellcheck disable=SC2317  # run by the EXIT trap
finish() {
  local p
  for p in "${qpid[@]}"; do vm_stop_pid "$p" 5 || true; done
  for p in "${dpid[@]}"; do "$root/scripts/qsd/stop.sh" "$p" >/dev/null 2>&1 || vm_stop_pid "$p" 10 || true; done
  if [ "$keep" = 1 ] || [ "$result" != pass ]; then
    vm_log "logs and images kept in $workdir"
  else
    rm -rf "$workdir"
  fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

left() { echo $(( deadline - $(date +%s) )); }
fail() { reason=$1; vm_log "error: $1"; echo "VBLK-MIGRATE result=fail rounds=${done_rounds:-0} reason=$1"; exit 1; }

# QMP through vblk's own monitor client: qmp SOCKET COMMAND [key=value...] prints the reply.
qmp() { local s=$1; shift; timeout 60 $vblk monitor --compact "$s" "$@"; }
json_str() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" <<<"$2"; }
json_num() { sed -n "s/.*\"$1\":\\([0-9]*\\).*/\\1/p" <<<"$2"; }

# ---------------------------------------------------------------- the two daemons
img="$workdir/disk.img"
truncate -s 256M "$img"
img_bytes=$(stat -c %s "$img")
for d in a b; do
  # shellcheck disable=SC2086  # --exec is split on spaces by serve.sh
  dpid[$d]=$("$root/scripts/qsd/serve.sh" --exec "$exe" --socket "$workdir/$d.sock" --image "$img" \
    --log "$workdir/daemon-$d.log") || fail "daemon $d did not start (see $workdir/daemon-$d.log)"
done

# ---------------------------------------------------------------- QEMU
n_qemu=0
start_qemu() {   # start_qemu DAEMON [incoming-uri] -> sets $q (its name)
  n_qemu=$((n_qemu + 1))
  q="q$n_qemu"
  local extra=()
  [ -z "${2:-}" ] || extra=(-incoming "$2")
  # shellcheck disable=SC2054  # commas belong to QEMU option values
  local cmd=(qemu-system-x86_64
    -accel tcg -cpu max -smp 1 -m "$mem"
    -object "memory-backend-memfd,id=mem,size=$mem,share=on" -numa node,memdev=mem
    -chardev "socket,id=vu,path=$workdir/$1.sock"
    -device "vhost-user-blk-pci,chardev=vu,num-queues=1"
    -kernel "$kernel" -initrd "$initrd"
    -append "console=ttyS0 panic=-1 rdinit=/init quiet vblk.job=migrate vblk.queues=1 vblk.fio_size=$fio_size vblk.secs=$timeout_s"
    -nographic -nodefaults -no-user-config -no-reboot -serial "file:$workdir/$q.console"
    -qmp "unix:$workdir/$q.qmp,server=on,wait=off" "${extra[@]}")
  vm_log "$q on daemon $1: ${cmd[*]}"
  timeout --kill-after=10 "$(left)" "${cmd[@]}" </dev/null >"$workdir/$q.out" 2>&1 &
  qpid[$q]=$!
  local i
  for ((i = 0; i < 300; i++)); do
    [ -S "$workdir/$q.qmp" ] && vm_socket_listening "$workdir/$q.qmp" && return 0
    kill -0 "${qpid[$q]}" 2>/dev/null || fail "$q exited at start: $(tail -3 "$workdir/$q.out" | tr '\n' ' ')"
    sleep 0.1
  done
  fail "$q: no QMP socket after 30 s"
}
consoles() { cat "$workdir"/q*.console 2>/dev/null | tr -d '\r'; }
iterations() { consoles | grep -c '^VBLK-VM migrate-iter' || true; }
wait_console() {   # wait_console PATTERN SECONDS WHAT
  local end=$(( $(date +%s) + $2 ))
  until consoles | grep -q "$1"; do
    [ "$(date +%s)" -lt "$end" ] || fail "$3: not seen within $2 s"
    [ "$(left)" -gt 0 ] || fail "$3: --timeout reached"
    sleep 1
  done
}

start_qemu a
src=$q src_d=a
wait_console '^VBLK-VM migrate-iter n=1 ' 600 "the guest's first verified fio pass"

done_rounds=0
for ((r = 1; r <= rounds; r++)); do
  if [ "$src_d" = a ]; then dst_d=b; else dst_d=a; fi
  mig="$workdir/mig$r.sock"
  start_qemu "$dst_d" "unix:$mig"
  dst=$q
  [ "$(json_str status "$(qmp "$workdir/$dst.qmp" query-status)")" = inmigrate ] || fail "round $r: $dst is not waiting for a migration"
  qmp "$workdir/$src.qmp" migrate-set-parameters max-bandwidth=4294967296 downtime-limit=300 >/dev/null
  before=$(iterations)
  t0=$(vm_now)
  reply=$(qmp "$workdir/$src.qmp" migrate "uri=unix:$mig")
  case "$reply" in *'"return"'*) ;; *) fail "round $r: migrate: $reply" ;; esac
  status=""
  until [ "$status" = completed ]; do
    info=$(qmp "$workdir/$src.qmp" query-migrate)
    status=$(json_str status "$info")
    case "$status" in failed|cancelled) fail "round $r: migration $status: $info" ;; esac
    [ "$(left)" -gt 0 ] || fail "round $r: migration still $status at --timeout"
    [ "$status" = completed ] || sleep 0.5
  done
  echo "VBLK-MIGRATE round=$r from=$src_d to=$dst_d status=completed total_ms=$(json_num total-time "$info")" \
    "downtime_ms=$(json_num downtime "$info") setup_ms=$(json_num setup-time "$info") secs=$(vm_elapsed "$t0" "$(vm_now)")"
  # The destination runs the guest on; the source is done.
  # The source reports completed once it sent everything; the destination may still be loading.
  i=0
  until [ "$(json_str status "$(qmp "$workdir/$dst.qmp" query-status)")" = running ]; do
    i=$((i + 1))
    [ "$i" -le 120 ] || fail "round $r: $dst is not running 60 s after the migration completed"
    sleep 0.5
  done
  qmp "$workdir/$src.qmp" quit >/dev/null || true
  vm_stop_pid "${qpid[$src]}" 30 || fail "round $r: the source QEMU did not quit"
  unset "qpid[$src]"
  # A verified fio pass must finish on the destination (the pass that spanned the hand-over counts).
  want=$((before + 1))
  wait_console "^VBLK-VM migrate-iter n=$want " 600 "round $r: a verified pass on the destination"
  src=$dst src_d=$dst_d
  done_rounds=$r
done

# Stop token into the last 4 KiB (O_DIRECT, as the guest reads it), then the guest powers off.
{ printf 'VBLK-STOP'; head -c 4087 /dev/zero; } | dd of="$img" bs=4096 seek=$(( img_bytes / 4096 - 1 )) \
  iflag=fullblock conv=notrunc oflag=direct status=none
wait_console '^VBLK-VM done rc=' 600 "the guest's end"
vm_stop_pid "${qpid[$src]}" 30 || true
unset "qpid[$src]"

for d in a b; do
  "$root/scripts/qsd/stop.sh" "${dpid[$d]}" >/dev/null 2>&1 || true
  unset "dpid[$d]"
  l="$workdir/daemon-$d.log"
  echo "VBLK-MIGRATE daemon=$d log_on=$(grep -c 'dirty logging on' "$l" || true)" \
    "log_off=$(grep -c 'dirty logging off' "$l" || true) hand_overs=$(grep -c 'handed over: GET_VRING_BASE' "$l" || true)"
done
consoles | grep '^VBLK-VM ' || true
iters=$(iterations)
verr=$(consoles | grep '^VBLK-VM migrate-iter' | grep -vc ' fio_rc=0 err=0 ' || true)
guest_rc=$(consoles | sed -n 's/^VBLK-VM done rc=\([0-9]*\)$/\1/p' | tail -1)
if [ "$guest_rc" = 0 ] && [ "$verr" = 0 ] && [ "$done_rounds" = "$rounds" ]; then
  result=pass reason=none
else
  result=fail reason="guest-rc-$guest_rc"
fi
echo "VBLK-MIGRATE result=$result rounds=$done_rounds iterations=$iters verify_errors=$verr reason=$reason"
[ "$keep" = 0 ] || vm_log "logs and images kept in $workdir"
[ "$result" = pass ]
