"""The public API: hw0's names and signatures, plus the building blocks they are made of.

Each function validates its inputs once (see `validation`) and hands them to the current backend
(see `backends`). Parameters are updated in place, in their own dtype; the arithmetic follows
NumPy's type promotion (float32 only when every input is float32).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import numpy as np

from . import runtime, validation as v
from .backends import backend_module, use_backend
from .pixels import Pixels
from .sparse import SparseRows

if TYPE_CHECKING:
    from ._typing import ArrayLike, FloatArray, IntArray
    from .optimizers import SGD, Adam


def add(x: Any, y: Any) -> Any:
    """hw0's warm-up: x + y, for numbers or arrays alike (whatever `+` gives)."""
    return x + y


def matmul(A: ArrayLike, B: ArrayLike) -> FloatArray:
    """A · B for 2-D float arrays (transposed views are fine: no copy is made on the cpp backend)."""
    A = v.as_float_matrix(A, "A")
    B = v.as_float_matrix(B, "B")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"B: expected {A.shape[1]} rows (A has {A.shape[1]} columns), got shape {B.shape}")
    m, n, itemsize = A.shape[0], B.shape[1], np.result_type(A, B).itemsize
    if m * n * itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"A, B: the product would have shape ({m}, {n}), more bytes than this "
                         f"platform can address")
    return backend_module().matmul(A, B)


def relu(Z: ArrayLike) -> FloatArray:
    """max(Z, 0), element-wise, as a new array."""
    return backend_module().relu(v.as_float_matrix(Z, "Z"))


def _logits_and_labels(Z, y, name="Z"):
    Z = v.as_float_matrix(Z, name)
    return Z, v.as_labels(y, Z.shape[0], Z.shape[1])


def softmax_loss(Z: ArrayLike, y: ArrayLike) -> float:
    """Mean softmax cross-entropy of logits Z (batch × classes) against integer labels y."""
    return backend_module().softmax_loss(*_logits_and_labels(Z, y))


def softmax_cross_entropy(Z: ArrayLike, y: ArrayLike) -> tuple[float, FloatArray]:
    """Fused forward and gradient: returns (mean cross-entropy, ∇Z = (softmax(Z) − I_y) / B)."""
    return backend_module().softmax_cross_entropy(*_logits_and_labels(Z, y))


def loss_err(h: ArrayLike, y: ArrayLike) -> tuple[float, float]:
    """(mean softmax cross-entropy, error rate) of logits h against labels y."""
    return backend_module().loss_err(*_logits_and_labels(h, y, "h"))


def _data_matrix(X, sparse, pixels=False):
    """X validated: a 2-D float array, or with `sparse` also SparseRows (a scipy.sparse matrix
    is converted to one; SparseRows checked its arrays when it was made), or with `pixels` also
    Pixels (checked when it was made)."""
    if isinstance(X, Pixels):
        if not pixels:
            raise TypeError("X: only softmax_regression_epoch takes X as Pixels; pass X.to_float32() here")
        return X
    if sparse and not isinstance(X, (np.ndarray, SparseRows)) and hasattr(X, "tocsr"):
        X = SparseRows.from_scipy(X)
    if not (sparse and isinstance(X, SparseRows)):
        return v.as_float_matrix(X, "X")
    if 0 in X.shape:
        raise ValueError(f"X: expected a non-empty matrix, got shape {X.shape}")
    return X


def _data_arrays(X):
    """The arrays holding X and their names, for the overlap checks."""
    if isinstance(X, SparseRows):
        return [X.data, X.indices, X.indptr], ["X.data", "X.indices", "X.indptr"]
    if isinstance(X, Pixels):
        return [X.pixels], ["X.pixels"]
    return [X], ["X"]


def _validated_net(X, y, weights, names, in_place, sparse=False, pixels=False):
    X = _data_matrix(X, sparse, pixels)
    if in_place:
        weights = [v.as_parameter(W, name) for W, name in zip(weights, names)]
    else:
        weights = [v.as_float_matrix(W, name) for W, name in zip(weights, names)]
    v.check_layer_shapes(X.shape[1], weights, names)
    if y is not None:
        y = v.as_labels(y, X.shape[0], weights[-1].shape[1])
    if in_place:
        X_arrays, X_names = _data_arrays(X)
        v.check_no_overlap(X_arrays + [y] + weights, X_names + ["y"] + names, first_parameter=len(X_arrays) + 1)
    return X, y, weights


def _layer_names(weights):
    return [f"weights[{i}]" for i in range(len(weights))]


