"""The SGD epochs against an independent per-sample oracle, and hw0's training drivers
(hw0's reference figures for the epochs are in test_hw0.py)."""
import numpy as np
import pytest

import fastnn
from conftest import random_problem, random_weights, saved_num_threads
from reference_sgd import mlp_epoch_per_sample


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("n,batch", [(23, 5), (20, 5), (7, 10), (9, 1), (9, 2), (12, 4)],
                         ids=["partial-last-batch", "exact", "batch>n", "batch1", "batch2", "batch4"])
def test_softmax_regression_epoch_matches_per_sample(backend, dtype, n, batch):
    rng = np.random.default_rng(n)
    X, y = random_problem(rng, n, 6, 4, dtype)
    theta = random_weights(rng, [6, 4], dtype)[0]
    expected = mlp_epoch_per_sample(X, y, [theta], lr=0.3, batch=batch)[0]
    theta_id = id(theta)
    assert fastnn.softmax_regression_epoch(X, y, theta, lr=0.3, batch=batch) is None
    assert id(theta) == theta_id and theta.dtype == dtype
    np.testing.assert_allclose(theta, expected, **_tol(dtype))


@pytest.mark.parametrize("n,batch", [(23, 5), (9, 1)], ids=["partial-last-batch", "batch1"])
def test_nn_epoch_matches_per_sample(backend, dtype, n, batch):
    rng = np.random.default_rng(n + 100)
    X, y = random_problem(rng, n, 6, 3, dtype)
    W1, W2 = random_weights(rng, [6, 5, 3], dtype)
    e1, e2 = mlp_epoch_per_sample(X, y, [W1, W2], lr=0.2, batch=batch)
    fastnn.nn_epoch(X, y, W1, W2, lr=0.2, batch=batch)
    np.testing.assert_allclose(W1, e1, **_tol(dtype))
    np.testing.assert_allclose(W2, e2, **_tol(dtype))


@pytest.mark.parametrize("sizes", [[5, 4], [5, 7, 3], [5, 6, 4, 3], [5, 1, 2]], ids=["L1", "L2", "L3", "hidden1"])
def test_mlp_epoch_matches_per_sample(backend, dtype, sizes):
    rng = np.random.default_rng(len(sizes))
    X, y = random_problem(rng, 17, sizes[0], sizes[-1], dtype)
    weights = random_weights(rng, sizes, dtype)
    expected = mlp_epoch_per_sample(X, y, weights, lr=0.1, batch=4)
    fastnn.mlp_epoch(X, y, weights, lr=0.1, batch=4)
    for W, E in zip(weights, expected):
        np.testing.assert_allclose(W, E, **_tol(dtype))


def test_train_softmax_prints_table(backend, mnist_train, mnist_test, capsys):
    X, y = mnist_train
    Xt, yt = mnist_test
    theta = fastnn.train_softmax(X[:2000], y[:2000], Xt[:500], yt[:500], epochs=2, lr=0.2, batch=100)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "| Epoch | Train Loss | Train Err | Test Loss | Test Err |"
    assert len(out) == 3 and out[2].startswith("|     1 |")
    train_loss, train_err = fastnn.loss_err(X[:2000] @ theta, y[:2000])
    assert f"{train_loss:.5f}" in out[2] and f"{train_err:.5f}" in out[2]
    assert train_err < 0.2


def test_train_nn_returns_weights(backend, mnist_train, mnist_test, capsys):
    X, y = mnist_train
    Xt, yt = mnist_test
    W1, W2 = fastnn.train_nn(X[:1000], y[:1000], Xt[:200], yt[:200], hidden_dim=50, epochs=2, lr=0.2)
    assert W1.shape == (784, 50) and W2.shape == (50, 10)
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert fastnn.evaluate(X[:1000], y[:1000], [W1, W2])[1] < 0.3


# (n, d, k): d below one vector (the scalar dot blocks), k below, at and above the 10 classes of a
# wide block (k = 23: blocks of 8), a batch of rows that leaves pairs and a single row.
# With pixels and k <= 10 the wide forward and the update widen them in registers, nothing stored:
# d = 13 and 8 (below one vector), 24 and 40 (tails of 8 features, which once summed to other bits).
SOFTMAX_BLOCK_SHAPES = [(203, 784, 10), (150, 40, 3), (97, 13, 12), (120, 100, 23), (60, 13, 4), (60, 8, 10),
                        (75, 24, 7)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n,d,k", SOFTMAX_BLOCK_SHAPES, ids=["x".join(map(str, s)) for s in SOFTMAX_BLOCK_SHAPES])
def test_softmax_forward_blocks_give_the_same_bits(isa, dtype, n, d, k, threads, softmax_teams):
    """The fused softmax epoch's forward runs in wide register blocks of all k <= 10 classes (2 rows
    with AVX-512, 1 row with AVX2 and SSE2) where AVX-512 is active and Θᵀ's block and two rows fit
    the L1 data cache, else in the ISA's own (5 classes; AVX-512 5 rows, the others 2): every
    logit is the same sum either way, so Θ after an epoch is the same bits -- for X as uint8 Pixels
    (widened in registers by the wide blocks when k <= 10, into stored rows otherwise) and for
    float X holding the same values (float64 Θ: the pixels' float32 values widened once more) --
    on one thread and two."""
    from fastnn import _core
    rng = np.random.default_rng(n + d + k)
    images = rng.integers(0, 256, (n, d), dtype=np.uint8)
    y = rng.integers(0, k, n).astype(np.uint8)
    pixels = fastnn.Pixels(images, scale=1 / 255)
    inputs = [pixels.to_float32().astype(dtype), pixels]
    theta0 = (rng.standard_normal((d, k)) / 10).astype(dtype)
    saved = saved_num_threads()
    previous = _core._softmax_tuning()
    try:
        fastnn.set_num_threads(threads)
        with fastnn.use_backend("cpp"):
            got = []
            for X in inputs:
                for blocks in (1, -1):
                    _core._softmax_tuning(blocks)
                    theta = theta0.copy()
                    fastnn.softmax_regression_epoch(X, y, theta, lr=0.5, batch=37)
                    got.append(theta)
            assert not np.array_equal(got[0], theta0)
            for theta in got[1:]:
                np.testing.assert_array_equal(theta, got[0])
    finally:
        _core._softmax_tuning(previous)
        fastnn.set_num_threads(saved)


def test_softmax_forward_blocks_setting_is_checked():
    from fastnn import _core
    previous = _core._softmax_tuning()
    with pytest.raises(ValueError, match="forward_blocks"):
        _core._softmax_tuning(2)
    assert _core._softmax_tuning() == previous
    assert _core.build_info()["l1d_cache_bytes"] >= 16 << 10
