"""train_epoch's output losses and sample weights (output_loss.hpp, numpy_backend._output_loss):
sample weights against dropped and repeated rows, the squared error, log-loss clipping, gradients
by finite differences, and agreement of the backends on dense, SparseRows and zero-skipping X."""
import numpy as np
import pytest

import fastnn
from fastnn.api import biased_logits, train_epoch
from fastnn.optimizers import SGD, Adam

BACKENDS = fastnn.available_backends()


def _problem(rng, n=24, dims=(5, 6, 3), dtype=np.float64, loss="log_loss"):
    X = rng.normal(size=(n, dims[0])).astype(dtype)
    y = rng.integers(0, dims[-1], n) if loss == "log_loss" else rng.normal(size=(n, dims[-1])).astype(dtype)
    W = [rng.normal(0, 0.5, (a, b)).astype(dtype) for a, b in zip(dims[:-1], dims[1:])]
    b = [rng.normal(0, 0.2, d).astype(dtype) for d in dims[1:]]
    return X, y, W, b


def _copy(arrays):
    return [a.copy() for a in arrays]


def _tol(dtype):
    return dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
@pytest.mark.parametrize("Opt", [SGD, Adam], ids=["sgd", "adam"])
def test_zero_sample_weights_equal_dropping_those_rows(backend, dtype, loss, Opt):
    """Full batch: rows of weight 0 change nothing; the loss and the step are those of the other
    rows alone (the L2 term divided by their count, as scikit-learn's sw_sum)."""
    rng = np.random.default_rng(1)
    X, y, W, b = _problem(rng, dtype=dtype, loss=loss)
    w = np.ones(X.shape[0])
    w[[0, 3, 4, 17]] = 0
    keep = w > 0
    Wa, ba, Wb, bb = _copy(W), _copy(b), _copy(W), _copy(b)
    la = train_epoch(X, y, Wa, ba, Opt(), lr=0.1, batch=X.shape[0], alpha=0.3, sample_weight=w, loss=loss)
    lb = train_epoch(X[keep], y[keep], Wb, bb, Opt(), lr=0.1, batch=X.shape[0], alpha=0.3, loss=loss)
    # returned: Σ_batches B · batch loss / rows visited = the batch loss for one full batch
    assert la == pytest.approx(lb, rel=_tol(dtype)["rtol"])
    for P, Q in zip(Wa + ba, Wb + bb):
        np.testing.assert_allclose(P, Q, **_tol(dtype))


@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
@pytest.mark.parametrize("Opt", [SGD, Adam], ids=["sgd", "adam"])
def test_integer_sample_weights_equal_repeated_rows(backend, dtype, loss, Opt):
    rng = np.random.default_rng(2)
    X, y, W, b = _problem(rng, dtype=dtype, loss=loss)
    w = rng.integers(1, 4, X.shape[0])
    Wa, ba, Wb, bb = _copy(W), _copy(b), _copy(W), _copy(b)
    la = train_epoch(X, y, Wa, ba, Opt(), lr=0.1, batch=X.shape[0], alpha=0.3, sample_weight=w, loss=loss)
    lb = train_epoch(np.repeat(X, w, axis=0), np.repeat(y, w, axis=0), Wb, bb, Opt(), lr=0.1,
                     batch=int(w.sum()), alpha=0.3, loss=loss)
    assert la == pytest.approx(lb, rel=_tol(dtype)["rtol"])
    for P, Q in zip(Wa + ba, Wb + bb):
        np.testing.assert_allclose(P, Q, **_tol(dtype))


def test_squared_error_loss_is_scikit_learns(backend):
    """½ ‖z − y‖² per row averaged over rows and outputs (sklearn's squared_loss), plus the L2
    term; the returned loss is taken before the update."""
    rng = np.random.default_rng(3)
    X, Y, W, b = _problem(rng, n=19, loss="squared_error")
    Z = biased_logits(X, W, b)
    expected = 0.5 * np.mean((Z - Y) ** 2) + 0.5 * 0.2 * sum(float((w ** 2).sum()) for w in W) / 19
    got = train_epoch(X, Y, _copy(W), _copy(b), SGD(), lr=0.0, batch=19, alpha=0.2, loss="squared_error")
    assert got == pytest.approx(expected, rel=1e-12)
    w = rng.uniform(0, 2, 19)
    expected_w = np.average(0.5 * np.mean((Z - Y) ** 2, axis=1), weights=w)
    got_w = train_epoch(X, Y, _copy(W), _copy(b), SGD(), lr=0.0, batch=19, sample_weight=w, loss="squared_error")
    assert got_w == pytest.approx(expected_w, rel=1e-12)