def softmax_regression_epoch(X: Union[ArrayLike, Pixels], y: ArrayLike, theta: FloatArray, lr: float = 0.1,
                             batch: int = 100) -> None:
    """One epoch of minibatch SGD for softmax regression (data order, last batch may be
    shorter), updating `theta` (input_dim × num_classes) in place. Returns None. X may also be
    `Pixels` (uint8 values and a scale: a quarter of the bytes to read per epoch)."""
    X, y, (theta,) = _validated_net(X, y, [theta], ["theta"], in_place=True, pixels=True)
    backend_module().softmax_regression_epoch(X, y, theta, v.as_learning_rate(lr), v.as_batch_size(batch))


def softmax_regression_epoch_cpp(X: ArrayLike, y: ArrayLike, theta: FloatArray, lr: float, batch: int) -> None:
    """hw0's C++ extension function (simple_ml_ext): softmax_regression_epoch computed by the
    C++ core whatever the current backend is, `theta` updated in place. Returns None. Raises
    RuntimeError, saying how to build it, when the compiled extension is not available."""
    runtime._require_core("softmax_regression_epoch_cpp")
    with use_backend("cpp"):
        softmax_regression_epoch(X, y, theta, lr, batch)


def nn_epoch(X: ArrayLike, y: ArrayLike, W1: FloatArray, W2: FloatArray, lr: float = 0.1, batch: int = 100) -> None:
    """One epoch of minibatch SGD for the two-layer net ReLU(X W1) W2, updating W1 and W2 in
    place. Returns None."""
    X, y, (W1, W2) = _validated_net(X, y, [W1, W2], ["W1", "W2"], in_place=True)
    backend_module().nn_epoch(X, y, W1, W2, v.as_learning_rate(lr), v.as_batch_size(batch))


def mlp_epoch(X: ArrayLike, y: ArrayLike, weights: Sequence[FloatArray], lr: float = 0.1, batch: int = 100) -> None:
    """One epoch of minibatch SGD for an L-layer ReLU net X → ReLU(X W_1) … W_L, updating each
    array of `weights` in place. Returns None."""
    weights = v.as_weight_list(weights)
    X, y, weights = _validated_net(X, y, weights, _layer_names(weights), in_place=True)
    backend_module().mlp_epoch(X, y, weights, v.as_learning_rate(lr), v.as_batch_size(batch))


def mlp_loss_grad(X: ArrayLike, y: ArrayLike, weights: Sequence[ArrayLike]) -> tuple[float, list[FloatArray]]:
    """Mean cross-entropy and its gradients [∂loss/∂W_1, …] for the L-layer net on one batch."""
    weights = v.as_weight_list(weights)
    X, y, weights = _validated_net(X, y, weights, _layer_names(weights), in_place=False)
    return backend_module().mlp_loss_grad(X, y, weights)


def mlp_logits(X: ArrayLike, weights: Sequence[ArrayLike]) -> FloatArray:
    """The net's logits for every row of X."""
    weights = v.as_weight_list(weights)
    X, _, weights = _validated_net(X, None, weights, _layer_names(weights), in_place=False)
    return backend_module().mlp_logits(X, weights)


def predict(X: ArrayLike, weights: Sequence[ArrayLike]) -> IntArray:
    """The predicted class of every row of X (argmax of the logits; ties go to the lower class)."""
    return mlp_logits(X, weights).argmax(axis=1)


def evaluate(X: ArrayLike, y: ArrayLike, weights: Sequence[ArrayLike]) -> tuple[float, float]:
    """(mean cross-entropy, error rate) of the L-layer net on the dataset (X, y)."""
    weights = v.as_weight_list(weights)
    X, y, weights = _validated_net(X, y, weights, _layer_names(weights), in_place=False)
    return backend_module().evaluate(X, y, weights)


def _validated_biased_net(X, y, weights, biases, in_place, sparse=False, loss="log_loss"):
    weights = v.as_weight_list(weights)
    names = _layer_names(weights)
    X, _, weights = _validated_net(X, None, weights, names, in_place=in_place, sparse=sparse)
    if y is not None:
        y = v.as_targets(y, loss, X.shape[0], weights[-1].shape[1], weights[-1].dtype)
    biases = v.as_bias_list(biases, weights, writeable=in_place)
    bias_names = [f"biases[{i}]" for i in range(len(weights))]
    v.check_same_dtype(weights + biases, names + bias_names)
    return X, y, weights, biases, names, bias_names


