"""X in CSR form: `fastnn.SparseRows` (validation, conversions), `train_epoch` on it (equal to the
dense epoch on both backends and every ISA), and the estimators' automatic sparse first layer."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import SGD, Adam, SparseRows, sparse, train_epoch

TOL = {np.dtype(np.float32): dict(rtol=1e-5, atol=1e-6), np.dtype(np.float64): dict(rtol=1e-12, atol=1e-14)}


def _sparse_data(rng, n, d, dtype=np.float64, density=0.2):
    """A mostly-zero (n × d) matrix with an all-zero first row and an all-zero column."""
    X = rng.standard_normal((n, d)) * (rng.random((n, d)) < density)
    X[0] = 0
    X[:, d // 2] = 0
    return X.astype(dtype)


def _net(rng, sizes, dtype, with_biases=True):
    W = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    b = [(0.1 * rng.standard_normal(s)).astype(dtype) for s in sizes[1:]] if with_biases else None
    return W, b


def _copy(W, b):
    return [w.copy() for w in W], None if b is None else [v.copy() for v in b]


def _params(W, b):
    return W + ([] if b is None else b)


# ---- SparseRows: validation ---------------------------------------------------------------------

def _csr():
    """A valid 3 × 4 CSR: row 0 = [0, 1, 0, 2], row 1 empty, row 2 = [3, 0, 0, 4]."""
    return (np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 3, 0, 3], np.int32),
            np.array([0, 2, 2, 4], np.int64), (3, 4))


def test_valid_csr_attributes_and_dense_form():
    data, indices, indptr, shape = _csr()
    S = SparseRows(data, indices.astype(np.int64), indptr.astype(np.int32), shape)
    assert S.shape == (3, 4) and S.dtype == np.float64 and S.nnz == 4 and S.density == 4 / 12
    assert S.indices.dtype == np.int32 and S.indptr.dtype == np.int64
    assert not (S.data.flags.writeable or S.indices.flags.writeable or S.indptr.flags.writeable)
    np.testing.assert_array_equal(S.toarray(), [[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]])
    assert repr(S) == "SparseRows(shape=(3, 4), dtype=float64, nnz=4, density=0.333)"
    assert data.flags.writeable                     # the caller's array keeps its flags
    with pytest.raises(AttributeError):
        S.data = data
    # a repeated column adds up (as in scipy and the C++ core); a row may start below its predecessor
    R = SparseRows(np.array([1.0, 2.0, 5.0], np.float32), [2, 2, 0], [0, 2, 3], (2, 3))
    np.testing.assert_array_equal(R.toarray(), np.array([[0, 0, 3], [5, 0, 0]], np.float32))


def _bad(**change):
    data, indices, indptr, shape = _csr()
    args = dict(data=data, indices=indices, indptr=indptr, shape=shape)
    args.update(change)
    return args


BAD = [
    ("data-int", _bad(data=np.array([1, 2, 3, 4])), TypeError, r"data: expected dtype float32 or float64, got int64"),
    ("data-float16", _bad(data=np.ones(4, np.float16)), TypeError, r"data: expected dtype float32 or float64, got float16"),
    ("data-big-endian", _bad(data=np.ones(4, ">f8")), TypeError, r"data: expected dtype float32 or float64, got >f8"),
    ("data-masked", _bad(data=np.ma.masked_array(np.ones(4))), TypeError, r"data: expected a plain numpy.ndarray"),
    ("data-2d", _bad(data=np.ones((4, 1))), ValueError, r"data: expected a 1-D array, got 2-D with shape \(4, 1\)"),
    ("indices-float", _bad(indices=np.array([1.0, 3, 0, 3])), TypeError, r"indices: expected an integer dtype, got float64"),
    ("indptr-bool", _bad(indptr=np.array([0, 1, 1, 1], bool)), TypeError, r"indptr: expected an integer dtype, got bool"),
    ("indices-length", _bad(indices=np.array([1, 3, 0], np.int32)), ValueError,
     r"indices: expected 4 entries \(one per value in data\), got 3"),
    ("indptr-length", _bad(indptr=np.array([0, 2, 4])), ValueError, r"indptr: expected 4 entries \(rows \+ 1\), got 3"),
    ("indptr-start", _bad(indptr=np.array([1, 2, 2, 4])), ValueError, r"indptr: expected offsets from 0 to 4 .*got 1 … 4"),
    ("indptr-end", _bad(indptr=np.array([0, 2, 2, 3])), ValueError, r"indptr: expected offsets from 0 to 4 .*got 0 … 3"),
    ("indptr-decreasing", _bad(indptr=np.array([0, 3, 1, 4])), ValueError,
     r"indptr: expected non-decreasing offsets, got 3 then 1 at row 1"),
    ("indptr-beyond-nnz", _bad(indptr=np.array([0, 9, 2, 4])), ValueError, r"indptr: expected offsets in \[0, 5\)"),
    ("index-too-large", _bad(indices=np.array([1, 4, 0, 3])), ValueError,
     r"indices: expected column indices in \[0, 4\), got values in \[0, 4\]"),
    ("index-negative", _bad(indices=np.array([1, 3, -1, 3])), ValueError,
     r"indices: expected column indices in \[0, 4\), got values in \[-1, 3\]"),
    ("index-beyond-int64", _bad(indices=np.array([1, 3, 0, 2**63], np.uint64)), ValueError,
     r"indices: expected column indices in \[0, 4\)"),
    ("unsorted", _bad(indices=np.array([1, 3, 3, 0])), ValueError,
     r"indices: expected sorted column indices within each row, got 3 then 0 in row 2"),
    ("shape-1d", _bad(shape=(3,)), TypeError, r"shape: expected a pair of integers"),
    ("shape-float", _bad(shape=(3.0, 4)), TypeError, r"shape: expected a pair of integers"),
    ("shape-negative", _bad(shape=(-1, 4)), ValueError, r"shape: expected rows >= 0"),
    ("shape-too-wide", _bad(shape=(3, 2**31)), ValueError, r"cols <= 2\*\*31 - 1"),
]


@pytest.mark.parametrize("args,exc,match", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_sparse_rows_validation(args, exc, match):
    before = {k: (a.copy(), a.flags.writeable) for k, a in args.items() if isinstance(a, np.ndarray)}
    with pytest.raises(exc, match=match):
        SparseRows(**args)
    for k, (copy, writeable) in before.items():   # nothing modified, no flag changed
        assert np.array_equal(args[k], copy) and args[k].flags.writeable == writeable


def test_sparse_rows_shares_memory_only_when_it_fits():
    data, indices, indptr, shape = _csr()
    S = SparseRows(data, indices, indptr, shape)
    assert np.shares_memory(S.data, data) and np.shares_memory(S.indices, indices)
    T = SparseRows(np.repeat(data, 2)[::2], indices.astype(np.int64), indptr, shape)   # strided, int64
    assert T.data.flags.c_contiguous and not np.shares_memory(T.indices, indices)
    np.testing.assert_array_equal(T.toarray(), S.toarray())


# ---- conversions --------------------------------------------------------------------------------

@pytest.fixture(params=["core", "numpy"])
def conversion(request, monkeypatch):
    """from_dense through the C++ core, and through its NumPy fallback (as without the core)."""
    if request.param == "numpy":
        monkeypatch.setattr(sparse, "_core", None)
    elif sparse._core is None:
        pytest.skip("the C++ core is not built")
    return request.param


@pytest.mark.parametrize("target", [np.float32, np.float64], ids=["float32", "widened-to-float64"])
@pytest.mark.parametrize("width", [1, 7, 8, 9, 16, 17, 31, 784])
def test_from_dense_finds_the_same_nonzeros_on_every_isa(isa, width, target):
    """The compaction of float32 rows (AVX-512: compress; AVX2: a looked-up permutation of 8 lanes;
    generic: scalar), values kept or widened to float64, against NumPy's nonzero, for every lane
    pattern at once: every mask of 8 lanes appears, with -0.0 (a zero), NaN and ±inf (nonzeros),
    empty and full rows, and widths around the vector widths."""
    rng = np.random.default_rng(width)
    n = 300
    X = (rng.standard_normal((n, width)) * (rng.random((n, width)) < 0.4)).astype(np.float32)
    masks = np.arange(256, dtype=np.uint8)                # every 8-lane pattern, row by row
    bits = np.unpackbits(masks[:, None], axis=1, bitorder="little")[: n, : min(8, width)]
    X[: len(bits), : bits.shape[1]] = np.where(bits == 1, 2.5, 0.0)
    X[256 % n] = -0.0
    X[257 % n] = np.float32(3.0)
    X[258 % n, :: 3] = np.nan
    X[259 % n, 1::4] = -np.inf
    X[260 % n, :] = 0.0
    X[261 % n, :: 2] = -0.0
    S = SparseRows.from_dense(X, target)
    rows, cols = np.nonzero(X)                           # NaN counts as nonzero, ±0 does not
    assert S.nnz == len(cols) and S.dtype == target
    np.testing.assert_array_equal(S.indptr, np.concatenate([[0], np.cumsum(np.count_nonzero(X, axis=1))]))
    np.testing.assert_array_equal(S.indices, cols)
    np.testing.assert_array_equal(S.data, X[rows, cols].astype(target))   # (NaN positions equal too)


@pytest.mark.parametrize("target", [None, np.float32, np.float64], ids=["same", "to-float32", "to-float64"])
def test_from_dense_round_trip(conversion, dtype, target):
    rng = np.random.default_rng(4)
    X = _sparse_data(rng, 37, 29, dtype)
    X[5, 3], X[6, 28], X[-1] = np.nan, -np.inf, 0        # NaN and Inf kept; last row empty
    X[7, :] = 1.5                                         # a full row
    S = SparseRows.from_dense(X, target)
    out = np.dtype(target or dtype)
    assert S.dtype == out and S.shape == X.shape and S.nnz == np.count_nonzero(X)
    np.testing.assert_array_equal(S.toarray(), X.astype(out))          # NaN positions equal too
    assert S.indptr[0] == 0 and S.indptr[1] == 0 and S.indptr[-1] == S.indptr[-2] == S.nnz
    assert all(np.all(np.diff(S.indices[a:b]) > 0) for a, b in zip(S.indptr[:-1], S.indptr[1:]))
    R = SparseRows(S.data, S.indices, S.indptr, S.shape)                 # passes the full checks
    np.testing.assert_array_equal(R.toarray(), S.toarray())


def test_from_dense_core_and_numpy_agree(dtype, monkeypatch):
    if sparse._core is None:
        pytest.skip("the C++ core is not built")
    X = _sparse_data(np.random.default_rng(1), 64, 300, dtype)
    F = np.asfortranarray(X)
    a = SparseRows.from_dense(F)
    monkeypatch.setattr(sparse, "_core", None)
    b = SparseRows.from_dense(X[::1, :])
    for name in ("data", "indices", "indptr"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
        assert getattr(a, name).dtype == getattr(b, name).dtype


def test_from_dense_max_density(conversion):
    X = np.zeros((4, 5))
    X[:2] = 1.0                                   # 10 of 20 nonzero: density 0.5
    assert SparseRows.from_dense(X, max_density=0.5).nnz == 10
    assert SparseRows.from_dense(X, max_density=0.49) is None
    assert SparseRows.from_dense(np.ones((3, 3)), max_density=0.99) is None
    Z = SparseRows.from_dense(np.zeros((3, 2), np.float32), max_density=0.0)
    assert Z.nnz == 0 and Z.density == 0 and Z.toarray().shape == (3, 2)
    with pytest.raises(ValueError, match="max_density: expected a finite number >= 0"):
        SparseRows.from_dense(X, max_density=-1)
    with pytest.raises(TypeError, match="dtype: expected float32 or float64, got int32"):
        SparseRows.from_dense(X, dtype=np.int32)
    with pytest.raises(TypeError, match="X: expected dtype float32 or float64, got int64"):
        SparseRows.from_dense(np.ones((2, 2), np.int64))


def test_rows_gathers_dense_rows():
    X = _sparse_data(np.random.default_rng(2), 20, 9)
    S = SparseRows.from_dense(X)
    for idx in (np.array([3, 0, 19, 3, 7]), slice(4, 11), slice(None, None, -3), np.array([-1, 0])):
        np.testing.assert_array_equal(S.rows(idx), X[idx])
    assert S.rows(np.array([], np.int64)).shape == (0, 9)


def test_from_scipy():
    sp = pytest.importorskip("scipy.sparse")
    dense = np.array([[0, 2.0, 0, 1], [0, 0, 0, 0], [3, 0, 4, 0]])
    coo = sp.coo_matrix(([1.0, 1.0, 3.0, 4.0, 1.0], ([0, 0, 2, 2, 0], [3, 1, 0, 2, 1])), shape=(3, 4))
    assert np.array_equal(coo.toarray(), dense)                        # duplicates (0, 1) sum to 2
    for m in (coo, sp.csc_matrix(dense), sp.csr_array(dense), sp.lil_matrix(dense)):
        S = SparseRows.from_scipy(m)
        np.testing.assert_array_equal(S.toarray(), dense)
        assert S.nnz == 4
    # unsorted indices in a CSR: sorted on a copy, the caller's matrix is left as it was
    m = sp.csr_matrix((np.array([1.0, 2.0, 4.0, 3.0]), np.array([3, 1, 2, 0]), np.array([0, 2, 2, 4])), shape=(3, 4))
    before = m.indices.copy()
    S = SparseRows.from_scipy(m)
    assert np.array_equal(m.indices, before)
    np.testing.assert_array_equal(S.toarray(), dense)
    with pytest.raises(TypeError, match="data: expected dtype float32 or float64, got int64"):
        SparseRows.from_scipy(sp.csr_matrix(np.eye(3, dtype=np.int64)))
    with pytest.raises(TypeError, match="m: expected a scipy.sparse matrix"):
        SparseRows.from_scipy(dense)


# ---- train_epoch on SparseRows ------------------------------------------------------------------

OPTIMIZERS = {"adam": lambda: Adam(), "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
              "momentum": lambda: SGD(momentum=0.5)}
SIZES = [[30, 4], [30, 1, 4], [30, 7, 4], [30, 129, 3], [30, 17, 100, 4]]


def _epochs(X, y, W, b, optimizer, order, epochs=2, **kw):
    """`epochs` epochs on a copy of (W, b); returns (losses, parameters)."""
    W, b = _copy(W, b)
    losses = [train_epoch(X, y, W, b, optimizer, order=order, **kw) for _ in range(epochs)]
    return losses, _params(W, b)


def _assert_close(got, expected, dtype, scale=1.0):
    (losses, params), (ref_losses, ref_params) = got, expected
    tol = TOL[np.dtype(dtype)]
    np.testing.assert_allclose(losses, ref_losses, rtol=tol["rtol"] * scale)
    for P, Q in zip(params, ref_params):
        assert P.dtype == Q.dtype
        np.testing.assert_allclose(P, Q, rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)


def _epochs_per_setting(tuning, settings, threads, X, y, W, b, optimizer, order, **kw):
    """{(setting, "csr" | "dense"): _epochs(...)} on the cpp backend and `threads` threads, with the
    internal `tuning` (a _core setter that returns the previous setting) at each of `settings` in
    turn; the thread count and the setting are restored afterwards."""
    from conftest import saved_num_threads
    saved, previous = saved_num_threads(), tuning()
    runs = {}
    try:
        fastnn.set_num_threads(threads)
        with fastnn.use_backend("cpp"):
            for setting in settings:
                tuning(setting)
                for name, data in (("csr", SparseRows.from_dense(X)), ("dense", X)):
                    runs[setting, name] = _epochs(data, y, W, b, optimizer(), order, **kw)
    finally:
        tuning(previous)
        fastnn.set_num_threads(saved)
    return runs


def _assert_runs_bitwise_equal(runs, reference, W):
    """Every run trained (W_1 moved) and gave the reference run's losses and parameters, bit for bit."""
    losses, params = runs[reference]
    assert not np.array_equal(params[0], W[0])
    for key, (other_losses, other_params) in runs.items():
        assert other_losses == losses, key
        for P, Q in zip(other_params, params):
            np.testing.assert_array_equal(P, Q, err_msg=str(key))


