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

It is written to `.<name>.fastnn-tmp` beside the target, fsynced and moved into place with
os.replace (then the directory is fsynced), so an interrupted or failed save never leaves a
partial file under the final name; the target's permissions and symbolic links are kept.
`load_model` treats the file as untrusted: every member's `.npy` header and the metadata are
checked before any weight is read (docs/faults.md lists the checks).
"""
import json
import math
import os
import stat
from dataclasses import dataclass, field

import numpy as np

from .npz_members import NpzError, NpzMembers

FORMAT_VERSION = 1
KINDS = ("softmax", "mlp")
_MAGIC_KEY = "fastnn_format"
TMP_SUFFIX = ".fastnn-tmp"


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


def temporary_path(path):
    """The one temporary file a save to `path` writes before moving it into place:
    `.<name>.fastnn-tmp` beside the target. A save interrupted by SIGKILL leaves it behind; the
    next save to the same target replaces it, and it is safe to delete by hand."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{name}{TMP_SUFFIX}")


def atomic_write(path, write):
    """Call write(f) on the temporary file beside `path` (see `temporary_path`), fsync it, move
    it onto `path` with os.replace and fsync the directory: readers see the old file or the
    complete new one, never a partial one, and after a crash the new one is on disk.

    An existing target keeps its permission bits; a new one gets those a plain open() would
    give it (0o666 minus the umask). When `path` is a symbolic link the file it points to is
    replaced and the link stays. Returns the path."""
    path = os.fspath(path)
    target = os.path.realpath(path) if os.path.islink(path) else path
    tmp = temporary_path(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    _remove_if_present(tmp)           # a leftover of an interrupted save (or anything there)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                 | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            if mode is not None and hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        _remove_if_present(tmp)
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(target)))
    return path


