"""Saving and loading trained models: one `.npz` file holding everything needed to use the model.

    save_model("model.npz", weights, settings={"lr": 0.2, ...})
    model = load_model("model.npz")
    model.evaluate(X_test, y_test)     # (loss, err)

The file (format version 1) holds plain arrays only, so it loads without pickle:

    fastnn_format   int      the format version (FORMAT_VERSION)
    kind            str      "softmax" (one matrix) or "mlp"
    layer_sizes     int64    [input, hidden..., classes]
    dtype           str      "float32" or "float64"
    settings        str      JSON object: how it was trained (lr, batch, epochs, dataset, ...)
    W0, W1, ...              the weight matrices, W_i of shape (layer_sizes[i], layer_sizes[i+1])

It is written to a temporary file in the same directory and moved into place with os.replace, so
an interrupted or failed save never leaves a partial file under the final name.
"""
import json
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np

FORMAT_VERSION = 1
KINDS = ("softmax", "mlp")
_MAGIC_KEY = "fastnn_format"


@dataclass
class Model:
    """A trained net: the weight matrices and what describes them."""
    weights: list
    kind: str = "mlp"
    settings: dict = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def layer_sizes(self) -> list[int]:
        return [int(self.weights[0].shape[0])] + [int(W.shape[1]) for W in self.weights]

    @property
    def dtype(self) -> np.dtype:
        return self.weights[0].dtype

    def logits(self, X: np.ndarray) -> np.ndarray:
        from .api import mlp_logits
        return mlp_logits(X, self.weights)

    def predict(self, X: np.ndarray) -> np.ndarray:
        from .api import predict
        return predict(X, self.weights)

    def evaluate(self, X: np.ndarray, y: np.ndarray) -> tuple[float, float]:
        """(mean cross-entropy, error rate) on (X, y)."""
        from .api import evaluate
        return evaluate(X, y, self.weights)

    def describe(self) -> str:
        return f"{self.kind} {'-'.join(map(str, self.layer_sizes))} ({self.dtype})"


def atomic_write(path, write):
    """Call write(f) on a temporary file beside `path`, fsync it and move it onto `path` with
    os.replace: readers see the old file or the complete new one, never a partial one. The file
    gets the permissions a plain open() would give it. Returns the path."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def _as_model(model, kind, settings):
    if isinstance(model, Model):
        weights = model.weights
        kind = kind or model.kind
        settings = {**model.settings, **(settings or {})}
    else:
        weights = list(model) if isinstance(model, (list, tuple)) else [model]
    if not weights:
        raise ValueError("model: expected at least one weight matrix, got none")
    weights = [np.asarray(W) for W in weights]
    for i, W in enumerate(weights):
        if W.ndim != 2 or W.dtype not in (np.float32, np.float64):
            raise ValueError(f"weights[{i}]: expected a 2-D float32 or float64 array, "
                             f"got {W.ndim}-D {W.dtype}")
        if W.dtype != weights[0].dtype:
            raise ValueError(f"weights[{i}]: expected dtype {weights[0].dtype} like weights[0], got {W.dtype}")
        if i and W.shape[0] != weights[i - 1].shape[1]:
            raise ValueError(f"weights[{i}]: expected {weights[i - 1].shape[1]} rows, got shape {W.shape}")
    kind = kind or ("softmax" if len(weights) == 1 else "mlp")
    if kind not in KINDS:
        raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
    if kind == "softmax" and len(weights) != 1:
        raise ValueError(f"kind: 'softmax' has one weight matrix, got {len(weights)}")
    return Model(weights, kind, dict(settings or {}))


def save_model(path: str | os.PathLike[str], model: Model | list[np.ndarray], *, kind: str | None = None,
               settings: dict | None = None) -> str:
    """Write `model` (a `Model`, or a list of weight matrices) to the `.npz` file `path`,
    atomically. `settings` (JSON-serialisable) is merged into the model's settings. Returns the
    path written."""
    m = _as_model(model, kind, settings)
    try:
        settings_json = json.dumps(m.settings, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"settings: expected JSON-serialisable values ({exc})") from None
    arrays = {
        _MAGIC_KEY: np.array(FORMAT_VERSION, dtype=np.int64),
        "kind": np.array(m.kind),
        "layer_sizes": np.array(m.layer_sizes, dtype=np.int64),
        "dtype": np.array(str(m.dtype)),
        "settings": np.array(settings_json),
    }
    arrays.update({f"W{i}": np.ascontiguousarray(W) for i, W in enumerate(m.weights)})

    return atomic_write(path, lambda f: np.savez(f, **arrays))
def _bad(path, why):
    return ValueError(f"{path}: not a readable fastnn model file ({why})")


def load_model(path: str | os.PathLike[str]) -> Model:
    """Read a model written by `save_model`. Raises ValueError naming the file when it is not a
    fastnn model, is truncated or corrupt, or has a newer format version; FileNotFoundError when
    it does not exist."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        raise _bad(path, "not an .npz (zip) archive" + (": the file is empty" if not head else ""))
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _MAGIC_KEY not in npz.files:
                raise _bad(path, f"no '{_MAGIC_KEY}' entry; entries: {', '.join(npz.files[:8]) or 'none'}")
            version = int(npz[_MAGIC_KEY])
            if version > FORMAT_VERSION or version < 1:
                raise _bad(path, f"format version {version}; this fastnn reads versions 1 to {FORMAT_VERSION}")
            kind = str(npz["kind"][()])
            sizes = [int(s) for s in npz["layer_sizes"]]
            dtype = np.dtype(str(npz["dtype"][()]))
            settings = json.loads(str(npz["settings"][()]))
            weights = [npz[f"W{i}"] for i in range(len(sizes) - 1)]
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    except zipfile.BadZipFile as exc:
        raise _bad(path, f"truncated or corrupt .npz archive: {exc}") from None
    except (OSError, EOFError, KeyError, TypeError, zlib.error, NotImplementedError) as exc:
        # NotImplementedError: zipfile's answer to a corrupt compression-method field
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None
    if kind not in KINDS:
        raise _bad(path, f"unknown model kind {kind!r}")
    if len(sizes) < 2:
        raise _bad(path, f"layer_sizes {sizes} has fewer than two entries")
    for i, W in enumerate(weights):
        if W.shape != (sizes[i], sizes[i + 1]) or W.dtype != dtype:
            raise _bad(path, f"W{i} has shape {W.shape} and dtype {W.dtype}, expected "
                             f"{(sizes[i], sizes[i + 1])} and {dtype}")
    if not isinstance(settings, dict):
        raise _bad(path, "settings is not a JSON object")
    return Model(weights, kind, settings, version)