@pytest.mark.parametrize("sizes", SIZES, ids=["-".join(map(str, s)) for s in SIZES])
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
@pytest.mark.parametrize("biases", [True, False], ids=["biases", "no-biases"])
@pytest.mark.parametrize("ordered", [False, True], ids=["data-order", "order"])
def test_sparse_epoch_equals_dense_epoch(backend, dtype, sizes, opt, biases, ordered):
    rng = np.random.default_rng(len(sizes) * 100 + sizes[1])
    n = 61                                                # batch 13 leaves a last batch of 9 (or 5)
    X = _sparse_data(rng, n, sizes[0], dtype)
    y = rng.integers(0, sizes[-1], n)
    W, b = _net(rng, sizes, dtype, biases)
    order = np.concatenate([rng.permutation(n), rng.integers(0, n, 5)])[:57] if ordered else None
    kw = dict(lr=0.002 if opt == "adam" else 0.05, batch=13, alpha=1e-3)
    S = SparseRows.from_dense(X)
    got = _epochs(S, y, W, b, OPTIMIZERS[opt](), order, **kw)
    _assert_close(got, _epochs(X, y, W, b, OPTIMIZERS[opt](), order, **kw), dtype)


@pytest.mark.parametrize("sizes", SIZES, ids=["-".join(map(str, s)) for s in SIZES])
def test_backends_agree_on_sparse_input(dtype, sizes):
    rng = np.random.default_rng(7)
    X = _sparse_data(rng, 50, sizes[0], dtype)
    y = rng.integers(0, sizes[-1], 50)
    W, b = _net(rng, sizes, dtype)
    S, order = SparseRows.from_dense(X), rng.permutation(50)
    runs = {}
    for name in ("numpy", "cpp"):
        with fastnn.use_backend(name):
            runs[name] = _epochs(S, y, W, b, Adam(), order, lr=0.002, batch=16, alpha=1e-4)
    _assert_close(runs["cpp"], runs["numpy"], dtype)


