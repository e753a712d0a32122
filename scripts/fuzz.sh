#!/usr/bin/env bash
# Runs the fuzz targets of tests/fuzz with libFuzzer, each for a time, on its seed corpus.
#
#   scripts/fuzz.sh [--build DIR] [--seconds N] [--jobs J] [--seed S] [--work DIR] [TARGET...]
#
# DIR is a build configured with DTRAIN_FUZZ=ON (scripts/sanitize.sh asan makes one:
# build-asan). Each target runs N seconds (default 20) with -jobs J workers (default 1),
# growing a working corpus under --work (default DIR/fuzz-work/<target>, seeded from
# tests/fuzz/corpus/<target>). A crash, a sanitizer report, a leak, a timeout (10 s per
# input) or an input over 2 GiB of memory stops that target: the input is saved as
# DIR/fuzz-work/findings/<target>/crash-* etc., and the script exits 1 after the others
# ran. A summary line per target gives the executions and the coverage reached. --seed S
# fixes libFuzzer's random seed (CI uses one, so that a run's inputs can be replayed; the
# default, 0, lets libFuzzer pick one).
# Once a finding is fixed, its input goes into tests/fuzz/regressions/<target>/.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build-asan"
seconds=20
jobs=1
seed=0
work=""
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) build="$2"; shift 2 ;;
    --seconds) seconds="$2"; shift 2 ;;
    --jobs) jobs="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "fuzz.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
[ -d "$build" ] || { echo "fuzz.sh: no build folder $build; make one with scripts/sanitize.sh asan --build-only" >&2; exit 2; }
build="$(cd "$build" && pwd)"  # the targets run in a scratch folder: absolute paths
[ -n "$work" ] || work="$build/fuzz-work"
mkdir -p "$work"
work="$(cd "$work" && pwd)"
if [ ${#targets[@]} -eq 0 ]; then
  targets=(image control config dataset checkpoint convert)
fi
if ! grep -q '^DTRAIN_FUZZ:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
  echo "fuzz.sh: $build is not a fuzzing build (DTRAIN_FUZZ=ON); make one with scripts/sanitize.sh asan" >&2
  exit 2
fi
# allocator_may_return_null: a C library's malloc of an impossible size (HDF5 reading a
# damaged size) returns NULL, as glibc's does, and the library reports the failure, instead
# of ASan ending the process; C++ allocations still report.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Third-party leaks only (tests/sanitizers/lsan.supp says why for each).
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/sanitizers/lsan.supp}"
status=0
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/fuzz_$t"
  seeds="$root/tests/fuzz/corpus/$t"
  [ -x "$bin" ] || { echo "fuzz.sh: no target $bin (targets: image control config dataset checkpoint convert)" >&2; exit 2; }
  corpus="$work/$t"
  findings="$work/findings/$t"
  mkdir -p "$corpus" "$findings"
  log="$work/$t.log"
  # Scratch files of the targets go to a private directory, removed afterwards.
  scratch="$(mktemp -d)"
  set +e
  parallel=()
  [ "$jobs" -gt 1 ] && parallel=(-jobs="$jobs" -workers="$jobs")
  # With -jobs, each worker logs to fuzz-<n>.log in the current directory: the scratch one.
  (cd "$scratch" && TMPDIR="$scratch" "$bin" "$corpus" "$seeds" -max_total_time="$seconds" -timeout=10 -seed="$seed" \
    -rss_limit_mb=2048 "${parallel[@]}" -artifact_prefix="$findings/" -print_final_stats=1 > "$log" 2>&1)
  rc=$?
  set -e
  cat "$scratch"/fuzz-*.log >> "$log" 2>/dev/null || true
  rm -rf "$scratch"
  execs=$(grep -h 'stat::number_of_executed_units' "$log" | awk '{s += $2} END {print s + 0}')
  cov=$(grep -ho 'cov: [0-9]*' "$log" | awk '{print $2}' | sort -n | tail -1)
  ft=$(grep -ho 'ft: [0-9]*' "$log" | awk '{print $2}' | sort -n | tail -1)
  found=$(find "$findings" -type f | wc -l)
  printf 'fuzz %-10s %6ss  %10s executions  coverage %s edges, %s features  corpus %s  findings %s%s\n' \
    "$t" "$seconds" "$execs" "${cov:-?}" "${ft:-?}" "$(find "$corpus" -type f | wc -l)" "$found" \
    "$([ $rc -ne 0 ] && echo "  (exit $rc; see $log)")"
  if [ $rc -ne 0 ] || [ "$found" -gt 0 ]; then
    status=1
    grep -h -m 5 -E 'ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|runtime error|SUMMARY' "$log" | sed 's/^/    /' || true
  fi
done
exit $status
