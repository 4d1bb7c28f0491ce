"""The scikit-learn estimators (fastnn.estimators) and the training step under them
(fastnn.api.train_epoch): check_estimator, Pipeline/GridSearchCV, agreement of the backends and
with scikit-learn's own MLPClassifier, gradients, and accuracy on MNIST."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import estimators
from fastnn.api import biased_logits, train_epoch
from fastnn.optimizers import SGD, Adam

sklearn = pytest.importorskip("sklearn")
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

from fastnn.estimators import MLPClassifier, MLPRegressor, SoftmaxRegression  # noqa: E402

BACKENDS = fastnn.available_backends()


def _blobs(n=240, d=6, k=3, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, n)
    X = centers[y] + rng.normal(0, 1, (n, d))
    return X.astype(dtype), y


# ---- scikit-learn's estimator checks: all of them, default-constructed (+ each backend) --------

@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("Est", [MLPClassifier, SoftmaxRegression, MLPRegressor])
def test_check_estimator(Est, backend_name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if backend_name == fastnn.get_backend():
            check_estimator(Est())                    # the default instance, as users make it
        else:
            check_estimator(Est(backend=backend_name))


@pytest.mark.parametrize("Est", [MLPClassifier, MLPRegressor])
def test_check_estimator_lbfgs_tanh(Est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_estimator(Est(solver="lbfgs", activation="tanh", max_iter=50))


def test_pipeline_grid_search():
    from sklearn.datasets import load_iris
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = load_iris(return_X_y=True)
    names = np.array(["setosa", "versicolor", "virginica"])[y]     # string labels
    pipe = Pipeline([("scale", StandardScaler()),
                     ("clf", MLPClassifier(max_iter=60, random_state=0, learning_rate_init=0.01))])
    grid = GridSearchCV(pipe, {"clf__hidden_layer_sizes": [(8,), (16, 8)], "clf__alpha": [1e-4, 1e-2]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, names)
    assert grid.best_score_ > 0.85
    assert set(grid.predict(X)) <= set(names)
    assert grid.predict_proba(X).shape == (150, 3)


# ---- agreement --------------------------------------------------------------------------------

@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both backends")
@pytest.mark.parametrize("params", [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.05, momentum=0.9, nesterovs_momentum=True),
    dict(solver="sgd", learning_rate="invscaling", learning_rate_init=0.1, momentum=0.5,
         nesterovs_momentum=False, fit_intercept=False),
    dict(solver="adam", early_stopping=True, batch_size=32, alpha=0.1),
], ids=["adam", "nesterov", "momentum-invscaling-nobias", "adam-early-stopping"])
def test_backends_agree_through_the_estimator(params):
    X, y = _blobs()
    labels = np.array(["a", "b", "c"])[y]
    fits = {}
    for b in ("numpy", "cpp"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits[b] = MLPClassifier(hidden_layer_sizes=(12, 7), max_iter=15, random_state=3, backend=b,
                                    **params).fit(X, labels)
    a, c = fits["numpy"], fits["cpp"]
    assert a.n_iter_ == c.n_iter_
    np.testing.assert_allclose(a.loss_curve_, c.loss_curve_, rtol=1e-10)
    for P, Q in zip(a.coefs_ + a.intercepts_, c.coefs_ + c.intercepts_):
        np.testing.assert_allclose(P, Q, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.predict_proba(X), c.predict_proba(X), rtol=1e-9, atol=1e-12)
    assert (a.predict(X) == c.predict(X)).all()


@pytest.mark.parametrize("solver_params", [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.05),
    dict(solver="sgd", learning_rate_init=0.05, nesterovs_momentum=False, alpha=0.01),
], ids=["adam", "sgd-nesterov", "sgd-momentum"])
def test_matches_scikit_learn(backend, solver_params):
    """Same initial weights (Glorot-uniform from the same stream), same shuffles, same updates:
    for more than two classes the trained weights equal scikit-learn's to rounding."""
    from sklearn.neural_network import MLPClassifier as SkMLP
    X, y = _blobs(n=150, k=4, seed=1)
    kw = dict(hidden_layer_sizes=(9,), max_iter=8, random_state=0, batch_size=40, **solver_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier(**kw).fit(X, y)
        ref = SkMLP(**kw).fit(X, y)
    for P, Q in zip(ours.coefs_ + ours.intercepts_, ref.coefs_ + ref.intercepts_):
        np.testing.assert_allclose(P, Q, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-7)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), rtol=1e-6, atol=1e-9)


# ---- the training step ------------------------------------------------------------------------

