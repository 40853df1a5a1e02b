#!/usr/bin/env bash
# containers-test.sh: the real deploy/Dockerfile image and the real
# docker-compose.yml, run with podman on this machine (no Docker engine, no
# container registry), scaled, killed and restarted.
#
#   tests/deploy/containers-test.sh          (as root; tests/run.sh installs the packages)
#
# What it does, in order:
#   - a private podman: every piece of container state under $LASH_CT_DIR
#     (default /var/tmp/lash-containers) through CONTAINERS_CONF and
#     CONTAINERS_STORAGE_CONF, runtime runc (crun refuses hybrid cgroups here),
#     default ulimits set (crun/runc cannot raise them here), images in docker
#     format (BUILDAH_FORMAT=docker, or HEALTHCHECK is dropped);
#   - debian:12-slim made with deploy/debian-base.sh (debootstrap, once: it is
#     kept in that storage for the next run);
#   - the two images built with `podman build` from deploy/Dockerfile (lash:local
#     and, --target redis, lash-redis:local): build time and image size;
#   - `podman system service` inside a network namespace of its own, so that
#     netavark's bridge, nft tables and ip_forward live and die there and the
#     host's stay as they were (checked at the end); docker-compose (v1) talks to
#     it through DOCKER_HOST, in a copy of the repository where the README's
#     steps run as written (cp .env.example .env, new passwords, make-acl.sh,
#     LASH_ACL_FILE, up -d --scale worker=2, run --rm lashctl ...). Test-only
#     additions go through .env: COMPOSE_FILE adds tests/deploy/compose.test.yml
#     (the fence-logging exec handler), and an admin user is appended to the
#     rendered ACL file so that the test can look (ACL LOG, rows, leases);
#   - healthchecks: podman schedules them with systemd timers, and there is no
#     systemd here, so a loop runs `podman healthcheck run` every 2 s;
#   - N (2,000) exec processes submitted with `run --rm lashctl submit-bulk`,
#     `--scale worker=4`, one worker SIGKILLed (`podman kill -s KILL`) while it
#     holds rows, scale in to 2 (SIGTERM: grace, then leases released), the
#     Redis container restarted (AOF in the volume), then: every process
#     completed, exactly one `completed` event each, no (id, fence) run twice and
#     every recorded result from a run that reached its end, nothing due or
#     leased, the ACL log empty, the workers healthy (`lash-worker --check`);
#   - then, with the same images and podman service, the Sentinel stack of
#     deploy/ha/sentinel.compose.yml: tests/deploy/containers-sentinel.sh (a
#     primary SIGKILLed in the middle of a drain; see there).
# For working on one phase (not for CI): LASH_CT_PHASES=sentinel runs only the
# Sentinel stack (default "main sentinel"); LASH_CT_REUSE_IMAGES=1 keeps the two
# images at the end and uses them, if present, instead of building;
# LASH_CT_HOLD=1 leaves the stack up after a failure until $STATE/hold is gone.
# Timings are printed ("  time: ..."), never asserted beyond liveness bounds.
# If podman cannot run a container at all here, one "skipped" line and exit 0.
# The last line is "N passed, N failed".
# Functions called through traps and wrappers look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${LASH_CT_DIR:-/var/tmp/lash-containers}
N=${LASH_CT_N:-2000}
PROJECT=lashct
PHASES=${LASH_CT_PHASES:-main sentinel}
REUSE_IMAGES=${LASH_CT_REUSE_IMAGES:-0}
QUEUE=default
T_START=$SECONDS

# shellcheck source=tests/deploy/tap.sh
. "$ROOT/tests/deploy/tap.sh"
skip_all() {
    echo "containers-test: skipped: $*"
    exit 0
}
note() { echo "  $*"; }

[ "$(id -u)" = 0 ] || skip_all "needs root (rootful podman, network namespaces, debootstrap)"
for tool in podman docker-compose debootstrap nsenter ip; do
    command -v "$tool" >/dev/null ||
        { bad "$tool is not installed (tests/run.sh installs the packages)"; finish; }
done

# --- a private podman -------------------------------------------------------------
mkdir -p "$STATE/conf" "$STATE/tmp"
# One run at a time per state directory (same storage, same project name).
exec 9>"$STATE/lock"
flock -w 900 9 || { bad "another containers-test.sh holds $STATE/lock"; finish; }
WORK=$(mktemp -d "$STATE/tmp/run.XXXXXX")
export CONTAINERS_CONF=$STATE/conf/containers.conf
export CONTAINERS_STORAGE_CONF=$STATE/conf/storage.conf
export BUILDAH_FORMAT=docker
export TMPDIR=$STATE/tmp
cat >"$CONTAINERS_STORAGE_CONF" <<EOF
[storage]
driver = "overlay"
graphroot = "$STATE/storage"
runroot = "$STATE/run"
EOF
cat >"$CONTAINERS_CONF" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
init_path = "/usr/bin/catatonit"
log_driver = "k8s-file"

