"""scikit-learn-compatible classifiers on fastnn's engine: `MLPClassifier` and `SoftmaxRegression`.

    from fastnn.estimators import MLPClassifier
    clf = MLPClassifier(hidden_layer_sizes=(100,), max_iter=20, random_state=0).fit(X, y)
    clf.predict(X_test), clf.predict_proba(X_test), clf.score(X_test, y_test)

They follow scikit-learn's `MLPClassifier`: the same parameter names, defaults and meaning (for
the 'sgd' and 'adam' solvers and the ReLU activation), the same Glorot-uniform initialisation
drawn from the same random stream, the same per-epoch shuffling, L2 penalty, loss curve,
stopping rule (tol / n_iter_no_change / early_stopping) and ConvergenceWarning. Every epoch runs
in `fastnn.train_epoch` on the chosen backend (the C++ one by default: the whole epoch runs
without the GIL, and only one batch of rows is gathered at a time). On the C++ backend, training
data that is at most half nonzeros (MNIST: 19%) is converted once per fit/partial_fit call to
`fastnn.SparseRows`, so that the first layer skips the zeros; predictions stay dense.

Differences from scikit-learn, on purpose:
  * the output layer is always a softmax over the classes, also for two classes (scikit-learn
    uses one logistic unit there): `coefs_[-1]` has one column per class;
  * `fit_intercept=False` trains without biases (`intercepts_` are then zeros);
  * `learning_rate` also accepts a number: `learning_rate=0.01` means a constant schedule with
    initial rate 0.01 (and `learning_rate_init` is then ignored); the strings 'constant',
    'invscaling' and 'adaptive' are scikit-learn's schedules of `learning_rate_init`;
  * `backend` ('numpy', 'cpp', or None for fastnn's current backend) and `dtype` (None: the
    data's float32/float64, as scikit-learn; or 'float32'/'float64') choose how it computes;
  * no `sample_weight`, no scipy.sparse input, no multi-label targets, activation 'relu' only,
    no 'lbfgs' solver.

scikit-learn is an optional dependency (`pip install fastnn[sklearn]`): this module imports
without it, and constructing an estimator then raises ImportError.
"""
import math
import numbers
import warnings

import numpy as np

from . import api
from .backends import get_backend, use_backend
from .optimizers import SGD, Adam
from .sparse import SparseRows

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.utils import check_random_state
    from sklearn.utils.multiclass import check_classification_targets, unique_labels
    from sklearn.utils.validation import check_is_fitted
    try:
        from sklearn.utils.validation import validate_data as _sk_validate_data   # sklearn >= 1.6
    except ImportError:   # pragma: no cover - older scikit-learn
        _sk_validate_data = None
    _SKLEARN_IMPORT_ERROR = None
except ImportError as _exc:   # scikit-learn not installed: the module still imports
    _SKLEARN_IMPORT_ERROR = _exc
    BaseEstimator = ClassifierMixin = object

    class ConvergenceWarning(UserWarning):
        """Stand-in for sklearn.exceptions.ConvergenceWarning."""


def _require_sklearn():
    if _SKLEARN_IMPORT_ERROR is not None:
        raise ImportError(
            "fastnn's estimators need scikit-learn: pip install 'fastnn[sklearn]' "
            f"(or pip install scikit-learn) [{_SKLEARN_IMPORT_ERROR}]")


def _validate_data(est, X, y="no_validation", reset=True, **kwargs):
    if _sk_validate_data is not None:
        return _sk_validate_data(est, X, y, reset=reset, **kwargs)
    return est._validate_data(X, y, reset=reset, **kwargs)   # pragma: no cover


_SOLVERS = ("sgd", "adam")
_SCHEDULES = ("constant", "invscaling", "adaptive")


