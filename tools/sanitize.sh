#!/usr/bin/env bash
# Build fastnn._core with AddressSanitizer + UndefinedBehaviorSanitizer (CMake option
# FASTNN_SANITIZE) into a scratch directory, overlay it on a copy of the Python package, and run
# the tests that reach the C++ core against it. Fails on any failing test and on any sanitizer
# report (reports are written to files, so none can hide in a child process's stderr).
#
#   tools/sanitize.sh [pytest args...]        (default: the C++-touching test files)
#   FASTNN_SANITIZE_DIR=/tmp/asan tools/sanitize.sh   reuse a build directory
#
# Never touches src/fastnn/_core*.so. Needs gcc/clang with libasan, cmake, pybind11.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK="${FASTNN_SANITIZE_DIR:-$(mktemp -d /tmp/fastnn-sanitize.XXXXXX)}"
BUILD="$WORK/build" PKG="$WORK/pkg" REPORTS="$WORK/reports"
mkdir -p "$BUILD" "$PKG/fastnn"
rm -rf "$REPORTS" && mkdir -p "$REPORTS"

python3 -c "import pybind11" 2>/dev/null || python3 -m pip install -q pybind11
echo "== sanitize: build in $BUILD"
cmake -S "$ROOT" -B "$BUILD" -DFASTNN_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -Dpybind11_DIR="$(python3 -m pybind11 --cmakedir)" > "$WORK/configure.log"
cmake --build "$BUILD" -j "$(nproc)" > "$WORK/build.log" || { tail -50 "$WORK/build.log"; exit 1; }
cp "$ROOT"/src/fastnn/*.py "$PKG/fastnn/"
cp -r "$ROOT"/src/fastnn/benchmark "$PKG/fastnn/"
cp "$BUILD"/_core*.so "$PKG/fastnn/"

CXX=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$BUILD/CMakeCache.txt")
ASAN_RT=$("${CXX:-gcc}" -print-file-name=libasan.so)
STDCXX=$("${CXX:-gcc}" -print-file-name=libstdc++.so)
[ -f "$ASAN_RT" ] || { echo "sanitize: no ASan runtime ($ASAN_RT)"; exit 1; }
# CPython's and NumPy's own allocations are not ours: no leak checking here (valgrind_check.py
# looks for leaks from fastnn frames instead).
# libstdc++ is preloaded too: python does not link it, and ASan must find the real __cxa_throw
# when it starts, or the first C++ exception aborts with "CHECK failed: real___cxa_throw".
export LD_PRELOAD="$ASAN_RT $STDCXX"
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:log_path=$REPORTS/asan"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$REPORTS/ubsan"
export PYTHONPATH="$PKG${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python3 -c "import fastnn._core as c, sys; assert c.__file__.startswith('$PKG'), c.__file__"

if [ $# -eq 0 ]; then
  set -- tests/test_bad_inputs.py tests/test_properties.py tests/test_threads_determinism.py \
         tests/test_in_place_and_errors.py tests/test_agreement.py tests/test_epochs.py \
         tests/test_losses.py tests/test_gradcheck.py tests/test_interrupt.py tests/test_sparse_input.py \
         tests/test_skip_zeros.py tests/test_pixels.py tests/test_isa_agreement.py
fi
echo "== sanitize: pytest $*"
status=0
python3 -m pytest -q -p no:cacheprovider "$@" || status=$?
if compgen -G "$REPORTS/*" > /dev/null; then
  echo "== sanitize: sanitizer reports:"
  for f in "$REPORTS"/*; do echo "--- $f"; head -60 "$f"; done
  exit 1
fi
[ "$status" -eq 0 ] || { echo "== sanitize: tests failed ($status)"; exit "$status"; }
echo "== sanitize: clean (no ASan/UBSan reports)"
