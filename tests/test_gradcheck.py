"""Analytic gradients of both backends against central finite differences (float64)."""
import numpy as np
import pytest

import fastnn
from conftest import random_problem, random_weights


@pytest.mark.parametrize("sizes", [[6, 4], [6, 5, 3], [6, 5, 4, 3]], ids=["softmax", "two-layer", "three-layer"])
def test_gradcheck_mlp(backend, sizes):
    rng = np.random.default_rng(sum(sizes))
    X, y = random_problem(rng, 9, sizes[0], sizes[-1])
    weights = random_weights(rng, sizes, scale=1.0)
    errors = fastnn.gradcheck(lambda p: fastnn.mlp_loss_grad(X, y, p), weights, tol=1e-6)
    assert len(errors) == len(sizes) - 1
    assert max(errors) < 1e-6


def test_gradcheck_epoch_step(backend):
    """One full-batch SGD step moves the weights by −lr·∇: the epoch's own update is the gradient."""
    rng = np.random.default_rng(7)
    X, y = random_problem(rng, 8, 5, 3)
    W = random_weights(rng, [5, 4, 3], scale=1.0)

    def loss_and_step_gradient(params):
        before = [p.copy() for p in params]
        fastnn.mlp_epoch(X, y, before, lr=1.0, batch=X.shape[0])
        loss = fastnn.mlp_loss_grad(X, y, params)[0]
        return loss, [p - b for p, b in zip(params, before)]

    assert max(fastnn.gradcheck(loss_and_step_gradient, W)) < 1e-6


def test_gradcheck_fails_loudly_on_wrong_gradient(backend):
    rng = np.random.default_rng(8)
    X, y = random_problem(rng, 5, 4, 3)
    W = random_weights(rng, [4, 3], scale=1.0)

    def wrong(params):
        loss, (g,) = fastnn.mlp_loss_grad(X, y, params)
        return loss, [2 * g]           # off by a factor of two

    with pytest.raises(fastnn.GradcheckError, match=r"largest relative error"):
        fastnn.gradcheck(wrong, W)
    errors = fastnn.gradcheck(wrong, W, raise_on_failure=False)
    assert errors[0] > 0.4


def test_gradcheck_restores_parameters():
    W = [np.arange(6.0).reshape(2, 3)]
    before = W[0].copy()
    fastnn.gradcheck(lambda p: (float((p[0] ** 2).sum()), [2 * p[0]]), W)
    np.testing.assert_array_equal(W[0], before)
