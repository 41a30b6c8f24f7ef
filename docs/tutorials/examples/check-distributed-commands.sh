#!/bin/sh
# check-distributed-commands.sh - every shell command of docs/tutorials/distributed-pipeline.md is run by
# tests/integration/test_cluster.sh (part 3), with the same text, and the test runs no tutorial command the
# tutorial does not show. ctest case tutorial_distributed_commands (tests/tutorials.cmake).
# Usage: check-distributed-commands.sh DOC TEST
# In DOC, commands are the lines of ```sh blocks that are neither blank nor comments (one command a line).
# A ```sh block right after a line `<!-- not run by the test: REASON -->` is setup the test does for itself
# (installing, building: the test uses the programs ctest built); its commands are listed as such, not checked.
# In TEST, a tutorial command is the single-quoted argument of a line starting with `tut '...'` or
# `tut_on NS NAME '...'`; test_cluster.sh's tut/tut_on substitute only ports and paths before running it.
# Prints "DOC LINE -> TEST LINE" for each command: the map from the tutorial to the test.
set -eu
doc=${1:?usage: check-distributed-commands.sh DOC TEST}
test=${2:?usage: check-distributed-commands.sh DOC TEST}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

awk -v setup="$tmp/setup" '/^<!-- not run by the test: .* -->$/ { skip = 1; next }
     /^```sh$/ { inb = 1; inskip = skip; skip = 0; next } /^```/ { inb = 0; inskip = 0; next }
     !inb && !/^$/ { skip = 0 }
     inb && $0 !~ /^[ \t]*(#|$)/ { if (inskip) print NR "\t" $0 > setup; else print NR "\t" $0 }' "$doc" >"$tmp/doc"
[ -f "$tmp/setup" ] && while IFS="$(printf '\t')" read -r n cmd; do
    printf "setup, not run by the test (marked in the doc): doc line %s: %s\n" "$n" "$cmd"
done <"$tmp/setup"

grep -n "^ *tut\(_on [^ ]* [^ ]*\)\? '" "$test" | while IFS= read -r line; do
    n=${line%%:*}
    rest=${line#*:}
    q=$(printf '%s\n' "$rest" | sed "s/^ *tut\(_on [^ ]* [^ ]*\)\? \('.*'\)[^']*$/\2/")
    eval "set -- $q"
    printf '%s\t%s\n' "$n" "$1"
done >"$tmp/test"

bad=0
while IFS="$(printf '\t')" read -r n cmd; do
    t=$(C=$cmd awk -F '\t' '$2 == ENVIRON["C"] { print $1; exit }' "$tmp/test")
    if [ -n "$t" ]; then
        printf "doc line %s -> test line %s: %s\n" "$n" "$t" "$cmd"
    else
        printf "NOT RUN BY THE TEST: doc line %s: %s\n" "$n" "$cmd"
        bad=1
    fi
done <"$tmp/doc"
while IFS="$(printf '\t')" read -r n cmd; do
    C=$cmd awk -F '\t' '$2 == ENVIRON["C"] { f = 1 } END { exit !f }' "$tmp/doc" || {
        printf "NOT IN THE TUTORIAL: test line %s: %s\n" "$n" "$cmd"
        bad=1
    }
done <"$tmp/test"
[ -s "$tmp/doc" ] || { echo "no commands found in $doc"; exit 1; }

# Excerpts: a ```c block right after a line <!-- excerpt: PATH --> (PATH from the top of the tree) must appear,
# character for character, in that file.
root=$(cd "$(dirname "$doc")/../.." && pwd)
awk -v dir="$tmp" '/^<!-- excerpt: .* -->$/ { f = $3; next }
     /^```c$/ && f != "" { n++; print f > (dir "/ex" n ".path"); inb = 1; next }
     /^```/ && inb { inb = 0; f = ""; next }
     inb { print > (dir "/ex" n ".c") }
     !inb && !/^$/ { f = "" }' "$doc"
for p in "$tmp"/ex*.path; do
    [ -f "$p" ] || break
    src=$root/$(cat "$p")
    awk 'FNR == 1 { k++ } k == 1 { a = a $0 "\n" } k == 2 { b = b $0 "\n" } END { exit index(b, a) == 0 }' \
        "${p%.path}.c" "$src" && echo "excerpt of $(cat "$p") matches the file" || {
        echo "EXCERPT DIFFERS from $(cat "$p"):"
        cat "${p%.path}.c"
        bad=1
    }
done
[ $bad -eq 0 ] && echo "all $(wc -l <"$tmp/doc") commands of the tutorial are run by the test"
exit $bad
