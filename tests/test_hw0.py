"""The checks of CMU 10-414 hw0's own tests (tests/test_simple_ml.py), run against `from fastnn
import *` on both backends, with hw0's reference figures.

hw0's test function                 where its checks run
(the import)                        test_backends.py::test_hw0_star_import_names
test_add                            test_add_*
test_parse_mnist                    test_mnist.py::test_parse_mnist_train: ‖X[:10]‖ = 27.892084,
                                    ‖X[:1000]‖ = 293.0717 (parsing does not depend on the backend)
test_softmax_loss                   test_losses.py: 2.3025850 (zero logits, ln 10), 2.7291998
test_softmax_regression_epoch       test_softmax_epoch_steps_down_the_numerical_gradient,
                                    test_softmax_epoch_on_mnist: ‖θ‖ = 1.0947356
test_nn_epoch                       test_nn_epoch_steps_down_the_numerical_gradient,
                                    test_nn_epoch_on_mnist: ‖W1‖ = 28.437788, ‖W2‖ = 10.455095,
                                    loss/err 0.19770025 / 0.06006667
test_softmax_regression_epoch_cpp   the two softmax tests again, through softmax_regression_epoch_cpp
                                    (parametrised), and test_softmax_regression_epoch_cpp_*

The gradient checks use numdifftools' nd.Gradient on fastnn's softmax_loss, as hw0 does: one
full-batch epoch with lr = 1 moves the parameters by minus the gradient of the batch loss.
"""
import numdifftools as nd
import numpy as np
import pytest

import fastnn
from fastnn import runtime

SOFTMAX_EPOCHS = ["softmax_regression_epoch", "softmax_regression_epoch_cpp"]


def hw0_small_problem():
    """hw0's 50 × 5 problem with 3 classes: float32 X, uint8 y, drawn after seed 0."""
    np.random.seed(0)
    X = np.random.randn(50, 5).astype(np.float32)
    y = np.random.randint(3, size=(50,)).astype(np.uint8)
    return X, y


def test_add_numbers():
    assert fastnn.add(5, 6) == 11
    assert fastnn.add(3.2, 1.0) == 4.2
    assert type(fastnn.add(4.0, 4)) is float


def test_add_arrays_elementwise():
    np.testing.assert_array_equal(fastnn.add(np.array([1, 2]), np.array([3, 4])), [4, 6])


