import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import cpp_backend, numpy_backend


def test_both_backends_available():
    assert fastnn.available_backends() == ["numpy", "cpp"]


def test_default_backend_is_cpp_when_built():
    env = {k: v for k, v in os.environ.items() if k != "FASTNN_BACKEND"}
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_backend())"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == "cpp"


def test_environment_variable_wins():
    env = dict(os.environ, FASTNN_BACKEND="numpy")
    out = subprocess.run([sys.executable, "-c", "import fastnn; print(fastnn.get_backend())"],
                         capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert out == "numpy"


def test_bad_environment_variable_is_a_clear_error():
    env = dict(os.environ, FASTNN_BACKEND="cuda")
    proc = subprocess.run([sys.executable, "-c", "import fastnn; fastnn.get_backend()"],
                          capture_output=True, text=True, env=env)
    assert proc.returncode != 0 and "FASTNN_BACKEND='cuda'" in proc.stderr and "numpy" in proc.stderr


def test_set_and_use_backend():
    original = fastnn.get_backend()
    try:
        fastnn.set_backend("numpy")
        assert fastnn.get_backend() == "numpy"
        with fastnn.use_backend("cpp"):
            assert fastnn.get_backend() == "cpp"
        assert fastnn.get_backend() == "numpy"
    finally:
        fastnn.set_backend(original)


def test_unknown_backend_lists_available():
    with pytest.raises(ValueError, match=r"expected one of \['numpy', 'cpp'\], got 'torch'"):
        fastnn.set_backend("torch")
    with pytest.raises(ValueError):
        with fastnn.use_backend("blas"):
            pass


def test_backends_implement_the_same_functions():
    """No silent fallback: each backend defines every function of the reference itself."""
    public = {name for name, obj in vars(numpy_backend).items()
              if callable(obj) and not name.startswith("_") and getattr(obj, "__module__", "") == numpy_backend.__name__}
    for name in public:
        fn = getattr(cpp_backend, name, None)
        assert fn is not None and fn.__module__ == cpp_backend.__name__, name


def test_hw0_star_import_names():
    namespace = {}
    exec("from fastnn import *", namespace)
    for name in ["parse_mnist", "softmax_loss", "softmax_regression_epoch", "nn_epoch", "loss_err",
                 "train_softmax", "train_nn", "add", "softmax_regression_epoch_cpp"]:
        assert callable(namespace[name])


def test_build_info():
    info = fastnn.build_info()
    for key in ["version", "compiler", "cxx_flags", "simd_detected", "simd_active", "openmp", "num_threads"]:
        assert key in info
    assert info["version"] == fastnn.__version__
    assert "-march=native" not in info["cxx_flags"]
    assert info["simd_active"] in ("generic", "avx2", "avx512")
    assert 256 * 1024 <= info["l2_cache_bytes"] <= 8 * 1024 * 1024   # clamped; 1 MiB when unknown


def test_threads_setting():
    n = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert fastnn.get_num_threads() == 1
    finally:
        fastnn.set_num_threads(n)
    with pytest.raises(ValueError, match="n: expected an integer >= 1 or None, got 0"):
        fastnn.set_num_threads(0)
    with pytest.raises(TypeError):
        fastnn.set_num_threads(1.5)
