#!/usr/bin/env bash
# netns-test.sh: several hosts on one machine, one of them cut off mid-run.
#
#   tests/deploy/netns-test.sh      (as root; LASH_BIN_DIR=... picks the binaries)
#
# Builds five network namespaces: a switch (a bridge), Redis at 10.231.0.1, and
# three workers at 10.231.0.11-13, each joined to the bridge by a veth pair. No
# address or route outside these namespaces is touched. The workers reach Redis
# over TCP through the bridge; the test itself (lashctl, redis-cli) talks to
# Redis over a unix socket in its temp dir, which no link cut can reach.
#
# Then: N processes of the exec kind "work" (append "id fence" to the worker's
# log, sleep a little, print who ran it) are submitted; while w2 is running some,
# its link is cut (the bridge end of its veth goes down), so its leases expire
# and w1 and w3 take those rows over; once they have finished them, the link is
# healed. Asserted, in Redis:
#   - every process ends `completed`, with exactly one `completed` event;
#   - each row w2 held when cut was finished by w1 or w3 under a newer fence,
#     and w2's late completes of those rows were refused (its log says "stale");
#   - w2 rejoins (a heartbeat after the heal) and runs some of M new processes.
# Prints "skipped: <reason>" and exits 0 when network namespaces are not
# permitted here. The last line is otherwise "N passed, N failed".
# Functions called through traps and wait_until look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${LASH_BIN_DIR:-$ROOT/build/bin}
N=${LASH_NETNS_N:-60}     # processes before and during the cut
M=${LASH_NETNS_M:-30}     # processes after the heal
LEASE_MS=1500             # short, so a cut-off worker's leases expire quickly
POLL_MS=200
WORK_SECONDS=0.4          # how long one process runs
QUEUE=nt
PFX="lnt$$"               # namespace names: lnt<pid>{sw,r,w1,w2,w3}
NS_SW=${PFX}sw
NS_R=${PFX}r
NET=10.231.0
REDIS_IP=$NET.1

# shellcheck source=tests/deploy/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"
skip_test() {
    echo "skipped: $*"
    exit 0
}

# --- can we? ------------------------------------------------------------------
command -v ip >/dev/null || skip_test "iproute2 (ip) is not installed"
if ! err=$(ip netns add "${PFX}probe" 2>&1); then
    skip_test "ip netns add is not permitted here: $err"
fi
ip netns del "${PFX}probe"
for b in lash-worker lashctl; do
    if [ ! -x "$BIN/$b" ]; then
        bad "$BIN/$b is missing: build it (cmake --build build) or set LASH_BIN_DIR"
        finish
    fi
done
command -v redis-server >/dev/null || { bad "redis-server is not installed"; finish; }

TMP=$(mktemp -d /tmp/lash-netns.XXXXXX)
SOCK=$TMP/redis.sock
# All the names up front, so that cleanup removes whatever was made before a failure.
NAMESPACES=("$NS_SW" "$NS_R" "${PFX}w1" "${PFX}w2" "${PFX}w3")
PIDS=()

