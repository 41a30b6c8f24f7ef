#!/bin/sh
# tests/build/check_layers.sh - the engine's layers call only downward, measured from the compiled objects.
# Usage: check_layers.sh BUILD_SRC_DIR LAYER...   (layers from the bottom, as in src/CMakeLists.txt)
# For every object file of layer L, every symbol it uses that the engine defines must be defined in L or a
# layer listed before L. Prints each violation (object, symbol, defining layer) and exits 1 if any.
set -eu
dir=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rank=0
: >"$tmp/defs"
for layer in "$@"; do
    rank=$((rank + 1))
    objs=$(find "$dir/CMakeFiles/sage_$layer.dir" -name '*.o' | sort)
    [ -n "$objs" ] || { echo "no objects for layer $layer under $dir" >&2; exit 1; }
    for o in $objs; do
        nm --defined-only "$o" | awk -v l="$layer" -v r="$rank" '$2 ~ /^[TDBRV]$/ {print $3, l, r}' >>"$tmp/defs"
        echo "$o $layer $rank" >>"$tmp/objs"
    done
done
bad=0
while read -r o layer rank; do
    nm --undefined-only "$o" | awk '{print $NF}' | while read -r sym; do
        def=$(awk -v s="$sym" '$1 == s {print $2, $3; exit}' "$tmp/defs")
        [ -n "$def" ] || continue
        dlayer=${def% *}
        drank=${def#* }
        if [ "$drank" -gt "$rank" ]; then
            echo "layer violation: ${o##*/CMakeFiles/} ($layer) uses $sym, defined in $dlayer (a higher layer)"
        fi
    done
done <"$tmp/objs" >"$tmp/violations"
if [ -s "$tmp/violations" ]; then
    cat "$tmp/violations"
    echo "$(wc -l <"$tmp/violations") call(s) from a lower layer into a higher one (order: $*)"
    exit 1
fi
echo "ok: $(wc -l <"$tmp/objs") objects in $# layers call only downward ($*)"
