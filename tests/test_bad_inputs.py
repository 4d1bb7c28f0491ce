"""The bad-input matrix: every public function × every kind of bad or unusual argument, on both
backends.

Each row states its expected outcome:
  * Raise(exc, regex): that exception type, with a message naming the argument, and every
    parameter bitwise unchanged (validation happens before any update);
  * Same(...): a documented result -- the call succeeds and gives what the clean call gives
    (results and updated parameters), e.g. a Fortran-ordered or unaligned array;
  * Unchanged(): succeeds and leaves the parameters bitwise unchanged (lr = 0);
  * NonFinite(): succeeds, and the NaN/Inf propagates into the result or the parameters
    (fastnn does not scan for NaN/Inf: docs/reliability.md).

Crash-proofing: `test_no_row_crashes_the_interpreter` first runs every row in a child
interpreter. A row that kills the child (segfault, abort, sanitizer report) fails there, and
its in-process test is failed without running it, so a crash never takes pytest down.

"Huge" rows use zero-copy views (np.broadcast_to: read-only, stride 0) whose byte size
overflows 32 bits; they must fail validation before anything large is allocated (checked with
tracemalloc, which sees NumPy's allocations).
"""
import dataclasses
import decimal
import fractions
import os
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import fastnn

pytestmark = [pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),   # np.matrix
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]             # NaN/Inf arithmetic

N, D, H, K = 12, 5, 4, 3          # rows, features, hidden units, classes
BIG = 2**31 + 3                   # a dimension whose byte size overflows 32 bits


# --- the clean calls ------------------------------------------------------------------------
def _clean_arrays():
    rng = np.random.default_rng(7)
    return dict(
        X=rng.standard_normal((N, D)),
        y=rng.integers(0, K, N),
        Z=3 * rng.standard_normal((N, K)),
        W=[0.5 * rng.standard_normal(s) for s in [(D, H), (H, H), (H, K)]],
        theta=0.5 * rng.standard_normal((D, K)),
    )


@dataclasses.dataclass
class Spec:
    make: object          # arrays -> kwargs of a clean call
    roles: dict           # argument path -> role: data, param, labels, lr, batch, weights
    params: tuple = ()    # paths of the arrays updated in place


SPECS = {
    "matmul": Spec(lambda a: dict(A=a["X"], B=a["W"][0]), {"A": "data", "B": "data"}),
    "relu": Spec(lambda a: dict(Z=a["Z"]), {"Z": "data"}),
    "softmax_loss": Spec(lambda a: dict(Z=a["Z"], y=a["y"]), {"Z": "data", "y": "labels"}),
    "softmax_cross_entropy": Spec(lambda a: dict(Z=a["Z"], y=a["y"]), {"Z": "data", "y": "labels"}),
    "loss_err": Spec(lambda a: dict(h=a["Z"], y=a["y"]), {"h": "data", "y": "labels"}),
    "softmax_regression_epoch": Spec(
        lambda a: dict(X=a["X"], y=a["y"], theta=a["theta"], lr=0.3, batch=5),
        {"X": "data", "y": "labels", "theta": "param", "lr": "lr", "batch": "batch"}, ("theta",)),
    "nn_epoch": Spec(
        lambda a: dict(X=a["X"], y=a["y"], W1=a["W"][0], W2=a["W"][2], lr=0.3, batch=5),
        {"X": "data", "y": "labels", "W1": "param", "W2": "param", "lr": "lr", "batch": "batch"},
        ("W1", "W2")),
    "mlp_epoch": Spec(
        lambda a: dict(X=a["X"], y=a["y"], weights=list(a["W"]), lr=0.3, batch=5),
        {"X": "data", "y": "labels", "weights": "weights", "weights[0]": "param", "weights[2]": "param",
         "lr": "lr", "batch": "batch"}, ("weights[0]", "weights[1]", "weights[2]")),
    "mlp_loss_grad": Spec(lambda a: dict(X=a["X"], y=a["y"], weights=list(a["W"])),
                          {"X": "data", "y": "labels", "weights": "weights", "weights[0]": "data",
                           "weights[2]": "data"}),
    "mlp_logits": Spec(lambda a: dict(X=a["X"], weights=list(a["W"])),
                       {"X": "data", "weights": "weights", "weights[0]": "data", "weights[2]": "data"}),
    "predict": Spec(lambda a: dict(X=a["X"], weights=list(a["W"])),
                    {"X": "data", "weights": "weights", "weights[0]": "data", "weights[2]": "data"}),
    "evaluate": Spec(lambda a: dict(X=a["X"], y=a["y"], weights=list(a["W"])),
                     {"X": "data", "y": "labels", "weights": "weights", "weights[0]": "data",
                      "weights[2]": "data"}),
}


