#!/bin/sh
# tests/build/check_harness_selftest.sh - tests/check.h reports what happened: ok, FAIL, SKIP, a crash, a timeout.
# Usage: check_harness_selftest.sh CC TESTS_DIR
# Builds a small test program on check.h (cases that pass, fail, skip, crash, hang and leave a child
# behind) and checks the exit status and output of `prog CASE`, `prog --list`, `prog` (every case in a
# forked child with a 1 s timeout) and of a program with a RUN line missing from its case list.
set -u
cc=${1:?usage: check_harness_selftest.sh CC TESTS_DIR}
dir=${2:?usage: check_harness_selftest.sh CC TESTS_DIR}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0

cat >"$tmp/t.c" <<'EOF'
/* check.h selftest program: one case per outcome. */
#include "check.h"
#include <fcntl.h>
static int setups;
static void passes(void) { CHECK_INT(setups, 1); }
static void fails(void) { CHECK_INT(1 + 1, 3); }
static void skips(void) { SKIP("no %s on this host", "widget"); }
static void fails_then_skips(void)
{
    CHECK(0);
    SKIP("too late");
}
static void crashes(void) { raise(SIGSEGV); }
static void hangs(void)
{
    if (fork() == 0) { /* a child of the case: killed with it */
        FILE *f = fopen(getenv("HANG_PIDFILE"), "w");
        fprintf(f, "%d\n", (int)getpid());
        fclose(f);
        int null = open("/dev/null", O_WRONLY); /* a survivor must not hold the selftest's pipe */
        dup2(null, 1);
        dup2(null, 2);
        pause();
    }
    pause();
}
static void skipped_by_main(void) { CHECK(0); }
int main(int argc, char **argv)
{
    CHECK_MAIN(argc, argv);
    setups++;
    RUN(passes);
    RUN(fails);
    RUN(skips);
    RUN(fails_then_skips);
    RUN(crashes);
    RUN(hangs);
    SKIP_CASES("main found no %s", "gadget");
    RUN(skipped_by_main);
    return CHECK_DONE();
}
EOF
cases="passes fails skips fails_then_skips crashes hangs skipped_by_main"
"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -I"$dir" "-DCHECK_CASES=\"$cases\"" \
    -DCHECK_TIMEOUT=1 -o "$tmp/t" "$tmp/t.c" || { echo "selftest: cannot build the test program" >&2; exit 1; }
# the same program whose case list misses a RUN line
"$cc" -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wno-unused-parameter -I"$dir" \
    "-DCHECK_CASES=\"passes fails skips fails_then_skips crashes hangs\"" -DCHECK_TIMEOUT=1 -o "$tmp/t_unlisted" \
    "$tmp/t.c" || { echo "selftest: cannot build the second test program" >&2; exit 1; }

# expect WANT_STATUS NEEDLE PROGRAM ARGS...: the program exits WANT_STATUS and prints NEEDLE.
expect() {
    want=$1
    needle=$2
    shift 2
    out=$(HANG_PIDFILE="$tmp/hang.pid" "$@" 2>&1)
    got=$?
    judge "$want" "$needle" "${*##*/}"
}
# judge WANT_STATUS NEEDLE WHAT: $got and $out as expected?
judge() {
    if [ "$got" -ne "$1" ] || ! printf '%s\n' "$out" | grep -qF -- "$2"; then
        echo "selftest: FAIL $3 exited $got (want $1, with \"$2\"):" >&2
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        bad=1
    else
        echo "selftest: ok   $3: exit $got, \"$2\""
    fi
}

expect 0 "ok   passes" "$tmp/t" passes
expect 1 "FAIL fails" "$tmp/t" fails
expect 1 "1 + 1 == 3 failed: 2 != 3" "$tmp/t" fails
expect 77 "SKIP skips: no widget on this host" "$tmp/t" skips
expect 1 "FAIL fails_then_skips" "$tmp/t" fails_then_skips
expect 77 "SKIP skipped_by_main: main found no gadget" "$tmp/t" skipped_by_main
expect 2 "usage:" "$tmp/t" no_such_case
expect 0 "fails_then_skips" "$tmp/t" --list
expect 1 "is not in the case list" "$tmp/t_unlisted" passes
# every case, each in its own child: one run, judged on each line it must print
out=$(HANG_PIDFILE="$tmp/hang.pid" "$tmp/t" 2>&1)
got=$?
judge 1 "ok   passes" "t (all cases)"
judge 1 "FAIL fails" "t (all cases)"
judge 1 "SKIP skips: no widget on this host" "t (all cases)"
judge 1 "FAIL crashes (killed by signal 11" "t (all cases)"
judge 1 "FAIL hangs (timed out after 1 s" "t (all cases)"
judge 1 "SKIP skipped_by_main: main found no gadget" "t (all cases)"
judge 1 "t: 1 passed, 4 failed, 2 skipped" "t (all cases)"
# the hanging case's own child was killed with it (gone, or a zombie its new parent has not reaped yet)
pid=$(cat "$tmp/hang.pid" 2>/dev/null)
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
if [ -z "$pid" ]; then
    echo "selftest: FAIL the hanging case never started its child" >&2
    bad=1
elif [ -n "$state" ] && [ "$state" != Z ]; then
    echo "selftest: FAIL the hanging case's child $pid outlived the timeout (state $state)" >&2
    kill -9 "$pid" 2>/dev/null
    bad=1
else
    echo "selftest: ok   the hanging case's child was killed with it"
fi
exit "$bad"
