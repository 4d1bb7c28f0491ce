"""scikit-learn-compatible estimators on fastnn's engine: `MLPClassifier`, `MLPRegressor` and
`SoftmaxRegression`.

    from fastnn.estimators import MLPClassifier, MLPRegressor
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=20, random_state=0).fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)
    reg = MLPRegressor(hidden_layer_sizes=(50,), random_state=0).fit(X, Y)   # Y: 1-D or 2-D

They follow scikit-learn's MLPClassifier / MLPRegressor: the same parameter names, defaults and
meaning, the same Glorot-uniform initialisation drawn from the same random stream, the same
per-epoch shuffling, L2 penalty, loss curve (with log_loss's clipping of the probabilities),
sample weighting, stopping rule (tol / n_iter_no_change / early_stopping), 'lbfgs' solver
(scipy's L-BFGS-B with max_iter, max_fun, tol) and ConvergenceWarning. With 'sgd' and 'adam'
every epoch runs in `fastnn.train_epoch` on the chosen backend (the C++ one by default: the
whole epoch runs without the GIL, and only one batch of rows is gathered at a time). Training
data given as scipy.sparse (CSR, CSC, COO: converted to CSR once) goes to the sparse core as
`fastnn.SparseRows`; on the C++ backend, dense training data that is at most half nonzeros
(MNIST: 19%) is converted too, so that the first layer skips the zeros. See docs/estimators.md
for the table of what is supported.

Differences from scikit-learn, on purpose:
  * the classifier's output layer is always a softmax over the classes, also for two classes
    (scikit-learn uses one logistic unit there): `coefs_[-1]` has one column per class;
  * no multi-label targets; MLPRegressor's loss is 'squared_error' only (no 'poisson');
  * activations other than 'relu' ('identity', 'logistic', 'tanh') train with solver='lbfgs'
    only: the 'sgd'/'adam' epochs (both backends, C++ kernels with ReLU fused into their
    products and sparse first layer) are ReLU nets; other combinations raise ValueError;
  * 'lbfgs' evaluates the loss and gradient over the whole data in NumPy (full_batch.py);
  * `fit_intercept=False` trains without biases (`intercepts_` are then zeros);
  * `learning_rate` also accepts a number: `learning_rate=0.01` means a constant schedule with
    initial rate 0.01 (and `learning_rate_init` is then ignored);
  * `backend` ('numpy', 'cpp', or None for fastnn's current backend) and `dtype` (None: the
    data's float32/float64, as scikit-learn; or 'float32'/'float64') choose how it computes;
  * sample weights must be >= 0; a minibatch whose weights sum to 0 makes no gradient
    (scikit-learn would divide by zero).

scikit-learn is an optional dependency (`pip install fastnn[sklearn]`): this module imports
without it, and constructing an estimator then raises ImportError.
"""
import math
import numbers
import warnings

import numpy as np

from . import api, full_batch
from .backends import get_backend, use_backend
from .optimizers import SGD, Adam
from .sparse import SparseRows

try:
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted
    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data   # sklearn >= 1.6
    except ImportError:   # pragma: no cover - older scikit-learn
        _sk_validate_data = None
    _SKLEARN_IMPORT_ERROR = None
except ImportError as _exc:   # scikit-learn not installed: the module still imports
    _SKLEARN_IMPORT_ERROR = _exc

    class BaseEstimator:   # stand-ins, distinct classes (never instantiated: __init__ raises)
        """Stand-in for sklearn.base.BaseEstimator."""

    class ClassifierMixin:
        """Stand-in for sklearn.base.ClassifierMixin."""

    class RegressorMixin:
        """Stand-in for sklearn.base.RegressorMixin."""

    class ConvergenceWarning(UserWarning):
        """Stand-in for sklearn.exceptions.ConvergenceWarning."""

    def available_if(check):
        return lambda method: method