def _get(kwargs, path):
    m = re.fullmatch(r"(\w+)\[(\d+)\]", path)
    return kwargs[m[1]][int(m[2])] if m else kwargs[path]


def _set(kwargs, path, value):
    m = re.fullmatch(r"(\w+)\[(\d+)\]", path)
    if m:
        kwargs[m[1]] = list(kwargs[m[1]])
        kwargs[m[1]][int(m[2])] = value
    else:
        kwargs[path] = value


# --- expectations ---------------------------------------------------------------------------
@dataclasses.dataclass
class Raise:
    exc: type
    pattern: str


@dataclasses.dataclass
class Same:
    reference: dict = dataclasses.field(default_factory=dict)   # changes to the clean call


class Unchanged:
    pass


@dataclasses.dataclass
class NonFinite:
    must_propagate: bool = True   # NaN must reach the output; ±Inf may vanish legitimately (ReLU, exp(-inf))


# Functions with a backward pass: there the backends' NaN footprints differ (the C++ ReLU
# backward selects, 1{h>0} ? g : 0, where the NumPy reference multiplies, g * 1{h>0}, and
# NaN * 0 = NaN), so only "NaN reaches the outputs" is required of them.
BACKWARD = {"softmax_regression_epoch", "nn_epoch", "mlp_epoch", "mlp_loss_grad"}


# --- value transforms -----------------------------------------------------------------------
def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def _strided(a):
    big = np.full((a.shape[0], 2 * a.shape[1]), -7.0, dtype=a.dtype)
    big[:, ::2] = a
    return big[:, ::2]


def _negative_strides(a):
    return np.array(a[::-1, ::-1])[::-1, ::-1]


def _unaligned(a):
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + a.itemsize, dtype=np.uint8)
    u = np.frombuffer(buf.data, dtype=a.dtype, offset=1, count=a.size).reshape(a.shape)
    u[...] = a
    assert not u.flags.aligned
    return u


def _with(a, index, value):
    a = np.array(a)
    a[index] = value
    return a


def _ragged(a):
    rows = a.tolist()
    rows[-1] = rows[-1][:-1]
    return rows


# (id, transform, expectation(path) -> Raise/Same/...)
MATRIX_MUTATIONS = [
    ("int32", lambda a: a.astype(np.int32), "dtype"),
    ("int64", lambda a: a.astype(np.int64), "dtype"),
    ("float16", lambda a: a.astype(np.float16), "dtype"),
    ("bool", lambda a: a > 0, "dtype"),
    ("object", lambda a: a.astype(object), "dtype"),
    ("complex", lambda a: a.astype(np.complex128), "dtype"),
    ("big-endian", lambda a: a.astype(">f8"), "dtype"),
    ("strings", lambda a: a.astype(str), "dtype"),
    ("1-D", lambda a: a.ravel(), "ndim"),
    ("3-D", lambda a: a[None], "ndim"),
    ("0-D", lambda a: np.array(1.5), "ndim"),
    ("scalar", lambda a: 1.5, "scalar"),
    ("no-rows", lambda a: a[:0], "empty"),
    ("no-columns", lambda a: a[:, :0], "empty"),
    ("masked", lambda a: np.ma.masked_array(a, mask=a > 1), "masked"),
    ("fortran", np.asfortranarray, "same"),
    ("strided", _strided, "same"),
    ("negative-strides", _negative_strides, "same"),
    ("unaligned", _unaligned, "same"),
    ("np.matrix", np.asmatrix, "same"),
    ("read-only", _read_only, "read-only"),
    ("broadcast", lambda a: np.broadcast_to(a, a.shape), "read-only"),
    ("list", lambda a: a.tolist(), "list"),
    ("ragged-list", _ragged, "ragged"),
    ("nan", lambda a: _with(a, (0, 0), np.nan), "nan"),
    ("inf", lambda a: _with(a, (0, 0), np.inf), "inf"),
    ("-inf", lambda a: _with(a, (0, 0), -np.inf), "inf"),
]


