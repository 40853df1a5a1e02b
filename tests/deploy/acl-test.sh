#!/usr/bin/env bash
# acl-test.sh: lash under the least-privilege Redis users of deploy/users.acl.
#
#   tests/deploy/acl-test.sh        (LASH_BIN_DIR=... to pick the binaries; default build/bin)
#
# Starts a private redis-server (temp dir, unix socket, no persistence) with
# deploy/redis.conf and the ACL file rendered by deploy/make-acl.sh with fresh
# random passwords, plus a test-only admin user that the checks use to look
# (CLIENT LIST, ACL LOG). Then it proves:
#   - the default user is off; the development passwords no longer work;
#   - lash-worker can reach lash:* keys and channels but cannot read or write
#     other keys (directly or from a script), publish or subscribe elsewhere,
#     FLUSHALL/FLUSHDB, CONFIG, KEYS, DEBUG, FUNCTION LOAD;
#   - lash-operator can load functions (a tiny library and `lashctl functions`)
#     and still cannot touch other keys, FLUSHALL or CONFIG;
#   - a real lash-worker (environment taken from docker-compose.yml's worker
#     service, password only in LASH_REDIS_PASSWORD) connects as lash-worker and
#     completes processes submitted with lashctl as lash-operator; every lashctl
#     command the operator uses works; Redis denied nothing (ACL LOG empty); the
#     password is not in the worker's command line; SIGTERM exits 0.
# The last line is "N passed, N failed"; exit status non-zero on any failure.
# Functions called through traps and wrappers look unreachable to shellcheck.
# shellcheck disable=SC2317
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN=${LASH_BIN_DIR:-$ROOT/build/bin}
TMP=$(mktemp -d /tmp/lash-acl.XXXXXX)
SOCK=$TMP/redis.sock
WORKER_PID=""
N=${LASH_ACL_TEST_N:-200}

