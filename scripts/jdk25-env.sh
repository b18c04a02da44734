# Sourceable: picks a JDK >= 25 and puts it first on PATH.
# Order: $JAVA25_HOME, $JAVA_HOME, then the usual install directories.
_vblk_find_jdk25() {
  local c v
  for c in "${JAVA25_HOME:-}" "${JAVA_HOME:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-2[5-9]* /usr/lib/jvm/java-2[5-9]-* ; do
    [ -n "$c" ] && [ -x "$c/bin/javac" ] || continue
    v=$("$c/bin/java" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    [ "${v%%.*}" -ge 25 ] 2>/dev/null && { printf '%s\n' "$c"; return 0; }
  done
  return 1
}
if _jdk=$(_vblk_find_jdk25); then
  export JAVA_HOME="$_jdk"
  export PATH="$JAVA_HOME/bin:$PATH"
else
  echo "error: no JDK 25 or newer found; install one or set JAVA25_HOME" >&2
  return 1 2>/dev/null || exit 1
fi
unset _jdk
