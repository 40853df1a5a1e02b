#!/bin/sh
# flaky.sh: an exec handler for the web tests: fails until the file named by
# $WEB_TEST_ALLOW exists, then succeeds. Lets a test fail a process, "fix" the
# world, and retry it from the dashboard.
cat >/dev/null
if [ -n "${WEB_TEST_ALLOW:-}" ] && [ -e "$WEB_TEST_ALLOW" ]; then
    echo '"fixed"'
else
    echo "not yet: the dependency is missing" >&2
    exit 1
fi
