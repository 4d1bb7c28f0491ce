"""`fastnn` at its edges (issue 17): every failure is one line on stderr naming what and where,
exit 1 (2 for usage), never a traceback; output paths are checked before training; a model
that cannot be written where asked is kept in a named fallback file; a closed stdout costs
nothing. Run for real in subprocesses, like test_cli."""
import contextlib
import os
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest

from conftest import mnist_dir
from fastnn import cli, model_io
from fastnn.model_io import load_model
from test_cli import _env, fastnn_cmd
from test_faults_datasets import fake_dataset

TRAIN = ["train", "--epochs", "1", "--train-limit", "1000", "--test-limit", "200", "--hidden", "16"]
TABLE = "| epoch | train loss |"


def _has(module):
    try:
        __import__(module)
        return True
    except ImportError:
        return False


@pytest.fixture(scope="module")
def data_env():
    return _env(FASTNN_DATA=mnist_dir())


def one_error_line(r, code=1):
    """The single stderr line of a failed run (asserting the policy on the way)."""
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr
    return lines[0]


@contextlib.contextmanager
def tmpfs(directory, options):
    """A tiny tmpfs mounted on `directory` (root only; skips where mounting is not allowed)."""
    if os.name != "posix" or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs root")
    directory.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


# --- checked before training ----------------------------------------------------------------

PREFLIGHT = {
    "save into a missing directory": (["--save", "{t}/nope/m.npz"], "--save: '{t}/nope' does not exist"),
    "save onto a directory": (["--save", "{t}"], "--save: '{t}' is a directory"),
    "history under a file": (["--history", "{t}/file/h.csv"], "--history: '{t}/file' is not a directory"),
    "save onto a device": (["--save", "/dev/null"], "--save: '/dev/null' exists and is not a regular file"),
    "two options, one file": (["--save", "{t}/x", "--history", "{t}/x"], "--save and --history: both write"),
    "absurd hidden size": (["--hidden", "100000000"], "--hidden: layer sizes 784-16-100000000-10: training needs"),
}


@pytest.mark.parametrize("case", sorted(PREFLIGHT))
def test_output_faults_are_found_before_training(tmp_path, case):
    args, message = PREFLIGHT[case]
    (tmp_path / "file").write_text("")
    r = fastnn_cmd(*TRAIN, "--no-download", *[a.format(t=tmp_path) for a in args],
                   env=_env(FASTNN_DATA=tmp_path / "none", FASTNN_CACHE=tmp_path / "cache"))
    line = one_error_line(r)
    assert line.startswith("fastnn train: error: ") and message.format(t=tmp_path) in line, line
    assert TABLE not in r.stdout


@pytest.mark.skipif(not _has("matplotlib"), reason="needs matplotlib")
def test_unknown_plot_format_is_found_before_training(tmp_path):
    r = fastnn_cmd(*TRAIN, "--no-download", "--plot", tmp_path / "curves.xyz")
    line = one_error_line(r)
    assert "--plot: matplotlib cannot write 'xyz' files" in line and "png" in line


def test_unwritable_directory_is_found_before_training(tmp_path):
    if os.name == "posix" and os.geteuid() != 0:
        target = tmp_path / "ro"
        target.mkdir()
        os.chmod(target, stat.S_IRUSR | stat.S_IXUSR)
        ctx = contextlib.nullcontext(target)
    else:
        ctx = tmpfs(tmp_path / "ro", "ro,size=64k")
    with ctx as target:
        r = fastnn_cmd(*TRAIN, "--no-download", "--save", target / "m.npz")
        line = one_error_line(r)
        assert f"--save: cannot write in '{target}'" in line, line


@pytest.mark.parametrize("args, message", [
    (["--save", ""], "argument --save: expected a file name, got ''"),
    (["--seed", "-1"], "argument --seed: expected an integer >= 0, got '-1'"),
])
def test_bad_values_are_usage_errors(args, message):
    r = fastnn_cmd(*TRAIN, *args)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", [TRAIN, ["info"]])
def test_a_bogus_backend_in_the_environment_is_one_line(command):
    r = fastnn_cmd(*command, env=_env(FASTNN_BACKEND="bogus"))
    line = one_error_line(r)
    assert line == (f"fastnn {command[0]}: error: FASTNN_BACKEND='bogus': backend: expected one of "
                    f"['numpy', 'cpp'], got 'bogus'")
    if command == ["info"]:
        assert "in use: none: FASTNN_BACKEND='bogus'" in r.stdout    # the report is still printed


def test_eval_of_a_directory_is_one_line(tmp_path):
    line = one_error_line(fastnn_cmd("eval", tmp_path))
    assert line == f"fastnn eval: error: {tmp_path}: not a readable fastnn model file (it is a directory)"


def test_debug_shows_the_traceback():
    r = fastnn_cmd(*TRAIN, "--debug", env=_env(FASTNN_BACKEND="bogus"))
    assert r.returncode == 1 and "Traceback" in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("fastnn train: error: FASTNN_BACKEND='bogus'")


def test_an_unforeseen_error_is_still_one_line(tmp_path):
    r = fastnn_cmd(*TRAIN, pre="import fastnn.fitting as f\ndef boom(*a, **k): raise RuntimeError('kaboom')\n"
                               "f.check_fits_in_memory = boom")
    line = one_error_line(r)
    assert line == "fastnn train: error: RuntimeError: kaboom (run again with --debug for the traceback)"


