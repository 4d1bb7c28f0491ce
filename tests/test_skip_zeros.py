"""The C++ epochs' zero skipping (fastnn.set_skip_zeros): a mostly-zero dense X is compacted to CSR
batch by batch and the first layer runs over its nonzeros only. The results must equal the dense
kernels' (and the NumPy reference's) up to rounding, on every ISA, with 1 or 2 threads alike, and
the policy must choose the path as documented."""
import numpy as np
import pytest

import fastnn
from fastnn import SGD, Adam, _core, cpp_backend, runtime
from conftest import saved_num_threads

TOL = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}


@pytest.fixture(autouse=True)
def _restore_setting():
    saved = fastnn.get_skip_zeros()
    yield
    fastnn.set_skip_zeros(saved)


def _sparse_data(rng, n, d, dtype, density=0.15):
    """Mostly zeros, with ±0 and a first row and a column of nothing but zeros."""
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    X[0] = 0
    X[:, d // 2] = 0
    X[1, :3] = -0.0
    return X.astype(dtype)


def _net(rng, sizes, dtype):
    return [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(sizes, sizes[1:])]


def _core_epoch(X, y, weights, lr, batch, skip_zeros, biases=None, kind="sgd", first=None, second=None,
                order=None, alpha=0.0):
    """One SGD epoch through the core's dense entry point, the path forced."""
    L = len(weights)
    t = np.zeros(1, np.int64)
    return _core.train_epoch(X, y, order, weights, biases or [None] * L, kind, first or [None] * (2 * L),
                             second or [None] * (2 * L), t, lr, batch, alpha, 0.0, False, 0.9, 0.999, 1e-8,
                             skip_zeros=skip_zeros)


# ---- the setting and the policy -------------------------------------------------------------------

def test_setting_round_trips_and_rejects_non_booleans():
    assert fastnn.get_skip_zeros() is True   # the default
    fastnn.set_skip_zeros(False)
    assert fastnn.get_skip_zeros() is False
    for bad in (1, "yes", None):
        with pytest.raises(TypeError, match="enabled: expected True or False"):
            fastnn.set_skip_zeros(bad)
    assert fastnn.get_skip_zeros() is False


def test_policy_skips_only_mostly_zero_data_with_a_hidden_layer():
    rng = np.random.default_rng(0)
    sparse = _sparse_data(rng, 50, 40, np.float32, density=0.1)
    dense = rng.standard_normal((50, 40)).astype(np.float32)
    assert cpp_backend._skips_zeros(sparse, 2)
    assert not cpp_backend._skips_zeros(sparse, 1)          # softmax regression: its own fused epoch
    assert not cpp_backend._skips_zeros(dense, 2)
    assert not cpp_backend._skips_zeros(sparse[:0], 2)
    fastnn.set_skip_zeros(False)
    assert not cpp_backend._skips_zeros(sparse, 3)


def test_policy_samples_the_rows_the_epoch_visits_first():
    rows = runtime.SKIP_ZEROS_SAMPLE_ROWS
    X = np.zeros((2 * rows, 8), np.float32)
    X[rows:] = 1.0                                           # the dense rows come after the sample
    assert cpp_backend._skips_zeros(X, 2)
    order = np.arange(X.shape[0])[::-1]                      # … unless the order visits them first
    assert not cpp_backend._skips_zeros(X, 2, order)
    limit = runtime.SKIP_ZEROS_MAX_DENSITY
    X = np.zeros((100, 10), np.float32)
    X.flat[:int(limit * X.size)] = 1.0                       # exactly at the limit: skipped
    assert cpp_backend._skips_zeros(X, 2)
    X.flat[int(limit * X.size)] = np.nan                     # NaN counts as a nonzero
    assert not cpp_backend._skips_zeros(X, 2)


def test_policy_leaves_large_batches_to_the_dense_kernels(monkeypatch):
    limit = runtime.SKIP_ZEROS_MAX_BATCH
    X = np.zeros((limit + 10, 8), np.float32)
    assert cpp_backend._skips_zeros(X, 2, batch=limit)
    assert not cpp_backend._skips_zeros(X, 2, batch=limit + 1)
    assert not cpp_backend._skips_zeros(X, 2, batch=10 ** 30)           # one batch of every row
    assert cpp_backend._skips_zeros(X[:limit], 2, batch=10 ** 30)       # ... of no more than the limit
    assert cpp_backend._skips_zeros(X, 2, order=np.arange(limit), batch=limit + 5)   # the rows visited
    assert cpp_backend._skips_zeros(X, 2)                               # evaluations: chunks of their own
    # Through nn_epoch and the estimators' train_epoch (the zero-skipping and the dense path give the
    # same bits here, so the core's entry point is watched for the path asked).
    monkeypatch.setattr(runtime, "SKIP_ZEROS_MAX_BATCH", 40)
    asked = []
    core_train_epoch = _core.train_epoch

    def watched(*args, **kwargs):
        asked.append(kwargs.get("skip_zeros", False))
        return core_train_epoch(*args, **kwargs)

    monkeypatch.setattr(_core, "train_epoch", watched)
    rng = np.random.default_rng(3)
    X = _sparse_data(rng, 120, 37, np.float32)
    y = rng.integers(0, 10, 120)
    W = _net(rng, [37, 20, 10], np.float32)
    with fastnn.use_backend("cpp"):
        for batch in (40, 41):
            fastnn.nn_epoch(X, y, *[w.copy() for w in W], lr=0.2, batch=batch)   # dense: _core.mlp_epoch
            fastnn.train_epoch(X, y, [w.copy() for w in W], [None, None], fastnn.SGD(), 0.2, batch)
    assert asked == [True, True, False]


def test_nn_epoch_takes_the_zero_skipping_path_exactly_when_the_policy_says():
    """With the policy on, nn_epoch's result is bit for bit the core's zero-skipping epoch; with it
    off, bit for bit the dense hw0 epoch."""
    rng = np.random.default_rng(1)
    X = _sparse_data(rng, 230, 37, np.float32)
    y = rng.integers(0, 10, 230)
    W = _net(rng, [37, 20, 10], np.float32)
    with fastnn.use_backend("cpp"):
        for skip in (True, False):
            fastnn.set_skip_zeros(skip)
            mine = [w.copy() for w in W]
            fastnn.nn_epoch(X, y, *mine, lr=0.2, batch=50)
            core = [w.copy() for w in W]
            if skip:
                _core_epoch(X, y, core, 0.2, 50, skip_zeros=True)
            else:
                _core.mlp_epoch(X, y, core, 0.2, 50)
            for a, b in zip(mine, core):
                np.testing.assert_array_equal(a, b)


# ---- agreement ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes,n,batch", [([37, 20, 10], 230, 50), ([784, 100, 10], 137, 100),
                                           ([17, 33, 7, 5], 101, 37), ([16, 8, 3], 9, 1),
                                           ([50, 300, 10], 60, 30)])   # rows of W_1 in several blocks, with a tail
