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
# Order, with no arguments: the sanitizer tree (unit tests and fuzz targets) and the release tree are compiled with
# both cores; then the release tests run in the foreground while, niced in the background, the Debian package is made
# from the release tree's binaries (packaging/build-deb.sh with VPCD_PREBUILT: no third compile; the slow tier's
# package test installs those .debs, VPCD_DEB_DIR) and a second lane builds the ThreadSanitizer tree, runs its tests
# and then the fuzz targets (the integration and pytest tiers leave most of a core idle: they wait on namespaces, vpcd
# and guests). The lane's log is build-lane/log, printed on failure; its step times follow the phase table.
# The release tree is compiled with the package's flags (dpkg-buildflags, hardening=+all; -g1), so the tests run the
# binaries the package ships.
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
lane_pid=""
on_exit() {
  local rc=$?
  end_phase
  local p
  for p in "$deb_pid" "$lane_pid"; do
    if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
      kill -- "-$p" 2>/dev/null || kill "$p" 2>/dev/null || true
      wait "$p" 2>/dev/null || true
    fi
  done
  echo "== phase times: wall s, CPU s"
  local i
  for i in "${!phase_names[@]}"; do
    printf '%6d %6d  %s\n' "${phase_secs[$i]}" "${phase_cpu[$i]}" "${phase_names[$i]}"
  done
  printf '%6d %6d  total (exit %d)\n' $((SECONDS - t0)) "$(children_cpu)" "$rc"
  if [ -s build-lane/times ]; then
    echo "== background lane (during the release tests), wall s:"
    while read -r secs name; do printf '%6d         %s\n' "$secs" "$name"; done <build-lane/times
  fi
}
trap on_exit EXIT

phase "dependencies (scripts/install-deps.sh test)"
bash scripts/install-deps.sh test

phase "sanitizer build (clang, ASan+UBSan: the unit tests and the fuzz targets)"
# One clang tree (build-fuzz, configured as scripts/fuzz.sh does) serves the sanitized unit tests and the fuzzers:
# every object carries ASan+UBSan there, so a second sanitizer build of the whole tree would only cost CI time.
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVPCD_FUZZ=ON -DVPCD_BENCH=OFF -DVPCD_WERROR=ON >/dev/null
san_targets=(vpcd_unit_tests)
if [ "${VPCD_FUZZ_SECONDS:-20}" != 0 ]; then
  for f in fuzz/fuzz_*.cc; do san_targets+=("$(basename "$f" .cc)"); done
fi
cmake --build build-fuzz -j "$jobs" --target "${san_targets[@]}"
phase "sanitizer unit tests (ASan+UBSan)"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-fuzz -L unit --output-on-failure -j "$jobs"

phase "release build (the package's flags: dpkg-buildflags with hardening=+all, -g1)"
# -g1 (line tables, no variable info): what perf and a backtrace need, at a fraction of -g's compile time for the
# Beast/Asio and JSON files. The hardening flags are the Debian package's (packaging/debian/rules), so the package
# can be made from this tree (VPCD_PREBUILT) and the tests below run what it ships.
hard() { DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get "$1"; }
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPCD_WERROR=ON \
  -DCMAKE_CXX_FLAGS="$(hard CXXFLAGS) $(hard CPPFLAGS)" -DCMAKE_C_FLAGS="$(hard CFLAGS) $(hard CPPFLAGS)" \
  -DCMAKE_EXE_LINKER_FLAGS="$(hard LDFLAGS)" -DCMAKE_SHARED_LINKER_FLAGS="$(hard LDFLAGS)" \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
cmake --build build -j "$jobs"

# ---- the ThreadSanitizer tree and the fuzz runs: a lane of their own (background), or phases (with arguments) ----
in_lane=0
lane_name=""
lane_start=0
step_end() {  # the lane's current step, into build-lane/times
  if [ -n "$lane_name" ]; then echo "$((SECONDS - lane_start)) $lane_name" >>build-lane/times; fi
  lane_name=""
}
step() {
  if ((in_lane)); then
    step_end
    lane_name=$1
    lane_start=$SECONDS
    echo "== [$(date +%T) +$((SECONDS - t0))s] lane: $1"
  else
    phase "$1"
  fi
}
tsan_and_fuzz() {
  step "ThreadSanitizer build (the test files of the suites in scripts/tsan_tests.txt)"
  # -g1 as in the release tree: a TSan report's stacks need line tables only.
  cmake -S . -B build-tsan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DVPCD_TSAN=ON -DVPCD_WERROR=ON \
    -DVPCD_BENCH=OFF -DVPCD_SERVER=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" >/dev/null
  cmake --build build-tsan -j "$jobs" --target vpcd_unit_tests
  step "ThreadSanitizer tests: pipeline, publisher, worker and MAC-table concurrency"
  local tsan_filters f
  tsan_filters=$(grep -v '^#' scripts/tsan_tests.txt | grep -v '^[[:space:]]*$')
  # Every line must select tests: a filter that matches nothing (a renamed suite) would pass without testing anything.
  for f in $tsan_filters; do
    build-tsan/vpcd_unit_tests --gtest_list_tests --gtest_filter="$f" | grep '^  ' >/dev/null ||
      { echo "test.sh: scripts/tsan_tests.txt: '$f' selects no test in build-tsan/vpcd_unit_tests" >&2; return 1; }
  done
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 build-tsan/vpcd_unit_tests \
    --gtest_filter="$(echo "$tsan_filters" | paste -sd:)"
  if [ "${VPCD_FUZZ_SECONDS:-20}" != 0 ]; then
    step "fuzz targets, ${VPCD_FUZZ_SECONDS:-20}s each, ${VPCD_FUZZ_JOBS:-$jobs} at a time"
    VPCD_FUZZ_JOBS=${VPCD_FUZZ_JOBS:-$jobs} bash scripts/fuzz.sh "${VPCD_FUZZ_SECONDS:-20}"
  fi
  if ((in_lane)); then step_end; fi
}

if (($#)); then
  tsan_and_fuzz
  phase "release tests: ctest $*"
  ctest --test-dir build --output-on-failure -j "$jobs" "$@"
  exit 0
fi

# Both background jobs in process groups of their own (set -m), so that on_exit can stop them if test.sh fails early.
rm -rf build-deb build-lane && mkdir -p build-deb build-lane
set -m
nice -n 10 env VPCD_PREBUILT="$PWD/build" bash packaging/build-deb.sh "$PWD/build-deb/debs" >build-deb/build.log 2>&1 &
deb_pid=$!
(
  renice -n 10 "$BASHPID" >/dev/null
  in_lane=1
  tsan_and_fuzz
) >build-lane/log 2>&1 &
lane_pid=$!
set +m
echo "test.sh: in the background: the Debian package from build/ (pid $deb_pid, log build-deb/build.log), the" \
  "ThreadSanitizer tree and the fuzz targets (pid $lane_pid, log build-lane/log)"

# RUN_SERIAL tests (integration, the pytest suites, the browser) still run alone; -j only runs the unit tests side by
# side. Every pass runs even if one before failed; the script fails if any did.
fail=0
phase "release tests: every label but slow"
ctest --test-dir build --output-on-failure -j "$jobs" -LE slow || fail=1
phase "waiting for the Debian package (made from build/)"
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
phase "waiting for the ThreadSanitizer and fuzz lane"
if wait "$lane_pid"; then
  tail -n 30 build-lane/log
else
  echo "test.sh: the ThreadSanitizer / fuzz lane failed; its log (build-lane/log):" >&2
  tail -n 150 build-lane/log >&2
  fail=1
fi
lane_pid=""
exit $fail
