#!/bin/sh
# tests/build/check_exports.sh - what libsage.so exports and needs: only public sage_ symbols, no SQLite, no daemon.
# Usage: check_exports.sh LIBSAGE_SO [DAEMON_ARCHIVE]
# Fails (exit 1, naming every offence) when:
#   - nm fails on the library, or finds no exported symbol or no symbol table at all (nothing proven);
#   - the library exports a symbol that is not public sage_* (sage__ is internal and stays inside);
#   - the library needs SQLite (a NEEDED libsqlite3 entry or an undefined sqlite3_* symbol);
#   - the library defines, even hidden, a JobManager daemon symbol: sage_jobmanager_run, jm_*, sage__store_*,
#     or any global symbol DAEMON_ARCHIVE (libsage_jobmanager.a) defines.
set -u
export LC_ALL=C
lib=${1:?usage: check_exports.sh LIBSAGE_SO [DAEMON_ARCHIVE]}
daemon=${2:-}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
bad=0
fail() {
    echo "check_exports: $*" >&2
    bad=1
}

[ -f "$lib" ] || { echo "check_exports: no library at $lib" >&2; exit 1; }

# 1. Exported (dynamic) symbols: only sage_*, never sage__*.
if ! nm -D --defined-only "$lib" >"$tmp/dyn" 2>"$tmp/err"; then
    fail "nm -D failed on $lib: $(cat "$tmp/err")"
elif ! awk 'NF >= 3 {print $3}' "$tmp/dyn" >"$tmp/exported" || [ ! -s "$tmp/exported" ]; then
    fail "nm -D printed no exported symbol for $lib"
else
    grep -v '^sage_' "$tmp/exported" | sed 's/^/  /' >"$tmp/foreign"
    grep '^sage__' "$tmp/exported" | sed 's/^/  /' >"$tmp/internal"
    [ -s "$tmp/foreign" ] && fail "$lib exports symbols that are not sage_*:
$(cat "$tmp/foreign")"
    [ -s "$tmp/internal" ] && fail "$lib exports internal sage__ symbols:
$(cat "$tmp/internal")"
fi

# 2. SQLite belongs to the daemon: not needed, not referenced.
if ! readelf -d "$lib" >"$tmp/dynamic" 2>"$tmp/err"; then
    fail "readelf -d failed on $lib: $(cat "$tmp/err")"
elif ! grep -q '^Dynamic section' "$tmp/dynamic"; then
    fail "readelf -d found no dynamic section in $lib"
else
    grep '(NEEDED)' "$tmp/dynamic" | grep -i 'sqlite' | sed 's/^/  /' >"$tmp/sqlneed"
    [ -s "$tmp/sqlneed" ] && fail "$lib needs SQLite:
$(cat "$tmp/sqlneed")"
fi
if ! nm -D --undefined-only "$lib" >"$tmp/undef" 2>"$tmp/err"; then
    fail "nm -D --undefined-only failed on $lib: $(cat "$tmp/err")"
else
    awk '{print $NF}' "$tmp/undef" | grep '^sqlite3_' | sed 's/^/  /' >"$tmp/sqlsyms"
    [ -s "$tmp/sqlsyms" ] && fail "$lib calls SQLite:
$(cat "$tmp/sqlsyms")"
fi

# 3. No daemon code, exported or hidden: the full symbol table, local symbols included.
if ! nm --defined-only "$lib" >"$tmp/all" 2>"$tmp/err"; then
    fail "nm failed on $lib: $(cat "$tmp/err")"
elif ! awk 'NF >= 3 {print $3}' "$tmp/all" | sed 's/\..*$//' | sort -u >"$tmp/defined" || [ ! -s "$tmp/defined" ]; then
    fail "nm found no symbol table in $lib (stripped?): cannot show that the daemon is not in it"
else
    grep -E '^(sage_jobmanager_run|jm_.*|sage__store_.*)$' "$tmp/defined" | sed 's/^/  /' >"$tmp/daemon"
    [ -s "$tmp/daemon" ] && fail "$lib defines JobManager daemon symbols:
$(cat "$tmp/daemon")"
    if [ -n "$daemon" ]; then
        if ! nm --defined-only "$daemon" >"$tmp/arch" 2>"$tmp/err"; then
            fail "nm failed on $daemon: $(cat "$tmp/err")"
        else
            awk 'NF >= 3 && $2 ~ /^[TDBRVWGS]$/ {print $3}' "$tmp/arch" | sort -u >"$tmp/daemon_globals"
            if ! grep -qx 'sage_jobmanager_run' "$tmp/daemon_globals"; then
                fail "$daemon does not define sage_jobmanager_run: is it the daemon's library?"
            fi
            comm -12 "$tmp/defined" "$tmp/daemon_globals" | sed 's/^/  /' >"$tmp/shared"
            [ -s "$tmp/shared" ] && fail "$lib defines symbols of the daemon library $daemon:
$(cat "$tmp/shared")"
        fi
    fi
fi

if [ "$bad" -eq 0 ]; then
    echo "check_exports: $lib exports $(wc -l <"$tmp/exported") sage_ symbols, needs no SQLite, holds no daemon code"
fi
exit "$bad"
