"""In-place semantics, dtype promotion, memory layouts, and errors raised before any update."""
import numpy as np
import pytest

import fastnn
from conftest import random_problem, random_weights, saved_num_threads


def _problem(dtype=np.float32):
    rng = np.random.default_rng(0)
    X, y = random_problem(rng, 30, 6, 4, dtype)
    return X, y, random_weights(rng, [6, 5, 4], dtype)


def test_updates_callers_arrays(backend, dtype):
    X, y, (W1, W2) = _problem(dtype)
    before1, before2 = W1.copy(), W2.copy()
    fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=7)
    assert not np.array_equal(W1, before1) and not np.array_equal(W2, before2)


def test_mixed_precision_follows_numpy_promotion(backend):
    """float32 X with float64 W computes in float64 and updates W in place (hw0 under NumPy 2)."""
    X, y, (W1, W2) = _problem(np.float32)
    W1, W2 = W1.astype(np.float64), W2.astype(np.float64)
    ref1, ref2 = W1.copy(), W2.copy()
    with fastnn.use_backend("numpy"):
        fastnn.nn_epoch(X, y, ref1, ref2, lr=0.1, batch=7)
    fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=7)
    assert W1.dtype == np.float64
    np.testing.assert_allclose(W1, ref1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(W2, ref2, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("sizes", [[784, 10], [37, 3], [50, 9, 4]], ids=["784-10", "37-3", "50-9-4"])
def test_float32_rows_under_float64_weights_give_the_promoted_bits(isa, sizes, threads):
    """float32 X beside float64 weights computes exactly as X.astype(float64) does -- NumPy's
    promotion, bit for bit -- on every ISA and thread count: softmax regression (its fused epoch
    widens each batch's rows, on 3 threads also the other threads' rows of its features) and a net
    (batch 64 leaves a short last batch)."""
    from fastnn import _core
    rng = np.random.default_rng(sum(sizes) + threads)
    n = 300
    X = (rng.random((n, sizes[0])) * (rng.random((n, sizes[0])) < 0.7)).astype(np.float32)
    y = rng.integers(0, sizes[-1], n)
    W = [rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])]
    saved = saved_num_threads()
    try:
        fastnn.set_num_threads(threads)
        with fastnn.use_backend("cpp"):
            mixed, promoted = [w.copy() for w in W], [w.copy() for w in W]
            fastnn.mlp_epoch(X, y, mixed, lr=0.1, batch=64)
            fastnn.mlp_epoch(X.astype(np.float64), y, promoted, lr=0.1, batch=64)
            if len(sizes) == 2:
                theta = W[0].copy()
                fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=64)
                np.testing.assert_array_equal(theta, promoted[0])
    finally:
        fastnn.set_num_threads(saved)
    assert not np.array_equal(mixed[0], W[0])
    for a, b in zip(mixed, promoted):
        assert a.dtype == np.float64
        np.testing.assert_array_equal(a, b)


def test_float32_weights_with_float64_data_stay_float32(backend):
    X, y, (W1, W2) = _problem(np.float64)
    W1, W2 = W1.astype(np.float32), W2.astype(np.float32)
    ref1, ref2 = W1.copy(), W2.copy()
    with fastnn.use_backend("numpy"):
        fastnn.nn_epoch(X, y, ref1, ref2, lr=0.1, batch=7)
    fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=7)
    assert W1.dtype == np.float32 and W2.dtype == np.float32
    np.testing.assert_allclose(W1, ref1, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layout", ["fortran", "strided", "transposed-view"])
def test_non_contiguous_parameters_are_updated_correctly(backend, layout):
    X, y, (W1, W2) = _problem(np.float64)
    ref1, ref2 = W1.copy(), W2.copy()
    with fastnn.use_backend("numpy"):
        fastnn.nn_epoch(X, y, ref1, ref2, lr=0.1, batch=7)
    if layout == "fortran":
        W1 = np.asfortranarray(W1)
    elif layout == "strided":
        big = np.zeros((W1.shape[0], 2 * W1.shape[1]))
        big[:, ::2] = W1
        W1 = big[:, ::2]
    else:
        W1 = np.ascontiguousarray(W1.T).T
    fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=7)
    np.testing.assert_allclose(W1, ref1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(W2, ref2, rtol=1e-10, atol=1e-12)


def test_read_only_data_is_fine(backend):
    X, y, (W1, W2) = _problem()
    X.flags.writeable = False
    y = np.frombuffer(y.tobytes(), dtype=np.uint8)
    assert not y.flags.writeable
    fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=7)


def _unchanged(W, before):
    for w, b in zip(W, before):
        np.testing.assert_array_equal(w, b)


