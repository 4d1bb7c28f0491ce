"""MNIST and Fashion-MNIST: find the four IDX files, or download them once into the user cache.

    from fastnn.datasets import load_mnist
    X_train, y_train, X_test, y_test = load_mnist()

Where the files are looked for, in this order (the first directory holding all four wins):

1. the `path` argument (`fastnn train --data DIR`): DIR itself, or DIR/<dataset>;
2. the `FASTNN_DATA` environment variable: $FASTNN_DATA/<dataset>, and for MNIST also $FASTNN_DATA
   itself (the layout CI and the tests use);
3. the user cache directory, by platform convention (~/.cache/fastnn/<dataset> on Linux,
   ~/Library/Caches/fastnn/<dataset> on macOS, %LOCALAPPDATA%\\fastnn\\Cache\\<dataset> on
   Windows; `FASTNN_CACHE` overrides it);
4. a download from the official mirrors into that cache (needs the `data` extra, which brings
   pooch). Every downloaded file is checked against its published SHA-256 before it is moved into
   place; a mismatch is an error and the bad download is deleted. `base_url=` or the
   `FASTNN_DATA_URL` environment variable replace the mirrors (`{name}` in it becomes the dataset
   name), e.g. for a local mirror.

When nothing is found and nothing can be downloaded, `DatasetNotFoundError` says where it looked
and how to provide the files.
"""
import os
import sys
from collections import namedtuple
from pathlib import Path

from .mnist import check_labels, parse_mnist

# The four files of both datasets: (split, kind) -> file name.
FILES = {
    ("train", "images"): "train-images-idx3-ubyte.gz",
    ("train", "labels"): "train-labels-idx1-ubyte.gz",
    ("test", "images"): "t10k-images-idx3-ubyte.gz",
    ("test", "labels"): "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the original .gz files. MNIST: as published for LeCun's files (the same bytes are on
# the PyTorch mirror). Fashion-MNIST: as published for Zalando's files, listed alongside the MD5s
# of zalandoresearch/fashion-mnist's README (8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...)
# by many independent projects (TorchData, keras-era loaders, ...).
_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_FASHION_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

DatasetInfo = namedtuple("DatasetInfo", "name title sha256 mirrors num_classes", defaults=(10,))

DATASETS = {
    "mnist": DatasetInfo(
        "mnist", "MNIST", _MNIST_SHA256,
        ("https://ossci-datasets.s3.amazonaws.com/mnist/",
         "https://yann.lecun.com/exdb/mnist/")),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", "Fashion-MNIST", _FASHION_SHA256,
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)),
}

Dataset = namedtuple("Dataset", "X_train y_train X_test y_test")
Dataset.__doc__ = """Train and test arrays: X float32 (n, 784) in [0, 1], y uint8 (n,).
Unpacks as `X_train, y_train, X_test, y_test = load_mnist()`."""


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files were found nowhere and could not be downloaded."""


class DatasetDownloadError(ValueError):
    """A downloaded file failed its SHA-256 check (the bad file is deleted)."""


def _info(name):
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")
    return DATASETS[key]


def cache_dir(name=None):
    """The user cache directory of fastnn (platform convention, `FASTNN_CACHE` overrides it);
    with `name`, the dataset's folder inside it."""
    root = os.environ.get("FASTNN_CACHE")
    if root:
        root = Path(root).expanduser()
    else:
        try:
            import platformdirs
            root = Path(platformdirs.user_cache_dir("fastnn"))
        except ImportError:
            if sys.platform == "win32":
                base = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
                root = Path(base) / "fastnn" / "Cache"
            elif sys.platform == "darwin":
                root = Path.home() / "Library" / "Caches" / "fastnn"
            else:
                root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fastnn"
    return root / _info(name).name if name is not None else root


def _candidates(info, path):
    """(directory, where it came from) in search order."""
    out = []
    if path is not None:
        path = Path(path).expanduser()
        out += [(path, "path argument"), (path / info.name, "path argument")]
    env = os.environ.get("FASTNN_DATA")
    if env:
        env = Path(env).expanduser()
        out.append((env / info.name, "FASTNN_DATA"))
        if info.name == "mnist":
            out.append((env, "FASTNN_DATA"))
    out.append((cache_dir(info.name), "user cache"))
    return out


def _complete(directory):
    return all((directory / f).is_file() for f in FILES.values())


def _mirrors(info, base_url):
    base = base_url if base_url is not None else os.environ.get("FASTNN_DATA_URL")
    urls = [base] if base else list(info.mirrors)
    return [u.replace("{name}", info.name).rstrip("/") + "/" for u in urls]