def _check_real(value, name, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite real number, got {value!r}")
    if low is not None and (value <= low if low_open else value < low):
        raise ValueError(f"{name}: expected a number {'>' if low_open else '>='} {low}, got {value!r}")
    if high is not None and (value >= high if high_open else value > high):
        raise ValueError(f"{name}: expected a number {'<' if high_open else '<='} {high}, got {value!r}")
    return float(value)


def _check_int(value, name, low):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return int(value)


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _softmax(Z):
    Z = Z - Z.max(axis=1, keepdims=True)
    np.exp(Z, out=Z)
    Z /= Z.sum(axis=1, keepdims=True)
    return Z


class _FastnnClassifierBase(ClassifierMixin, BaseEstimator):
    """The training loop shared by the estimators (scikit-learn's _fit_stochastic, with every
    epoch in fastnn.train_epoch). Subclasses define __init__ and _hidden_layer_sizes()."""

    # On the cpp backend, training data with at most this fraction of nonzeros is passed to
    # train_epoch as SparseRows (the first layer skips its zeros; the result equals the dense
    # epoch's up to rounding). None: always dense. Not a constructor parameter (so get_params,
    # clone and check_estimator do not see it): set it on the class or on an instance.
    _sparse_max_density = 0.5

    def _hidden_layer_sizes(self):
        raise NotImplementedError

    # ---- parameters -------------------------------------------------------------------------

    def _checked_params(self):
        """Validates the hyper-parameters (at fit time: __init__ stores them unchanged)."""
        hidden = self._hidden_layer_sizes()
        if self.solver not in _SOLVERS:
            raise ValueError(f"solver: expected one of {_SOLVERS}, got {self.solver!r}")
        if getattr(self, "activation", "relu") != "relu":
            raise ValueError(f"activation: only 'relu' is supported, got {self.activation!r}")
        lr = self.learning_rate
        if isinstance(lr, str):
            if lr not in _SCHEDULES:
                raise ValueError(f"learning_rate: expected one of {_SCHEDULES} or a positive number, got {lr!r}")
            schedule, lr_init = lr, _check_real(self.learning_rate_init, "learning_rate_init", 0, low_open=True)
        else:
            schedule, lr_init = "constant", _check_real(lr, "learning_rate", 0, low_open=True)
        if self.batch_size != "auto":
            _check_int(self.batch_size, "batch_size", 1)
        if self.dtype is not None:
            try:
                dt = np.dtype(self.dtype)
            except TypeError:
                dt = None
            if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
                raise ValueError(f"dtype: expected None, 'float32' or 'float64', got {self.dtype!r}")
        if self.backend is not None and self.backend not in ("numpy", "cpp"):
            raise ValueError(f"backend: expected None, 'numpy' or 'cpp', got {self.backend!r}")
        return dict(
            hidden=hidden, schedule=schedule, lr_init=lr_init,
            alpha=_check_real(self.alpha, "alpha", 0),
            max_iter=_check_int(self.max_iter, "max_iter", 1),
            tol=_check_real(self.tol, "tol", 0),
            n_iter_no_change=_check_int(self.n_iter_no_change, "n_iter_no_change", 1),
            momentum=_check_real(self.momentum, "momentum", 0, 1),
            nesterov=_check_bool(self.nesterovs_momentum, "nesterovs_momentum"),
            beta_1=_check_real(self.beta_1, "beta_1", 0, 1, high_open=True),
            beta_2=_check_real(self.beta_2, "beta_2", 0, 1, high_open=True),
            epsilon=_check_real(self.epsilon, "epsilon", 0, low_open=True),
            power_t=_check_real(self.power_t, "power_t", 0),
            validation_fraction=_check_real(self.validation_fraction, "validation_fraction", 0, 1,
                                            low_open=True, high_open=True),
            shuffle=_check_bool(self.shuffle, "shuffle"),
            early_stopping=_check_bool(self.early_stopping, "early_stopping"),
            warm_start=_check_bool(self.warm_start, "warm_start"),
            fit_intercept=_check_bool(self.fit_intercept, "fit_intercept"),
        )

    def _backend(self):
        return use_backend(self.backend) if self.backend is not None else _NullContext()

    def _input_dtype(self):
        return np.dtype(self.dtype) if self.dtype is not None else (np.float64, np.float32)

    # ---- fitting ----------------------------------------------------------------------------

    def fit(self, X, y):
        """Trains on (X, y) from a fresh initialisation (or the current one with warm_start)
        for at most `max_iter` epochs. Returns self."""
        return self._fit(X, y, incremental=False)

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y), continuing from the current parameters and optimizer state.
        `classes` (every label that will ever be seen) is required on the first call."""
        _require_sklearn()
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
        elif classes is not None and not np.array_equal(self.classes_, unique_labels(classes)):
            raise ValueError(f"`classes={classes!r}` is not the same as on last call to "
                             f"partial_fit, was: {self.classes_!r}")
        return self._fit(X, y, incremental=True, classes=classes)

    def _fit(self, X, y, incremental, classes=None):
        _require_sklearn()
        p = self._checked_params()
        if incremental and p["early_stopping"]:
            raise ValueError("partial_fit does not support early_stopping=True")
        first_pass = not hasattr(self, "coefs_") or (not p["warm_start"] and not incremental)
        X, y = _validate_data(self, X, y, reset=first_pass, dtype=self._input_dtype())
        check_classification_targets(y)
        if first_pass:
            self.classes_ = unique_labels(classes if (incremental and classes is not None) else y)
        elif not incremental and set(unique_labels(y)) != set(self.classes_):   # warm_start
            raise ValueError("warm_start can only be used where `y` has the same classes as in the "
                             f"previous call to fit. Previously got {self.classes_}, `y` has {unique_labels(y)}")
        y_idx = np.searchsorted(self.classes_, y)
        y_idx = np.clip(y_idx, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[y_idx], y):
            raise ValueError(f"`y` has classes not in `self.classes_`. `self.classes_` has "
                             f"{self.classes_}. 'y' has {unique_labels(y)}.")
        y_idx = y_idx.astype(np.int64)

        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(X.shape[1], X.dtype, p)
        X = X.astype(self.coefs_[0].dtype, copy=False)
        if not incremental or not hasattr(self, "_optimizer"):
            self._optimizer = (Adam(p["beta_1"], p["beta_2"], p["epsilon"]) if self.solver == "adam"
                               else SGD(p["momentum"], p["nesterov"]))
            self._learning_rate = p["lr_init"]
        self._fit_stochastic(X, y_idx, incremental, p)
        if not all(np.isfinite(w).all() for w in self.coefs_ + self.intercepts_):
            raise ValueError("Solver produced non-finite parameter weights. The input data may "
                             "contain large values and need to be preprocessed.")
        return self

    def _initialize(self, n_features, dtype, p):
        """Glorot-uniform weights and biases, U(±√(6 / (fan_in + fan_out))), drawn in
        scikit-learn's order (per layer: weights, then biases) from `random_state`."""
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = 1
        self.out_activation_ = "softmax"
        layer_units = [n_features] + list(p["hidden"]) + [len(self.classes_)]
        self.n_layers_ = len(layer_units)
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:]):
            bound = np.sqrt(6.0 / (fan_in + fan_out))
            W = self._random_state.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
            b = self._random_state.uniform(-bound, bound, fan_out).astype(dtype)
            self.coefs_.append(W)
            self.intercepts_.append(b if p["fit_intercept"] else np.zeros(fan_out, dtype=dtype))
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

    def _fit_stochastic(self, X, y, incremental, p):
        n = X.shape[0]
        if p["early_stopping"]:
            stratify = y if len(self.classes_) > 1 else None
            train_idx, val_idx = train_test_split(np.arange(n), random_state=self._random_state,
                                                  test_size=p["validation_fraction"], stratify=stratify)
            if val_idx.shape[0] < 2:
                raise ValueError("The validation set is too small. Increase 'validation_fraction' "
                                 "or the size of your dataset.")
            X_val, y_val = X[val_idx], y[val_idx]
        else:
            train_idx = None
        n_train = n if train_idx is None else train_idx.shape[0]
        if self.batch_size == "auto":
            batch = min(200, n_train)
        else:
            if self.batch_size > n_train:
                warnings.warn("Got `batch_size` less than 1 or larger than sample size. It is going to be clipped")
            batch = int(np.clip(self.batch_size, 1, n_train))
        biases = self.intercepts_ if p["fit_intercept"] else None
        sample_idx = np.arange(n_train)
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
                    lr = p["lr_init"] if self.solver == "adam" else self._learning_rate
                    self.loss_ = api.train_epoch(X_train, y, self.coefs_, biases, self._optimizer, lr=lr,
                                                 batch=batch, order=order, alpha=p["alpha"])
                    self.n_iter_ += 1
                    self.t_ += n_train
                    self.loss_curve_.append(self.loss_)
                    if self.verbose:
                        print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                    if p["early_stopping"]:
                        score = float(np.mean(self._predict_indices(X_val) == y_val))
                        self._update_no_improvement(score, p)
                    else:
                        self._update_no_improvement(None, p)
                    if self.solver == "sgd" and p["schedule"] == "invscaling":
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
        """X, or on the cpp backend SparseRows of X when at most `_sparse_max_density` of it is
        nonzero (all of X: `order` still selects the training rows)."""
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
        if self.solver == "sgd" and p["schedule"] == "adaptive":
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

    def _logits(self, X):
        with self._backend():
            return api.biased_logits(X, self.coefs_, self.intercepts_)

    def _predict_indices(self, X):
        return self._logits(X).argmax(axis=1)

    def _checked_X(self, X):
        check_is_fitted(self)
        X = _validate_data(self, X, reset=False, dtype=self._input_dtype())
        return X.astype(self.coefs_[0].dtype, copy=False)

    def predict(self, X):
        """The predicted class label of every row of X."""
        X = self._checked_X(X)
        return self.classes_[self._predict_indices(X)]

    def predict_proba(self, X):
        """Class probabilities (softmax of the logits), columns in the order of `classes_`."""
        return _softmax(self._logits(self._checked_X(X)))

    def predict_log_proba(self, X):
        """Logarithm of predict_proba, computed stably."""
        Z = self._logits(self._checked_X(X))
        Z -= Z.max(axis=1, keepdims=True)
        Z -= np.log(np.exp(Z).sum(axis=1, keepdims=True))
        return Z