def _matrix_expectation(kind, role, name):
    n = re.escape(name)
    if kind == "dtype":
        return Raise(TypeError, rf"^{n}: expected dtype float32 or float64")
    if kind == "ndim":
        return Raise(ValueError, rf"^{n}: expected a 2-D array, got \d-D")
    if kind == "empty":
        return Raise(ValueError, rf"^{n}: expected a non-empty array")
    if kind == "masked":
        return Raise(TypeError, rf"^{n}: expected a plain numpy.ndarray, got a masked array")
    if kind == "same":
        return Same()
    if kind == "scalar":
        if role == "param":
            return Raise(TypeError, rf"^{n}: expected a numpy.ndarray \(updated in place\), got float")
        return Raise(ValueError, rf"^{n}: expected a 2-D array, got 0-D")
    if kind in ("nan", "inf"):
        return NonFinite(must_propagate=kind == "nan")
    if role == "param":
        if kind == "read-only":
            return Raise(ValueError, rf"^{n}: expected a writeable array")
        return Raise(TypeError, rf"^{n}: expected a numpy.ndarray \(updated in place\), got list")
    if kind == "ragged":
        return Raise(TypeError, rf"^{n}: expected a 2-D float32 or float64 array, got list")
    return Same()     # read-only and list inputs are fine for data


LABEL_MUTATIONS = [
    ("negative", lambda y: _with(y, 3, -1), Raise(ValueError, r"^y: expected labels in \[0, 3\), got values in \[-1, ")),
    ("equal-k", lambda y: _with(y, 3, K), Raise(ValueError, r"^y: expected labels in \[0, 3\), got values in \[0, 3\]")),
    ("huge-uint64", lambda y: _with(y.astype(np.uint64), 0, 2**64 - 1), Raise(ValueError, r"^y: expected labels in \[0, 3\)")),
    ("float", lambda y: y.astype(np.float64), Raise(TypeError, r"^y: expected an integer dtype, got float64")),
    ("bool", lambda y: y > 0, Raise(TypeError, r"^y: expected an integer dtype, got bool")),
    ("object", lambda y: y.astype(object), Raise(TypeError, r"^y: expected an integer dtype, got object")),
    ("python-bigint", lambda y: [2**70] + y.tolist()[1:], Raise(TypeError, r"^y: expected an integer dtype, got object")),
    ("short", lambda y: y[:-1], Raise(ValueError, rf"^y: expected {N} labels \(one per row\), got {N - 1}")),
    ("long", lambda y: np.append(y, 0), Raise(ValueError, rf"^y: expected {N} labels \(one per row\), got {N + 1}")),
    ("empty", lambda y: y[:0], Raise(ValueError, rf"^y: expected {N} labels \(one per row\), got 0")),
    ("2-D", lambda y: y[:, None], Raise(ValueError, r"^y: expected a 1-D array, got 2-D")),
    ("0-D", lambda y: 1, Raise(ValueError, r"^y: expected a 1-D array, got 0-D")),
    ("masked", lambda y: np.ma.masked_array(y), Raise(TypeError, r"^y: expected a plain numpy.ndarray")),
    ("list", lambda y: y.tolist(), Same()),
    ("uint8", lambda y: y.astype(np.uint8), Same()),
    ("int8", lambda y: y.astype(np.int8), Same()),
    ("uint64", lambda y: y.astype(np.uint64), Same()),
    ("big-endian", lambda y: y.astype(">i8"), Same()),
    ("strided", lambda y: np.repeat(y, 2)[::2], Same()),
    ("read-only", _read_only, Same()),
    ("unaligned", _unaligned, Same()),
]