cleanup() {
    for p in $WORKER_PID; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    redis_stop
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=tests/lib/redis.sh
. "$ROOT/tests/lib/redis.sh"
# shellcheck source=tests/deploy/tap.sh
. "$(dirname "${BASH_SOURCE[0]}")/tap.sh"

rand() { head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
WORKER_PW=w-$(rand)
OPERATOR_PW=o-$(rand)
ADMIN_PW=a-$(rand)

# --- a private Redis with the rendered ACL file ---------------------------------
if ! LASH_WORKER_PASSWORD=$WORKER_PW LASH_OPERATOR_PASSWORD=$OPERATOR_PW \
    "$ROOT/deploy/make-acl.sh" --out "$TMP/users.acl"; then
    bad "deploy/make-acl.sh could not render the ACL file"
    finish
fi
echo "user lash-test-admin on #$(printf '%s' "$ADMIN_PW" | sha256sum | cut -d' ' -f1) ~* &* +@all" \
    >>"$TMP/users.acl"
redis_start "$TMP" --conf "$ROOT/deploy/redis.conf" --aclfile "$TMP/users.acl" ||
    bad "redis_start failed with deploy/redis.conf and the rendered ACL"

# as USER PASSWORD CMD...: one command as that user; the password goes through
# the environment (REDISCLI_AUTH), as everything here does.
as() {
    local user=$1 pw=$2
    shift 2
    REDISCLI_AUTH=$pw timeout 5 redis-cli -s "$SOCK" --user "$user" "$@" 2>&1
}
worker() { as lash-worker "$WORKER_PW" "$@"; }
operator() { as lash-operator "$OPERATOR_PW" "$@"; }
admin() { as lash-test-admin "$ADMIN_PW" "$@"; }

# expect DESCRIPTION PATTERN CMD...: the output of CMD matches the regex.
expect() {
    local what=$1 pattern=$2 out
    shift 2
    out=$("$@")
    if grep -qE "$pattern" <<<"$out"; then ok "$what"; else bad "$what: got '$out'"; fi
}
NOPERM='^NOPERM|^ERR.*(can.t access|can.t run|no permissions)'

if [ "$(admin PING)" != PONG ]; then
    bad "redis-server with deploy/redis.conf and the rendered ACL did not come up: $(tail -n 5 "$TMP/redis.log")"
    finish
fi
ok "redis-server runs with deploy/redis.conf and the rendered ACL file"

# --- who may log in --------------------------------------------------------------
echo "# logins"
expect "the default user is off: an unauthenticated PING gets NOAUTH" '^NOAUTH' \
    timeout 5 redis-cli -s "$SOCK" PING
expect "the development password of lash-worker no longer works" 'WRONGPASS|AUTH failed' \
    as lash-worker lash-worker-dev-password PING
expect "lash-worker logs in with its rendered password" '^PONG$' worker PING
expect "lash-operator logs in with its rendered password" '^PONG$' operator PING

# --- lash-worker: lash:* only, no administration -----------------------------------
echo "# lash-worker"
expect "lash-worker can SET a lash: key" '^OK$' worker SET 'lash:{acl}:probe' x
expect "lash-worker can GET a lash: key" '^x$' worker GET 'lash:{acl}:probe'
expect "lash-worker can run a script on lash: keys" '^x$' \
    worker EVAL "return redis.call('GET', KEYS[1])" 1 'lash:{acl}:probe'
expect "lash-worker can PUBLISH on a lash: channel" '^[0-9]+$' worker PUBLISH 'lash:{acl}:poke' x
expect "lash-worker can SPUBLISH on a lash: channel" '^[0-9]+$' worker SPUBLISH 'lash:{acl}:poke' x
expect "lash-worker cannot GET a non-lash key" "$NOPERM" worker GET other
expect "lash-worker cannot SET a non-lash key" "$NOPERM" worker SET other 1
expect "lash-worker cannot SET 'lashx' (the pattern is lash:*, colon included)" "$NOPERM" \
    worker SET lashx 1
expect "lash-worker cannot reach a non-lash key from inside a script" "$NOPERM" \
    worker EVAL "return redis.call('SET', 'other', 1)" 1 'lash:{acl}:probe'
expect "lash-worker cannot FLUSHALL from inside a script" "$NOPERM" \
    worker EVAL "return redis.call('FLUSHALL')" 1 'lash:{acl}:probe'
expect "lash-worker cannot FLUSHALL" "$NOPERM" worker FLUSHALL
expect "lash-worker cannot FLUSHDB" "$NOPERM" worker FLUSHDB
expect "lash-worker cannot CONFIG GET" "$NOPERM" worker CONFIG GET '*'
expect "lash-worker cannot CONFIG SET" "$NOPERM" worker CONFIG SET appendonly no
expect "lash-worker cannot KEYS" "$NOPERM" worker KEYS '*'
expect "lash-worker cannot SCRIPT FLUSH" "$NOPERM" worker SCRIPT FLUSH
expect "lash-worker cannot CLIENT LIST (other clients' addresses and names)" "$NOPERM" worker CLIENT LIST
expect "lash-worker cannot CLIENT KILL" "$NOPERM" worker CLIENT KILL ID 1
expect "lash-worker cannot FUNCTION LOAD" "$NOPERM" \
    worker FUNCTION LOAD "#!lua name=aclw
redis.register_function('aclw', function() return 1 end)"
expect "lash-worker cannot PUBLISH on another channel" "$NOPERM" worker PUBLISH other x
expect "lash-worker cannot SPUBLISH on another channel" "$NOPERM" worker SPUBLISH other x
expect "lash-worker cannot SUBSCRIBE to another channel" "$NOPERM" worker SUBSCRIBE other
expect "lash-worker cannot read the ACL" "$NOPERM" worker ACL LIST
expect "lash-worker cannot SHUTDOWN" "$NOPERM" worker SHUTDOWN NOSAVE

# --- lash-operator: functions and INFO, otherwise the same fence -----------------------
echo "# lash-operator"
expect "lash-operator can FUNCTION LOAD" '^lashacl$' \
    operator FUNCTION LOAD REPLACE "#!lua name=lashacl
redis.register_function('lashacl_get', function(keys) return redis.call('GET', keys[1]) end)"
expect "lash-operator can FCALL the loaded function on a lash: key" '^x$' \
    operator FCALL lashacl_get 1 'lash:{acl}:probe'
expect "a function run by lash-operator still cannot reach other keys" "$NOPERM" \
    operator FCALL lashacl_get 1 other
expect "lash-operator can FUNCTION LIST" 'lashacl' operator FUNCTION LIST
expect "lash-operator can INFO" '^redis_version:' operator INFO server
expect "lash-operator cannot GET a non-lash key" "$NOPERM" operator GET other
expect "lash-operator cannot FLUSHALL" "$NOPERM" operator FLUSHALL
expect "lash-operator cannot CONFIG GET" "$NOPERM" operator CONFIG GET '*'
expect "lash-operator cannot FUNCTION FLUSH" "$NOPERM" operator FUNCTION FLUSH
admin FUNCTION DELETE lashacl >/dev/null
admin DEL 'lash:{acl}:probe' >/dev/null
# What was denied so far was denied on purpose; from here on nothing may be.
admin ACL LOG RESET >/dev/null

# --- a real worker and lashctl under these users ------------------------------------
echo "# lash-worker and lashctl under the ACL users"
for b in lash-worker lashctl lash-example-hash; do
    if [ ! -x "$BIN/$b" ]; then
        bad "$BIN/$b is missing: build it (cmake --build build) or set LASH_BIN_DIR"
        finish
    fi
done

# The worker gets the environment the compose file gives the worker service
# (so this also checks that lash-worker accepts it), with the URL pointed at our
# socket. Without docker-compose, the same settings by hand.
compose_env() {
    printf 'LASH_WORKER_PASSWORD=%s\nLASH_OPERATOR_PASSWORD=%s\n' "$WORKER_PW" "$OPERATOR_PW" \
        >"$TMP/compose.env"
    docker-compose --project-directory "$ROOT" --env-file "$TMP/compose.env" \
        -f "$ROOT/docker-compose.yml" config 2>/dev/null |
        python3 -c '
import sys, yaml
svc = sys.argv[1]
env = yaml.safe_load(sys.stdin)["services"][svc]["environment"]
for k, v in sorted(env.items()):
    print("%s=%s" % (k, "" if v is None else v))
' "$1"
}
if command -v docker-compose >/dev/null && compose_env worker >"$TMP/worker.env" &&
    [ -s "$TMP/worker.env" ]; then
    ok "the worker's environment comes from docker-compose.yml ($(wc -l <"$TMP/worker.env") variables)"
    compose_env lashctl >"$TMP/lashctl.env"
else
    echo "  (docker-compose unavailable: using the compose settings by hand)"
    printf '%s\n' "LASH_REDIS_URL=redis://lash-worker@redis:6379" "LASH_REDIS_PASSWORD=$WORKER_PW" \
        LASH_LOG_FORMAT=json LASH_GRACE_MS=10000 >"$TMP/worker.env"
    printf '%s\n' "LASH_REDIS_URL=redis://lash-operator@redis:6379" \
        "LASH_REDIS_PASSWORD=$OPERATOR_PW" >"$TMP/lashctl.env"
fi
# redis://USER@redis:6379 -> unix://USER@/tmp/.../redis.sock, and the image's
# handler directory -> the build's bin directory.
to_socket() {
    sed -E -e "s#^LASH_REDIS_URL=redis://([^@]*)@redis:6379\$#LASH_REDIS_URL=unix://\\1@$SOCK#" \
        -e "/^LASH_HANDLERS=/s#/usr/local/libexec/lash/#$BIN/#g"
}
to_socket <"$TMP/worker.env" >"$TMP/worker.env.local"
to_socket <"$TMP/lashctl.env" >"$TMP/lashctl.env.local"
if grep -qx "LASH_REDIS_URL=unix://lash-worker@$SOCK" "$TMP/worker.env.local" &&
    grep -qx "LASH_REDIS_PASSWORD=$WORKER_PW" "$TMP/worker.env.local"; then
    ok "worker URL names lash-worker without a password; the password is in LASH_REDIS_PASSWORD"
else
    bad "unexpected worker URL/password settings: $(grep LASH_REDIS "$TMP/worker.env.local" | sed 's/PASSWORD=.*/PASSWORD=.../')"
fi
mapfile -t WENV <"$TMP/worker.env.local"
mapfile -t CENV <"$TMP/lashctl.env.local"
HEALTH=$TMP/worker.health

env -i PATH="$PATH" "${WENV[@]}" LASH_HEALTH_FILE="$HEALTH" LASH_BUILTINS= \
    LASH_WORKER_ID=acl-worker \
    "$BIN/lash-worker" --builtin noop >>"$TMP/worker.log" 2>&1 &
WORKER_PID=$!
lashctl() { env -i PATH="$PATH" "${CENV[@]}" "$BIN/lashctl" "$@"; }

# Liveness: the worker shows up as a client of user lash-worker.
connected=""
for _ in $(seq 1 100); do
    kill -0 "$WORKER_PID" 2>/dev/null || break
    connected=$(admin CLIENT LIST | grep -c 'user=lash-worker')
    [ "$connected" -gt 0 ] && break
    sleep 0.1
done
if [ "${connected:-0}" -gt 0 ]; then
    ok "lash-worker is connected as ACL user lash-worker ($connected connection(s))"
else
    bad "lash-worker never connected as lash-worker: $(tail -n 5 "$TMP/worker.log")"
fi
if tr '\0' ' ' <"/proc/$WORKER_PID/cmdline" 2>/dev/null | grep -qF "$WORKER_PW"; then
    bad "the worker's password is visible in its command line"
elif [ -r "/proc/$WORKER_PID/cmdline" ]; then
    ok "the password is not in the worker's command line ($(tr '\0' ' ' <"/proc/$WORKER_PID/cmdline"))"
else
    bad "cannot read the worker's command line (did it exit?)"
fi

# N processes through lashctl as lash-operator.
seq 1 "$N" | awk '{ printf "{\"id\":\"acl-%d\",\"payload\":{\"i\":%d}}\n", $1, $1 }' >"$TMP/bulk.jsonl"
if lashctl submit-bulk noop <"$TMP/bulk.jsonl" >"$TMP/bulk.out" 2>&1; then
    ok "lashctl submit-bulk (as lash-operator) submitted $N processes"
else
    bad "lashctl submit-bulk failed: $(tail -n 3 "$TMP/bulk.out")"
fi
mapfile -t IDS < <(seq 1 "$N" | sed 's/^/acl-/')
if lashctl wait "${IDS[@]}" --timeout 60000 >"$TMP/wait.out" 2>&1; then
    ok "lashctl wait: all $N processes completed"
else
    bad "lashctl wait: not all completed: $(grep -v completed "$TMP/wait.out" | head -n 3)"
fi
if stats=$(lashctl --json stats 2>&1) &&
    python3 -c 'import json,sys; s=json.loads(sys.argv[1]); sys.exit(0 if s["completed"] == int(sys.argv[2]) and s["failed"] == 0 and s["pending"] == 0 and s["running"] == 0 else 1)' "$stats" "$N"; then
    ok "lashctl stats: $N completed, 0 failed, nothing left pending or running"
else
    bad "lashctl stats: $stats"
fi
# Owner and state are in the rows themselves.
owners=$(for i in 1 "$((N / 2))" "$N"; do admin HGET "lash:{default}:p:acl-$i" owner; done | sed 's/#.*//' | sort -u)
if [ "$owners" = acl-worker ]; then
    ok "the rows were run by the worker (owner acl-worker)"
else
    bad "unexpected owners: $owners"
fi

# The compose file's handler (the example from deploy/examples), as configured there.
hash_kind=$(sed -nE 's/^LASH_HANDLERS=([^=,]+)=.*/\1/p' "$TMP/worker.env.local")
if [ -n "$hash_kind" ] && hid=$(lashctl submit "$hash_kind" --payload '{"data":"lash","rounds":1000}' 2>&1) &&
    lashctl wait "$hid" --timeout 30000 >/dev/null 2>&1 &&
    lashctl get "$hid" 2>&1 | grep -q sha1; then
    ok "a '$hash_kind' process ran the compose file's exec handler ($(grep LASH_HANDLERS "$TMP/worker.env.local"))"
else
    bad "the compose file's handler did not complete a '$hash_kind' process: ${hid:-} $(lashctl get "${hid:-x}" 2>&1 | tail -n 3)"
fi

# Every operator command lashctl offers. The delayed process is cancelled,
# re-opened by retry (due at once) and waited for.
if id=$(lashctl submit noop --delay 600000 --payload '{"later":true}' 2>&1); then
    ok "lashctl submit (delayed) -> $id"
else
    bad "lashctl submit: $id"
fi
for cmd in "get acl-1" "get $id" "list --limit 5" "list --state completed --limit 5" "stats" \
    "workers" "events --count 5" "cancel $id" "retry $id" "wait $id --timeout 30000" "poke" "trim" \
    "top --iterations 1" "functions"; do
    # shellcheck disable=SC2086 # word splitting of the command is intended
    if out=$(lashctl $cmd 2>&1); then
        ok "lashctl $cmd"
    else
        bad "lashctl $cmd: $(head -n 3 <<<"$out")"
    fi
done
# events --follow keeps reading (XREAD); it must be running, not refused, when stopped.
timeout 2 env -i PATH="$PATH" "${CENV[@]}" "$BIN/lashctl" events --follow --count 1 >"$TMP/follow.out" 2>&1
rc=$?
if [ "$rc" = 124 ]; then
    ok "lashctl events --follow runs (stopped after 2 s)"
else
    bad "lashctl events --follow exited $rc: $(tail -n 2 "$TMP/follow.out")"
fi
if admin FUNCTION LIST LIBRARYNAME lash | grep -qx lash; then
    ok "lashctl functions (as lash-operator) loaded the Functions library 'lash'"
else
    bad "the Functions library 'lash' is not loaded"
fi
# workers lists our worker
if lashctl workers 2>&1 | grep -q acl-worker; then
    ok "lashctl workers lists acl-worker"
else
    bad "lashctl workers does not list acl-worker: $(lashctl workers 2>&1 | head -n 3)"
fi
if env -i PATH="$PATH" "$BIN/lash-worker" --check --health-file "$HEALTH"; then
    ok "lash-worker --check (the container HEALTHCHECK) passes while the worker runs"
else
    bad "lash-worker --check fails while the worker runs"
fi

log=$(admin ACL LOG 128)
if [ -z "$log" ]; then
    ok "ACL LOG is empty: Redis denied lash-worker and lashctl nothing"
else
    bad "Redis denied something (ACL LOG): $(tr '\n' ' ' <<<"$log" | cut -c1-600)"
fi

# Graceful stop.
kill -TERM "$WORKER_PID"
rc=""
for _ in $(seq 1 150); do
    if ! kill -0 "$WORKER_PID" 2>/dev/null; then
        wait "$WORKER_PID"
        rc=$?
        WORKER_PID=""
        break
    fi
    sleep 0.1
done
if [ "$rc" = 0 ]; then
    ok "SIGTERM: lash-worker drained and exited 0"
else
    bad "SIGTERM: lash-worker exit status '${rc:-still running after 15 s}'"
fi
finish
