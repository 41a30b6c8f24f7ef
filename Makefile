# Top-level entry points: `make demo`, `make test`, `make bench`. The real build is CMake (CMakeLists.txt).
BUILD      ?= build
JOBS       ?= 2
CMAKE_ARGS ?=

.PHONY: all deps build install demo test test-asan test-tsan bench bench-quick fuzz format format-check clean

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# Install the headers, libsage (shared and static), sage.pc and the `sage` program under PREFIX.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
	@if [ "$$(id -u)" -eq 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

demo: build
	$(BUILD)/examples/parallelism

test: build
	@scripts/deps.sh --test
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Sanitizer builds of the whole suite (ASan+UBSan) and of the runtime tests (TSan).
test-asan: deps
	@scripts/deps.sh --test
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DSAGE_SANITIZE=address >/dev/null
	@cmake --build build-asan -j $(JOBS)
	cd build-asan && ctest --output-on-failure -j $(JOBS) --timeout 900

test-tsan: deps
	@scripts/deps.sh --test
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DSAGE_SANITIZE=thread >/dev/null
	@cmake --build build-tsan -j $(JOBS)
	cd build-tsan && ctest --output-on-failure -j $(JOBS) --timeout 900 -L runtime

# libFuzzer targets (clang), each run for FUZZ_SECONDS.
FUZZ_SECONDS ?= 30
fuzz: deps
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DSAGE_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	@for f in build-fuzz/fuzz/fuzz_*; do \
	  n=$$(basename $$f); mkdir -p build-fuzz/corpus-$$n; \
	  echo "fuzz: $$n for $(FUZZ_SECONDS)s"; \
	  d=fuzz/$${n#fuzz_}.dict; [ -f $$d ] && dict=-dict=$$d || dict=; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$dict build-fuzz/corpus-$$n fuzz/corpus/$${n#fuzz_} || exit 1; \
	done

PYTHON ?= /usr/bin/python3
bench: deps
	@scripts/deps.sh --bench
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build build-release -j $(JOBS)
	build-release/bench/sage-bench $(BENCH_ARGS)
	$(PYTHON) bench/python_bench.py $(BENCH_ARGS) --build build-release

bench-quick:
	$(MAKE) bench BENCH_ARGS=--quick

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The files clang-format (.clang-format) would change, with how many lines; fails if there is any.
format-check:
	@tests/build/format_check.sh

clean:
	rm -rf build build-asan build-tsan build-fuzz build-release
