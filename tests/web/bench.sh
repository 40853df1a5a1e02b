#!/usr/bin/env bash
# tests/web/bench.sh: the numbers for lash-web (not part of CI; timings are
# benchmarks, never pass/fail). Private Redis; no workers.
#   - /metrics with 1 and 100 queues: median scrape time over 20 scrapes, and
#     the Redis commands per scrape (INFO commandstats delta, less the INFO);
#   - the dashboard's load with 10,000 processes in one queue (chromium);
#   - lash-web's RSS after all that.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$root/${LASH_BUILD:-build}/bin
tmp=$(mktemp -d /tmp/lash-web-bench.XXXXXX)
web=""
# shellcheck source=../lib/redis.sh
. "$root/tests/lib/redis.sh"
cleanup() {
    # Each step on its own: under set -e a wait that answers 143 would end
    # the trap before Redis is stopped.
    if [ -n "$web" ]; then kill "$web" 2>/dev/null || true; wait "$web" 2>/dev/null || true; fi
    redis_stop
    rm -rf "$tmp"
}
trap cleanup EXIT
redis_start "$tmp"
export LASH_REDIS_URL=$redis_url
R() { redis_cli "$@"; }
start_web() {
    "$bin/lash-web" --listen 127.0.0.1:0 --discover-ms 600000 2>"$tmp/web.log" &
    web=$!
    for _ in $(seq 50); do grep -q listening "$tmp/web.log" && break; sleep 0.1; done
    url=$(sed -n 's/.*listening on \(http:[^ ]*\) .*/\1/p' "$tmp/web.log")
}
scrape_numbers() { # label
    curl -s "${url}metrics" >/dev/null # discovery happens once, before measuring
    local before after
    before=$(R INFO stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p')
    curl -s "${url}metrics" >/dev/null
    after=$(R INFO stats | sed -n 's/^total_commands_processed:\([0-9]*\).*/\1/p')
    local times=()
    for _ in $(seq 20); do times+=("$(curl -s -o /dev/null -w '%{time_total}' "${url}metrics")"); done
    median=$(printf '%s\n' "${times[@]}" | sort -n | sed -n '10p')
    echo "$1: median scrape $(awk -v t="$median" 'BEGIN{printf "%.2f", t*1000}') ms, $((after - before - 1)) Redis commands per scrape"
}
"$bin/lashctl" --queue q0 submit noop >/dev/null
start_web
scrape_numbers "1 queue"
for i in $(seq 1 99); do "$bin/lashctl" --queue "q$i" submit noop >/dev/null; done
kill "$web"; wait "$web" 2>/dev/null || true
start_web
scrape_numbers "100 queues"
# 10,000 processes in one queue.
for i in $(seq 10000); do echo '{}'; done | "$bin/lashctl" --queue big submit-bulk noop >/dev/null
kill "$web"; wait "$web" 2>/dev/null || true
LASH_QUEUES=big start_web
WEB_URL=$url node "$here/bench_page.js"
echo "lash-web RSS: $(ps -o rss= -p "$web") KiB"
