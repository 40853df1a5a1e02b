#!/bin/sh
# rooms.sh: the house rules about rooms that a grep can check.
#
#  1. Only registry/ sends Redis commands. lashctl, the worker, the web server
#     and the benchmarks go through registry operations (registry.h, inspect.h,
#     server.h), so routing a queue to its node (Cluster, Sentinel) has one
#     owner: registry/conn.c. Tests may still use raw hiredis to set up hostile
#     data; nothing else may.
#  2. The turn machine (worker/turn.[ch]) includes proto/ alone: it is sans-IO,
#     and it links without the Redis layer (tests/core.sh checks the link).
#
# Fails, naming each offending line.
set -eu
cd "$(dirname "$0")/.."
rc=0
pattern='redisCommand|redisvCommand|redisAsyncCommand|redisAppendCommand|redisGetReply|lash_conn_redis|hiredis/'
if hits=$(grep -rnE "$pattern" cli worker web bench 2>/dev/null); then
    echo "raw Redis calls outside registry/:"
    echo "$hits"
    rc=1
fi
if hits=$(grep -nE '^#include "' worker/turn.c worker/turn.h | grep -vE '"(proto/[a-z_]+\.h|worker/turn\.h)"'); then
    echo "the turn machine includes more than proto/:"
    echo "$hits"
    rc=1
fi
[ $rc = 0 ] && echo "rooms: no raw Redis calls in cli/ worker/ web/ bench/; turn.c needs proto/ alone"
exit $rc
