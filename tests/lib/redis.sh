# shellcheck shell=bash
# The redis_* variables are set for the scripts that source this file.
# shellcheck disable=SC2034
# tests/lib/redis.sh: a private redis-server for the shell scripts (the web
# suite, install checks, bench/run.sh, demo/run.sh), started and stopped one
# way everywhere. Source it (bash), then:
#
#   redis_start DIR [--tcp] [--conf FILE] [redis-server args...]
#       Starts redis-server with its files in DIR (made when missing): on the
#       unix socket DIR/redis.sock (mode 700), or with --tcp on a free loopback
#       port; no persistence (--save '' --appendonly no; later args may say
#       otherwise); daemonized, pid in DIR/redis.pid, log in DIR/redis.log.
#       --conf FILE: a config file read first (the flags above override it).
#       Returns once that server answers; after 10 s it fails, printing the
#       log's tail. Its own: Redis writes the pid file only after it has bound
#       its socket or port, so an answer with our pid file alive is ours, not a
#       stranger's on the same port. Sets
#         redis_dir  redis_sock (unix) or redis_port (--tcp)  redis_url
#   redis_cli ARGS...   redis-cli against it ($redis_user and REDISCLI_AUTH,
#                       when set, for a server that wants a login)
#   redis_stop          SHUTDOWN NOSAVE (TERM, then KILL, if it will not), and
#                       waits until it has let go of its socket or port; DIR
#                       stays: the caller made it, the caller removes it
#
# One server at a time per shell. The C suites have their own helper with the
# same settings: tests/fixture.h.

redis_cli() {
    local who=()
    [ -n "${redis_user:-}" ] && who=(--user "$redis_user")
    if [ -n "${redis_sock:-}" ]; then
        redis-cli -s "$redis_sock" "${who[@]}" "$@"
    else
        redis-cli -h 127.0.0.1 -p "$redis_port" "${who[@]}" "$@"
    fi
}

# The pid of the server started in redis_dir while it lives, else nothing.
_redis_pid() {
    local pid
    pid=$(cat "$redis_dir/redis.pid" 2>/dev/null) && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

# Whether our server is up and answers (a refusal to log in is an answer).
_redis_ours() {
    [ -n "$(_redis_pid)" ] && redis_cli ping 2>&1 | grep -qE 'PONG|NOAUTH|NOPERM|WRONGPASS'
}

# Waits up to $1 tenths of a second for our server; 0 when it answers.
_redis_wait() {
    local i
    for ((i = 0; i < $1; i++)); do
        _redis_ours && return 0
        # It gave up (a port someone took between our look and its bind).
        grep -qs "aborting\|Could not create server TCP" "$redis_dir/redis.log" && return 1
        sleep 0.1
    done
    return 1
}

redis_start() {
    local dir=$1 tcp=0 conf=()
    shift
    if [ "${1:-}" = --tcp ]; then
        tcp=1
        shift
    fi
    if [ "${1:-}" = --conf ]; then
        conf=("$2")
        shift 2
    fi
    mkdir -p "$dir"
    redis_dir=$dir redis_sock="" redis_port="" redis_url=""
    local common=(--dir "$dir" --save '' --appendonly no --daemonize yes
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log")
    if [ $tcp = 0 ]; then
        redis_sock=$dir/redis.sock
        redis_url=unix://$redis_sock
        rm -f "$dir/redis.pid" "$dir/redis.log"
        redis-server "${conf[@]}" --port 0 --unixsocket "$redis_sock" --unixsocketperm 700 \
            "${common[@]}" "$@" &&
            _redis_wait 100 && return 0
    else
        local _try
        for _try in $(seq 20); do
            redis_port=$((20000 + RANDOM % 40000))
            # Someone listens there already: another port.
            (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && continue
            redis_url=redis://127.0.0.1:$redis_port
            rm -f "$dir/redis.pid" "$dir/redis.log"
            redis-server "${conf[@]}" --port "$redis_port" --bind 127.0.0.1 "${common[@]}" "$@" ||
                continue
            _redis_wait 100 && return 0
            redis_stop
        done
    fi
    echo "redis_start: redis-server did not come up in $dir" >&2
    tail -n 5 "$dir/redis.log" >&2 2>/dev/null
    return 1
}

redis_stop() {
    local pid i
    pid=$(_redis_pid) || true
    [ -n "$pid" ] || return 0 # only ever our own: on a port, another may answer
    # SHUTDOWN answers nothing when it works; an answer is a refusal (a login
    # it wants): then TERM, which a server without persistence obeys at once.
    if redis_cli shutdown nosave 2>&1 | grep -q .; then kill "$pid" 2>/dev/null || true; fi
    # Gone once it has removed its pid file (and socket): the last thing it does
    # on the way out. The process itself may linger a moment longer.
    for ((i = 0; i < 100; i++)); do
        [ -e "$redis_dir/redis.pid" ] && kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -9 "$pid" 2>/dev/null || true
}
