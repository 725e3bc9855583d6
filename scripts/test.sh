#!/usr/bin/env bash
# Builds vpcd and runs every test tier: unit tests under ASan+UBSan (clang), then unit, integration (namespaces, root),
# API (real HTTPS) and slow (QEMU guest, browser) tiers on the normal build. Installs what it needs (Debian 12, root).
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    only some ctest labels (passed to ctest)
# Also: a ThreadSanitizer build (build-tsan) of the concurrency unit tests, and every fuzz target briefly
# (scripts/fuzz.sh, VPCD_FUZZ_SECONDS per target, default 20; VPCD_FUZZ_SECONDS=0 skips fuzzing).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the integration tests create namespaces and interfaces)" >&2; exit 1; }
bash scripts/install-deps.sh test
jobs=$(nproc)

echo "== sanitizer build (clang, ASan+UBSan; the same tree builds the fuzz targets): unit tests"
# One clang tree (build-fuzz, configured as scripts/fuzz.sh does) serves the sanitized unit tests and the fuzzers:
# every object carries ASan+UBSan there, so a second sanitizer build of the whole tree would only cost CI time.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVPCD_FUZZ=ON -DVPCD_BENCH=OFF -DVPCD_WERROR=ON >/dev/null
cmake --build build-fuzz -j "$jobs" --target vpcd_unit_tests
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-fuzz -L unit --output-on-failure -j "$jobs"

echo "== ThreadSanitizer build: pipeline, publisher, worker and MAC-table concurrency tests"
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPCD_TSAN=ON -DVPCD_WERROR=ON -DVPCD_BENCH=OFF \
  -DVPCD_SERVER=OFF >/dev/null
cmake --build build-tsan -j "$jobs" --target vpcd_unit_tests
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/vpcd_unit_tests \
  --gtest_filter="$(cat scripts/tsan_tests.txt | grep -v '^#' | paste -sd:)"

if [ "${VPCD_FUZZ_SECONDS:-20}" != 0 ]; then
  echo "== fuzz targets, ${VPCD_FUZZ_SECONDS:-20}s each"
  bash scripts/fuzz.sh "${VPCD_FUZZ_SECONDS:-20}"
fi

echo "== release build: all tiers"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPCD_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
ctest --test-dir build --output-on-failure "$@"