def _require_sklearn():
    if _SKLEARN_IMPORT_ERROR is not None:
        raise ImportError(
            "fastnn's estimators need scikit-learn: pip install 'fastnn[sklearn]' "
            f"(or pip install scikit-learn) [{_SKLEARN_IMPORT_ERROR}]")


def _validate_data(est, X, y="no_validation", reset=True, **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, reset=reset, **kwargs)
    return est._validate_data(X, y, reset=reset, **kwargs)   # pragma: no cover


def _is_sparse(X):
    return hasattr(X, "tocsr") and not isinstance(X, np.ndarray)


_SPARSE_FORMATS = ["csr", "csc", "coo"]   # accepted; converted to CSR once
_PREDICT_CHUNK = 4096                     # rows of a sparse X made dense at a time to predict


# ---- parameter checks: each takes (value, name) and returns the checked value ------------------

class _Real:
    """A finite real number in [low, high] (open ends where said)."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open

    def __call__(self, value, name):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise ValueError(f"{name}: expected a finite real number, got {value!r}")
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            raise ValueError(f"{name}: expected a number {'>' if self.low_open else '>='} {self.low}, got {value!r}")
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            raise ValueError(f"{name}: expected a number {'<' if self.high_open else '<='} {self.high}, "
                             f"got {value!r}")
        return float(value)


class _Int:
    """An integer >= low."""

    def __init__(self, low):
        self.low = low

    def __call__(self, value, name):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < self.low:
            raise ValueError(f"{name}: expected an integer >= {self.low}, got {value!r}")
        return int(value)


class _Options:
    """One of the given values."""

    def __init__(self, *options):
        self.options = options

    def __call__(self, value, name):
        if not isinstance(value, str) or value not in self.options:
            raise ValueError(f"{name}: expected one of {self.options}, got {value!r}")
        return value


def _boolean(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _unchecked(value, name):   # random_state (check_random_state checks it), verbose
    return value


def _batch_size(value, name):
    return value if isinstance(value, str) and value == "auto" else _Int(1)(value, name)


def _learning_rate(value, name):
    """A schedule name, or a positive number (a constant schedule at that rate)."""
    if isinstance(value, str):
        return _Options("constant", "invscaling", "adaptive")(value, name)
    return _Real(0, low_open=True)(value, name)


def _dtype(value, name):
    if value is None:
        return None
    try:
        dt = np.dtype(value)
    except TypeError:
        dt = None
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"{name}: expected None, 'float32' or 'float64', got {value!r}")
    return dt


def _backend_name(value, name):
    if value is not None and value not in ("numpy", "cpp"):
        raise ValueError(f"{name}: expected None, 'numpy' or 'cpp', got {value!r}")
    return value


def _hidden_layer_sizes(value, name):
    sizes = list(value) if hasattr(value, "__iter__") else [value]
    for s in sizes:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral) or s <= 0:
            raise ValueError(f"hidden_layer_sizes must be > 0, got {value}.")
    return tuple(int(s) for s in sizes)


def _stochastic_solver(est):
    """partial_fit exists for the 'sgd' and 'adam' solvers only (scikit-learn's rule)."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(f"partial_fit is only available for stochastic optimizers. {est.solver} is not stochastic.")
    return True


class _NullContext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


# ---- the shared base -----------------------------------------------------------------------------

class _BaseMLP(BaseEstimator):
    """What the estimators share: their parameters and the checks of them
    (`_parameter_constraints`), initialisation, the stochastic solvers (scikit-learn's
    _fit_stochastic, every epoch in fastnn.train_epoch), 'lbfgs', and the forward pass.
    A subclass adds its own parameters' checks, its targets (`_encode_targets`, `_loss`),
    its output size and its validation score."""

    _parameter_constraints = {
        "solver": _Options("lbfgs", "sgd", "adam"),
        "alpha": _Real(0),
        "batch_size": _batch_size,
        "learning_rate": _learning_rate,
        "learning_rate_init": _Real(0, low_open=True),
        "power_t": _Real(0),
        "max_iter": _Int(1),
        "shuffle": _boolean,
        "random_state": _unchecked,
        "tol": _Real(0),
        "verbose": _unchecked,
        "warm_start": _boolean,
        "momentum": _Real(0, 1),
        "nesterovs_momentum": _boolean,
        "early_stopping": _boolean,
        "validation_fraction": _Real(0, 1, low_open=True, high_open=True),
        "beta_1": _Real(0, 1, high_open=True),
        "beta_2": _Real(0, 1, high_open=True),
        "epsilon": _Real(0, low_open=True),
        "n_iter_no_change": _Int(1),
        "max_fun": _Int(1),
        "fit_intercept": _boolean,
        "backend": _backend_name,
        "dtype": _dtype,
    }
    # The parameters of the estimators with hidden layers (MLPClassifier, MLPRegressor).
    _hidden_layer_constraints = {
        "hidden_layer_sizes": _hidden_layer_sizes,
        "activation": _Options(*full_batch.ACTIVATIONS),
    }

    # On the cpp backend, dense training data with at most this fraction of nonzeros is passed to
    # train_epoch as SparseRows (the first layer skips its zeros; the result equals the dense
    # epoch's up to rounding). None: dense data stays dense. Not a constructor parameter (so
    # get_params, clone and check_estimator do not see it): set it on the class or an instance.
    _sparse_max_density = 0.5

    _loss = None   # 'log_loss' or 'squared_error': the engine's output loss

    def _store_params(self, params):
        """__init__'s body in every subclass: store the parameters unchanged (scikit-learn's rule;
        they are checked at fit time)."""
        _require_sklearn()
        for name, value in params.items():
            if name not in ("self", "__class__"):
                setattr(self, name, value)

    def _checked_params(self):
        """Every constructor parameter checked by its entry of `_parameter_constraints`, plus
        the derived `hidden`, `schedule` and `lr_init`."""
        p = {name: check(getattr(self, name), name) for name, check in self._parameter_constraints.items()}
        p["hidden"] = p.get("hidden_layer_sizes", ())
        if isinstance(p["learning_rate"], str):
            p["schedule"], p["lr_init"] = p["learning_rate"], p["learning_rate_init"]
        else:
            p["schedule"], p["lr_init"] = "constant", p["learning_rate"]
        p.setdefault("activation", "relu")
        if p["activation"] != "relu" and p["solver"] != "lbfgs":
            raise ValueError(f"activation={p['activation']!r} is supported with solver='lbfgs' only: the "
                             f"'sgd'/'adam' epochs train ReLU nets (see fastnn.estimators)")
        return p

    def _backend(self):
        return use_backend(self.backend) if self.backend is not None else _NullContext()

    def _input_dtype(self):
        return np.dtype(self.dtype) if self.dtype is not None else (np.float64, np.float32)

    # ---- fitting ----------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None):
        """Trains on (X, y) from a fresh initialisation (or the current one with warm_start):
        at most `max_iter` epochs ('sgd', 'adam') or iterations ('lbfgs'). X may be scipy.sparse;
        sample_weight: None or one weight >= 0 per row. Returns self."""
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        _require_sklearn()
        p = self._checked_params()
        if incremental and p["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not p["warm_start"] and not incremental)
        # order="C": a Fortran-ordered X (pandas' to_numpy()) copied once, not by every epoch
        X, y = _validate_data(self, X, y, reset=first_pass, dtype=self._input_dtype(), order="C",
                              accept_sparse=_SPARSE_FORMATS, multi_output=self._multi_output)
        if _is_sparse(X):
            X = X.tocsr()
        targets = self._encode_targets(y, first_pass, incremental, classes)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X, dtype=X.dtype)
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], X.dtype, p)
        dtype = self.coefs_[0].dtype
        X = X.astype(dtype, copy=False)
        if self._loss == "squared_error":
            targets = targets.astype(dtype, copy=False)
        if sample_weight is not None:
            sample_weight = sample_weight.astype(dtype, copy=False)
        if p["solver"] == "lbfgs":
            self._fit_lbfgs(X, targets, sample_weight, p)
        else:
            if not incremental or not hasattr(self, "_optimizer"):
                self._optimizer = (Adam(p["beta_1"], p["beta_2"], p["epsilon"]) if p["solver"] == "adam"
                                   else SGD(p["momentum"], p["nesterovs_momentum"]))
                self._learning_rate = p["lr_init"]
            self._fit_stochastic(X, targets, sample_weight, incremental, p)
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _initialize(self, n_features, dtype, p):
        """Glorot-uniform weights and biases, U(±√(f / (fan_in + fan_out))) with f = 6 (2 for
        a logistic activation), drawn in scikit-learn's order (per layer: weights, then biases)
        from `random_state`."""
        self.n_iter_ = 0
        self.t_ = 0
        layer_units = [n_features] + list(p["hidden"]) + [self._output_units()]
        self.n_layers_ = len(layer_units)
        factor = 2.0 if p["activation"] == "logistic" else 6.0
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(factor / (fan_in + fan_out))
            W = self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
            b = self._random_state.uniform(-bound, bound, fan_out).astype(dtype)
            self.coefs_.append(W)
            self.intercepts_.append(b if p["fit_intercept"] else np.zeros(fan_out, dtype=dtype))
        if p["solver"] == "lbfgs":
            return
        self.loss_curve_ = []
        self._no_improvement_count = 0
        if p["early_stopping"]:
            self.validation_scores_ = []
            self.best_validation_score_ = -np.inf
            self.best_loss_ = None
        else:
            self.validation_scores_ = None
            self.best_validation_score_ = None
            self.best_loss_ = np.inf
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [b.copy() for b in self.intercepts_]

    def _fit_lbfgs(self, X, targets, sample_weight, p):
        """scipy's L-BFGS-B on the whole-data loss and gradient (full_batch.py), with scikit-
        learn's options: maxiter=max_iter, maxfun=max_fun, gtol=tol."""
        import scipy.optimize
        from sklearn.utils.optimize import _check_optimize_result
        shapes = [W.shape for W in self.coefs_] + [b.shape for b in self.intercepts_]
        sizes = [int(np.prod(s)) for s in shapes]
        dtype = self.coefs_[0].dtype
        L = len(self.coefs_)

        def unpack(theta):
            parts = np.split(theta, np.cumsum(sizes)[:-1])
            params = [a.reshape(s).astype(dtype) for a, s in zip(parts, shapes)]
            return params[:L], params[L:]

        def objective(theta):
            coefs, intercepts = unpack(theta)
            loss, gW, gb = full_batch.loss_and_gradient(X, targets, coefs, intercepts, p["alpha"],
                                                        p["activation"], self._loss, sample_weight)
            if not p["fit_intercept"]:
                gb = [np.zeros_like(g) for g in gb]
            return loss, np.concatenate([g.ravel() for g in gW + gb]).astype(np.float64)

        theta0 = np.concatenate([a.ravel() for a in self.coefs_ + self.intercepts_]).astype(np.float64)
        result = scipy.optimize.minimize(objective, theta0, method="L-BFGS-B", jac=True,
                                         options={"maxfun": p["max_fun"], "maxiter": p["max_iter"],
                                                  "gtol": p["tol"]})
        self.n_iter_ = _check_optimize_result("lbfgs", result, p["max_iter"])
        self.loss_ = float(result.fun)
        self.coefs_, self.intercepts_ = unpack(result.x)

    def _batch_size(self, n_train):
        if self.batch_size == "auto":
            return min(200, n_train)
        if self.batch_size > n_train:
            warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
        return int(np.clip(self.batch_size, 1, n_train))

    def _fit_stochastic(self, X, targets, sample_weight, incremental, p):
        n = X.shape[0]
        if p["early_stopping"]:
            stratify = targets if self._stratify_validation() else None
            train_idx, val_idx = train_test_split(np.arange(n), random_state=self._random_state,
                                                  test_size=p["validation_fraction"], stratify=stratify)
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            X_val, y_val = X[val_idx], targets[val_idx]
            w_val = None if sample_weight is None else sample_weight[val_idx]
        else:
            train_idx = None
        n_train = n if train_idx is None else train_idx.shape[0]
        batch = self._batch_size(n_train)
        biases = self.intercepts_ if p["fit_intercept"] else None
        sample_idx = np.arange(n_train)
        self.n_iter_ = 0   # scikit-learn counts the iterations of this call only
        try:
            with self._backend():
                X_train = self._training_data(X)
                for _ in range(p["max_iter"]):
                    if p["shuffle"]:   # scikit-learn's utils.shuffle of the index: same stream
                        sample_idx = sample_idx[self._random_state.permutation(n_train)]
                    if train_idx is not None:
                        order = train_idx[sample_idx]
                    else:
                        order = sample_idx if p["shuffle"] else None
                    lr = p["lr_init"] if p["solver"] == "adam" else self._learning_rate
                    self.loss_ = api.train_epoch(X_train, targets, self.coefs_, biases, self._optimizer, lr=lr,
                                                 batch=batch, order=order, alpha=p["alpha"],
                                                 sample_weight=sample_weight, loss=self._loss)
                    self.n_iter_ += 1
                    self.t_ += n_train
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                    if p["early_stopping"]:
                        self._update_no_improvement(self._validation_score(X_val, y_val, w_val), p)
                    else:
                        self._update_no_improvement(None, p)
                    if p["solver"] == "sgd" and p["schedule"] == "invscaling":
                        self._learning_rate = p["lr_init"] / (self.t_ + 1) ** p["power_t"]
                    if self._no_improvement_count > p["n_iter_no_change"]:
                        if self._trigger_stopping(p):
                            break
                        self._no_improvement_count = 0
                    if incremental:
                        break
                    if self.n_iter_ == p["max_iter"]:
                        warnings.warn("Stochastic Optimizer: Maximum iterations (%d) reached and the "
                                      "optimization hasn't converged yet." % p["max_iter"], ConvergenceWarning)
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if p["early_stopping"]:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _training_data(self, X):
        """X for train_epoch: a scipy.sparse X as SparseRows (on either backend); a dense X
        on the cpp backend as SparseRows when at most `_sparse_max_density` of it is nonzero
        (all of X: `order` still selects the training rows); else X itself."""
        if _is_sparse(X):
            return SparseRows.from_scipy(X)
        if self._sparse_max_density is None or get_backend() != "cpp":
            return X
        sparse = SparseRows.from_dense(X, X.dtype, max_density=self._sparse_max_density)
        return X if sparse is None else sparse

    def _update_no_improvement(self, val_score, p):
        if val_score is not None:
            if self.verbose:
                print("Validation score: %f" % val_score)
            self.validation_scores_.append(val_score)
            if val_score < self.best_validation_score_ + p["tol"]:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if val_score > self.best_validation_score_:
                self.best_validation_score_ = val_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [b.copy() for b in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - p["tol"]:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    def _trigger_stopping(self, p):
        """scikit-learn's rule: stop, except SGD with the 'adaptive' schedule, which divides
        the learning rate by 5 until it falls to 1e-6."""
        what = "Validation score did not improve" if p["early_stopping"] else "Training loss did not improve"
        msg = "%s more than tol=%f for %d consecutive epochs." % (what, p["tol"], p["n_iter_no_change"])
        if p["solver"] == "sgd" and p["schedule"] == "adaptive":
            if self._learning_rate <= 1e-6:
                if self.verbose:
                    print(msg + " Learning rate too small. Stopping.")
                return True
            self._learning_rate /= 5.0
            if self.verbose:
                print(msg + " Setting learning rate to %f" % self._learning_rate)
            return False
        if self.verbose:
            print(msg + " Stopping.")
        return True

    # ---- prediction -------------------------------------------------------------------------

    def _outputs(self, X):
        """The net's outputs (before the classifier's softmax) for every row of X (dense, or
        scipy CSR made dense a chunk of rows at a time)."""
        if _is_sparse(X):
            return np.concatenate([self._outputs(X[i:i + _PREDICT_CHUNK].toarray())
                                   for i in range(0, X.shape[0], _PREDICT_CHUNK)])
        activation = getattr(self, "activation", "relu")
        if activation != "relu":
            return full_batch.forward(X, self.coefs_, self.intercepts_, activation)[-1]
        with self._backend():
            return api.biased_logits(X, self.coefs_, self.intercepts_)

    def _checked_X(self, X):
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=self._input_dtype(), accept_sparse=_SPARSE_FORMATS)
        if _is_sparse(X):
            X = X.tocsr()
        return X.astype(self.coefs_[0].dtype, copy=False)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags


# ---- the classifiers -----------------------------------------------------------------------------

class _ClassifierMLP(ClassifierMixin, _BaseMLP):
    """Softmax output over the classes, cross-entropy loss: MLPClassifier and SoftmaxRegression."""

    _loss = "log_loss"
    _multi_output = False

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current parameters and optimizer state.
        `classes` (every label that will ever be seen) is required on the first call."""
        _require_sklearn()
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _encode_targets(self, y, first_pass, incremental, classes):
        """The labels as indices into classes_ (set on the first pass)."""
        check_classification_targets(y)
        if first_pass:
            self.classes_ = unique_labels(classes if (incremental and classes is not None) else y)
            k = len(self.classes_)
            self.n_outputs_ = 1 if k <= 2 else k   # scikit-learn's: one logistic unit for two classes
            self.out_activation_ = "softmax"
        elif not incremental and set(unique_labels(y)) != set(self.classes_):   # warm_start
            raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                             f"previous call to fit. Previously got {self.classes_}, `y` has {unique_labels(y)}")
        y_idx = np.clip(np.searchsorted(self.classes_, y), 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[y_idx], y):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {unique_labels(y)}.")
        return y_idx.astype(np.int64)

    def _output_units(self):
        return len(self.classes_)

    def _stratify_validation(self):
        return len(self.classes_) > 1

    def _validation_score(self, X, y_idx, sample_weight):
        correct = (self._outputs(X).argmax(axis=1) == y_idx).astype(np.float64)
        return float(np.average(correct, weights=sample_weight))

    def predict(self, X):
        """The predicted class label of every row of X."""
        X = self._checked_X(X)
        return self.classes_[self._outputs(X).argmax(axis=1)]

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits), columns in the order of `classes_`."""
        return _softmax(self._outputs(self._checked_X(X)))

    def predict_log_proba(self, X):
        """Logarithm of predict_proba, computed stably."""
        Z = self._outputs(self._checked_X(X))
        Z -= Z.max(axis=1, keepdims=True)
        Z -= np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return Z