def test_mixed_dtype_float32_rows_float64_parameters(backend):
    """float32 SparseRows under float64 parameters compute in float64, like float32 dense X."""
    rng = np.random.default_rng(3)
    X = _sparse_data(rng, 40, 25, np.float32)
    y = rng.integers(0, 3, 40)
    W, b = _net(rng, [25, 9, 3], np.float64)
    S = SparseRows.from_dense(X)
    data_before = S.data.copy()
    got = _epochs(S, y, W, b, SGD(momentum=0.9), None, lr=0.1, batch=8)
    _assert_close(got, _epochs(X, y, W, b, SGD(momentum=0.9), None, lr=0.1, batch=8), np.float64)
    assert all(P.dtype == np.float64 for P in got[1])
    assert S.dtype == np.float32 and np.array_equal(S.data, data_before)
    # float64 rows under float32 parameters: float64 arithmetic, parameters stay float32 (as dense)
    S64 = SparseRows.from_dense(X.astype(np.float64))
    W32, b32 = [w.astype(np.float32) for w in W], [v.astype(np.float32) for v in b]
    got = _epochs(S64, y, W32, b32, SGD(), None, lr=0.1, batch=8)
    _assert_close(got, _epochs(X.astype(np.float64), y, W32, b32, SGD(), None, lr=0.1, batch=8), np.float32)
    assert all(P.dtype == np.float32 for P in got[1])


