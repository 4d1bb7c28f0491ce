"""Input validation, done once at the public API boundary, before anything is modified.

Every check raises TypeError (wrong kind of object or dtype) or ValueError (wrong shape, range
or value) with a message that names the argument, what was expected and what was given.
Both backends receive only inputs that passed these checks, so they raise identical errors.
"""
import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _describe(a):
    if isinstance(a, np.ndarray):
        return f"array of dtype {a.dtype} and shape {a.shape}"
    return f"{type(a).__name__}"


def _plain_ndarray(a, name):
    """`a` as a base-class ndarray sharing its memory (np.matrix and other subclasses behave
    like plain arrays). Masked arrays are refused: their mask cannot be honoured, and reading
    the data under it would be a silent wrong answer."""
    if isinstance(a, np.ma.MaskedArray):
        raise TypeError(f"{name}: expected a plain numpy.ndarray, got a masked array (its mask cannot be "
                        f"honoured; pass a.filled(...) or select the unmasked rows)")
    return a if type(a) is np.ndarray else a.view(np.ndarray)


def _as_ndarray(a, name, expected):
    """`a` as a plain ndarray; other array-likes converted as NumPy would (TypeError if they cannot be)."""
    if isinstance(a, np.ndarray):
        return _plain_ndarray(a, name)
    try:
        return np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name}: expected {expected}, got {_describe(a)} ({exc})") from None


def _nonempty_2d(a, name):
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array, got {a.ndim}-D with shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name}: expected a non-empty array, got shape {a.shape}")
    return a


def as_float_matrix(a, name):
    """A read-only 2-D float32/float64 input (array-likes are converted, as NumPy would)."""
    a = _as_ndarray(a, name, "a 2-D float32 or float64 array")
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    return _nonempty_2d(a, name)


def with_contiguous_rows(X):
    """A data matrix that many epochs or evaluations will read, with each row's values adjacent in
    memory: copied once here where they are not (a Fortran-ordered X, as pandas' DataFrame.to_numpy()
    gives), rather than by every call. Anything else (SparseRows, Pixels, lists) is returned as is."""
    if isinstance(X, np.ndarray) and X.ndim == 2 and X.size and X.strides[1] != X.itemsize:
        return np.ascontiguousarray(X)
    return X


def as_parameter(a, name):
    """A parameter updated in place: must already be a writeable 2-D float32/float64 ndarray."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a numpy.ndarray (updated in place), got {_describe(a)}")
    a = _plain_ndarray(a, name)
    if a.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64 (updated in place), got {a.dtype}")
    _nonempty_2d(a, name)
    if not a.flags.writeable:
        raise ValueError(f"{name}: expected a writeable array (it is updated in place), got a read-only array")
    return a


def _as_index_vector(a, name):
    """A 1-D integer array (array-likes are converted; bool is not an integer here)."""
    a = _as_ndarray(a, name, "a 1-D integer array")
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer):
        raise TypeError(f"{name}: expected an integer dtype, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got {a.ndim}-D with shape {a.shape}")
    return a


def _check_index_range(a, name, bound, what):
    """Every value of the integer vector `a` in [0, bound); `what` names them in the error."""
    if a.shape[0]:
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi >= bound:
            raise ValueError(f"{name}: expected {what} in [0, {bound}), got values in [{lo}, {hi}]")


def as_labels(y, n, k, name="y"):
    """Integer class labels, one per row, each in [0, k)."""
    y = _as_index_vector(y, name)
    if y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per row), got {y.shape[0]}")
    _check_index_range(y, name, k, "labels")
    return y


def as_learning_rate(lr, name="lr"):
    if isinstance(lr, (bool, np.bool_)) or not isinstance(lr, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(lr).__name__}")
    try:
        finite = math.isfinite(lr)
    except OverflowError:   # an int beyond float's range
        finite = False
    if not finite:
        raise ValueError(f"{name}: expected a finite number, got {str(lr)[:40]}")
    return float(lr)


def _as_int_at_least(value, low, name):
    """A Python int >= low (bools refused): TypeError for a non-integer, ValueError below low."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value}")
    return int(value)


def as_batch_size(batch, name="batch"):
    return _as_int_at_least(batch, 1, name)


def check_layer_shapes(n_features, weights, names):
    """W_1 is (n_features × h_1), W_i is (h_{i-1} × h_i): consecutive shapes must chain."""
    expected_rows, expected_from = n_features, "X has"
    for W, name in zip(weights, names):
        if W.shape[0] != expected_rows:
            raise ValueError(
                f"{name}: expected {expected_rows} rows ({expected_from} {expected_rows} columns), "
                f"got shape {W.shape}")
        expected_rows, expected_from = W.shape[1], f"{name} has"


def check_no_overlap(arrays, names, first_parameter=0):
    """Parameters updated in place (arrays[first_parameter:]) must not share memory with each
    other or with the read-only inputs before them (data, labels): an update would change the
    inputs in the middle of an epoch. Read-only inputs may share memory with each other."""
    for i in range(len(arrays)):
        for j in range(max(i + 1, first_parameter), len(arrays)):
            if np.may_share_memory(arrays[i], arrays[j]):
                raise ValueError(f"{names[i]} and {names[j]}: expected separate arrays, got overlapping memory")


