"""A `fit`-style training helper that returns a `History` (the per-epoch metrics and the model).

    history = fit(X_train, y_train, X_test, y_test, hidden=(400,), epochs=10, lr=0.2)
    history.records[-1]["test_err"]; history.model.predict(X)
    history.to_csv("history.csv"); history.plot("curves.png")

Training is hw0's: minibatch SGD in data order (the last batch may be shorter), weights
initialised as N(0, 1/fan_out) from `seed` (softmax regression starts from zeros). Ctrl-C stops
training cleanly: the batches already done stay applied, `history.interrupted` is set and the
history of the completed epochs is returned.
"""
import csv
import io
import math
import numbers
import os
import time
from dataclasses import dataclass, field

from typing import Callable

import numpy as np
import numpy.typing  # noqa: F401  (np.typing in the annotations)

from . import validation as v
from .api import evaluate, mlp_epoch
from .model_io import Model, atomic_write, physical_memory

COLUMNS = ("epoch", "train_loss", "train_err", "test_loss", "test_err", "seconds", "samples_per_s")


@dataclass
class History:
    """Per-epoch records (dicts with the keys of COLUMNS), the trained `model`, and whether
    training was interrupted (Ctrl-C) before the requested number of epochs."""
    records: list = field(default_factory=list)
    model: Model = None
    interrupted: bool = False

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key):
        """history["test_err"] -> list over epochs; history[i] -> the record of epoch i+1."""
        if isinstance(key, str):
            return [r[key] for r in self.records]
        return self.records[key]

    @property
    def weights(self):
        return self.model.weights if self.model is not None else None

    def to_csv(self, path: str | os.PathLike[str]) -> str:
        """Write the records as CSV (atomically: temporary file + os.replace)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
        for r in self.records:
            writer.writerow({k: (repr(r[k]) if isinstance(r[k], float) else r[k]) for k in COLUMNS})
        atomic_write(path, lambda f: f.write(buf.getvalue().encode()))
        return os.fspath(path)

    def plot(self, path: str | os.PathLike[str], title: str | None = None) -> str | os.PathLike[str]:
        """Train/test loss and error per epoch, as an image (format from the suffix). Needs
        matplotlib (`pip install 'fastnn[plot]'`)."""
        return plot_history(self, path, title=title)


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_matplotlib():
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MissingExtraError("plotting needs matplotlib, which is not installed: "
                                "pip install 'fastnn[plot]' (or pip install matplotlib)") from None


def plot_history(history, path, title=None):
    """Draw train/test loss and error per epoch side by side and save to `path` (PNG, SVG, PDF
    by suffix) atomically like a model, without touching pyplot's global state. Returns the path."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator, PercentFormatter

    epochs = history["epoch"]
    fig = Figure(figsize=(8, 3.2), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_err = fig.subplots(1, 2)
    for ax, key, label in ((ax_loss, "loss", "cross-entropy loss"), (ax_err, "err", "error rate")):
        ax.plot(epochs, history[f"train_{key}"], "o-", color="tab:blue", ms=3, label="train")
        if not all(np.isnan(history[f"test_{key}"])):
            ax.plot(epochs, history[f"test_{key}"], "s-", color="tab:orange", ms=3, label="test")
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(frameon=False)
    ax_err.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    if title:
        fig.suptitle(title, fontsize=10)
    path = os.fspath(path)
    import matplotlib
    fmt = os.path.splitext(path)[1][1:].lower() or matplotlib.rcParams["savefig.format"]
    image = io.BytesIO()
    fig.savefig(image, format=fmt)      # rendered first: a bad format fails before the file is touched
    atomic_write(path, lambda f: f.write(image.getvalue()))
    return path


def init_weights(sizes, seed=0, dtype=np.float32, kind="mlp"):
    """hw0's initialisation: W_i ~ N(0, 1) / sqrt(fan_out), from numpy's default_rng(seed);
    softmax regression (kind="softmax") starts from zeros."""
    if kind == "softmax":
        return [np.zeros((sizes[0], sizes[-1]), dtype=dtype)]
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((a, b)) / np.sqrt(b)).astype(dtype) for a, b in zip(sizes, sizes[1:])]


