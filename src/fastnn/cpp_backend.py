"""The C++ backend: numpy_backend's functions, computed by the compiled core fastnn._core.

Inputs arrive validated by fastnn.api. This layer only arranges them the way the core takes
them, without ever letting an in-place update land on a temporary:
  * the arithmetic dtype is NumPy's promotion of the inputs (float32 only if all are float32);
  * data X may be float32 under float64 parameters (the core widens each batch), and may be any
    view whose rows are contiguous (row stride is passed, no copy); other layouts are copied;
  * a parameter that is not C-contiguous or not of the arithmetic dtype is trained in a working
    copy that is written back into the caller's array when the call ends, even by an exception
    (e.g. Ctrl-C), so completed updates are never lost;
  * labels are passed as int64;
  * every array handed to the core is aligned for its dtype (an unaligned view, e.g. from
    np.frombuffer at an odd offset, is copied: the core reads and writes T* directly);
  * batch sizes beyond n are passed as n (the same single batch; fits the core's int64);
  * the epochs of a net with a hidden layer skip the zeros of a mostly-zero dense X in the first
    layer (runtime.set_skip_zeros; the core compacts each batch to CSR);
  * X as SparseRows (train_epoch only) goes to the core's CSR epoch as its three arrays; the core
    takes values of the parameters' dtype only, so float32 values under float64 parameters are
    converted (one copy of the values per call).
"""
import contextlib
import functools

import numpy as np

from . import _core, runtime
from .optimizers import SGD
from .pixels import Pixels
from .sparse import SparseRows

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)


def _rows_contiguous(a):
    """True when every row of the 2-D array `a` is contiguous (unit column stride)."""
    return a.flags.aligned and (a.shape[1] == 1 or a.strides[1] == a.itemsize) and a.strides[0] >= 0 and \
        (a.shape[0] == 1 or a.strides[0] % a.itemsize == 0 and a.strides[0] >= a.shape[1] * a.itemsize)


def _matrix(a, dtype):
    """`a` as `dtype` with contiguous rows; no copy when it already is."""
    if a.dtype != dtype:
        return _contiguous(a, dtype)
    return a if _rows_contiguous(a) else _contiguous(a, dtype)


def _data(X, dtype):
    """The data matrix for arithmetic in `dtype`: float32 data stays float32 under float64."""
    return _matrix(X, X.dtype if (X.dtype == _F32 and dtype == _F64) else dtype)