def _net(rng, dims, dtype=np.float64, with_biases=(True, False, True)):
    W = [rng.normal(0, 0.6, (a, b)).astype(dtype) for a, b in zip(dims[:-1], dims[1:])]
    b = [rng.normal(0, 0.3, d).astype(dtype) if on else None for d, on in zip(dims[1:], with_biases)]
    return W, b


def test_gradcheck_of_the_training_step(backend):
    """One plain-SGD step with lr = 1 over one batch moves each parameter by minus its gradient:
    the gradients the step uses (with biases and the L2 term) are checked by finite differences
    of the loss the step reports."""
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(17, 5)), rng.integers(0, 4, 17)
    W, b = _net(rng, [5, 6, 4, 4])
    params = W + [v for v in b if v is not None]
    alpha = 0.3

    def f(ps):
        Wc = [p.copy() for p in ps[:3]]
        it = iter(p.copy() for p in ps[3:])
        bc = [next(it) if v is not None else None for v in b]
        loss = train_epoch(X, y, Wc, bc, SGD(), lr=1.0, batch=17, alpha=alpha)
        after = Wc + [v for v in bc if v is not None]
        return loss, [p - q for p, q in zip(ps, after)]

    errors = fastnn.gradcheck(f, params, tol=1e-6)
    assert max(errors) < 1e-6


def test_train_epoch_loss_and_order_semantics(backend):
    """The returned loss is sklearn's loss_curve_ entry (mean CE + α/(2B)·Σ‖W‖² per batch, taken
    before each update); `order` visits X[order] without copying X; the last batch is shorter."""
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(23, 4)), rng.integers(0, 3, 23)
    W, b = _net(rng, [4, 5, 3], with_biases=(True, True))
    order = rng.permutation(23)[:19]
    W1, b1 = [w.copy() for w in W], [v.copy() for v in b]
    loss = train_epoch(X, y, W1, b1, SGD(), lr=0.0, batch=5, order=order, alpha=0.5)
    Z = biased_logits(X[order], W, b)
    ce = np.mean(np.log(np.exp(Z).sum(1)) - Z[np.arange(19), y[order]])
    sq = sum(float((w ** 2).sum()) for w in W)
    batches = [5, 5, 5, 4]
    expected = ce + sum(0.5 * 0.5 * sq for _ in batches) / 19
    assert loss == pytest.approx(expected, rel=1e-12)
    # the same epoch on the gathered copy gives the same parameters
    W2, b2 = [w.copy() for w in W], [v.copy() for v in b]
    W3, b3 = [w.copy() for w in W], [v.copy() for v in b]
    opt2, opt3 = Adam(), Adam()
    train_epoch(X, y, W2, b2, opt2, lr=0.01, batch=5, order=order, alpha=0.1)
    train_epoch(np.ascontiguousarray(X[order]), y[order], W3, b3, opt3, lr=0.01, batch=5, alpha=0.1)
    assert opt2.t == opt3.t == 4
    for P, Q in zip(W2 + b2, W3 + b3):
        np.testing.assert_allclose(P, Q, rtol=1e-13, atol=1e-15)


def test_train_epoch_validates_before_modifying(backend):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 3)), rng.integers(0, 2, 10)
    W, b = _net(rng, [3, 4, 2], with_biases=(True, True))
    saved = [w.copy() for w in W] + [v.copy() for v in b]
    with pytest.raises(ValueError, match=r"biases\[1\]: expected shape \(2,\)"):
        train_epoch(X, y, W, [b[0], np.zeros(3)], Adam())
    with pytest.raises(ValueError, match=r"order: expected row indices in \[0, 10\)"):
        train_epoch(X, y, W, b, Adam(), order=[0, 10])
    with pytest.raises(TypeError, match=r"biases\[0\]: expected dtype float64"):
        train_epoch(X, y, W, [b[0].astype(np.float32), b[1]], Adam())
    with pytest.raises(ValueError, match="alpha"):
        train_epoch(X, y, W, b, Adam(), alpha=-1.0)
    with pytest.raises(TypeError, match="optimizer"):
        train_epoch(X, y, W, b, "adam")
    with pytest.raises(ValueError, match="separate arrays"):
        train_epoch(X, y, W, [W[0][0], b[1]], Adam())
    opt = Adam()
    train_epoch(X, y, [w.copy() for w in W], None, opt)
    with pytest.raises(ValueError, match="optimizer"):          # state of another network
        train_epoch(X, y, W, b, opt)
    for P, Q in zip(W + b, saved):
        assert np.array_equal(P, Q)