def test_log_loss_clips_like_scikit_learn(backend, dtype):
    """A row whose label has probability below ε = finfo(dtype).eps counts −log ε, as sklearn's
    log_loss (probabilities clipped to [ε, 1 − ε]); the others are the plain cross-entropy."""
    X = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=dtype)
    W = [np.array([[200.0, -200.0], [0.5, 0.0]], dtype=dtype)]
    y = np.array([1, 0])
    Z = biased_logits(X, W, [None]).astype(np.float64)
    ce = np.log(np.exp(Z - Z.max(1, keepdims=True)).sum(1)) + Z.max(1) - Z[np.arange(2), y]
    eps = np.finfo(dtype).eps
    expected = (min(ce[0], -np.log(eps)) + ce[1]) / 2
    got = train_epoch(X, y, _copy(W), None, SGD(), lr=0.0, batch=2)
    assert ce[0] > 100 and got == pytest.approx(expected, rel=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
def test_gradcheck_with_sample_weights(backend, loss):
    """One plain-SGD step with lr = 1 over one batch moves each parameter by minus the gradient
    of the weighted loss the step reports (finite differences, float64). The squared error with
    one output: for k outputs scikit-learn's loss value averages over them and its gradient
    z − y does not (the pair fastnn reproduces), so only k = 1 is a consistent pair."""
    rng = np.random.default_rng(4)
    X, y, W, b = _problem(rng, n=13, dims=(5, 6, 3 if loss == "log_loss" else 1), loss=loss)
    w = rng.uniform(0, 3, 13)
    w[2] = 0

    def f(ps):
        Wc, bc = [p.copy() for p in ps[:2]], [p.copy() for p in ps[2:]]
        value = train_epoch(X, y, Wc, bc, SGD(), lr=1.0, batch=13, alpha=0.2, sample_weight=w, loss=loss)
        return value, [p - q for p, q in zip(ps, Wc + bc)]

    errors = fastnn.gradcheck(f, W + b, tol=1e-6)
    assert max(errors) < 1e-6


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both backends")
@pytest.mark.parametrize("kind", ["dense", "sparse-rows", "skip-zeros"])
@pytest.mark.parametrize("loss", ["log_loss", "squared_error"])
def test_backends_agree_with_weights_and_losses(dtype, loss, kind):
    """Shuffled minibatches with weights (one batch of weight zero) on both backends; X dense,
    as SparseRows, or mostly zeros (the cpp epoch then skips them)."""
    rng = np.random.default_rng(5)
    X, y, W, b = _problem(rng, n=40, dims=(30, 8, 4), dtype=dtype, loss=loss)
    if kind != "dense":
        X[rng.random(X.shape) < 0.8] = 0
    Xin = fastnn.SparseRows.from_dense(X) if kind == "sparse-rows" else X
    w = rng.uniform(0, 2, 40)
    order = rng.permutation(40)
    w[order[:7]] = 0                     # the first batch weighs nothing: no gradient
    fits = {}
    for name in ("numpy", "cpp"):
        Wc, bc, opt = _copy(W), _copy(b), Adam()
        with fastnn.use_backend(name):
            losses = [train_epoch(Xin, y, Wc, bc, opt, lr=0.01, batch=7, order=order, alpha=0.1,
                                  sample_weight=w, loss=loss) for _ in range(2)]
        fits[name] = (losses, Wc + bc)
    np.testing.assert_allclose(fits["numpy"][0], fits["cpp"][0], **_tol(dtype))
    for P, Q in zip(fits["numpy"][1], fits["cpp"][1]):
        np.testing.assert_allclose(P, Q, **_tol(dtype))


def test_targets_and_weights_are_validated_before_anything_changes(backend):
    rng = np.random.default_rng(6)
    X, Y, W, b = _problem(rng, n=10, loss="squared_error")
    saved = _copy(W + b)
    with pytest.raises(ValueError, match=r"y: expected shape \(10, 3\)"):
        train_epoch(X, Y[:, :2], W, b, loss="squared_error")
    with pytest.raises(ValueError, match="loss: expected one of"):
        train_epoch(X, Y, W, b, loss="hinge")
    with pytest.raises(ValueError, match=r"sample_weight: expected shape \(10,\)"):
        train_epoch(X, Y, W, b, loss="squared_error", sample_weight=np.ones(9))
    with pytest.raises(ValueError, match="sample_weight: expected finite weights >= 0"):
        train_epoch(X, Y, W, b, loss="squared_error", sample_weight=-np.ones(10))
    with pytest.raises(ValueError, match="y: expected finite"):
        train_epoch(X, np.full_like(Y, np.nan), W, b, loss="squared_error")
    with pytest.raises(TypeError, match="sample_weight: expected real weights"):
        train_epoch(X, Y, W, b, loss="squared_error", sample_weight=np.array(["a"] * 10))
    for P, Q in zip(W + b, saved):
        assert np.array_equal(P, Q)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both backends")
@pytest.mark.parametrize("kind", ["dense", "sparse-rows", "skip-zeros"])
@pytest.mark.parametrize("d1", [20, 100, 400])
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_l2_term_follows_every_update_of_the_first_layer(threads, dtype, d1, optimizer, kind):
    """With a hidden layer the cpp epoch keeps ‖W_1‖² for the L2 term as the sums of squares of
    W_1's columns (ColumnSquares), refreshed by each thread for its own panel right after the
    panel's update: dense X (d_1 = 20: W_1 whole; 100: whole on 1 thread, a panel per thread on 2;
    400: strips of the GEMM's NR columns), and X with zeros as SparseRows or through the
    zero-skipping path (the sums added up block by block inside the fused update; a panel per
    thread on 2). A strong L2 term shrinks W_1 by lr·α every batch, so a sum left stale by one
    update moves the epoch's loss far past rounding: both backends' losses and weights agree, and
    the cpp epoch's do not move a bit with the thread count."""
    rng = np.random.default_rng(d1)
    X = rng.standard_normal((300, 150)).astype(dtype)
    if kind != "dense":
        X[rng.random(X.shape) < 0.8] = 0
    Xin = fastnn.SparseRows.from_dense(X) if kind == "sparse-rows" else X
    y = rng.integers(0, 10, 300)
    W = [(rng.standard_normal((150, d1)) / 12).astype(dtype), (rng.standard_normal((d1, 10)) / 10).astype(dtype)]
    b = [np.zeros(d1, dtype), np.zeros(10, dtype)]
    make = {"sgd": lambda: SGD(momentum=0.9), "adam": lambda: Adam()}[optimizer]
    cpp_runs = []
    previous = fastnn.get_skip_zeros()
    fastnn.set_skip_zeros(kind == "skip-zeros")
    try:
        for n in (1, 2):
            threads(n)
            fits = {}
            for name in ("numpy", "cpp"):
                Wc, bc, opt = _copy(W), _copy(b), make()
                with fastnn.use_backend(name):
                    losses = [train_epoch(Xin, y, Wc, bc, opt, lr=0.05, batch=75, alpha=50.0) for _ in range(2)]
                fits[name] = (losses, Wc + bc)
            cpp_runs.append(fits["cpp"])
            assert np.sum(fits["cpp"][1][0] ** 2) < 0.8 * np.sum(W[0] ** 2)   # the L2 term did shrink W_1
            np.testing.assert_allclose(fits["cpp"][0], fits["numpy"][0], **_tol(dtype))
            # (float32 Adam: W_1 driven to near 0, where m/√v turns the backends' rounding into steps)
            weight_tol = dict(rtol=2e-4, atol=1e-4) if dtype == np.float32 else _tol(dtype)
            for P, Q in zip(fits["numpy"][1], fits["cpp"][1]):
                np.testing.assert_allclose(P, Q, **weight_tol)
    finally:
        fastnn.set_skip_zeros(previous)
    assert cpp_runs[0][0] == cpp_runs[1][0]
    for P, Q in zip(cpp_runs[0][1], cpp_runs[1][1]):
        np.testing.assert_array_equal(P, Q)
