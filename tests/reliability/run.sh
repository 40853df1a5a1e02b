#!/usr/bin/env bash
# run.sh: the reliability suites of issue 7, short form (CI) or long form.
#
#   tests/reliability/run.sh [--long] [BUILD_DIR]   (default: $LASH_BUILD_DIR or build)
#
# Needs a built tree (cmake --build BUILD_DIR): the suites are the criterion
# binaries BUILD_DIR/bin/test_reliability_* (sources tests/test_reliability_*.c)
# plus tests/reliability/valgrind.sh over the unit suites.
#
#   chaos     3 workers, kill -9 / freeze every 1-2 s; 2,000 processes (long: 20,000)
#   restart   kill -9 redis-server mid-run, appendfsync always and everysec
#   pubsub    subscribers killed every 50 ms; the poll finishes the work
#   memory    50,000 processes, --keep 1000 (long: 1,000,000, default retention)
#   security  hostile rows: paths as kinds, shell syntax, 100 MB payloads, NULs, ...
#   valgrind  unit suites under memcheck, zero leaks
#
# --long (or LASH_LONG=1) selects the long forms. Each suite's figures are the
# "REPORT" lines it prints; they are repeated at the end. The last line is
# "N passed, N failed" (tests counted); the exit status is non-zero on a failure.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
long=${LASH_LONG:-0}
build=${LASH_BUILD_DIR:-$here/build}
for a in "$@"; do
    case $a in
    --long) long=1 ;;
    -h | --help)
        sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    -*)
        echo "run.sh: unknown option $a" >&2
        exit 2
        ;;
    *) build=$a ;;
    esac
done
case $build in /*) ;; *) build=$here/$build ;; esac
export LASH_LONG=$long

passed=0
failed=0
reports=$(mktemp /tmp/lash-rel-reports-XXXXXX)
form=short
[ "$long" = 1 ] && form=long
echo "reliability suites ($form form) from $build/bin"

for s in chaos restart pubsub memory security; do
    bin=$build/bin/test_reliability_$s
    if [ ! -x "$bin" ]; then
        echo "FAIL $s: $bin is missing (build the tree first)"
        failed=$((failed + 1))
        continue
    fi
    out=$(mktemp /tmp/lash-rel-$s-XXXXXX)
    start=$(date +%s)
    "$bin" --jobs=1 --verbose >"$out" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    grep -a '^REPORT ' "$out" >>"$reports"
    synth=$(grep -a 'Synthesis:' "$out" | tail -1)
    p=$(sed -n 's/.*Passing: \([0-9]*\).*/\1/p' <<<"$synth")
    f=$(sed -n 's/.*Failing: \([0-9]*\).*/\1/p' <<<"$synth")
    c=$(sed -n 's/.*Crashing: \([0-9]*\).*/\1/p' <<<"$synth")
    p=${p:-0}
    f=${f:-0}
    c=${c:-0}
    if [ -z "$synth" ] || { [ "$rc" -ne 0 ] && [ $((f + c)) -eq 0 ]; }; then
        f=$((f + 1)) # died without a synthesis, or failed without saying which test
    fi
    passed=$((passed + p))
    failed=$((failed + f + c))
    if [ $((f + c)) -eq 0 ]; then
        echo "PASS $s (${secs}s): $p test(s)"
        rm -f "$out"
    else
        echo "FAIL $s (${secs}s): $p passed, $((f + c)) failed; output in $out"
        grep -a -E '^\[(FAIL|----)\]|Assertion|ERR' "$out" | head -40
    fi
done

start=$(date +%s)
vout=$("$here/tests/reliability/valgrind.sh" "$build" 2>&1)
secs=$(($(date +%s) - start))
echo "$vout" | sed '$d'
last=$(echo "$vout" | tail -1)
vp=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' <<<"$last")
vf=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' <<<"$last")
[ -z "$vp" ] && vp=0 && vf=1
echo "valgrind (${secs}s): $vp passed, $vf failed"
passed=$((passed + vp))
failed=$((failed + vf))

echo
echo "figures:"
sed 's/^REPORT /  /' "$reports"
rm -f "$reports"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
