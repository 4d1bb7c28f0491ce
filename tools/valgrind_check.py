#!/usr/bin/env python3
"""Run a short fastnn training script under valgrind memcheck and fail if memory that fastnn
allocated is "definitely lost", or if memcheck reports any other error (invalid read/write,
uninitialised value) with a fastnn frame in its stack.

    python3 tools/valgrind_check.py            # uses the fastnn that `import fastnn` finds
    PYTHONPATH=src python3 tools/valgrind_check.py

CPython's own allocations are left to it: PYTHONMALLOC=malloc lets memcheck see every block,
CPython's suppression file is used when one is installed, and only leaks whose allocation
stack has a fastnn frame (the _core extension or fastnn's sources) count. FASTNN_ISA=avx2,
since valgrind does not emulate AVX-512. Takes about a minute.
"""
import glob
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import xml.etree.ElementTree as ET

SCRIPT = r"""
import numpy as np
import fastnn
from fastnn import _core
fastnn.set_backend("cpp")
fastnn.set_num_threads(2)
rng = np.random.default_rng(0)
for dtype in (np.float32, np.float64):
    X = rng.standard_normal((300, 40)).astype(dtype)
    y = rng.integers(0, 10, 300).astype(np.uint8)
    theta = np.zeros((40, 10), dtype=dtype)
    W1 = (rng.standard_normal((40, 32)) / 6).astype(dtype)
    W2 = (rng.standard_normal((32, 10)) / 6).astype(dtype)
    Ws = [(rng.standard_normal(s) / 6).astype(dtype) for s in [(40, 24), (24, 16), (16, 10)]]
    for epoch in range(2):
        fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=50)
        fastnn.nn_epoch(X, y, W1, W2, lr=0.1, batch=64)
        fastnn.mlp_epoch(X, y, Ws, lr=0.1, batch=33)
        fastnn.mlp_epoch(X, y, [np.asfortranarray(W) for W in Ws], lr=0.1, batch=300)
    # a mostly-zero X: the zero-skipping epochs (compaction, column panels on 2 threads)
    Xs = (X * (rng.random(X.shape) < 0.15)).astype(dtype)
    fastnn.nn_epoch(Xs, y, W1, W2, lr=0.1, batch=64)
    fastnn.mlp_epoch(Xs, y, Ws, lr=0.1, batch=33)
    fastnn.train_epoch(Xs, y, [W1, W2], optimizer=fastnn.Adam(), lr=0.01, batch=50, order=rng.permutation(300))
    fastnn.train_epoch(fastnn.SparseRows.from_dense(Xs), y, [W1, W2], lr=0.1, batch=50)
    # X as uint8 pixels and a scale: the softmax epoch widens each batch in the core
    fastnn.softmax_regression_epoch(fastnn.Pixels(rng.integers(0, 256, (300, 40), dtype=np.uint8), 1 / 255), y,
                                    theta, lr=0.1, batch=50)
    fastnn.evaluate(X, y, Ws); fastnn.mlp_loss_grad(X[:50], y[:50], Ws); fastnn.predict(X, Ws)
    fastnn.matmul(X, X.T); fastnn.matmul(X.T, X); fastnn.relu(X)
    fastnn.softmax_cross_entropy(X[:, :10], y); fastnn.loss_err(X[:, :10], y)
    # error paths thrown from C++ after allocations
    for bad in (lambda: _core.mlp_epoch(X, np.full(300, 99, np.int64), Ws, 0.1, 10),
                lambda: _core.mlp_epoch(X, y.astype(np.int64), Ws + [Ws[0]], 0.1, 10),
                lambda: _core.gemm("N", "N", X, X, np.empty((300, 300), dtype), 1.0, 0.0),
                lambda: fastnn.nn_epoch(X, y, W1, W2, lr=float("nan"))):
        try:
            bad()
        except (ValueError, TypeError):
            pass
if hasattr(fastnn, "train_epoch"):
    try:
        W = [np.zeros((40, 10))]
        fastnn.api.train_epoch(X.astype(np.float64), y, W, lr=0.1, batch=50)
    except Exception:
        pass
print("script done")
"""


def python_suppressions():
    candidates = []
    for var in ("srcdir", "LIBDEST", "prefix"):
        base = sysconfig.get_config_var(var)
        if base:
            candidates += glob.glob(os.path.join(base, "**", "valgrind-python.supp"), recursive=True)
    candidates += glob.glob("/usr/lib/valgrind/python*.supp") + glob.glob("/usr/share/doc/python3*/valgrind-python.supp")
    return candidates[0] if candidates else None


def is_fastnn_frame(frame):
    text = " ".join((frame.findtext(tag) or "") for tag in ("obj", "fn", "dir", "file"))
    return "fastnn" in text or "/_core." in text or "src/cpp" in text


def main():
    valgrind = shutil.which("valgrind")
    if not valgrind:
        print("valgrind_check: valgrind is not installed")
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        script, xml = os.path.join(tmp, "train.py"), os.path.join(tmp, "memcheck.xml")
        with open(script, "w") as f:
            f.write(SCRIPT)
        cmd = [valgrind, "--tool=memcheck", "--leak-check=full", "--show-leak-kinds=definite",
               "--errors-for-leak-kinds=definite", "--num-callers=40", "--xml=yes", f"--xml-file={xml}"]
        supp = python_suppressions()
        if supp:
            cmd.append(f"--suppressions={supp}")
        env = dict(os.environ, PYTHONMALLOC="malloc", FASTNN_ISA="avx2", OMP_NUM_THREADS="2")
        print("valgrind_check:", " ".join(cmd), sys.executable, "train.py", flush=True)
        proc = subprocess.run(cmd + [sys.executable, script], env=env, capture_output=True, text=True)
        print(proc.stdout[-2000:], proc.stderr[-3000:] if proc.returncode else "", sep="")
        if proc.returncode != 0 or "script done" not in proc.stdout:
            print(f"valgrind_check: the script failed under valgrind (exit status {proc.returncode})")
            return 1
        root = ET.parse(xml).getroot()
    leaked_total = leaked_ours = 0
    ours = []
    for error in root.iter("error"):
        kind = error.findtext("kind")
        frames = list(error.iter("frame"))
        mine = any(is_fastnn_frame(fr) for fr in frames)
        if kind == "Leak_DefinitelyLost":
            nbytes = int(error.findtext("xwhat/leakedbytes") or 0)
            leaked_total += nbytes
            if mine:
                leaked_ours += nbytes
                ours.append(error)
        elif mine:
            ours.append(error)
    print(f"valgrind_check: definitely lost {leaked_total} bytes in all, {leaked_ours} bytes from fastnn; "
          f"{len(ours)} memcheck error(s) with a fastnn frame")
    for error in ours:
        print("---", error.findtext("kind"), error.findtext("xwhat/text") or error.findtext("what"))
        for fr in list(error.iter("frame"))[:15]:
            print("   ", fr.findtext("fn"), fr.findtext("obj"), fr.findtext("file") or "", fr.findtext("line") or "")
    return 1 if ours else 0


if __name__ == "__main__":
    sys.exit(main())
