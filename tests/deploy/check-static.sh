#!/usr/bin/env bash
# check-static.sh: the deployment files, checked without starting anything.
#
#   tests/deploy/check-static.sh            (from anywhere; exits non-zero on failure)
#
# tests/deploy/containers-test.sh builds the image and runs the compose stack for
# real; this covers what that run cannot show, in a few seconds and anywhere:
#   - docker-compose.yml: `docker-compose config` accepts it and refuses to run
#     without the passwords; tests/deploy/lint-deploy.py checks the resolved file
#     (env-only worker config, no password in a URL, grace period, sandbox,
#     profiles, Redis built offline);
#   - deploy/Dockerfile: lint-deploy.py (offline base, no BuildKit syntax line,
#     runtime-only packages, apt hygiene, .dockerignore keeps secrets out);
#   - deploy/users.acl + deploy/redis.conf: a real redis-server loads both (on a
#     temp unix socket), ACL LIST and ACL DRYRUN confirm the permissions, the
#     committed hashes match the documented development passwords, and a
#     script's writes survive an AOF replay under this ACL;
#   - the systemd units: `systemd-analyze verify` and `systemd-analyze security`;
#   - every deploy shell script: bash -n, and shellcheck when installed.
# The last line is "N passed, N failed".
set -uo pipefail
# `python3 ... | tally` must count in this shell, not in a pipeline subshell.
shopt -s lastpipe

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
TMP=$(mktemp -d /tmp/lash-static.XXXXXX)

cleanup() {
    [ -n "${redis_dir:-}" ] && redis_stop
    rm -rf "$TMP"
}
trap cleanup EXIT

# shellcheck source=tests/lib/redis.sh
. "$ROOT/tests/lib/redis.sh"
# shellcheck source=tests/deploy/tap.sh
. "$ROOT/tests/deploy/tap.sh"
skip() { echo "skipped - $*"; }
# Reads "ok NAME" / "fail NAME: WHY" lines (from the python checks) into the tally.
tally() {
    local kind rest
    while read -r kind rest; do
        case "$kind" in
        ok) ok "$rest" ;;
        fail) bad "$rest" ;;
        skip) skip "$rest" ;;
        *) echo "$kind $rest" ;;
        esac
    done
}

DEV_WORKER_PASSWORD=lash-worker-dev-password
DEV_OPERATOR_PASSWORD=lash-operator-dev-password

# --- docker-compose.yml ------------------------------------------------------
echo "# docker-compose.yml"
cat >"$TMP/dummy.env" <<EOF
LASH_WORKER_PASSWORD=dummy-worker-password
LASH_OPERATOR_PASSWORD=dummy-operator-password
EOF
: >"$TMP/empty.env"
if ! command -v docker-compose >/dev/null; then
    bad "docker-compose not installed (apt-get install docker-compose)"
else
    # Without the passwords compose must refuse, not start workers with an
    # empty password.
    if out=$(docker-compose --project-directory "$ROOT" --env-file "$TMP/empty.env" \
        -f docker-compose.yml config -q 2>&1); then
        bad "compose accepted a missing LASH_WORKER_PASSWORD"
    elif grep -q "LASH_.*PASSWORD" <<<"$out"; then
        ok "compose refuses to start without the passwords, and says which"
    else
        bad "compose failed without the passwords, but not saying so: $out"
    fi
    if docker-compose --project-directory "$ROOT" --env-file "$TMP/dummy.env" \
        -f docker-compose.yml config >"$TMP/compose.yml" 2>"$TMP/compose.err"; then
        ok "docker-compose config accepts docker-compose.yml"
        python3 tests/deploy/lint-deploy.py compose "$TMP/compose.yml" "$ROOT" | tally
    else
        bad "docker-compose config: $(cat "$TMP/compose.err")"
    fi
fi
redis_conf=deploy/redis.conf
for want in "appendonly yes" "appendfsync everysec" "maxmemory-policy noeviction" \
    "aclfile /usr/local/etc/redis/users.acl"; do
    if grep -qx "$want" "$redis_conf"; then ok "redis.conf: $want"; else bad "redis.conf lacks '$want'"; fi
done
if grep -qE '^[[:space:]]*requirepass' "$redis_conf"; then
    bad "redis.conf sets requirepass next to aclfile"
else
    ok "redis.conf leaves passwords to the ACL file"
fi

