"""hw0's training drivers: train a model for some epochs and print one table row per epoch."""
from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Sequence

import numpy as np

from .api import evaluate, mlp_epoch, nn_epoch, softmax_regression_epoch
from .backends import use_backend
from .validation import with_contiguous_rows

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

    from ._typing import ArrayLike, FloatArray

TABLE_HEADER = "| Epoch | Train Loss | Train Err | Test Loss | Test Err |"
TABLE_ROW = "|  {:>4} |    {:.5f} |   {:.5f} |   {:.5f} |  {:.5f} |"


def _backend_for(cpp):
    return use_backend("cpp") if cpp else contextlib.nullcontext()


def _print_row(epoch, X_tr, y_tr, X_te, y_te, weights):
    train_loss, train_err = evaluate(X_tr, y_tr, weights)
    test_loss, test_err = evaluate(X_te, y_te, weights)
    print(TABLE_ROW.format(epoch, train_loss, train_err, test_loss, test_err))


def train_softmax(X_tr: FloatArray, y_tr: ArrayLike, X_te: FloatArray, y_te: ArrayLike, epochs: int = 10,
                  lr: float = 0.5, batch: int = 100, cpp: bool = False) -> FloatArray:
    """Train softmax regression from Θ = 0 (float32), printing train/test loss and error per
    epoch. `cpp=True` runs on the C++ backend whatever the current one is. Returns Θ."""
    theta = np.zeros((X_tr.shape[1], int(np.max(y_tr)) + 1), dtype=np.float32)
    X_tr, X_te = with_contiguous_rows(X_tr), with_contiguous_rows(X_te)   # once, not every epoch
    with _backend_for(cpp):
        print(TABLE_HEADER)
        for epoch in range(epochs):
            softmax_regression_epoch(X_tr, y_tr, theta, lr=lr, batch=batch)
            _print_row(epoch, X_tr, y_tr, X_te, y_te, [theta])
    return theta


def train_nn(X_tr: FloatArray, y_tr: ArrayLike, X_te: FloatArray, y_te: ArrayLike, hidden_dim: int = 500,
             epochs: int = 10, lr: float = 0.5, batch: int = 100, cpp: bool = False) -> tuple[FloatArray, FloatArray]:
    """Train the two-layer ReLU net from hw0's initialisation (seed 0, W ~ N(0, 1/fan_out)),
    printing train/test loss and error per epoch. Returns (W1, W2)."""
    n, k = X_tr.shape[1], int(np.max(y_tr)) + 1
    np.random.seed(0)
    W1 = np.random.randn(n, hidden_dim).astype(np.float32) / np.sqrt(hidden_dim)
    W2 = np.random.randn(hidden_dim, k).astype(np.float32) / np.sqrt(k)
    X_tr, X_te = with_contiguous_rows(X_tr), with_contiguous_rows(X_te)   # once, not every epoch
    with _backend_for(cpp):
        print(TABLE_HEADER)
        for epoch in range(epochs):
            nn_epoch(X_tr, y_tr, W1, W2, lr=lr, batch=batch)
            _print_row(epoch, X_tr, y_tr, X_te, y_te, [W1, W2])
    return W1, W2


def train_mlp(X_tr: FloatArray, y_tr: ArrayLike, X_te: FloatArray, y_te: ArrayLike, hidden_dims: Sequence[int] = (500,),
              epochs: int = 10, lr: float = 0.5, batch: int = 100, seed: int = 0,
              dtype: DTypeLike = np.float32) -> list[FloatArray]:
    """Train an L-layer ReLU net (hidden sizes `hidden_dims`) with hw0's initialisation scheme,
    printing the per-epoch table. Returns the list of weights."""
    sizes = [X_tr.shape[1], *hidden_dims, int(np.max(y_tr)) + 1]
    rng = np.random.default_rng(seed)
    weights = [(rng.standard_normal((a, b)) / np.sqrt(b)).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    X_tr, X_te = with_contiguous_rows(X_tr), with_contiguous_rows(X_te)   # once, not every epoch
    print(TABLE_HEADER)
    for epoch in range(epochs):
        mlp_epoch(X_tr, y_tr, weights, lr=lr, batch=batch)
        _print_row(epoch, X_tr, y_tr, X_te, y_te, weights)
    return weights
