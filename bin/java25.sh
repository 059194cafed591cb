# Sourced by ./livemig and ./mvnw: finds a Java 25 or later and exports JAVA_HOME and PATH for it.
# Looks at JAVA_HOME, then the java on PATH, then the usual JDK directories. Without one it says
# so in one line and returns 1.

# The feature version of the JDK at $1 (25 for 25.0.3, 8 for 1.8.0), or nothing.
livemig_java_feature() {
  local home="$1" v=""
  [ -x "$home/bin/java" ] || return 0
  if [ -f "$home/release" ]; then
    v="$(sed -n 's/^JAVA_VERSION="\([^"]*\)".*/\1/p' "$home/release")"
  fi
  if [ -z "$v" ]; then
    v="$("$home/bin/java" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -1)"
  fi
  v="${v#1.}"
  echo "${v%%[.+-]*}"
}

livemig_find_java25() {
  local candidates=() seen="" c f
  [ -n "${JAVA_HOME:-}" ] && candidates+=("$JAVA_HOME")
  if command -v java >/dev/null 2>&1; then
    c="$(readlink -f "$(command -v java)")"
    candidates+=("${c%/bin/java}")
  fi
  candidates+=(/usr/lib/jvm/temurin-25-jdk-amd64)
  for c in /usr/lib/jvm/*25* /usr/lib/jvm/*-2[6-9]* /opt/java/*25* /opt/*jdk-25*; do
    [ -d "$c" ] && candidates+=("$c")
  done
  for c in "${candidates[@]}"; do
    f="$(livemig_java_feature "$c")"
    if [ -n "$f" ] && [ "$f" -ge 25 ] 2>/dev/null; then
      export JAVA_HOME="$c"
      export PATH="$JAVA_HOME/bin:$PATH"
      return 0
    fi
    [ -n "$f" ] && seen="$seen${seen:+, }Java $f at $c"
  done
  echo "livemig: needs Java 25 or later, and found ${seen:-no Java}: install one (e.g. Temurin 25) and set JAVA_HOME to it" >&2
  return 1
}
