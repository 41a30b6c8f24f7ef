#!/bin/sh
# tests/build/check_install.sh - install into a fresh prefix, then build and run a small program the way the
# README says (pkg-config), statically too, and run the installed `sage`.
# Usage: check_install.sh BUILD_DIR
set -eu
build=$1
cflags=${SAGE_APP_CFLAGS:-} # sanitizer builds: the flags the library was built with
prefix=$(mktemp -d)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >"$prefix.log" 2>&1 || { cat "$prefix.log"; rm -f "$prefix.log"; exit 1; }
rm -f "$prefix.log"
pcdir=$(dirname "$(find "$prefix" -name sage.pc)")
for f in include/sage/sage.h include/sage/jobmanager.h bin/sage; do
    [ -e "$prefix/$f" ] || { echo "install: $f is missing"; exit 1; }
done
so=$(find "$prefix" -name 'libsage.so.*' -type f)
[ -n "$so" ] || { echo "install: libsage.so.N.N.N is missing"; exit 1; }
soname=$(objdump -p "$so" | awk '/SONAME/ {print $2}')
[ -e "$(dirname "$so")/$soname" ] || { echo "install: the soname link $soname is missing"; exit 1; }
[ -n "$(find "$prefix" -name libsage.a)" ] || { echo "install: libsage.a is missing"; exit 1; }
cat >"$prefix/app.c" <<'PROG'
#include <sage/sage.h>
#include <stdio.h>
static int twice(sage_ctx *c, const void *r, size_t n, sage_out *o, void *u)
{
    (void)c, (void)u;
    return sage_emit_i64(o, 2 * sage_rec_i64(r, n));
}
int main(void)
{
    int64_t v[] = {1, 2, 3};
    sage_collector *out = sage_collector_create(0);
    sage_env *env = sage_env_create("installed", NULL);
    sage_sink_collect(sage_map(sage_from_int64s(env, v, 3, NULL), twice, NULL, NULL), out, NULL);
    int rc = sage_env_execute(env);
    long long sum = 0;
    for (size_t i = 0; i < sage_collector_count(out); i++) {
        size_t len;
        const void *r = sage_collector_get(out, i, &len);
        sum += sage_rec_i64(r, len);
    }
    printf("%s %lld\n", rc ? sage_env_errmsg(env) : "ok", sum);
    sage_env_destroy(env);
    sage_collector_destroy(out);
    return rc != 0;
}
PROG
export PKG_CONFIG_PATH="$pcdir"
cc $cflags -Wall -Wextra -Werror -o "$prefix/app" "$prefix/app.c" $(pkg-config --cflags --libs sage)
out=$(LD_LIBRARY_PATH="$(dirname "$so")" "$prefix/app")
[ "$out" = "ok 12" ] || { echo "installed program printed \"$out\", expected \"ok 12\""; exit 1; }
# the static library: its own dependencies come from `pkg-config --static`
cc $cflags -Wall -Wextra -Werror -o "$prefix/app-static" "$prefix/app.c" $(pkg-config --cflags sage) "$(dirname "$so")/libsage.a" \
    $(pkg-config --static --libs-only-l sage | sed 's/-lsage//')
out=$("$prefix/app-static")
[ "$out" = "ok 12" ] || { echo "statically linked program printed \"$out\", expected \"ok 12\""; exit 1; }
"$prefix/bin/sage" --help >/dev/null 2>&1 || "$prefix/bin/sage" help >/dev/null 2>&1 || {
    echo "the installed sage program does not run:"; "$prefix/bin/sage" --help; exit 1; }
echo "ok: installed into a fresh prefix; pkg-config builds and runs a program (shared and static); sage runs"
