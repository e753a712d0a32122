#!/usr/bin/env bash
# Sanitized builds and their test runs (docs/ROBUSTNESS.md).
#
#   scripts/sanitize.sh asan [--build-only] [CTEST ARGS...]
#       Clang build in build-asan (or $DTRAIN_ASAN_DIR): AddressSanitizer and
#       UndefinedBehaviorSanitizer on every target, libFuzzer's coverage instrumentation
#       on all but the kernels (DTRAIN_SANITIZE=address,undefined, DTRAIN_FUZZ=ON), CPU
#       only, the emulated device included; the library at -O1, the tests at -O0
#       (DTRAIN_TEST_OPT). Runs the whole CTest suite on it (MPI, Slurm and multi-node
#       tests included); its fuzz targets then serve scripts/fuzz.sh.
#   scripts/sanitize.sh tsan [--build-only] [GTEST ARGS...]
#       Clang build in build-tsan (or $DTRAIN_TSAN_DIR) with ThreadSanitizer; builds and runs
#       the suites of the threaded parts (dtrain_tsan_tests): the threads process group,
#       the reducer, the loader, the control plane and the status server. GTEST ARGS
#       (e.g. --gtest_filter=Loader*) go to that executable.
#
# Both need clang-16 (and libomp-16-dev, libfuzzer-16-dev: scripts/install-deps.sh
# --sanitizers installs them). Reports stop the test that hit them (halt on error), with
# the stack. Suppressions (tests/sanitizers/*.supp) cover third-party code only, each with
# the reason.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
kind="${1:-}"
shift || true
build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi
cc="${SANITIZE_CC:-clang-16}"
cxx="${SANITIZE_CXX:-clang++-16}"
command -v "$cxx" > /dev/null || {
  echo "sanitize.sh: $cxx not found; install it with: bash scripts/install-deps.sh --sanitizers" >&2
  exit 2
}
supp="$root/tests/sanitizers"
common=(-G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
        "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1" "-DCMAKE_C_FLAGS_RELWITHDEBINFO=-O1 -g1"
        -DDTRAIN_TEST_OPT=-O0 -DDTRAIN_ENABLE_CUDA=OFF -DDTRAIN_BUILD_BENCHMARKS=OFF)
command -v ccache > /dev/null && common+=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
jobs="${JOBS:-$(nproc)}"
case "$kind" in
  asan)
    build="${DTRAIN_ASAN_DIR:-$root/build-asan}"
    CC="$cc" CXX="$cxx" cmake -S "$root" -B "$build" "${common[@]}" -DDTRAIN_SANITIZE=address,undefined -DDTRAIN_FUZZ=ON
    cmake --build "$build" -j "$jobs"
    [ $build_only = 1 ] && exit 0
    # allocator_may_return_null: a C library's malloc of an impossible size (HDF5 reading a
    # damaged file) returns NULL as glibc's does, and the library reports it; C++ `new`
    # still reports. Every process keeps its dlopen()ed plugins loaded (tests/sanitizers/keep_loaded.c), so
    # that leak reports name their modules; it is not instrumented, hence the link-order
    # check is off.
    export LD_PRELOAD="$build/tests/sanitizers/libdtrain_keep_loaded.so${LD_PRELOAD:+:$LD_PRELOAD}"
    export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0:check_initialization_order=1:verify_asan_link_order=0:allocator_may_return_null=1"
    export LSAN_OPTIONS="suppressions=$supp/lsan.supp:print_suppressions=0"
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$supp/ubsan.supp"
    # ASan's shadow memory makes fork/exec'd children (mpirun, dtrain) slower: give the
    # tests room, and run the end-to-end ones one at a time.
    cd "$build"
    ctest --output-on-failure -j "$jobs" --timeout 900 "$@"
    ;;
  tsan)
    build="${DTRAIN_TSAN_DIR:-$root/build-tsan}"
    CC="$cc" CXX="$cxx" cmake -S "$root" -B "$build" "${common[@]}" -DDTRAIN_SANITIZE=thread
    cmake --build "$build" -j "$jobs" --target dtrain_tsan_tests
    [ $build_only = 1 ] && exit 0
    # OpenMP's runtime is not built for ThreadSanitizer: its own synchronisation is
    # invisible to it, so the kernels run on one thread here (the threaded parts under
    # test are dtrain's own std::thread code), and what uninstrumented libraries do is
    # left out (ignore_noninstrumented_modules, which TSan advises for OpenMP; it also
    # keeps TSan's warning about it out of the output the CLI tests compare).
    export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:ignore_noninstrumented_modules=1:suppressions=$supp/tsan.supp"
    export OMP_NUM_THREADS=1
    "$build/tests/dtrain_tsan_tests" "$@"
    ;;
  *)
    sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