class MLPClassifier(_ClassifierMLP):
    """Multi-layer perceptron classifier (hidden layers, softmax output) trained by SGD, Adam
    or L-BFGS on fastnn's engine, with scikit-learn's MLPClassifier parameters, defaults and
    semantics (see the module docstring for the few differences, docs/estimators.md for the
    table).

    Parameters (scikit-learn's unless noted)
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
    activation : {'relu', 'identity', 'logistic', 'tanh'}, default='relu' (non-ReLU: 'lbfgs' only)
    solver : {'adam', 'sgd', 'lbfgs'}, default='adam'
    alpha : float, default=1e-4 — L2 penalty on the weights.
    batch_size : int or 'auto' (min(200, n_samples)), default='auto'
    learning_rate : {'constant', 'invscaling', 'adaptive'} or float, default='constant'
        The schedule of learning_rate_init (SGD only); a number means 'constant' at that rate.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5 (for 'invscaling')
    max_iter : int, default=200 — epochs ('sgd', 'adam') or iterations ('lbfgs').
    shuffle : bool, default=True
    random_state : int, RandomState or None
    tol : float, default=1e-4;  n_iter_no_change : int, default=10
    verbose : bool;  warm_start : bool
    momentum : float, default=0.9;  nesterovs_momentum : bool, default=True (SGD)
    early_stopping : bool, default=False;  validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : Adam's, defaults 0.9, 0.999, 1e-8
    max_fun : int, default=15000 — loss evaluations of 'lbfgs'.
    fit_intercept : bool, default=True (fastnn) — train per-layer biases.
    backend : None, 'numpy' or 'cpp' (fastnn) — None: fastnn's current backend.
    dtype : None, 'float32' or 'float64' (fastnn) — None: the data's float dtype.

    Attributes
    ----------
    classes_, coefs_, intercepts_, n_iter_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, t_, n_features_in_, feature_names_in_, n_layers_, n_outputs_,
    out_activation_ ('softmax').
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints, **_BaseMLP._hidden_layer_constraints}

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, max_fun=15000, fit_intercept=True, backend=None, dtype=None):
        self._store_params(locals())


class SoftmaxRegression(_ClassifierMLP):
    """Multinomial logistic (softmax) regression, X W + b, trained like MLPClassifier without
    hidden layers: the same parameters (less hidden_layer_sizes and activation), defaults and
    attributes (coefs_ = [W], intercepts_ = [b]), except learning_rate_init=0.01: with no hidden
    layer, Adam's 0.001 moves the few weights too slowly for a linear model."""

    def __init__(self, *, solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.01, power_t=0.5, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, max_fun=15000, fit_intercept=True, backend=None,
                 dtype=None):
        self._store_params(locals())


