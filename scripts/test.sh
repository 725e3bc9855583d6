#!/usr/bin/env bash
# Builds vpcd and runs every test tier: unit tests under ASan+UBSan (clang), then unit, integration (namespaces, root),
# API (real HTTPS) and slow (QEMU guest, browser) tiers on the normal build. Installs what it needs (Debian 12, root).
#   scripts/test.sh            everything
#   scripts/test.sh -L unit    only some ctest labels (passed to ctest)
# Also: a ThreadSanitizer build (build-tsan) of the concurrency unit tests, and every fuzz target briefly
# (scripts/fuzz.sh, VPCD_FUZZ_SECONDS per target, default 20, one target per core; VPCD_FUZZ_SECONDS=0 skips fuzzing).
# Each phase is logged with its start time, and the script ends with a table of phase durations (also on failure):
# wall seconds, and the CPU seconds of the processes the phase ran and waited for (on a machine shared with other
# work, CPU / cores is what a compile phase would take alone; the background package build's CPU counts in the phase
# that waits for it).
#
# Everything, with no arguments: the Debian package for the package test (tests/slow/test_package.py) is built by
# packaging/build-deb.sh in the background from the start (niced, into build-deb/), so its compile overlaps the
# phases that leave a core idle; the slow tier then tests those .debs (VPCD_DEB_DIR). If that build fails, the slow
# tier runs without VPCD_DEB_DIR and the package test builds (and reports) the package itself.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (the integration tests create namespaces and interfaces)" >&2; exit 1; }
jobs=$(nproc)

# ---- phase timing: "== [HH:MM:SS +Ns] name" at each start, the table at exit ----
t0=$SECONDS
tck=$(getconf CLK_TCK)
phase_names=()
phase_secs=()
phase_cpu=()
cur_phase=""
cur_start=0
cur_cpu=0
# CPU seconds (user + system) of this shell's terminated, waited-for children so far (/proc/self/stat cutime, cstime).
children_cpu() {
  local f
  read -r -a f <"/proc/$$/stat"
  echo $(((f[15] + f[16]) / tck))
}
end_phase() {
  if [ -n "$cur_phase" ]; then
    phase_names+=("$cur_phase")
    phase_secs+=($((SECONDS - cur_start)))
    phase_cpu+=($(($(children_cpu) - cur_cpu)))
  fi
  cur_phase=""
}
phase() {
  end_phase
  cur_phase=$1
  cur_start=$SECONDS
  cur_cpu=$(children_cpu)
  echo "== [$(date +%T) +$((SECONDS - t0))s] $1"
}
deb_pid=""
on_exit() {
  local rc=$?
  end_phase
  if [ -n "$deb_pid" ] && kill -0 "$deb_pid" 2>/dev/null; then
    kill -- "-$deb_pid" 2>/dev/null || kill "$deb_pid" 2>/dev/null || true
    wait "$deb_pid" 2>/dev/null || true
  fi
  echo "== phase times: wall s, CPU s"
  local i
  for i in "${!phase_names[@]}"; do
    printf '%6d %6d  %s\n' "${phase_secs[$i]}" "${phase_cpu[$i]}" "${phase_names[$i]}"
  done
  printf '%6d %6d  total (exit %d)\n' $((SECONDS - t0)) "$(children_cpu)" "$rc"
}
trap on_exit EXIT

phase "dependencies (scripts/install-deps.sh test)"
bash scripts/install-deps.sh test

if (($# == 0)); then
  # In its own process group (set -m) so that on_exit can stop the whole dpkg-buildpackage tree if test.sh fails early.
  rm -rf build-deb && mkdir -p build-deb
  set -m
  nice -n 10 bash packaging/build-deb.sh "$PWD/build-deb/debs" >build-deb/build.log 2>&1 &
  deb_pid=$!
  set +m
  echo "test.sh: building the Debian package in the background (pid $deb_pid, log build-deb/build.log)"
fi

phase "sanitizer build (clang, ASan+UBSan; the same tree builds the fuzz targets)"
# One clang tree (build-fuzz, configured as scripts/fuzz.sh does) serves the sanitized unit tests and the fuzzers:
# every object carries ASan+UBSan there, so a second sanitizer build of the whole tree would only cost CI time.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVPCD_FUZZ=ON -DVPCD_BENCH=OFF -DVPCD_WERROR=ON >/dev/null
cmake --build build-fuzz -j "$jobs" --target vpcd_unit_tests
phase "sanitizer unit tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-fuzz -L unit --output-on-failure -j "$jobs"

phase "ThreadSanitizer build (the test files of the suites in scripts/tsan_tests.txt)"
# -g1 as in the release tree: a TSan report's stacks need line tables only.
cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPCD_TSAN=ON -DVPCD_WERROR=ON -DVPCD_BENCH=OFF \
  -DVPCD_SERVER=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
  >/dev/null
cmake --build build-tsan -j "$jobs" --target vpcd_unit_tests
phase "ThreadSanitizer tests: pipeline, publisher, worker and MAC-table concurrency"
tsan_filters=$(grep -v '^#' scripts/tsan_tests.txt | grep -v '^[[:space:]]*$')
# Every line must select tests: a filter that matches nothing (a renamed suite) would pass without testing anything.
for f in $tsan_filters; do
  build-tsan/vpcd_unit_tests --gtest_list_tests --gtest_filter="$f" | grep '^  ' >/dev/null ||
    { echo "test.sh: scripts/tsan_tests.txt: '$f' selects no test in build-tsan/vpcd_unit_tests" >&2; exit 1; }
done
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/vpcd_unit_tests \
  --gtest_filter="$(echo "$tsan_filters" | paste -sd:)"

if [ "${VPCD_FUZZ_SECONDS:-20}" != 0 ]; then
  phase "fuzz targets, ${VPCD_FUZZ_SECONDS:-20}s each, ${VPCD_FUZZ_JOBS:-$jobs} at a time"
  VPCD_FUZZ_JOBS=${VPCD_FUZZ_JOBS:-$jobs} bash scripts/fuzz.sh "${VPCD_FUZZ_SECONDS:-20}"
fi

phase "release build"
# -g1 (line tables, no variable info): what perf and a backtrace need, at a fraction of -g's compile time for the
# Beast/Asio and JSON files.
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPCD_WERROR=ON \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build -j "$jobs"
if (($#)); then
  phase "release tests: ctest $*"
  ctest --test-dir build --output-on-failure -j "$jobs" "$@"
  exit 0
fi

# RUN_SERIAL tests (integration, the pytest suites, the browser) still run alone; -j only runs the unit tests side by
# side. Both passes run even if the first fails; the script fails if either did.
fail=0
phase "release tests: every label but slow"
ctest --test-dir build --output-on-failure -j "$jobs" -LE slow || fail=1
phase "waiting for the Debian package build"
if wait "$deb_pid"; then
  export VPCD_DEB_DIR=$PWD/build-deb/debs
  echo "test.sh: the slow tier tests $(ls build-deb/debs/*.deb | xargs -n1 basename | paste -sd' ')"
else
  echo "test.sh: packaging/build-deb.sh failed in the background; the package test builds the package itself:" >&2
  tail -n 40 build-deb/build.log >&2
fi
deb_pid=""
phase "release tests: slow"
ctest --test-dir build --output-on-failure -j "$jobs" -L slow || fail=1
exit $fail