def _chunks(n, batch, chunk_batches):
    step = batch * chunk_batches
    for start in range(0, n, step):
        yield start, min(start + step, n)


class TrainingDivergedError(ValueError):
    """The loss or the weights became NaN or infinite (usually: the learning rate is too large).
    `history` holds the epochs up to and including the one that diverged."""

    def __init__(self, message, history):
        super().__init__(message)
        self.history = history


def estimated_bytes(sizes, dtype=np.float32, batch=100):
    """A lower bound on the memory training a net of layer `sizes` takes: the weights, their
    gradients, and the activations and their gradients for one batch."""
    itemsize = np.dtype(dtype).itemsize
    weights = sum(a * b for a, b in zip(sizes, sizes[1:]))
    return itemsize * (2 * weights + 2 * batch * sum(sizes[1:]))


def check_fits_in_memory(sizes, dtype=np.float32, batch=100):
    """ValueError before anything is allocated when the net cannot fit in this machine's RAM."""
    need, have = estimated_bytes(sizes, dtype, batch), physical_memory()
    if have is not None and need > have:
        raise ValueError(f"layer sizes {'-'.join(map(str, sizes))}: training needs at least "
                         f"{need / 2**30:,.1f} GiB ({np.dtype(dtype).name} weights, their gradients and one "
                         f"batch of activations), more than this machine's {have / 2**30:,.1f} GiB of memory")


def _checked_fit_args(X_train, y_train, X_test, y_test, model, hidden, epochs, lr, batch, seed, dtype):
    """fit's arguments validated as the rest of the API does it (same exceptions and wording on
    both backends, before anything is allocated); returns them normalised."""
    if model not in ("softmax", "mlp"):
        raise ValueError(f"model: expected 'softmax' or 'mlp', got {model!r}")
    X_train = v.with_contiguous_rows(v.as_float_matrix(X_train, "X_train"))   # once, not every epoch
    y_train = v.as_label_vector(y_train, X_train.shape[0], "y_train")
    if (X_test is None) != (y_test is None):
        given, missing = ("X_test", "y_test") if y_test is None else ("y_test", "X_test")
        raise ValueError(f"{given}, {missing}: expected both or neither, got {given} without {missing}")
    if X_test is not None:
        X_test = v.with_contiguous_rows(v.as_float_matrix(X_test, "X_test"))
        if X_test.shape[1] != X_train.shape[1]:
            raise ValueError(f"X_test: expected {X_train.shape[1]} columns (like X_train), got shape "
                             f"{X_test.shape}")
        y_test = v.as_label_vector(y_test, X_test.shape[0], "y_test")
    if model == "softmax":
        hidden = []
    else:
        if isinstance(hidden, numbers.Integral):
            hidden = [hidden]
        hidden = [v.as_positive_int(h, f"hidden[{i}]") for i, h in enumerate(hidden)]
    epochs = v.as_positive_int(epochs, "epochs")
    lr, batch, seed = v.as_learning_rate(lr), v.as_batch_size(batch), v.as_seed(seed)
    dtype = np.dtype(dtype)
    if dtype not in v.FLOAT_DTYPES:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    return X_train, y_train, X_test, y_test, hidden, epochs, lr, batch, seed, dtype


def _diverged(record, weights):
    """The message when the epoch of `record` ended with a non-finite loss or weights, else None."""
    finite_weights = all(np.isfinite(W).all() for W in weights)
    if math.isfinite(record["train_loss"]) and finite_weights:
        return None
    return (f"training diverged in epoch {record['epoch']}: train loss {record['train_loss']}"
            + ("" if finite_weights else ", weights not finite"))