@pytest.mark.parametrize("epoch_name", SOFTMAX_EPOCHS)
def test_softmax_epoch_steps_down_the_numerical_gradient(backend, epoch_name):
    X, y = hw0_small_problem()
    theta = np.zeros((5, 3), dtype=np.float32)
    step = -nd.Gradient(lambda t: fastnn.softmax_loss(X @ t.reshape(5, 3), y))(theta).reshape(5, 3)
    getattr(fastnn, epoch_name)(X, y, theta, lr=1.0, batch=50)
    np.testing.assert_allclose(theta, step, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("epoch_name", SOFTMAX_EPOCHS)
def test_softmax_epoch_on_mnist(backend, epoch_name, mnist_train):
    """Ten batches of 10 from θ = 0, lr 0.1: hw0's ‖θ‖ = 1.0947356."""
    X, y = mnist_train
    theta = np.zeros((X.shape[1], y.max() + 1), dtype=np.float32)
    getattr(fastnn, epoch_name)(X[:100], y[:100], theta, lr=0.1, batch=10)
    np.testing.assert_allclose(np.linalg.norm(theta), 1.0947356, rtol=1e-5, atol=1e-5)


def test_nn_epoch_steps_down_the_numerical_gradient(backend):
    X, y = hw0_small_problem()
    W1 = np.random.randn(5, 10).astype(np.float32) / np.sqrt(10)   # float64 under NumPy 2, as in hw0
    W2 = np.random.randn(10, 3).astype(np.float32) / np.sqrt(3)
    grad_W1 = nd.Gradient(lambda w: fastnn.softmax_loss(np.maximum(X @ w.reshape(5, 10), 0) @ W2, y))(W1)
    grad_W2 = nd.Gradient(lambda w: fastnn.softmax_loss(np.maximum(X @ W1, 0) @ w.reshape(10, 3), y))(W2)
    W1_before, W2_before = W1.copy(), W2.copy()
    fastnn.nn_epoch(X, y, W1, W2, lr=1.0, batch=50)
    np.testing.assert_allclose(W1_before - W1, grad_W1.reshape(5, 10), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(W2_before - W2, grad_W2.reshape(10, 3), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("weight_dtype", ["hw0", "float32"])
def test_nn_epoch_on_mnist(backend, weight_dtype, mnist_train):
    """One epoch over all 60,000 images, hidden 100, lr 0.2, batch 100, from hw0's seed-0 weights:
    hw0's ‖W1‖ = 28.437788, ‖W2‖ = 10.455095, loss/err 0.19770025 / 0.06006667. "hw0" builds
    the weights with hw0's expression, float64 under NumPy 2 (float32 array / np.float64 scalar)
    beside float32 X; "float32" divides before the cast, so the arithmetic is float32."""
    X, y = mnist_train
    np.random.seed(0)
    if weight_dtype == "hw0":
        W1 = np.random.randn(X.shape[1], 100).astype(np.float32) / np.sqrt(100)
        W2 = np.random.randn(100, 10).astype(np.float32) / np.sqrt(10)
    else:
        W1 = (np.random.randn(X.shape[1], 100) / np.sqrt(100)).astype(np.float32)
        W2 = (np.random.randn(100, 10) / np.sqrt(10)).astype(np.float32)
    dtype, W1_id, W2_id = W1.dtype, id(W1), id(W2)
    fastnn.nn_epoch(X, y, W1, W2, lr=0.2, batch=100)
    assert (id(W1), id(W2)) == (W1_id, W2_id) and W1.dtype == W2.dtype == dtype
    np.testing.assert_allclose(np.linalg.norm(W1), 28.437788, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(W2), 10.455095, rtol=1e-5, atol=1e-5)
    loss, err = fastnn.loss_err(np.maximum(X @ W1, 0) @ W2, y)
    np.testing.assert_allclose((loss, err), (0.19770025, 0.06006667), rtol=1e-4, atol=1e-4)


def test_softmax_regression_epoch_cpp_runs_the_cpp_core_under_numpy(monkeypatch):
    """Under the numpy backend it still calls the cpp backend, and updates θ itself in place."""
    from fastnn import cpp_backend
    X, y = hw0_small_problem()
    theta = np.zeros((5, 3), dtype=np.float32)
    expected = theta.copy()
    with fastnn.use_backend("cpp"):
        fastnn.softmax_regression_epoch(X, y, expected, lr=0.5, batch=20)
    calls, cpp_epoch = [], cpp_backend.softmax_regression_epoch

    def recorded_cpp_epoch(*args):
        calls.append(args)
        return cpp_epoch(*args)

    monkeypatch.setattr(cpp_backend, "softmax_regression_epoch", recorded_cpp_epoch)
    with fastnn.use_backend("numpy"):
        assert fastnn.softmax_regression_epoch_cpp(X, y, theta, lr=0.5, batch=20) is None
        assert fastnn.get_backend() == "numpy"
    assert len(calls) == 1 and calls[0][2] is theta
    np.testing.assert_array_equal(theta, expected)


def test_softmax_regression_epoch_cpp_checks_inputs_like_softmax_regression_epoch(backend):
    X, y = hw0_small_problem()
    theta = np.zeros((5, 3), dtype=np.float32)
    theta.flags.writeable = False
    with pytest.raises(ValueError) as direct:
        fastnn.softmax_regression_epoch(X, y, theta, lr=1.0, batch=50)
    with pytest.raises(ValueError) as via_cpp:
        fastnn.softmax_regression_epoch_cpp(X, y, theta, lr=1.0, batch=50)
    assert str(via_cpp.value) == str(direct.value) and str(direct.value).startswith("theta:")


def test_softmax_regression_epoch_cpp_without_extension_says_how_to_build(monkeypatch):
    monkeypatch.setattr(runtime, "_core", None)
    monkeypatch.setattr(runtime, "_core_import_error", ImportError("no module named fastnn._core"), raising=False)
    X, y = hw0_small_problem()
    theta = np.zeros((5, 3), dtype=np.float32)
    with pytest.raises(RuntimeError, match=r"^softmax_regression_epoch_cpp: the compiled extension "
                                           r"fastnn\._core is not available .*pip install"):
        fastnn.softmax_regression_epoch_cpp(X, y, theta, lr=1.0, batch=50)
    assert not theta.any()
