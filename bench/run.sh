#!/usr/bin/env bash
# bench/run.sh: lash's benchmarks on a private redis-server, with medians of
# several runs, a table on stdout and the same as JSON in bench/results/.
#
#   bench/run.sh [--n N] [--runs R] [--quick] [--peers] [--only SCENARIO...]
#
#   --n N      processes per scenario (default 100000)
#   --runs R   runs of every scenario; the table shows median, min, max (default 3)
#   --quick    N=2000, 1 run, short windows: what CI runs to prove it works
#   --peers    also run BullMQ (pinned in bench/peers/package.json, installed with
#              npm into bench/peers/node_modules) against the same Redis, and
#              beanstalkd (Debian's package; lash-bench's own small client) on a
#              free port of its own, in the same runs, and print lash/BullMQ and
#              lash/beanstalkd ratios; each is skipped with a message when node
#              and npm, or beanstalkd, are missing
#   --only S   run only scenario S (repeatable): registry drain fleet submit
#              latency exec idle idlefleet memory
#
# It builds lash-bench when missing ($LASH_BUILD_DIR, default build/), starts
# redis-server on a free loopback port in a temp dir (--save '' --appendonly no),
# and stops everything it started on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
build=${LASH_BUILD_DIR:-$root/build}
n=100000
runs=3
quick=0
peers=0
only=()
while [ $# -gt 0 ]; do
    case $1 in
    --n) n=$2; shift ;;
    --runs) runs=$2; shift ;;
    --quick) quick=1 ;;
    --peers) peers=1 ;;
    --only) only+=("$2"); shift ;;
    -h | --help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$quick" = 1 ]; then
    n=2000
    runs=1
fi
[ ${#only[@]} -gt 0 ] || only=(all)

if [ ! -x "$build/bin/lash-bench" ]; then
    echo "run.sh: building lash-bench in $build" >&2
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target lash-bench lash-worker lashctl >/dev/null
fi
bench=$build/bin/lash-bench

tmp=$(mktemp -d /tmp/lash-bench-XXXXXX)
# shellcheck source=../tests/lib/redis.sh
. "$root/tests/lib/redis.sh"
cleanup() {
    [ -n "${redis_dir:-}" ] && redis_stop
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# On a free loopback port, not a socket: the BullMQ peers connect over TCP,
# and both sides should pay the same.
redis_start "$tmp" --tcp --loglevel warning
url=$redis_url

bull=$peers
if [ "$bull" = 1 ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "run.sh: node or npm is not installed: skipping the BullMQ comparison" >&2
        bull=0
    elif [ ! -d "$here/peers/node_modules/bullmq" ] || [ ! -d "$here/peers/node_modules/ioredis" ]; then
        echo "run.sh: installing the pinned peers with npm into bench/peers/node_modules" >&2
        if ! (cd "$here/peers" && npm install --no-audit --no-fund --no-package-lock \
            --loglevel=error >&2); then
            echo "run.sh: npm install failed: skipping the BullMQ comparison" >&2
            bull=0
        fi
    fi
fi

bs_pid=""
if [ "$peers" = 1 ]; then
    if command -v beanstalkd >/dev/null; then
        bs_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
        beanstalkd -l 127.0.0.1 -p "$bs_port" &
        bs_pid=$!
        for _ in $(seq 50); do
            (exec 3<>"/dev/tcp/127.0.0.1/$bs_port") 2>/dev/null && break
            sleep 0.1
        done
    else
        echo "run.sh: beanstalkd is not installed (apt-get install beanstalkd): skipping it" >&2
    fi
fi
# `|| true`: wait answers beanstalkd's 143, and under set -e that would end the
# EXIT trap before cleanup stops Redis.
cleanup_bs() {
    if [ -n "$bs_pid" ]; then
        kill "$bs_pid" 2>/dev/null || true
        wait "$bs_pid" 2>/dev/null || true
    fi
}
trap 'cleanup_bs; cleanup' EXIT

results=$tmp/results.jsonl
: >"$results"
qflag=()
[ "$quick" = 1 ] && qflag=(--quick)
for r in $(seq 1 "$runs"); do
    echo "== run $r of $runs (N=$n)" >&2
    "$bench" --redis "$url" --n "$n" --flush "${qflag[@]}" "${only[@]}" >>"$results"
    if [ "$peers" = 1 ]; then
        if [ "$bull" = 1 ]; then
            node "$here/peers/bullmq-bench.js" --redis "$url" --n "$n" --flush "${qflag[@]}" \
                >>"$results"
        fi
        if [ -n "$bs_pid" ]; then
            "$bench" beanstalkd --addr "127.0.0.1:$bs_port" --pid "$bs_pid" --n "$n" "${qflag[@]}" \
                >>"$results"
        fi
    fi
done

mkdir -p "$here/results"
stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
out=$here/results/$stamp.json
meta=(--meta "date=$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    --meta "host=$(nproc) cores, $(uname -sr)"
    --meta "redis=$(redis-server --version | sed 's/ sha=.*//')"
    --meta "gcc=$(gcc -dumpfullversion 2>/dev/null || echo unknown)"
    --meta "n=$n" --meta "runs=$runs")
if [ "$bull" = 1 ]; then
    meta+=(--meta "node=$(node --version)"
        --meta "bullmq=$(node -p "require('$here/peers/node_modules/bullmq/package.json').version")")
fi
if [ -n "$bs_pid" ]; then
    meta+=(--meta "beanstalkd=$(beanstalkd -v 2>&1 | head -n 1)")
fi
echo
"$bench" report "${meta[@]}" --json "$out" "$results"
cp "$results" "$here/results/$stamp.jsonl"
echo
echo "results: $out"