class _NullContext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


class MLPClassifier(_FastnnClassifierBase):
    """Multi-layer perceptron classifier (ReLU hidden layers, softmax output) trained by
    minibatch SGD or Adam on fastnn's engine, with scikit-learn's MLPClassifier parameters,
    defaults and semantics (see the module docstring for the few differences).

    Parameters (scikit-learn's unless noted)
    ----------
    hidden_layer_sizes : tuple of int, default=(100,)
    activation : 'relu' (the only one supported)
    solver : {'adam', 'sgd'}, default='adam'
    alpha : float, default=1e-4 — L2 penalty on the weights.
    batch_size : int or 'auto' (min(200, n_samples)), default='auto'
    learning_rate : {'constant', 'invscaling', 'adaptive'} or float, default='constant'
        The schedule of learning_rate_init (SGD only); a number means 'constant' at that rate.
    learning_rate_init : float, default=0.001
    power_t : float, default=0.5 (for 'invscaling')
    max_iter : int, default=200 — epochs.
    shuffle : bool, default=True
    random_state : int, RandomState or None
    tol : float, default=1e-4;  n_iter_no_change : int, default=10
    verbose : bool;  warm_start : bool
    momentum : float, default=0.9;  nesterovs_momentum : bool, default=True (SGD)
    early_stopping : bool, default=False;  validation_fraction : float, default=0.1
    beta_1, beta_2, epsilon : Adam's, defaults 0.9, 0.999, 1e-8
    fit_intercept : bool, default=True (fastnn) — train per-layer biases.
    backend : None, 'numpy' or 'cpp' (fastnn) — None: fastnn's current backend.
    dtype : None, 'float32' or 'float64' (fastnn) — None: the data's float dtype.

    Attributes
    ----------
    classes_, coefs_, intercepts_, n_iter_, loss_, loss_curve_, best_loss_, validation_scores_,
    best_validation_score_, t_, n_features_in_, feature_names_in_, n_layers_, n_outputs_,
    out_activation_ ('softmax').
    """

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam", alpha=0.0001,
                 batch_size="auto", learning_rate="constant", learning_rate_init=0.001, power_t=0.5,
                 max_iter=200, shuffle=True, random_state=None, tol=1e-4, verbose=False,
                 warm_start=False, momentum=0.9, nesterovs_momentum=True, early_stopping=False,
                 validation_fraction=0.1, beta_1=0.9, beta_2=0.999, epsilon=1e-8,
                 n_iter_no_change=10, fit_intercept=True, backend=None, dtype=None):
        _require_sklearn()
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.dtype = dtype

    def _hidden_layer_sizes(self):
        sizes = self.hidden_layer_sizes
        if not hasattr(sizes, "__iter__"):
            sizes = [sizes]
        sizes = list(sizes)
        for s in sizes:
            if isinstance(s, (bool, np.bool_)) or not isinstance(s, numbers.Integral) or s <= 0:
                raise ValueError(f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes}.")
        return tuple(int(s) for s in sizes)


class SoftmaxRegression(_FastnnClassifierBase):
    """Multinomial logistic (softmax) regression, X W + b, trained like MLPClassifier without
    hidden layers: the same parameters (less hidden_layer_sizes and activation), defaults and
    attributes (coefs_ = [W], intercepts_ = [b]), except learning_rate_init=0.01: with no hidden
    layer, Adam's 0.001 moves the few weights too slowly for a linear model."""

    def __init__(self, *, solver="adam", alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.01, power_t=0.5, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, verbose=False, warm_start=False, momentum=0.9, nesterovs_momentum=True,
                 early_stopping=False, validation_fraction=0.1, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, n_iter_no_change=10, fit_intercept=True, backend=None, dtype=None):
        _require_sklearn()
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.fit_intercept = fit_intercept
        self.backend = backend
        self.dtype = dtype

    def _hidden_layer_sizes(self):
        return ()
