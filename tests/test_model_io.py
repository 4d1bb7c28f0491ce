"""save_model / load_model (the .npz model file) and the fit helper with its History."""
import json
import os
import stat
import zipfile

import numpy as np
import pytest

import fastnn
from conftest import random_problem, random_weights
from fastnn.fitting import COLUMNS, History, fit, init_weights
from fastnn.model_io import FORMAT_VERSION, Model, load_model, save_model


@pytest.mark.parametrize("sizes", [[20, 5], [20, 16, 8, 5]], ids=["softmax", "mlp"])
def test_round_trip(tmp_path, sizes, dtype):
    weights = random_weights(np.random.default_rng(0), sizes, dtype=dtype)
    settings = {"lr": 0.2, "batch": 100, "dataset": "mnist", "note": "ünïcode"}
    path = tmp_path / "model.npz"
    assert save_model(path, weights, settings=settings) == str(path)
    m = load_model(path)
    assert m.kind == ("softmax" if len(sizes) == 2 else "mlp")
    assert m.layer_sizes == sizes and m.dtype == dtype and m.format_version == FORMAT_VERSION
    assert m.settings == settings
    for W, V in zip(weights, m.weights):
        assert V.dtype == dtype and V.flags.c_contiguous
        np.testing.assert_array_equal(W, V)
    # the file holds plain arrays only: readable without pickle
    with np.load(path, allow_pickle=False) as npz:
        assert int(npz["fastnn_format"]) == FORMAT_VERSION
        assert json.loads(str(npz["settings"])) == settings


def test_save_accepts_model_and_fortran_arrays(tmp_path):
    W = np.asfortranarray(np.arange(12, dtype=np.float32).reshape(4, 3))
    save_model(tmp_path / "a.npz", Model([W], "softmax", {"lr": 1.0}), settings={"batch": 7})
    m = load_model(tmp_path / "a.npz")
    np.testing.assert_array_equal(m.weights[0], W)
    assert m.settings == {"lr": 1.0, "batch": 7} and m.kind == "softmax"


def test_loaded_model_predicts_like_the_original(tmp_path, backend):
    rng = np.random.default_rng(1)
    X, y = random_problem(rng, 50, 20, 5, dtype=np.float32)
    weights = random_weights(rng, [20, 16, 5], dtype=np.float32)
    save_model(tmp_path / "m.npz", weights)
    m = load_model(tmp_path / "m.npz")
    assert m.evaluate(X, y) == fastnn.evaluate(X, y, weights)
    np.testing.assert_array_equal(m.predict(X), fastnn.predict(X, weights))


@pytest.mark.parametrize("bad, match", [
    ([np.zeros((3, 4)), np.zeros((5, 2))], "expected 4 rows"),
    ([np.zeros((3, 4), np.float32), np.zeros((4, 2))], "dtype"),
    ([np.zeros(3)], "2-D"),
    ([np.zeros((3, 4), np.int64)], "float32 or float64"),
    ([], "at least one"),
])
def test_save_rejects_bad_weights(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        save_model(tmp_path / "m.npz", bad)
    assert list(tmp_path.iterdir()) == []


def test_save_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    save_model(path, [np.ones((3, 2))])
    before = path.read_bytes()

    def failing_savez(f, **arrays):       # writes part of a file, then fails
        f.write(b"PK\x03\x04 partial")
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        save_model(path, [np.zeros((3, 2))])
    assert path.read_bytes() == before                        # old file untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]   # no temporary left
    monkeypatch.undo()
    with pytest.raises(TypeError, match="JSON"):
        save_model(tmp_path / "new.npz", [np.ones((3, 2))], settings={"x": object()})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_saved_file_has_normal_permissions(tmp_path):
    save_model(tmp_path / "m.npz", [np.ones((3, 2))])
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE((tmp_path / "m.npz").stat().st_mode) == 0o666 & ~umask


def _good_file(tmp_path):
    path = tmp_path / "good.npz"
    save_model(path, random_weights(np.random.default_rng(0), [30, 20, 10]), settings={"lr": 0.1})
    return path


@pytest.mark.parametrize("cut", [0, 2, 10, 100, 1000, -200, -22, -1])
def test_load_truncated_file(tmp_path, cut):
    data = _good_file(tmp_path).read_bytes()
    bad = tmp_path / "truncated.npz"
    bad.write_bytes(data[:cut])
    with pytest.raises(ValueError, match="truncated.npz: not a readable fastnn model file"):
        load_model(bad)


def test_load_corrupt_member(tmp_path):
    data = bytearray(_good_file(tmp_path).read_bytes())
    data[200:260] = bytes(60)      # inside the first member's data: CRC or header check fails
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="corrupt.npz"):
        load_model(bad)


def test_load_not_a_model(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("epoch,loss\n1,0.5\n")
    with pytest.raises(ValueError, match="notes.txt: .*not an .npz"):
        load_model(text)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(3))
    with pytest.raises(ValueError, match="other.npz: .*no 'fastnn_format' entry"):
        load_model(other)
    npy = tmp_path / "one.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ValueError, match="one.npy"):
        load_model(npy)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_model(tmp_path / "missing.npz")


