"""fastnn's public API in a small, fully typed program: `mypy --strict examples/typed_usage.py`
passes (tests/test_packaging.py runs it, and runs the program).

Trains softmax regression, hw0's two-layer net, a net with biases (Adam) and one by `fit` (saved
and loaded back) on a synthetic three-class problem, on every backend this installation has.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np
import numpy.typing as npt

import fastnn

Floats = npt.NDArray[np.float32]
Labels = npt.NDArray[np.uint8]


def three_blobs(n: int, d: int, seed: int = 0) -> tuple[Floats, Labels]:
    """n points in d dimensions around three centres, labelled by their centre."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.uint8)
    centres = 3.0 * rng.standard_normal((3, d))
    X = (centres[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X, y


def softmax_regression(X: Floats, y: Labels) -> float:
    """Error rate after five epochs of hw0's softmax regression."""
    theta: Floats = np.zeros((X.shape[1], 3), dtype=np.float32)
    for _ in range(5):
        fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=50)
    loss, err = fastnn.loss_err(fastnn.matmul(X, theta), y)
    assert np.isfinite(loss)
    return err


def two_layer_net(X: Floats, y: Labels, hidden: int = 16) -> float:
    """Error rate after five epochs of hw0's two-layer ReLU net."""
    rng = np.random.default_rng(1)
    W1: Floats = (rng.standard_normal((X.shape[1], hidden)) / np.sqrt(hidden)).astype(np.float32)
    W2: Floats = (rng.standard_normal((hidden, 3)) / np.sqrt(3)).astype(np.float32)
    for _ in range(5):
        fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=50)
    return fastnn.evaluate(X, y, [W1, W2])[1]


def net_with_biases(X: Floats, y: Labels) -> list[float]:
    """Per-epoch losses of a net with biases trained by Adam, with X as SparseRows."""
    rng = np.random.default_rng(2)
    weights: list[Floats] = [(0.1 * rng.standard_normal(shape)).astype(np.float32)
                             for shape in ((X.shape[1], 16), (16, 3))]
    biases: list[Floats | None] = [np.zeros(16, np.float32), np.zeros(3, np.float32)]
    sparse = fastnn.SparseRows.from_dense(np.where(X > 0, X, 0).astype(np.float32))
    assert sparse is not None
    adam = fastnn.Adam()
    losses = [fastnn.train_epoch(sparse, y, weights, biases, optimizer=adam, lr=1e-2, batch=50)
              for _ in range(5)]
    predicted = fastnn.predict(X, weights)   # without biases: just the call's types
    assert predicted.shape == (X.shape[0],)
    return losses


def fit_save_load(X: Floats, y: Labels) -> float:
    """Test error of a net trained by fastnn.fit, after a round trip through a model file."""
    history = fastnn.fit(X[:400], y[:400], X[400:], y[400:], hidden=(16,), epochs=3, lr=0.1, batch=50)
    with tempfile.TemporaryDirectory() as folder:
        path = fastnn.save_model(os.path.join(folder, "net.npz"), history.model)
        model = fastnn.load_model(path)
    assert model.layer_sizes == [X.shape[1], 16, 3]
    return model.evaluate(X[400:], y[400:])[1]


def main() -> None:
    X, y = three_blobs(600, 10)
    info = fastnn.build_info() if "cpp" in fastnn.available_backends() else {"simd_active": "-"}
    print(f"fastnn {fastnn.__version__}, backends {fastnn.available_backends()}, SIMD {info['simd_active']}")
    for backend in fastnn.available_backends():
        with fastnn.use_backend(backend):
            soft, net, losses = softmax_regression(X, y), two_layer_net(X, y), net_with_biases(X, y)
            fitted = fit_save_load(X, y)
        print(f"{backend:>5}: softmax error {soft:.3f}, two-layer error {net:.3f}, "
              f"Adam losses {losses[0]:.3f} -> {losses[-1]:.3f}, fit + save + load error {fitted:.3f}")
        assert soft < 0.2 and net < 0.2 and fitted < 0.2 and losses[-1] < losses[0]


if __name__ == "__main__":
    main()
