#!/usr/bin/env bash
# Runs the JMH benchmarks (tools/src/test/java/io/vblk/tools/jmh) on JDK 25.
# Usage: scripts/jmh.sh [BENCHMARK_REGEX] [JMH options...], e.g. scripts/jmh.sh Bh -prof gc
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$here/scripts/jdk25-env.sh"
(cd "$here" && ./mvn25 -q -B -DskipTests package) >&2
cp="$here/tools/target/test-classes:$here/tools/target/classes:$(cat "$here/tools/target/test-classpath.txt")"
exec java --enable-native-access=ALL-UNNAMED -cp "$cp" org.openjdk.jmh.Main "$@"
