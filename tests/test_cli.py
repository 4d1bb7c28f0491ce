"""The `fastnn` command, run for real in a subprocess (`python -m fastnn`, same interpreter and
the same fastnn as this test session) on real MNIST slices."""
import csv
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from conftest import mnist_dir
from fastnn.model_io import load_model

SRC = str(Path(fastnn.__file__).resolve().parent.parent)
SMALL = ["--train-limit", "2000", "--test-limit", "500", "--hidden", "32"]
ROW = re.compile(r"^\|\s*(\d+) \|" + r"\s*([\d.]+) \|" * 4 + r"\s*([\d.]+) \|\s*([\d,]+) \|$")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("FASTNN_DATA_URL", None)
    env.update({k: str(v) for k, v in extra.items()})
    return env


def fastnn_cmd(*args, env=None, timeout=180, pre=None):
    """Run `python -m fastnn ARGS` (or, with `pre`, python -c that runs `pre` first)."""
    if pre is None:
        cmd = [sys.executable, "-m", "fastnn", *map(str, args)]
    else:
        cmd = [sys.executable, "-c", f"{pre}\nimport sys\nfrom fastnn.cli import main\nsys.exit(main(sys.argv[1:]))",
               *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env or _env())


def table_rows(stdout):
    rows = []
    for line in stdout.splitlines():
        m = ROW.match(line)
        if m:
            rows.append(m.groups())
    return rows


@pytest.fixture(scope="module")
def data_env():
    return _env(FASTNN_DATA=mnist_dir())


def test_train_save_eval_round_trip(tmp_path, data_env):
    model, hist, plot = tmp_path / "m.npz", tmp_path / "h.csv", tmp_path / "c.png"
    want_plot = _has("matplotlib")
    args = ["train", *SMALL, "--epochs", "2", "--lr", "0.1", "--batch", "50", "--seed", "3",
            "--save", model, "--history", hist] + (["--plot", plot] if want_plot else [])
    r = fastnn_cmd(*args, env=data_env)
    assert r.returncode == 0, r.stderr
    assert "mlp 784-32-10 (float32) on mnist (2,000 train / 500 test)" in r.stdout
    assert "| epoch | train loss | train err | test loss | test err | seconds | samples/s |" in r.stdout
    rows = table_rows(r.stdout)
    assert [row[0] for row in rows] == ["1", "2"], r.stdout
    for row in rows:
        assert all(0 <= float(v) <= 1 for v in (row[2], row[4]))           # error rates
        assert float(row[1]) > 0 and float(row[3]) > 0
    assert float(rows[1][1]) < float(rows[0][1])                            # it learns
    assert "Traceback" not in r.stderr

    with open(hist, newline="") as f:
        records = list(csv.DictReader(f))
    assert [rec["epoch"] for rec in records] == ["1", "2"]
    assert f"{float(records[1]['test_err']):.5f}" == rows[1][4]
    if want_plot:
        assert plot.read_bytes()[:8] == PNG_MAGIC

    m = load_model(model)
    assert m.kind == "mlp" and m.layer_sizes == [784, 32, 10] and m.dtype == np.float32
    s = m.settings
    assert (s["lr"], s["batch"], s["seed"], s["epochs_completed"], s["dataset"]) == (0.1, 50, 3, 2, "mnist")
    assert s["train_limit"] == 2000 and s["test_limit"] == 500

    r = fastnn_cmd("eval", model, "--test-limit", "500", env=data_env)
    assert r.returncode == 0, r.stderr
    m = re.search(r"test loss ([\d.]+)\s+test err ([\d.]+)", r.stdout)
    assert m, r.stdout
    assert (m.group(1), m.group(2)) == (rows[-1][3], rows[-1][4])


def test_train_softmax_and_layer_lists(data_env, tmp_path):
    no_env = {k: v for k, v in data_env.items() if k != "FASTNN_DATA"}
    no_env["FASTNN_CACHE"] = str(tmp_path / "empty-cache")
    r = fastnn_cmd("train", "--model", "softmax", "--epochs", "1", "--train-limit", "1000",
                   "--test-limit", "200", "--backend", "numpy", "--quiet", "--no-download",
                   "--data", data_env["FASTNN_DATA"], env=no_env)
    assert r.returncode == 0, r.stderr
    assert len(table_rows(r.stdout)) == 1 and "fastnn 0.1" not in r.stdout    # --quiet: no preamble
    r = fastnn_cmd("train", "--hidden", "16,12", "--hidden", "8", "--epochs", "1", "--train-limit", "500",
                   "--test-limit", "100", "--backend", "numpy", "--dtype", "float64", env=data_env)
    assert r.returncode == 0, r.stderr
    assert "mlp 784-16-12-8-10 (float64)" in r.stdout and len(table_rows(r.stdout)) == 1