LR_MUTATIONS = [
    ("nan", float("nan"), Raise(ValueError, r"^lr: expected a finite number")),
    ("inf", float("inf"), Raise(ValueError, r"^lr: expected a finite number")),
    ("-inf", -np.inf, Raise(ValueError, r"^lr: expected a finite number")),
    ("float32-nan", np.float32("nan"), Raise(ValueError, r"^lr: expected a finite number")),
    ("int-beyond-float", 10**400, Raise(ValueError, r"^lr: expected a finite number")),
    ("string", "0.3", Raise(TypeError, r"^lr: expected a real number, got str")),
    ("None", None, Raise(TypeError, r"^lr: expected a real number, got NoneType")),
    ("complex", 0.3j, Raise(TypeError, r"^lr: expected a real number, got complex")),
    ("0-D-array", np.array(0.3), Raise(TypeError, r"^lr: expected a real number, got ndarray")),
    ("list", [0.3], Raise(TypeError, r"^lr: expected a real number, got list")),
    ("Decimal", decimal.Decimal("0.3"), Raise(TypeError, r"^lr: expected a real number, got Decimal")),
    ("bool", True, Raise(TypeError, r"^lr: expected a real number, got bool")),
    ("zero", 0.0, Unchanged()),
    ("int-zero", 0, Unchanged()),
    ("float32", np.float32(0.3), Same({"lr": float(np.float32(0.3))})),
    ("Fraction", fractions.Fraction(3, 10), Same()),
    ("negative", -0.3, Same({"lr": -0.3})),
]

BATCH_MUTATIONS = [
    ("zero", 0, Raise(ValueError, r"^batch: expected an integer >= 1, got 0")),
    ("negative", -5, Raise(ValueError, r"^batch: expected an integer >= 1, got -5")),
    ("float", 5.0, Raise(TypeError, r"^batch: expected an integer, got float")),
    ("float64", np.float64(5), Raise(TypeError, r"^batch: expected an integer, got float64")),
    ("string", "5", Raise(TypeError, r"^batch: expected an integer, got str")),
    ("None", None, Raise(TypeError, r"^batch: expected an integer, got NoneType")),
    ("bool", True, Raise(TypeError, r"^batch: expected an integer, got bool")),
    ("one", 1, Same({"batch": 1})),
    ("n", N, Same({"batch": N})),
    ("n-plus-one", N + 1, Same({"batch": N})),
    ("beyond-int64", 10**30, Same({"batch": N})),
    ("uint64-max", np.uint64(2**64 - 1), Same({"batch": N})),
    ("int8", np.int8(5), Same()),
]

WEIGHTS_MUTATIONS = [
    ("ndarray", lambda w: w[0], Raise(TypeError, r"^weights: expected a list of 2-D arrays, got array")),
    ("generator", lambda w: (x for x in w), Raise(TypeError, r"^weights: expected a list of 2-D arrays, got generator")),
    ("None", lambda w: None, Raise(TypeError, r"^weights: expected a list of 2-D arrays, got NoneType")),
    ("dict", lambda w: dict(enumerate(w)), Raise(TypeError, r"^weights: expected a list of 2-D arrays, got dict")),
    ("empty", lambda w: [], Raise(ValueError, r"^weights: expected at least one weight matrix")),
    ("None-element", lambda w: [None] + w[1:], Raise(TypeError, r"^weights\[0\]: expected")),
    ("tuple", tuple, Same()),
    ("broken-chain", lambda w: [w[0], w[1][:-1]], Raise(ValueError, rf"^weights\[1\]: expected {H} rows \(weights\[0\] has {H} columns\), got shape \({H - 1}, {H}\)")),
]


@dataclasses.dataclass
class Row:
    id: str
    fn: str
    mutate: object            # kwargs -> None (mutates in place)
    expect: object


def _mutating(path, transform):
    def mutate(kwargs):
        _set(kwargs, path, transform(_get(kwargs, path)))
    return mutate


def _setting(path, value):
    def mutate(kwargs):
        _set(kwargs, path, value)
    return mutate


def _build_rows():
    rows = []
    for fn, spec in SPECS.items():
        for path, role in spec.roles.items():
            if role in ("data", "param"):
                for mid, transform, kind in MATRIX_MUTATIONS:
                    rows.append(Row(f"{fn}:{path}:{mid}", fn, _mutating(path, transform),
                                    _matrix_expectation(kind, role, path)))
            elif role == "labels":
                rows += [Row(f"{fn}:y:{mid}", fn, _mutating("y", t), e) for mid, t, e in LABEL_MUTATIONS]
            elif role == "lr":
                rows += [Row(f"{fn}:lr:{mid}", fn, _setting("lr", v), e) for mid, v, e in LR_MUTATIONS]
            elif role == "batch":
                rows += [Row(f"{fn}:batch:{mid}", fn, _setting("batch", v), e) for mid, v, e in BATCH_MUTATIONS]
            elif role == "weights":
                rows += [Row(f"{fn}:weights:{mid}", fn, _mutating("weights", t), e) for mid, t, e in WEIGHTS_MUTATIONS]
    rows += _shape_rows() + _overlap_rows() + _huge_rows()
    return rows


