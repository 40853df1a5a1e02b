#!/bin/sh
# run.sh [SECONDS]: build the libFuzzer targets with clang in build-fuzz and run each
# for SECONDS (default 60) from a fresh copy of its seed corpus under corpus/.
# Prints each target's exec count; exits non-zero if any target crashed, leaked,
# hung or failed to build. Crash inputs are left in build-fuzz/artifacts/<target>/.
#
# Needs clang and libclang-rt-14-dev (Debian 12). LASH_FUZZ_BUILD overrides the
# build dir; LASH_FUZZ_TARGETS="fuzz_url ..." runs a subset.
set -eu

secs=${1:-60}
case $secs in '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${LASH_FUZZ_BUILD:-$root/build-fuzz}
targets=${LASH_FUZZ_TARGETS:-fuzz_record fuzz_url fuzz_jsonl fuzz_result fuzz_route fuzz_redirect}

CC=${CC:-clang}
case $("$CC" --version 2>/dev/null | head -n 1) in
*clang*) ;;
*) echo "run.sh: CC=$CC is not clang; libFuzzer needs clang" >&2; exit 2 ;;
esac

mkdir -p "$build"
CC=$CC cmake -S "$root" -B "$build" -DLASH_FUZZ=ON -DLASH_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 1; }
# shellcheck disable=SC2086
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target $targets

status=0
summary=""
for t in $targets; do
    work=$build/fuzz-run/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$build/artifacts/$t"
    cp "$here/corpus/$t/"* "$work/corpus/"
    dict=""
    [ -f "$here/$t.dict" ] && dict="-dict=$here/$t.dict"
    echo "== $t: $secs s"
    rc=0
    # shellcheck disable=SC2086
    "$build/bin/$t" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$build/artifacts/$t/" $dict \
        "$work/corpus" >"$work/log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        status=1
        echo "!! $t failed (exit $rc); the log's end:"
        tail -n 40 "$work/log"
        summary="$summary$t: FAILED (exit $rc) after ${execs:-?} execs
"
    else
        summary="$summary$t: ok, ${execs:-?} execs in $secs s
"
    fi
done
echo "== summary"
printf '%s' "$summary"
exit $status
