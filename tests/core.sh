#!/bin/sh
# core.sh BINARY...: the sans-IO core (proto/ and worker/turn.c) links without
# the Redis layer. Each BINARY (the core's test suites: test_turn, test_sim) must
# neither load libhiredis nor hold a hiredis symbol. CMake builds them from
# lash_turn and criterion alone (lash_assert_no_redis stops the configure
# otherwise); this checks what actually came out of the link.
set -eu
[ $# -gt 0 ] || { echo "usage: core.sh BINARY..." >&2; exit 2; }
bad=0
for bin in "$@"; do
    if readelf -d "$bin" | grep -qi 'NEEDED.*hiredis'; then
        echo "$bin: loads libhiredis"
        bad=1
    fi
    # hiredis' own names: redis*, __redis*, sds* (its string library).
    if syms=$(nm "$bin" | grep -E ' (__)?(redis|sds)[A-Za-z]'); then
        echo "$bin: holds hiredis symbols:"
        echo "$syms" | head -5
        bad=1
    fi
done
[ $bad = 0 ] || exit 1
echo "core: $# binaries, no hiredis"
