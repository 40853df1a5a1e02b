#!/usr/bin/env bash
# demo/run.sh: lash's main job, end to end, on one machine.
#
# Installs what it needs (Debian 12, as root), builds, starts a private
# redis-server on a unix socket in a temp dir, starts three lash-worker processes
# with an exec handler that does real work (iterated SHA-1 of the payload's
# data), submits a few thousand processes, shows a live progress line, kills one
# worker with kill -9 half way and lets the others recover its rows, then prints
# a summary. It stops everything it started.
#
#   bash demo/run.sh [--n N] [--rounds R] [--workers W] [--keep]
#     --n N        processes to submit (default 3000)
#     --rounds R   SHA-1 rounds per process (default 4000: a few ms each)
#     --workers W  worker processes (default 3, at least 2)
#     --keep       leave the Redis running at the end, to look around with the
#                  redis-cli commands printed (stop it as printed)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
N=3000 ROUNDS=4000 WORKERS=3 KEEP=0
while [ $# -gt 0 ]; do
    case "$1" in
    --n) N=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "demo: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
[[ $N =~ ^[0-9]+$ && $N -ge 10 && $ROUNDS =~ ^[0-9]+$ && $WORKERS =~ ^[0-9]+$ && $WORKERS -ge 2 ]] ||
    { echo "demo: --n >= 10, --rounds >= 0 and --workers >= 2 are integers" >&2; exit 2; }

if [ -t 1 ]; then
    say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
    say() { printf '==> %s\n' "$*"; }
fi

# --- 1. packages and build ---------------------------------------------------
PKGS="build-essential cmake pkg-config libhiredis-dev libev-dev libcjson-dev redis-server redis-tools"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    say "installing:$missing"
    if [ "$(id -u)" != 0 ]; then echo "demo: run as root to install packages" >&2; exit 1; fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
say "building (build-demo/)"
cmake -S . -B build-demo -DCMAKE_BUILD_TYPE=Release -DLASH_TESTS=OFF >/dev/null
cmake --build build-demo -j"$(nproc)" --target lash-worker lashctl lash-example-hash >/dev/null
BIN=$ROOT/build-demo/bin

# --- 2. a private Redis --------------------------------------------------------
DIR=$(mktemp -d /tmp/lash-demo.XXXXXX)
SOCK=$DIR/redis.sock
PIDS=()
# shellcheck source=../tests/lib/redis.sh
. "$ROOT/tests/lib/redis.sh"
cleanup() {
    local rc=$?
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [ "$KEEP" = 1 ] && [ $rc = 0 ]; then
        echo "Redis left running: stop it with  redis-cli -s $SOCK shutdown nosave && rm -rf $DIR"
    else
        [ -n "${redis_dir:-}" ] && redis_stop
        rm -rf "$DIR"
    fi
    exit $rc
}
trap cleanup EXIT INT TERM
say "starting redis-server on $SOCK"
redis_start "$DIR"
export LASH_REDIS_URL=$redis_url LASH_QUEUE=demo
R() { redis_cli "$@"; }

# --- 3. workers ----------------------------------------------------------------
start_worker() {
    "$BIN/lash-worker" --queue demo --concurrency 4 --lease-ms 2000 --poll-ms 400 \
        --handler "hash=$BIN/lash-example-hash" --id "demo-w$1" --log-level warn \
        --log-file "$DIR/worker-$1.log" &
    PIDS+=($!)
}
say "starting $WORKERS workers (4 slots each, 2 s leases, handler: lash-example-hash)"
for i in $(seq "$WORKERS"); do start_worker "$i"; done

# --- 4. submit -----------------------------------------------------------------
say "submitting $N processes ($ROUNDS SHA-1 rounds each)"
for i in $(seq "$N"); do
    printf '{"kind":"hash","id":"p%06d","payload":{"data":"item-%d","rounds":%d},"max_attempts":3}\n' "$i" "$i" "$ROUNDS"
done > "$DIR/processes.jsonl"
T0=$(date +%s%N)
"$BIN/lashctl" submit-bulk hash < "$DIR/processes.jsonl" > "$DIR/submit.out"
tail -n 1 "$DIR/submit.out"

