"""scikit-learn parity of the estimators (issue 18): MLPRegressor, the 'lbfgs' solver and its
activations, sample_weight (and its metadata routing), scipy.sparse input, and the attributes
n_outputs_, n_iter_ (warm_start) and loss_curve_ as scikit-learn sets them."""
import warnings

import numpy as np
import pytest

import fastnn

sklearn = pytest.importorskip("sklearn")
import scipy.sparse as sp  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402

from fastnn.estimators import MLPClassifier, MLPRegressor, SoftmaxRegression  # noqa: E402


def _classes(n=150, d=6, k=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 2, (k, d))
    y = rng.integers(0, k, n)
    return centers[y] + rng.normal(0, 1, (n, d)), y


def _regression(n=150, d=6, outputs=2, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    Y = np.tanh(X @ rng.normal(size=(d, outputs))) + 0.05 * rng.normal(size=(n, outputs))
    return X, (Y[:, 0] if outputs == 1 else Y)


def _quiet_fit(est, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(*args, **kw)


def _assert_same_params(a, b, rtol, atol):
    assert len(a.coefs_) == len(b.coefs_)
    for P, Q in zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_):
        np.testing.assert_allclose(P, Q, rtol=rtol, atol=atol)


# ---- attributes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("k", [2, 3, 5])
def test_n_outputs_is_scikit_learns(k):
    X, y = _classes(k=k)
    ours = _quiet_fit(MLPClassifier((5,), max_iter=2, random_state=0), X, y)
    ref = _quiet_fit(SkClassifier((5,), max_iter=2, random_state=0), X, y)
    assert ours.n_outputs_ == ref.n_outputs_ == (1 if k == 2 else k)
    X, Y = _regression(outputs=3)
    reg = _quiet_fit(MLPRegressor(hidden_layer_sizes=(5,), max_iter=2, random_state=0), X, Y)
    assert reg.n_outputs_ == 3 and reg.out_activation_ == "identity"


@pytest.mark.parametrize("Ours, Ref, data", [(MLPClassifier, SkClassifier, _classes),
                                             (MLPRegressor, SkRegressor, _regression)],
                         ids=["classifier", "regressor"])
def test_warm_start_n_iter_counts_the_last_fit(Ours, Ref, data):
    X, y = data()
    kw = dict(hidden_layer_sizes=(7,), max_iter=3, warm_start=True, random_state=0)
    ours, ref = Ours(**kw), Ref(**kw)
    for _ in range(2):
        _quiet_fit(ours, X, y)
        _quiet_fit(ref, X, y)
    assert ours.n_iter_ == ref.n_iter_ == 3
    assert len(ours.loss_curve_) == len(ref.loss_curve_) == 6
    assert ours.t_ == ref.t_
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-7)


def test_loss_curve_clips_like_scikit_learn(backend):
    """Large standardized inputs give some rows a label probability below ε at first: their
    loss counts −log ε, as in scikit-learn's log_loss, so the curves agree from the first epoch."""
    X, y = _classes(n=200, k=5, seed=2)
    X = (X - X.mean(0)) / X.std(0) * 40
    kw = dict(hidden_layer_sizes=(20,), max_iter=4, random_state=0, batch_size=50)
    ours = _quiet_fit(MLPClassifier(**kw), X, y)
    ref = _quiet_fit(SkClassifier(**kw), X, y)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-7)
    _assert_same_params(ours, ref, rtol=1e-6, atol=1e-9)


# ---- MLPRegressor ---------------------------------------------------------------------------------

@pytest.mark.parametrize("outputs", [1, 3])
@pytest.mark.parametrize("solver_params", [
    dict(solver="adam"),
    dict(solver="sgd", learning_rate_init=0.01),
    dict(solver="adam", early_stopping=True, max_iter=30, alpha=0.01),
], ids=["adam", "sgd", "adam-early-stopping"])
def test_regressor_matches_scikit_learn(backend, outputs, solver_params):
    X, Y = _regression(outputs=outputs)
    kw = dict(hidden_layer_sizes=(9, 4), max_iter=8, random_state=0, batch_size=40)
    kw.update(solver_params)
    ours = _quiet_fit(MLPRegressor(**kw), X, Y)
    ref = _quiet_fit(SkRegressor(**kw), X, Y)
    assert ours.n_iter_ == ref.n_iter_
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-7)
    _assert_same_params(ours, ref, rtol=1e-6, atol=1e-9)
    assert ours.predict(X).shape == ref.predict(X).shape
    np.testing.assert_allclose(ours.predict(X), ref.predict(X), rtol=1e-6, atol=1e-9)
    assert ours.score(X, Y) == pytest.approx(ref.score(X, Y), rel=1e-6)


