#!/usr/bin/env bash
# tests/web/run.sh: lash-web end to end, against a private redis-server and
# real lash-workers (step "web" of tests/run.sh; needs the build/ binaries).
#
#   1. web_http.py    /metrics parsed by prometheus_client (Debian's
#                  python3-prometheus-client), every value equal to what
#                  redis-cli reads; the API's refusals (token, cross-site,
#                  Host, bad input); 10,000 random requests: no crash, no 5xx;
#                  then Redis stopped: 503 and lash_up 0, and back again.
#   2. browser.js  Debian's chromium driven by playwright-core: the counts
#                  shown equal Redis's, paging, one process, retry refused
#                  without the token and completed with it, hostile rows
#                  shown as text; saves docs/dashboard.png.
#   3. deploy_check.py  deploy/observability + deploy/k8s: YAML/JSON parse,
#                  and every metric they name is one the live lash-web or
#                  lash-worker exported; then the worker's own /metrics.
# LASH_BUILD names the build dir (default build).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=$root/${LASH_BUILD:-build}/bin
PY=/usr/bin/python3 # Debian's, where python3-prometheus-client lives
tmp=$(mktemp -d /tmp/lash-web-test.XXXXXX)
pids=()
# shellcheck source=../lib/redis.sh
. "$root/tests/lib/redis.sh"
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    redis_stop
    rm -rf "$tmp"
}
trap cleanup EXIT

redis_start "$tmp"
export LASH_REDIS_URL=$redis_url
R() { redis_cli "$@"; }

# Workers: noop/fail built-ins and the flaky exec handler, on two queues.
export WEB_TEST_ALLOW=$tmp/allow
mport=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
for i in 1 2; do
    extra=()
    [ "$i" = 1 ] && extra=(--metrics-listen "127.0.0.1:$mport")
    "$bin/lash-worker" --queue web --queue other --id "web-worker-$i" --builtin noop --builtin fail \
        --handler "flaky=$here/flaky.sh" --poll-ms 100 --log-level warn "${extra[@]}" \
        2>>"$tmp/worker.log" &
    pids+=($!)
done
export WORKER_METRICS_URL=http://127.0.0.1:$mport/metrics

# What the tests look at: 120 completed, 4 failed for good, 3 flaky (failed
# until allowed), 30 pending an hour out, and a queue of its own.
lashctl() { "$bin/lashctl" "$@"; }
# The detail panel shows a process's history: log every transition, not only
# the failures (the default level, README "Inspect with redis-cli").
R HSET 'lash:{web}:stats' events all >/dev/null
for i in $(seq 120); do echo '{}'; done | lashctl --queue web submit-bulk noop >/dev/null
for i in 1 2 3 4; do lashctl --queue web submit fail --id "broken-$i" --max-attempts 1 \
    --payload "{\"error\":\"disk $i is full\"}" >/dev/null; done
for i in 1 2 3; do lashctl --queue web submit flaky --id "flaky-$i" --max-attempts 1 >/dev/null; done
for i in $(seq 30); do echo "{\"kind\":\"noop\",\"payload\":{},\"id\":\"later-$i\",\"delay_ms\":3600000}"; done |
    lashctl --queue web submit-bulk noop >/dev/null
lashctl --queue other submit noop >/dev/null
for i in 1 2 3 4 5; do lashctl --queue idle submit noop >/dev/null; done # no worker serves idle
# Settle: everything that can run has run.
for _ in $(seq 100); do
    [ "$(R ZCOUNT 'lash:{web}:due' -inf "$(($(date +%s) * 1000))")" = 0 ] &&
        [ "$(R HGET 'lash:{web}:stats' failed)" = 7 ] && break
    sleep 0.2
done

export LASH_WEB_TOKEN=web-test-token-0123456789
"$bin/lash-web" --listen 127.0.0.1:0 2>"$tmp/web.log" &
pids+=($!)
for _ in $(seq 50); do grep -q "listening on" "$tmp/web.log" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/.*listening on \(http:[^ ]*\) .*/\1/p' "$tmp/web.log")
[ -n "$url" ] || { cat "$tmp/web.log"; exit 1; }
echo "lash-web at $url"
web_pid=${pids[-1]}

export WEB_URL=$url WEB_SOCK=$tmp/redis.sock WEB_TMP=$tmp WEB_BIN=$bin WEB_ROOT=$root
"$PY" "$here/web_http.py" metrics security
echo "== browser"
[ -d "$here/node_modules/playwright-core" ] ||
    (cd "$here" && npm ci --no-audit --no-fund --silent)
node "$here/browser.js"
echo "== deploy files against the live metrics"
"$PY" "$here/deploy_check.py"
"$PY" "$here/web_http.py" worker
echo "== 10,000 random requests"
"$PY" "$here/web_http.py" fuzz
kill -0 "$web_pid" || { echo "lash-web died"; exit 1; }
echo "== redis down and back"
for p in "${pids[@]:0:2}"; do kill -TERM "$p"; wait "$p" || true; done
pids=("${pids[@]:2}")
redis_stop
"$PY" "$here/web_http.py" down
redis_start "$tmp"
"$PY" "$here/web_http.py" up
kill -0 "$web_pid" || { echo "lash-web died"; exit 1; }
echo "web: all checks passed"
