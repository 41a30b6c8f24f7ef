#!/bin/sh
# tests/python/run_pytest.sh - run one Python test file with pytest (ctest's python/* tests).
# Usage: run_pytest.sh PYTHON TEST_FILE. Exit 77 (skipped) in a ThreadSanitizer build: the interpreter is not
# instrumented, so TSan would report every handoff of the GIL; the ASan build runs them (see python/CMakeLists.txt).
set -u
py=$1
test=$2
if [ "${SAGE_SANITIZE:-}" = thread ]; then
    echo "skipped: the Python tests do not run under ThreadSanitizer (the interpreter is not instrumented)"
    exit 77
fi
if ! "$py" -c "import pytest" 2>/dev/null; then
    echo "skipped: pytest is not installed for $py (scripts/deps.sh installs python3-pytest)"
    exit 77
fi
cd "$(dirname "$test")" || exit 1
exec "$py" -m pytest -q -p no:cacheprovider -o console_output_style=classic "$(basename "$test")"