@pytest.mark.skipif("cpp" not in fastnn.available_backends(), reason="cpp backend not built")
def test_dense_flag_turns_zero_skipping_off(tmp_path, data_env):
    """--dense runs the dense GEMMs (set_skip_zeros(False)); both paths train the same model up
    to rounding."""
    report = "import atexit, fastnn; atexit.register(lambda: print('skip_zeros', fastnn.get_skip_zeros()))"
    models = {}
    for flag in ([], ["--dense"]):
        model = tmp_path / f"m{len(flag)}.npz"
        r = fastnn_cmd("train", *SMALL, "--epochs", "1", "--backend", "cpp", "--save", model, "-q", *flag,
                       env=data_env, pre=report)
        assert r.returncode == 0, r.stderr
        assert f"skip_zeros {not flag}" in r.stdout
        models[bool(flag)] = load_model(model)
    for a, b in zip(models[False].weights, models[True].weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(os.name != "posix", reason="sends SIGINT")
def test_ctrl_c_stops_cleanly_and_saves(tmp_path, data_env):
    model, hist = tmp_path / "m.npz", tmp_path / "h.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fastnn", "train", "--train-limit", "1000", "--test-limit", "100",
         "--hidden", "16", "--epochs", "100000", "--backend", "numpy", "--save", str(model),
         "--history", str(hist)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=data_env)
    try:
        for line in proc.stdout:          # wait for the first epoch's row
            if ROW.match(line.rstrip("\n")):
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    assert "saved model to" in out
    m = load_model(model)
    assert m.settings["interrupted"] is True and m.settings["epochs_completed"] >= 1
    assert len(hist.read_text().splitlines()) == 1 + m.settings["epochs_completed"]


@pytest.mark.parametrize("args, message", [
    (["train", "--epochs", "0"], "argument --epochs: expected a positive integer"),
    (["train", "--lr", "fast"], "argument --lr: expected a positive number"),
    (["train", "--lr", "nan"], "argument --lr"),
    (["train", "--hidden", "32,x"], "argument --hidden"),
    (["train", "--hidden", "0"], "argument --hidden"),
    (["train", "--model", "svm"], "argument --model: invalid choice"),
    (["train", "--dataset", "cifar"], "argument --dataset: invalid choice"),
    (["train", "--backend", "gpu"], "argument --backend: invalid choice"),
    (["train", "--model", "softmax", "--hidden", "10"], "argument --hidden: not allowed with --model softmax"),
    (["train", "--bogus"], "unrecognized arguments: --bogus"),
    (["eval"], "the following arguments are required: MODEL.npz"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "usage: fastnn"),
])
def test_bad_arguments_are_usage_errors(args, message):
    r = fastnn_cmd(*args)
    assert r.returncode == 2
    out = r.stderr + r.stdout
    assert "usage: fastnn" in out and message in out and "Traceback" not in out


def test_eval_rejects_files_that_are_not_models(tmp_path):
    bad = tmp_path / "notes.npz"
    bad.write_text("not a model")
    r = fastnn_cmd("eval", bad)
    assert r.returncode == 1
    assert f"{bad}: not a readable fastnn model file" in r.stderr and "Traceback" not in r.stderr
    r = fastnn_cmd("eval", tmp_path / "missing.npz")
    assert r.returncode == 1 and "missing.npz: no such model file" in r.stderr


def test_missing_data_is_a_clear_error(tmp_path):
    env = _env(FASTNN_DATA=tmp_path / "nothing", FASTNN_CACHE=tmp_path / "cache")
    r = fastnn_cmd("train", "--no-download", "--epochs", "1", env=env)
    assert r.returncode == 1, r.stderr
    assert "MNIST not found" in r.stderr and str(tmp_path / "cache" / "mnist") in r.stderr
    assert "Traceback" not in r.stderr


def test_plot_without_matplotlib_names_the_extra(tmp_path):
    r = fastnn_cmd("train", "--plot", tmp_path / "c.png", pre="import sys; sys.modules['matplotlib'] = None")
    assert r.returncode == 1
    assert "pip install 'fastnn[plot]'" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "c.png").exists()


def test_info():
    r = fastnn_cmd("info")
    assert r.returncode == 0, r.stderr
    assert f"fastnn {fastnn.__version__}" in r.stdout
    assert "backends: " + ", ".join(fastnn.available_backends()) in r.stdout
    assert "cpu simd features:" in r.stdout and "threads:" in r.stdout
    if "cpp" in fastnn.available_backends():
        assert "simd_active" in r.stdout


def test_info_without_the_extension():
    r = fastnn_cmd("info", pre="import sys; sys.modules['fastnn._core'] = None")
    assert r.returncode == 0, r.stderr
    assert "backends: numpy" in r.stdout and "cpp: not available" in r.stdout
    assert "the C++ extension is missing" in r.stdout


def test_version():
    r = fastnn_cmd("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"fastnn {fastnn.__version__}"


def test_bench_forwards_to_the_harness():
    if not _has("fastnn.benchmark"):
        pytest.skip("fastnn.benchmark (the benchmark harness) is not in this tree yet")
    r = fastnn_cmd("bench", "--help")
    assert r.returncode == 0, r.stderr
    assert "usage: fastnn bench" in r.stdout


def test_progress_bar_draws_per_epoch(capsys):
    pytest.importorskip("tqdm")
    from fastnn.cli import _ProgressBar
    bar = _ProgressBar(True, 3)
    assert bar.active
    for epoch in range(2):
        bar(500, 1000)
        bar(1000, 1000)
        bar.close()
    err = capsys.readouterr().err
    assert "epoch 1/3" in err and "epoch 2/3" in err
    assert not _ProgressBar(False, 3).active


def _has(module):
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False
