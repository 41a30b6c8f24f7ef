#!/bin/sh
# tests/build/skip_reasons.sh - after a ctest run, prints why each skipped test was skipped (ctest shows only "Skipped").
# Usage: skip_reasons.sh BUILD_DIR   (run by ctest itself: CTEST_CUSTOM_POST_TEST, see tests/CMakeLists.txt)
# Reads the run's log, still named LastTest.log.tmp while ctest runs, and prints the "SKIP case: reason" lines of
# tests/check.h and the "skipped: reason" lines of the shell tests, one per skipped test. Always exits 0: a
# report, never a verdict.
log=$1/Testing/Temporary/LastTest.log.tmp
[ -f "$log" ] || log=$1/Testing/Temporary/LastTest.log
[ -f "$log" ] || exit 0
awk '
    /^[0-9]+\/[0-9]+ Test: / { name = $3; out = 0; next }
    /^Output:$/ { out = 1; next }
    /^<end of output>$/ { out = 0; next }
    out && /^SKIP [^ ]+: / { sub(/^SKIP [^ ]+: /, ""); r[++n] = name ": " $0; next }
    out && /^skipped: / { sub(/^skipped: /, ""); r[++n] = name ": " $0; next }
    END {
        if (n) print "Why they were skipped:"
        for (i = 1; i <= n; i++) print "\t" r[i]
    }' "$log"
exit 0