def _shape_rows():
    """Mismatched shapes between arguments: the message names the argument that disagrees."""
    rows = [
        Row("matmul:B:wrong-rows", "matmul", _mutating("B", lambda B: B[:-1]),
            Raise(ValueError, rf"^B: expected {D} rows \(A has {D} columns\), got shape \({D - 1}, {H}\)")),
        Row("nn_epoch:W2:wrong-rows", "nn_epoch", _mutating("W2", lambda W: W[:-1]),
            Raise(ValueError, rf"^W2: expected {H} rows \(W1 has {H} columns\), got shape \({H - 1}, {K}\)")),
        Row("softmax_loss:Z:fewer-classes-than-labels", "softmax_loss", _mutating("Z", lambda Z: Z[:, :1]),
            Raise(ValueError, r"^y: expected labels in \[0, 1\)")),
    ]
    first = {"softmax_regression_epoch": "theta", "nn_epoch": "W1"}
    for fn, spec in SPECS.items():
        if "X" not in spec.roles:
            continue
        name = re.escape(first.get(fn, "weights[0]"))
        rows.append(Row(f"{fn}:X:extra-column", fn, _mutating("X", lambda X: np.hstack([X, X[:, :1]])),
                        Raise(ValueError, rf"^{name}: expected {D + 1} rows \(X has {D + 1} columns\)")))
        if "y" in spec.roles:
            rows.append(Row(f"{fn}:X:fewer-rows-than-labels", fn, _mutating("X", lambda X: X[:-2]),
                            Raise(ValueError, rf"^y: expected {N - 2} labels \(one per row\), got {N}")))
    return rows


def _overlap_rows():
    """In-place parameters sharing memory with the data, the labels or each other."""
    def theta_is_view_of_X(kw):
        kw["theta"] = kw["X"][:D, :K]

    def y_is_view_of_W1(kw):
        # labels stored in W1's memory (zeros, so valid): once W1 changes they become garbage
        # indices -- this crashed the cpp backend before the check existed
        W1 = np.zeros((2 * N, H))
        W1[N:] = 0.1
        kw.update(X=np.ones((N, 2 * N)), W1=W1, y=W1.view(np.int64).reshape(-1)[:N])

    def W2_overlaps_W1(kw):
        base = np.vstack([kw["W1"], np.zeros((1, H))])
        kw["W1"], kw["W2"] = base[:D], base[1:1 + H, :K]

    def weights_repeat(kw):
        W = np.array(kw["weights"][1])
        kw["weights"] = [kw["weights"][0], W, W, kw["weights"][2]]

    return [
        Row("softmax_regression_epoch:theta:view-of-X", "softmax_regression_epoch", theta_is_view_of_X,
            Raise(ValueError, r"^X and theta: expected separate arrays, got overlapping memory")),
        Row("nn_epoch:y:view-of-W1", "nn_epoch", y_is_view_of_W1,
            Raise(ValueError, r"^y and W1: expected separate arrays, got overlapping memory")),
        Row("nn_epoch:W2:overlaps-W1", "nn_epoch", W2_overlaps_W1,
            Raise(ValueError, r"^W1 and W2: expected separate arrays, got overlapping memory")),
        Row("mlp_epoch:weights:same-array-twice", "mlp_epoch", weights_repeat,
            Raise(ValueError, r"^weights\[1\] and weights\[2\]: expected separate arrays")),
    ]


def _huge(shape, dtype=np.float64):
    return np.broadcast_to(np.zeros((1,) * len(shape), dtype=dtype), shape)


