#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_<name>.cc) with clang++ in build-fuzz and runs each on a temporary copy of its
# seed corpus (fuzz/corpus/<name>/), so the repository is never written. A crash, leak, sanitizer report or timeout
# fails the script and leaves the reproducer in build-fuzz/findings/<name>/.
#   scripts/fuzz.sh                 every target, 20 s each (CI: scripts/test.sh runs this)
#   scripts/fuzz.sh 600             every target, 600 s each (or VPCD_FUZZ_SECONDS=600)
#   scripts/fuzz.sh 60 parse        only the named targets
# Environment: VPCD_FUZZ_JOBS (targets run at the same time, default 1; scripts/test.sh runs one per core),
# VPCD_FUZZ_KEEP_CORPUS=1 keeps the grown corpora in build-fuzz/corpus/<name>/ (to merge interesting inputs back into
# fuzz/corpus with -merge=1 by hand).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-${VPCD_FUZZ_SECONDS:-20}}
shift || true
command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ missing (scripts/install-deps.sh test installs clang)" >&2; exit 1; }

cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVPCD_FUZZ=ON -DVPCD_BENCH=OFF >/dev/null
targets=()
if (($#)); then
  for t in "$@"; do targets+=("fuzz_$t"); done
else
  for f in fuzz/fuzz_*.cc; do targets+=("$(basename "$f" .cc)"); done
fi
nice -n 10 cmake --build build-fuzz -j "$(nproc)" --target "${targets[@]}"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
jobs=${VPCD_FUZZ_JOBS:-1}

# One target: its own copy of the corpus, its log and its verdict in $work (run in the background, VPCD_FUZZ_JOBS at a
# time; each libFuzzer process is single-threaded, so N jobs give each target a core of its own on N cores).
fuzz_one() {
  local t=$1 name=${1#fuzz_} corpus=$work/${1#fuzz_}
  mkdir -p "$corpus" "build-fuzz/findings/$name"
  [ -d "fuzz/corpus/$name" ] && cp -r "fuzz/corpus/$name/." "$corpus/"
  local dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  echo "== fuzz $name: ${secs}s on $(ls "$corpus" | wc -l) seeds"
  if ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
      "build-fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="build-fuzz/findings/$name/" "${dict[@]}" "$corpus" >"$work/$name.log" 2>&1; then
    echo 0 >"$work/$name.rc"
  else
    echo 1 >"$work/$name.rc"
  fi
}

running=0
for t in "${targets[@]}"; do
  if ((running >= jobs)); then
    wait -n || true
    running=$((running - 1))
  fi
  fuzz_one "$t" &
  running=$((running + 1))
done
wait || true

# Verdicts in target order, after all have run.
fail=0
for t in "${targets[@]}"; do
  name=${t#fuzz_}
  if [ "$(cat "$work/$name.rc" 2>/dev/null)" != 0 ]; then
    echo "fuzz $name: FINDING (reproducer in build-fuzz/findings/$name/)" >&2
    tail -n 60 "$work/$name.log" >&2
    fail=1
  fi
  echo "fuzz $name:"
  grep -E '^#[0-9]+ +DONE|stat::number_of_executed_units|cov:' "$work/$name.log" | tail -n 2 || true
  if [ "${VPCD_FUZZ_KEEP_CORPUS:-0}" = 1 ]; then
    rm -rf "build-fuzz/corpus/$name" && mkdir -p build-fuzz/corpus && cp -r "$work/$name" "build-fuzz/corpus/$name"
  fi
done
exit $fail