def as_weight_list(weights, name="weights"):
    if isinstance(weights, np.ndarray) or not isinstance(weights, (list, tuple)):
        raise TypeError(f"{name}: expected a list of 2-D arrays, got {_describe(weights)}")
    if len(weights) == 0:
        raise ValueError(f"{name}: expected at least one weight matrix, got an empty list")
    return list(weights)


def compute_dtype(*arrays):
    """NumPy's promotion of the inputs: float32 only when every input is float32."""
    return np.result_type(*arrays)


def as_bias_list(biases, weights, name="biases", writeable=True):
    """None (no biases) or one entry per layer: None or a writeable 1-D array of d_i values in
    the weights' dtype. Returns a list of L entries."""
    L = len(weights)
    if biases is None:
        return [None] * L
    if isinstance(biases, np.ndarray) or not isinstance(biases, (list, tuple)):
        raise TypeError(f"{name}: expected None or a list of 1-D arrays (or None), got {_describe(biases)}")
    if len(biases) != L:
        raise ValueError(f"{name}: expected {L} entries (one per layer), got {len(biases)}")
    out = []
    for i, (b, W) in enumerate(zip(biases, weights)):
        bname = f"{name}[{i}]"
        if b is None:
            out.append(None)
            continue
        if not isinstance(b, np.ndarray):
            raise TypeError(f"{bname}: expected a numpy.ndarray (updated in place) or None, got {_describe(b)}")
        if b.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{bname}: expected dtype float32 or float64 (updated in place), got {b.dtype}")
        if b.shape != (W.shape[1],):
            raise ValueError(f"{bname}: expected shape ({W.shape[1]},) (weights[{i}] has {W.shape[1]} columns), "
                             f"got {b.shape}")
        if writeable and not b.flags.writeable:
            raise ValueError(f"{bname}: expected a writeable array (it is updated in place), got a read-only array")
        out.append(b)
    return out


def check_same_dtype(arrays, names):
    """The parameters of a train_epoch call share one dtype (their optimizer state has it too)."""
    present = [(a, n) for a, n in zip(arrays, names) if a is not None]
    first, first_name = present[0]
    for a, n in present[1:]:
        if a.dtype != first.dtype:
            raise TypeError(f"{n}: expected dtype {first.dtype} (the dtype of {first_name}), got {a.dtype}")


def as_order(order, n, name="order"):
    """None (data order) or a 1-D integer array of row indices in [0, n) (repeats allowed)."""
    if order is None:
        return None
    order = _as_index_vector(order, name)
    if order.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one row index, got an empty array")
    _check_index_range(order, name, n, "row indices")
    return order


def as_nonnegative(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}")
    return float(value)


def as_optimizer(optimizer, name="optimizer"):
    from .optimizers import SGD, Adam
    if optimizer is None:
        return SGD()
    if not isinstance(optimizer, (SGD, Adam)):
        raise TypeError(f"{name}: expected fastnn.optimizers.SGD or Adam, got {type(optimizer).__name__}")
    return optimizer


def as_label_vector(y, n, name="y"):
    """Integer class labels, one per row, each >= 0 (the number of classes is not known yet)."""
    y = _as_index_vector(y, name)
    if y.shape[0] != n:
        raise ValueError(f"{name}: expected {n} labels (one per row), got {y.shape[0]}")
    if n and int(y.min()) < 0:
        raise ValueError(f"{name}: expected labels >= 0, got a minimum of {int(y.min())}")
    return y


def as_positive_int(value, name):
    return _as_int_at_least(value, 1, name)


def as_seed(seed, name="seed"):
    """A seed for numpy.random.default_rng: an integer >= 0."""
    return _as_int_at_least(seed, 0, name)


LOSSES = ("log_loss", "squared_error")


def _as_real_array(a, name, what):
    """`a` as a plain ndarray of real numbers (any integer or float dtype; not bool)."""
    a = _as_ndarray(a, name, what)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected {what}, got dtype {a.dtype}")
    return a


def as_targets(y, loss, n, k, dtype, name="y"):
    """train_epoch's targets: for loss 'log_loss' integer labels in [0, k) (as_labels); for
    'squared_error' n × k real values, returned as a C-contiguous array of the parameters' dtype
    (a 1-D y is one output: k must be 1)."""
    if loss not in LOSSES:
        raise ValueError(f"loss: expected one of {LOSSES}, got {loss!r}")
    if loss == "log_loss":
        return as_labels(y, n, k, name)
    y = _as_real_array(y, name, "real target values")
    if y.ndim == 1:
        y = y[:, None]
    if y.shape != (n, k):
        raise ValueError(f"{name}: expected shape ({n}, {k}) (rows × outputs), got {y.shape}")
    y = np.ascontiguousarray(y, dtype=dtype)
    if not np.isfinite(y).all():
        raise ValueError(f"{name}: expected finite target values")
    return y


def as_sample_weight(sample_weight, n, dtype, name="sample_weight"):
    """None, or n finite weights >= 0 as a C-contiguous 1-D array of the parameters' dtype."""
    if sample_weight is None:
        return None
    w = _as_real_array(sample_weight, name, "real weights")
    if w.shape != (n,):
        raise ValueError(f"{name}: expected shape ({n},) (one weight per row), got {w.shape}")
    w = np.ascontiguousarray(w, dtype=dtype)
    if not (np.isfinite(w).all() and (w >= 0).all()):
        raise ValueError(f"{name}: expected finite weights >= 0")
    return w