# ---- the regressor -------------------------------------------------------------------------------

class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor (hidden layers, identity output, squared error
    ½ ‖z − y‖² per row averaged over the outputs, as scikit-learn) trained by SGD, Adam or
    L-BFGS on fastnn's engine, with scikit-learn's MLPRegressor parameters and defaults; y may
    have several columns. `score` is R². Parameters as MLPClassifier's, plus

    loss : 'squared_error' (the only one; scikit-learn also has 'poisson')

    Attributes: coefs_, intercepts_, n_iter_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, t_, n_features_in_, feature_names_in_, n_layers_, n_outputs_,
    out_activation_ ('identity').
    """

    _parameter_constraints = {**_BaseMLP._parameter_constraints, **_BaseMLP._hidden_layer_constraints,
                              "loss": _Options("squared_error")}
    _loss = "squared_error"
    _multi_output = True

    def __init__(self, loss="squared_error", hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant", learning_rate_init=0.001,
                 power_t=0.5, max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10,
                 max_fun=15000, fit_intercept=True, backend=None, dtype=None):
        self._store_params(locals())

    @available_if(_stochastic_solver)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current parameters and optimizer state."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _encode_targets(self, y, first_pass, incremental, classes):
        """y as a float matrix rows × outputs (a 1-D y is one output)."""
        Y = np.asarray(y, dtype=np.float64 if y.dtype.kind not in "f" else y.dtype)
        Y = Y.reshape(-1, 1) if Y.ndim == 1 else Y
        if first_pass:
            self.n_outputs_ = Y.shape[1]
            self.out_activation_ = "identity"
        elif Y.shape[1] != self.n_outputs_:
            raise ValueError(f"y: expected {self.n_outputs_} outputs (as in the previous fit), got {Y.shape[1]}")
        return Y

    def _output_units(self):
        return self.n_outputs_

    def _stratify_validation(self):
        return False

    def _validation_score(self, X, Y, sample_weight):
        return float(r2_score(Y, self._outputs(X), sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags

    def predict(self, X):
        """The predicted values: shape (rows,) for one output, else (rows, outputs)."""
        Z = self._outputs(self._checked_X(X))
        return Z.ravel() if Z.shape[1] == 1 else Z
