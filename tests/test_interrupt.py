"""Ctrl-C during a long C++ epoch raises KeyboardInterrupt promptly and keeps completed updates."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent("""
    import sys, time, numpy as np, fastnn
    fastnn.set_backend("cpp")
    fastnn.set_num_threads(int(sys.argv[2]))
    rng = np.random.default_rng(0)
    if sys.argv[1] == "nn":
        X = rng.random((20000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 20000)
        W1 = np.asfortranarray(rng.standard_normal((784, 1024), dtype=np.float32) * 0.01)  # written back from a copy
        W2 = rng.standard_normal((1024, 10), dtype=np.float32) * 0.01
        params, epoch = [W1, W2], lambda: fastnn.nn_epoch(X, y, W1, W2, lr=0.01, batch=10)
    else:   # the fused softmax epoch, whose team runs all its batches in one parallel region
        X = rng.random((60000, 784), dtype=np.float32)
        y = rng.integers(0, 10, 60000)
        theta = np.zeros((784, 10), np.float32)
        params, epoch = [theta], lambda: fastnn.softmax_regression_epoch(X, y, theta, lr=1e-4, batch=200)
    before = params[0].copy()
    print("started", flush=True)
    t0 = time.perf_counter()
    try:
        for _ in range(100000):   # many seconds of work
            epoch()
        print("finished", flush=True)
    except KeyboardInterrupt:
        changed = not np.array_equal(params[0], before)
        print(f"interrupted changed={changed}", flush=True)
""")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("epoch,threads", [("nn", 1), ("softmax", 2)])
def test_ctrl_c_stops_epoch_promptly(epoch, threads):
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, epoch, str(threads)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=dict(os.environ, FASTNN_BACKEND="cpp"))
    try:
        assert proc.stdout.readline().strip() == "started"
        time.sleep(1.0)                      # well inside the first epoch
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        elapsed = time.perf_counter() - sent
    finally:
        proc.kill()
    assert "interrupted changed=True" in out, (out, err)
    assert elapsed < 1.5, f"took {elapsed:.2f} s to stop"