BAD_CALLS = [
    # (description, mutate(X, y, W1, W2) -> args, exception, message regex)
    ("int weights", lambda X, y, W1, W2: (X, y, W1.astype(np.int32), W2), TypeError, r"W1: expected dtype float32 or float64.*got int32"),
    ("float16 data", lambda X, y, W1, W2: (X.astype(np.float16), y, W1, W2), TypeError, r"X: expected dtype float32 or float64, got float16"),
    ("list weights", lambda X, y, W1, W2: (X, y, W1.tolist(), W2), TypeError, r"W1: expected a numpy.ndarray"),
    ("read-only W2", lambda X, y, W1, W2: (X, y, W1, _read_only(W2)), ValueError, r"W2: expected a writeable array"),
    ("shape mismatch", lambda X, y, W1, W2: (X, y, W1, W2[:3]), ValueError, r"W2: expected 5 rows \(W1 has 5 columns\), got shape \(3, 4\)"),
    ("X columns", lambda X, y, W1, W2: (X[:, :5], y, W1, W2), ValueError, r"W1: expected 5 rows \(X has 5 columns\), got shape \(6, 5\)"),
    ("label too large", lambda X, y, W1, W2: (X, _set(y, 3, 4), W1, W2), ValueError, r"y: expected labels in \[0, 4\), got values in \[0, 4\]"),
    ("negative label", lambda X, y, W1, W2: (X, _set(y.astype(np.int64), 0, -1), W1, W2), ValueError, r"y: expected labels in \[0, 4\)"),
    ("label length", lambda X, y, W1, W2: (X, y[:-1], W1, W2), ValueError, r"y: expected 30 labels \(one per row\), got 29"),
    ("float labels", lambda X, y, W1, W2: (X, y.astype(np.float32), W1, W2), TypeError, r"y: expected an integer dtype, got float32"),
    ("1-D data", lambda X, y, W1, W2: (X[0], y, W1, W2), ValueError, r"X: expected a 2-D array, got 1-D"),
    ("overlap", lambda X, y, W1, W2: (X, y, X[:6, :5], W2), ValueError, r"X and W1: expected separate arrays"),
]


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _set(a, i, value):
    a = a.copy()
    a[i] = value
    return a


@pytest.mark.parametrize("desc,mutate,exc,msg", BAD_CALLS, ids=[c[0] for c in BAD_CALLS])
def test_bad_input_raises_before_any_update(backend, desc, mutate, exc, msg):
    X, y, (W1, W2) = _problem()
    args = mutate(X, y, W1, W2)
    before = [a.copy() for a in args[2:] if isinstance(a, np.ndarray)]
    with pytest.raises(exc, match=msg):
        fastnn.nn_epoch(*args, lr=0.1, batch=7)
    _unchanged([a for a in args[2:] if isinstance(a, np.ndarray)], before)


@pytest.mark.parametrize("batch,exc", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_batch(backend, batch, exc):
    X, y, (W1, W2) = _problem()
    before = W1.copy()
    with pytest.raises(exc, match="batch: expected an integer"):
        fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=batch)
    np.testing.assert_array_equal(W1, before)


@pytest.mark.parametrize("lr,exc", [(float("nan"), ValueError), (float("inf"), ValueError), ("0.1", TypeError)])
def test_bad_learning_rate(backend, lr, exc):
    X, y, (W1, W2) = _problem()
    with pytest.raises(exc, match="lr: expected a"):
        fastnn.softmax_regression_epoch(X, y, W1[:, :4].copy(), lr=lr, batch=7)


def test_softmax_loss_bad_labels(backend):
    Z = np.zeros((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"y: expected labels in \[0, 4\), got values in \[0, 9\]"):
        fastnn.softmax_loss(Z, [0, 1, 9])
    with pytest.raises(ValueError, match=r"y: expected 3 labels"):
        fastnn.softmax_loss(Z, [0, 1])


def test_train_epoch_refuses_labels_sharing_memory_with_a_bias(backend):
    """Labels stored in a bias's memory would change under the update in the middle of the
    epoch (the same hazard as labels inside a weight): refused before anything runs."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((6, 4))
    W = [rng.standard_normal((4, 6)), rng.standard_normal((6, 3))]
    buf = np.zeros(6)                      # 0.0 reads as the int64 label 0
    biases = [buf, None]
    y = buf.view(np.int64)
    before = [w.copy() for w in W]
    with pytest.raises(ValueError, match=r"y and biases\[0\]: expected separate arrays"):
        fastnn.train_epoch(X, y, W, biases, lr=0.1, batch=3)
    for w, b in zip(W, before):
        np.testing.assert_array_equal(w, b)


def _off_line(shape, dtype, offset):
    """A C-contiguous array whose data start `offset` bytes past a 64-byte cache line."""
    itemsize = np.dtype(dtype).itemsize
    n = int(np.prod(shape))
    buf = np.empty(n + 128 // itemsize, dtype)
    start = (-buf.ctypes.data % 64 + offset) // itemsize
    a = buf[start:start + n].reshape(shape)
    assert a.ctypes.data % 64 == offset and a.flags.c_contiguous
    return a


@pytest.mark.parametrize("threads", [1, 2])
def test_weights_off_a_cache_line_train_to_the_same_bits(dtype, threads):
    """The C++ epoch copies a W_1 that does not start on a cache line into an aligned buffer
    for the epoch (its rows then never straddle an extra line) and writes it back: the caller's
    arrays are updated in place, to the same bits as aligned ones, wherever they start. d_1 = 64
    fills whole lines in both dtypes, so only the offset decides the copy."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((350, 40)).astype(dtype)
    y = rng.integers(0, 10, 350).astype(np.uint8)
    W1_0 = (rng.standard_normal((40, 64)) / 8).astype(dtype)
    W2_0 = (rng.standard_normal((64, 10)) / 8).astype(dtype)
    saved = saved_num_threads()
    results = []
    try:
        fastnn.set_num_threads(threads)
        with fastnn.use_backend("cpp"):
            for offset in (0, 16, 32, 48):
                W1, W2 = _off_line(W1_0.shape, dtype, offset), _off_line(W2_0.shape, dtype, offset)
                W1[...], W2[...] = W1_0, W2_0
                fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=50)
                results.append((W1.copy(), W2.copy()))
    finally:
        fastnn.set_num_threads(saved)
    assert not np.array_equal(results[0][0], W1_0)   # it trained, in the caller's array
    for W1, W2 in results[1:]:
        np.testing.assert_array_equal(W1, results[0][0])
        np.testing.assert_array_equal(W2, results[0][1])
