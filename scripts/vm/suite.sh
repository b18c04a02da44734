#!/usr/bin/env bash
# The real-VM test suite: boots the test guest on a vhost-user-blk backend and checks the disk.
#
#   suite.sh [--exec "COMMAND"] [--jobs JOBS] [--timeout S] [--workdir DIR] [--keep]
#            [--only q1|q2|restart|live|crash|packed|qcow2[,...]]
#
#   --exec CMD    the backend, started by scripts/qsd/serve.sh with qemu-storage-daemon's options
#                 (default qemu-storage-daemon; e.g. --exec "./vblk serve")
#   --jobs JOBS   guest jobs of the q1 and q2 tests (default fio-verify,randrw,flush)
#   --timeout S   per-boot timeout (default 300)
#   --workdir D   where images, sockets and logs go (default: a new directory in the VM cache,
#                 removed at the end unless a test failed or --keep is given). Must not be tmpfs
#                 (the backend opens the image with O_DIRECT).
#   --only LIST   run only these tests (default q1,q2,restart)
#
# Tests:
#   q1       1 queue:  check (size, queue count) + JOBS on a fresh 1 GiB image
#   q2       2 queues: the same; fio-verify also checks that both queues completed requests
#   restart  write-marker, stop the backend, start a new one on the same image, read-marker
#   live     (not in the default set) the backend is killed with SIGKILL while the guest runs
#            random reads, and restarted; QEMU reconnects (chardev reconnect=1) and the guest's
#            randrw and fio-verify jobs must still pass
#   packed   (not in the default set) 2 queues with packed virtqueues (vhost-user-blk-pci
#            packed=on): check + JOBS, as q2; the backend's log must say it runs packed rings
#   qcow2    (not in the default set) 1 queue on a qcow2 node (a fresh 1 GiB image from qemu-img
#            create -f qcow2, served through the page cache): check + JOBS; then, the backend
#            stopped, qemu-img check must find no errors in the image
#   crash    (not in the default set) crash recovery: while the guest runs fio verify jobs that
#            write (sequential 1 MiB at QD4, then random 4-64 KiB at QD16), the backend is killed
#            with SIGKILL and restarted on the same socket and image 10 times, about every 1.5 s;
#            QEMU reconnects and hands the inflight buffer to each new backend; the guest must
#            finish with 0 verify errors and no request left hanging (its timeout)
#
# Prints the guest console of each boot, one line per test
#   VBLK-SUITE test=<name> status=pass|fail rc=<n> secs=<s>
# and a closing line "N passed, M failed". Exit status 0 when all passed.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/lib.sh"
serve="$here/../qsd/serve.sh"

exe=qemu-storage-daemon jobs=fio-verify,randrw,flush timeout_s=300 workdir="" keep=0 only=q1,q2,restart
while [ $# -gt 0 ]; do
  case "$1" in
    --exec) exe=$2; shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --timeout) timeout_s=$2; shift 2 ;;
    --workdir) workdir=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --only) only=$2; shift 2 ;;
    -h|--help) vm_usage "$0"; exit 0 ;;
    *) vm_die "unknown option $1 (see --help)" ;;
  esac
done

"$here/setup.sh" >/dev/null
if [ -z "$workdir" ]; then
  mkdir -p "$(vm_cache_dir)"
  workdir=$(mktemp -d "$(vm_cache_dir)/run.XXXXXX")
  own_workdir=1
else
  mkdir -p "$workdir"
  workdir=$(cd "$workdir" && pwd)
  own_workdir=0
fi

pids=()
stop_backends() {
  local p
  for p in "${pids[@]}"; do vm_stop_pid "$p" 10 || true; done
  pids=()
}
failed=0 passed=0
finish() {
  stop_backends
  if [ "$own_workdir" = 1 ] && [ "$keep" = 0 ] && [ "$failed" = 0 ]; then
    rm -rf "$workdir"
  else
    vm_log "logs and images kept in $workdir"
  fi
}
trap finish EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start_backend() {   # start_backend NAME QUEUES IMAGE [serve.sh options...] -> pid on stdout
  local name=$1 q=$2 img=$3; shift 3
  "$serve" --exec "$exe" --socket "$workdir/$name.sock" --image "$img" --size 1G --queues "$q" \
    --log "$workdir/$name.backend.log" "$@"
}

