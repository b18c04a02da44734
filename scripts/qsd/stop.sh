#!/usr/bin/env bash
# Stops a backend started by serve.sh: SIGTERM, SIGKILL after GRACE seconds (default 10).
#   stop.sh PID [GRACE]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=scripts/vm/lib.sh
. "$here/../vm/lib.sh"
if [ $# -lt 1 ] || ! [[ "$1" =~ ^[0-9]+$ ]]; then vm_die "usage: stop.sh PID [GRACE]"; fi
vm_stop_pid "$1" "${2:-10}" || vm_die "pid $1 did not exit"
