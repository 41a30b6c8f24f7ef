#!/bin/sh
# tests/build/format_check.sh - the files clang-format would change (.clang-format at the root), with how many lines.
# Usage: format_check.sh [FILE...]   (default: every tracked *.c and *.h); `make format-check` runs it.
# Prints "LINES FILE" for every file clang-format would change (LINES: lines of the file it would rewrite)
# and a total, and exits 1 if there is any; exits 2 if clang-format is missing or fails. The style was
# tuned with clang-format 14 (Debian 12); another version may differ, so the version is named when it is not 14.
set -u
cf=${CLANG_FORMAT:-clang-format}
top=$(git rev-parse --show-toplevel 2>/dev/null) || { echo "format_check: not in a git work tree" >&2; exit 2; }
cd "$top" || exit 2
[ -f .clang-format ] || { echo "format_check: no .clang-format in $top" >&2; exit 2; }
version=$("$cf" --version 2>/dev/null) || { echo "format_check: $cf not found (apt-get install clang-format)" >&2; exit 2; }
case $version in
*" version 14."*) ;;
*) echo "format_check: note: the style was tuned with clang-format 14, this is: $version" >&2 ;;
esac
[ $# -gt 0 ] || set -- $(git ls-files '*.c' '*.h')
tmp=$(mktemp) || exit 2
trap 'rm -f "$tmp"' EXIT
files=0
lines=0
for f in "$@"; do
    if ! "$cf" --style=file "$f" >"$tmp"; then
        echo "format_check: $cf failed on $f" >&2
        exit 2
    fi
    if ! cmp -s "$f" "$tmp"; then
        n=$(diff "$f" "$tmp" | grep -c '^<')
        [ "$n" -gt 0 ] || n=1
        printf '%6d %s\n' "$n" "$f"
        files=$((files + 1))
        lines=$((lines + n))
    fi
done
if [ "$files" -gt 0 ]; then
    echo "format_check: clang-format would change $lines lines in $files of $# files (make format rewrites them)"
    exit 1
fi
echo "format_check: $# files as clang-format writes them"
