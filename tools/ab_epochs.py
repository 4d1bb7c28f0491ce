#!/usr/bin/env python3
"""Time two builds of the C++ core against each other in one process, epochs alternating.

    python tools/ab_epochs.py OLD_SITE NEW_SITE [--rows 20000] [--rounds 12] [--threads 2,1]
                              [--inputs raw,centred,pixels,csr] [--nets h100,h400,784-256-128-10 (any 784-…-10)]
                              [--new-gemm-tuning force_pack=-1,...] [--new-call "_panel_lists_tuning(-1)"]
                              [--epoch hw0|adam] [--dtype float32|float64]

OLD_SITE and NEW_SITE are directories holding a `fastnn` package with its built `_core*.so`
(a site-packages, or a copy of one). Both extensions are loaded side by side; for each thread
count, input and net the epoch runs on each build in turn through the public API (`mlp_epoch`
with the cpp backend: on raw MNIST the zero-skipping path, on centred MNIST -- minus its column
means, as the benchmark's dense workload -- the dense GEMMs; as `pixels`, MNIST's uint8 bytes as
`fastnn.Pixels`, softmax only, through `softmax_regression_epoch`; as `csr`, raw MNIST as
`fastnn.SparseRows`, with --epoch adam only), the order swapped every round, so
that a shared machine's load falls on both alike. The Python layer is the one importable here;
only `_core` is swapped. Prints the median wall-clock times and the medians of the per-round
new/old ratios of wall-clock and of CPU time (the first round is a warm-up). Needs MNIST in
$FASTNN_DATA. Nothing here asserts a speed. A net is a name above or any sizes, e.g. 784-200-10.

On several threads each round also probes the team's core-to-core round trip before and after
(`_core._team_round_trip_ns`), and where some rounds stayed at or below --near-ns and others did
not, both groups are reported apart too. On a VM whose vCPUs the host moves between cores that
share a cache and cores that do not (the 2-vCPU Zen 4: about 120 ns and 320+ ns every few
seconds), the 2-thread epoch's time follows the placement more than most code changes.

With --new-gemm-tuning, NEW_SITE may be a copy of OLD_SITE (another path, so that the two
extensions keep separate settings) and only the new one's `_gemm_tuning` is changed: a tuning
choice measured the same way as a change of code. --new-call does the same for any of the new
build's internal settings: each ';'-separated call is made on the new build's `_core`, e.g.
"_panel_lists_tuning(-1)" or "_sparse_tuning(1); _gather_pass_tuning(4)".
"""
import argparse
import glob
import importlib.machinery
import importlib.util
import os
import statistics
import time

import numpy as np

NETS = {"softmax": [784, 10], "h100": [784, 100, 10], "h400": [784, 400, 10], "784-256-128-10": [784, 256, 128, 10]}


def load_core(site, name):
    so = glob.glob(os.path.join(site, "fastnn", "_core*.so"))
    if not so:
        raise SystemExit(f"no fastnn/_core*.so under {site}")
    loader = importlib.machinery.ExtensionFileLoader(name, so[0])
    module = importlib.util.module_from_spec(importlib.util.spec_from_file_location(name, so[0], loader=loader))
    loader.exec_module(module)
    return module


def alternate(cores, X, y, W0, rounds, probe=None, epoch="hw0"):
    """{tag: [(wall, cpu), ...]} for each build over `rounds` measured rounds (after a warm-up),
    and per round the larger of the team round trips `probe()` gave before and after it (None
    without a probe). epoch "hw0": mlp_epoch (batch 100, lr 0.1, rows in order); "adam":
    train_epoch as the estimators run it (biases, Adam, alpha 1e-4, batch 200, a shuffled order
    drawn once, the same for both builds)."""
    import fastnn
    from fastnn import cpp_backend
    from fastnn.optimizers import Adam
    times = {tag: [] for tag in cores}
    trips = []
    order = np.random.default_rng(1).permutation(len(y))
    for r in range(rounds + 1):
        before = probe() if probe else None
        for tag in (list(cores) if r % 2 == 0 else list(cores)[::-1]):
            cpp_backend._core = cores[tag]
            W = [w.copy() for w in W0]
            if epoch == "adam":
                b = [np.zeros(w.shape[1], w.dtype) for w in W]
                opt = Adam()
            c0, t0 = time.process_time(), time.perf_counter()
            if isinstance(X, fastnn.Pixels):
                fastnn.softmax_regression_epoch(X, y, W[0], lr=0.1, batch=100)
            elif epoch == "adam":
                fastnn.train_epoch(X, y, W, b, opt, lr=1e-3, batch=200, order=order, alpha=1e-4)
            else:
                fastnn.mlp_epoch(X, y, W, lr=0.1, batch=100)
            if r:
                times[tag].append((time.perf_counter() - t0, time.process_time() - c0))
        if r:
            trips.append(max(before, probe()) if probe else None)
    return times, trips


