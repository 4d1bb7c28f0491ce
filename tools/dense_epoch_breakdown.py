"""Where the dense 2-layer epoch's time goes: fastnn-cpp, NumPy and PyTorch on MNIST minus its
column means (the benchmark's centred input), 1 thread, batch 100, lr 0.1.

For each engine and hidden width h it times the whole epoch (as the benchmark's contenders run
it: nn_epoch on each backend, torch-manual) and then each product of a training step on its own,
600 calls over the epoch's batches in order:

    fwd1   Z1 = X_b·W1          100×784·784×h
    fwd2   Z2 = Z1·W2           100×h·h×10
    bwd2   G1 = G2·W2ᵀ          100×10·10×h
    upd2   W2 -= lr·Z1ᵀ·G2      h×100·100×10
    upd1   W1 -= lr·X_bᵀ·G1     784×100·100×h

(fastnn through _core.gemm, with β = 1 for the updates as its epoch does, on the row-major W1:
its epoch keeps W1 in strips of the micro-kernel's NR columns where W1's rows are wider than 512
bytes, and runs fwd1 and upd1 strip by strip, so for h = 400 the isolated fwd1 and upd1 here are
slower than the epoch's and "rest" comes out negative; NumPy and torch as their epochs write them.) "rest" = epoch − the five: softmax, ReLU and masks, the calls' overhead,
and the caches' state between products, which the isolated loops do not share.

Every (engine, round) is a fresh process; rounds alternate the engines (order rotated), medians
are reported. Each part is timed twice over: wall-clock and the process's CPU time
(time.process_time: on 1 thread, the time this process ran, not the time it waited while other
work had the core). On a shared machine the CPU times are the steadier figures; the tables give
CPU times, the epoch lines both. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are removed for the NumPy and torch processes
only, and NumPy's OpenBLAS kernel is recorded (threadpoolctl). Pin the whole run to one core:

    taskset -c 1 python tools/dense_epoch_breakdown.py --rounds 7 [--hidden 100,400] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

PRODUCTS = ("fwd1", "fwd2", "bwd2", "upd2", "upd1")


def product_flops(h, n=60000, d=784, k=10):
    """Multiply-adds ×2 of each product over an epoch of n rows."""
    return {"fwd1": 2.0 * n * d * h, "fwd2": 2.0 * n * h * k, "bwd2": 2.0 * n * k * h,
            "upd2": 2.0 * n * h * k, "upd1": 2.0 * n * d * h}


def _products(engine, X, W1, W2, Z1, G2, G1, lr, batch):
    """Callables (one per product) that run it for batch b."""
    if engine == "cpp":
        from fastnn import _core
        Z2 = np.empty((batch, W2.shape[1]), np.float32)
        return {"fwd1": lambda Xb: _core.gemm("N", "N", Xb, W1, Z1),
                "fwd2": lambda Xb: _core.gemm("N", "N", Z1, W2, Z2),
                "bwd2": lambda Xb: _core.gemm("N", "T", G2, W2, G1),
                "upd2": lambda Xb: _core.gemm("T", "N", Z1, G2, W2, -lr, 1.0),
                "upd1": lambda Xb: _core.gemm("T", "N", Xb, G1, W1, -lr, 1.0)}
    if engine == "numpy":
        def upd1(Xb):
            W1[...] -= lr * (Xb.T @ G1)

        def upd2(Xb):
            W2[...] -= lr * (Z1.T @ G2)
        return {"fwd1": lambda Xb: Xb @ W1, "fwd2": lambda Xb: Z1 @ W2, "bwd2": lambda Xb: G2 @ W2.T,
                "upd2": upd2, "upd1": upd1}
    import torch
    tW1, tW2, tZ1, tG2, tG1 = (torch.from_numpy(a) for a in (W1, W2, Z1, G2, G1))
    return {"fwd1": lambda Xb: Xb @ tW1, "fwd2": lambda Xb: tZ1 @ tW2, "bwd2": lambda Xb: tG2 @ tW2.T,
            "upd2": lambda Xb: tW2.sub_(tZ1.T @ tG2, alpha=lr),
            "upd1": lambda Xb: tW1.sub_(Xb.T @ tG1, alpha=lr)}


def worker(engine, datadir, hiddens, lr=0.1, batch=100):
    """One round of one engine: {h: {"epoch": s, product: s, ...}} (seconds per epoch)."""
    from fastnn.benchmark.jobs import _Runner
    from fastnn.benchmark.workloads import epoch_workload
    runner = _Runner(engine, 1, datadir)
    X, y = runner.data("centred")
    out = {"info": _info(runner)}
    rng = np.random.default_rng(0)
    for h in hiddens:
        wl = epoch_workload(f"mlp-h{h}-centred", "", X.shape[0], X.shape[1], h, input="centred")
        contender = {"cpp": "fastnn-cpp", "numpy": "fastnn-numpy", "torch": "torch-manual"}[engine]
        runner.epoch({**wl, "contender": contender})                   # warm: pages, code, pools
        c0 = time.process_time()
        timed = runner.epoch({**wl, "contender": contender})
        times = {"epoch": time.process_time() - c0, "epoch_wall": timed["seconds"], "stall": timed["stall"]}
        W1, W2 = [W.copy() for W in runner._initial_weights(wl)]
        Z1 = np.maximum(X[:batch] @ W1, 0).astype(np.float32)
        G2 = (rng.standard_normal((batch, 10)) / batch).astype(np.float32)
        G1 = (rng.standard_normal((batch, h)) / batch).astype(np.float32) * (Z1 > 0)
        rows = X if engine != "torch" else runner._tdata["centred"][0]
        batches = [rows[s:s + batch] for s in range(0, X.shape[0], batch)]
        for name, f in _products(engine, X, W1, W2, Z1, G2, G1, np.float32(lr), batch).items():
            for Xb in batches[:20]:
                f(Xb)
            t0, c0 = time.perf_counter(), time.process_time()
            for Xb in batches:
                f(Xb)
            times[name], times[name + "_wall"] = time.process_time() - c0, time.perf_counter() - t0
        out[str(h)] = times
    return out


def _info(runner):
    info = {"engine": runner.engine}
    try:
        import threadpoolctl
        info["threadpools"] = [{k: p.get(k) for k in ("internal_api", "version", "architecture", "num_threads")}
                               for p in threadpoolctl.threadpool_info()]
    except ImportError:
        info["threadpools"] = None
    if runner.torch is not None:
        info["torch"] = runner.torch.__version__
        info["torch_cpu_capability"] = runner.torch.backends.cpu.get_cpu_capability()
    if runner.engine == "cpp":
        info["isa"] = runner.fastnn.build_info().get("simd_active")
    info["env"] = {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS")}
    return info


def _run_round(engine, datadir, hiddens):
    from fastnn.benchmark.processes import _worker_env
    here = os.path.dirname(os.path.abspath(__file__))
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(__import__("fastnn").__file__)))
    env = _worker_env(engine, 1, pkg_parent)
    proc = subprocess.run([sys.executable, os.path.join(here, "dense_epoch_breakdown.py"), "--worker", engine,
                           "--datadir", datadir, "--hidden", ",".join(map(str, hiddens))],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{engine} worker failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _report(rounds, hiddens, engines, peak):
    lines = []
    for h in hiddens:
        fl = product_flops(h)
        epoch_flops = 2.0 * 60000 * (2 * 784 * h + 3 * h * 10)
        lines += [f"## h={h}, centred MNIST, 1 thread (medians of {len(rounds[engines[0]])} rounds; CPU ms per "
                  "epoch)", "",
                  "| part | " + " | ".join(engines) + " | " + " | ".join(f"{e} % of peak" for e in engines) + " |",
                  "|---|" + "---:|" * (2 * len(engines))]
        med = {e: {p: statistics.median(r[str(h)][p] for r in rounds[e]) for p in ("epoch",) + PRODUCTS}
               for e in engines}
        for e in engines:
            med[e]["rest"] = med[e]["epoch"] - sum(med[e][p] for p in PRODUCTS)
        for part in ("epoch",) + PRODUCTS + ("rest",):
            flops = epoch_flops if part == "epoch" else fl.get(part)
            pct = [f"{100 * flops / 1e9 / peak / med[e][part]:.0f}%" if flops and peak else "" for e in engines]
            lines.append(f"| {part} | " + " | ".join(f"{1e3 * med[e][part]:.1f}" for e in engines) + " | "
                         + " | ".join(pct) + " |")
        stalls = [r[str(h)].get("stall") for e in engines for r in rounds[e]]
        if all(x is not None for x in stalls):
            lines.append(f"CPU pressure during the timed epochs (PSI 'some', share of the epoch during which a task "
                         f"waited for a CPU): median {100 * statistics.median(stalls):.0f}%, max {100 * max(stalls):.0f}%")
        lines.append("")
        if "cpp" in engines:
            for e in engines:
                if e == "cpp":
                    continue
                for key, what in (("epoch", "CPU time"), ("epoch_wall", "wall-clock")):
                    mine = [r[str(h)][key] for r in rounds[e]]
                    cpp = [r[str(h)][key] for r in rounds["cpp"]]
                    lines.append(f"epoch {e} / cpp, {what}: {statistics.median(mine) / statistics.median(cpp):.2f}× "
                                 f"({e} {1e3 * min(mine):.0f}–{1e3 * max(mine):.0f} ms, "
                                 f"cpp {1e3 * min(cpp):.0f}–{1e3 * max(cpp):.0f} ms)")
            lines.append("")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--hidden", default="100,400")
    p.add_argument("--engines", default="cpp,numpy,torch")
    p.add_argument("--data", default=os.environ.get("FASTNN_DATA"))
    p.add_argument("--json", default=None)
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("--datadir", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    hiddens = [int(x) for x in a.hidden.split(",")]
    if a.worker:
        print(json.dumps(worker(a.worker, a.datadir, hiddens)))
        return 0
    import fastnn
    from fastnn.benchmark.workloads import centre_columns
    from fastnn import _core
    engines = a.engines.split(",")
    mnist = a.data if os.path.exists(os.path.join(a.data, "train-images-idx3-ubyte.gz")) else os.path.join(a.data, "mnist")
    X, y = fastnn.parse_mnist(os.path.join(mnist, "train-images-idx3-ubyte.gz"),
                              os.path.join(mnist, "train-labels-idx1-ubyte.gz"))
    peak = _core.probe_fma_peak_gflops(fastnn.build_info()["simd_active"], False, 0.2)
    kernel = _core.probe_micro_kernel_gflops(0.2)
    rounds = {e: [] for e in engines}
    with tempfile.TemporaryDirectory() as tmp:
        np.save(os.path.join(tmp, "X.npy"), X)
        np.save(os.path.join(tmp, "X-centred.npy"), centre_columns(X))
        np.save(os.path.join(tmp, "y.npy"), y)
        for r in range(a.rounds):
            for e in engines[r % len(engines):] + engines[:r % len(engines)]:
                rounds[e].append(_run_round(e, tmp, hiddens))
                print(f"round {r} {e}: " + ", ".join(f"h={h} {1e3 * rounds[e][-1][str(h)]['epoch']:.0f} ms"
                                                    for h in hiddens), file=sys.stderr, flush=True)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"CPU: {cpu}; affinity {sorted(os.sched_getaffinity(0))}; FMA peak 1 thread {peak:.0f} GFLOP/s; "
          f"fastnn micro-kernel in L1 {kernel:.0f} GFLOP/s ({100 * kernel / peak:.0f}%)")
    for e in engines:
        print(f"{e}: {json.dumps(rounds[e][0]['info'])}")
    print()
    print(_report(rounds, hiddens, engines, peak))
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"peak_gflops": peak, "micro_kernel_gflops": kernel, "rounds": rounds}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