def _huge_rows():
    """Shapes whose byte size overflows 32 bits (zero-copy views): refused before any big
    allocation (see test_huge_rows_allocate_nothing_big)."""
    def set_(**makers):
        def mutate(kw):
            kw.update({name: make() for name, make in makers.items()})
        return mutate
    return [
        Row("matmul:A:huge-mismatch", "matmul", set_(A=lambda: _huge((BIG, D + 1))),
            Raise(ValueError, rf"^B: expected {D + 1} rows \(A has {D + 1} columns\)")),
        Row("matmul:A,B:huge-product", "matmul",
            set_(A=lambda: _huge((2**33, 1)), B=lambda: _huge((1, 2**33))),
            Raise(ValueError, r"^A, B: the product would have shape \(8589934592, 8589934592\)")),
        Row("softmax_loss:Z:huge-rows", "softmax_loss", set_(Z=lambda: _huge((BIG, K), np.float32)),
            Raise(ValueError, rf"^y: expected {BIG} labels \(one per row\), got {N}")),
        Row("mlp_logits:X:huge-columns", "mlp_logits", set_(X=lambda: _huge((N, BIG))),
            Raise(ValueError, rf"^weights\[0\]: expected {BIG} rows \(X has {BIG} columns\)")),
        Row("evaluate:X:huge-rows", "evaluate", set_(X=lambda: _huge((BIG, D))),
            Raise(ValueError, rf"^y: expected {BIG} labels")),
        Row("mlp_epoch:X:huge-rows", "mlp_epoch", set_(X=lambda: _huge((BIG, D), np.float32)),
            Raise(ValueError, rf"^y: expected {BIG} labels")),
        Row("nn_epoch:y:huge-length", "nn_epoch", set_(y=lambda: _huge((BIG,), np.int64)),
            Raise(ValueError, rf"^y: expected {N} labels \(one per row\), got {BIG}")),
        Row("softmax_regression_epoch:theta:huge-read-only", "softmax_regression_epoch",
            set_(theta=lambda: _huge((D, BIG))), Raise(ValueError, r"^theta: expected a writeable array")),
    ]


ROWS = _build_rows()
ROW_IDS = [r.id for r in ROWS]
assert len(set(ROW_IDS)) == len(ROW_IDS), "duplicate row ids"
BACKENDS = ["numpy", "cpp"]


# --- running one row ------------------------------------------------------------------------
def _params(spec, kwargs):
    out = []
    for path in spec.params:
        try:
            value = _get(kwargs, path)
        except (KeyError, IndexError, TypeError):
            continue
        if isinstance(value, np.ndarray):
            out.append(value)
    return out


def _call(fn, kwargs):
    return getattr(fastnn, fn)(**kwargs)


def _flatten(result):
    if result is None:
        return []
    if isinstance(result, (tuple, list)):
        return [x for r in result for x in _flatten(r)]
    return [np.asarray(result, dtype=np.float64)]


def _assert_close(actual, expected, what):
    assert len(actual) == len(expected), what
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(np.asarray(a, dtype=np.float64), e, rtol=1e-9, atol=1e-12,
                                   equal_nan=True, err_msg=what)


def check_row(row, backend):
    spec = SPECS[row.fn]
    with fastnn.use_backend(backend):
        kwargs = spec.make(_clean_arrays())
        row.mutate(kwargs)
        params = _params(spec, kwargs)
        params = [p for p in params if p.flags.writeable]   # (never copy a zero-copy giant)
        before = [np.array(p, copy=True) for p in params]
        expect = row.expect
        if isinstance(expect, Raise):
            with pytest.raises(expect.exc, match=expect.pattern):
                _call(row.fn, kwargs)
            for p, b in zip(params, before):
                np.testing.assert_array_equal(p, b, err_msg="a parameter changed before the error")
            return "raised"
        result = _call(row.fn, kwargs)
        after = [np.asarray(p, dtype=np.float64) for p in params]
        if isinstance(expect, Unchanged):
            for p, b in zip(params, before):
                np.testing.assert_array_equal(p, b)
        elif isinstance(expect, NonFinite):
            values = _flatten(result) + after
            if expect.must_propagate and row.fn != "predict":
                assert any(np.isnan(v).any() for v in values), "NaN did not reach the outputs"
            if row.fn not in BACKWARD:
                with fastnn.use_backend("numpy"):   # the specification: NumPy's arithmetic
                    ref_kwargs = spec.make(_clean_arrays())
                    row.mutate(ref_kwargs)
                    ref_values = _flatten(_call(row.fn, ref_kwargs))
                _assert_close(_flatten(result), ref_values, "NaN/Inf results (numpy backend is the reference)")
        else:
            ref_kwargs = spec.make(_clean_arrays())
            ref_kwargs.update(expect.reference)
            ref_result = _call(row.fn, ref_kwargs)
            _assert_close(_flatten(result), _flatten(ref_result), "result")
            _assert_close(after, [np.asarray(p) for p in _params(spec, ref_kwargs)], "updated parameters")
        return "ok"


