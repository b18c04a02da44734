#!/usr/bin/env bash
# Builds the release: target/release/vblk-VERSION-linux-x86_64.tar.gz, which needs no JDK and no
# Maven on the target host.
#
#   scripts/release.sh [--no-build] [--out DIR]
#
#   --no-build   use tools/target/vblk.jar and tools/target/lib as they are (after ./mvn25 package)
#   --out DIR    where the tarball goes (default target/release)
#
# Steps: `./mvn25 -DskipTests -pl tools -am package` (unless --no-build); jdeps (JDK 25) lists the
# JDK modules vblk's jar and its dependencies need; jlink builds a runtime of only those, plus
# jdk.unsupported (Netty and JNA reach it reflectively) and jdk.httpserver (the metrics endpoint),
# from the JDK's own run-time image (JEP 493) when the JDK ships no jmods. The tarball holds:
#   vblk-VERSION/bin/vblk          the launcher (runs runtime/bin/java; any directory; symlinks ok)
#   vblk-VERSION/runtime/          the jlink'd Java runtime
#   vblk-VERSION/lib/*.jar         vblk and its dependencies
#   vblk-VERSION/dist/systemd/     vblk.service (Restart=always) and the socket-activated pair
#                                  vblk-activated.socket / vblk-activated.service (addr.type=fd)
#   vblk-VERSION/README.md
# Prints the tarball's path on stdout.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/jdk25-env.sh
. "$here/scripts/jdk25-env.sh"
build=1 out="$here/target/release"
while [ $# -gt 0 ]; do
  case "$1" in
    --no-build) build=0; shift ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "release.sh: unknown option $1 (accepts --no-build, --out DIR)" >&2; exit 2 ;;
  esac
done
version=$(sed -n '0,/<version>/s:.*<version>\(.*\)</version>.*:\1:p' "$here/pom.xml")
[ -n "$version" ] || { echo "release.sh: no <version> in pom.xml" >&2; exit 1; }
if [ "$build" = 1 ]; then
  (cd "$here" && ./mvn25 -q -B -DskipTests -pl tools -am package) >&2
fi
jar="$here/tools/target/vblk.jar" lib="$here/tools/target/lib"
[ -f "$jar" ] && [ -d "$lib" ] || { echo "release.sh: $jar or $lib missing (run without --no-build)" >&2; exit 1; }

# jdeps prints warnings (split packages of multi-release jars) before the list: keep its last line.
mods=$("$JAVA_HOME/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps \
  "$jar" "$lib"/*.jar 2>/dev/null | tail -n 1)
[[ "$mods" =~ ^[a-z.,]+$ ]] || { echo "release.sh: jdeps gave no module list: $mods" >&2; exit 1; }
mods=$(printf '%s\n' "$mods" jdk.unsupported jdk.httpserver | tr ',' '\n' | sort -u | paste -sd, -)

name="vblk-$version-linux-x86_64"
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root="$stage/vblk-$version"
"$JAVA_HOME/bin/jlink" --add-modules "$mods" --strip-debug --no-man-pages --no-header-files \
  --compress=zip-6 --output "$root/runtime" >&2
mkdir -p "$root/bin" "$root/lib" "$root/dist"
cp "$here/dist/bin/vblk" "$root/bin/vblk"
chmod 755 "$root/bin/vblk"
cp "$jar" "$lib"/*.jar "$root/lib/"
cp -r "$here/dist/systemd" "$root/dist/systemd"
cp "$here/README.md" "$root/README.md"
tr ',' '\n' <<<"$mods" >"$root/runtime/vblk-modules.txt"
mkdir -p "$out"
tar -C "$stage" -czf "$out/$name.tar.gz" "vblk-$version"
echo "$out/$name.tar.gz"
