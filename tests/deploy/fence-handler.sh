#!/bin/sh
# fence-handler.sh: the exec handler of tests/deploy/containers-test.sh, run by
# lash-worker inside the worker containers (mounted by compose.test.yml).
# Payload {"ms":N} on stdin: sleeps N ms, then appends "ID FENCE HOST" to
# /var/lash-test/ran (a directory every worker container shares) and prints
# {"fence":F,"host":"H"} as the result. A run that is killed (its container
# SIGKILLed, or stopped at the end of a SIGTERM grace) leaves no line, so the
# file lists every run that reached its end, and the test can tell a process
# run twice under the same fence from one retried under a newer fence.
# Builtins only, but for sleep: 2,000 of these run on a small machine.
set -eu
IFS= read -r payload || true
ms=${payload#'{"ms":'}
ms=${ms%'}'}
case "$ms" in
'' | *[!0-9]*)
    echo "fence-handler: payload is not {\"ms\":N}: $payload" >&2
    exit 2
    ;;
esac
sleep "$((ms / 1000)).$((ms % 1000 / 100))$((ms % 100 / 10))$((ms % 10))"
read -r host </proc/sys/kernel/hostname
printf '%s %s %s\n' "$LASH_ID" "$LASH_FENCE" "$host" >>/var/lash-test/ran
printf '{"fence":%s,"host":"%s"}\n' "$LASH_FENCE" "$host"
