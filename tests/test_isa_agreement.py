"""Every ISA's kernels (generic fallback included) give the NumPy reference's numbers."""
import numpy as np
import pytest

import fastnn
from conftest import random_problem, random_weights, softmax_epoch_on_both_backends


@pytest.mark.parametrize("sizes,n,batch", [([784, 10], 250, 100), ([37, 3], 29, 4), ([19, 12], 9, 2),
                                           ([784, 40, 10], 130, 50), ([33, 17, 5, 2], 41, 8)],
                         ids=["softmax-mnist-shape", "softmax-odd", "softmax-12-classes", "two-layer", "three-layer"])
def test_epoch_agrees_with_numpy_on_every_isa(isa, dtype, sizes, n, batch):
    rng = np.random.default_rng(len(sizes) * n)
    X, y = random_problem(rng, n, sizes[0], sizes[-1], dtype)
    weights = random_weights(rng, sizes, dtype)
    expected = [w.copy() for w in weights]
    with fastnn.use_backend("numpy"):
        fastnn.mlp_epoch(X, y, expected, lr=0.2, batch=batch)
    with fastnn.use_backend("cpp"):
        fastnn.mlp_epoch(X, y, weights, lr=0.2, batch=batch)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for W, E in zip(weights, expected):
        np.testing.assert_allclose(W, E, **tol)


@pytest.mark.parametrize("classes", [1, 3, 5, 7, 10, 12, 16])
@pytest.mark.parametrize("forward_blocks", [-1, 1], ids=["isa-blocks", "wide-blocks"])
def test_softmax_with_whole_vectors_of_features_agrees_with_numpy(isa, dtype, classes, forward_blocks):
    """64 features, a whole number of vectors on every ISA: each register block's logits go from
    its lane-sum tree straight into Z's rows (with AVX-512, one permute and one masked store per
    row), for every row group (5, 2 and 1 rows; batches of 23 and then 17) and block of classes."""
    from fastnn import _core
    rng = np.random.default_rng(classes)
    X, y = random_problem(rng, 40, 64, classes, dtype)
    y[:classes] = np.arange(classes)   # every class seen
    theta0 = random_weights(rng, [64, classes], dtype)[0]
    expected = theta0.copy()
    with fastnn.use_backend("numpy"):
        fastnn.softmax_regression_epoch(X, y, expected, lr=0.5, batch=23)
    previous = _core._softmax_tuning(forward_blocks)
    try:
        theta = theta0.copy()
        with fastnn.use_backend("cpp"):
            fastnn.softmax_regression_epoch(X, y, theta, lr=0.5, batch=23)
    finally:
        _core._softmax_tuning(previous)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(theta, expected, **tol)
    assert classes == 1 or not np.allclose(theta, theta0)   # (one class: every gradient is 0)


def test_row_strided_data_view(isa):
    """A view with a row stride larger than its width (no copy is made) gives the same epoch."""
    rng = np.random.default_rng(3)
    big = rng.standard_normal((60, 50)).astype(np.float32)
    X = big[:, 3:40]                 # rows of 37 contiguous values, row stride 50
    y = rng.integers(0, 4, 60)
    theta = np.zeros((37, 4), np.float32)
    ref = theta.copy()
    with fastnn.use_backend("numpy"):
        fastnn.softmax_regression_epoch(np.ascontiguousarray(X), y, ref, lr=0.5, batch=16)
    with fastnn.use_backend("cpp"):
        fastnn.softmax_regression_epoch(X, y, theta, lr=0.5, batch=16)
    np.testing.assert_allclose(theta, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scale", [50.0, 1000.0])
def test_softmax_epoch_with_far_apart_logits(isa, dtype, scale):
    """Logits hundreds apart (exp underflows, and the fused epoch's vector exp clamps) or in the
    thousands (exp would overflow without the max subtracted) give the NumPy reference's epoch."""
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((60, 37)) * scale).astype(dtype)
    y = rng.integers(0, 12, 60)
    ref, theta = softmax_epoch_on_both_backends(X, y, rng.standard_normal((37, 12)).astype(dtype), lr=0.5, batch=16)
    assert np.isfinite(theta).all()
    tol = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(theta, ref, **tol)


def test_softmax_epoch_nan_spreads_as_in_numpy(isa, dtype):
    """A NaN feature turns its batch's logits, and so the weights, into NaN, as in NumPy."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((40, 19)).astype(dtype)
    X[25, 4] = np.nan   # second batch
    y = rng.integers(0, 5, 40)
    ref, theta = softmax_epoch_on_both_backends(X, y, np.zeros((19, 5), dtype), lr=0.5, batch=20)
    assert np.isnan(ref).all()
    assert np.isnan(theta).all()