def test_skipping_agrees_with_dense_and_numpy_on_every_isa(isa, dtype, sizes, n, batch):
    rng = np.random.default_rng(sum(sizes) + n)
    X = _sparse_data(rng, n, sizes[0], dtype)
    y = rng.integers(0, sizes[-1], n)
    W = _net(rng, sizes, dtype)
    results = {}
    for name, backend, skip in (("skip", "cpp", True), ("dense", "cpp", False), ("numpy", "numpy", False)):
        fastnn.set_skip_zeros(skip)
        with fastnn.use_backend(backend):
            mine = [w.copy() for w in W]
            fastnn.mlp_epoch(X, y, mine, lr=0.1, batch=batch)
        results[name] = mine
    for a, b, c in zip(results["skip"], results["dense"], results["numpy"]):
        np.testing.assert_allclose(a, b, **TOL[dtype])
        np.testing.assert_allclose(a, c, **TOL[dtype])


def _per_path_and_threads(run):
    """{name: run()} with zero skipping on 1, 2 and 3 threads ("skip", "skip2", "skip3"), the cpp
    dense kernels ("dense") and the NumPy backend ("numpy"); the thread count is restored after."""
    results = {}
    saved = saved_num_threads()
    try:
        for name, backend, skip, threads in (("skip", "cpp", True, 1), ("skip2", "cpp", True, 2),
                                             ("skip3", "cpp", True, 3), ("dense", "cpp", False, 1),
                                             ("numpy", "numpy", False, 1)):
            fastnn.set_skip_zeros(skip)
            fastnn.set_num_threads(threads)
            with fastnn.use_backend(backend):
                results[name] = run()
    finally:
        fastnn.set_num_threads(saved)
    return results