record() {   # record NAME RC T0
  local status=pass
  [ "$2" = 0 ] || status=fail
  if [ "$status" = pass ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  echo "VBLK-SUITE test=$1 status=$status rc=$2 secs=$(vm_elapsed "$3" "$(vm_now)")"
}

guest() {   # guest NAME SOCKNAME QUEUES ARGS...
  local name=$1 sock=$2 q=$3; shift 3
  "$here/run-guest.sh" --socket "$workdir/$sock.sock" --queues "$q" --timeout "$timeout_s" \
    --expect-size 1073741824 --log "$workdir/$name.console.log" "$@"
}

run_queues_test() {   # run_queues_test NAME QUEUES
  local name=$1 q=$2 t0 pid rc=0
  t0=$(vm_now)
  if pid=$(start_backend "$name" "$q" "$workdir/$name.img"); then
    pids=("$pid")
    guest "$name" "$name" "$q" --job "$jobs" || rc=$?
    stop_backends
  else
    rc=1
  fi
  record "$name" "$rc" "$t0"
}

run_packed_test() {
  local t0 pid rc=0
  t0=$(vm_now)
  if pid=$(start_backend packed 2 "$workdir/packed.img"); then
    pids=("$pid")
    guest packed packed 2 --packed --job "$jobs" || rc=$?
    stop_backends
    # A backend that does not offer the feature would leave QEMU on split rings silently.
    grep -q "packed rings" "$workdir/packed.backend.log" || { vm_log "backend log does not show packed rings"; rc=1; }
  else
    rc=1
  fi
  record packed "$rc" "$t0"
}

run_qcow2_test() {
  local t0 pid rc=0 check
  t0=$(vm_now)
  if pid=$(start_backend qcow2 1 "$workdir/qcow2.img" --format qcow2 --aio threads --direct off); then
    pids=("$pid")
    guest qcow2 qcow2 1 --job "$jobs" || rc=$?
    stop_backends
    # The image as the backend left it after the guest's verified writes and its shutdown.
    if check=$(qemu-img check "$workdir/qcow2.img" 2>&1); then
      echo "VBLK-SUITE qcow2 check=clean"
    else
      echo "VBLK-SUITE qcow2 check=failed"
      rc=1
    fi
    printf '%s\n' "$check"
  else
    rc=1
  fi
  record qcow2 "$rc" "$t0"
}

run_restart_test() {
  local t0 pid1 pid2 rc=0 token
  t0=$(vm_now)
  token="m$(date +%s)$$"
  if pid1=$(start_backend restart 1 "$workdir/restart.img"); then
    pids=("$pid1")
    guest restart-1 restart 1 --job write-marker --marker "$token" || rc=$?
    stop_backends
  else
    rc=1
  fi
  if [ "$rc" = 0 ]; then
    if pid2=$(start_backend restart 1 "$workdir/restart.img"); then
      pids=("$pid2")
      vm_log "backend restarted: pid $pid1 -> $pid2"
      guest restart-2 restart 1 --job read-marker --marker "$token" || rc=$?
      stop_backends
    else
      rc=1
    fi
  fi
  record restart "$rc" "$t0"
}

run_live_test() {
  local t0 pid rc=0 watcher
  t0=$(vm_now)
  if ! pid=$(start_backend live 1 "$workdir/live.img"); then record live 1 "$t0"; return; fi
  pids=("$pid")
  : >"$workdir/live.console.log"
  # Two seconds into the first random-read job, kill the backend and start a new one.
  rm -f "$workdir/live.stop"
  (
    until grep -q 'VBLK-VM step name=check ' "$workdir/live.console.log"; do
      [ -e "$workdir/live.stop" ] && exit 1   # the guest ended before its jobs began
      sleep 0.1
    done
    sleep 2
    kill -KILL "$pid"
    sleep 0.5
    start_backend live 1 "$workdir/live.img" >"$workdir/live.pid2"
    vm_log "backend killed (pid $pid) and restarted (pid $(cat "$workdir/live.pid2"))"
  ) &
  watcher=$!
  guest live live 1 --job randrw,fio-verify --secs 8 --reconnect 1 || rc=$?
  touch "$workdir/live.stop"
  wait "$watcher" || rc=1
  [ -s "$workdir/live.pid2" ] && pids+=("$(cat "$workdir/live.pid2")")
  stop_backends
  record live "$rc" "$t0"
}

run_crash_test() {
  local t0 pid rc=0 watcher kills=10
  t0=$(vm_now)
  if ! pid=$(start_backend crash 1 "$workdir/crash.img"); then record crash 1 "$t0"; return; fi
  pids=("$pid")
  echo "$pid" >"$workdir/crash.pid"
  : >"$workdir/crash.console.log"
  rm -f "$workdir/crash.stop" "$workdir/crash.kills"
  (
    until grep -q 'VBLK-VM step name=check ' "$workdir/crash.console.log"; do
      [ -e "$workdir/crash.stop" ] && exit 1
      sleep 0.1
    done
    for i in $(seq 1 "$kills"); do
      sleep 1.5
      [ -e "$workdir/crash.stop" ] && break
      old=$(cat "$workdir/crash.pid")
      kill -KILL "$old"
      while kill -0 "$old" 2>/dev/null; do sleep 0.05; done
      start_backend crash 1 "$workdir/crash.img" >"$workdir/crash.pid"
      echo "$i" >"$workdir/crash.kills"
      vm_log "crash $i: backend $old killed, $(cat "$workdir/crash.pid") started"
    done
  ) &
  watcher=$!
  guest crash crash 1 --job fio-verify --fio-size 256M --reconnect 1 || rc=$?
  touch "$workdir/crash.stop"
  wait "$watcher" || rc=1
  pids=("$(cat "$workdir/crash.pid")")
  stop_backends
  local done_kills
  done_kills=$(cat "$workdir/crash.kills" 2>/dev/null || echo 0)
  echo "VBLK-SUITE crash kills=$done_kills"
  [ "$done_kills" = "$kills" ] || { vm_log "only $done_kills of $kills kills happened while the guest ran"; rc=1; }
  record crash "$rc" "$t0"
}

for t in $(tr ',' ' ' <<<"$only"); do
  case "$t" in
    q1) run_queues_test q1 1 ;;
    q2) run_queues_test q2 2 ;;
    restart) run_restart_test ;;
    live) run_live_test ;;
    crash) run_crash_test ;;
    packed) run_packed_test ;;
    qcow2) run_qcow2_test ;;
    *) vm_die "unknown test $t" ;;
  esac
done
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