# --- training runs ------------------------------------------------------------------------------

def test_too_many_threads_is_a_warning(data_env):
    r = fastnn_cmd(*TRAIN, "--threads", "64", "-q", env=data_env)
    assert r.returncode == 0, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fastnn train: warning: --threads 64 is more than the")


def test_labels_outside_the_classes_stop_before_training(tmp_path):
    fake_dataset(tmp_path, bad=("train", 17, 255))
    line = one_error_line(fastnn_cmd("train", "--data", tmp_path, "--no-download", "--epochs", "1"))
    assert "train-labels-idx1-ubyte.gz: label 255 at index 17 is outside the dataset's 10 classes" in line


def test_divergence_stops_with_a_clear_error(tmp_path, data_env):
    model, hist = tmp_path / "m.npz", tmp_path / "h.csv"
    r = fastnn_cmd(*TRAIN, "--epochs", "3", "--lr", "1e308", "--save", model, "--history", hist, env=data_env)
    line = one_error_line(r)
    assert line.startswith("fastnn train: error: training diverged in epoch 1: train loss nan")
    assert "the model was not saved (its weights are not finite); try a smaller --lr" in line
    assert not model.exists() and "nan" in hist.read_text().splitlines()[1]


def test_a_closed_stdout_does_not_cost_the_model(tmp_path, data_env):
    """`fastnn train --save m.npz | head -2`"""
    model = tmp_path / "m.npz"
    proc = subprocess.Popen([sys.executable, "-m", "fastnn", *TRAIN, "--epochs", "2", "--save", str(model)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=data_env)
    head = [proc.stdout.readline(), proc.stdout.readline()]
    proc.stdout.close()                       # what `head -2` does when it exits
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=180) == 0, err
    assert head[1].startswith(b"| epoch |")
    assert "Traceback" not in err and err.strip().splitlines() == [
        "fastnn train: stdout was closed (broken pipe); the table was cut short, training and the outputs went on"]
    assert load_model(model).settings["epochs_completed"] == 2


def test_a_full_disk_keeps_the_model_in_a_fallback_file(tmp_path, data_env):
    with tmpfs(tmp_path / "full", "size=16k") as full:
        r = subprocess.run([sys.executable, "-m", "fastnn", *TRAIN, "--save", str(full / "m.npz"),
                            "--history", str(tmp_path / "h.csv")],
                           capture_output=True, text=True, env=data_env, cwd=tmp_path, timeout=180)
        line = one_error_line(r)
        assert line.startswith(f"fastnn train: error: --save: cannot write '{full / 'm.npz'}' (No space left "
                               f"on device); the model was saved to {tmp_path}/fastnn-rescue-")
        rescued = line.rsplit("saved to ", 1)[1].removesuffix(" instead")
        assert load_model(rescued).layer_sizes == [784, 16, 10]
        assert os.listdir(full) == []                      # no temporary left on the full disk
        assert "saved history to" in r.stdout and (tmp_path / "h.csv").exists()


def test_a_full_disk_for_the_history_keeps_the_model(tmp_path, data_env):
    with tmpfs(tmp_path / "full", "size=16k") as full:
        (full / "filler").write_bytes(bytes(16 << 10))
        r = fastnn_cmd(*TRAIN, "--epochs", "2", "--save", tmp_path / "m.npz", "--history", full / "h.csv",
                       env=data_env)
        assert r.returncode == 1 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [
            f"fastnn train: warning: --history: cannot write '{full / 'h.csv'}' (No space left on device); "
            f"training goes on, the history is written again at the end",
            f"fastnn train: error: --history: cannot write '{full / 'h.csv'}' (No space left on device)"]
        assert load_model(tmp_path / "m.npz").settings["epochs_completed"] == 2


def test_a_failed_save_after_training_falls_back_in_process(tmp_path, monkeypatch, capsys):
    """The disk-full case without a tmpfs: ENOSPC simulated in the save path."""
    monkeypatch.setenv("FASTNN_DATA", str(mnist_dir()))
    monkeypatch.chdir(tmp_path)
    full = tmp_path / "full"
    full.mkdir()
    real_write = model_io.atomic_write

    def write_unless_full(path, write):
        if os.path.dirname(os.path.abspath(path)) == str(full):
            raise OSError(28, "No space left on device")
        return real_write(path, write)
    monkeypatch.setattr(model_io, "atomic_write", write_unless_full)
    code = cli.main([*TRAIN, "-q", "--save", str(full / "m.npz"), "--history", str(tmp_path / "h.csv")])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and f"--save: cannot write '{full / 'm.npz'}' (No space left on device)" in lines[0]
    rescued = lines[0].rsplit("saved to ", 1)[1].removesuffix(" instead")
    assert os.path.dirname(rescued) == str(tmp_path) and load_model(rescued).layer_sizes == [784, 16, 10]
    assert "saved history to" in out


def test_when_no_fallback_works_the_message_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FASTNN_DATA", str(mnist_dir()))

    def always_full(path, write):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(model_io, "atomic_write", always_full)
    code = cli.main([*TRAIN, "-q", "--save", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "nor a fallback file in" in err and "the model is lost" in err
