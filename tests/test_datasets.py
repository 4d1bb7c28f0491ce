"""fastnn.datasets: where the files are looked for, and the real download path (pooch) against a
local HTTP server on 127.0.0.1 — never the internet."""
import contextlib
import functools
import http.server
import shutil
import socket
import sys
import threading

import numpy as np
import pytest

import fastnn
from conftest import MNIST_FILES, mnist_dir
from fastnn import datasets
from fastnn.datasets import (DatasetDownloadError, DatasetNotFoundError, find_dataset, load_fashion_mnist,
                             load_mnist)

SERVER_LIFETIME_S = 120      # the server stops by itself after this, whatever happens to the test


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No lookup may reach the user's real cache, data or mirrors."""
    monkeypatch.setenv("FASTNN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("FASTNN_DATA", raising=False)
    monkeypatch.delenv("FASTNN_DATA_URL", raising=False)


@pytest.fixture(scope="module")
def mnist_source():
    return mnist_dir()


@contextlib.contextmanager
def serve(directory):
    """An HTTP server for `directory` on 127.0.0.1 (a free port), in a thread; stops on exit or
    after SERVER_LIFETIME_S. Yields (base_url, list of requested paths)."""
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        timeout = 10

        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Handler, directory=str(directory)))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    watchdog = threading.Timer(SERVER_LIFETIME_S, server.shutdown)
    watchdog.daemon = True
    watchdog.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", requests
    finally:
        watchdog.cancel()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _closed_port_url():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"     # nothing listens there now: connection refused


def _copy_mnist(src, dst):
    dst.mkdir(parents=True, exist_ok=True)
    for name in MNIST_FILES.values():
        shutil.copyfile(src / name, dst / name)
    return dst


def _check_mnist(data, src):
    X, y = fastnn.parse_mnist(src / MNIST_FILES["test_images"], src / MNIST_FILES["test_labels"])
    assert data.X_train.shape == (60000, 784) and data.X_train.dtype == np.float32
    assert data.y_train.shape == (60000,) and data.y_train.dtype == np.uint8
    np.testing.assert_array_equal(data.X_test, X)
    np.testing.assert_array_equal(data.y_test, y)
    X_tr, y_tr, X_te, y_te = data      # unpacks like a tuple
    assert X_te is data.X_test


# --- download through pooch, from a local server ---------------------------------------------


def test_download_into_cache_verifies_and_is_reused(mnist_source, tmp_path):
    pytest.importorskip("pooch")
    with serve(mnist_source) as (url, requests):
        data = load_mnist(base_url=url, progress=False)
        assert sorted(requests) == sorted(f"/{n}" for n in MNIST_FILES.values())
        cache = tmp_path / "cache" / "mnist"
        assert sorted(p.name for p in cache.iterdir()) == sorted(MNIST_FILES.values())
        _check_mnist(data, mnist_source)
        requests.clear()
        load_mnist(base_url=url)            # found in the cache: no request
        assert requests == []
    assert find_dataset("mnist", download=False) == cache


def test_download_url_from_environment_with_name_placeholder(mnist_source, tmp_path, monkeypatch):
    pytest.importorskip("pooch")
    root = tmp_path / "mirror"
    _copy_mnist(mnist_source, root / "mnist")
    with serve(root) as (url, requests):
        monkeypatch.setenv("FASTNN_DATA_URL", url + "{name}/")
        _check_mnist(load_mnist(progress=False), mnist_source)
    assert all(r.startswith("/mnist/") for r in requests) and len(requests) == 4


def test_corrupted_download_is_refused_and_not_kept(mnist_source, tmp_path):
    pytest.importorskip("pooch")
    mirror = _copy_mnist(mnist_source, tmp_path / "mirror")
    bad = mirror / MNIST_FILES["test_labels"]
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    with serve(mirror) as (url, requests):
        with pytest.raises(DatasetDownloadError, match="SHA-256") as info:
            load_mnist(base_url=url, progress=False)
    assert MNIST_FILES["test_labels"] in str(info.value)
    cache = tmp_path / "cache" / "mnist"
    kept = sorted(p.name for p in cache.iterdir())
    assert MNIST_FILES["test_labels"] not in kept
    assert all(name in MNIST_FILES.values() for name in kept)      # no temporary files left over
    with pytest.raises(DatasetNotFoundError):
        find_dataset("mnist", download=False)