def test_scipy_input_to_train_epoch(backend):
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(8)
    X = _sparse_data(rng, 30, 12)
    y = rng.integers(0, 3, 30)
    W, b = _net(rng, [12, 5, 3], np.float64)
    _assert_close(_epochs(sp.coo_matrix(X), y, W, b, Adam(), None, lr=0.01, batch=7),
                  _epochs(X, y, W, b, Adam(), None, lr=0.01, batch=7), np.float64)


def test_train_epoch_validates_sparse_input_before_modifying(backend):
    rng = np.random.default_rng(0)
    X = _sparse_data(rng, 10, 6)
    S = SparseRows.from_dense(X)
    y = rng.integers(0, 3, 10)
    W, b = _net(rng, [6, 4, 3], np.float64)
    saved = [p.copy() for p in _params(W, b)]
    with pytest.raises(ValueError, match=r"weights\[0\]: expected 6 rows \(X has 6 columns\), got shape \(5, 4\)"):
        train_epoch(S, y, [W[0][:5], W[1]], b, Adam())
    with pytest.raises(ValueError, match=r"y: expected 10 labels"):
        train_epoch(S, y[:9], W, b, Adam())
    with pytest.raises(ValueError, match=r"order: expected row indices in \[0, 10\)"):
        train_epoch(S, y, W, b, Adam(), order=[0, 10])
    with pytest.raises(ValueError, match=r"X: expected a non-empty matrix, got shape \(0, 6\)"):
        train_epoch(SparseRows(np.zeros(0), np.zeros(0, int), [0], (0, 6)), y[:0], W, b, Adam())
    with pytest.raises(ValueError, match=r"X: expected a non-empty matrix, got shape \(2, 0\)"):
        train_epoch(SparseRows(np.zeros(0), np.zeros(0, int), [0, 0, 0], (2, 0)), y[:2], W, b, Adam())
    # a parameter stored in the memory of the values: refused (the update would change X)
    W0 = W[0].copy()
    S_in_W = SparseRows(W0.ravel()[:S.nnz], S.indices, S.indptr, S.shape)
    with pytest.raises(ValueError, match=r"X.data and weights\[0\]: expected separate arrays"):
        train_epoch(S_in_W, y, [W0, W[1]], b, Adam())
    for P, Q in zip(_params(W, b), saved):
        assert np.array_equal(P, Q)


