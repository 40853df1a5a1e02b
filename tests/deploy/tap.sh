# shellcheck shell=bash
# tap.sh: the pass/fail counting the deploy test scripts share (sourced).
# ok/bad count one check each; finish prints "N passed, N failed" as the last
# line (what CI reads) and exits non-zero when anything failed.
passed=0
failed=0
ok() {
    passed=$((passed + 1))
    echo "ok - $*"
}
bad() {
    failed=$((failed + 1))
    echo "FAIL - $*"
}
finish() {
    echo "$passed passed, $failed failed"
    [ "$failed" = 0 ]
    exit
}
