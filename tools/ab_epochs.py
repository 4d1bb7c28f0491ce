#!/usr/bin/env python3
"""Time two builds of the C++ core against each other in one process, epochs alternating.

    python tools/ab_epochs.py OLD_SITE NEW_SITE [--rows 20000] [--rounds 12] [--threads 2,1]

OLD_SITE and NEW_SITE are directories holding a `fastnn` package with its built `_core*.so`
(a site-packages, or a copy of one). Both extensions are loaded side by side; for each net and
thread count the dense hw0 epoch (`_core.mlp_epoch`, batch 100, lr 0.1, float32) runs on each
build in turn, the order swapped every round, so that a shared machine's load falls on both
alike. Prints the minimum and median times and the median of the per-round new/old ratios (the
first round is a warm-up). Needs MNIST in $FASTNN_DATA. Nothing here asserts a speed.
"""
import argparse
import glob
import importlib.machinery
import importlib.util
import os
import statistics
import time

import numpy as np

NETS = {"h100": [784, 100, 10], "h400": [784, 400, 10], "784-256-128-10": [784, 256, 128, 10]}


def load_core(site, name):
    so = glob.glob(os.path.join(site, "fastnn", "_core*.so"))
    if not so:
        raise SystemExit(f"no fastnn/_core*.so under {site}")
    loader = importlib.machinery.ExtensionFileLoader(name, so[0])
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, so[0], loader=loader))
    loader.exec_module(module)
    return module


def alternate(cores, X, y, W0, rounds):
    times = {tag: [] for tag in cores}
    for r in range(rounds):
        for tag in (list(cores) if r % 2 == 0 else list(cores)[::-1]):
            W = [w.copy() for w in W0]
            t0 = time.perf_counter()
            cores[tag].mlp_epoch(X, y, W, 0.1, 100)
            times[tag].append(time.perf_counter() - t0)
    return {tag: t[1:] for tag, t in times.items()}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--threads", default="2,1")
    args = p.parse_args()
    cores = {"old": load_core(args.old, "ab_old._core"), "new": load_core(args.new, "ab_new._core")}
    import fastnn
    d = os.environ["FASTNN_DATA"]
    X, y = fastnn.parse_mnist(os.path.join(d, "train-images-idx3-ubyte.gz"), os.path.join(d, "train-labels-idx1-ubyte.gz"))
    X, y = np.ascontiguousarray(X[:args.rows]), y[:args.rows].astype(np.int64)
    rng = np.random.default_rng(0)
    for threads in (int(t) for t in args.threads.split(",")):
        for core in cores.values():
            core.set_num_threads(threads)
        for name, sizes in NETS.items():
            W0 = [(rng.standard_normal((a, b)) / np.sqrt(b)).astype(np.float32) for a, b in zip(sizes, sizes[1:])]
            t = alternate(cores, X, y, W0, args.rounds)
            ratio = statistics.median(n / o for n, o in zip(t["new"], t["old"]))
            print(f"{name:>15} {threads} thread(s): old min {min(t['old']) * 1e3:.1f} / median "
                  f"{statistics.median(t['old']) * 1e3:.1f} ms, new min {min(t['new']) * 1e3:.1f} / median "
                  f"{statistics.median(t['new']) * 1e3:.1f} ms; median new/old {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
