#!/usr/bin/env bash
# Builds livemig-VERSION-linux-x64.tar.gz: a jlink'd Java runtime with the modules the jar needs,
# the jar, an AOT cache trained on that runtime, the launcher, completion and man pages.
# Usage: make-release.sh VERSION CLI_TARGET_DIR REPO_ROOT OUT_DIR
set -euo pipefail
version="$1"; cli="$2"; root="$3"; out="$4"
jar="$cli/livemig.jar"
java_home="${JAVA_HOME:-$(dirname "$(dirname "$(readlink -f "$(command -v java)")")")}"
name="livemig-$version"
stage="$out/dist/$name"
rm -rf "$out/dist" && mkdir -p "$stage/bin" "$stage/lib" "$stage/share"
# The JDK modules the jar uses (jdeps), and jdk.charsets for a terminal in any charset.
modules="$("$java_home/bin/jdeps" --multi-release 25 --ignore-missing-deps --print-module-deps "$jar")"
modules="$modules,jdk.charsets"
"$java_home/bin/jlink" --add-modules "$modules" --strip-debug --no-header-files --no-man-pages \
  --compress=zip-6 --output "$stage/runtime"
cp "$jar" "$stage/lib/livemig.jar"
cp "$root/livemig-core/src/main/resources/META-INF/livemig/run.jvmopts" "$stage/lib/run.jvmopts"
cp "$root/livemig-dist/src/build/livemig" "$stage/bin/livemig"
chmod 755 "$stage/bin/livemig"
cp -r "$cli/completion" "$stage/share/completion"
mkdir -p "$stage/share/man" && cp -r "$cli/man/man1" "$stage/share/man/man1"
cp "$root/LICENSE" "$root/README.md" "$stage/"
# The AOT cache, trained on the release's own runtime (a cache only fits the JVM that made it).
if ! "$stage/runtime/bin/java" -XX:AOTCacheOutput="$stage/lib/livemig.aot" -Xlog:aot=off -Xlog:cds=off -Xmx512m \
    -XX:+UseSerialGC --enable-native-access=ALL-UNNAMED -jar "$stage/lib/livemig.jar" x-aot-train \
    >"$out/aot-train.log" 2>&1; then
  echo "make-release: AOT training failed (see $out/aot-train.log); the release runs without a cache" >&2
  rm -f "$stage/lib/livemig.aot"
fi
tar -C "$out/dist" -czf "$out/$name-linux-x64.tar.gz" "$name"
echo "make-release: $out/$name-linux-x64.tar.gz ($(du -h "$out/$name-linux-x64.tar.gz" | cut -f1); modules $modules)"
