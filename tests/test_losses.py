import numpy as np
import pytest

import fastnn


def test_softmax_loss_zero_logits_is_ln10(backend, dtype, mnist_train):
    """hw0's figure 2.3025850 at hw0's tolerance (rtol 1e-7) for hw0's float64 Z; float32's
    60,000-term mean is checked to 1e-6."""
    _, y = mnist_train
    Z = np.zeros((y.shape[0], 10), dtype=dtype)
    rtol = 1e-7 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(fastnn.softmax_loss(Z, y), 2.3025850, rtol=rtol)


def test_softmax_loss_hw0_random_logits(backend, mnist_train):
    _, y = mnist_train
    np.random.seed(0)
    Z = np.random.randn(y.shape[0], 10)
    np.testing.assert_allclose(fastnn.softmax_loss(Z, y), 2.7291998, rtol=1e-7)   # hw0's figure and tolerance


def test_softmax_loss_is_stable_for_huge_logits(backend, dtype):
    Z = np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], dtype=dtype)
    y = np.array([0, 0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss = fastnn.softmax_loss(Z, y)
    # row 0: lse = 1e4, loss 0; row 1: lse = 1e4 + ln 2, loss 1e4 + ln 2
    np.testing.assert_allclose(loss, (1e4 + np.log(2)) / 2, rtol=1e-6)
    loss2, G = fastnn.softmax_cross_entropy(Z, y)
    assert np.isfinite(G).all()
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)


def test_softmax_cross_entropy_gradient_formula(backend, dtype):
    rng = np.random.default_rng(1)
    Z = rng.standard_normal((7, 5)).astype(dtype)
    y = rng.integers(0, 5, 7)
    loss, G = fastnn.softmax_cross_entropy(Z, y)
    S = np.exp(Z - Z.max(1, keepdims=True))
    S /= S.sum(1, keepdims=True)
    S[np.arange(7), y] -= 1
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(G, S / 7, rtol=tol, atol=tol)
    assert G.dtype == dtype
    np.testing.assert_allclose(loss, fastnn.softmax_loss(Z, y), rtol=tol)


def test_softmax_cross_entropy_gradcheck(backend):
    rng = np.random.default_rng(2)
    Z = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, 6)
    errors = fastnn.gradcheck(lambda p: (lambda l, g: (l, [g]))(*fastnn.softmax_cross_entropy(p[0], y)), [Z])
    assert errors[0] < 1e-6


def test_loss_err(backend, dtype):
    h = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 0.0], [0.0, 5.0, 1.0]], dtype=dtype)
    y = np.array([0, 1, 1, 1], dtype=np.uint8)
    loss, err = fastnn.loss_err(h, y)
    assert err == pytest.approx(0.5)   # row 1 wrong; row 2 is a tie that argmax gives to class 0
    expected = np.mean(np.log(np.exp(h).sum(1)) - h[np.arange(4), y])
    np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_relu_and_matmul(backend, dtype):
    rng = np.random.default_rng(3)
    A = rng.standard_normal((5, 3)).astype(dtype)
    B = rng.standard_normal((3, 4)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(fastnn.matmul(A, B), A @ B, rtol=tol, atol=tol)
    np.testing.assert_allclose(fastnn.matmul(B.T, A.T), B.T @ A.T, rtol=tol, atol=tol)
    np.testing.assert_array_equal(fastnn.relu(A), np.maximum(A, 0))
    assert fastnn.matmul(A, B).dtype == dtype


def test_softmax_loss_keeps_log_term_for_equal_huge_logits(backend, dtype):
    """logsumexp − z_y summed as (max − z_y) + log Σ exp(z − max): no cancellation of 1e30s."""
    Z = np.array([[1e30, 1e30], [3e38 if dtype == np.float32 else 1e300, 0.0]], dtype=dtype)
    y = np.array([0, 0])
    np.testing.assert_allclose(fastnn.softmax_loss(Z[:1], y[:1]), np.log(2), rtol=1e-6)
    loss, _ = fastnn.softmax_cross_entropy(Z, y)
    np.testing.assert_allclose(loss, np.log(2) / 2, rtol=1e-6)
