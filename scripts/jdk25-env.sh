# shellcheck shell=bash
# Sourceable: checks the machine (scripts/platform.sh), finds a JDK 25 or newer, and exports
# JAVA_HOME and PATH for it. Candidates, in this order: $JAVA25_HOME, $JAVA_HOME, the JDKs that
# `update-alternatives --list java` / `--list javac` know, then /usr/lib/jvm/*, /opt/java/*,
# /opt/jdk*, ~/.sdkman/candidates/java/*. A candidate is taken when it has bin/javac and its
# bin/java, run, says java.specification.version >= 25 (a `release` file naming an older version
# rules a candidate out without running it).
_vblk_here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
. "$_vblk_here/platform.sh" || { unset _vblk_here; return 1 2>/dev/null || exit 1; }
unset _vblk_here

# The JDK directory for the java or javac binary $1 (a path, symlinks resolved).
_vblk_jdk_of_binary() {
  local b
  b=$(readlink -f "$1" 2>/dev/null) || return 1
  b=$(dirname "$(dirname "$b")")
  case "$b" in */jre) b=$(dirname "$b") ;; esac
  printf '%s\n' "$b"
}

# Every candidate directory, one a line, in lookup order (duplicates included).
_vblk_jdk_candidates() {
  local b d
  [ -n "${JAVA25_HOME:-}" ] && printf '%s\n' "$JAVA25_HOME"
  [ -n "${JAVA_HOME:-}" ] && printf '%s\n' "$JAVA_HOME"
  if command -v update-alternatives >/dev/null 2>&1; then
    for b in $(update-alternatives --list java 2>/dev/null) $(update-alternatives --list javac 2>/dev/null); do
      _vblk_jdk_of_binary "$b"
    done
  fi
  for d in /usr/lib/jvm/* /opt/java/* /opt/jdk* "${HOME:-/nonexistent}"/.sdkman/candidates/java/*; do
    [ -d "$d" ] && printf '%s\n' "$d"
  done
  return 0
}

# The java.specification.version major of JDK $1, by running its java ("" when it does not run).
_vblk_jdk_major() {
  local v
  v=$("$1/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
  v=${v#1.}   # 1.8 -> 8
  printf '%s\n' "${v%%.*}"
}

_vblk_find_jdk25() {
  local c r v seen=" "
  while IFS= read -r c; do
    r=$(readlink -f "$c" 2>/dev/null) || continue
    case "$seen" in *" $r "*) continue ;; esac
    seen="$seen$r "
    [ -x "$r/bin/java" ] && [ -x "$r/bin/javac" ] || continue
    if [ -f "$r/release" ]; then
      v=$(sed -n 's/^JAVA_VERSION="\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' "$r/release")
      [ -n "$v" ] && [ "$v" -lt 25 ] 2>/dev/null && continue
    fi
    v=$(_vblk_jdk_major "$r")
    if [ -n "$v" ] && [ "$v" -ge 25 ] 2>/dev/null; then
      printf '%s\n' "$r"
      return 0
    fi
  done < <(_vblk_jdk_candidates)
  return 1
}

if _vblk_jdk=$(_vblk_find_jdk25); then
  if [ -n "${JAVA25_HOME:-}" ] && [ "$(readlink -f "$JAVA25_HOME" 2>/dev/null)" != "$_vblk_jdk" ]; then
    echo "warning: JAVA25_HOME=$JAVA25_HOME is not a JDK 25 or newer; using $_vblk_jdk" >&2
  fi
  export JAVA_HOME="$_vblk_jdk"
  export PATH="$JAVA_HOME/bin:$PATH"
  unset _vblk_jdk
else
  unset _vblk_jdk
  echo "error: no JDK 25 or newer found. Looked at \$JAVA25_HOME, \$JAVA_HOME, update-alternatives --list java/javac," >&2
  echo "       /usr/lib/jvm/*, /opt/java/*, /opt/jdk*, ~/.sdkman/candidates/java/*. Install a JDK 25 (e.g. Temurin 25)" >&2
  echo "       or set JAVA25_HOME to one." >&2
  return 1 2>/dev/null || exit 1
fi