@pytest.mark.parametrize("sizes", [[300, 64, 5], [300, 5]], ids=["hidden", "softmax"])
def test_sparse_epoch_thread_count(dtype, sizes):
    """On the cpp backend the sparse epoch is bitwise reproducible, and the thread count changes
    nothing: every row of the sparse products is summed by one thread, in a fixed order."""
    if "cpp" not in fastnn.available_backends():
        pytest.skip("the C++ core is not built")
    rng = np.random.default_rng(9)
    # large enough that the sparse products and the update really run on several threads
    X = _sparse_data(rng, 600, 300, dtype, density=0.3)
    y = rng.integers(0, 5, 600)
    W, b = _net(rng, sizes, dtype)
    S = SparseRows.from_dense(X)
    threads = fastnn.get_num_threads()
    runs = {}
    try:
        with fastnn.use_backend("cpp"):
            for count in (1, 2, 2, 3):
                fastnn.set_num_threads(count)
                runs.setdefault(count, []).append(_epochs(S, y, W, b, Adam(), None, lr=0.002, batch=128))
    finally:
        fastnn.set_num_threads(threads)
    (l2a, p2a), (l2b, p2b) = runs[2]
    assert l2a == l2b and all(np.array_equal(P, Q) for P, Q in zip(p2a, p2b))
    for count in (1, 3):
        loss, params = runs[count][0]
        assert loss == l2a and all(np.array_equal(P, Q) for P, Q in zip(params, p2a))