def train_epoch(X: Union[ArrayLike, SparseRows], y: ArrayLike, weights: Sequence[FloatArray],
                biases: Optional[Sequence[Optional[FloatArray]]] = None, optimizer: Union[SGD, Adam, None] = None,
                lr: float = 0.001, batch: int = 200, order: Optional[ArrayLike] = None, alpha: float = 0.0,
                sample_weight: Optional[ArrayLike] = None, loss: str = "log_loss") -> float:
    """One epoch of minibatch training of the L-layer ReLU net with biases,
    H_i = ReLU(H_{i-1} W_i + b_i), Z = H_{L-1} W_L + b_L, on the mean cross-entropy plus the L2
    penalty (alpha / 2B) Σ ‖W_i‖² of each batch of B rows (scikit-learn's MLP objective).

    Args:
        X: the data, rows × d_0: a 2-D float32/float64 array, or `fastnn.SparseRows` (a
            scipy.sparse matrix is converted to one, which sorts a copy when needed). With
            SparseRows the cpp backend skips X's zeros in the first layer (X W_1 and Xᵀ G_1);
            the result equals the dense epoch's up to rounding. float32 SparseRows under float64
            parameters are converted to float64 on each call (a copy of the values).
        y: integer labels in [0, d_L), one per row of X.
        weights: list of L writeable 2-D arrays W_i (d_{i-1} × d_i), updated in place.
        biases: None (no biases) or a list of L entries, each None or a writeable 1-D array of
            d_i values; all parameters share one dtype.
        optimizer: a `fastnn.optimizers.SGD` (plain, momentum, Nesterov) or `Adam` whose state
            is updated in place; None is plain SGD.
        lr: the learning rate η (for Adam, the initial one: the step size is η √(1−β2^t)/(1−β1^t)).
        batch: rows per batch; the last batch may be shorter.
        order: None (rows in data order) or integer row indices: the epoch visits X[order[0]],
            X[order[1]], … (a permutation shuffles; a subset trains on part of X). Only one
            batch of rows is gathered at a time: the dataset is never copied.
        alpha: the L2 penalty α >= 0 (weights only, not biases).
        sample_weight: None, or one weight w_r >= 0 per row of X (scikit-learn's weighting: a
            batch's loss is Σ w_r loss_r / S plus (α / 2S) Σ ‖W_i‖², S = Σ w_r over the batch;
            a batch with S = 0 makes no gradient).
        loss: 'log_loss' (softmax cross-entropy against labels y, each row's loss clipped as
            scikit-learn's log_loss clips probabilities to [ε, 1 − ε]) or 'squared_error'
            (½ ‖z − y_r‖² / d_L against y of shape rows × d_L, identity output: MLPRegressor).
    Returns:
        the epoch's mean loss: Σ_batches B · loss_batch / rows visited, each batch's loss taken
        with the parameters before its update (scikit-learn's `loss_curve_` entry).
    """
    X, y, weights, biases, names, bias_names = _validated_biased_net(X, y, weights, biases, in_place=True,
                                                                     sparse=True, loss=loss)
    sample_weight = v.as_sample_weight(sample_weight, X.shape[0], weights[0].dtype)
    optimizer = v.as_optimizer(optimizer)
    order = v.as_order(order, X.shape[0])
    lr, batch = v.as_learning_rate(lr), v.as_batch_size(batch)
    alpha = v.as_nonnegative(alpha, "alpha")
    optimizer._ensure_state(weights, biases)
    first, second = optimizer.buffers()
    buffers = [b for b in (first or []) + (second or []) if b is not None]
    X_arrays, X_names = _data_arrays(X)
    arrays = X_arrays + [y] + weights + [b for b in biases if b is not None] + buffers
    labels = X_names + ["y"] + names + [n for b, n in zip(biases, bias_names) if b is not None] + \
        [f"optimizer buffer {j}" for j in range(len(buffers))]
    v.check_no_overlap(arrays, labels, first_parameter=len(X_arrays) + 1)
    n = X.shape[0] if order is None else order.shape[0]
    return backend_module().train_epoch(X, y, weights, biases, optimizer, lr, batch, order, alpha,
                                        sample_weight, loss) / n


def biased_logits(X: ArrayLike, weights: Sequence[ArrayLike],
                  biases: Optional[Sequence[Optional[ArrayLike]]] = None) -> FloatArray:
    """The logits H_{L-1} W_L + b_L of the net with biases for every row of X."""
    X, _, weights, biases, _, _ = _validated_biased_net(X, None, weights, biases, in_place=False)
    return backend_module().biased_logits(X, weights, biases)
