"""Property-based tests (hypothesis): for random shapes and values,

  * the cpp and numpy backends agree (every public function with a float result);
  * a softmax-regression epoch (and any MLP epoch) with lr = 0 leaves the parameters bitwise
    unchanged;
  * the loss is >= 0 and finite for finite logits (whose spread fits the dtype's range).

Shapes and seeds come from hypothesis; the values from a seeded NumPy generator (Gaussian
data keeps ReLU pre-activations away from exact ties at 0, where the backends may legitimately
round to different sides). Loss properties use hypothesis-generated logits directly.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastnn

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])
TOL = {np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-9, atol=1e-11)}

dtypes = st.sampled_from([np.dtype(np.float32), np.dtype(np.float64)])


@st.composite
def problems(draw, max_layers=3):
    n = draw(st.integers(1, 40))
    sizes = [draw(st.integers(1, 12)) for _ in range(draw(st.integers(1, max_layers)))]
    k = draw(st.integers(1, 6))
    dtype = draw(dtypes)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    dims = sizes + [k]
    X = rng.standard_normal((n, dims[0])).astype(dtype)
    y = rng.integers(0, k, n)
    weights = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(dims, dims[1:])]
    batch = draw(st.integers(1, n + 3))
    lr = draw(st.floats(0.0, 1.0))
    return X, y, weights, batch, lr


def _both(f):
    out = {}
    for backend in ("numpy", "cpp"):
        with fastnn.use_backend(backend):
            out[backend] = f()
    return out["numpy"], out["cpp"]


def _close(a, b, dtype):
    for x, z in zip(a, b):
        np.testing.assert_allclose(x, z, **TOL[np.dtype(dtype)])


@SETTINGS
@given(problems())
def test_mlp_epoch_backends_agree(problem):
    X, y, weights, batch, lr = problem
    lr = min(lr, 0.2)   # keep several batches from amplifying rounding differences
    ref, got = _both(lambda: _epoch(X, y, weights, lr, batch))
    _close(got, ref, X.dtype)


def _epoch(X, y, weights, lr, batch):
    W = [w.copy() for w in weights]
    fastnn.mlp_epoch(X, y, W, lr=lr, batch=batch)
    return W


@SETTINGS
@given(problems())
def test_loss_grad_logits_evaluate_backends_agree(problem):
    X, y, weights, _, _ = problem
    (l_ref, g_ref), (l_got, g_got) = _both(lambda: fastnn.mlp_loss_grad(X, y, weights))
    _close([l_got] + g_got, [l_ref] + g_ref, X.dtype)
    ref, got = _both(lambda: fastnn.mlp_logits(X, weights))
    _close([got], [ref], X.dtype)
    ref, got = _both(lambda: fastnn.evaluate(X, y, weights))
    np.testing.assert_allclose(got[0], ref[0], **TOL[X.dtype])


@SETTINGS
@given(st.integers(1, 30), st.integers(1, 30), st.integers(1, 30), dtypes, st.integers(0, 2**32 - 1),
       st.booleans(), st.booleans())
def test_matmul_backends_agree(m, k, n, dtype, seed, a_fortran, b_transposed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, k)).astype(dtype)
    B = rng.standard_normal((k, n)).astype(dtype)
    if a_fortran:
        A = np.asfortranarray(A)
    if b_transposed:
        B = np.ascontiguousarray(B.T).T
    ref, got = _both(lambda: fastnn.matmul(A, B))
    _close([got], [ref], dtype)
    ref, got = _both(lambda: fastnn.relu(A))
    np.testing.assert_array_equal(got, ref)


def _logits(dtype):
    bound = float(np.float32(1e30)) if dtype == np.float32 else 1e300   # spread max - min stays below the dtype's max
    return hnp.arrays(dtype, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=12),
                      elements=st.floats(-bound, bound, width=8 * dtype.itemsize, allow_nan=False))


@st.composite
def logits_and_labels(draw):
    Z = draw(_logits(draw(dtypes)))
    y = draw(hnp.arrays(np.int64, Z.shape[0], elements=st.integers(0, Z.shape[1] - 1)))
    return Z, y


@SETTINGS
@given(logits_and_labels())
def test_loss_is_finite_nonnegative_and_agrees(problem):
    Z, y = problem
    ref, got = _both(lambda: (fastnn.softmax_loss(Z, y), *fastnn.softmax_cross_entropy(Z, y), *fastnn.loss_err(Z, y)))
    for loss in (ref[0], ref[1], ref[3], got[0], got[1], got[3]):
        assert np.isfinite(loss) and loss >= 0, loss
    # relative to the logits' scale: rounding of Z - max(Z) is what differs
    scale = max(1.0, float(np.abs(Z.astype(np.float64)).max()))
    tol = 1e-5 if Z.dtype == np.float32 else 1e-12
    for i in (0, 1, 3):
        assert abs(got[i] - ref[i]) <= tol * scale, (got[i], ref[i])
    np.testing.assert_allclose(got[2], ref[2], rtol=0, atol=tol * 10)   # ∇Z entries lie in [-1, 1]
    assert got[4] == ref[4]   # error rate: argmax ties go to the lower class in both


@SETTINGS
@given(problems(max_layers=1))
def test_softmax_epoch_with_lr_zero_changes_nothing(problem):
    X, y, (theta,), batch, _ = problem
    for backend in ("numpy", "cpp"):
        with fastnn.use_backend(backend):
            t = theta.copy()
            fastnn.softmax_regression_epoch(X, y, t, lr=0.0, batch=batch)
            np.testing.assert_array_equal(t, theta)


@SETTINGS
@given(problems())
def test_mlp_epoch_with_lr_zero_changes_nothing(problem):
    X, y, weights, batch, _ = problem
    for backend in ("numpy", "cpp"):
        with fastnn.use_backend(backend):
            W = [w.copy() for w in weights]
            fastnn.mlp_epoch(X, y, W, lr=0.0, batch=batch)
            for w, w0 in zip(W, weights):
                np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_loss_of_extreme_logits_is_finite(dtype):
    """The largest finite logits against the label at the row minimum: still finite."""
    big = np.finfo(dtype).max / 8   # per-row losses up to max/4; their sum stays finite
    Z = np.array([[big, -big], [-big, big], [0, big]], dtype=dtype)
    y = np.array([1, 0, 0])
    for backend in ("numpy", "cpp"):
        with fastnn.use_backend(backend):
            loss = fastnn.softmax_loss(Z, y)
            assert np.isfinite(loss) and loss > 0