# ---- every ISA's sparse kernels -----------------------------------------------------------------

ISA_SIZES = [[784, 10], [37, 3], [50, 129, 10], [33, 17, 5, 2], [64, 100, 7]]


@pytest.mark.parametrize("sizes", ISA_SIZES, ids=["-".join(map(str, s)) for s in ISA_SIZES])
def test_sparse_epoch_agrees_with_numpy_on_every_isa(isa, dtype, sizes):
    rng = np.random.default_rng(sum(sizes))
    n = 71
    X = _sparse_data(rng, n, sizes[0], dtype)
    y = rng.integers(0, sizes[-1], n)
    W, b = _net(rng, sizes, dtype)
    S = SparseRows.from_dense(X)
    order = rng.permutation(n)
    with fastnn.use_backend("numpy"):
        expected = _epochs(X, y, W, b, SGD(momentum=0.9, nesterov=True), order, lr=0.05, batch=16, alpha=1e-3)
    with fastnn.use_backend("cpp"):
        got = _epochs(S, y, W, b, SGD(momentum=0.9, nesterov=True), order, lr=0.05, batch=16, alpha=1e-3)
    _assert_close(got, expected, dtype)


# Nets whose first layer takes the blocked rows kernel by default (W_1 past 160 KB, more than 128
# features) or not; widths with and without a tail vector on each ISA; a row group of 128 rows
# and a short one after it (batch 150).
BLOCKED_SIZES = [[784, 100, 10], [300, 150, 10], [300, 64, 20, 4], [200, 3, 5]]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("sizes", BLOCKED_SIZES, ids=["-".join(map(str, s)) for s in BLOCKED_SIZES])
def test_blocked_rows_kernel_gives_the_same_bits_as_row_by_row(isa, dtype, sizes, threads):
    """sparse_times_dense's blocked kernel (W_1 taken a block of rows at a time, partial sums kept
    in the output) adds the same terms in the same order as the row-by-row one: the epochs, on
    CSR input and on a dense X whose zeros are skipped, come out bit for bit the same either way."""
    from fastnn import _core
    rng = np.random.default_rng(sum(sizes) + threads)
    n = 320
    X = _sparse_data(rng, n, sizes[0], dtype)
    y = rng.integers(0, sizes[-1], n)
    W, b = _net(rng, sizes, dtype)
    order = rng.permutation(n)
    runs = _epochs_per_setting(_core._sparse_tuning, (1, -1, 0), threads, X, y, W, b,
                               lambda: SGD(momentum=0.9), order, lr=0.05, batch=150)
    _assert_runs_bitwise_equal(runs, (1, "csr"), W)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("sizes", [[300, 400, 10], [120, 272, 9, 3]], ids=["300-400-10", "120-272-9-3"])