def test_partial_cache_fetches_only_the_missing_file(mnist_source, tmp_path):
    pytest.importorskip("pooch")
    cache = _copy_mnist(mnist_source, tmp_path / "cache" / "mnist")
    (cache / MNIST_FILES["train_labels"]).unlink()
    with serve(mnist_source) as (url, requests):
        _check_mnist(load_mnist(base_url=url, progress=False), mnist_source)
    assert requests == [f"/{MNIST_FILES['train_labels']}"]


def test_offline_error_says_where_it_looked(tmp_path, monkeypatch):
    pytest.importorskip("pooch")
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "data"))
    url = _closed_port_url()
    with pytest.raises(DatasetNotFoundError) as info:
        load_mnist(tmp_path / "explicit", base_url=url, progress=False)
    msg = str(info.value)
    for place in [tmp_path / "explicit", tmp_path / "data" / "mnist", tmp_path / "data",
                  tmp_path / "cache" / "mnist"]:
        assert f"- {place}  (" in msg
    assert url in msg and "download failed" in msg
    assert "FASTNN_DATA" in msg and "--data" in msg and "fastnn[data]" in msg
    assert info.value.__cause__ is None and info.value.__context__ is None   # no socket traceback
    assert isinstance(info.value, FileNotFoundError)


def test_without_pooch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pooch", None)       # import pooch -> ImportError
    with pytest.raises(DatasetNotFoundError, match=r"pooch is not installed \(pip install 'fastnn\[data\]'\)"):
        load_fashion_mnist()


def test_download_disabled():
    with pytest.raises(DatasetNotFoundError, match="download disabled"):
        load_mnist(download=False)


# --- the search order --------------------------------------------------------------------------


def test_search_order(mnist_source, tmp_path, monkeypatch):
    explicit = _copy_mnist(mnist_source, tmp_path / "explicit")
    env = _copy_mnist(mnist_source, tmp_path / "env" / "mnist")
    cache = _copy_mnist(mnist_source, tmp_path / "cache" / "mnist")
    assert find_dataset("mnist", download=False) == cache
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "env"))
    assert find_dataset("mnist", download=False) == env
    assert find_dataset("mnist", explicit, download=False) == explicit
    assert find_dataset("mnist", tmp_path / "env", download=False) == env     # DIR/<dataset>
    monkeypatch.setenv("FASTNN_DATA", str(env))                                # the files themselves
    assert find_dataset("mnist", download=False) == env


def test_fashion_mnist_never_takes_mnist_files(mnist_source, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(mnist_source))      # MNIST's own folder
    with pytest.raises(DatasetNotFoundError, match="Fashion-MNIST not found"):
        find_dataset("fashion-mnist", download=False)
    fashion = _copy_mnist(mnist_source, tmp_path / "d" / "fashion-mnist")   # stand-in files
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "d"))
    assert find_dataset("fashion_mnist", download=False) == fashion


def test_load_from_fastnn_data(mnist_source, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(mnist_source))
    _check_mnist(load_mnist(download=False), mnist_source)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="dataset: expected one of"):
        find_dataset("cifar10")


def test_known_hashes_match_the_shared_mnist_checksums(mnist_source):
    sums = mnist_source / "SHA256SUMS"
    if not sums.exists():
        pytest.skip(f"{sums} not present")
    listed = dict(reversed(line.split()) for line in sums.read_text().splitlines() if line.strip())
    assert listed == datasets.DATASETS["mnist"].sha256
    assert all(len(h) == 64 for h in datasets.DATASETS["fashion-mnist"].sha256.values())


def test_cache_dir_follows_platform_convention(monkeypatch):
    monkeypatch.delenv("FASTNN_CACHE")
    path = datasets.cache_dir("mnist")
    assert path.name == "mnist" and "fastnn" in path.parts