def test_regressor_learns_and_partial_fit_continues():
    X, Y = _regression(n=400, outputs=2, seed=3)
    reg = _quiet_fit(MLPRegressor(hidden_layer_sizes=(30,), max_iter=300, random_state=0,
                                  learning_rate_init=0.01), X, Y)
    assert reg.score(X, Y) > 0.9
    before = reg.loss_curve_[-1]
    reg.partial_fit(X, Y)
    assert reg.n_iter_ == 1 and len(reg.loss_curve_) > 1 and reg.loss_curve_[-1] <= before * 1.5
    with pytest.raises(ValueError, match="loss"):
        MLPRegressor(loss="poisson").fit(X, Y)


# ---- lbfgs and activations ------------------------------------------------------------------------

@pytest.mark.parametrize("activation", ["relu", "tanh", "logistic", "identity"])
@pytest.mark.parametrize("Ours, Ref, data", [(MLPClassifier, SkClassifier, _classes),
                                             (MLPRegressor, SkRegressor, _regression)],
                         ids=["classifier", "regressor"])
def test_lbfgs_matches_scikit_learn(Ours, Ref, data, activation):
    """The same initial point, objective and options (maxiter, maxfun, gtol): scipy's L-BFGS-B
    takes the same steps (more than two classes: both use a softmax)."""
    X, y = data()
    kw = dict(hidden_layer_sizes=(6,), activation=activation, solver="lbfgs", max_iter=25,
              random_state=0, alpha=1e-3)
    ours = _quiet_fit(Ours(**kw), X, y)
    ref = _quiet_fit(Ref(**kw), X, y)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.loss_ == pytest.approx(ref.loss_, rel=1e-6)
    _assert_same_params(ours, ref, rtol=1e-5, atol=1e-7)
    assert not hasattr(ours, "loss_curve_") and not hasattr(ref, "loss_curve_")


def test_lbfgs_max_fun_and_convergence_warning():
    X, y = _classes()
    with pytest.warns(ConvergenceWarning):
        clf = MLPClassifier((5,), solver="lbfgs", max_fun=5, random_state=0).fit(X, y)
    assert clf.n_iter_ <= 5
    assert not hasattr(clf, "partial_fit")          # scikit-learn's: stochastic solvers only
    with pytest.raises(AttributeError, match="partial_fit"):
        clf.partial_fit(X, y)


@pytest.mark.parametrize("activation", ["tanh", "logistic", "identity"])
def test_non_relu_activation_needs_lbfgs(activation):
    X, y = _classes()
    with pytest.raises(ValueError, match=r"activation='%s' is supported with solver='lbfgs' only" % activation):
        MLPClassifier((5,), activation=activation, solver="adam").fit(X, y)
    with pytest.raises(ValueError, match="activation"):
        MLPClassifier((5,), activation="softplus").fit(X, y)


# ---- sample_weight --------------------------------------------------------------------------------

_SOLVERS = [dict(solver="adam"), dict(solver="sgd", learning_rate_init=0.05), dict(solver="lbfgs")]


@pytest.mark.parametrize("solver_params", _SOLVERS, ids=["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("Est, data", [(MLPClassifier, _classes), (SoftmaxRegression, _classes),
                                       (MLPRegressor, _regression)],
                         ids=["classifier", "softmax", "regressor"])
def test_fit_zero_sample_weights_equal_dropping_those_rows(backend, Est, data, solver_params):
    """One batch holds all rows (batch_size 'auto' = min(200, n)): rows of weight 0 are as if
    they were not there."""
    X, y = data(n=120)
    w = np.ones(120)
    w[::5] = 0
    keep = w > 0
    kw = dict(max_iter=6, random_state=0, **solver_params)
    a = _quiet_fit(Est(**kw), X, y, sample_weight=w)
    b = _quiet_fit(Est(**kw), X[keep], y[keep])
    _assert_same_params(a, b, rtol=1e-9, atol=1e-11)
    if solver_params["solver"] != "lbfgs":
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-10)


@pytest.mark.parametrize("solver_params", _SOLVERS, ids=["adam", "sgd", "lbfgs"])
@pytest.mark.parametrize("Est, data", [(MLPClassifier, _classes), (MLPRegressor, _regression)],
                         ids=["classifier", "regressor"])
