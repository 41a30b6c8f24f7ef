#!/bin/sh
# tests/examples/run_example.sh - run an example and compare its output, sorted (threads interleave lines), with
# the expected file. Usage: run_example.sh EXPECTED_FILE EXPECTED_EXIT STREAM(stdout|stderr) SED_EXPR PROGRAM [ARGS...]
# SED_EXPR (or -) masks what may legitimately differ between runs, e.g. which sink instance got a record.
set -u
expected=$1 want_rc=$2 stream=$3 mask=$4
shift 4
[ "$mask" = - ] && mask=""
out=$(mktemp) err=$(mktemp)
"$@" >"$out" 2>"$err"
rc=$?
if [ "$rc" -ne "$want_rc" ]; then
    echo "exit status $rc, expected $want_rc"; cat "$err"; rm -f "$out" "$err"; exit 1
fi
if [ "$stream" = stderr ]; then got=$err; else got=$out; fi
if ! sed "$mask" "$got" | LC_ALL=C sort | diff -u "$expected" -; then
    echo "output differs from $expected"; rm -f "$out" "$err"; exit 1
fi
rm -f "$out" "$err"
echo "1 passed, 0 failed"