def fit(X_train: np.ndarray, y_train: np.ndarray, X_test: np.ndarray | None = None, y_test: np.ndarray | None = None,
        *, model: str = "mlp", hidden: tuple[int, ...] | list[int] = (400,), epochs: int = 10,
        lr: float = 0.2, batch: int = 100, seed: int = 0, dtype: np.typing.DTypeLike = np.float32,
        weights: Model | list[np.ndarray] | None = None, settings: dict | None = None,
        on_epoch: Callable[[dict, History], object] | None = None,
        progress: Callable[[int, int], object] | None = None, chunk_batches: int | None = None) -> History:
    """Train a softmax regression (`model="softmax"`) or a ReLU MLP with hidden sizes `hidden`
    by minibatch SGD and return a `History`.

    Args:
        X_test, y_test: evaluated after every epoch when given (else the test columns are NaN).
        weights: start from these (a list of matrices or a `Model`, trained in place) instead of
            a fresh initialisation.
        settings: extra JSON-serialisable entries for the model's settings (e.g. the dataset).
        on_epoch: called as on_epoch(record, history) after each epoch.
        progress: called as progress(samples_done, n) during each epoch; the epoch is then run
            in chunks of whole batches, which gives the same result as one call.

    Raises TypeError/ValueError for bad arguments (named, as elsewhere in the API), ValueError
    when the net could not fit in memory (checked before allocating), and
    `TrainingDivergedError` (a ValueError carrying `.history`) as soon as an epoch ends with a
    NaN or infinite training loss or weights: a model that diverged is never returned as if it
    had trained (the estimators raise ValueError in the same case, as scikit-learn does).
    """
    X_train, y_train, X_test, y_test, hidden, epochs, lr, batch, seed, dtype = _checked_fit_args(
        X_train, y_train, X_test, y_test, model, hidden, epochs, lr, batch, seed, dtype)
    n, d = X_train.shape
    k = int(np.max(y_train)) + 1 if y_test is None else int(max(np.max(y_train), np.max(y_test))) + 1
    if isinstance(weights, Model):
        weights = weights.weights
    if weights is None:
        check_fits_in_memory([d, *hidden, k], dtype, min(batch, n))
        weights = init_weights([d, *hidden, k], seed=seed, dtype=dtype, kind=model)
    else:
        weights = list(weights)
    sizes = [int(weights[0].shape[0])] + [int(W.shape[1]) for W in weights]
    info = {"model": model, "layer_sizes": sizes, "dtype": str(weights[0].dtype), "epochs": int(epochs),
            "lr": float(lr), "batch": int(batch), "seed": int(seed), "n_train": int(n),
            "n_test": 0 if X_test is None else int(X_test.shape[0])}
    info.update(settings or {})
    history = History(model=Model(weights, model, info))
    if chunk_batches is None:
        chunk_batches = max(1, n // (batch * 50))      # about 50 progress updates per epoch
    try:
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            if progress is None:
                mlp_epoch(X_train, y_train, weights, lr=lr, batch=batch)
            else:
                for a, b in _chunks(n, batch, chunk_batches):
                    mlp_epoch(X_train[a:b], y_train[a:b], weights, lr=lr, batch=batch)
                    progress(b, n)
            seconds = time.perf_counter() - start
            train_loss, train_err = evaluate(X_train, y_train, weights)
            if X_test is not None:
                test_loss, test_err = evaluate(X_test, y_test, weights)
            else:
                test_loss = test_err = float("nan")
            record = {"epoch": epoch, "train_loss": float(train_loss), "train_err": float(train_err),
                      "test_loss": float(test_loss), "test_err": float(test_err),
                      "seconds": seconds, "samples_per_s": n / seconds if seconds > 0 else float("inf")}
            history.records.append(record)
            history.model.settings["epochs_completed"] = epoch
            if on_epoch is not None:
                on_epoch(record, history)
            diverged = _diverged(record, weights)
            if diverged:
                raise TrainingDivergedError(f"{diverged} (lr {lr:g} is probably too large)", history)
    except KeyboardInterrupt:
        history.interrupted = True
        history.model.settings["interrupted"] = True
    return history