[network]
network_backend = "netavark"
network_config_dir = "$STATE/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$STATE/events.log"
tmp_dir = "$STATE/libpod"
EOF

NETNS=lash-ct-$$
SOCK=$STATE/podman.sock
SVC_PID=""
HEALTH_PID=""
KILL_WATCH_PID=""
HA_UP=0
HA_WATCH_PIDS=""
HAD_RUN_NETWORKS=0
[ -e /run/containers/networks ] && HAD_RUN_NETWORKS=1
fwd_before=$(cat /proc/sys/net/ipv4/ip_forward)
nft_before=$(nft list tables 2>/dev/null)

# pm ARGS...: podman inside the test's network namespace (anything that starts a
# container sets up its network where podman runs).
pm() { nsenter --net="/run/netns/$NETNS" -- podman "$@"; }
export DOCKER_HOST=unix://$SOCK
compose() { (cd "$WORK/proj" && timeout "${CT_TIMEOUT:-300}" docker-compose "$@"); }
# compose_ha ARGS...: the same for the Sentinel stack (containers-sentinel.sh),
# a project of its own; the shell's variables override the .env of the main one.
PROJECT_HA=lashha
compose_ha() {
    (cd "$WORK/proj" && LASH_TEST_OUT=$WORK/out-ha LASH_QUEUES=$QUEUE \
        LASH_HANDLERS=sleep=/usr/local/libexec/lash/fence-handler \
        timeout "${CT_TIMEOUT:-300}" docker-compose -p "$PROJECT_HA" \
        -f deploy/ha/sentinel.compose.yml -f tests/deploy/sentinel.test.yml "$@")
}

cleanup() {
    trap - EXIT
    # LASH_CT_HOLD=1: keep everything up after a failure until $STATE/hold is removed.
    if [ "${LASH_CT_HOLD:-0}" = 1 ] && [ "$failed" != 0 ]; then
        echo "  holding: netns $NETNS, DOCKER_HOST=$DOCKER_HOST; rm $STATE/hold to clean up"
        touch "$STATE/hold"
        while [ -e "$STATE/hold" ]; do sleep 2; done
    fi
    [ -n "$KILL_WATCH_PID" ] && kill "$KILL_WATCH_PID" 2>/dev/null
    # tail -f of worker 3's log file (it would follow the deleted file forever).
    [ -n "${logs_pid:-}" ] && kill "$logs_pid" 2>/dev/null
    if [ -S "$SOCK" ] && [ -f "$WORK/proj/.env" ]; then
        CT_TIMEOUT=120 compose down -v --remove-orphans -t 5 >"$WORK/down.log" 2>&1
    fi
    if [ "$HA_UP" = 1 ] && [ -S "$SOCK" ]; then
        # shellcheck disable=SC2086 # a list of pids
        [ -n "$HA_WATCH_PIDS" ] && kill $HA_WATCH_PIDS 2>/dev/null
        CT_TIMEOUT=120 compose_ha down -v --remove-orphans -t 5 >"$WORK/ha-down.log" 2>&1
    fi
    if [ -n "$HEALTH_PID" ]; then
        kill "$HEALTH_PID" 2>/dev/null
        wait "$HEALTH_PID" 2>/dev/null
    fi
    # Anything compose did not remove (a test that failed half way).
    if [ -e "/run/netns/$NETNS" ]; then
        pm ps -aq --filter "label=com.docker.compose.project" 2>/dev/null |
            xargs -r nsenter --net="/run/netns/$NETNS" -- podman rm -f -t 0 >/dev/null 2>&1
    fi
    if [ -n "$SVC_PID" ]; then
        kill "$SVC_PID" 2>/dev/null
        wait "$SVC_PID" 2>/dev/null
    fi
    # The images are rebuilt by every run (the build is part of the test); the
    # debootstrapped base stays for the next one.
    if [ "$REUSE_IMAGES" != 1 ]; then
        podman rmi -f lash:local lash-redis:local >/dev/null 2>&1
        podman image prune -f >/dev/null 2>&1
    fi
    [ -e "/run/netns/$NETNS" ] && ip netns del "$NETNS"
    # netavark keeps its IP allocations and aardvark-dns its state in
    # /run/containers/networks whatever the configuration says; leave /run as
    # it was.
    if [ "$HAD_RUN_NETWORKS" = 0 ]; then
        rm -rf /run/containers/networks
        rmdir /run/containers 2>/dev/null
    fi
    # The logs of the last run stay for a post-mortem (build, compose, worker 3).
    rm -rf "$STATE/last-run"
    mv "$WORK" "$STATE/last-run" 2>/dev/null
    rm -rf "$STATE/last-run/proj" "$SOCK"
}
trap cleanup EXIT

