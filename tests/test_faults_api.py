"""The API's edges from issue 17: fit validates like the rest of the API (same exception type
and wording on both backends), training that diverges to NaN/inf is stopped, train_epoch treats
a huge batch as one batch on both backends, optimizer state set to nonsense is refused."""
import numpy as np
import pytest

import fastnn
from conftest import BACKENDS, random_problem, random_weights
from fastnn.fitting import TrainingDivergedError, fit
from fastnn.optimizers import SGD, Adam


def _problem(n=60, d=8, k=3):
    X, y = random_problem(np.random.default_rng(5), n, d, k, dtype=np.float32)
    y[:k] = np.arange(k)
    return X, y


def _error_on(backend, call):
    with fastnn.use_backend(backend):
        with pytest.raises((TypeError, ValueError)) as info:
            call()
    return type(info.value), str(info.value)


X, Y = _problem()
FIT_CASES = {
    "batch=0": (lambda: fit(X, Y, batch=0), ValueError, "batch: expected an integer >= 1, got 0"),
    "epochs=-3": (lambda: fit(X, Y, epochs=-3), ValueError, "epochs: expected an integer >= 1, got -3"),
    "epochs=1.5": (lambda: fit(X, Y, epochs=1.5), TypeError, "epochs: expected an integer, got float"),
    "n=0": (lambda: fit(X[:0], Y[:0]), ValueError, "X_train: expected a non-empty array, got shape (0, 8)"),
    "y too short": (lambda: fit(X, Y[:-1]), ValueError, "y_train: expected 60 labels (one per row), got 59"),
    "negative label": (lambda: fit(X, -np.ones(60, int)), ValueError, "y_train: expected labels >= 0"),
    "X_test only": (lambda: fit(X, Y, X), ValueError,
                    "X_test, y_test: expected both or neither, got X_test without y_test"),
    "y_test only": (lambda: fit(X, Y, None, Y), ValueError,
                    "y_test, X_test: expected both or neither, got y_test without X_test"),
    "X_test columns": (lambda: fit(X, Y, X[:, :3], Y), ValueError, "X_test: expected 8 columns"),
    "seed=-1": (lambda: fit(X, Y, seed=-1), ValueError, "seed: expected an integer >= 0, got -1"),
    "hidden=0": (lambda: fit(X, Y, hidden=(0,)), ValueError, "hidden[0]: expected an integer >= 1, got 0"),
    "lr=nan": (lambda: fit(X, Y, lr=float("nan")), ValueError, "lr: expected a finite number, got nan"),
    "dtype=int": (lambda: fit(X, Y, dtype=np.int32), TypeError, "dtype: expected float32 or float64"),
    "X int": (lambda: fit(X.astype(int), Y), TypeError, "X_train: expected dtype float32 or float64"),
    "absurd hidden": (lambda: fit(X, Y, hidden=(10**12,)), ValueError, "more than this machine's"),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_validates_like_the_api_on_both_backends(case):
    call, kind, message = FIT_CASES[case]
    results = {b: _error_on(b, call) for b in BACKENDS}
    assert results["numpy"] == results["cpp"], results
    assert results["numpy"][0] is kind and message in results["numpy"][1], results["numpy"]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")     # overflow on the way to NaN
@pytest.mark.parametrize("lr", [1e308, float(np.finfo(np.float32).max)])
def test_fit_stops_when_training_diverges(backend, lr):
    X, y = _problem()
    with pytest.raises(TrainingDivergedError, match=r"training diverged in epoch 1: train loss nan") as info:
        fit(X * 100, y, hidden=(16,), epochs=5, lr=lr, batch=10)
    assert isinstance(info.value, ValueError)
    history = info.value.history
    assert len(history) == 1 and np.isnan(history["train_loss"][0])


@pytest.mark.filterwarnings("ignore::RuntimeWarning", "ignore::UserWarning")
def test_estimators_raise_on_non_finite_weights(backend):
    pytest.importorskip("sklearn")
    X, y = _problem()
    clf = fastnn.MLPClassifier(hidden_layer_sizes=(16,), solver="sgd", learning_rate_init=1e308, max_iter=3)
    with pytest.raises(ValueError, match="Solver produced non-finite parameter weights"):
        clf.fit(X * 100, y)


def test_train_epoch_with_a_huge_batch_is_one_batch_on_both_backends():
    X, y = _problem()
    results = []
    for backend in BACKENDS:
        for batch in (X.shape[0], 10**30, 2**63 - 1):
            w = random_weights(np.random.default_rng(0), [8, 6, 3], dtype=np.float32)
            b = [np.zeros(6, np.float32), np.zeros(3, np.float32)]
            with fastnn.use_backend(backend):
                loss = fastnn.train_epoch(X, y, w, b, Adam(), lr=0.01, batch=batch, order=np.arange(40))
            results.append((backend, batch, loss, w, b))
    ref = results[0]
    for backend, batch, loss, w, b in results[1:]:
        np.testing.assert_allclose(loss, ref[2], rtol=1e-5, err_msg=f"{backend} batch {batch}")
        for got, want in zip(w + b, ref[3] + ref[4]):
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=f"{backend} batch {batch}")


def _adam_with(**state):
    opt = Adam()
    for key, value in state.items():
        setattr(opt, key, value)
    return opt


BAD_OPTIMIZERS = {
    "Adam.t=-1": (lambda: _adam_with(t=-1), ValueError, "t: expected an integer step count >= 0, got -1"),
    "Adam.t=1.5": (lambda: _adam_with(t=1.5), TypeError, "t: expected an integer step count, got float"),
    "Adam.t=True": (lambda: _adam_with(t=True), TypeError, "t: expected an integer step count, got bool"),
    "Adam.beta_1=1": (lambda: _adam_with(beta_1=1.0), ValueError, "beta_1: expected a number in [0.0, 1.0)"),
    "Adam.epsilon=0": (lambda: _adam_with(epsilon=0.0), ValueError, "epsilon: expected a number in (0.0, inf)"),
    "Adam.ms without vs": (lambda: _adam_with(ms=[None] * 2), ValueError, "ms and vs must both be set"),
    "Adam.ms of lists": (lambda: _adam_with(ms=[[0.0]] * 2, vs=[None] * 2), TypeError,
                         "optimizer: ms[0] is a list, expected a numpy.ndarray or None"),
    "SGD.momentum=-1": (lambda: _sgd_with(momentum=-1.0), ValueError, "momentum: expected a number in [0.0, 1.0]"),
    "SGD.nesterov=1": (lambda: _sgd_with(nesterov=1), TypeError, "nesterov: expected a bool, got int"),
}


def _sgd_with(**state):
    opt = SGD(momentum=0.9)
    for key, value in state.items():
        setattr(opt, key, value)
    return opt


@pytest.mark.parametrize("case", sorted(BAD_OPTIMIZERS))
def test_invalid_optimizer_state_is_refused_on_both_backends(case):
    make, kind, message = BAD_OPTIMIZERS[case]
    X, y = _problem()
    results = {}
    for backend in BACKENDS:
        w = random_weights(np.random.default_rng(0), [8, 3], dtype=np.float32)
        before = [a.copy() for a in w]
        results[backend] = _error_on(backend, lambda: fastnn.train_epoch(X, y, w, None, make(), lr=0.01))
        for a, b in zip(w, before):
            np.testing.assert_array_equal(a, b)        # refused before anything changed
    assert results["numpy"] == results["cpp"], results
    assert results["numpy"][0] is kind and message in results["numpy"][1], results["numpy"]