def _download(info, target, base_url, progress):
    """Fetch the missing files of `info` into `target` with pooch, hash-checked. Returns None on
    success, else a description of why it failed (network); raises DatasetDownloadError on a hash
    mismatch."""
    try:
        import pooch
    except ImportError:
        return "no download: pooch is not installed (pip install 'fastnn[data]')"
    import requests  # a dependency of pooch

    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        try:
            import tqdm  # noqa: F401  (pooch's progress bar needs it)
        except ImportError:
            progress = False
    failures = []
    for name in FILES.values():
        for base in _mirrors(info, base_url):
            url = base + name
            try:
                pooch.retrieve(url, known_hash="sha256:" + info.sha256[name], fname=name,
                               path=target, progressbar=progress,
                               downloader=pooch.HTTPDownloader(progressbar=progress, timeout=30))
                break
            except ValueError as exc:   # pooch: hash mismatch; the temporary file is removed
                raise DatasetDownloadError(
                    f"{info.title}: {url} failed its SHA-256 check, so it was not kept in {target}: "
                    f"{exc}") from None
            except (requests.exceptions.RequestException, OSError) as exc:
                failures.append(f"{url}: {_short(exc)}")
        else:
            return "download failed:\n      " + "\n      ".join(failures)
    return None


def _short(exc):
    text = str(exc) or type(exc).__name__
    return text if len(text) < 200 else text[:197] + "..."


def find_dataset(name="mnist", path=None, *, download=True, base_url=None, progress=None):
    """The directory that holds the dataset's four IDX files, downloading them into the user
    cache when they are nowhere else (see the module docstring for the search order)."""
    info = _info(name)
    candidates = _candidates(info, path)
    for directory, _ in candidates:
        if _complete(directory):
            return directory
    target = cache_dir(info.name)
    if download:
        why = _download(info, target, base_url, progress)
        if why is None and _complete(target):
            return target
    else:
        why = "download disabled"
    looked = "\n".join(f"  - {d}  ({src})" for d, src in candidates)
    mirrors = ", ".join(_mirrors(info, base_url))
    raise DatasetNotFoundError(
        f"{info.title} not found. Looked for the four files "
        f"({', '.join(FILES.values())}) in:\n{looked}\n"
        f"  - then {mirrors} -> {target}: {why}\n"
        f"Provide them in one of these ways: pass the directory (--data DIR, or path=DIR); set "
        f"FASTNN_DATA to a directory holding a '{info.name}' folder"
        + (" (or the files themselves)" if info.name == "mnist" else "")
        + f"; copy them into {target}; or install the 'data' extra (pip install 'fastnn[data]') "
        f"and allow the download.")


def load_dataset(name="mnist", path=None, *, download=True, base_url=None, progress=None):
    """Train and test arrays of `name` ("mnist" or "fashion-mnist") as a `Dataset`
    (X_train, y_train, X_test, y_test): X float32 (n, 784) in [0, 1], y uint8. A label outside
    the dataset's classes is a ValueError naming the file and the index."""
    info = _info(name)
    directory = find_dataset(name, path, download=download, base_url=base_url, progress=progress)
    X_train, y_train = parse_mnist(directory / FILES["train", "images"], directory / FILES["train", "labels"])
    check_labels(y_train, info.num_classes, directory / FILES["train", "labels"])
    X_test, y_test = parse_mnist(directory / FILES["test", "images"], directory / FILES["test", "labels"])
    check_labels(y_test, info.num_classes, directory / FILES["test", "labels"])
    return Dataset(X_train, y_train, X_test, y_test)


def load_mnist(path: str | os.PathLike[str] | None = None, *, download: bool = True, base_url: str | None = None,
               progress: bool | None = None) -> Dataset:
    """MNIST as `Dataset(X_train, y_train, X_test, y_test)` (60,000 and 10,000 images).

    Looks in `path`, then $FASTNN_DATA, then the user cache, then downloads into the cache from
    the official mirrors (or `base_url` / $FASTNN_DATA_URL) with SHA-256 checks.
    Raises DatasetNotFoundError saying where it looked when the files cannot be had."""
    return load_dataset("mnist", path, download=download, base_url=base_url, progress=progress)


def load_fashion_mnist(path: str | os.PathLike[str] | None = None, *, download: bool = True,
                       base_url: str | None = None, progress: bool | None = None) -> Dataset:
    """Fashion-MNIST (Zalando, same IDX format and sizes as MNIST) as `Dataset`; found like
    `load_mnist`, with $FASTNN_DATA/fashion-mnist and the cache's fashion-mnist folder."""
    return load_dataset("fashion-mnist", path, download=download, base_url=base_url, progress=progress)
