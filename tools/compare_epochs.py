#!/usr/bin/env python3
"""Bitwise comparison of two builds' hw0 epochs (mlp_epoch, nn_epoch, softmax_regression_epoch).

    python tools/compare_epochs.py write OUT.npz        # with the build under test importable
    python tools/compare_epochs.py compare A.npz B.npz  # every array equal to the bit, or exit 1

`write` trains each case below once per FASTNN_ISA the CPU offers and per thread count 1, 2, 3
(one child process per ISA: the ISA is read once per process) and stores the weights: the
dense epochs, and with MNIST the zero-skipping one as well. Run it under the old build and the
new one (e.g. PYTHONPATH=old/site-packages), then `compare`. Used
when an epoch's code is restructured and its results must not move a bit; tests cover the
same properties within one build (test_threads_determinism.py, test_isa_agreement.py).
Set FASTNN_DATA to include MNIST cases.
"""
import os
import subprocess
import sys

import numpy as np

ISAS = ("generic", "avx2", "avx512")
THREADS = (1, 2, 3)


def _random_cases():
    """(name, X, y, weights, lr, batch): hidden layers 0-2, float32/float64 and mixed, batches
    below and past the GEMM's depth block, a last batch shorter than the rest."""
    rng = np.random.default_rng(19)
    shapes = [("softmax", [57, 7], 301, 50), ("2-layer", [300, 200, 10], 549, 256),
              ("3-layer", [300, 120, 50, 10], 549, 100), ("2-layer-big-batch", [64, 40, 5], 1100, 700),
              ("2-layer-tiny", [19, 12, 3], 9, 2)]
    for name, sizes, n, batch in shapes:
        for xt, wt in ((np.float32, np.float32), (np.float64, np.float64), (np.float32, np.float64)):
            X = rng.standard_normal((n, sizes[0])).astype(xt)
            X[rng.random(X.shape) < 0.6] = 0   # MNIST-like zeros (the dense path is asked for below)
            y = rng.integers(0, sizes[-1], n).astype(np.uint8)
            W = [(rng.standard_normal((a, b)) / np.sqrt(b)).astype(wt) for a, b in zip(sizes, sizes[1:])]
            yield f"{name}-{np.dtype(xt).name}-{np.dtype(wt).name}", X, y, W, 0.1, batch


def _mnist_cases():
    import fastnn
    data = os.environ.get("FASTNN_DATA")
    if not data:
        return
    X, y = fastnn.parse_mnist(os.path.join(data, "train-images-idx3-ubyte.gz"),
                              os.path.join(data, "train-labels-idx1-ubyte.gz"))
    X, y = X[:6000], y[:6000]
    rng = np.random.default_rng(0)
    yield "mnist-softmax", X, y, [np.zeros((784, 10), np.float32)], 0.1, 100
    W1 = (rng.standard_normal((784, 100)) / np.sqrt(100)).astype(np.float32)
    W2 = (rng.standard_normal((100, 10)) / np.sqrt(10)).astype(np.float32)
    yield "mnist-nn", X, y, [W1, W2], 0.2, 100
    yield "mnist-nn-f64", X, y, [W1.astype(np.float64), W2.astype(np.float64)], 0.2, 100
    W1 = (rng.standard_normal((784, 400)) / np.sqrt(400)).astype(np.float32)   # (two panels of 13 + 12 vectors)
    W2 = (rng.standard_normal((400, 10)) / np.sqrt(10)).astype(np.float32)
    yield "mnist-nn-h400", X, y, [W1, W2], 0.2, 100


def _skip_cases():
    """The zero-skipping epoch (batch_compaction.hpp, sparse_rows.cpp): MNIST's first rows with
    h = 100 and 400, a batch that leaves a short last one, and float64 weights."""
    for name, X, y, W, lr, batch in _mnist_cases():
        if len(W) == 2:
            yield name + "-skip", X, y, W, lr, batch
            if name == "mnist-nn":
                yield name + "-skip-b37", X, y, W, lr, 37


def _child(out):
    """Every case on this process's ISA, for each thread count."""
    import fastnn
    fastnn.set_backend("cpp")
    results = {}
    cases = [(c, False) for c in list(_random_cases()) + list(_mnist_cases())]
    cases += [(c, True) for c in _skip_cases()]   # (built once, not per thread count)
    for threads in THREADS:
        fastnn.runtime.set_num_threads(threads)
        for (name, X, y, W, lr, batch), skip in cases:
            fastnn.runtime.set_skip_zeros(skip)   # False: the dense epoch; True: the zero-skipping one
            W = [w.copy() for w in W]
            if len(W) == 2 and name.startswith("mnist"):
                fastnn.nn_epoch(X, y, W[0], W[1], lr=lr, batch=batch)
            elif len(W) == 1:
                fastnn.softmax_regression_epoch(X, y, W[0], lr=lr, batch=batch)
            else:
                fastnn.mlp_epoch(X, y, W, lr=lr, batch=batch)
            for i, w in enumerate(W):
                results[f"{name}/threads={threads}/W{i + 1}"] = w
    np.savez(out, **results)


def write(out):
    import fastnn
    best = fastnn.runtime.build_info()["simd_detected"]
    merged = {}
    for isa in ISAS[:ISAS.index(best) + 1]:
        part = f"{out}.{isa}.npz"
        env = dict(os.environ, FASTNN_ISA=isa)
        subprocess.run([sys.executable, __file__, "child", part], env=env, check=True)
        with np.load(part) as f:
            merged.update({f"{isa}/{k}": f[k] for k in f.files})
        os.remove(part)
    np.savez(out, **merged)
    print(f"{len(merged)} arrays written to {out}")


def compare(a, b):
    with np.load(a) as fa, np.load(b) as fb:
        if sorted(fa.files) != sorted(fb.files):
            print("the files hold different cases")
            return 1
        differ = [k for k in fa.files if fa[k].dtype != fb[k].dtype or fa[k].tobytes() != fb[k].tobytes()]
        for k in differ:
            print("differs:", k)
        print(f"{len(fa.files) - len(differ)} of {len(fa.files)} arrays bitwise equal")
        return 1 if differ else 0


if __name__ == "__main__":
    if sys.argv[1] == "child":
        _child(sys.argv[2])
    elif sys.argv[1] == "write":
        write(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