@pytest.mark.parametrize("sizes,n", [([37, 20, 10], 230), ([784, 100, 10], 1100), ([17, 33, 7, 5], 2100)],
                         ids=["37-20-10", "784-100-10-two-chunks", "17-33-7-5-three-chunks"])
@pytest.mark.parametrize("weights", [np.float32, np.float64], ids=["float32", "float64-weights"])
def test_evaluation_skips_zeros_and_agrees_with_dense_and_numpy(isa, sizes, n, weights):
    """evaluate and mlp_logits (hw0's train_nn evaluates after every epoch) run a mostly-zero X's
    first layer over its nonzeros when the policy says so, chunk by chunk of 1024 rows: the logits
    and the loss equal the dense kernels' and NumPy's up to rounding, the errors exactly, and no
    bit depends on the thread count. Also float32 rows under float64 weights."""
    rng = np.random.default_rng(sum(sizes) + n)
    X = _sparse_data(rng, n, sizes[0], np.float32)
    y = rng.integers(0, sizes[-1], n)
    W = _net(rng, sizes, weights)
    tol = TOL[np.dtype(weights)] if weights == np.float64 else dict(rtol=1e-4, atol=1e-5)
    assert cpp_backend._skips_zeros(X, len(W))
    results = _per_path_and_threads(lambda: (fastnn.evaluate(X, y, W), fastnn.mlp_logits(X, W)))
    (loss, err), Z = results["skip"]
    for name in ("skip2", "skip3"):
        assert results[name][0] == (loss, err), name
        np.testing.assert_array_equal(results[name][1], Z)
    for name in ("dense", "numpy"):
        (other_loss, other_err), other_Z = results[name]
        assert other_err == err, name
        np.testing.assert_allclose(loss, other_loss, **tol)
        np.testing.assert_allclose(Z, other_Z, **tol)


@pytest.mark.parametrize("weights", [np.float32, np.float64], ids=["float32", "float64-weights"])
def test_biased_logits_skip_zeros_and_agree_with_dense_and_numpy(isa, weights):
    """The estimators' predictions (biased_logits) take a mostly-zero X's first layer over its
    nonzeros too, the bias as each row's starting value: equal to the dense kernels' and NumPy's
    up to rounding, and the same bits on 1, 2 and 3 threads (three chunks of 1024 rows)."""
    rng = np.random.default_rng(11)
    sizes, n = [120, 48, 7, 3], 2100
    X = _sparse_data(rng, n, sizes[0], np.float32)
    W = _net(rng, sizes, weights)
    b = [(0.1 * rng.standard_normal(d)).astype(weights) for d in sizes[1:]]
    b[1] = None
    tol = TOL[np.dtype(weights)] if weights == np.float64 else dict(rtol=1e-4, atol=1e-5)
    results = _per_path_and_threads(lambda: fastnn.biased_logits(X, W, b))
    np.testing.assert_array_equal(results["skip2"], results["skip"])
    np.testing.assert_array_equal(results["skip3"], results["skip"])
    np.testing.assert_allclose(results["skip"], results["dense"], **tol)
    np.testing.assert_allclose(results["skip"], results["numpy"], **tol)