# --- the tests ------------------------------------------------------------------------------
_CHILD = """
import sys
sys.path.insert(0, {tests!r})
import test_bad_inputs as t
t.run_all_in_child()
"""


def run_all_in_child():
    """Run every row on both backends, printing START/END lines (the parent reads them to
    find the row that killed the interpreter, if any)."""
    for row in ROWS:
        for backend in BACKENDS:
            print(f"START {backend} {row.id}", flush=True)
            try:
                outcome = check_row(row, backend)
            except BaseException as exc:   # a failed expectation: the in-process test reports it
                outcome = f"FAILED {type(exc).__name__}"
            print(f"END {backend} {row.id} {outcome}", flush=True)


@pytest.fixture(scope="module")
def child_run():
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(tests=str(Path(__file__).parent))],
                          capture_output=True, text=True, timeout=600)
    started, ended = set(), set()
    for line in proc.stdout.splitlines():
        kind, backend, row_id = (line.split(" ", 3) + [""])[:3]
        (started if kind == "START" else ended).add((backend, row_id))
    return proc, started - ended, ended


def test_no_row_crashes_the_interpreter(child_run):
    proc, crashed, ended = child_run
    report = f"exit status {proc.returncode}; rows started but not finished: {sorted(crashed)}\n" \
             f"stderr tail:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0 and not crashed, report
    assert len(ended) == 2 * len(ROWS), report
    assert "runtime error" not in proc.stderr and "Sanitizer" not in proc.stderr, report


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("row", ROWS, ids=ROW_IDS)
def test_row(row, backend, child_run):
    proc, crashed, ended = child_run
    if (backend, row.id) in crashed or (proc.returncode != 0 and (backend, row.id) not in ended):
        pytest.fail(f"not run in-process: this row killed (or was not reached by) the child "
                    f"interpreter (exit status {proc.returncode})")
    check_row(row, backend)


@pytest.mark.parametrize("row", [r for r in ROWS if "huge" in r.id], ids=lambda r: r.id)
def test_huge_rows_allocate_nothing_big(row, backend):
    """The zero-copy giants are refused without allocating them (tracemalloc sees NumPy)."""
    tracemalloc.start()
    try:
        check_row(row, backend)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"peak traced allocation {peak} bytes"


def test_matrix_covers_every_public_function():
    public = {"matmul", "relu", "softmax_loss", "softmax_cross_entropy", "loss_err",
              "softmax_regression_epoch", "nn_epoch", "mlp_epoch", "mlp_loss_grad", "mlp_logits",
              "predict", "evaluate"}
    assert public == set(SPECS)
    assert public <= set(fastnn.__all__)


@pytest.fixture
def core():
    return pytest.importorskip("fastnn._core")


def test_core_refuses_unaligned_arrays(core):
    """The extension itself (not only cpp_backend) refuses misaligned buffers: reading them as
    double* is undefined behaviour (UBSan: misaligned load)."""
    X = _unaligned(np.ones((N, D)))
    out = np.empty((N, K))
    with pytest.raises(ValueError, match=r"^X: expected an array aligned to 8 bytes"):
        core.mlp_logits(X, [np.ones((D, K))], out)
    W = _unaligned(np.ones((D, K)))
    with pytest.raises(ValueError, match=r"^weights\[0\]: expected an array aligned to 8 bytes"):
        core.mlp_epoch(np.ones((N, D)), np.zeros(N, np.int64), [W], 0.1, 5)


def test_core_refuses_labels_or_data_aliasing_weights(core):
    W1 = np.zeros((2 * N, H))
    W1[N:] = 0.1
    y = W1.view(np.int64).reshape(-1)[:N]
    before = W1.copy()
    with pytest.raises(ValueError, match=r"^y and weights\[0\]: expected separate arrays"):
        core.mlp_epoch(np.ones((N, 2 * N)), y, [W1, np.ones((H, K))], 0.5, 2)
    X = np.ones((N, K))
    with pytest.raises(ValueError, match=r"^X and weights\[0\]: expected separate arrays"):
        core.mlp_epoch(X, np.zeros(N, np.int64), [X[:K]], 0.5, 2)
    np.testing.assert_array_equal(W1, before)


def test_core_refuses_zero_stride_giants(core):
    X = _huge((BIG, D))
    with pytest.raises(ValueError, match=r"^X: expected rows of contiguous elements"):
        core.mlp_logits(X, [np.ones((D, K))], np.empty((1, K)))
