# tests/lib/redis.sh: a private redis-server for the shell scripts (the web
# suite, install checks, bench/run.sh, demo/run.sh), started and stopped one
# way everywhere. Source it (bash), then:
#
#   redis_start DIR [--tcp] [redis-server args...]
#       Starts redis-server with its files in DIR (made when missing): on the
#       unix socket DIR/redis.sock (mode 700), or with --tcp on a free loopback
#       port; no persistence (--save '' --appendonly no; later args may say
#       otherwise); daemonized, pid in DIR/redis.pid, log in DIR/redis.log.
#       Returns once that server (its pid file written, its dir ours) answers
#       PING; after 10 s it fails, printing the log's tail. Sets
#         redis_dir  redis_sock (unix) or redis_port (--tcp)  redis_url
#   redis_cli ARGS...   redis-cli against it
#   redis_stop          SHUTDOWN NOSAVE (SIGKILL if it will not), and waits
#                       until it is gone; DIR stays: the caller made it, the
#                       caller removes it
#
# One server at a time per shell. The C suites have their own helper with the
# same settings: tests/fixture.h.

redis_cli() {
    if [ -n "${redis_sock:-}" ]; then
        redis-cli -s "$redis_sock" "$@"
    else
        redis-cli -h 127.0.0.1 -p "$redis_port" "$@"
    fi
}

# Whether the server answering is the one started in redis_dir.
_redis_ours() {
    [ -s "$redis_dir/redis.pid" ] &&
        [ "$(redis_cli config get dir 2>/dev/null | sed -n 2p)" = "$(cd "$redis_dir" && pwd -P)" ]
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
    local dir=$1 tcp=0
    shift
    if [ "${1:-}" = --tcp ]; then
        tcp=1
        shift
    fi
    mkdir -p "$dir"
    redis_dir=$dir redis_sock="" redis_port="" redis_url=""
    local common=(--dir "$dir" --save '' --appendonly no --daemonize yes
        --pidfile "$dir/redis.pid" --logfile "$dir/redis.log")
    if [ $tcp = 0 ]; then
        redis_sock=$dir/redis.sock
        redis_url=unix://$redis_sock
        rm -f "$dir/redis.pid" "$dir/redis.log"
        redis-server --port 0 --unixsocket "$redis_sock" --unixsocketperm 700 "${common[@]}" "$@" &&
            _redis_wait 100 && return 0
    else
        local try
        for try in $(seq 20); do
            redis_port=$((20000 + RANDOM % 40000))
            # Someone listens there already: another port.
            (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null && continue
            redis_url=redis://127.0.0.1:$redis_port
            rm -f "$dir/redis.pid" "$dir/redis.log"
            redis-server --port "$redis_port" --bind 127.0.0.1 "${common[@]}" "$@" || continue
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
    pid=$(cat "$redis_dir/redis.pid" 2>/dev/null) || pid=""
    # Only ever our own: on a port, another server may answer.
    if _redis_ours; then
        redis_cli shutdown nosave >/dev/null 2>&1 || true
    elif [ -n "$pid" ]; then
        kill "$pid" 2>/dev/null || true
    fi
    [ -n "$pid" ] || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
}