def test_float32_data_under_float64_parameters():
    """hw0 under NumPy 2: float32 X, float64 weights; the compaction widens the values."""
    rng = np.random.default_rng(2)
    X = _sparse_data(rng, 120, 50, np.float32)
    y = rng.integers(0, 10, 120)
    W = _net(rng, [50, 30, 10], np.float64)
    out = {}
    for backend in ("cpp", "numpy"):
        with fastnn.use_backend(backend):
            mine = [w.copy() for w in W]
            fastnn.nn_epoch(X, y, *mine, lr=0.1, batch=25)
            out[backend] = mine
    assert out["cpp"][0].dtype == np.float64
    for a, b in zip(out["cpp"], out["numpy"]):
        np.testing.assert_allclose(a, b, **TOL[np.dtype(np.float64)])


def test_train_epoch_with_biases_adam_l2_and_a_shuffled_order(dtype):
    rng = np.random.default_rng(3)
    X = _sparse_data(rng, 150, 30, dtype)
    y = rng.integers(0, 4, 150)
    W = _net(rng, [30, 24, 4], dtype)
    b = [(0.1 * rng.standard_normal(s)).astype(dtype) for s in (24, 4)]
    order = rng.permutation(150)[:140]
    out = {}
    for name, backend, skip in (("skip", "cpp", True), ("dense", "cpp", False), ("numpy", "numpy", False)):
        fastnn.set_skip_zeros(skip)
        with fastnn.use_backend(backend):
            Wc, bc, opt = [w.copy() for w in W], [v.copy() for v in b], Adam()
            loss = fastnn.train_epoch(X, y, Wc, bc, optimizer=opt, lr=0.01, batch=32, order=order, alpha=1e-3)
            out[name] = (loss, Wc + bc + opt.buffers()[0] + opt.buffers()[1])
    for other in ("dense", "numpy"):
        assert out["skip"][0] == pytest.approx(out[other][0], rel=1e-5 if dtype == np.float32 else 1e-12)
        for a, c in zip(out["skip"][1], out[other][1]):
            if a is not None:
                np.testing.assert_allclose(a, c, **TOL[dtype])


def test_row_strided_view_and_momentum():
    """A view with a row stride (no copy) and SGD with momentum, against the dense kernels."""
    rng = np.random.default_rng(4)
    big = _sparse_data(rng, 100, 60, np.float32)
    X = big[:, 5:45]
    y = rng.integers(0, 10, 100)
    W = _net(rng, [40, 16, 10], np.float32)
    out = {}
    for skip in (True, False):
        fastnn.set_skip_zeros(skip)
        with fastnn.use_backend("cpp"):
            Wc, opt = [w.copy() for w in W], SGD(momentum=0.9, nesterov=True)
            fastnn.train_epoch(X, y, Wc, optimizer=opt, lr=0.05, batch=16)
            out[skip] = Wc
    for a, b in zip(out[True], out[False]):
        np.testing.assert_allclose(a, b, **TOL[np.dtype(np.float32)])


def test_nan_in_x_poisons_the_net_as_in_the_dense_epoch():
    """A NaN pixel makes its row's hidden units NaN (ReLU keeps NaN, as np.maximum does), hence
    the logits and every weight of the last layer, on both paths. (Rows of W_1 whose pixel is zero
    throughout may stay finite when skipping: 0 × NaN is never computed.)"""
    rng = np.random.default_rng(5)
    X = _sparse_data(rng, 40, 20, np.float32)
    X[7, 3] = np.nan
    y = rng.integers(0, 10, 40)
    W = _net(rng, [20, 12, 10], np.float32)
    for skip in (True, False):
        with fastnn.use_backend("cpp"):
            Wc = [w.copy() for w in W]
            _core_epoch(X, y, Wc, 0.1, 10, skip_zeros=skip)
        assert np.isnan(Wc[1]).all()
        assert np.isnan(Wc[0][3]).all()


# ---- threads --------------------------------------------------------------------------------------

