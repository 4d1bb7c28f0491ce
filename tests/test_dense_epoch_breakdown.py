"""tools/dense_epoch_breakdown.py (where the dense epoch's time goes): its products add up to the
benchmark's FLOP count, and one round of its worker runs on each backend. Times are not checked."""
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastnn
from fastnn import benchmark

TOOL = Path(__file__).resolve().parents[1] / "tools" / "dense_epoch_breakdown.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("dense_epoch_breakdown", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("h", [100, 400])
def test_products_are_the_epochs_flops(tool, h):
    assert sum(tool.product_flops(h).values()) == benchmark.epoch_flops(60000, [784, h, 10])
    assert set(tool.product_flops(h)) == set(tool.PRODUCTS)


@pytest.mark.parametrize("engine", ["numpy", "cpp"])
def test_worker_times_the_epoch_and_every_product(tool, tmp_path, engine):
    if engine == "cpp" and "cpp" not in fastnn.available_backends():
        pytest.skip("cpp backend not built")
    rng = np.random.default_rng(0)
    X = rng.random((300, 784), dtype=np.float32)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "X-centred.npy", benchmark.centre_columns(X))
    np.save(tmp_path / "y.npy", rng.integers(0, 10, 300).astype(np.uint8))
    # in its own process, as the tool runs it (the worker sets the backend and the thread count)
    env = dict(os.environ)
    pkg_parent = str(Path(fastnn.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_parent + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, str(TOOL), "--worker", engine, "--datadir", str(tmp_path), "--hidden", "16"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    parts = out["16"]
    for name in ("epoch",) + tool.PRODUCTS:
        assert parts[name] >= 0 and parts[name + "_wall"] > 0, name
    assert out["info"]["engine"] == engine