# --- debian:12-slim, made locally once -------------------------------------------------
t0=$SECONDS
if ! "$ROOT/deploy/debian-base.sh" >"$WORK/base.log" 2>&1; then
    bad "deploy/debian-base.sh could not make debian:12-slim: $(tail -n 5 "$WORK/base.log")"
    finish
fi
ok "debian:12-slim is local ($(tail -n 1 "$WORK/base.log" | sed 's/^debian-base.sh: //'))"
BASE_S=$((SECONDS - t0))

# Can podman run a container here at all? Only this decides a skip.
ip netns add "$NETNS" && ip -n "$NETNS" link set lo up
if ! out=$(pm run --rm --network none debian:12-slim true 2>&1); then
    skip_all "podman cannot run a container on this machine: $(tail -n 1 <<<"$out")"
fi

# --- the images ---------------------------------------------------------------------
# A copy of the repository's files, where the README's steps can write .env and
# the ACL file without touching the checkout.
mkdir -p "$WORK/proj"
if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$ROOT" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$WORK/proj")
else
    (cd "$ROOT" && tar -c --exclude='./build*' --exclude=./.git --exclude=./.env . | tar -x -C "$WORK/proj")
fi
t0=$SECONDS
BUILD_MSG="from deploy/Dockerfile"
# --network host: RUN apt-get reaches the mirror the way the host does, and the
# build sets up no container network at all. --pull=never: nothing may come
# from a registry. --no-cache: the build time is a real one, every run. The two
# builds share only the base, so they run side by side.
build() { (cd "$WORK/proj" && podman build --pull=never --no-cache --network host -f deploy/Dockerfile "$@" .); }
if [ "$REUSE_IMAGES" = 1 ] && podman image exists lash:local && podman image exists lash-redis:local; then
    BUILD_MSG="kept from an earlier run (LASH_CT_REUSE_IMAGES=1)"
    build_rc=0 redis_rc=0
else
    build -t lash:local >"$WORK/build.log" 2>&1 &
    build_pid=$!
    build --target redis -t lash-redis:local >"$WORK/build-redis.log" 2>&1
    redis_rc=$?
    wait "$build_pid"
    build_rc=$?
    cat "$WORK/build-redis.log" >>"$WORK/build.log"
fi
if [ "$build_rc" = 0 ] && [ "$redis_rc" = 0 ]; then
    BUILD_S=$((SECONDS - t0))
    ok "podman build: lash:local and lash-redis:local $BUILD_MSG in ${BUILD_S} s"
else
    bad "podman build failed: $(tail -n 15 "$WORK/build.log")"
    finish
fi
size() { podman image inspect --format '{{.Size}}' "$1" | awk '{ printf "%.1f MB", $1 / 1e6 }'; }
note "image sizes: lash:local $(size lash:local), lash-redis:local $(size lash-redis:local)," \
    "debian:12-slim $(size debian:12-slim)"
hc=$(podman image inspect --format '{{json .Config.Healthcheck}}' lash:local)
if grep -q 'lash-worker' <<<"$hc" && grep -q '"--check"' <<<"$hc"; then
    ok "lash:local keeps its HEALTHCHECK (lash-worker --check)"
else
    bad "lash:local has no HEALTHCHECK: $hc"
fi
user=$(podman image inspect --format '{{.Config.User}}' lash:local)
if [ "$user" = lash ]; then ok "lash:local runs as user lash"; else bad "lash:local runs as '$user'"; fi

# --- the podman service and the README's steps ------------------------------------------
nsenter --net="/run/netns/$NETNS" -- podman system service --time=0 "unix://$SOCK" \
    >"$WORK/service.log" 2>&1 &
SVC_PID=$!
for _ in $(seq 1 100); do
    [ -S "$SOCK" ] && podman --remote --url "unix://$SOCK" version >/dev/null 2>&1 && break
    sleep 0.1
done
if ! podman --remote --url "unix://$SOCK" version >/dev/null 2>&1; then
    bad "podman system service did not answer on $SOCK: $(tail -n 5 "$WORK/service.log")"
    finish
fi