def test_gather_passes_give_the_same_bits(isa, dtype, sizes, threads):
    """The first layer's gradient gathers each row of ∇W_1 from the batch's rows of G_1 in passes of
    a few vectors of columns (as many as the L1 data cache holds for the batch, by default): rows of
    400 or 272 values take several passes on every ISA. Each column's sum is the same chain of terms
    whatever the passes, so forced passes of 1 … 9 vectors and the default give the same bits -- on
    2 threads on column panels too."""
    from fastnn import _core
    rng = np.random.default_rng(sum(sizes) + threads)
    n = 320
    X = _sparse_data(rng, n, sizes[0], dtype)
    y = rng.integers(0, sizes[-1], n)
    W, b = _net(rng, sizes, dtype, with_biases=False)
    order = rng.permutation(n)
    runs = _epochs_per_setting(_core._gather_pass_tuning, (0, 1, 2, 3, 5, 7, 9), threads, X, y, W, b, SGD, order,
                               lr=0.05, batch=100)
    _assert_runs_bitwise_equal(runs, (0, "csr"), W)


def test_gather_pass_setting_is_checked():
    from fastnn import _core
    previous = _core._gather_pass_tuning()
    for bad in (-1, 65):
        with pytest.raises(ValueError, match=f"vectors must be 0 \\(automatic\\) or 1 ... 64, got {bad}"):
            _core._gather_pass_tuning(bad)
    assert _core._gather_pass_tuning() == previous == 0


