#!/usr/bin/env bash
# Runs the fuzz targets in Jazzer's fuzzing mode, one after the other (docs/FUZZING.md).
#   scripts/fuzz.sh                 every target until 10^7 executions (the annotation's maxExecutions)
#   scripts/fuzz.sh SECONDS         every target for at most SECONDS each
#   scripts/fuzz.sh SECONDS Class#method ...   the named targets only
# Each run's log (libFuzzer's "#N ... cov: ... exec/s" lines) goes to target/fuzz-logs/; the
# inputs it found go to .cifuzz-corpus/ (not committed; copy new ones worth keeping into
# virtio/src/test/resources/<package>/<Class>Inputs/<method>/), a crash to the Inputs directory.
set -u
cd "$(dirname "$0")/.."
secs=${1:-0}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(VhostUserFramerFuzzTest#frames VhostUserSessionFuzzTest#messages VhostUserSessionFuzzTest#memoryTable
           SplitQueueFuzzTest#walkChains BlkRequestParserFuzzTest#parse)
fi
mkdir -p target/fuzz-logs
./mvn25 -B -q -o -pl virtio -am test-compile >/dev/null || exit 1
for t in "${targets[@]}"; do
  log=target/fuzz-logs/${t/\#/.}.log
  echo "fuzzing $t${secs:+ (limit ${secs}s)} -> $log"
  if [ "$secs" -gt 0 ]; then
    JAZZER_FUZZ=1 setsid ./mvn25 -B -o -pl virtio -am test -Dtest="$t" -Dsurefire.failIfNoSpecifiedTests=false \
      -Djazzer.max_duration="${secs}s" > "$log" 2>&1 &
    pid=$!
    for _ in $(seq "$secs"); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    kill -TERM -- -"$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  else
    JAZZER_FUZZ=1 ./mvn25 -B -o -pl virtio -am test -Dtest="$t" -Dsurefire.failIfNoSpecifiedTests=false > "$log" 2>&1
  fi
  grep -E "^#[0-9]+" "$log" | tail -1
  grep -E "== Java Exception|FuzzerSecurityIssue|Crash|crash-" "$log" | head -5
done
