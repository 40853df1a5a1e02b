#!/bin/sh
# rooms.sh: only registry/ sends Redis commands (house rule). lashctl, the worker
# and the web server go through registry operations (registry.h, inspect.h), so
# routing a queue to its node (Cluster, Sentinel) has one owner: registry/conn.c.
# Fails, naming each line, when raw hiredis calls appear in cli/, worker/ or web/.
set -eu
cd "$(dirname "$0")/.."
pattern='redisCommand|redisAsyncCommand|redisAppendCommand|redisGetReply|lash_conn_redis'
if hits=$(grep -rnE "$pattern" cli worker web 2>/dev/null); then
    echo "raw Redis calls outside registry/:"
    echo "$hits"
    exit 1
fi
echo "rooms: no raw Redis calls in cli/ worker/ web/"