def test_load_rejects_newer_format_and_inconsistent_shapes(tmp_path):
    base = dict(kind=np.array("mlp"), layer_sizes=np.array([3, 2]), dtype=np.array("float64"),
                settings=np.array("{}"), W0=np.ones((3, 2)))
    np.savez(tmp_path / "v99.npz", fastnn_format=np.array(99), **base)
    with pytest.raises(ValueError, match="v99.npz: .*format version 99"):
        load_model(tmp_path / "v99.npz")
    np.savez(tmp_path / "shape.npz", fastnn_format=np.array(1), **{**base, "W0": np.ones((2, 2))})
    with pytest.raises(ValueError, match="shape.npz: .*W0 has shape"):
        load_model(tmp_path / "shape.npz")
    np.savez(tmp_path / "kind.npz", fastnn_format=np.array(1), **{**base, "kind": np.array("svm")})
    with pytest.raises(ValueError, match="kind.npz: .*unknown model kind"):
        load_model(tmp_path / "kind.npz")
    np.savez(tmp_path / "missing.npz", fastnn_format=np.array(1), kind=np.array("mlp"))
    with pytest.raises(ValueError, match="missing.npz"):
        load_model(tmp_path / "missing.npz")


# --- fit and History --------------------------------------------------------------------------


def _problem(n=530, d=20, k=5):
    rng = np.random.default_rng(3)
    X, y = random_problem(rng, n, d, k, dtype=np.float32)
    Xt, yt = random_problem(rng, 100, d, k, dtype=np.float32)
    y[:k] = np.arange(k)          # every class present
    return X, y, Xt, yt


def test_fit_matches_a_manual_loop(backend):
    X, y, Xt, yt = _problem()
    h = fit(X, y, Xt, yt, hidden=(16, 8), epochs=3, lr=0.1, batch=50, seed=7)
    weights = init_weights([20, 16, 8, 5], seed=7, dtype=np.float32)
    for _ in range(3):
        fastnn.mlp_epoch(X, y, weights, lr=0.1, batch=50)
    for W, V in zip(weights, h.weights):
        np.testing.assert_array_equal(W, V)
    assert len(h) == 3 and not h.interrupted
    assert [r["epoch"] for r in h.records] == [1, 2, 3]
    assert (h.records[-1]["test_loss"], h.records[-1]["test_err"]) == fastnn.evaluate(Xt, yt, weights)
    assert h["train_loss"] == [r["train_loss"] for r in h.records]
    s = h.model.settings
    assert s["layer_sizes"] == [20, 16, 8, 5] and s["lr"] == 0.1 and s["batch"] == 50
    assert s["epochs_completed"] == 3 and h.model.kind == "mlp"


def test_fit_with_progress_gives_the_same_weights(backend):
    X, y, Xt, yt = _problem()
    plain = fit(X, y, Xt, yt, hidden=(16,), epochs=2, batch=40)
    calls = []
    chunked = fit(X, y, Xt, yt, hidden=(16,), epochs=2, batch=40, chunk_batches=3,
                  progress=lambda done, n: calls.append((done, n)))
    for W, V in zip(plain.weights, chunked.weights):
        np.testing.assert_array_equal(W, V)
    per_epoch = calls[:len(calls) // 2]
    assert per_epoch[-1] == (530, 530) and per_epoch[0] == (120, 530)


def test_fit_softmax_starts_from_zeros():
    X, y, Xt, yt = _problem()
    h = fit(X, y, model="softmax", epochs=1, lr=0.5, batch=100)
    theta = np.zeros((20, 5), np.float32)
    fastnn.softmax_regression_epoch(X, y, theta, lr=0.5, batch=100)
    np.testing.assert_array_equal(h.weights[0], theta)
    assert h.model.kind == "softmax" and np.isnan(h.records[0]["test_loss"])


def test_fit_stops_cleanly_on_keyboard_interrupt():
    X, y, Xt, yt = _problem()
    state = {"calls": 0}

    def progress(done, n):
        state["calls"] += 1
        if done == n and state["calls"] > 3:     # during epoch 2
            raise KeyboardInterrupt
    h = fit(X, y, Xt, yt, hidden=(8,), epochs=10, batch=50, chunk_batches=4, progress=progress)
    assert h.interrupted and len(h) == 1
    assert h.model.settings["interrupted"] is True and h.model.settings["epochs_completed"] == 1


def test_history_csv_and_plot(tmp_path):
    X, y, Xt, yt = _problem()
    h = fit(X, y, Xt, yt, hidden=(8,), epochs=2, batch=50)
    h.to_csv(tmp_path / "h.csv")
    lines = (tmp_path / "h.csv").read_text().splitlines()
    assert lines[0].split(",") == list(COLUMNS) and len(lines) == 3
    assert float(lines[2].split(",")[4]) == h.records[1]["test_err"]
    pytest.importorskip("matplotlib")
    h.plot(tmp_path / "c.png", title="t")
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_is_indexable():
    h = History(records=[{"epoch": 1, "test_err": 0.5}, {"epoch": 2, "test_err": 0.25}])
    assert h["test_err"] == [0.5, 0.25] and h[1]["epoch"] == 2 and len(h) == 2


def test_fit_result_saves_and_loads(tmp_path):
    X, y, Xt, yt = _problem()
    h = fit(X, y, Xt, yt, hidden=(8,), epochs=1, batch=50, settings={"dataset": "synthetic"})
    save_model(tmp_path / "m.npz", h.model)
    m = load_model(tmp_path / "m.npz")
    assert m.settings == h.model.settings and m.settings["dataset"] == "synthetic"
    assert m.evaluate(Xt, yt) == (h.records[0]["test_loss"], h.records[0]["test_err"])
    assert zipfile.is_zipfile(tmp_path / "m.npz")