@pytest.mark.parametrize("sizes,optimizer,kind", [([200, 64, 32, 10], None, "dense"), ([200, 37, 10], None, "dense"),
                                                   ([90, 48, 10], "momentum", "dense"), ([90, 40, 10], "adam", "dense"),
                                                   ([200, 64, 10], None, "csr"), ([90, 40, 10], "adam", "csr")])
def test_results_do_not_depend_on_the_thread_count(sizes, optimizer, kind):
    """Several threads split W_1 into column panels (one per thread; the last may be narrower than
    a cache line's worth) and the batch's rows elsewhere: every parameter and optimizer buffer,
    and the loss, must come out bit for bit as on one thread, for a dense X whose zeros are
    skipped and for SparseRows, in a shuffled order."""
    rng = np.random.default_rng(6)
    X = _sparse_data(rng, 437, sizes[0], np.float32)        # enough work to share: the threads really split it
    y = rng.integers(0, sizes[-1], 437)
    W = _net(rng, sizes, np.float32)
    order = rng.permutation(437)
    if kind == "csr":
        X = fastnn.SparseRows.from_dense(X)
    saved = saved_num_threads()
    out = {}
    try:
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            with fastnn.use_backend("cpp"):
                Wc = [w.copy() for w in W]
                opt = {None: SGD(), "momentum": SGD(momentum=0.9), "adam": Adam()}[optimizer]
                loss = fastnn.train_epoch(X, y, Wc, optimizer=opt, lr=0.05, batch=100, order=order)
                out[threads] = (loss, Wc + [b for b in (opt.buffers()[0] or []) + (opt.buffers()[1] or [])
                                            if b is not None])
    finally:
        fastnn.set_num_threads(saved)
    for threads in (2, 3):
        assert out[threads][0] == out[1][0]
        for a, b in zip(out[threads][1], out[1][1]):
            np.testing.assert_array_equal(a, b)


def test_a_batch_too_large_for_one_pass_is_counted_first():
    """A batch of more than 2**22 values (2000 rows x 2100 columns) is compacted in two passes, its
    rows counted first (the one pass reserves room for every value of the batch, up to that size):
    the same results as the dense kernels, and bit for bit the same on 1, 2 and 3 threads."""
    rng = np.random.default_rng(11)
    n, d = 2000, 2100
    X = _sparse_data(rng, n, d, np.float32, density=0.05)
    y = rng.integers(0, 10, n)
    W = _net(rng, [d, 64, 10], np.float32)   # (two column panels of W_1 on 2 threads)
    saved = saved_num_threads()
    out = {}
    try:
        for threads in (1, 2, 3):
            fastnn.set_num_threads(threads)
            mine = [w.copy() for w in W]
            _core_epoch(X, y, mine, 0.1, n, skip_zeros=True)
            out[threads] = mine
    finally:
        fastnn.set_num_threads(saved)
    dense = [w.copy() for w in W]
    _core_epoch(X, y, dense, 0.1, n, skip_zeros=False)
    for threads in (2, 3):
        for a, b in zip(out[threads], out[1]):
            np.testing.assert_array_equal(a, b)
    for a, b in zip(out[1], dense):
        np.testing.assert_allclose(a, b, **TOL[np.dtype(np.float32)])
    assert not np.array_equal(out[1][0], W[0])   # (the epoch did update W_1)


def test_mnist_epoch_agrees_with_the_dense_kernels(mnist_train):
    """The real workload: the first 3000 MNIST rows (19% nonzero), h = 100."""
    X, y = mnist_train
    X, y = X[:3000], y[:3000]
    rng = np.random.default_rng(7)
    W = _net(rng, [784, 100, 10], np.float32)
    assert cpp_backend._skips_zeros(X, 2)
    out = {}
    for skip in (True, False):
        fastnn.set_skip_zeros(skip)
        with fastnn.use_backend("cpp"):
            Wc = [w.copy() for w in W]
            fastnn.nn_epoch(X, y, *Wc, lr=0.1, batch=100)
            out[skip] = Wc
    for a, b in zip(out[True], out[False]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