# --- 5. watch; kill one worker half way --------------------------------------
secs() { awk -v ms="$1" 'BEGIN { printf "%.1f", ms / 1000 }'; }
count() { R HGET 'lash:{demo}:stats' "$1" | sed 's/^$/0/'; }
VICTIM=2 KILLED=0
# Leases held by one worker, counted inside Redis in one step.
held_by() {
    R EVAL "local n = 0
for _, k in ipairs(redis.call('KEYS', KEYS[1] .. ':lease:*')) do
  local v = redis.call('GET', k)
  if v and string.sub(v, 1, #ARGV[1] + 1) == ARGV[1] .. ':' then n = n + 1 end
end
return n" 1 'lash:{demo}' "$1"
}
if [ -t 1 ]; then EOL='\r'; else EOL='\n'; fi
last_line=0
while :; do
    done_=$(( $(count completed) + $(count failed) + $(count cancelled) + $(count abandoned) ))
    el=$(( ($(date +%s%N) - T0) / 1000000 ))
    rate=$(( done_ * 1000 / (el > 0 ? el : 1) ))
    # On a terminal one line redrawn; in a log, one line a second.
    if [ -t 1 ] || [ $((el - last_line)) -ge 1000 ] || [ "$done_" -ge "$N" ]; then
        printf "  %6d/%d terminal  %5d running  %5d pending  %6d/s  %5ss ${EOL}" \
            "$done_" "$N" "$(count running)" "$(count pending)" "$rate" "$(secs "$el")"
        last_line=$el
    fi
    if [ "$KILLED" = 0 ] && [ "$done_" -ge $((N / 2)) ]; then
        held=$(held_by "demo-w$VICTIM")
        if [ "$held" -gt 0 ] || [ "$done_" -ge $((N * 3 / 4)) ]; then
            kill -9 "${PIDS[$((VICTIM - 1))]}"
            wait "${PIDS[$((VICTIM - 1))]}" 2>/dev/null || true
            KILLED=1
            printf '\n  kill -9 demo-w%d while it held %d lease(s): the others take its rows over when the leases expire (2 s)\n' \
                "$VICTIM" "$held"
        fi
    fi
    [ "$done_" -ge "$N" ] && break
    if [ "$el" -gt 600000 ]; then echo; echo "demo: not done after 10 minutes" >&2; exit 1; fi
    sleep 0.1
done
T1=$(date +%s%N)
echo

# --- 6. summary ------------------------------------------------------------------
ELAPSED_MS=$(( (T1 - T0) / 1000000 ))
say "summary"
printf '  completed %s, failed %s, retried %s (of which lost leases recovered: %s)\n' \
    "$(count completed)" "$(count failed)" "$(( $(count total_retried) + $(count total_lost) ))" "$(count total_lost)"
printf '  throughput %d processes/s over %s s (%d workers, one killed half way)\n' \
    $(( N * 1000 / (ELAPSED_MS > 0 ? ELAPSED_MS : 1) )) "$(secs "$ELAPSED_MS")" "$WORKERS"
# One read-only pass over the finished rows: who completed what, and how long
# each process took from submit to finish (a finished row's updated_ms).
R EVAL "local owners, lat = {}, {}
for _, id in ipairs(redis.call('ZRANGE', KEYS[1] .. ':done', 0, -1)) do
  local f = redis.call('HMGET', KEYS[1] .. ':p:' .. id, 'owner', 'created_ms', 'updated_ms', 'state')
  if f[4] == 'completed' then owners[f[1]] = (owners[f[1]] or 0) + 1 end
  lat[#lat + 1] = tonumber(f[3]) - tonumber(f[2])
end
table.sort(lat)
local out = {}
for k, v in pairs(owners) do out[#out + 1] = 'owner ' .. k .. ' ' .. v end
local function pct(p) return lat[math.max(1, math.ceil(#lat * p))] or 0 end
out[#out + 1] = 'latency ' .. pct(0.5) .. ' ' .. pct(0.9) .. ' ' .. pct(0.99) .. ' ' .. (lat[#lat] or 0)
return out" 1 'lash:{demo}' | sort | while read -r what a b c d; do
    case "$what" in
    owner) printf '  %-10s completed %s\n' "$a" "$b" ;;
    latency) printf '  submit-to-finish latency (all submitted at once, so it includes the wait in the queue): p50 %s ms, p90 %s ms, p99 %s ms, max %s ms\n' "$a" "$b" "$c" "$d" ;;
    esac
done
left=$(R ZCARD 'lash:{demo}:due')
leases=$(R KEYS 'lash:{demo}:lease:*' | grep -c . || true)
echo "  due rows left: $left, leases left: $leases"
one=$(R ZRANGE 'lash:{demo}:done' 0 0)
cat <<EOF

Look around (this Redis stops when the demo ends; run with --keep to keep it):
  redis-cli -s $SOCK HGETALL 'lash:{demo}:p:$one'
  redis-cli -s $SOCK HGETALL 'lash:{demo}:stats'
  redis-cli -s $SOCK ZRANGE 'lash:{demo}:done' 0 4 WITHSCORES
  redis-cli -s $SOCK XREVRANGE 'lash:{demo}:events' + - COUNT 5
  redis-cli -s $SOCK ZRANGE 'lash:{demo}:workers' 0 -1 WITHSCORES
  LASH_REDIS_URL=unix://$SOCK $BIN/lashctl --queue demo stats
EOF
[ "$(count completed)" = "$N" ] && [ "$left" = 0 ] && [ "$leases" = 0 ] ||
    { echo "demo: not every process completed" >&2; exit 1; }
say "stopping workers (SIGTERM: graceful) and Redis"
for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
PIDS=()
