"""How a save reaches the disk: one predictable temporary name per target (cleaned by the next
save), fsync of the file and of its directory, an existing file's permissions kept, a symbolic
link's target written (the link stays)."""
import os
import stat

import numpy as np
import pytest

from fastnn import model_io
from fastnn.fitting import History
from fastnn.model_io import load_model, save_model, temporary_path

W = [np.arange(6, dtype=np.float32).reshape(3, 2)]
posix = pytest.mark.skipif(os.name != "posix", reason="POSIX permissions, links and fsync of directories")


def test_the_temporary_file_has_one_predictable_name(tmp_path, monkeypatch):
    path = tmp_path / "m.npz"
    assert temporary_path(path) == str(tmp_path / ".m.npz.fastnn-tmp")
    seen = []
    real_savez = np.savez

    def watching_savez(f, **arrays):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))
        real_savez(f, **arrays)
    monkeypatch.setattr(np, "savez", watching_savez)
    save_model(path, W)
    save_model(path, W)
    assert seen == [[".m.npz.fastnn-tmp"], [".m.npz.fastnn-tmp", "m.npz"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]


def test_a_leftover_of_a_killed_save_is_removed_by_the_next_save(tmp_path):
    leftover = tmp_path / ".m.npz.fastnn-tmp"
    leftover.write_bytes(b"PK" + bytes(1 << 20))      # what SIGKILL during a save leaves
    os.chmod(leftover, 0o400)
    save_model(tmp_path / "m.npz", W)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]
    np.testing.assert_array_equal(load_model(tmp_path / "m.npz").weights[0], W[0])


@posix
def test_the_file_and_its_directory_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def recording_fsync(fd):
        st = os.fstat(fd)
        synced.append("dir" if stat.S_ISDIR(st.st_mode) else f"file of {st.st_size} bytes")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", recording_fsync)
    save_model(tmp_path / "m.npz", W)
    size = (tmp_path / "m.npz").stat().st_size
    assert synced == [f"file of {size} bytes", "dir"]


@posix
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o444])
def test_an_existing_files_permissions_are_kept(tmp_path, mode):
    path = tmp_path / "m.npz"
    save_model(path, W)
    os.chmod(path, mode)
    save_model(path, [W[0] + 1])
    assert stat.S_IMODE(path.stat().st_mode) == mode
    np.testing.assert_array_equal(load_model(path).weights[0], W[0] + 1)


@posix
def test_saving_to_a_symlink_writes_its_target(tmp_path):
    real = tmp_path / "models" / "real.npz"
    real.parent.mkdir()
    save_model(real, W)
    os.chmod(real, 0o600)
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    save_model(link, [W[0] * 2])
    assert link.is_symlink() and os.readlink(link) == str(real)
    np.testing.assert_array_equal(load_model(real).weights[0], W[0] * 2)
    assert stat.S_IMODE(real.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.npz", "models"]
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.npz"]


def test_history_csv_uses_the_same_atomic_write(tmp_path, monkeypatch):
    history = History(records=[{"epoch": 1, "train_loss": 0.5, "train_err": 0.1, "test_loss": 0.6,
                                "test_err": 0.2, "seconds": 1.0, "samples_per_s": 10.0}])
    (tmp_path / "h.csv").write_text("old\n")

    def failing_write(path, write):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("fastnn.fitting.atomic_write", failing_write)
    with pytest.raises(OSError, match="No space left"):
        history.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text() == "old\n"
    monkeypatch.undo()
    history.to_csv(tmp_path / "h.csv")
    assert (tmp_path / "h.csv").read_text().splitlines()[1].startswith("1,0.5,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv"]


def test_a_failed_write_removes_the_temporary_file(tmp_path):
    def failing(f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")
    with pytest.raises(OSError):
        model_io.atomic_write(tmp_path / "x.bin", failing)
    assert list(tmp_path.iterdir()) == []
