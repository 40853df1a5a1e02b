#!/usr/bin/env bash
# tests/run.sh: every test lash has, the way CI runs them (README command 2).
#
# Installs the Debian packages it needs (as root; `apt-get update` first), then:
#   build       normal build (build/) and ctest: unit + integration suites
#   asan        ASan+UBSan build (build-asan/) and ctest
#   valgrind    the unit suites under valgrind: zero leaks
#   fuzz        each libFuzzer target for LASH_FUZZ_SECONDS (default 30) from its seeds
#   deploy      static checks of the container/systemd files, the ACL test,
#               the multi-host test in network namespaces (skipped if not allowed),
#               the Sentinel/Cluster examples of deploy/ha
#   (the Redis Cluster and Sentinel failover suites, test_ha_*, are part of ctest
#    in both builds: they start their own nodes and Sentinels on loopback ports)
#               the image built and the compose stack run with podman, then the
#               Sentinel stack of deploy/ha with its primary killed (skipped
#               where podman cannot run a container)
#   (the reliability suites' short forms are part of ctest in both builds)
#   install     cmake --install into a temp prefix; an embedder builds with pkg-config
#   install-usr the same for -DCMAKE_INSTALL_PREFIX=/usr (Debian multiarch lash.pc), with
#               the README's embedding command as written
#   web         lash-web end to end: metrics vs redis-cli, refusals, 10,000 random
#               requests, Redis down; the dashboard in chromium (tests/web/run.sh)
#   bench       the benchmark harness once with a small N (proves it works; no timing checks)
#   demo        the main job with a small N
# Each step's output goes to build-logs/<step>.log; the last line sums up.
#   LASH_ONLY=build,asan   run only these steps
#   LASH_LONG=1            also the long forms of the reliability suites (minutes)
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
LOGS=$ROOT/build-logs
mkdir -p "$LOGS"
JOBS=$(nproc)

PKGS="build-essential cmake pkg-config libhiredis-dev libev-dev libcjson-dev libcriterion-dev
      redis-server redis-tools redis-sentinel clang libclang-rt-14-dev valgrind iproute2
      docker-compose procps libmicrohttpd-dev chromium python3 python3-prometheus-client
      python3-yaml podman buildah runc debootstrap netavark aardvark-dns catatonit nftables
      iptables"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
# Node.js may come from elsewhere than Debian (nodesource's nodejs carries its
# own npm, which Debian's npm package conflicts with): only what is missing.
command -v node >/dev/null || missing="$missing nodejs"
command -v npm >/dev/null || missing="$missing npm"
if [ -n "$missing" ]; then
    echo "installing:$missing"
    if [ "$(id -u)" != 0 ]; then echo "tests: run as root to install packages" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
        echo "tests: apt-get install failed" >&2; exit 1; }
fi

# shellcheck source=lib/redis.sh
. tests/lib/redis.sh

passed=0 failed=0 failures=""
want() { [ -z "${LASH_ONLY:-}" ] || [[ ",$LASH_ONLY," == *",$1,"* ]]; }
step() {
    local name=$1; shift
    want "$name" || return 0
    local t0=$SECONDS
    printf '%-12s ' "$name"
    if "$@" >"$LOGS/$name.log" 2>&1; then
        passed=$((passed + 1))
        printf 'ok     %4ds  %s\n' $((SECONDS - t0)) "$(tail -n 1 "$LOGS/$name.log")"
    else
        failed=$((failed + 1)) failures="$failures $name"
        printf 'FAILED %4ds  (build-logs/%s.log)\n' $((SECONDS - t0)) "$name"
        tail -n 40 "$LOGS/$name.log" | sed 's/^/    | /'
    fi
}

build_and_test() { # dir, cmake args...
    local dir=$1; shift
    cmake -S . -B "$dir" "$@" && cmake --build "$dir" -j"$JOBS" &&
        (cd "$dir" && ctest --output-on-failure --timeout 600)
}

# Installs into a temp prefix, builds the embedding example against it with
# pkg-config alone, and runs it against a Redis (CI's shared one, or a private
# one): an "upper" process submitted with the installed lashctl completes.
install_check() {
    local prefix url pid rc=1 own=0
    prefix=$(mktemp -d /tmp/lash-prefix.XXXXXX)
    url=${LASH_TEST_REDIS_URL:-}
    if [ -z "$url" ]; then
        redis_start "$prefix/redis" || return 1
        url=$redis_url own=1
    fi
    if cmake --install build --prefix "$prefix" >/dev/null &&
        cc -std=c11 -Wall -Wextra -Werror worker/example_embed.c -o "$prefix/embed" \
            $(PKG_CONFIG_PATH=$prefix/lib/pkgconfig pkg-config --cflags --libs lash); then
        LD_LIBRARY_PATH=$prefix/lib "$prefix/embed" "$url" 2>"$prefix/embed.log" &
        pid=$!
        local id
        id=$(LASH_REDIS_URL=$url "$prefix/bin/lashctl" submit upper --payload '"installed"') &&
            LASH_REDIS_URL=$url "$prefix/bin/lashctl" wait "$id" --timeout 20000 &&
            LASH_REDIS_URL=$url "$prefix/bin/lashctl" get "$id" | grep -q INSTALLED && rc=0
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    [ $own = 1 ] && redis_stop
    [ $rc = 0 ] && echo "installed $(find "$prefix" -type f | wc -l) files; an embedder built with pkg-config ran an 'upper' process"
    rm -rf "$prefix"
    return $rc
}

step build build_and_test build -DCMAKE_BUILD_TYPE=RelWithDebInfo
step asan build_and_test build-asan -DCMAKE_BUILD_TYPE=Debug -DLASH_SANITIZE=ON
step valgrind bash tests/reliability/valgrind.sh
step fuzz bash tests/fuzz/run.sh "${LASH_FUZZ_SECONDS:-30}"
step deploy-static bash tests/deploy/check-static.sh
step deploy-acl bash tests/deploy/acl-test.sh
step deploy-netns bash tests/deploy/netns-test.sh
step deploy-ha bash tests/deploy/ha-static.sh
step deploy-containers bash tests/deploy/containers-test.sh
# The reliability suites' short forms are criterion binaries: ctest ran them in
# both builds above. The long forms (20,000-process chaos, 1,000,000-process
# memory bound, ...) run here on request.
[ "${LASH_LONG:-0}" = 1 ] && step reliability bash tests/reliability/run.sh --long
step install install_check
step install-usr bash tests/install-usr.sh
step web bash tests/web/run.sh
step bench bash bench/run.sh --quick
step demo bash demo/run.sh --n 1000

echo
[ -n "$failures" ] && echo "failed steps:$failures"
echo "suites: $passed passed, $failed failed"
[ "$failed" = 0 ]
