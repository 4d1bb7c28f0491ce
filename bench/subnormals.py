"""Epochs where the softmax saturates: subnormal gradients, with and without flushing them.

A saturated softmax (X not scaled to [0, 1], unscaled initial weights, a high learning rate) makes
gradient values below the smallest normal float (1.2e-38), and on Intel CPUs each operation on one
is a microcode assist. fastnn's C++ core computes with them as zero by default
(fastnn.set_flush_subnormals, docs/reliability.md "Subnormal numbers"); this script times, in one
process and alternating round by round, on 1 thread:

  fastnn-cpp        the default (subnormals as zero)
  fastnn-cpp-ieee   set_flush_subnormals(False): IEEE gradual underflow
  fastnn-numpy      the NumPy reference backend (IEEE)
  torch-manual      the NumPy backend's loop in torch (IEEE, torch's default)
  torch-manual-ftz  the same after torch.set_flush_denormal(True)

on three saturating workloads, and fastnn-cpp on each one's ordinary twin (X scaled as hw0 does,
hw0's initial weights, lr 0.1), whose time the flushed epoch should match.

    FASTNN_DATA=../shared/data/mnist python bench/subnormals.py [--rounds 5] [--rows 60000]

Unset OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for the command (they slow NumPy); the report names
the OpenBLAS kernel that ran.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

import fastnn  # noqa: E402
from fastnn.benchmark.jobs import torch_manual_epoch  # noqa: E402
from fastnn.benchmark.machine import _blas_summary, machine_info  # noqa: E402


def _machine():
    """The CPU and NumPy's BLAS kernel, as bench/run.py's report names them (fastnn.benchmark.machine)."""
    info = machine_info()
    family, model = (info.get("cpu_family_model_stepping") or ["?", "?"])[:2]
    cpu = f"{info['cpu_model']} (family {family}, model {model})"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return cpu, "unknown (threadpoolctl not installed)"
    return cpu, _blas_summary(threadpool_info()) or "no BLAS found"


def workloads(X, y):
    """(name, X, initial weights, lr, ordinary twin's (X, weights, lr))."""
    rng = np.random.default_rng(0)
    mean, std = X.mean(0), X.std(0)
    standardized = ((X - mean) / np.where(std > 0, std, 1)).astype(np.float32)
    theta = np.zeros((784, 10), np.float32)
    W_hw0 = [(rng.standard_normal((784, 100)) / np.sqrt(100)).astype(np.float32),
             (rng.standard_normal((100, 10)) / np.sqrt(10)).astype(np.float32)]
    rng = np.random.default_rng(0)
    W_unscaled = [rng.standard_normal((784, 100)).astype(np.float32),
                  rng.standard_normal((100, 10)).astype(np.float32)]
    return [
        ("softmax regression, X = pixels 0-255 (not divided by 255), lr 0.1",
         (X * 255).astype(np.float32), [theta], 0.1, (X, [theta], 0.1)),
        ("softmax regression, standardized X, lr 1",
         standardized, [theta], 1.0, (standardized, [theta], 0.1)),
        ("784-100-10, standardized X, initial weights N(0, 1) (not divided by √fan-out), lr 0.1",
         standardized, W_unscaled, 0.1, (standardized, W_hw0, 0.1)),
    ]


def fastnn_epoch(backend, flush, X, y, weights, lr):
    fastnn.set_backend(backend)
    if backend == "cpp":
        fastnn.set_flush_subnormals(flush)
    Ws = [W.copy() for W in weights]
    t0 = time.perf_counter()
    if len(Ws) == 1:
        fastnn.softmax_regression_epoch(X, y, Ws[0], lr=lr, batch=100)
    else:
        fastnn.nn_epoch(X, y, Ws[0], Ws[1], lr=lr, batch=100)
    return time.perf_counter() - t0


def torch_epoch(torch, ftz, X, y, weights, lr, batch=100):
    """bench/run.py's torch-manual epoch (numpy_backend's loop in torch), with or without torch's flush."""
    torch.set_flush_denormal(ftz)
    try:
        return torch_manual_epoch(torch, torch.from_numpy(X), torch.from_numpy(y.astype(np.int64)),
                                  [W.copy() for W in weights], lr, batch)
    finally:
        torch.set_flush_denormal(False)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--data", default=os.environ.get("FASTNN_DATA"))
    args = ap.parse_args(argv)
    if not args.data:
        sys.exit("set FASTNN_DATA or pass --data: the directory of the MNIST .gz files")
    data = os.path.join(args.data, "mnist") if os.path.isdir(os.path.join(args.data, "mnist")) else args.data
    X, y = fastnn.parse_mnist(os.path.join(data, "train-images-idx3-ubyte.gz"),
                              os.path.join(data, "train-labels-idx1-ubyte.gz"))
    X, y = X[:args.rows], y[:args.rows]
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("(torch not installed: pip install torch==2.13.0 for its rows)", file=sys.stderr)
    fastnn.set_num_threads(1)
    saved_backend, saved_flush = fastnn.get_backend(), fastnn.get_flush_subnormals()

    contenders = {
        "fastnn-cpp": lambda Xw, W, lr: fastnn_epoch("cpp", True, Xw, y, W, lr),
        "fastnn-cpp-ieee": lambda Xw, W, lr: fastnn_epoch("cpp", False, Xw, y, W, lr),
        "fastnn-numpy": lambda Xw, W, lr: fastnn_epoch("numpy", None, Xw, y, W, lr),
    }
    if torch is not None:
        contenders["torch-manual"] = lambda Xw, W, lr: torch_epoch(torch, False, Xw, y, W, lr)
        contenders["torch-manual-ftz"] = lambda Xw, W, lr: torch_epoch(torch, True, Xw, y, W, lr)

    cpu, blas = _machine()
    lines = [f"## Saturated-softmax epochs: {args.rows} MNIST rows, batch 100, 1 thread, medians of {args.rounds} rounds",
             "", f"CPU: {cpu}; fastnn ISA {fastnn.build_info()['simd_active']}; "
             f"NumPy's BLAS: {blas}" + (f"; torch {torch.__version__}" if torch else ""), ""]
    try:
        for name, Xw, W, lr, (Xo, Wo, lro) in workloads(X, y):
            times = {c: [] for c in contenders}
            times["fastnn-cpp, ordinary twin"] = []
            for r in range(args.rounds + 1):              # round 0 warms up
                for c, f in contenders.items():
                    t = f(Xw, W, lr)
                    if r:
                        times[c].append(t)
                t = fastnn_epoch("cpp", True, Xo, y, Wo, lro)
                if r:
                    times["fastnn-cpp, ordinary twin"].append(t)
                print(f"{name[:40]}… round {r}", file=sys.stderr)
            med = {c: statistics.median(v) for c, v in times.items()}
            lines += [f"### {name}", "", "| contender | median | range | × NumPy | × fastnn-cpp's time |",
                      "|---|---:|---:|---:|---:|"]
            for c, v in times.items():
                lines.append(f"| {c} | {med[c] * 1e3:.1f} ms | {min(v) * 1e3:.1f}–{max(v) * 1e3:.1f} ms | "
                             f"{med['fastnn-numpy'] / med[c]:.2f}× | {med[c] / med['fastnn-cpp']:.2f} |")
            lines.append("")
    finally:
        fastnn.set_backend(saved_backend)
        fastnn.set_flush_subnormals(saved_flush)
    lines.append("The ordinary twin: the same shapes with X scaled to [0, 1] (or standardized) and lr 0.1 "
                 "(hw0's initial weights for the net): no subnormals.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