cleanup() {
    local p ns
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for _ in $(seq 1 30); do
        local alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.1
    done
    for p in "${PIDS[@]}"; do
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    # Deleting a namespace destroys the veth ends in it, and with them their peers.
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the hosts ------------------------------------------------------------------
# host NAME NS LAST-OCTET: a namespace with eth0 at 10.231.0.LAST/24, its peer
# (v-NAME) plugged into the bridge in the switch namespace.
host() {
    local name=$1 ns=$2 octet=$3
    ip netns add "$ns" &&
        ip -n "$NS_SW" link add "v-$name" type veth peer name eth0 netns "$ns" &&
        ip -n "$NS_SW" link set "v-$name" master br0 up &&
        ip -n "$ns" link set lo up &&
        ip -n "$ns" addr add "$NET.$octet/24" dev eth0 &&
        ip -n "$ns" link set eth0 up
}
if ! err=$({ ip netns add "$NS_SW" && ip -n "$NS_SW" link set lo up &&
    ip -n "$NS_SW" link add br0 type bridge && ip -n "$NS_SW" link set br0 up; } 2>&1); then
    skip_test "cannot build a bridge inside a network namespace: $err"
fi
if ! err=$(host r "$NS_R" 1 2>&1); then
    skip_test "cannot create veth pairs between namespaces: $err"
fi
for i in 1 2 3; do
    if ! err=$(host "w$i" "${PFX}w$i" "$((10 + i))" 2>&1); then
        bad "host w$i: $err"
        finish
    fi
done
ok "five namespaces: a bridge, redis at $REDIS_IP, workers at $NET.11-13"

ip netns exec "$NS_R" redis-server --bind "$REDIS_IP" --port 6379 --protected-mode no \
    --unixsocket "$SOCK" --unixsocketperm 700 --dir "$TMP" --save '' --appendonly no \
    --daemonize no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
    [ -S "$SOCK" ] && break
    sleep 0.1
done
rcli() { timeout 10 redis-cli -s "$SOCK" "$@"; }
if [ "$(rcli PING 2>&1)" != PONG ]; then
    bad "redis-server did not start in $NS_R: $(tail -n 5 "$TMP/redis.log")"
    finish
fi
for i in 1 2 3; do
    r=$(ip netns exec "${PFX}w$i" timeout 5 redis-cli -h "$REDIS_IP" -p 6379 PING 2>&1)
    if [ "$r" = PONG ]; then
        ok "w$i reaches Redis at $REDIS_IP:6379 over its veth and the bridge"
    else
        bad "w$i cannot reach Redis: $r"
    fi
done

# Every transition in the events stream (the default level logs failures only):
# the check below counts each row's completed events.
rcli HSET "lash:{$QUEUE}:stats" events all >/dev/null

# --- the workers ------------------------------------------------------------------
cat >"$TMP/work.sh" <<'EOF'
#!/bin/sh
# One process of kind "work": read the payload, take a while, leave a trace.
cat >/dev/null
sleep "$NT_SECONDS"
echo "$LASH_ID $LASH_FENCE" >>"$NT_LOG"
printf '{"by":"%s","fence":%s}' "$NT_WORKER" "$LASH_FENCE"
EOF
chmod 0755 "$TMP/work.sh"
for i in 1 2 3; do
    ip netns exec "${PFX}w$i" env NT_WORKER="w$i" NT_LOG="$TMP/w$i.ran" NT_SECONDS="$WORK_SECONDS" \
        "$BIN/lash-worker" --redis "redis://$REDIS_IP:6379" --queue "$QUEUE" --concurrency 2 \
        --lease-ms "$LEASE_MS" --poll-ms "$POLL_MS" --grace-ms 2000 --id "w$i" \
        --handler "work=$TMP/work.sh" >"$TMP/w$i.log" 2>&1 &
    PIDS+=($!)
done
lashctl() { LASH_REDIS_URL="unix://$SOCK" LASH_QUEUE=$QUEUE "$BIN/lashctl" "$@"; }

# Redis's clock in ms (leases and heartbeats are on it).
redis_ms() {
    local t
    mapfile -t t < <(rcli TIME)
    echo $((t[0] * 1000 + t[1] / 1000)) # bash: mawk's %d stops at 2^31
}
# heartbeat W: w's last heartbeat (claim call) in Redis ms, or empty.
# heartbeat NAME: the last heartbeat of worker --id NAME (a worker's owner in
# Redis is NAME#<boot nonce>), empty when none.
heartbeat() { rcli ZRANGE "lash:{$QUEUE}:workers" 0 -1 WITHSCORES | paste - - | awk -v w="$1" 'index($1, w "#") == 1 { print $2 }'; }
# snapshot ID...: "id state owner fence result" for each row, read in one script
# so that it is one consistent moment; the owner without its boot nonce.
SNAP_LUA='local out = {}
for _, id in ipairs(ARGV) do
  local r = redis.call("HMGET", KEYS[1] .. ":p:" .. id, "state", "owner", "fence", "result")
  local result = string.gsub(r[4] or "-", "%s", "_")
  local owner = r[2] and string.match(r[2], "^(.-)#") or r[2] or "-"
  out[#out + 1] = table.concat({id, r[1] or "-", owner, r[3] or "-", result}, " ")
end
return out'
snapshot() { rcli EVAL "$SNAP_LUA" 1 "lash:{$QUEUE}" "$@"; }
# completed_events: "id count" of `completed` events in the stream, and
# "id other:<event>" for any other terminal event.
EVENTS_LUA='local c, out = {}, {}
for _, e in ipairs(redis.call("XRANGE", KEYS[1] .. ":events", "-", "+")) do
  local ev, id
  for i = 1, #e[2], 2 do
    if e[2][i] == "event" then ev = e[2][i + 1] elseif e[2][i] == "id" then id = e[2][i + 1] end
  end
  if ev == "completed" then c[id] = (c[id] or 0) + 1
  elseif ev == "failed" or ev == "abandoned" or ev == "cancelled" then out[#out + 1] = id .. " other:" .. ev end
end
for id, n in pairs(c) do out[#out + 1] = id .. " " .. n end
return out'

# wait_until SECONDS CMD...: poll CMD every 0.1 s (a liveness bound, not a timing).
wait_until() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}
gone() { ! kill -0 "$1" 2>/dev/null; }
all_beating() { [ -n "$(heartbeat w1)" ] && [ -n "$(heartbeat w2)" ] && [ -n "$(heartbeat w3)" ]; }
if wait_until 20 all_beating; then
    ok "all three workers are up (heartbeats in lash:{$QUEUE}:workers)"
else
    bad "not every worker came up: $(rcli ZRANGE "lash:{$QUEUE}:workers" 0 -1 | tr '\n' ' ')"
    tail -n 5 "$TMP"/w*.log
    finish
fi

submit() { # submit PREFIX COUNT
    seq 1 "$2" | awk -v p="$1" '{ printf "{\"kind\":\"work\",\"id\":\"%s-%d\",\"payload\":{\"i\":%d},\"max_attempts\":5}\n", p, $1, $1 }' |
        lashctl submit-bulk work >"$TMP/submit-$1.out" 2>&1
}
mapfile -t IDS1 < <(seq 1 "$N" | sed 's/^/a-/')
mapfile -t IDS2 < <(seq 1 "$M" | sed 's/^/b-/')
if submit a "$N"; then ok "submitted $N processes"; else bad "submit: $(cat "$TMP/submit-a.out")"; fi

# --- the cut ------------------------------------------------------------------------
w2_busy() { [ "$(snapshot "${IDS1[@]}" | awk '$2 == "running" && $3 == "w2"' | wc -l)" -ge 2 ]; }
if ! wait_until 20 w2_busy; then
    bad "w2 never ran two processes at once; cannot cut it mid-run"
    finish
fi
ip -n "$NS_SW" link set v-w2 down
cut_ms=$(redis_ms)
# What w2 held at the moment of the cut: it can no longer record any of it.
snapshot "${IDS1[@]}" | awk '$2 == "running" && $3 == "w2" { print $1, $4 }' >"$TMP/held"
hb_cut=$(heartbeat w2) # read after the snapshot: anything w2 sent before the cut has landed
mapfile -t HELD < <(cut -d' ' -f1 "$TMP/held")
if [ -s "$TMP/held" ]; then
    ok "cut w2's link while it held $(wc -l <"$TMP/held") running row(s): $(tr '\n' ' ' <"$TMP/held")"
else
    bad "w2 held no running row when cut"
fi
if ip netns exec "${PFX}w2" timeout 3 redis-cli -h "$REDIS_IP" -p 6379 PING >/dev/null 2>&1; then
    bad "w2 still reaches Redis with its link down"
else
    ok "w2 cannot reach Redis while cut"
fi
# The others take w2's rows over once their leases run out, and finish them.
held_done_by_others() {
    local id fence
    while read -r id fence; do
        snapshot "$id" | awk -v f="$fence" '$2 == "completed" && $3 != "w2" && $4 > f { ok = 1 } END { exit !ok }' ||
            return 1
    done <"$TMP/held"
}
if wait_until 30 held_done_by_others; then
    ok "w1/w3 took over and completed every row w2 held ($(($(redis_ms) - cut_ms)) ms after the cut; lease $LEASE_MS ms)"
else
    bad "w2's rows were not completed by the others: $(snapshot "${HELD[@]}" | tr '\n' ';')"
fi
if [ "$(heartbeat w2)" = "$hb_cut" ]; then
    ok "no heartbeat from w2 while it was cut off"
else
    bad "w2's heartbeat moved while it was cut off"
fi
ip -n "$NS_SW" link set v-w2 up
heal_ms=$(redis_ms)
echo "  healed w2's link after $((heal_ms - cut_ms)) ms"

all_completed() { # all_completed ID...
    [ "$(snapshot "$@" | awk '$2 != "completed"' | wc -l)" = 0 ]
}
if wait_until 60 all_completed "${IDS1[@]}"; then
    ok "all $N first processes completed"
else
    bad "not all first processes completed: $(snapshot "${IDS1[@]}" | awk '$2 != "completed"' | head -n 5 | tr '\n' ';')"
fi

# --- the healed worker rejoins ----------------------------------------------------------
w2_back() { local h; h=$(heartbeat w2) && [ -n "$h" ] && [ "$h" -gt "$heal_ms" ]; }
if wait_until 40 w2_back; then
    ok "w2 rejoined: a heartbeat $(($(heartbeat w2) - heal_ms)) ms after the heal"
else
    bad "w2 did not rejoin within 40 s of the heal: $(tail -n 5 "$TMP/w2.log")"
fi
if submit b "$M"; then ok "submitted $M more processes after the heal"; else bad "submit: $(cat "$TMP/submit-b.out")"; fi
if wait_until 60 all_completed "${IDS2[@]}"; then
    ok "all $M later processes completed"
else
    bad "not all later processes completed: $(snapshot "${IDS2[@]}" | awk '$2 != "completed"' | head -n 5 | tr '\n' ';')"
fi
by_w2=$(snapshot "${IDS2[@]}" | awk '$2 == "completed" && $3 == "w2"' | wc -l)
if [ "$by_w2" -ge 1 ]; then
    ok "the healed w2 took new work: it ran $by_w2 of the $M later processes"
else
    bad "w2 ran none of the $M later processes"
fi

# --- exactly once, in Redis ------------------------------------------------------------
snapshot "${IDS1[@]}" "${IDS2[@]}" >"$TMP/final"
total=$((N + M))
n_done=$(awk '$2 == "completed"' "$TMP/final" | wc -l)
if [ "$n_done" = "$total" ]; then
    ok "every one of the $total rows is completed"
else
    bad "$n_done of $total rows completed: $(awk '$2 != "completed"' "$TMP/final" | head -n 5 | tr '\n' ';')"
fi
rcli EVAL "$EVENTS_LUA" 1 "lash:{$QUEUE}" >"$TMP/events"
once=$(awk '$2 == "1"' "$TMP/events" | wc -l)
other=$(awk '$2 != "1"' "$TMP/events")
if [ "$once" = "$total" ] && [ -z "$other" ]; then
    ok "exactly one 'completed' event per process ($total), no other ending"
else
    bad "completed events: $once ids once (want $total); others: $(head -n 5 <<<"$other" | tr '\n' ';')"
fi
if stats=$(lashctl --json stats 2>&1) &&
    python3 -c 'import json, sys
s = json.loads(sys.argv[1]); t = int(sys.argv[2])
sys.exit(0 if s["completed"] == t and s["total_completed"] == t and s["failed"] == 0
         and s["abandoned"] == 0 and s["pending"] == 0 and s["running"] == 0 else 1)' "$stats" "$total"; then
    ok "lashctl stats: completed $total, total_completed $total, nothing failed, pending or running"
else
    bad "lashctl stats: $stats"
fi

# --- w2's late completes were refused ---------------------------------------------------
# Each row w2 held: the recorded run is someone else's, under a newer fence.
while read -r id fence; do
    line=$(grep "^$id " "$TMP/final")
    read -r _ state owner final_fence result <<<"$line"
    if [ "$state" = completed ] && [ "$owner" != w2 ] && [ "$final_fence" -gt "$fence" ] &&
        ! grep -q '"by":"w2"' <<<"$result"; then
        ok "$id: held by w2 at fence $fence; recorded run is $owner's at fence $final_fence ($result)"
    else
        bad "$id: held by w2 at fence $fence, but Redis has: $line"
    fi
done <"$TMP/held"
# w2 ran them to the end during the cut, then tried to complete them.
late=0
while read -r id fence; do
    grep -qx "$id $fence" "$TMP/w2.ran" 2>/dev/null && late=$((late + 1))
done <"$TMP/held"
refused() {
    local id fence
    while read -r id fence; do
        grep -qF "complete of $id (fence $fence) refused: stale lease" "$TMP/w2.log" && return 0
    done <"$TMP/held"
    return 1
}
if [ "$late" -ge 1 ]; then
    ok "w2 finished $late cut-off process(es) during the cut (its handler log has their 'id fence')"
    if wait_until 30 refused; then
        ok "Redis refused w2's late completes; its log says: $(grep -F 'refused: stale lease' "$TMP/w2.log" | head -n 1 | sed 's/.*complete/complete/')"
    else
        bad "w2's log shows no refused (stale) complete for the rows it held: $(grep -iE 'lease|stale' "$TMP/w2.log" | head -n 5)"
    fi
else
    # It stopped them itself (its own lease estimate ran out first): nothing late to refuse.
    if grep -qE 'lease expired before it could be renewed|outcome discarded' "$TMP/w2.log"; then
        ok "w2 stopped its cut-off processes itself when its leases ran out"
    else
        bad "w2 neither finished nor stopped the processes it held"
    fi
fi
echo "  w2 log: $(grep -cF 'refused: stale lease' "$TMP/w2.log") stale refusals," \
    "$(grep -c 'lease expired before' "$TMP/w2.log") local lease expiries," \
    "$(grep -c 'no reply from Redis' "$TMP/w2.log") reply timeouts"

# --- graceful stop --------------------------------------------------------------------------
for i in 1 2 3; do
    pid=${PIDS[$i]}
    kill -TERM "$pid"
    if wait_until 15 gone "$pid"; then
        wait "$pid"
        rc=$?
        if [ "$rc" = 0 ]; then ok "w$i: SIGTERM, exit 0"; else bad "w$i: SIGTERM, exit $rc"; fi
    else
        bad "w$i still running 15 s after SIGTERM"
    fi
done

# --- a refused connection says why --------------------------------------------------------
# A Redis in protected mode (no bind, no password) answers a client from another
# host with DENIED and closes. A worker logged "Connection reset by peer" or
# "Server closed the connection" instead (its HELLO took the DENIED as "HELLO not
# supported", or a write failed before the DENIED was read).
ip netns exec "$NS_R" redis-server --port 6380 --protected-mode yes --dir "$TMP" --save '' \
    --appendonly no --daemonize no >"$TMP/redis-protected.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do
    ip netns exec "$NS_R" redis-cli -p 6380 PING >/dev/null 2>&1 && break
    sleep 0.1
done
ip netns exec "${PFX}w1" timeout 3 "$BIN/lash-worker" --redis "redis://$REDIS_IP:6380" \
    --builtin noop >"$TMP/denied.log" 2>&1
said=$(grep -c 'DENIED Redis is running in protected mode' "$TMP/denied.log")
other=$(grep -c 'warn' "$TMP/denied.log")
if [ "$said" -gt 0 ] && [ "$said" = "$other" ]; then
    ok "a worker refused by a Redis in protected mode logs the DENIED (each of $said tries)"
else
    bad "a refused worker did not say why ($said of $other warnings): $(grep warn "$TMP/denied.log" | head -n 2)"
fi
finish
