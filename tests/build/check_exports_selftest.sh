#!/bin/sh
# tests/build/check_exports_selftest.sh - check_exports.sh fails on every wrong library, and passes a right one.
# Usage: check_exports_selftest.sh CC CHECK_EXPORTS_SH
# Builds small shared libraries that each break one rule (a foreign export, an internal export, SQLite
# needed, a hidden daemon symbol, a symbol of the daemon's archive, a stripped symbol table), puts a
# failing and a silent `nm` first on PATH, and expects check_exports.sh to fail each time with the reason.
set -u
cc=${1:?usage: check_exports_selftest.sh CC CHECK_EXPORTS_SH}
check=${2:?usage: check_exports_selftest.sh CC CHECK_EXPORTS_SH}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0
path=$PATH

lib() { # lib NAME EXTRA_LDFLAGS <<C source
    cat >"$tmp/$1.c"
    # shellcheck disable=SC2086
    "$cc" -shared -fPIC -o "$tmp/$1.so" "$tmp/$1.c" $2 || { echo "selftest: cannot build $1" >&2; exit 1; }
}

# expect WANT_STATUS NEEDLE CHECK_ARGS...: runs the check, wants that status and NEEDLE in its output.
expect() {
    want=$1
    needle=$2
    shift 2
    out=$(PATH="$path" "$check" "$@" 2>&1)
    got=$?
    if [ "$got" -ne "$want" ] || ! printf '%s\n' "$out" | grep -qF -- "$needle"; then
        echo "selftest: FAIL check_exports.sh $* exited $got (want $want, with \"$needle\"):" >&2
        printf '%s\n' "$out" | sed 's/^/    /' >&2
        bad=1
    else
        echo "selftest: ok   exit $got, \"$needle\""
    fi
}

lib good '' <<'EOF'
int sage_ok(void) { return 1; }
EOF
lib foreign '' <<'EOF'
int sage_ok(void) { return 1; }
int helper(void) { return 2; }
EOF
lib internal '' <<'EOF'
int sage_ok(void) { return 1; }
int sage__inner(void) { return 2; }
EOF
lib sqlite '-Wl,--no-as-needed -lsqlite3' <<'EOF'
const char *sqlite3_libversion(void);
const char *sage_ok(void) { return sqlite3_libversion(); }
EOF
lib hidden_jm '' <<'EOF'
__attribute__((visibility("hidden"))) int jm_job_find(int x) { return x + 1; }
int sage_ok(int x) { return jm_job_find(x); }
EOF
lib hidden_run '' <<'EOF'
__attribute__((visibility("hidden"))) int sage_jobmanager_run(int x) { return x + 1; }
int sage_ok(int x) { return sage_jobmanager_run(x); }
EOF
lib hidden_helper '' <<'EOF'
__attribute__((visibility("hidden"))) int daemon_helper(int x) { return x + 1; }
int sage_ok(int x) { return daemon_helper(x); }
EOF
# a stand-in for libsage_jobmanager.a that defines daemon_helper
cat >"$tmp/daemon.c" <<'EOF'
int sage_jobmanager_run(void) { return 0; }
int daemon_helper(int x) { return x; }
EOF
"$cc" -c -fPIC -o "$tmp/daemon.o" "$tmp/daemon.c" && ar rcs "$tmp/libdaemon.a" "$tmp/daemon.o" || exit 1
cp "$tmp/good.so" "$tmp/stripped.so" && strip --strip-all "$tmp/stripped.so" || exit 1

expect 0 "exports 1 sage_ symbols" "$tmp/good.so" "$tmp/libdaemon.a"
expect 1 "exports symbols that are not sage_*" "$tmp/foreign.so"
expect 1 "  helper" "$tmp/foreign.so"
expect 1 "exports internal sage__ symbols" "$tmp/internal.so"
expect 1 "needs SQLite" "$tmp/sqlite.so"
expect 1 "calls SQLite" "$tmp/sqlite.so"
expect 1 "defines JobManager daemon symbols" "$tmp/hidden_jm.so"
expect 1 "  jm_job_find" "$tmp/hidden_jm.so"
expect 1 "  sage_jobmanager_run" "$tmp/hidden_run.so"
expect 0 "holds no daemon code" "$tmp/hidden_helper.so"
expect 1 "defines symbols of the daemon library" "$tmp/hidden_helper.so" "$tmp/libdaemon.a"
expect 1 "does not define sage_jobmanager_run" "$tmp/good.so" "$tmp/good.so"
expect 1 "no symbol table" "$tmp/stripped.so"
expect 1 "no library at" "$tmp/missing.so"
expect 1 "no dynamic section" "$tmp/daemon.o"

# nm that fails, then nm that prints nothing, first on PATH
mkdir "$tmp/failing" "$tmp/silent"
printf '#!/bin/sh\necho "nm: broken" >&2\nexit 1\n' >"$tmp/failing/nm"
printf '#!/bin/sh\nexit 0\n' >"$tmp/silent/nm"
chmod +x "$tmp/failing/nm" "$tmp/silent/nm"
path="$tmp/failing:$PATH"
expect 1 "nm -D failed on $tmp/good.so: nm: broken" "$tmp/good.so"
path="$tmp/silent:$PATH"
expect 1 "nm -D printed no exported symbol" "$tmp/good.so"
expect 1 "no symbol table" "$tmp/good.so"
exit "$bad"
