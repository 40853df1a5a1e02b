# shellcheck shell=bash
# containers-sentinel.sh: the Sentinel phase of tests/deploy/containers-test.sh
# (sourced by it, after its own stack is down; it reuses that script's podman
# service, images, health loop and helpers, so CI builds the images once).
#
# deploy/ha/sentinel.compose.yml as written (plus tests/deploy/sentinel.test.yml:
# the fence-logging exec handler), through docker-compose 1.29 on podman:
#   - a primary (redis-1), a replica (redis-2), three Sentinels and 3 workers
#     given only redis-sentinel://sentinel-1:26379,...#mymaster, all healthy;
#     the Sentinels see the replica and each other, and hand out names;
#   - HA_N (1,000) exec processes of 1 s submitted with `run --rm lashctl
#     submit-bulk` (lashctl too knows only the Sentinels);
#   - a quarter of the way through, the primary's container SIGKILLed
#     (`podman kill -s KILL`); the Sentinels promote redis-2;
#   - then, on the new primary: every process completed, exactly one
#     'completed' event each, no (id, fence) run twice and every recorded
#     result from a run that reached its end, nothing due, no lease key,
#     `lashctl stats` agrees; the same worker containers (never restarted) are
#     healthy (`lash-worker --check`).
# Printed, not asserted: the time from the kill to +switch-master as a Sentinel
# reports it, to the first completion on the new primary (the events stream's
# ids are the server's milliseconds), and to the last completion.
# Functions called through wait_until look unreachable to shellcheck.
# shellcheck disable=SC2317

HA_N=${LASH_CT_HA_N:-1000}
HA_WORKERS=3
T_HA=$SECONDS
mkdir -m 0777 "$WORK/out-ha"

ha_c() { echo "${PROJECT_HA}_$1_1"; }
ha_worker() { echo "${PROJECT_HA}_worker_$1"; }
# ha_note_ip SERVICE: its container's address, kept in a file (no restarts here).
ha_note_ip() {
    pm inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(ha_c "$1")" \
        >"$WORK/ha-ip-$1"
}
# hcli SERVICE ARGS...: the host's redis-cli in the test's network namespace, to
# that service's container (no ACL in this stack); sentinels need -p 26379.
hcli() {
    local ip
    read -r ip <"$WORK/ha-ip-$1" || return 1
    shift
    nsenter --net="/run/netns/$NETNS" -- timeout 10 redis-cli -h "$ip" "$@"
}
scli() {
    local n=$1
    shift
    hcli "sentinel-$n" -p 26379 "$@"
}
master_of() { scli "$1" SENTINEL get-master-addr-by-name mymaster 2>/dev/null | head -n 1; }
# sentinel_field N FIELD: FIELD of `SENTINEL master mymaster` on Sentinel N.
sentinel_field() { scli "$1" SENTINEL master mymaster 2>/dev/null | awk -v f="$2" 'prev == f { print; exit } { prev = $0 }'; }
ha_workers() {
    local i
    for i in $(seq 1 "$HA_WORKERS"); do ha_worker "$i"; done
}

# --- up ------------------------------------------------------------------------------------
HA_UP=1
t0=$SECONDS
if compose_ha up -d --scale worker="$HA_WORKERS" >"$WORK/ha-up.log" 2>&1; then
    ok "sentinel: docker-compose -f deploy/ha/sentinel.compose.yml up -d --scale worker=$HA_WORKERS"
else
    bad "sentinel: docker-compose up: $(tail -n 10 "$WORK/ha-up.log")"
    finish
fi
mapfile -t ha_all < <(
    for s in redis-1 redis-2 sentinel-1 sentinel-2 sentinel-3; do ha_c "$s"; done
    ha_workers
)
if wait_until 120 healthy "${ha_all[@]}"; then
    HA_UP_S=$((SECONDS - t0))
    ok "sentinel: primary, replica, 3 Sentinels and $HA_WORKERS workers healthy ${HA_UP_S} s after up"
else
    bad "sentinel: not healthy 120 s after up: $(for c in "${ha_all[@]}"; do printf '%s=%s ' "$c" "$(status_of "$c")"; done)"
    pm logs --tail 5 "$(ha_worker 1)" 2>&1
    finish
fi
for s in redis-1 redis-2 sentinel-1 sentinel-2 sentinel-3; do ha_note_ip "$s"; done

# Every Sentinel knows the replica and the two others, and the replica is in
# sync: only then can they agree on a failover.
sentinels_ready() {
    local i
    [ "$(hcli redis-2 INFO replication | tr -d '\r' | grep '^master_link_status:')" = master_link_status:up ] ||
        return 1
    for i in 1 2 3; do
        [ "$(sentinel_field "$i" num-slaves)" = 1 ] && [ "$(sentinel_field "$i" num-other-sentinels)" = 2 ] ||
            return 1
    done
}
if wait_until 60 sentinels_ready; then
    ok "sentinel: each Sentinel sees the replica and the 2 other Sentinels; the replica is in sync"
