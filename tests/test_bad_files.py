"""File fuzzing: every truncation, many byte flips, empty and foreign files, for IDX (raw and
gzip) and model files. The only acceptable outcomes are a ValueError whose message names the
file, or (for a flip that hits bytes nobody reads) the original content."""
import gzip
import struct

import numpy as np
import pytest

import fastnn
from fastnn.mnist import read_idx_images, read_idx_labels


def _idx_images(n=3, rows=4, cols=5):
    data = (np.arange(n * rows * cols) % 256).astype(np.uint8)
    return struct.pack(">iiii", 2051, n, rows, cols) + data.tobytes(), data.reshape(n, rows, cols)


def _idx_labels(n=3):
    data = np.arange(n, dtype=np.uint8)
    return struct.pack(">ii", 2049, n) + data.tobytes(), data


def _outcome(path, read, expected):
    """'error' (a ValueError naming the file) or 'same' (read back exactly); anything else fails."""
    try:
        got = read(path)
    except ValueError as exc:
        assert str(path) in str(exc), f"message does not name the file: {exc}"
        return "error"
    if isinstance(expected, list):
        assert len(got) == len(expected) and all(np.array_equal(a, b) for a, b in zip(got, expected))
    else:
        np.testing.assert_array_equal(got, expected)
    return "same"


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("kind", ["images", "labels"])
def test_idx_every_truncation_and_flip(tmp_path, kind, compress):
    raw, expected = _idx_images() if kind == "images" else _idx_labels()
    read = read_idx_images if kind == "images" else read_idx_labels
    blob = gzip.compress(raw, mtime=0) if compress else raw
    path = tmp_path / f"f-idx-{kind}"
    outcomes = []
    for cut in range(len(blob)):                      # every truncation, the empty file included
        path.write_bytes(blob[:cut])
        outcomes.append(_outcome(path, read, expected))
    assert set(outcomes) == {"error"}, "a truncated file was read"
    rng = np.random.default_rng(0)
    for i in range(len(blob)):                        # flip one byte at every position
        b = bytearray(blob)
        b[i] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(b))
        try:
            _outcome(path, read, expected)
        except AssertionError:
            # a flipped pixel or label byte is still a well-formed file: it must read as such
            assert not compress and i >= (16 if kind == "images" else 8)
    path.write_bytes(struct.pack(">i", 2050) + raw[4:])   # wrong magic
    with pytest.raises(ValueError, match="magic number"):
        read(path)


def test_idx_negative_dimension_and_trailing_bytes(tmp_path):
    path = tmp_path / "neg"
    path.write_bytes(struct.pack(">iiii", 2051, -1, 4, 5))
    with pytest.raises(ValueError, match=f"{path}.*negative"):
        read_idx_images(path)
    raw, _ = _idx_labels()
    path.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match=f"{path}.*trailing"):
        read_idx_labels(path)


model_io = pytest.importorskip("fastnn.model_io")


def test_model_file_every_truncation_and_flips(tmp_path):
    weights = [np.arange(12, dtype=np.float32).reshape(3, 4), np.ones((4, 2), np.float32)]
    path = tmp_path / "m.npz"
    model_io.save_model(path, weights)
    blob = path.read_bytes()
    bad = tmp_path / "bad.npz"

    def read(p):
        return model_io.load_model(p).weights

    for cut in range(0, len(blob), max(1, len(blob) // 400)):
        bad.write_bytes(blob[:cut])
        assert _outcome(bad, read, weights) == "error"
    rng = np.random.default_rng(1)
    counts = {"error": 0, "same": 0}
    for i in rng.choice(len(blob), size=min(400, len(blob)), replace=False):
        b = bytearray(blob)
        b[i] ^= int(rng.integers(1, 256))
        bad.write_bytes(bytes(b))
        counts[_outcome(bad, read, weights)] += 1
    assert counts["error"] > 0
    for foreign in (b"", b"PK", b"hello", np.zeros(3).tobytes()):
        bad.write_bytes(foreign)
        assert _outcome(bad, read, weights) == "error"


def test_failed_save_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    old = [np.ones((2, 3))]
    model_io.save_model(path, old)
    before = path.read_bytes()

    def exploding_savez(f, **arrays):
        f.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", exploding_savez)
    with pytest.raises(OSError, match="disk full"):
        model_io.save_model(path, [np.zeros((2, 3))])
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"], "a temporary file was left behind"
    with pytest.raises(TypeError, match="settings"):
        model_io.save_model(tmp_path / "new.npz", old, settings={"f": object()})
    assert not (tmp_path / "new.npz").exists()