def _remove_if_present(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _fsync_directory(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


# ---------------------------------------------------------------------------------------------
# loading: every member's header and the metadata are checked before any weight is read


def _bad(path, why):
    return ValueError(f"{path}: not a readable fastnn model file ({why})")


def load_model(path: str | os.PathLike[str]) -> Model:
    """Read a model written by `save_model`. Raises ValueError naming the file when it is not a
    fastnn model, is truncated, corrupt or inconsistent, or has a newer format version;
    FileNotFoundError when it does not exist.

    The file may come from anyone: no pickle is ever run, the archive's members and each array's
    `.npy` header (dtype in an allow-list, shape, bytes) and the metadata (version, kind, layer
    sizes, dtype, settings as bounded JSON) are checked before any weight matrix is read, and
    memory use is bounded by the sizes the file declares (which must fit in physical memory)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such model file")
    if os.path.isdir(path):
        raise _bad(path, "it is a directory")
    with open(path, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        raise _bad(path, "not an .npz (zip) archive" + (": the file is empty" if not head else ""))
    try:
        with NpzMembers(path) as npz:
            return _read_model(npz)
    except NpzError as exc:
        raise _bad(path, str(exc)) from None
    except OSError as exc:
        raise _bad(path, f"{type(exc).__name__}: {exc}") from None


def _read_model(npz):
    names = set(npz.names)
    if _MAGIC_KEY not in names:
        raise NpzError(f"no '{_MAGIC_KEY}' entry; entries: {', '.join(sorted(names)[:8]) or 'none'}")
    version = _read_scalar(npz, _MAGIC_KEY, _INT_DTYPES)
    if version > FORMAT_VERSION or version < 1:
        raise NpzError(f"format version {version}; this fastnn reads versions 1 to {FORMAT_VERSION}")
    missing = [k for k in _METADATA_KEYS if k not in names]
    if missing:
        raise NpzError(f"missing entries: {', '.join(missing)}")
    kind = _read_text(npz, "kind", 16)
    if kind not in KINDS:
        raise NpzError(f"unknown model kind {kind!r}")
    sizes = _read_layer_sizes(npz, kind)
    dtype_name = _read_text(npz, "dtype", 16)
    if dtype_name not in _WEIGHT_DTYPES:
        raise NpzError(f"dtype {dtype_name!r}; expected one of {', '.join(_WEIGHT_DTYPES)}")
    settings = _read_settings(npz)
    weight_keys = [f"W{i}" for i in range(len(sizes) - 1)]
    extra = sorted(names - set(_METADATA_KEYS) - set(weight_keys) - {_MAGIC_KEY})
    if extra:
        raise NpzError(f"unexpected entries {', '.join(extra[:8])} for layer_sizes {sizes}")
    absent = [k for k in weight_keys if k not in names]
    if absent:
        raise NpzError(f"missing weight matrices {', '.join(absent[:8])} for layer_sizes {sizes[:8]}")
    headers = [_weight_header(npz, key, (sizes[i], sizes[i + 1]), _WEIGHT_DTYPES[dtype_name])
               for i, key in enumerate(weight_keys)]
    _check_fits_in_memory(sum(h.nbytes for h in headers))
    weights = [npz.read(key, h) for key, h in zip(weight_keys, headers)]
    return Model(weights, kind, settings, version)


_METADATA_KEYS = ("kind", "layer_sizes", "dtype", "settings")
_INT_DTYPES = (np.dtype("<i8"), np.dtype("<i4"))
_WEIGHT_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
MAX_LAYERS = 1024
MAX_SETTINGS_CHARS = 1 << 20
MAX_SETTINGS_DEPTH = 32


def _header(npz, key, dtypes, shape=None, what=None):
    header = npz.header(key)
    if header.dtype not in dtypes:
        raise NpzError(f"{key} has dtype {header.dtype.str}; expected "
                       f"{what or ' or '.join(d.str for d in dtypes)}")
    if shape is not None and header.shape != shape:
        raise NpzError(f"{key} has shape {header.shape}, expected {shape}")
    return header


def _read_scalar(npz, key, dtypes):
    header = _header(npz, key, dtypes, shape=(), what="an integer scalar")
    return int(npz.read(key, header)[()])


def _read_text(npz, key, max_chars):
    header = npz.header(key)
    if header.dtype.kind != "U" or header.dtype.byteorder == ">" or header.shape != ():
        raise NpzError(f"{key} is {header.dtype.str} {header.shape}, expected a text scalar")
    if header.dtype.itemsize > 4 * max_chars:
        raise NpzError(f"{key} is a text of {header.dtype.itemsize // 4:,} characters "
                       f"(at most {max_chars:,} allowed)")
    return str(npz.read(key, header)[()])


def _read_layer_sizes(npz, kind):
    header = npz.header("layer_sizes")
    if header.dtype not in _INT_DTYPES or len(header.shape) != 1 or not 2 <= header.shape[0] <= MAX_LAYERS + 1:
        raise NpzError(f"layer_sizes is {header.dtype.str} {header.shape}, expected 2 to "
                       f"{MAX_LAYERS + 1} integers")
    sizes = [int(s) for s in npz.read("layer_sizes", header)]
    if any(s < 1 for s in sizes):
        raise NpzError(f"layer_sizes {sizes[:8]} has a size below 1")
    if kind == "softmax" and len(sizes) != 2:
        raise NpzError(f"kind 'softmax' has one weight matrix, but layer_sizes {sizes[:8]} "
                       f"describes {len(sizes) - 1}")
    return sizes


def _read_settings(npz):
    text = _read_text(npz, "settings", MAX_SETTINGS_CHARS)
    depth = json_depth(text)
    if depth > MAX_SETTINGS_DEPTH:
        raise NpzError(f"settings nest {depth} levels deep (at most {MAX_SETTINGS_DEPTH} allowed)")
    try:
        settings = json.loads(text)
    except ValueError as exc:
        raise NpzError(f"settings is not valid JSON ({exc})") from None
    if not isinstance(settings, dict):
        raise NpzError("settings is not a JSON object")
    check_settings(settings)
    return settings


def json_depth(text):
    """The deepest nesting of [ ] and { } in JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


# The settings fastnn itself reads back (`fastnn eval` prints them): their types are checked;
# other keys are the user's own and kept as they are.
_SETTING_TYPES = {"lr": "positive finite number", "batch": "positive integer",
                  "epochs": "non-negative integer", "epochs_completed": "non-negative integer",
                  "seed": "integer", "dataset": "string", "model": "string"}


def _setting_ok(value, expected):
    if isinstance(value, bool):
        return False
    if expected == "positive finite number":
        return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    if expected == "positive integer":
        return isinstance(value, int) and value >= 1
    if expected == "non-negative integer":
        return isinstance(value, int) and value >= 0
    if expected == "integer":
        return isinstance(value, int)
    return isinstance(value, str)


def check_settings(settings):
    for key, expected in _SETTING_TYPES.items():
        if key in settings and settings[key] is not None and not _setting_ok(settings[key], expected):
            raise NpzError(f"settings: {key} is {str(settings[key])[:40]!r}, expected a {expected}")


def _weight_header(npz, key, shape, dtype):
    header = _header(npz, key, (dtype,), what=f"{dtype.str} (the model's dtype {dtype.name}, little-endian)")
    if header.shape != shape:
        raise NpzError(f"{key} has shape {header.shape} and dtype {header.dtype}, expected "
                       f"{shape} and {dtype.name} (from layer_sizes)")
    return header


def physical_memory():
    """Bytes of RAM in this machine, or None where the platform does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _check_fits_in_memory(nbytes):
    total = physical_memory()
    if total is not None and nbytes > total:
        raise NpzError(f"the weights declare {nbytes / 2**30:,.1f} GiB, more than this machine's "
                       f"{total / 2**30:,.1f} GiB of memory")
