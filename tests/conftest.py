"""Shared fixtures: the backends, the dtypes and the MNIST files.

MNIST is found through the FASTNN_DATA environment variable: a directory holding the four
original IDX files (train-images-idx3-ubyte.gz, ...). Tests that need it skip when it is unset.
"""
import os
from pathlib import Path

import numpy as np
import pytest

import fastnn

BACKENDS = ["numpy", "cpp"]
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Runs the test once per backend (the cpp backend must be importable: no silent skip)."""
    with fastnn.use_backend(request.param):
        yield request.param


ISA_ORDER = ("generic", "avx2", "avx512")


def available_isas():
    """The ISAs whose kernels this CPU can run (FASTNN_ISA / _core.set_isa may force each)."""
    from fastnn import _core
    return [isa for isa in ISA_ORDER if ISA_ORDER.index(isa) <= ISA_ORDER.index(_core.detected_isa())]


@pytest.fixture(params=available_isas())
def isa(request):
    """Runs the test once per available ISA, with the C++ kernels forced to it."""
    from fastnn import _core
    saved = _core.active_isa()
    _core.set_isa(request.param)
    try:
        yield request.param
    finally:
        _core.set_isa(saved)


def saved_num_threads():
    """What a test that sets its own thread count restores afterwards: the count set before it,
    or None where none was set, so that fastnn.set_num_threads(saved) follows the host again
    (restoring get_num_threads()'s value would pin the rest of the session to it)."""
    from fastnn import _core
    return fastnn.get_num_threads() if _core.num_threads_is_set() else None


@pytest.fixture
def cpp():
    """The test runs on the cpp backend."""
    with fastnn.use_backend("cpp"):
        yield


@pytest.fixture
def threads():
    """fastnn.set_num_threads, for a test that sets its own count; the count before it is restored after."""
    saved = saved_num_threads()
    yield fastnn.set_num_threads
    fastnn.set_num_threads(saved)


@pytest.fixture
def softmax_teams():
    """The softmax epoch shares every batch among the threads, however small (by default batches of
    fewer than 1.4 million multiply-adds run on one thread: a speed choice, never a result's)."""
    from fastnn import _core
    previous = _core._softmax_split_tuning(0)
    yield
    _core._softmax_split_tuning(previous)


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


def softmax_epoch_on_both_backends(X, y, theta, lr, batch):
    """(NumPy's theta, cpp's theta) after one softmax-regression epoch from copies of `theta`."""
    results = []
    for backend in ("numpy", "cpp"):
        t = theta.copy()
        with fastnn.use_backend(backend):
            fastnn.softmax_regression_epoch(X, y, t, lr=lr, batch=batch)
        results.append(t)
    return tuple(results)


def mnist_dir():
    root = os.environ.get("FASTNN_DATA")
    if not root:
        pytest.skip("MNIST not available: set FASTNN_DATA to a directory with the four MNIST .gz files")
    path = Path(root)
    if (path / "mnist").is_dir():
        path = path / "mnist"
    missing = [f for f in MNIST_FILES.values() if not (path / f).exists()]
    if missing:
        pytest.skip(f"MNIST not available: {path} lacks {', '.join(missing)}")
    return path


@pytest.fixture(scope="session")
def mnist_paths():
    path = mnist_dir()
    return {key: path / name for key, name in MNIST_FILES.items()}


@pytest.fixture(scope="session")
def mnist_train(mnist_paths):
    return fastnn.parse_mnist(mnist_paths["train_images"], mnist_paths["train_labels"])


@pytest.fixture(scope="session")
def mnist_test(mnist_paths):
    return fastnn.parse_mnist(mnist_paths["test_images"], mnist_paths["test_labels"])


def random_problem(rng, n, d, k, dtype=np.float64):
    X = rng.standard_normal((n, d)).astype(dtype)
    y = rng.integers(0, k, size=n).astype(np.uint8)
    return X, y


def random_weights(rng, sizes, dtype=np.float64, scale=0.5):
    return [(scale * rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(sizes, sizes[1:])]