def _contiguous(a, dtype):
    """`a` as a C-contiguous, aligned array of `dtype`; no copy when it already is."""
    return np.require(a, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"])


def _labels(y):
    return _contiguous(y, np.int64)


def _read_only_weights(weights, dtype):
    return [_contiguous(W, dtype) for W in weights]


@contextlib.contextmanager
def _updated_in_place(params, dtype):
    """Arrays the core can update in place: each parameter itself when it is C-contiguous of
    `dtype`, else a working copy written back into the parameter (in its own dtype, by NumPy's
    same-kind casting) when the block exits, normally or by an exception."""
    work = [p if (p.dtype == dtype and p.flags.c_contiguous and p.flags.aligned) else
            np.array(p, dtype=dtype, order="C") for p in params]
    try:
        yield work
    finally:
        for p, w in zip(params, work):
            if w is not p:
                np.copyto(p, w, casting="same_kind")


def _gemm_operand(a):
    """(op, array) with op(array) == a and no copy for C- or Fortran-ordered matrices."""
    if _rows_contiguous(a):
        return "N", a
    if _rows_contiguous(a.T):
        return "T", a.T
    return "N", _contiguous(a, a.dtype)


def matmul(A, B):
    dtype = np.result_type(A, B)
    C = np.empty((A.shape[0], B.shape[1]), dtype=dtype)   # first: an impossible result raises before any copy
    op_a, A_ = _gemm_operand(A.astype(dtype, copy=False))
    op_b, B_ = _gemm_operand(B.astype(dtype, copy=False))
    _core.gemm(op_a, op_b, A_, B_, C, 1.0, 0.0)
    return C


def relu(Z):
    H = np.empty(Z.shape, dtype=Z.dtype)
    _core.relu(_matrix(Z, Z.dtype), H)
    return H


def softmax_loss(Z, y):
    return _core.softmax_cross_entropy(_matrix(Z, Z.dtype), _labels(y), None) / Z.shape[0]


def softmax_cross_entropy(Z, y):
    G = np.empty(Z.shape, dtype=Z.dtype)
    loss_sum = _core.softmax_cross_entropy(_matrix(Z, Z.dtype), _labels(y), G)
    return loss_sum / Z.shape[0], G


def loss_err(h, y):
    loss_sum, errors = _core.loss_errors(_matrix(h, h.dtype), _labels(y))
    return loss_sum / h.shape[0], errors / h.shape[0]


def _skips_zeros(X, n_layers, order=None, batch=None):
    """Whether a dense X's epoch runs its first layer over X's nonzeros only (runtime's
    set_skip_zeros): on, a hidden layer, batches (`batch`: an epoch's; None: an evaluation's
    chunks) of at most SKIP_ZEROS_MAX_BATCH rows, and at most SKIP_ZEROS_MAX_DENSITY of the
    first SKIP_ZEROS_SAMPLE_ROWS rows the epoch visits nonzero (NaN counts as nonzero)."""
    if not runtime.get_skip_zeros() or n_layers < 2 or X.size == 0:
        return False
    if batch is not None and min(batch, X.shape[0] if order is None else len(order)) > runtime.SKIP_ZEROS_MAX_BATCH:
        return False
    rows = runtime.SKIP_ZEROS_SAMPLE_ROWS
    sample = X[:rows] if order is None else X[np.asarray(order[:rows])]
    return np.count_nonzero(sample) <= runtime.SKIP_ZEROS_MAX_DENSITY * sample.size


def mlp_epoch(X, y, weights, lr=0.1, batch=100):
    if _skips_zeros(X, len(weights), batch=batch):   # the same SGD epoch, through the zero-skipping core
        train_epoch(X, y, weights, [None] * len(weights), SGD(), lr, batch, None, 0.0)
        return
    dtype = np.result_type(X, *weights)
    with _updated_in_place(weights, dtype) as work:
        _core.mlp_epoch(_data(X, dtype), _labels(y), work, lr, min(batch, X.shape[0]))


def softmax_regression_epoch(X, y, theta, lr=0.1, batch=100):
    if isinstance(X, Pixels):   # X = scale · pixels, widened batch by batch in the core
        dtype = np.result_type(np.float32, theta)
        with _updated_in_place([theta], dtype) as (work,):
            _core.softmax_regression_epoch_pixels(X.pixels, float(X.scale), _labels(y), work, lr,
                                                  min(batch, X.shape[0]))
        return
    mlp_epoch(X, y, [theta], lr, batch)


def nn_epoch(X, y, W1, W2, lr=0.1, batch=100):
    mlp_epoch(X, y, [W1, W2], lr, batch)


def mlp_loss_grad(X, y, weights):
    dtype = np.result_type(X, *weights)
    weights = _read_only_weights(weights, dtype)
    grads = [np.empty_like(W) for W in weights]
    loss = _core.mlp_loss_grad(_data(X, dtype), _labels(y), weights, grads)
    return loss, grads


def mlp_logits(X, weights):
    dtype = np.result_type(X, *weights)
    weights = _read_only_weights(weights, dtype)
    Z = np.empty((X.shape[0], weights[-1].shape[1]), dtype=dtype)
    _core.mlp_logits(_data(X, dtype), weights, Z, _skips_zeros(X, len(weights)))
    return Z


def evaluate(X, y, weights):
    """(mean loss, error rate); a mostly-zero X's first layer runs over its nonzeros, as its epochs do."""
    dtype = np.result_type(X, *weights)
    loss_sum, errors = _core.evaluate(_data(X, dtype), _labels(y), _read_only_weights(weights, dtype),
                                      _skips_zeros(X, len(weights)))
    return loss_sum / X.shape[0], errors / X.shape[0]


# Networks with biases and the optimizers (the estimators' engine; see numpy_backend).

def biased_logits(X, weights, biases):
    dtype = np.result_type(X, *weights)
    weights = _read_only_weights(weights, dtype)
    biases = [None if b is None else np.ascontiguousarray(b, dtype=dtype) for b in biases]
    Z = np.empty((X.shape[0], weights[-1].shape[1]), dtype=dtype)
    _core.biased_logits(_data(X, dtype), weights, biases, Z, _skips_zeros(X, len(weights)))
    return Z


def train_epoch(X, y, weights, biases, optimizer, lr, batch, order, alpha, sample_weight=None, loss="log_loss"):
    L = len(weights)
    if isinstance(X, SparseRows):   # the CSR epoch: X goes as its arrays, the rest is the same
        dtype = np.result_type(X.dtype, *weights)
        core_epoch = _core.train_epoch_csr
        x_args = (X.data.astype(dtype, copy=False), X.indices, X.indptr, X.shape[1])
    else:
        dtype = np.result_type(X, *weights)
        skip_zeros = _skips_zeros(X, L, order, batch)
        core_epoch = functools.partial(_core.train_epoch, skip_zeros=skip_zeros)
        x_args = (_data(X, dtype),)
    rows = max(1, X.shape[0] if order is None else order.shape[0])   # batch >= rows: one batch
    first, second = optimizer.buffers()
    first = list(first) if first is not None else [None] * (2 * L)
    second = list(second) if second is not None else [None] * (2 * L)
    slots = list(weights) + list(biases) + first + second        # 6L slots, None where absent
    present = [j for j, a in enumerate(slots) if a is not None]
    with _updated_in_place([slots[j] for j in present], dtype) as work:
        for j, w in zip(present, work):
            slots[j] = w
        t = np.array([getattr(optimizer, "t", 0)], dtype=np.int64)
        targets = _labels(y) if loss == "log_loss" else _contiguous(y, dtype)
        if sample_weight is not None:
            sample_weight = _contiguous(sample_weight, dtype)
        try:
            return core_epoch(
                *x_args, targets, None if order is None else np.ascontiguousarray(order, np.int64),
                slots[:L], slots[L:2 * L], optimizer.kind, slots[2 * L:4 * L], slots[4 * L:], t,
                float(lr), min(int(batch), rows), float(alpha), float(getattr(optimizer, "momentum", 0.0)),
                bool(getattr(optimizer, "nesterov", False)), float(getattr(optimizer, "beta_1", 0.9)),
                float(getattr(optimizer, "beta_2", 0.999)), float(getattr(optimizer, "epsilon", 1e-8)),
                loss=loss, sample_weight=sample_weight)
        finally:
            if optimizer.kind == "adam":
                optimizer.t = int(t[0])