else
    bad "sentinel: Sentinels not ready: $(for i in 1 2 3; do printf 'sentinel-%s slaves=%s others=%s; ' "$i" \
        "$(sentinel_field "$i" num-slaves)" "$(sentinel_field "$i" num-other-sentinels)"; done)"
    finish
fi
if [ "$(master_of 1)" = redis-1 ]; then
    ok "sentinel: SENTINEL get-master-addr-by-name mymaster says redis-1 (a name the workers resolve, not an IP)"
else
    bad "sentinel: get-master-addr-by-name says '$(master_of 1)', not redis-1"
fi
hcli redis-1 HSET "lash:{$QUEUE}:stats" events all >/dev/null

# --- submit, then kill the primary mid-drain -------------------------------------------------
seq 1 "$HA_N" | awk '{ printf "{\"id\":\"h-%d\",\"payload\":{\"ms\":1000},\"max_attempts\":5}\n", $1 }' \
    >"$WORK/ha-jobs.jsonl"
if compose_ha run --rm lashctl submit-bulk sleep <"$WORK/ha-jobs.jsonl" >"$WORK/ha-submit.log" 2>&1 &&
    grep -q "$HA_N created" "$WORK/ha-submit.log"; then
    ok "sentinel: run --rm lashctl submit-bulk through the Sentinels: $(grep -o 'submitted.*' "$WORK/ha-submit.log")"
else
    bad "sentinel: submit-bulk: $(tail -n 5 "$WORK/ha-submit.log")"
    finish
