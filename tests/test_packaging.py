"""What an installed fastnn ships besides its code: the version in one place, the type stub of
the compiled core kept current, the marker and annotations that let `mypy --strict` check a
user's program (docs/packaging.md).

These tests run against the installed package: in a checkout (pip install ".[test]") and
against the built wheel and sdist in tools/build_wheels.sh, which copies tests/, examples/ and
tools/generate_stubs.py beside each other.
"""
import importlib.metadata
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

import fastnn

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(fastnn.__file__).resolve().parent
GENERATOR = ROOT / "tools" / "generate_stubs.py"
EXAMPLE = ROOT / "examples" / "typed_usage.py"


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_stubs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_version_everywhere():
    """__version__ (the source), the installed metadata and the compiled core agree."""
    assert importlib.metadata.version("fastnn") == fastnn.__version__
    assert fastnn.build_info()["version"] == fastnn.__version__


def test_package_ships_its_typing_files():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


def test_license_is_in_the_metadata():
    meta = importlib.metadata.metadata("fastnn")
    files = [str(f) for f in importlib.metadata.files("fastnn") or []]
    assert meta["License-Expression"] == "MIT"
    assert meta.get_all("License-File") == ["LICENSE"]
    assert any(f.endswith("licenses/LICENSE") for f in files), files


def test_core_stub_is_current(tmp_path):
    """The shipped fastnn/_core.pyi equals what tools/generate_stubs.py makes from the installed
    core; rerun that script after changing the bindings."""
    pytest.importorskip("pybind11_stubgen", reason="pybind11-stubgen is not installed (pip install '.[test]')")
    if not GENERATOR.is_file():
        pytest.skip(f"{GENERATOR} is not here (tests copied without tools/)")
    committed = ROOT / "src" / "fastnn" / "_core.pyi"
    committed = committed if committed.is_file() else PACKAGE / "_core.pyi"
    generated = _load_generator().generate_stub()
    assert generated == committed.read_text(encoding="utf-8"), (
        f"{committed} is stale: run `python tools/generate_stubs.py` and commit the result")


def test_typed_example_passes_mypy_strict_and_runs(tmp_path):
    """examples/typed_usage.py, which uses the public API, is clean under `mypy --strict` with
    the installed package (py.typed + annotations + _core.pyi), and it runs."""
    pytest.importorskip("mypy", reason="mypy is not installed (pip install '.[test]')")
    if not EXAMPLE.is_file():
        pytest.skip(f"{EXAMPLE} is not here (tests copied without examples/)")
    env = dict(os.environ, PYTHONPATH="", MYPYPATH="")
    checked = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"),
                              str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Success: no issues found" in checked.stdout
    ran = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "softmax error" in ran.stdout