# The loop that stands in for systemd's healthcheck timers.
# A failed run is logged with what the check said (podman keeps its output).
health_loop() {
    local c
    while :; do
        for c in $(pm ps --filter "label=com.docker.compose.project" --format '{{.Names}}'); do
            pm healthcheck run "$c" >/dev/null 2>&1 ||
                echo "$(date +%s) $c $(pm inspect --format '{{range .State.Health.Log}}{{.ExitCode}} {{.Output}};{{end}}' "$c" 2>&1 |
                    tr '\n' ' ' | tail -c 200)" >>"$WORK/unhealthy" &
        done
        wait
        sleep 4
    done
}
health_loop &
HEALTH_PID=$!

rand() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
WORKER_PW=w-$(rand)
OPERATOR_PW=o-$(rand)
ADMIN_PW=a-$(rand)
mkdir -m 0777 "$WORK/out"
(
    cd "$WORK/proj" || exit 1
    set -e
    # README, "Docker Compose" and "Running without Docker: podman":
    cp .env.example .env
    sed -i -e "s/^LASH_WORKER_PASSWORD=.*/LASH_WORKER_PASSWORD=$WORKER_PW/" \
        -e "s/^LASH_OPERATOR_PASSWORD=.*/LASH_OPERATOR_PASSWORD=$OPERATOR_PW/" .env
    deploy/make-acl.sh --env-file .env --out deploy/users.local.acl
    echo LASH_ACL_FILE=./deploy/users.local.acl >>.env
    # Test-only: the fence-logging handler, a project name, and an admin user.
    {
        echo "COMPOSE_PROJECT_NAME=$PROJECT"
        echo "COMPOSE_FILE=docker-compose.yml:tests/deploy/compose.test.yml"
        echo "LASH_TEST_OUT=$WORK/out"
    } >>.env
    sed -i 's#^LASH_HANDLERS=.*#LASH_HANDLERS=sleep=/usr/local/libexec/lash/fence-handler#' .env
    echo "user lash-test-admin on #$(printf '%s' "$ADMIN_PW" | sha256sum | cut -d' ' -f1) ~* &* +@all" \
        >>deploy/users.local.acl
) >"$WORK/setup.log" 2>&1 || { bad "the README's setup steps failed: $(cat "$WORK/setup.log")"; finish; }
ok "README steps: .env from .env.example with new passwords, users.local.acl from make-acl.sh"

REDIS_C=${PROJECT}_redis_1
worker_c() { echo "${PROJECT}_worker_$1"; }
# rcli ARGS...: the host's redis-cli, inside the test's network namespace, to the
# Redis container's address, as the test's admin user (far cheaper than a
# `podman exec` per look on a busy machine). redis_addr looks the address up
# again (after a restart); it goes through a file for the background watchers.
redis_addr() {
    pm inspect --format '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$REDIS_C" \
        >"$WORK/redis-ip"
}
rcli() {
    local ip
    read -r ip <"$WORK/redis-ip" || return 1
    REDISCLI_AUTH=$ADMIN_PW nsenter --net="/run/netns/$NETNS" -- \
        timeout 10 redis-cli -h "$ip" --user lash-test-admin "$@"
}
status_of() { pm inspect --format '{{.State.Health.Status}}' "$1" 2>/dev/null; }
healthy() {
    local c
    for c in "$@"; do [ "$(status_of "$c")" = healthy ] || return 1; done
}
# wait_until SECONDS CMD...: poll CMD every second (a liveness bound, not a timing).
wait_until() {
    local limit=$1
    shift
    local end=$((SECONDS + limit))
    while ((SECONDS < end)); do
        "$@" && return 0
        sleep 1
    done
    return 1
}