def test_float32_stays_float32_and_agrees(backend):
    X, y = _blobs(dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0).fit(X, y)
        clf64 = MLPClassifier(hidden_layer_sizes=(10,), max_iter=5, random_state=0, dtype="float64").fit(X, y)
    assert all(w.dtype == np.float32 for w in clf.coefs_ + clf.intercepts_)
    assert all(w.dtype == np.float64 for w in clf64.coefs_ + clf64.intercepts_)
    for P, Q in zip(clf.coefs_, clf64.coefs_):
        np.testing.assert_allclose(P, Q, rtol=1e-3, atol=1e-4)


# ---- estimator behaviour ----------------------------------------------------------------------

def test_partial_fit_string_labels_and_determinism():
    X, y = _blobs(n=200, k=3, seed=3)
    names = np.array(["cat", "dog", "emu"])[y]
    clf = MLPClassifier(hidden_layer_sizes=(10,), random_state=0, learning_rate_init=0.01)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, names)
    for _ in range(20):
        clf.partial_fit(X[:100], names[:100], classes=["cat", "dog", "emu"])
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 20   # n_iter_: this call's (scikit-learn's)
    assert list(clf.classes_) == ["cat", "dog", "emu"]
    assert clf.score(X[100:], names[100:]) > 0.9
    with pytest.raises(ValueError, match="classes not in"):
        clf.partial_fit(X[:5], np.array(["cat", "dog", "yak", "emu", "cat"]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(hidden_layer_sizes=(10,), max_iter=7, random_state=11).fit(X, names)
        b = MLPClassifier(hidden_layer_sizes=(10,), max_iter=7, random_state=11).fit(X, names)
    for P, Q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        assert np.array_equal(P, Q)
    if fastnn.get_backend() == "cpp":        # and for any thread count
        threads = fastnn.get_num_threads()
        try:
            fastnn.set_num_threads(1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                c = MLPClassifier(hidden_layer_sizes=(10,), max_iter=7, random_state=11).fit(X, names)
        finally:
            fastnn.set_num_threads(threads)
        for P, Q in zip(a.coefs_ + a.intercepts_, c.coefs_ + c.intercepts_):
            assert np.array_equal(P, Q)


def test_convergence_warning_and_early_stopping():
    X, y = _blobs(n=300, seed=4)
    with pytest.warns(ConvergenceWarning, match="Maximum iterations"):
        MLPClassifier(hidden_layer_sizes=(5,), max_iter=3, random_state=0).fit(X, y)
    clf = MLPClassifier(hidden_layer_sizes=(5,), max_iter=500, random_state=0, early_stopping=True,
                        learning_rate_init=0.01).fit(X, y)
    assert clf.n_iter_ < 500 and len(clf.validation_scores_) == clf.n_iter_
    assert clf.best_validation_score_ == max(clf.validation_scores_) > 0.9
    with pytest.raises(ValueError, match="early_stopping"):
        clf.partial_fit(X, y)


def test_learning_rate_number_means_constant_schedule():
    X, y = _blobs(n=100)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = SoftmaxRegression(solver="sgd", learning_rate=0.05, max_iter=4, random_state=0).fit(X, y)
        b = SoftmaxRegression(solver="sgd", learning_rate="constant", learning_rate_init=0.05,
                              max_iter=4, random_state=0).fit(X, y)
    assert np.array_equal(a.coefs_[0], b.coefs_[0])
    assert a.get_params()["learning_rate"] == 0.05


def test_import_error_without_sklearn(monkeypatch):
    monkeypatch.setattr(estimators, "_SKLEARN_IMPORT_ERROR", ImportError("No module named 'sklearn'"))
    with pytest.raises(ImportError, match=r"fastnn\[sklearn\]"):
        MLPClassifier()


def test_module_imports_in_an_interpreter_without_sklearn():
    """A fresh interpreter in which scikit-learn cannot be imported (sys.modules entry None):
    `import fastnn.estimators` works, constructing any estimator raises ImportError."""
    import subprocess
    import sys
    script = "\n".join([
        "import sys",
        "sys.modules['sklearn'] = None",
        "import fastnn.estimators as e",
        "import fastnn",
        "for name in ('MLPClassifier', 'MLPRegressor', 'SoftmaxRegression'):",
        "    try:",
        "        getattr(fastnn, name)()",
        "    except ImportError as exc:",
        "        assert 'fastnn[sklearn]' in str(exc), exc",
        "    else:",
        "        raise SystemExit(name + ' constructed without scikit-learn')",
        "print('ok')",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# ---- MNIST ------------------------------------------------------------------------------------

def test_mnist_short_fit_accuracy(mnist_train, mnist_test):
    """A 3-epoch fit on the first 20 000 training images beats 92 % test accuracy (0.935 measured)."""
    (X, y), (Xt, yt) = mnist_train, mnist_test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=3, random_state=0).fit(X[:20000], y[:20000])
    acc = clf.score(Xt, yt)
    assert acc > 0.92, acc
