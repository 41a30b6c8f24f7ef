#!/bin/sh
# tests/examples/wordcount.sh - the wordcount example over a generated text equals a sequential count.
# Usage: wordcount.sh WORDCOUNT_PROGRAM
set -eu
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# 20000 lines of words drawn deterministically from a small vocabulary, tabs and runs of spaces included.
awk 'BEGIN { srand(7); split("the a cat dog sat on mat run fast slow red blue green sage stream key", w, " ");
     for (i = 0; i < 20000; i++) { n = int(rand() * 9); line = "";
       for (j = 0; j < n; j++) line = line w[1 + int(rand() * 16)] (rand() < 0.1 ? "\t" : (rand() < 0.1 ? "   " : " "));
       print line } }' > "$dir/input.txt"
"$1" "$dir/input.txt" > "$dir/sage.txt"
tr -s ' \t' '\n\n' < "$dir/input.txt" | grep -v '^$' | LC_ALL=C sort | uniq -c | awk '{print $2, $1}' | LC_ALL=C sort > "$dir/expected.txt"
LC_ALL=C sort "$dir/sage.txt" | diff -u "$dir/expected.txt" -
echo "wordcount: $(wc -l < "$dir/sage.txt") distinct words, equal to the sequential count"
echo "1 passed, 0 failed"
