"""The cpp backend against the NumPy reference on random problems of many shapes."""
import numpy as np
import pytest

import fastnn
from conftest import random_problem, random_weights

SHAPES = [  # (n, batch, layer sizes)
    (50, 7, [13, 2]),             # n not divisible by batch, k = 2
    (33, 1, [9, 5]),              # batch 1
    (40, 100, [17, 1, 3]),        # batch > n, hidden 1
    (64, 16, [20, 33, 17, 10]),   # 3 layers
    (257, 32, [129, 100, 10]),    # sizes that are not multiples of any block
    (300, 100, [784, 40, 10]),    # MNIST-like
]
TOL = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}


def _run(backend, X, y, weights, lr, batch):
    weights = [w.copy() for w in weights]
    with fastnn.use_backend(backend):
        fastnn.mlp_epoch(X, y, weights, lr=lr, batch=batch)
        loss, err = fastnn.evaluate(X, y, weights)
        logits = fastnn.mlp_logits(X, weights)
        grad_loss, grads = fastnn.mlp_loss_grad(X[:batch], y[:batch], weights)
    return weights, loss, err, logits, grad_loss, grads


@pytest.mark.parametrize("n,batch,sizes", SHAPES, ids=[f"n{s[0]}-b{s[1]}-{'x'.join(map(str, s[2]))}" for s in SHAPES])
def test_cpp_agrees_with_numpy(dtype, n, batch, sizes):
    rng = np.random.default_rng(n)
    X, y = random_problem(rng, n, sizes[0], sizes[-1], dtype)
    weights = random_weights(rng, sizes, dtype)
    ref = _run("numpy", X, y, weights, 0.1, batch)
    got = _run("cpp", X, y, weights, 0.1, batch)
    tol = TOL[np.dtype(dtype)]
    for W_ref, W in zip(ref[0], got[0]):
        np.testing.assert_allclose(W, W_ref, **tol)
    np.testing.assert_allclose(got[1], ref[1], **tol)
    assert abs(got[2] - ref[2]) <= 1.5 / n          # at most one near-tie may flip in float32
    np.testing.assert_allclose(got[3], ref[3], **tol)
    np.testing.assert_allclose(got[4], ref[4], **tol)
    for G_ref, G in zip(ref[5], got[5]):
        np.testing.assert_allclose(G, G_ref, **tol)


def test_cpp_agrees_after_full_mnist_epoch(mnist_train):
    X, y = mnist_train
    rng = np.random.default_rng(0)
    W = random_weights(rng, [784, 64, 10], np.float32, scale=1.0)
    ref = _run("numpy", X, y, W, 0.1, 100)
    got = _run("cpp", X, y, W, 0.1, 100)
    for W_ref, W_got in zip(ref[0], got[0]):
        np.testing.assert_allclose(W_got, W_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-4)


def test_building_blocks_agree(dtype):
    rng = np.random.default_rng(5)
    Z = rng.standard_normal((37, 11)).astype(dtype) * 10
    y = rng.integers(0, 11, 37)
    A = rng.standard_normal((19, 23)).astype(dtype)
    B = rng.standard_normal((23, 29)).astype(dtype)
    tol = TOL[np.dtype(dtype)]
    results = {}
    for name in ["numpy", "cpp"]:
        with fastnn.use_backend(name):
            results[name] = (fastnn.softmax_loss(Z, y), *fastnn.softmax_cross_entropy(Z, y), fastnn.relu(Z),
                             fastnn.matmul(A, B), fastnn.matmul(B.T, A.T), fastnn.loss_err(Z, y))
    for a, b in zip(results["numpy"], results["cpp"]):
        np.testing.assert_allclose(np.asarray(b, dtype=np.float64), np.asarray(a, dtype=np.float64), **tol)


@pytest.mark.parametrize("sizes", [[784, 10], [784, 64, 10]], ids=["softmax", "two-layer"])
def test_float32_epoch_is_as_accurate_as_numpy(mnist_train, sizes):
    """A float32 epoch on the cpp backend stays as close to the float64 result as NumPy's float32
    epoch does (guards against e.g. adding many small pieces of a batch's update onto large
    weights one at a time, which drifted 40x further than NumPy over an MNIST epoch)."""
    X, y = mnist_train
    rng = np.random.default_rng(1)
    start = random_weights(rng, sizes, np.float64, scale=2.0)
    truth = [w.copy() for w in start]
    with fastnn.use_backend("numpy"):
        fastnn.mlp_epoch(X.astype(np.float64), y, truth, lr=0.1, batch=100)
    errors = {}
    for backend in ["numpy", "cpp"]:
        W = [w.astype(np.float32) for w in start]
        with fastnn.use_backend(backend):
            fastnn.mlp_epoch(X, y, W, lr=0.1, batch=100)
        errors[backend] = max(np.max(np.abs(w - t)) / np.max(np.abs(t)) for w, t in zip(W, truth))
    assert errors["cpp"] <= 3 * errors["numpy"] + 1e-7, errors
