"""load_model on files an attacker (or a bug elsewhere) made: every one is refused with a
ValueError naming the file, before any weight is read, with memory bounded by the sizes the
file declares (issue 17's reproducers; builders in hostile_files.py)."""
import os
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn.model_io import load_model, save_model
from fastnn.npz_members import NpzError, _check_sizes
from hostile_files import GOOD_SIZES, hostile_models, metadata, peak_rss_over_baseline, weights, write_npz

RSS_LIMIT = 100 * 2**20      # issue 17: at most 100 MB over the interpreter


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return hostile_models(tmp_path_factory.mktemp("hostile"))


EXPECTED = {
    "zero-bomb": "W0 has shape",
    "huge-shape": "W0: its header declares",
    "deep-json": "settings nest 100000 levels deep",
    "raw-member": "kind: not a .npy array",
    "non-npy-member": "unexpected member 'notes.txt'",
    "pk-only": "truncated or corrupt .npz archive",
    "softmax-two-matrices": "kind 'softmax' has one weight matrix",
    "version-1.9": "fastnn_format has dtype <f8; expected an integer scalar",
    "version-str": "fastnn_format has dtype <U1",
    "size-784.5": "layer_sizes is <f8",
    "extra-W2": "unexpected entries W2",
    "float16": "dtype 'float16'; expected one of float32, float64",
    "int64": "W0 has dtype <i8",
    "big-endian": "W0 has dtype >f4",
    "lr-abc": "settings: lr is 'abc', expected a positive finite number",
    "missing-W1": "missing weight matrices W1",
    "object-dtype": "not a plain numeric or string type",
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_model_is_refused_naming_the_file(hostile, name):
    path = hostile[name]
    with pytest.raises(ValueError) as info:
        load_model(path)
    message = str(info.value)
    assert message.startswith(f"{path}: not a readable fastnn model file"), message
    assert EXPECTED[name] in message, message
    assert "\n" not in message


def test_loading_the_hostile_files_takes_bounded_memory(hostile):
    results, _ = peak_rss_over_baseline("model", hostile.values())
    for name, path in hostile.items():
        outcome, extra = results[str(path)]
        assert outcome == "ValueError", name
        assert extra <= RSS_LIMIT, f"{name}: peak RSS {extra / 2**20:.0f} MiB over the interpreter"


def test_declared_sizes_no_member_can_have_are_refused():
    info = zipfile.ZipInfo("W0.npy")
    info.compress_type, info.compress_size, info.file_size = zipfile.ZIP_STORED, 100, 10**12
    with pytest.raises(NpzError, match="declares 1,000,000,000,000 uncompressed bytes from 100"):
        _check_sizes(info, archive_bytes=1000)
    info.compress_type, info.compress_size = zipfile.ZIP_DEFLATED, 10**6
    with pytest.raises(NpzError, match="compressed bytes in a 1,000-byte file"):
        _check_sizes(info, archive_bytes=1000)
    info.compress_type = zipfile.ZIP_BZIP2
    with pytest.raises(NpzError, match="compression method 12 is not supported"):
        _check_sizes(info, archive_bytes=10**7)


def test_directory_and_duplicate_members_are_refused(tmp_path):
    with pytest.raises(ValueError, match=f"{tmp_path}: .*it is a directory"):
        load_model(tmp_path)
    path = tmp_path / "dup.npz"
    with pytest.warns(UserWarning, match="Duplicate name"):
        write_npz(path, {**metadata(), **weights(), "W1.npy": b"\x93NUMPY"})
    with pytest.raises(ValueError, match="dup.npz: .*appears twice"):
        load_model(path)


@pytest.mark.parametrize("compress", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_well_formed_files_still_load(tmp_path, compress, dtype):
    w = weights(dtype=dtype)
    path = write_npz(tmp_path / "ok.npz", {**metadata(dtype=np.dtype(dtype).name, settings='{"lr": 0.5}'), **w},
                     compress=compress)
    model = load_model(path)
    assert model.layer_sizes == GOOD_SIZES and model.settings == {"lr": 0.5}
    for a, b in zip(model.weights, w.values()):
        np.testing.assert_array_equal(a, b)
        assert a.dtype == dtype and a.flags.c_contiguous and a.flags.writeable


def test_settings_of_the_users_own_are_kept(tmp_path):
    settings = {"lr": 0.1, "batch": 50, "notes": {"run": [1, 2, {"a": None}]}, "epochs_completed": 0}
    save_model(tmp_path / "m.npz", list(weights().values()), settings=settings)
    assert load_model(tmp_path / "m.npz").settings == settings
    with pytest.raises(ValueError, match=r"batch is '0', expected a positive integer"):
        save_model(tmp_path / "b.npz", list(weights().values()), settings={"batch": 0})
        load_model(tmp_path / "b.npz")