# --- deploy/Dockerfile -------------------------------------------------------
echo "# deploy/Dockerfile"
python3 tests/deploy/lint-deploy.py dockerfile "$ROOT" | tally

# --- deploy/users.acl + redis.conf in a real redis-server ------------------------
echo "# deploy/users.acl"
if out=$(LASH_WORKER_PASSWORD=$DEV_WORKER_PASSWORD LASH_OPERATOR_PASSWORD=$DEV_OPERATOR_PASSWORD \
    deploy/make-acl.sh 2>&1) && [ "$out" = "$(cat deploy/users.acl)" ]; then
    ok "users.acl carries the hashes of the documented development passwords"
else
    bad "users.acl differs from make-acl.sh with the development passwords: $out"
fi
if grep -qE '(^| )(>|nopass( |$))' deploy/users.acl; then
    bad "users.acl holds a cleartext password or a nopass user"
else
    ok "users.acl holds only #<sha256> password hashes"
fi
# Redis 7 checks every command a script calls against the caller's ACL: each one
# the Lua scripts use must be granted to both users, or that path of the worker
# breaks in production only.
# And Redis 7.0 replays the AOF as the default user, dropping every MULTI/EXEC
# (the effects of one script) that holds a command or key that user may not
# touch, and the AOF holds rewritten commands (PEXPIRE as PEXPIREAT, SET PX as
# SET PXAT, ...): without full command rights on lash:* for `default`, the data
# of many scripts would silently be gone after a restart (found by
# tests/deploy/containers-test.sh). `default` stays off without a password, so
# no client can ever log in as it.
mapfile -t lua_cmds < <(grep -ohE "redis\.p?call\(['\"][A-Za-z_]+" proto/lua/*.lua |
    sed -E "s/.*\(['\"]//" | tr '[:upper:]' '[:lower:]' | sort -u)
dline=$(grep '^user default ' deploy/users.acl)
if [[ " $dline " == *" off "* ]] && [[ " $dline " != *" on "* ]] &&
    ! grep -qE ' (#|>|<|nopass)' <<<" $dline"; then
    ok "users.acl: the default user is off and has no password: no one can log in as it"
else
    bad "users.acl: the default user must be off, without a password: $dline"
fi
if [[ " $dline " == *" ~lash:* "* ]] && [[ " $dline " == *" +@all "* ]] &&
    [ "$(grep -o ' [~%&][^ ]*' <<<"$dline" | tr -d ' ' | sort | tr '\n' ' ')" = "&lash:* ~lash:* " ]; then
    ok "users.acl: default may run every command on lash:* only (what the AOF replay needs)"
else
    bad "users.acl: default needs +@all on ~lash:* &lash:* and nothing else: $dline"
fi
for u in lash-worker lash-operator; do
    line=" $(grep "^user $u " deploy/users.acl) "
    missing=""
    for c in "${lua_cmds[@]}"; do
        [[ $line == *" +$c "* ]] || missing+=" $c"
    done
    if [ "${#lua_cmds[@]}" -gt 0 ] && [ -z "$missing" ]; then
        ok "$u is granted all ${#lua_cmds[@]} commands the Lua scripts call"
    else
        bad "$u lacks commands the Lua scripts call:${missing:- (none found in proto/lua)}"
    fi
done
# The test copy adds an admin user, so that ACL LIST and ACL DRYRUN can be asked.
admin_pw=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
{
    cat deploy/users.acl
    echo "user lash-static-admin on #$(printf '%s' "$admin_pw" | sha256sum | cut -d' ' -f1) ~* &* +@all"
} >"$TMP/users.acl"
redis_start "$TMP" --conf deploy/redis.conf --aclfile "$TMP/users.acl"
sock=$TMP/redis.sock
admin() { REDISCLI_AUTH=$admin_pw redis-cli -s "$sock" --user lash-static-admin "$@" 2>&1; }
if [ -S "$sock" ] && [ "$(admin PING)" = PONG ]; then
    ok "redis-server starts with deploy/redis.conf and the ACL file"
    acl=$(admin ACL LIST)
    for u in default lash-worker lash-operator; do
        if grep -q "^user $u " <<<"$acl"; then ok "ACL LIST has user $u"; else bad "ACL LIST lacks $u: $acl"; fi
    done
    if grep -q "^user default off " <<<"$acl"; then
        ok "the default user is off"
    else
        bad "the default user is not off: $(grep '^user default' <<<"$acl")"
    fi
    for u in lash-worker lash-operator; do
        line=$(grep "^user $u " <<<"$acl")
        if grep -q ' ~lash:\* ' <<<"$line " && grep -q ' &lash:\* ' <<<"$line " &&
            [ "$(grep -o ' [~%][^ ]*' <<<"$line" | wc -l)" = 1 ] &&
            [ "$(grep -o ' &[^ ]*' <<<"$line" | wc -l)" = 1 ]; then
            ok "$u: keys ~lash:* and channels &lash:* only"
        else
            bad "$u: unexpected key or channel patterns: $line"
        fi
    done
    dry() { admin ACL DRYRUN "$@"; }
    for u in lash-worker lash-operator; do
        for cmd in "flushall" "flushdb" "config get *" "keys *" "debug sleep 0" "shutdown" \
            "acl list" "scan 0" "function flush" "script flush" "client kill id 1" \
            "monitor" "module list" "save" "replicaof no one" "get other" "set other 1"; do
            # shellcheck disable=SC2086 # word splitting of the command is intended
            r=$(dry "$u" $cmd)
            if [ "$r" = OK ]; then bad "$u may run '$cmd'"; else ok "$u may not run '$cmd'"; fi
        done
        for cmd in "evalsha 0000000000000000000000000000000000000000 1 lash:{q}" \
            "eval return(1) 1 lash:{q}" "fcall lash_claim 1 lash:{q}" "hgetall lash:{q}:p:x" \
            "zrangebyscore lash:{q}:due 0 1" "xrange lash:{q}:events - +" "publish lash:{q}:poke x" \
            "subscribe lash:{q}:poke" "ssubscribe lash:{q}:poke" "spublish lash:{q}:poke x" \
            "script load x" "ping" "time"; do
            # shellcheck disable=SC2086
            r=$(dry "$u" $cmd)
            if [ "$r" = OK ]; then ok "$u may run '$cmd'"; else bad "$u may not run '$cmd': $r"; fi
        done
    done
    for cmd in "function load x" "function list" "info"; do
        # shellcheck disable=SC2086
        r=$(dry lash-operator $cmd)
        if [ "$r" = OK ]; then ok "lash-operator may run '$cmd'"; else bad "lash-operator may not run '$cmd': $r"; fi
        # shellcheck disable=SC2086
        r=$(dry lash-worker $cmd)
        if [ "$r" = OK ]; then bad "lash-worker may run '$cmd'"; else ok "lash-worker may not run '$cmd'"; fi
    done
    for pair in "lash-worker:$DEV_WORKER_PASSWORD" "lash-operator:$DEV_OPERATOR_PASSWORD"; do
        r=$(REDISCLI_AUTH=${pair#*:} redis-cli -s "$sock" --user "${pair%%:*}" PING 2>&1)
        if [ "$r" = PONG ]; then ok "${pair%%:*} logs in with its development password"; else bad "${pair%%:*} login: $r"; fi
    done
else
    bad "redis-server did not start with the ACL file: $(tail -n 5 "$TMP/redis.log")"
fi
redis_stop

# A script's writes survive a restart under this ACL: one redis-server with
# AOF writes them, a second one replays the AOF (as the default user).
echo "# AOF replay under deploy/users.acl"
aof_redis() {
    redis_start "$TMP/aof" --conf deploy/redis.conf --aclfile "$TMP/users.acl" --appendonly yes &&
        sock=$redis_sock
}
if aof_redis; then
    REDISCLI_AUTH=$DEV_WORKER_PASSWORD redis-cli -s "$sock" --user lash-worker EVAL \
        "redis.call('HSET', KEYS[1], 'state', 'pending'); redis.call('ZADD', KEYS[2], 1, 'x')
         redis.call('SET', KEYS[3], 'w:1', 'PX', 600000); redis.call('PEXPIRE', KEYS[1], 600000)
         return 1" 3 'lash:{aof}:p:x' 'lash:{aof}:due' 'lash:{aof}:lease:x' >/dev/null 2>&1
    redis_stop # TERM to a server with an AOF: it writes the AOF and exits
    if aof_redis && [ "$(admin HGET 'lash:{aof}:p:x' state)" = pending ] &&
        [ "$(admin ZSCORE 'lash:{aof}:due' x)" = 1 ] && [ "$(admin GET 'lash:{aof}:lease:x')" = w:1 ] &&
        [ "$(admin PTTL 'lash:{aof}:p:x')" -gt 0 ]; then
        ok "a script's writes (HSET, ZADD, SET PX, PEXPIRE: MULTI/EXEC in the AOF) are replayed after a restart"
    else
        bad "a script's writes were lost across a restart: $(grep -m 1 CRITICAL "$TMP/aof/redis.log")"
    fi
    redis_stop
else
    bad "redis-server with appendonly yes did not start: $(tail -n 3 "$TMP/aof/redis.log")"
fi

# --- systemd units -----------------------------------------------------------
echo "# systemd units"
for f in deploy/lash-worker.service deploy/lash-worker@.service; do
    for d in NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes PrivateTmp=yes PrivateDevices=yes \
        ProtectKernelTunables=yes ProtectKernelModules=yes ProtectKernelLogs=yes \
        "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6" LockPersonality=yes \
        MemoryDenyWriteExecute=yes SystemCallFilter=@system-service KillMode=mixed \
        Restart=on-failure DynamicUser=yes; do
        grep -qx "$d" "$f" || bad "$f lacks $d"
    done
    ok "$f has the hardening and lifecycle directives"
    stop=$(sed -nE 's/^TimeoutStopSec=([0-9]+)s?$/\1/p' "$f")
    if [ -n "$stop" ] && [ "$stop" -gt 10 ]; then
        ok "$f: TimeoutStopSec=${stop}s exceeds the default 10 s grace"
    else
        bad "$f: TimeoutStopSec '${stop}' must exceed LASH_GRACE_MS (10 s)"
    fi
done
if grep -qx 'EnvironmentFile=/etc/lash/%i.env' deploy/lash-worker@.service; then
    ok "lash-worker@.service reads /etc/lash/%i.env"
else
    bad "lash-worker@.service does not read /etc/lash/%i.env"
fi
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze verify: systemd-analyze is not installed"
else
    # verify insists that ExecStart exists: point it at a real binary when we
    # have one, else at /bin/true (the unit is what is being checked).
    exe=${LASH_BIN_DIR:-$ROOT/build/bin}/lash-worker
    [ -x "$exe" ] || exe=/bin/true
    mkdir -p "$TMP/units"
    for f in lash-worker.service lash-worker@.service; do
        sed "s#^ExecStart=/usr/local/bin/lash-worker#ExecStart=$exe#" "deploy/$f" >"$TMP/units/$f"
    done
    for u in lash-worker.service lash-worker@images.service; do
        # verify exits 0 on unknown keys and bad values, printing them: any
        # output is a failure.
        if out=$(cd "$TMP/units" && systemd-analyze verify "$u" 2>&1) && [ -z "$out" ]; then
            ok "systemd-analyze verify $u (ExecStart=$exe)"
        else
            bad "systemd-analyze verify $u: $out"
        fi
    done
    if out=$(systemd-analyze security --offline=yes "$TMP/units/lash-worker.service" 2>&1); then
        level=$(sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p' <<<"$out")
        if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
            ok "systemd-analyze security: exposure $level (<= 2.0)"
        else
            bad "systemd-analyze security: exposure '${level}' above 2.0"
        fi
    else
        skip "systemd-analyze security --offline: not supported here ($(tail -n 1 <<<"$out"))"
    fi
fi
bad_keys=$(grep -vE '^(#|$)' deploy/lash-worker.env.example | grep -vE '^LASH_[A-Z_]+=' || true)
if [ -z "$bad_keys" ]; then
    ok "lash-worker.env.example sets only LASH_* variables"
else
    bad "lash-worker.env.example has other lines: $bad_keys"
fi

# --- shell scripts -----------------------------------------------------------
echo "# shell scripts"
scripts=(deploy/*.sh tests/deploy/*.sh tests/lib/redis.sh)
for s in "${scripts[@]}"; do
    if bash -n "$s" 2>"$TMP/bashn"; then ok "bash -n $s"; else bad "bash -n $s: $(cat "$TMP/bashn")"; fi
done
if command -v shellcheck >/dev/null; then
    if out=$(shellcheck "${scripts[@]}" 2>&1); then
        ok "shellcheck ${#scripts[@]} scripts"
    else
        bad "shellcheck: $out"
    fi
else
    skip "shellcheck: not installed"
fi

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