def test_fit_integer_sample_weights_equal_repeated_rows(backend, Est, data, solver_params):
    X, y = data(n=60)
    w = np.random.default_rng(1).integers(1, 4, 60)
    kw = dict(max_iter=6, random_state=0, **solver_params)
    a = _quiet_fit(Est(**kw), X, y, sample_weight=w)
    b = _quiet_fit(Est(**kw), np.repeat(X, w, axis=0), np.repeat(y, w, axis=0))
    _assert_same_params(a, b, rtol=1e-9, atol=1e-11)


def test_sample_weight_matches_scikit_learn_minibatches(backend):
    """Shuffled minibatches with real-valued weights: scikit-learn's weighted updates."""
    X, y = _classes(n=150, k=4, seed=4)
    w = np.random.default_rng(2).uniform(0, 3, 150)
    kw = dict(hidden_layer_sizes=(8,), max_iter=5, random_state=0, batch_size=32)
    ours = _quiet_fit(MLPClassifier(**kw), X, y, sample_weight=w)
    ref = _quiet_fit(SkClassifier(**kw), X, y, sample_weight=w)
    np.testing.assert_allclose(ours.loss_curve_, ref.loss_curve_, rtol=1e-7)
    _assert_same_params(ours, ref, rtol=1e-6, atol=1e-9)
    ours.partial_fit(X, y, sample_weight=w)
    ref.partial_fit(X, y, sample_weight=w)
    _assert_same_params(ours, ref, rtol=1e-6, atol=1e-9)


def test_set_fit_request_routes_sample_weight():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    X, y = _classes(n=100)
    w = np.random.default_rng(3).uniform(0, 2, 100)
    with sklearn.config_context(enable_metadata_routing=True):
        est = MLPClassifier((6,), max_iter=5, random_state=0).set_fit_request(sample_weight=True)
        pipe = make_pipeline(StandardScaler().set_fit_request(sample_weight=False), est)
        _quiet_fit(pipe, X, y, sample_weight=w)
        direct = _quiet_fit(MLPClassifier((6,), max_iter=5, random_state=0),
                            StandardScaler().fit_transform(X), y, sample_weight=w)
        unweighted = _quiet_fit(MLPClassifier((6,), max_iter=5, random_state=0),
                                StandardScaler().fit_transform(X), y)
    _assert_same_params(pipe[-1], direct, rtol=1e-12, atol=1e-14)
    assert not np.allclose(direct.coefs_[0], unweighted.coefs_[0])


# ---- scipy.sparse input ---------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
@pytest.mark.parametrize("Est, data", [(MLPClassifier, _classes), (SoftmaxRegression, _classes),
                                       (MLPRegressor, _regression)],
                         ids=["classifier", "softmax", "regressor"])
def test_sparse_input_equals_dense_input(backend, dtype, Est, data, fmt):
    """fit, partial_fit, predict (and predict_proba) on CSR/CSC/COO X equal the dense X's
    results within float rounding (the sparse core: SparseRows)."""
    X, y = data(n=130)
    rng = np.random.default_rng(5)
    X = (X * (rng.random(X.shape) < 0.4)).astype(dtype)
    Xs = sp.csr_matrix(X).asformat(fmt)
    w = rng.uniform(0.5, 2, X.shape[0])
    kw = dict(max_iter=5, random_state=0, batch_size=32)
    dense = Est(**kw)
    dense._sparse_max_density = None          # the dense X stays dense on the cpp backend too
    a = _quiet_fit(Est(**kw), Xs, y, sample_weight=w)
    b = _quiet_fit(dense, X, y, sample_weight=w)
    a.partial_fit(Xs, y)
    b.partial_fit(X, y)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, **tol)
    _assert_same_params(a, b, **tol)
    assert a.coefs_[0].dtype == dtype
    np.testing.assert_allclose(a.predict(Xs) if Est is MLPRegressor else a.predict_proba(Xs),
                               b.predict(X) if Est is MLPRegressor else b.predict_proba(X), **tol)


def test_sparse_input_with_lbfgs_and_early_stopping():
    X, y = _classes(n=200)
    X[np.abs(X) < 1] = 0
    Xs = sp.csr_matrix(X)
    for kw in (dict(solver="lbfgs", max_iter=20), dict(early_stopping=True, max_iter=15)):
        a = _quiet_fit(MLPClassifier((8,), random_state=0, **kw), Xs, y)
        b = _quiet_fit(MLPClassifier((8,), random_state=0, **kw), X, y)
        _assert_same_params(a, b, rtol=1e-8, atol=1e-10)
        assert (a.predict(Xs) == b.predict(X)).all()