fi
due_on() { hcli "$1" ZCARD "lash:{$QUEUE}:due"; }
quarter_done() {
    local d
    d=$(due_on redis-1) && [ -n "$d" ] && [ "$d" -le $((HA_N * 3 / 4)) ]
}
wait_until 120 quarter_done || note "sentinel: a quarter was not done within 120 s; killing anyway"
for c in $(ha_workers); do pm inspect --format "$c {{.State.StartedAt}}" "$c"; done >"$WORK/ha-started"
due_at_kill=$(due_on redis-1)
pm kill -s KILL "$(ha_c redis-1)" >/dev/null
kill_ms=$(date +%s%3N)
# The moment Sentinel 1 names the new primary (+switch-master), polled.
(
    while [ "$(master_of 1)" != redis-2 ]; do sleep 0.1; done
    echo "$(($(date +%s%3N) - kill_ms))"
) >"$WORK/ha-switch" 2>/dev/null &
HA_WATCH_PIDS=$!
st=$(pm inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(ha_c redis-1)")
# "stopped" until podman's cleanup of the container has run, then "exited".
if [ "$st" = "exited 137" ] || [ "$st" = "stopped 137" ]; then
    ok "sentinel: podman kill -s KILL $(ha_c redis-1) with $due_at_kill of $HA_N processes left (running or waiting)"
else
    bad "sentinel: the primary after SIGKILL: $st"
fi
promoted() {
    local i
    for i in 1 2 3; do [ "$(master_of "$i")" = redis-2 ] || return 1; done
    hcli redis-2 ROLE | head -n 1 | grep -qx master
}
if wait_until 120 promoted; then
    ok "sentinel: the 3 Sentinels name redis-2, which is now a primary"
else
    bad "sentinel: no promotion: $(for i in 1 2 3; do printf 'sentinel-%s: %s; ' "$i" "$(master_of "$i")"; done)"
    finish
fi

# --- everything completed, exactly once, on the new primary ---------------------------------
ha_all_done() { [ "$(due_on redis-2)" = 0 ]; }
if wait_until 300 ha_all_done; then
    ok "sentinel: nothing left due on the new primary ($((SECONDS - T_HA)) s into the phase)"
else
    bad "sentinel: still due after the bound: $(due_on redis-2) rows"
fi
compose_ha run --rm lashctl --json stats </dev/null >"$WORK/ha-stats.json" 2>"$WORK/ha-stats.err"
if python3 -c 'import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
sys.exit(0 if s["completed"] == n and s["failed"] == 0 and s["abandoned"] == 0
         and s["pending"] == 0 and s["running"] == 0 else 1)' "$WORK/ha-stats.json" "$HA_N" 2>/dev/null; then
    ok "sentinel: run --rm lashctl stats (through the Sentinels, to redis-2): completed $HA_N, nothing else"
else
    bad "sentinel: lashctl stats: $(cat "$WORK/ha-stats.json" "$WORK/ha-stats.err")"
fi
leases=$(hcli redis-2 EVAL 'local n, c = 0, "0"
repeat
  local r = redis.call("SCAN", c, "MATCH", KEYS[1] .. ":lease:*", "COUNT", 1000)
  c = r[1]; n = n + #r[2]
until c == "0"
return n' 1 "lash:{$QUEUE}")
if [ "$leases" = 0 ]; then ok "sentinel: no lease key left"; else bad "sentinel: $leases lease keys left"; fi
hcli redis-2 EVAL "$EVENTS_LUA" 1 "lash:{$QUEUE}" >"$WORK/ha-events"
once=$(awk '$2 == "1"' "$WORK/ha-events" | wc -l)
other=$(awk '$2 != "1"' "$WORK/ha-events")
if [ "$once" = "$HA_N" ] && [ -z "$other" ]; then
    ok "sentinel: exactly one 'completed' event for each of the $HA_N processes, no other ending"
else
    bad "sentinel: completed events: $once ids once (want $HA_N); others: $(head -n 5 <<<"$other" | tr '\n' ';')"
fi
RAN_HA=$WORK/out-ha/ran
dup=$(awk '{ print $1, $2 }' "$RAN_HA" | sort | uniq -d | head -n 5)
if [ -s "$RAN_HA" ] && [ -z "$dup" ]; then
    ok "sentinel: no (id, fence) ran twice: $(wc -l <"$RAN_HA") runs reached their end, $(cut -d' ' -f1 "$RAN_HA" | sort -u | wc -l) distinct ids"
else
    bad "sentinel: an (id, fence) ran twice: $(tr '\n' ';' <<<"$dup")"
fi
mapfile -t ha_ids < <(seq 1 "$HA_N" | sed 's/^/h-/')
hcli redis-2 EVAL "$ROWS_LUA" 1 "lash:{$QUEUE}" "${ha_ids[@]}" >"$WORK/ha-final"
unmatched=$(awk 'NR == FNR { ran[$1 " " $2] = 1; next } !(($1 " " $4) in ran)' "$RAN_HA" "$WORK/ha-final" | head -n 5)
if [ -z "$unmatched" ]; then
    ok "sentinel: every recorded result is from a run that reached its end, under the fence Redis recorded"
else
    bad "sentinel: rows whose recorded fence has no finished run: $(tr '\n' ';' <<<"$unmatched")"
fi
again=$(cut -d' ' -f1 "$RAN_HA" | sort | uniq -d | wc -l)
note "sentinel: $again process(es) reached their end twice, each under a newer fence"

# The same worker containers, never restarted, healthy.
for c in $(ha_workers); do pm inspect --format "$c {{.State.StartedAt}}" "$c"; done >"$WORK/ha-started-after"
unhealthy=""
for c in $(ha_workers); do
    pm exec "$c" lash-worker --check >/dev/null 2>&1 && pm healthcheck run "$c" >/dev/null 2>&1 &&
        [ "$(status_of "$c")" = healthy ] || unhealthy="$unhealthy $c=$(status_of "$c")"
done
if [ -z "$unhealthy" ] && cmp -s "$WORK/ha-started" "$WORK/ha-started-after"; then
    ok "sentinel: the same $HA_WORKERS worker containers (not restarted) are healthy (lash-worker --check)"
else
    bad "sentinel: workers:$unhealthy; started before/after: $(cat "$WORK/ha-started" "$WORK/ha-started-after" | tr '\n' ';')"
fi

# Timings from the new primary's events stream: an entry id is the server's
# clock in ms (the containers share the host's), so completions after kill_ms
# were written by redis-2.
COMPLETED_AROUND_LUA='local before, first, last = "0", nil, nil
for _, e in ipairs(redis.call("XRANGE", KEYS[1] .. ":events", "-", "+")) do
  local ms = tonumber((string.match(e[1], "^(%d+)")))
  local ev
  for i = 1, #e[2], 2 do if e[2][i] == "event" then ev = e[2][i + 1] end end
  if ev == "completed" then
    if ms < tonumber(ARGV[1]) then before = tostring(ms)
    else first = first or tostring(ms); last = tostring(ms) end
  end
end
return {before, first or "0", last or "0"}'
mapfile -t around < <(hcli redis-2 EVAL "$COMPLETED_AROUND_LUA" 1 "lash:{$QUEUE}" "$kill_ms")
kill "$HA_WATCH_PIDS" 2>/dev/null
wait "$HA_WATCH_PIDS" 2>/dev/null
HA_WATCH_PIDS=""
HA_SWITCH_MS=$(cat "$WORK/ha-switch" 2>/dev/null)
HA_FIRST_MS=$((${around[1]:-0} - kill_ms))
HA_LAST_MS=$((${around[2]:-0} - kill_ms))
HA_GAP_MS=$((${around[1]:-0} - ${around[0]:-0}))
note "sentinel: $(grep -c 'sentinel' <(pm logs "$(ha_worker 1)" 2>&1)) log lines of worker 1 mention a Sentinel;" \
    "its last: $(pm logs "$(ha_worker 1)" 2>&1 | grep -i 'primary\|sentinel' | tail -n 1 | cut -c1-200)"

# --- down --------------------------------------------------------------------------------------
if compose_ha down -v -t 5 >"$WORK/ha-down.log" 2>&1; then
    ok "sentinel: docker-compose down -v"
else
    bad "sentinel: docker-compose down: $(tail -n 5 "$WORK/ha-down.log")"
fi
# shellcheck disable=SC2034 # read by the cleanup of containers-test.sh
HA_UP=0
echo "  time (sentinel): up to healthy ${HA_UP_S:-?} s; after the primary's SIGKILL:" \
    "+switch-master ${HA_SWITCH_MS:-?} ms, first completion on the new primary ${HA_FIRST_MS} ms" \
    "(no completion for ${HA_GAP_MS} ms), all $HA_N completed ${HA_LAST_MS} ms; phase $((SECONDS - T_HA)) s"
