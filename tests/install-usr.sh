#!/usr/bin/env bash
# install-usr.sh: lash installed the way a Debian package would be
# (-DCMAKE_INSTALL_PREFIX=/usr, so libdir is lib/x86_64-linux-gnu), into a
# DESTDIR; then the README's embedding command, exactly as written, builds
# worker/example_embed.c against it, and the program runs a process.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/lash-usr.XXXXXX)
build=${LASH_USR_BUILD:-$root/build-usr}
pid=""
# shellcheck source=lib/redis.sh
. "$root/tests/lib/redis.sh"
cleanup() {
    # Each step on its own: under set -e a wait that answers 143 would end
    # the trap before Redis is stopped.
    if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    if [ -n "${redis_dir:-}" ]; then redis_stop; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr \
    -DLASH_TESTS=OFF >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
DESTDIR=$tmp/root cmake --install "$build" >/dev/null
multiarch=$(gcc -print-multiarch)
pcdir=$tmp/root/usr/lib/$multiarch/pkgconfig
[ -f "$pcdir/lash.pc" ] || { echo "lash.pc is not in /usr/lib/$multiarch/pkgconfig"; exit 1; }
export PKG_CONFIG_PATH=$pcdir
flags=$(pkg-config --cflags --libs lash)
echo "pkg-config --cflags --libs lash: $flags"
# ${pcfiledir} is not normalized: compare the directories each flag names.
dirs=""
for f in $flags; do
    case $f in -I* | -L*) dirs="$dirs ${f:0:2}$(realpath -m "${f:2}")" ;; esac
done
echo "resolved:$dirs"
for want in "-I$tmp/root/usr/include" "-I$tmp/root/usr/include/lash" "-L$tmp/root/usr/lib/$multiarch"; do
    case "$dirs " in *" $want "*) ;; *) echo "missing $want"; exit 1 ;; esac
done
case "$dirs " in *"/usr/lib/include "*) echo "the old multiarch bug"; exit 1 ;; esac
# README: "build with pkg-config --cflags --libs lash"
cd "$root"
cc -std=c11 -Wall -Wextra -Werror worker/example_embed.c -o "$tmp/embed" $(pkg-config --cflags --libs lash)
redis_start "$tmp/redis"
url=$redis_url
LD_LIBRARY_PATH=$tmp/root/usr/lib/$multiarch "$tmp/embed" "$url" 2>"$tmp/embed.log" &
pid=$!
lashctl=$tmp/root/usr/bin/lashctl
LD_LIBRARY_PATH=$tmp/root/usr/lib/$multiarch "$lashctl" --version
id=$(LASH_REDIS_URL=$url "$lashctl" submit upper --payload '"usr prefix"')
LASH_REDIS_URL=$url "$lashctl" wait "$id" --timeout 20000 >/dev/null
LASH_REDIS_URL=$url "$lashctl" get "$id" | grep -q "USR PREFIX"
echo "install-usr: /usr prefix, multiarch lash.pc, README's command built and ran example_embed.c"