def report(label, t, rounds=None):
    """One line: the builds' median times and the medians of the per-round new/old ratios, over
    `rounds` (indices; all when None)."""
    pick = range(len(t["old"])) if rounds is None else rounds
    old, new = [t["old"][i] for i in pick], [t["new"][i] for i in pick]
    wall = statistics.median(n[0] / o[0] for n, o in zip(new, old))
    cpu = statistics.median(n[1] / o[1] for n, o in zip(new, old))
    print(f"{label}: old {statistics.median(x[0] for x in old) * 1e3:.1f} ms, new "
          f"{statistics.median(x[0] for x in new) * 1e3:.1f} ms; median new/old wall {wall:.3f}, CPU {cpu:.3f}"
          + ("" if rounds is None else f" ({len(old)} rounds)"), flush=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("old")
    p.add_argument("new")
    p.add_argument("--rows", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--threads", default="2,1")
    p.add_argument("--inputs", default="raw,centred")
    p.add_argument("--nets", default=",".join(NETS))
    p.add_argument("--epoch", choices=("hw0", "adam"), default="hw0",
                   help="hw0: mlp_epoch, batch 100, rows in order (default); adam: train_epoch as the estimators "
                        "run it: biases, Adam, alpha 1e-4, batch 200, shuffled")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="the parameters' dtype (X is float32 MNIST; float64 as scikit-learn fits float64 data)")
    p.add_argument("--new-gemm-tuning", default="", help="key=value,... passed to the new build's _gemm_tuning")
    p.add_argument("--new-call", default="", help="calls on the new build's _core, ';'-separated, e.g. '_panel_lists_tuning(-1)'")
    p.add_argument("--near-ns", type=float, default=200.0,
                   help="multi-thread rounds whose team round trip (probed before and after) stays at or below "
                        "this are also reported apart from the others (default 200)")
    args = p.parse_args()
    cores = {"old": load_core(args.old, "ab_old._core"), "new": load_core(args.new, "ab_new._core")}
    if args.new_gemm_tuning:
        current = cores["new"]._gemm_tuning()
        pairs = [kv.split("=", 1) for kv in args.new_gemm_tuning.split(",")]
        bad = ["=".join(kv) for kv in pairs if len(kv) != 2 or kv[0] not in current]
        if bad:
            raise SystemExit(f"--new-gemm-tuning: expected key=value with a key of {sorted(current)}, got {bad}")
        settings = dict(pairs)
        cores["new"]._gemm_tuning(**{k: type(current[k])(int(v) if isinstance(current[k], bool) else v)
                                     for k, v in settings.items()})
        print("new build's GEMM tuning:", {k: cores["new"]._gemm_tuning()[k] for k in settings})
    for call in filter(None, (c.strip() for c in args.new_call.split(";"))):
        name, _, rest = call.partition("(")
        if not name.startswith("_") or not hasattr(cores["new"], name) or not rest.endswith(")"):
            raise SystemExit(f"--new-call: expected _setting(args) of the new build's _core, got {call!r}")
        print(f"new build: {call} (previous: {eval('core.' + call, {'core': cores['new']})})")
    import fastnn
    from fastnn import cpp_backend
    fastnn.set_backend("cpp")
    saved_core = cpp_backend._core
    d = os.environ["FASTNN_DATA"]
    X, y = fastnn.parse_mnist(os.path.join(d, "train-images-idx3-ubyte.gz"), os.path.join(d, "train-labels-idx1-ubyte.gz"))
    X, y = np.ascontiguousarray(X[:args.rows]), y[:args.rows].astype(np.int64)
    inputs = {"raw": X, "centred": (X - X.mean(axis=0, dtype=np.float64).astype(np.float32)).astype(np.float32),
              "pixels": fastnn.Pixels(np.rint(X * 255).astype(np.uint8)),
              "csr": fastnn.SparseRows.from_dense(X)}
    rng = np.random.default_rng(0)
    try:
        for threads in (int(t) for t in args.threads.split(",")):
            for core in cores.values():
                core.set_num_threads(threads)
            # (builds older than the probe: the other build's)
            probe = next((getattr(c, "_team_round_trip_ns") for c in cores.values()
                          if hasattr(c, "_team_round_trip_ns")), None) if threads > 1 else None
            for input_name in args.inputs.split(","):
                for name in args.nets.split(","):
                    sizes = NETS[name] if name in NETS else [int(v) for v in name.split("-")]
                    if input_name == "pixels" and len(sizes) != 2:
                        continue   # Pixels: the softmax epoch only
                    if input_name == "csr" and args.epoch != "adam":
                        raise SystemExit("--inputs csr: SparseRows train through train_epoch only (--epoch adam)")
                    W0 = [(rng.standard_normal((a, b)) / np.sqrt(b)).astype(args.dtype) for a, b in zip(sizes, sizes[1:])]
                    X_in = inputs[input_name]
                    if args.dtype == "float64" and input_name in ("raw", "centred"):
                        X_in = X_in.astype(np.float64)   # (as scikit-learn's float64 data)
                    t, trips = alternate(cores, X_in, y, W0, args.rounds, probe, args.epoch)
                    label = f"{name:>15} {input_name:>7} {threads} thread(s)"
                    report(label, t)
                    if probe:   # the rounds by where the threads sat (see --near-ns)
                        near = [i for i, ns in enumerate(trips) if ns <= args.near_ns]
                        far = [i for i, ns in enumerate(trips) if ns > args.near_ns]
                        for which, rounds in (("near", near), ("far", far)):
                            if rounds and len(rounds) < len(trips):
                                report(f"{'':>15} {which + ' rounds only':>28}", t, rounds)
    finally:
        cpp_backend._core = saved_core


if __name__ == "__main__":
    main()
