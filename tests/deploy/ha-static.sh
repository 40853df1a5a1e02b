#!/usr/bin/env bash
# ha-static.sh: the Sentinel and Cluster deployment examples (deploy/ha/),
# checked without a Docker engine, like check-static.sh does for the main one:
#   - each compose file passes `docker-compose config` (Debian's compose v1);
#   - the workers and lashctl are configured by environment only, with a URL of
#     the right kind (redis-sentinel://...#mymaster, or one Cluster node), and
#     the Sentinel config monitors that master name;
#   - the systemd environment examples hold URLs lash-worker accepts (it starts
#     with each for a second and must log "starting: redis <url>", never a URL
#     error; the addresses are examples, so it never gets further);
#   - a Sentinel loads deploy/ha/sentinel.conf (a real redis-sentinel, temp dir).
# The Sentinel stack is also run for real, in containers, by
# tests/deploy/containers-sentinel.sh (a phase of containers-test.sh); these
# checks stay for hosts where that one skips, and for the Cluster file, which
# no test starts in containers.
# The last line is "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
# shellcheck source=tests/deploy/tap.sh
. tests/deploy/tap.sh
TMP=$(mktemp -d /tmp/lash-ha-static.XXXXXX)
SPID=""
# shellcheck disable=SC2317 # called by the trap below
cleanup() {
    if [ -n "$SPID" ]; then
        kill "$SPID" 2>/dev/null
        wait "$SPID" 2>/dev/null
    fi
    rm -rf "$TMP"
}
trap cleanup EXIT
BIN=${LASH_BUILD_DIR:-$ROOT/build}/bin

for f in deploy/ha/sentinel.compose.yml deploy/ha/cluster.compose.yml; do
    if docker-compose -f "$f" config >"$TMP/resolved.yml" 2>"$TMP/err"; then
        ok "$f: docker-compose config accepts it"
    else
        bad "$f: docker-compose config: $(head -3 "$TMP/err")"
        continue
    fi
    case $f in
    *sentinel*) want='redis-sentinel://sentinel-1:26379,sentinel-2:26379,sentinel-3:26379#mymaster' ;;
    *) want='redis://redis-1:6379' ;;
    esac
    n=$(grep -c "LASH_REDIS_URL: $want" "$TMP/resolved.yml")
    if [ "$n" = 2 ]; then
        ok "$f: worker and lashctl use $want"
    else
        bad "$f: expected the worker and lashctl to use $want ($n found)"
    fi
    if grep -q "stop_grace_period: 15s" "$TMP/resolved.yml"; then
        ok "$f: workers get their drain time"
    else
        bad "$f: no 15 s stop grace period"
    fi
done
if grep -q "^sentinel monitor mymaster redis-1 6379 2$" deploy/ha/sentinel.conf; then
    ok "sentinel.conf monitors mymaster (the URL's #fragment)"
else
    bad "sentinel.conf does not monitor mymaster"
fi

if [ -x "$BIN/lash-worker" ]; then
    for f in deploy/ha/lash-worker.*.env; do
        url=$(sed -n 's/^LASH_REDIS_URL=//p' "$f")
        out=$(env -i LASH_REDIS_URL="$url" LASH_FAILOVER_MS=500 timeout 1 "$BIN/lash-worker" \
            --builtin noop 2>&1)
        if [ -n "$url" ] && grep -q "starting: redis ${url%%@*}@" <<<"$out" &&
            ! grep -q "URL" <<<"$out"; then
            ok "$f: lash-worker accepts $url"
        else
            bad "$f: lash-worker says: $out"
        fi
    done
else
    bad "no $BIN/lash-worker (build first)"
fi

if command -v redis-sentinel >/dev/null; then
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    sed "s/^port 26379\$/port $port\nbind 127.0.0.1/; s/redis-1 6379/127.0.0.1 1/" \
        deploy/ha/sentinel.conf >"$TMP/s.conf"
    echo "dir $TMP" >>"$TMP/s.conf"
    redis-sentinel "$TMP/s.conf" >"$TMP/s.log" 2>&1 &
    SPID=$!
    sleep 0.5
    if kill -0 "$SPID" 2>/dev/null; then
        ok "redis-sentinel loads sentinel.conf"
    else
        bad "redis-sentinel refused sentinel.conf: $(tail -3 "$TMP/s.log")"
        SPID=""
    fi
else
    bad "redis-sentinel is not installed"
fi
finish
