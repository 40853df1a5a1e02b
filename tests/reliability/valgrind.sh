#!/usr/bin/env bash
# valgrind.sh: the unit suites under valgrind memcheck, zero leaks wanted.
#
#   tests/reliability/valgrind.sh [BUILD_DIR]      (default: $LASH_BUILD_DIR or build)
#
# Runs each unit suite that exists in BUILD_DIR/bin (test_proto, test_proto_regress,
# test_text, test_turn, test_turn_edges, test_turn_prefetch, test_route, test_resp) under
#   valgrind --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1
# Criterion runs every test in a forked child: --trace-children=yes follows them,
# --jobs=1 keeps one at a time, CRITERION_NO_EARLY_EXIT=1 lets each child return
# through its normal exit so its leaks are counted. A suite passes when valgrind
# reports no error and no definite or indirect leak in any process and the suite
# itself passes. Prints "N passed, N failed" last; exits non-zero on a failure.
set -u
here=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-${LASH_BUILD_DIR:-$here/build}}
case $build in /*) ;; *) build=$here/$build ;; esac
passed=0
failed=0
if ! command -v valgrind >/dev/null; then
    echo "valgrind: not installed"
    echo "0 passed, 1 failed"
    exit 1
fi
logdir=$(mktemp -d /tmp/lash-valgrind-XXXXXX)
ran=0
skipped=0
for t in test_proto test_proto_regress test_text test_turn test_turn_edges test_turn_prefetch test_route test_resp; do
    bin=$build/bin/$t
    [ -x "$bin" ] || continue
    if grep -q -a __asan_init "$bin"; then
        # valgrind cannot run AddressSanitizer binaries: use a plain build for this.
        echo "SKIP $t: built with -DLASH_SANITIZE=ON (valgrind needs a plain build)"
        skipped=$((skipped + 1))
        continue
    fi
    ran=$((ran + 1))
    log=$logdir/$t
    start=$(date +%s)
    CRITERION_NO_EARLY_EXIT=1 valgrind --quiet --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --trace-children=yes \
        --child-silent-after-fork=no --log-file="$log.%p" "$bin" --jobs=1 >"$log.out" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    # Every process's report: any "ERROR SUMMARY: N" with N > 0, or a definite or
    # indirect leak, fails the suite even if an exit code got lost on the way.
    errs=$(cat "$log".[0-9]* 2>/dev/null | grep -E "ERROR SUMMARY: [1-9]" | wc -l)
    leaks=$(cat "$log".[0-9]* 2>/dev/null | grep -E "(definitely|indirectly) lost: [1-9]" | wc -l)
    synth=$(grep -a "Synthesis" "$log.out" | tail -1)
    if [ "$rc" -eq 0 ] && [ "$errs" -eq 0 ] && [ "$leaks" -eq 0 ]; then
        passed=$((passed + 1))
        echo "PASS $t under valgrind (${secs}s, $(ls "$log".[0-9]* 2>/dev/null | wc -l) processes, 0 errors, 0 leaks) $synth"
    else
        failed=$((failed + 1))
        echo "FAIL $t under valgrind: exit $rc, $errs process(es) with errors, $leaks with leaks; logs in $logdir"
        cat "$log".[0-9]* 2>/dev/null | grep -E -A12 "definitely lost in|indirectly lost in|Invalid|uninitialised" | head -60
        tail -5 "$log.out"
    fi
done
if [ "$ran" -eq 0 ] && [ "$skipped" -eq 0 ]; then
    echo "valgrind: no unit suite in $build/bin"
    failed=$((failed + 1))
fi
[ "$failed" -eq 0 ] && rm -rf "$logdir"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