# rows_of ID...: "id state owner fence" of those rows.
ROWS_LUA='local out = {}
for _, id in ipairs(ARGV) do
  local r = redis.call("HMGET", KEYS[1] .. ":p:" .. id, "state", "owner", "fence")
  out[#out + 1] = table.concat({id, r[1] or "-", r[2] or "-", r[3] or "-"}, " ")
end
return out'
rows_of() { rcli EVAL "$ROWS_LUA" 1 "lash:{$QUEUE}" "$@"; }
# "id N" for each id with N 'completed' events, "id other:EVENT" for any other ending.
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

# final_checks: after the last phase, nothing left and the host as it was.
final_checks() {
    left=$(pm ps -aq | wc -l)
    vols=$(pm volume ls -q | wc -l)
    if [ "$left" = 0 ] && [ "$vols" = 0 ]; then
        ok "no container and no volume left in the private storage"
    else
        bad "$left container(s), $vols volume(s) left"
    fi
    if [ "$(cat /proc/sys/net/ipv4/ip_forward)" = "$fwd_before" ] &&
        [ "$(nft list tables 2>/dev/null)" = "$nft_before" ]; then
        ok "the host's ip_forward ($fwd_before) and nft tables are as before (netavark worked in $NETNS)"
    else
        bad "the host's network changed: ip_forward $(cat /proc/sys/net/ipv4/ip_forward) (was $fwd_before), nft: $(nft list tables 2>&1 | tr '\n' ' ')"
    fi
}

# LASH_CT_PHASES without "main": straight to the Sentinel stack.
if [[ " $PHASES " != *" main "* ]]; then
    # shellcheck source=tests/deploy/containers-sentinel.sh
    . "$ROOT/tests/deploy/containers-sentinel.sh"
    final_checks
    echo "  time: build ${BUILD_S:-?} s, test $((SECONDS - T_START)) s"
    finish
fi

t0=$SECONDS
if compose up -d --scale worker=2 >"$WORK/up.log" 2>&1; then
    ok "docker-compose up -d --scale worker=2 (Redis healthy first, then the workers)"
else
    bad "docker-compose up: $(tail -n 10 "$WORK/up.log")"
    finish
fi
if wait_until 120 healthy "$REDIS_C" "$(worker_c 1)" "$(worker_c 2)"; then
    UP_S=$((SECONDS - t0))
    ok "Redis and 2 workers healthy ${UP_S} s after up (workers: lash-worker --check)"
    redis_addr
else
    bad "not healthy 120 s after up: redis $(status_of "$REDIS_C"), workers $(status_of "$(worker_c 1)") $(status_of "$(worker_c 2)")"
    pm logs --tail 5 "$(worker_c 1)" 2>&1
    finish
fi
conf=$(rcli CONFIG GET appendonly | tr '\n' ' ')
if [ "$conf" = "appendonly yes " ] && [ "$(rcli ACL WHOAMI)" = lash-test-admin ]; then
    ok "Redis runs deploy/redis.conf (appendonly yes) with the rendered ACL file"
else
    bad "Redis config: '$conf', whoami $(rcli ACL WHOAMI)"
fi

# Every transition in the events stream (the default level logs failures only):
# the checks below count released and completed events.
rcli HSET "lash:{$QUEUE}:stats" events all >/dev/null

# --- submit N processes ------------------------------------------------------------------
# Most sleep 1 s; every 100th sleeps 45 s: longer than the 10 s SIGTERM grace
# plus the time docker-compose takes to get to the SIGTERM.
seq 1 "$N" | awk '{ printf "{\"id\":\"p-%d\",\"payload\":{\"ms\":%d},\"max_attempts\":5}\n", $1, ($1 % 100 == 0) ? 45000 : 1000 }' \
    >"$WORK/jobs.jsonl"
if compose run --rm lashctl submit-bulk sleep <"$WORK/jobs.jsonl" >"$WORK/submit.log" 2>&1 &&
    grep -q "$N created" "$WORK/submit.log"; then
    ok "docker-compose run --rm lashctl submit-bulk: $(grep -o 'submitted.*' "$WORK/submit.log")"
else
    bad "submit-bulk: $(tail -n 5 "$WORK/submit.log")"
    finish
fi

# "id state owner fence" of every row still in the due set (running rows are
# there too, scored by their lease expiry), read in one script: one moment.
LIVE_LUA='local out = {}
for _, id in ipairs(redis.call("ZRANGE", KEYS[1] .. ":due", 0, -1)) do
  local r = redis.call("HMGET", KEYS[1] .. ":p:" .. id, "state", "owner", "fence")
  out[#out + 1] = table.concat({id, r[1] or "-", r[2] or "-", r[3] or "-"}, " ")
end
return out'
live() { rcli EVAL "$LIVE_LUA" 1 "lash:{$QUEUE}"; }
owner_prefix() { echo "$(pm inspect --format '{{.Config.Hostname}}' "$1"):"; }

# --- scale out to 4, SIGKILL one ----------------------------------------------------------
# Workers 3 and 4 show that they run by taking rows (their health is checked at
# the end, on the workers that remain).
t0=$SECONDS
if compose up -d --scale worker=4 >"$WORK/up4.log" 2>&1; then
    ok "--scale worker=4 ($((SECONDS - t0)) s)"
else
    bad "scale to 4: $(tail -n 5 "$WORK/up4.log")"
    finish
fi
W4=$(owner_prefix "$(worker_c 4)")
w4_busy() { [ "$(live | awk -v w="$W4" '$2 == "running" && index($3, w) == 1' | wc -l)" -ge 8 ]; }
if wait_until 120 w4_busy; then
    ok "worker 4 took rows $((SECONDS - t0)) s after the scale out"
else
    bad "worker 4 ($W4) never ran 8 processes at once"
    finish
fi
pm kill -s KILL "$(worker_c 4)" >/dev/null
kill_ms=$(date +%s%3N)
live >"$WORK/at-kill"
awk -v w="$W4" '$2 == "running" && index($3, w) == 1 { print $1, $4 }' "$WORK/at-kill" >"$WORK/killed-held"
ok "podman kill -s KILL $(worker_c 4) while it held $(wc -l <"$WORK/killed-held") running rows" \
    "($(awk '$2 == "pending"' "$WORK/at-kill" | wc -l) rows waiting in the queue)"
# killed_rows STATE...: every row worker 4 held is now in one of STATEs, owned
# by another worker under a newer fence.
killed_rows() {
    local ids
    mapfile -t ids < <(cut -d' ' -f1 "$WORK/killed-held")
    rows_of "${ids[@]}" >"$WORK/killed-now" 2>/dev/null || return 1
    awk -v w="$W4" -v states=" $* " 'NR == FNR { held[$1] = $2; next }
        !(index(states, " " $2 " ") && index($3, w) != 1 && $4 > held[$1]) { bad = 1 }
        END { exit bad || FNR == 0 }' "$WORK/killed-held" "$WORK/killed-now"
}
# Timed in the background while the test goes on (Redis restarts in between:
# a failed look is retried).
(
    until killed_rows running completed; do sleep 1; done
    echo "reclaimed $(($(date +%s%3N) - kill_ms))"
    until killed_rows completed; do sleep 1; done
    echo "completed $(($(date +%s%3N) - kill_ms))"
) >"$WORK/killed-times" 2>/dev/null &
KILL_WATCH_PID=$!
st=$(pm inspect --format '{{.State.Status}} {{.State.ExitCode}}' "$(worker_c 4)")
if [ "$st" = "exited 137" ]; then
    ok "worker 4 is dead (exited 137) and stays so (podman does not restart a killed container)"
else
    bad "worker 4 after SIGKILL: $st"
fi

# --- scale in to 2: SIGTERM, grace, leases released -------------------------------------
# Scale in right after worker 3 claimed a 45 s process: that one cannot finish
# within the 10 s grace, so the drain has to stop it and release its lease.
W3=$(owner_prefix "$(worker_c 3)")
w3_long() { live | awk -v w="$W3" '$2 == "running" && index($3, w) == 1 && substr($1, 3) % 100 == 0 { print $1 }' | sort; }
w3_long >"$WORK/w3-long-before"
w3_new_long() { w3_long >"$WORK/w3-long-now" && comm -13 "$WORK/w3-long-before" "$WORK/w3-long-now" | grep -q .; }
wait_until 60 w3_new_long || note "worker 3 claimed no new 45 s process within 60 s"
# Its log, read from the k8s-file log itself by descriptor (tail -f keeps it
# open after compose removes the container): `podman logs -f` was seen to stop
# at the container's exit before its last lines (the drain's "grace over" ones).
# The file holds "TIME STREAM P|F TEXT" records, a line cut into partial (P)
# ones wherever the worker's write()s fell: joined back here.
w3_log=$(pm inspect --format '{{.HostConfig.LogConfig.Path}}' "$(worker_c 3)")
if [ -f "$w3_log" ]; then
    tail -n +1 -f "$w3_log" >"$WORK/w3.k8s" 2>&1 &
else
    pm logs -f "$(worker_c 3)" >"$WORK/w3.log" 2>&1 &
fi
logs_pid=$!
pm wait "$(worker_c 3)" >"$WORK/w3.exit" 2>&1 &
wait_pid=$!
live | awk -v w="$W3" '$2 == "running" && index($3, w) == 1 { print $1, $4 }' >"$WORK/term-held"
t0=$SECONDS
if compose up -d --scale worker=2 >"$WORK/up2.log" 2>&1; then
    ok "--scale worker=2 took $((SECONDS - t0)) s (SIGTERM to worker 3, stop_grace_period 15 s)"
else
    bad "scale in to 2: $(tail -n 5 "$WORK/up2.log")"
fi
wait "$wait_pid"
sleep 2
kill "$logs_pid" 2>/dev/null
wait "$logs_pid" 2>/dev/null
if [ -f "$WORK/w3.k8s" ]; then
    awk '{ tag = $3; sub(/^[^ ]+ [^ ]+ [PF] ?/, ""); line = line $0
        if (tag != "P") { print line; line = "" } }' "$WORK/w3.k8s" >"$WORK/w3.log"
fi
if [ "$(tail -n 1 "$WORK/w3.exit")" = 0 ]; then
    ok "worker 3 exited 0 after SIGTERM"
else
    bad "worker 3's exit after SIGTERM: $(cat "$WORK/w3.exit")"
fi
if grep -q 'shutting down: [0-9]* running, grace 10000 ms' "$WORK/w3.log"; then
    ok "worker 3 drained: $(grep -o 'shutting down: [0-9]* running, grace 10000 ms' "$WORK/w3.log")"
else
    bad "worker 3's log has no drain line: $(tail -n 3 "$WORK/w3.log")"
fi
# The rows it stopped at the end of the grace (its log names them): each one
# released (an event) for the others, and completed by one of them later.
grep 'shutdown grace over' "$WORK/w3.log" | sed -n 's/.*"id":"\([^"]*\)".*/\1/p' | sort -u >"$WORK/w3-stopped"
mapfile -t stopped_ids <"$WORK/w3-stopped"
if [ "${#stopped_ids[@]}" -ge 1 ]; then
    released=$(rcli EVAL 'local n = 0
for _, e in ipairs(redis.call("XRANGE", KEYS[1] .. ":events", "-", "+")) do
  if e[2][2] == "released" then
    for _, id in ipairs(ARGV) do if e[2][4] == id then n = n + 1 end end
  end
end
return n' 1 "lash:{$QUEUE}" "${stopped_ids[@]}")
    if [ "$released" -ge "${#stopped_ids[@]}" ]; then
        ok "worker 3 stopped ${#stopped_ids[@]} process(es) at the end of its grace (${stopped_ids[*]}); each got a 'released' event"
    else
        bad "worker 3 stopped ${stopped_ids[*]} at the end of its grace, but only $released 'released' events"
    fi
else
    bad "worker 3 stopped nothing at the end of its grace: no lease release exercised ($(tr '\n' ' ' <"$WORK/w3-long-now") were new 45 s ones)"
fi
if compose ps worker 2>/dev/null | grep -q "${PROJECT}_worker_[34]"; then
    bad "workers 3/4 still exist after the scale in: $(compose ps worker)"
else
    ok "workers 3 and 4 are gone; 1 and 2 remain"
fi

# --- restart Redis -----------------------------------------------------------------------
count_rows() { rcli EVAL 'local n = 0
for i = 1, tonumber(ARGV[1]) do n = n + redis.call("EXISTS", KEYS[1] .. ":p:p-" .. i) end
return n' 1 "lash:{$QUEUE}" "$N"; }
rows_before=$(count_rows)
run_id=$(rcli INFO server | sed -n 's/^run_id:\([0-9a-f]*\).*/\1/p')
t0=$SECONDS
if compose restart redis >"$WORK/restart.log" 2>&1 &&
    wait_until 60 healthy "$REDIS_C"; then
    redis_addr
    new_id=$(rcli INFO server | sed -n 's/^run_id:\([0-9a-f]*\).*/\1/p')
    if [ -n "$new_id" ] && [ "$new_id" != "$run_id" ]; then
        ok "Redis container restarted ($((SECONDS - t0)) s to healthy; a new redis-server run id)"
    else
        bad "Redis's run id did not change across the restart ($run_id)"
    fi
else
    bad "Redis restart: $(tail -n 5 "$WORK/restart.log"); $(status_of "$REDIS_C")"
fi
rows_after=$(count_rows)
aof=$(rcli INFO persistence | tr -d '\r' | grep -E '^aof_enabled:')
if [ "$rows_before" = "$N" ] && [ "$rows_after" = "$N" ] && [ "$aof" = aof_enabled:1 ]; then
    ok "all $N rows survived the restart (AOF in the redis-data volume)"
else
    bad "rows before $rows_before, after $rows_after (of $N); $aof"
fi

# --- the killed worker's rows, done elsewhere ----------------------------------------------
killed_timed() { grep -q '^completed ' "$WORK/killed-times"; }
if wait_until 240 killed_timed; then
    RECLAIM_MS=$(awk '$1 == "reclaimed" { print $2 }' "$WORK/killed-times")
    KILL_DONE_MS=$(awk '$1 == "completed" { print $2 }' "$WORK/killed-times")
    ok "every row the killed worker held was taken over by another worker under a newer fence" \
        "${RECLAIM_MS} ms after the kill (lease 30000 ms), and completed ${KILL_DONE_MS} ms after it"
else
    bad "the killed worker's rows were not all completed elsewhere: $(awk '$2 != "completed"' "$WORK/killed-now" | head -n 5 | tr '\n' ';')"
fi
kill "$KILL_WATCH_PID" 2>/dev/null
wait "$KILL_WATCH_PID" 2>/dev/null

# --- everything completed, exactly once ----------------------------------------------------
all_done() { [ "$(rcli ZCARD "lash:{$QUEUE}:due")" = 0 ]; }
if wait_until 240 all_done; then
    ok "nothing left due: all $N processes reached a terminal state ($((SECONDS - T_START)) s into the test)"
else
    bad "still due after the bound: $(live | head -n 5 | tr '\n' ';')"
fi
compose run --rm lashctl --json stats </dev/null >"$WORK/stats.json" 2>"$WORK/stats.err"
if python3 -c 'import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
sys.exit(0 if s["completed"] == n and s["failed"] == 0 and s["abandoned"] == 0
         and s["pending"] == 0 and s["running"] == 0 else 1)' "$WORK/stats.json" "$N" 2>/dev/null; then
    ok "run --rm lashctl stats: completed $N, nothing pending, running, failed or abandoned"
else
    bad "lashctl stats: $(cat "$WORK/stats.json" "$WORK/stats.err")"
fi
leases=$(rcli EVAL 'local n, c = 0, "0"
repeat
  local r = redis.call("SCAN", c, "MATCH", KEYS[1] .. ":lease:*", "COUNT", 1000)
  c = r[1]; n = n + #r[2]
until c == "0"
return n' 1 "lash:{$QUEUE}")
if [ "$leases" = 0 ]; then ok "no lease key left"; else bad "$leases lease keys left"; fi

rcli EVAL "$EVENTS_LUA" 1 "lash:{$QUEUE}" >"$WORK/events"
once=$(awk '$2 == "1"' "$WORK/events" | wc -l)
other=$(awk '$2 != "1"' "$WORK/events")
if [ "$once" = "$N" ] && [ -z "$other" ]; then
    ok "exactly one 'completed' event for each of the $N processes, no other ending"
else
    bad "completed events: $once ids once (want $N); others: $(head -n 5 <<<"$other" | tr '\n' ';')"
fi

# The handler's log: one line per run that reached its end.
mapfile -t ALL < <(seq 1 "$N" | sed 's/^/p-/')
rows_of "${ALL[@]}" >"$WORK/final"
RAN=$WORK/out/ran
dup=$(awk '{ print $1, $2 }' "$RAN" | sort | uniq -d | head -n 5)
if [ -s "$RAN" ] && [ -z "$dup" ]; then
    ok "no (id, fence) ran twice: $(wc -l <"$RAN") runs reached their end, $(cut -d' ' -f1 "$RAN" | sort -u | wc -l) distinct ids"
else
    bad "an (id, fence) ran twice: $(tr '\n' ';' <<<"$dup")"
fi
unmatched=$(awk 'NR == FNR { ran[$1 " " $2] = 1; next } !(($1 " " $4) in ran)' "$RAN" "$WORK/final" | head -n 5)
if [ -z "$unmatched" ]; then
    ok "every recorded result is from a run that reached its end, under the fence Redis recorded"
else
    bad "rows whose recorded fence has no finished run: $(tr '\n' ';' <<<"$unmatched")"
fi
again=$(cut -d' ' -f1 "$RAN" | sort | uniq -d | wc -l)
note "$again process(es) reached their end twice, each under a newer fence (at-least-once execution)"

acl_log=$(rcli ACL LOG)
if [ -z "$acl_log" ]; then
    ok "Redis's ACL log is empty: the workers and lashctl were denied nothing"
else
    bad "ACL LOG: $(head -n 20 <<<"$acl_log" | tr '\n' ' ')"
fi
for i in 1 2; do
    c=$(worker_c "$i")
    if pm exec "$c" lash-worker --check >/dev/null 2>&1 && pm healthcheck run "$c" >/dev/null 2>&1 &&
        [ "$(status_of "$c")" = healthy ]; then
        ok "worker $i is healthy (lash-worker --check, podman healthcheck run)"
    else
        bad "worker $i is not healthy: $(status_of "$c")"
    fi
done

if [ -s "$WORK/unhealthy" ]; then
    note "$(wc -l <"$WORK/unhealthy") healthcheck run(s) failed along the way (load average" \
        "$(cut -d' ' -f1-3 /proc/loadavg)); the first: $(head -n 1 "$WORK/unhealthy" | cut -d' ' -f2-)"
fi

# --- teardown: nothing left, the host as it was -------------------------------------------------
if compose down -v -t 20 >"$WORK/down.log" 2>&1; then
    ok "docker-compose down -v"
else
    bad "docker-compose down: $(tail -n 5 "$WORK/down.log")"
fi
if [[ " $PHASES " == *" sentinel "* ]]; then
    # shellcheck source=tests/deploy/containers-sentinel.sh
    . "$ROOT/tests/deploy/containers-sentinel.sh"
fi
final_checks
echo "  time: debian:12-slim ${BASE_S} s, build ${BUILD_S:-?} s, up to healthy ${UP_S:-?} s," \
    "kill to rows taken over ${RECLAIM_MS:-?} ms and completed elsewhere ${KILL_DONE_MS:-?} ms," \
    "test $((SECONDS - T_START)) s"
finish