def test_sparse_tuning_setting_is_checked():
    from fastnn import _core
    previous = _core._sparse_tuning()
    with pytest.raises(ValueError, match="blocked must be -1, 0 or 1, got 2"):
        _core._sparse_tuning(2)
    assert _core._sparse_tuning() == previous == 0


# ---- the estimators' sparse first layer ---------------------------------------------------------

@pytest.fixture
def spy(monkeypatch):
    """Records the type of X that each train_epoch call of the estimators receives."""
    from fastnn import api
    seen, real = [], api.train_epoch

    def recording(X, *args, **kw):
        seen.append(type(X).__name__)
        return real(X, *args, **kw)

    monkeypatch.setattr(api, "train_epoch", recording)
    return seen


@pytest.mark.parametrize("params", [
    dict(hidden_layer_sizes=(17, 7)),
    dict(hidden_layer_sizes=(100,), solver="sgd", learning_rate_init=0.05, early_stopping=True),
    dict(hidden_layer_sizes=()),
], ids=["adam-two-hidden", "sgd-early-stopping", "no-hidden"])
def test_estimator_sparse_path_matches_dense_path(spy, dtype, params):
    pytest.importorskip("sklearn")
    from fastnn.estimators import MLPClassifier
    if "cpp" not in fastnn.available_backends():
        pytest.skip("the C++ core is not built")
    rng = np.random.default_rng(5)
    X = _sparse_data(rng, 300, 40, dtype)
    y = rng.integers(0, 4, 300)
    fits = []
    for max_density in (MLPClassifier._sparse_max_density, None):
        clf = MLPClassifier(max_iter=4, random_state=0, backend="cpp", **params)
        clf._sparse_max_density = max_density
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(clf.fit(X, y).partial_fit(X, y) if not params.get("early_stopping") else clf.fit(X, y))
    epochs = len(fits[0].loss_curve_)   # (n_iter_ counts the last call only, as scikit-learn)
    assert spy == ["SparseRows"] * epochs + ["ndarray"] * epochs
    a, c = fits
    np.testing.assert_allclose(a.loss_curve_, c.loss_curve_, rtol=1e-4)
    for P, Q in zip(a.coefs_ + a.intercepts_, c.coefs_ + c.intercepts_):
        assert P.dtype == dtype
        np.testing.assert_allclose(P, Q, rtol=1e-4, atol=1e-5)


def test_estimator_stays_dense_for_dense_data_and_numpy_backend(spy):
    pytest.importorskip("sklearn")
    from fastnn.estimators import SoftmaxRegression
    rng = np.random.default_rng(6)
    X_sparse, y = _sparse_data(rng, 100, 8), rng.integers(0, 3, 100)
    X_dense = rng.standard_normal((100, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        SoftmaxRegression(max_iter=2, backend="numpy").fit(X_sparse, y)
        if "cpp" in fastnn.available_backends():
            SoftmaxRegression(max_iter=2, backend="cpp").fit(X_dense, y)
    assert set(spy) == {"ndarray"}
