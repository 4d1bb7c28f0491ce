"""The benchmark harness: fastnn-cpp against fastnn-numpy (NumPy + its BLAS) and PyTorch.

    python bench/run.py [--quick] [--threads 1,2] [--rounds N] [--epochs-only | --gemm-only]
    python -c "import fastnn.benchmark as b; raise SystemExit(b.main(['--quick']))"

Workloads
  * SGEMM (float32): squares 256³ … 2048³ and the products of one training step at batch 100
    (X·W1, Xᵀ·G1, Z1·W2, G2·W2ᵀ of the h=400 net; X·Θ, Xᵀ·dZ of softmax regression).
  * Epochs on MNIST (60000×784 float32, batch 100, lr 0.1): softmax regression, 2-layer h=100,
    2-layer h=400 — through the public API (`softmax_regression_epoch`, `nn_epoch`).

Method
  * Every measurement runs in a worker process, one per (engine, thread count): the thread
    settings (OMP/OPENBLAS/MKL_NUM_THREADS, torch.set_num_threads, fastnn.set_num_threads) are
    exact, OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for the NumPy and torch workers only, and
    a crash costs one contender, not the run.
  * Rounds are interleaved: round r runs every contender once (the order rotates every round),
    after one warm-up round that is discarded. Reported: median and min–max over rounds.
  * Floor = the GEMM FLOPs of the workload at the FMA peak of the best ISA (probed in the same run
    with fastnn._core, on as many threads as the measurement); for the softmax epoch the larger
    of that and one read of X at the probed read bandwidth.

Nothing here asserts speed: the targets of issue 5 are evaluated and reported (met / not met).
"""
import argparse
import datetime as _dt
import gc
import importlib.util
import json
import math
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

SCHEMA = "fastnn-bench/1"
TABLE_HEADER = "| workload | threads | contender | median | min–max | GFLOP/s | % of floor | × NumPy |"
TARGETS_HEADER = "| target | measured | needed | verdict |"
TORCH_HINT = ("PyTorch is not installed: the torch contenders are skipped. To include them run "
              "`pip install torch==2.13.0` (a CPU build, installed from local disk) — never a bare "
              "`pip install torch`.")
MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
_UNSET_FOR_PEERS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

# Contenders: name -> engine (the worker process that runs it).
GEMM_CONTENDERS = {"fastnn-cpp": "cpp", "fastnn-numpy": "numpy", "torch": "torch"}
EPOCH_CONTENDERS = {"fastnn-cpp": "cpp", "fastnn-cpp-dense": "cpp", "fastnn-cpp-pixels": "cpp",
                    "fastnn-numpy": "numpy", "torch-manual": "torch", "torch-autograd": "torch"}
# fastnn-cpp runs as a user gets it: a net with a hidden layer skips the zeros of mostly-zero X
# in its first layer (fastnn.set_skip_zeros). fastnn-cpp-dense is the same package with that off
# (the dense GEMMs), run only where the two differ.
DENSE_ONLY = "fastnn-cpp-dense"
# fastnn-cpp-pixels: the softmax epoch with X as fastnn.Pixels (MNIST's uint8 bytes and a scale of
# 1/255: a quarter of the bytes to read), against fastnn-cpp's float32 X.
PIXELS_ONLY = "fastnn-cpp-pixels"


def _runs(contender, workload):
    """Whether `contender` runs on `workload` (fastnn-cpp-dense only on nets with a hidden layer,
    fastnn-cpp-pixels only on softmax regression)."""
    if contender == DENSE_ONLY:
        return workload["kind"] == "epoch" and len(workload["dims"]) > 2
    if contender == PIXELS_ONLY:
        return workload["kind"] == "epoch" and len(workload["dims"]) == 2
    return True
ISA_ORDER = ("generic", "avx2", "avx512")


# ----------------------------------------------------------------------------------- workloads

def gemm_workload(wid, label, m, k, n, ta="N", tb="N"):
    return {"kind": "gemm", "id": wid, "label": label, "m": m, "k": k, "n": n, "ta": ta, "tb": tb,
            "flops": 2.0 * m * n * k}


SQUARE_SIZES = (256, 512, 1024, 2048)
TRAINING_GEMMS = [
    gemm_workload("XW1-h400", "X·W1 100×784·784×400", 100, 784, 400),
    gemm_workload("XtG1-h400", "Xᵀ·G1 784×100·100×400", 784, 100, 400, ta="T"),
    gemm_workload("Z1W2-h400", "Z1·W2 100×400·400×10", 100, 400, 10),
    gemm_workload("G2W2t-h400", "G2·W2ᵀ 100×10·10×400", 100, 10, 400, tb="T"),
    gemm_workload("XTheta", "X·Θ 100×784·784×10", 100, 784, 10),
    gemm_workload("XtdZ", "Xᵀ·dZ 784×100·100×10", 784, 100, 10, ta="T"),
]


def square_gemm(s):
    return gemm_workload(f"sgemm-{s}", f"sgemm {s}³", s, s, s)


def epoch_flops(n, dims):
    """GEMM FLOPs of one SGD epoch over n rows of an MLP with layer sizes dims = [d, h…, k]:
    forward H_i·W_{i+1}, ∇W_i = H_{i-1}ᵀ·G_i, and G_{i+1}·W_{i+1}ᵀ for every hidden layer
    (each 2·m·n·k; linear in the batch size, so the batching does not change the sum)."""
    per_row = 0.0
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        per_row += 2.0 * a * b          # forward
        per_row += 2.0 * a * b          # weight gradient
        if i > 0:
            per_row += 2.0 * a * b      # gradient into the layer below
    return per_row * n


def epoch_workload(wid, label, n, d, hidden, k=10, lr=0.1, batch=100):
    dims = [d] + ([hidden] if hidden else []) + [k]
    return {"kind": "epoch", "id": wid, "label": label, "dims": dims, "n": n, "lr": lr,
            "batch": batch, "flops": epoch_flops(n, dims), "x_bytes": 4.0 * n * d,
            "read_floor": hidden is None}


# ------------------------------------------------------------------------------------- workers

def _cpu_stall_us():
    """Linux PSI: microseconds during which some runnable task waited for a CPU, system-wide
    (None where /proc/pressure/cpu is absent). A measurement during which this grows was slowed by
    something else on the machine — another process, or threads oversubscribing the cores."""
    try:
        with open("/proc/pressure/cpu") as f:
            for line in f:
                if line.startswith("some"):
                    return int(line.rsplit("total=", 1)[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def busy_cores(seconds=0.5):
    """CPUs' worth of work the whole machine did over `seconds` (from /proc/stat), or None.
    Sampled while the harness is idle, this is the load of other processes."""
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        return sum(v) - v[3] - (v[4] if len(v) > 4 else 0), sum(v)
    try:
        b0, t0 = read()
        time.sleep(seconds)
        b1, t1 = read()
    except (OSError, ValueError, IndexError):
        return None
    ncpu = os.cpu_count() or 1
    return ncpu * (b1 - b0) / (t1 - t0) if t1 > t0 else None


def _stall_fraction(before, after, seconds):
    if before is None or after is None or seconds <= 0:
        return None
    return (after - before) / 1e6 / seconds


def _worker_env(engine, threads, pythonpath):
    env = dict(os.environ)
    for var in _THREAD_VARS:
        env[var] = str(threads)
    if engine != "numpy":
        # There NumPy only prepares data and checks results (np.linalg.norm: a BLAS dot). With
        # several OpenBLAS threads, those would spin on the CPUs after each check while the
        # engine's own threads are timed (fastnn's sgemm 1024³ on 2 threads read 48 ms that way,
        # 6.7 ms alone).
        env["OPENBLAS_NUM_THREADS"] = "1"
    if engine in ("numpy", "torch"):
        for var in _UNSET_FOR_PEERS:
            env.pop(var, None)
    env["PYTHONPATH"] = pythonpath + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("FASTNN_BACKEND", None)
    return env


class Worker:
    """A long-lived process that runs jobs (JSON lines on its stdin) for one engine and thread
    count, and answers one JSON line per job."""

    def __init__(self, engine, threads, datadir, tmpdir, timeout, pkg_parent):
        self.engine, self.threads, self.datadir, self.timeout = engine, threads, datadir, timeout
        self.pkg_parent = pkg_parent
        self.log_path = os.path.join(tmpdir, f"worker-{engine}-{threads}.log")
        self.proc = None
        self.dead_reason = None

    def _start(self):
        code = "from fastnn.benchmark import _worker_main; _worker_main()"
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, self.engine, str(self.threads), self.datadir],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            env=_worker_env(self.engine, self.threads, self.pkg_parent), text=True, bufsize=1)

    def log_tail(self, n=1500):
        try:
            with open(self.log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace").strip()
        except OSError:
            return ""

    def call(self, job):
        """The worker's answer (a dict); {"error": ...} when the job failed or the worker died."""
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:          # died earlier: start a fresh one
                self.close()
            self._start()
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], self.timeout)
            line = self.proc.stdout.readline() if ready else None
        except (BrokenPipeError, OSError) as exc:
            line, ready = None, True
            self.dead_reason = str(exc)
        if line:
            return json.loads(line)
        if not ready:
            self.close()
            return {"error": f"timed out after {self.timeout:.0f} s"}
        rc = self.proc.wait()
        tail = self.log_tail()
        self.close()
        return {"error": f"worker exited with status {rc}" + (f": {tail.splitlines()[-1]}" if tail else "")}

    def close(self):
        if self.proc is not None:
            try:
                if self.proc.poll() is None:
                    self.proc.stdin.close()
                    try:
                        self.proc.wait(timeout=5)
                    except subprocess.TimeoutExpired:
                        self.proc.kill()
                        self.proc.wait()
            except OSError:
                pass
            self.proc = None
        if getattr(self, "_log", None) is not None:
            self._log.close()
            self._log = None


def _worker_main():
    """Entry point of a worker process: argv = engine, threads, datadir."""
    engine, threads, datadir = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)                       # stray prints of libraries go to the log, not the protocol
    sys.stdout = sys.stderr
    runner = _Runner(engine, threads, datadir)
    for line in sys.stdin:
        job = json.loads(line)
        try:
            answer = runner.run(job)
        except Exception as exc:   # report and keep serving
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        out.write(json.dumps(answer) + "\n")
        out.flush()


class _Runner:
    def __init__(self, engine, threads, datadir):
        import fastnn
        self.fastnn, self.engine, self.threads, self.datadir = fastnn, engine, threads, datadir
        self.torch = None
        if engine == "torch":
            import torch
            torch.set_num_threads(threads)
            self.torch = torch
        else:
            fastnn.set_backend(engine)
            if engine == "cpp":
                fastnn.set_num_threads(threads)
        self._data = None
        self._pixels = None
        self._gemm = {}

    # -- data
    def data(self):
        if self._data is None:
            X = np.load(os.path.join(self.datadir, "X.npy"))
            y = np.load(os.path.join(self.datadir, "y.npy"))
            self._data = (X, y)
            if self.torch is not None:
                self._tdata = (self.torch.from_numpy(X), self.torch.from_numpy(y.astype(np.int64)))
        return self._data

    def pixels(self):
        """X as fastnn.Pixels: its uint8 values (MNIST's own bytes, as X = bytes / 255) and 1/255."""
        if self._pixels is None:
            X, _ = self.data()
            self._pixels = self.fastnn.Pixels(np.clip(np.rint(X * 255), 0, 255).astype(np.uint8), 1 / 255)
        return self._pixels

    def run(self, job):
        op = job["op"]
        if op == "info":
            return self.info()
        if op == "gemm":
            return self.gemm(job)
        if op == "epoch":
            return self.epoch(job)
        raise ValueError(f"unknown op {op!r}")

    def info(self):
        info = {"engine": self.engine, "threads": self.threads, "python": sys.version.split()[0],
                "numpy": np.__version__, "fastnn": getattr(self.fastnn, "__version__", None),
                "fastnn_path": os.path.dirname(self.fastnn.__file__),
                "env": {k: os.environ.get(k) for k in _THREAD_VARS + _UNSET_FOR_PEERS}}
        try:
            import threadpoolctl
            info["threadpoolctl"] = threadpoolctl.__version__
            info["threadpools"] = threadpoolctl.threadpool_info()
        except ImportError:
            info["threadpools"] = None
        if self.engine == "cpp":
            info["build_info"] = self.fastnn.build_info()
            info["num_threads"] = self.fastnn.get_num_threads()
        if self.torch is not None:
            torch = self.torch
            info["torch"] = torch.__version__
            info["num_threads"] = torch.get_num_threads()
            info["torch_config"] = torch.__config__.show()
            try:
                info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
            except Exception:   # older torch
                pass
        return info

    # -- gemm
    def _operands(self, job):
        key = (job["m"], job["k"], job["n"], job["ta"], job["tb"])
        if key not in self._gemm:
            m, k, n, ta, tb = key
            rng = np.random.default_rng(1234)
            As = rng.standard_normal((m, k) if ta == "N" else (k, m)).astype(np.float32)
            Bs = rng.standard_normal((k, n) if tb == "N" else (n, k)).astype(np.float32)
            if self.torch is not None:
                A, B = self.torch.from_numpy(As), self.torch.from_numpy(Bs)
            else:
                A, B = As, Bs
            self._gemm[key] = (A if ta == "N" else A.T, B if tb == "N" else B.T)
        return self._gemm[key]

    def gemm(self, job):
        A, B = self._operands(job)
        f = (lambda: self.torch.matmul(A, B)) if self.torch is not None else \
            (lambda: self.fastnn.matmul(A, B))
        C = f()                                          # warm: code, pages, thread pool
        C = C.numpy() if self.torch is not None else C
        check = float(np.linalg.norm(C.astype(np.float64)))
        del C
        gc.collect()
        min_time, min_reps = job.get("min_time", 0.1), job.get("min_reps", 2)
        reps = 0
        s0 = _cpu_stall_us()
        t0 = time.perf_counter()
        while True:
            f()
            reps += 1
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time and reps >= min_reps:
                break
        stall = _stall_fraction(s0, _cpu_stall_us(), elapsed)
        return {"seconds": elapsed / reps, "reps": reps, "check": check, "stall": stall}

    # -- epochs
    def _initial_weights(self, job):
        dims = job["dims"]
        if len(dims) == 2:                   # softmax regression: Θ = 0, as hw0
            return [np.zeros((dims[0], dims[1]), dtype=np.float32)]
        rng = np.random.default_rng(0)       # hw0's initialisation, kept in float32
        return [(rng.standard_normal((a, b)) / np.sqrt(b)).astype(np.float32)
                for a, b in zip(dims, dims[1:])]

    def epoch(self, job):
        X, y = self.data()
        weights = [W.copy() for W in self._initial_weights(job)]
        lr, batch = job["lr"], job["batch"]
        contender = job["contender"]
        gc.collect()
        s0 = _cpu_stall_us()
        if self.torch is None:
            fn = self.fastnn
            fn.set_skip_zeros(contender != DENSE_ONLY)
            t0 = time.perf_counter()
            if len(weights) == 1:
                fn.softmax_regression_epoch(self.pixels() if contender == PIXELS_ONLY else X, y, weights[0],
                                            lr=lr, batch=batch)
            elif len(weights) == 2:
                fn.nn_epoch(X, y, weights[0], weights[1], lr=lr, batch=batch)
            else:
                fn.mlp_epoch(X, y, weights, lr=lr, batch=batch)
            seconds = time.perf_counter() - t0
        elif contender == "torch-manual":
            seconds = self._torch_manual(weights, lr, batch)
        elif contender == "torch-autograd":
            seconds, weights = self._torch_autograd(weights, lr, batch)
        else:
            raise ValueError(f"unknown contender {contender!r}")
        stall = _stall_fraction(s0, _cpu_stall_us(), seconds)
        return {"seconds": seconds, "stall": stall,
                "check": [float(np.linalg.norm(W.astype(np.float64))) for W in weights]}

    def _torch_manual(self, weights, lr, batch):
        """numpy_backend's epoch written with torch tensors: no autograd, in-place updates."""
        torch = self.torch
        X, y = self._tdata
        Ws = [torch.from_numpy(W) for W in weights]          # shares memory with `weights`
        rows = torch.arange(batch)
        L = len(Ws)
        with torch.no_grad():
            t0 = time.perf_counter()
            for s in range(0, X.shape[0], batch):
                Xb, yb = X[s:s + batch], y[s:s + batch]
                B = Xb.shape[0]
                H = [Xb]
                for W in Ws[:-1]:
                    H.append(torch.relu(H[-1] @ W))
                G = torch.softmax(H[-1] @ Ws[-1], dim=1)
                G[rows[:B], yb] -= 1
                G /= B
                for i in reversed(range(L)):
                    dW = H[i].T @ G
                    if i > 0:
                        G = (G @ Ws[i].T) * (H[i] > 0)
                    Ws[i].sub_(dW, alpha=lr)
            return time.perf_counter() - t0

    def _torch_autograd(self, weights, lr, batch):
        """The idiomatic torch way: nn.Linear(bias=False) layers, cross_entropy, optim.SGD."""
        torch = self.torch
        nn, F = torch.nn, torch.nn.functional
        X, y = self._tdata
        layers = []
        for i, W in enumerate(weights):
            lin = nn.Linear(W.shape[0], W.shape[1], bias=False)
            with torch.no_grad():
                lin.weight.copy_(torch.from_numpy(W).T)
            layers.append(lin)
            if i < len(weights) - 1:
                layers.append(nn.ReLU())
        model = nn.Sequential(*layers)
        opt = torch.optim.SGD(model.parameters(), lr=lr)
        t0 = time.perf_counter()
        for s in range(0, X.shape[0], batch):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(X[s:s + batch]), y[s:s + batch])
            loss.backward()
            opt.step()
        seconds = time.perf_counter() - t0
        final = [lin.weight.detach().numpy().T for lin in model if isinstance(lin, nn.Linear)]
        return seconds, final


# -------------------------------------------------------------------------------------- probes

def _concurrently(fn, n):
    """Sum of fn() run in n threads at once (the probes release the GIL)."""
    results = [0.0] * n
    barrier = threading.Barrier(n)

    def body(i):
        barrier.wait()
        results[i] = fn()

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(results), results


def run_probes(thread_counts, seconds=0.2, bw_bytes=1 << 29):
    """FMA peak (fp32, GFLOP/s) of every ISA up to the detected one on 1 thread, the best ISA's
    peak and the read bandwidth (GB/s) on each thread count (n concurrent single-thread probes)."""
    try:
        from fastnn import _core
        _core.probe_fma_peak_gflops
    except (ImportError, AttributeError) as exc:
        return {"available": False, "reason": f"fastnn._core probes not available ({exc})"}
    best = _core.detected_isa()
    isas = [i for i in ISA_ORDER if ISA_ORDER.index(i) <= ISA_ORDER.index(best)] if best in ISA_ORDER else [best]
    per_isa = {}
    for isa in isas:
        _core.probe_fma_peak_gflops(isa, False, seconds / 4)                # warm the clocks
        per_isa[isa] = max(_core.probe_fma_peak_gflops(isa, False, seconds) for _ in range(2))
    peak, peak_each, bw, bw_each = {}, {}, {}, {}
    for t in thread_counts:
        if t == 1:
            peak[t], peak_each[t] = per_isa[best], [per_isa[best]]
        else:
            peak[t], peak_each[t] = _concurrently(lambda: _core.probe_fma_peak_gflops(best, False, seconds), t)
        bw[t], bw_each[t] = _concurrently(lambda: _core.probe_read_bandwidth_gbs(bw_bytes, seconds * 1.5), t)
    # Not a floor: what fastnn's own micro-kernel reaches with its operands in L1 (context for
    # the GEMM rows' % of the floor; older builds lack the probe).
    kernel = getattr(_core, "probe_micro_kernel_gflops", None)
    return {"available": True, "best_isa": best, "fma_peak_gflops_1thread_by_isa": per_isa,
            "micro_kernel_gflops": None if kernel is None else max(kernel(seconds) for _ in range(2)),
            "fma_peak_gflops": {str(t): v for t, v in peak.items()},
            "fma_peak_gflops_per_thread": {str(t): v for t, v in peak_each.items()},
            "read_bandwidth_gbs": {str(t): v for t, v in bw.items()},
            "read_bandwidth_gbs_per_thread": {str(t): v for t, v in bw_each.items()},
            "read_bandwidth_buffer_bytes": bw_bytes}


def floor_seconds(workload, threads, probes):
    if not probes.get("available"):
        return None
    peak = probes["fma_peak_gflops"].get(str(threads))
    if not peak:
        return None
    floor = workload["flops"] / (peak * 1e9)
    if workload.get("read_floor"):
        bw = probes["read_bandwidth_gbs"].get(str(threads))
        if bw:
            floor = max(floor, workload["x_bytes"] / (bw * 1e9))
    return floor


# ------------------------------------------------------------------------------------- machine

def machine_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def machine_info():
    info = {"platform": platform.platform(), "machine": platform.machine(),
            "python": sys.version.split()[0], "logical_cpus": os.cpu_count()}
    try:
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    except AttributeError:
        info["usable_cpus"] = os.cpu_count()
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        fields = {}
        for line in text.split("\n\n")[0].splitlines():
            if ":" in line:
                k, v = line.split(":", 1)
                fields[k.strip()] = v.strip()
        info["cpu_model"] = fields.get("model name")
        info["cpu_family_model_stepping"] = [fields.get("cpu family"), fields.get("model"), fields.get("stepping")]
        flags = set(fields.get("flags", "").split())
        info["cpu_flags_of_interest"] = sorted(flags & {"avx", "avx2", "fma", "avx512f", "avx512vl", "avx512bw",
                                                        "avx512dq", "avx512_bf16", "avx512_fp16", "amx_tile",
                                                        "hypervisor"})
    except OSError:
        info["cpu_model"] = platform.processor() or None
    return info


def _blas_summary(threadpools):
    if not threadpools:
        return None
    blas = [p for p in threadpools if p.get("user_api") == "blas"]
    if not blas:
        return None
    p = blas[0]
    return f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')} kernel, {p.get('threading_layer')})"


# ---------------------------------------------------------------------------------------- run

def _find_mnist(data_dir):
    root = data_dir or os.environ.get("FASTNN_DATA")
    if not root:
        raise SystemExit("fastnn bench: MNIST not found: set FASTNN_DATA (or pass --data DIR) to a directory "
                         f"holding {', '.join(MNIST_FILES)}")
    cands = [root, os.path.join(root, "mnist")]
    for c in cands:
        if all(os.path.exists(os.path.join(c, f)) for f in MNIST_FILES):
            return c
    raise SystemExit(f"fastnn bench: MNIST not found in {root}: expected {', '.join(MNIST_FILES)} there "
                     "(set FASTNN_DATA or pass --data DIR)")


def _parse_threads(spec):
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    out = []
    for part in str(spec).split(","):
        part = part.strip().lower()
        if not part:
            continue
        t = usable if part in ("all", "max") else int(part)
        if t < 1:
            raise SystemExit(f"fastnn bench: --threads: expected positive integers or 'all', got {spec!r}")
        if t not in out:
            out.append(t)
    return out


def _stats(times):
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times)}


def run_benchmark(quick=False, smoke=False, threads="1,all", rounds=None, gemm=True, epochs=True,
                  data=None, contenders=None, min_time=None, settle=0.1, timeout=600.0,
                  max_stall=0.05, retries=2, backoff=0.3, progress=True):
    """Run the benchmark and return the results dict (see bench/README.md for the schema)."""
    import fastnn

    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    started = time.time()
    thread_counts = [1] if smoke and threads == "1,all" else _parse_threads(threads)
    rounds = rounds or (1 if smoke else 3 if quick else 5)
    warmup = 1
    min_time = min_time if min_time is not None else (0.005 if smoke else 0.05 if quick else 0.1)
    notes = []

    # Contenders that can run here.
    have_cpp = "cpp" in fastnn.available_backends()
    have_torch = importlib.util.find_spec("torch") is not None
    wanted = set(contenders.split(",")) if contenders else ({"cpp", "numpy"} if smoke else {"cpp", "numpy", "torch"})
    unknown = wanted - {"cpp", "numpy", "torch"}
    if unknown:
        raise SystemExit(f"fastnn bench: --contenders: unknown {sorted(unknown)}; expected cpp, numpy, torch")
    if "cpp" in wanted and not have_cpp:
        wanted.discard("cpp")
        notes.append("fastnn's C++ extension is not importable: the fastnn-cpp contender is skipped "
                     "(build it with `pip install .`, or run with PYTHONPATH pointing at an in-tree build).")
    if "torch" in wanted and not have_torch:
        wanted.discard("torch")
        notes.append(TORCH_HINT)
    for n in notes:
        log("note: " + n)
    engines = [e for e in ("cpp", "numpy", "torch") if e in wanted]

    # Workloads.
    workloads = []
    if gemm:
        if smoke:
            workloads.append(gemm_workload("sgemm-64", "sgemm 64³", 64, 64, 64))
        else:
            sizes = (256, 1024) if quick else SQUARE_SIZES
            workloads += [square_gemm(s) for s in sizes]
            workloads += TRAINING_GEMMS[:2] if quick else TRAINING_GEMMS
    tmpdir = tempfile.mkdtemp(prefix="fastnn-bench-")
    # The workers import a private copy of this fastnn package: a rebuild of the extension in the
    # source tree during the run (overwriting the mapped .so) would otherwise crash them, and every
    # worker runs the same build.
    pkg_dir = os.path.dirname(os.path.abspath(fastnn.__file__))
    pkg_parent = os.path.join(tmpdir, "pkg")
    shutil.copytree(pkg_dir, os.path.join(pkg_parent, "fastnn"), ignore=shutil.ignore_patterns("__pycache__"))
    if os.path.isdir(pkg_dir + ".libs"):      # libraries vendored by auditwheel, found via $ORIGIN
        shutil.copytree(pkg_dir + ".libs", os.path.join(pkg_parent, "fastnn.libs"))
    try:
        build = fastnn.build_info()
    except Exception as exc:   # no extension
        build = None
        build_error = str(exc)
    data_info = None
    if epochs:
        if smoke:
            rng = np.random.default_rng(0)
            X = rng.random((300, 784), dtype=np.float32)
            y = rng.integers(0, 10, size=300).astype(np.uint8)
            data_info = {"source": "synthetic (smoke)", "rows": 300, "cols": 784}
            workloads += [epoch_workload("softmax", "softmax regression", 300, 784, None),
                          epoch_workload("mlp-h16", "2-layer h=16", 300, 784, 16)]
        else:
            mnist = _find_mnist(data)
            log(f"loading MNIST from {mnist}")
            X, y = fastnn.parse_mnist(os.path.join(mnist, MNIST_FILES[0]), os.path.join(mnist, MNIST_FILES[1]))
            data_info = {"source": mnist, "rows": int(X.shape[0]), "cols": int(X.shape[1])}
            n, d = X.shape
            workloads += [epoch_workload("softmax", "softmax regression", n, d, None),
                          epoch_workload("mlp-h100", "2-layer h=100", n, d, 100),
                          epoch_workload("mlp-h400", "2-layer h=400", n, d, 400)]
        np.save(os.path.join(tmpdir, "X.npy"), X)
        np.save(os.path.join(tmpdir, "y.npy"), y)
        del X, y

    # Probes (before any worker exists, so nothing else competes for the cores).
    log("probing the FMA peak and the read bandwidth")
    probes = run_probes(thread_counts, seconds=0.05 if smoke else 0.2,
                        bw_bytes=(1 << 24) if smoke else (1 << 29))
    if not probes.get("available"):
        notes.append(f"no floors: {probes.get('reason')}")

    results, infos, all_workers, background = [], {}, [], {}
    scaling = None
    try:
        for t in thread_counts:
            workers = {e: Worker(e, t, tmpdir, tmpdir, timeout, pkg_parent) for e in engines}
            all_workers += workers.values()
            for e, w in workers.items():
                infos[f"{e}/{t}"] = w.call({"op": "info"})
            foreign = busy_cores()
            background[str(t)] = foreign
            usable = machine_cpus()
            if foreign is not None and foreign + t > usable + 0.25:
                msg = (f"other processes kept {foreign:.1f} of {usable} CPUs busy before the {t}-thread runs: "
                       f"{t}-thread results are likely contended (see †)")
                notes.append(msg)
                log("warning: " + msg)
            for wl in workloads:
                table = GEMM_CONTENDERS if wl["kind"] == "gemm" else EPOCH_CONTENDERS
                names = [c for c, e in table.items() if e in engines and _runs(c, wl)]
                times = {c: [] for c in names}
                stalls = {c: [] for c in names}
                extra = {c: {"retries": 0} for c in names}
                retry_budget = retries * len(names)      # per workload and thread count: bounded time
                for r in range(warmup + rounds):
                    order = names[r % len(names):] + names[:r % len(names)]
                    for c in order:
                        if extra[c].get("error"):
                            continue
                        job = {"op": wl["kind"], "contender": c, **wl}
                        if wl["kind"] == "gemm":
                            job.update(min_time=min_time, min_reps=1 if smoke else 2)
                        ref = [x["median_s"] for x in results if x["workload"] == wl["id"] and x["threads"] == 1
                               and x["contender"] == c and "median_s" in x]
                        for w in workers.values():     # a runaway (oversubscribed) sample fails, not hangs
                            w.timeout = min(timeout, max(60.0, 30 * ref[0] * (job.get("min_reps", 1) + 1)
                                                         + 30 * job.get("min_time", 0))) if ref else timeout
                        for attempt in range(1 + (retries if r >= warmup else 0)):
                            if attempt:
                                if retry_budget <= 0:
                                    break
                                retry_budget -= 1
                                extra[c]["retries"] += 1
                                time.sleep(backoff)
                            ans = workers[table[c]].call(job)
                            if "worker exited" in ans.get("error", ""):    # once more, in a fresh worker
                                log(f"  {c} crashed on {wl['id']} ({t} threads): {ans['error']}; retrying once")
                                extra[c]["crashes"] = extra[c].get("crashes", 0) + 1
                                ans = workers[table[c]].call(job)
                            if t > 1 and settle:
                                time.sleep(settle)    # let that worker's idle pool threads stop spinning
                            if "error" in ans or (ans.get("stall") or 0.0) <= max_stall \
                                    or ans["seconds"] * ans.get("reps", 1) > 5.0:   # too long to repeat
                                break
                        if "error" in ans:
                            extra[c]["error"] = ans["error"]
                            log(f"  {c} failed on {wl['id']} ({t} threads): {ans['error']}")
                            continue
                        extra[c]["check"] = ans.get("check")
                        if ans.get("reps"):
                            extra[c]["reps"] = ans["reps"]
                        if r >= warmup:
                            times[c].append(ans["seconds"])
                            stalls[c].append(ans.get("stall"))
                floor = floor_seconds(wl, t, probes)
                for c in names:
                    row = {"kind": wl["kind"], "workload": wl["id"], "label": wl["label"], "threads": t,
                           "contender": c, "engine": table[c], "times_s": times[c], "flops": wl["flops"],
                           "floor_s": floor, "cpu_stall": stalls[c],
                           "contended": sum(1 for x in stalls[c] if x is not None and x > max_stall),
                           **{k: v for k, v in extra[c].items()}}
                    if times[c]:
                        row.update(_stats(times[c]))
                        row["gflops"] = wl["flops"] / row["median_s"] / 1e9
                        row["pct_floor"] = 100.0 * floor / row["median_s"] if floor else None
                    results.append(row)
                log(_progress_line(wl, t, [r for r in results if r["workload"] == wl["id"] and r["threads"] == t]))
            for w in workers.values():
                w.close()
        scaling = _measure_scaling(workloads, engines, thread_counts, rounds, warmup, settle, timeout,
                                   tmpdir, pkg_parent, all_workers, log)
    finally:
        for w in all_workers:
            w.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    _mark_agreement(results, notes)

    versions = {"fastnn": fastnn.__version__, "numpy": np.__version__, "python": platform.python_version()}
    blas = {}
    for key, inf in infos.items():
        e = key.split("/")[0]
        if e == "torch" and "torch" in inf:
            versions["torch"] = inf["torch"]
            blas.setdefault("torch", {"config": inf.get("torch_config"),
                                      "cpu_capability": inf.get("torch_cpu_capability"),
                                      "threadpools": inf.get("threadpools")})
        if e == "numpy" and inf.get("threadpools") is not None:
            blas.setdefault("numpy", {"summary": _blas_summary(inf["threadpools"]), "threadpools": inf["threadpools"]})
        if e == "cpp" and "build_info" in inf:
            blas.setdefault("fastnn-cpp", {"build_info": inf["build_info"]})
        if inf.get("threadpoolctl"):
            versions["threadpoolctl"] = inf["threadpoolctl"]
    if "numpy" in engines and "numpy" not in blas:
        notes.append("threadpoolctl is not installed: the BLAS kernel of NumPy is not recorded "
                     "(pip install threadpoolctl, or the project's `bench` extra)")
    machine = machine_info()
    if build is not None:
        machine.update(isa_detected=build.get("simd_detected"), isa_active=build.get("simd_active"),
                       fastnn_build=build)
    else:
        machine.update(isa_detected=None, isa_active=None, fastnn_build=f"unavailable ({build_error})")
    machine["fastnn_package"] = pkg_dir
    if blas.get("numpy"):
        machine["numpy_blas"] = blas["numpy"]["summary"]
    out = {
        "schema": SCHEMA,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": None,
        "config": {"quick": quick, "smoke": smoke, "threads": thread_counts, "rounds": rounds,
                   "warmup_rounds": warmup, "gemm_min_time_s": min_time, "settle_s": settle,
                   "max_cpu_stall": max_stall, "retries": retries, "retry_backoff_s": backoff,
                   "psi_available": _cpu_stall_us() is not None,
                   "contenders": engines, "dtype": "float32",
                   "unset_for_numpy_and_torch": list(_UNSET_FOR_PEERS),
                   "parent_env": {k: os.environ.get(k) for k in _THREAD_VARS + _UNSET_FOR_PEERS}},
        "machine": machine,
        "versions": versions,
        "blas": blas,
        "data": data_info,
        "probes": probes,
        "background_load_cores": background,
        "workloads": workloads,
        "results": results,
        "scaling": scaling,
        "notes": notes,
        "worker_info": infos,
    }
    out["targets"] = evaluate_targets(out)
    out["duration_s"] = time.time() - started
    return out


SCALING_WORKLOAD = "mlp-h400"
SCALING_THREADS = 2


def _measure_scaling(workloads, engines, thread_counts, rounds, warmup, settle, timeout, tmpdir, pkg_parent,
                     all_workers, log):
    """The h=400 epoch of fastnn-cpp on 1 and on 2 threads, the two alternating round by round
    (order rotated), so that a machine that speeds up or slows down during the run -- shared
    machines do, by 10% and more over minutes -- moves both sides of the ratio alike. The
    per-thread-count tables run their thread counts one after the other, minutes apart.
    None when the workload, fastnn-cpp, or a 2-thread run is not part of this benchmark."""
    wl = next((w for w in workloads if w["id"] == SCALING_WORKLOAD), None)
    if wl is None or "cpp" not in engines or 1 not in thread_counts or \
            not any(t >= SCALING_THREADS for t in thread_counts):
        return None
    workers = {t: Worker("cpp", t, tmpdir, tmpdir, timeout, pkg_parent) for t in (1, SCALING_THREADS)}
    all_workers += workers.values()
    times = {1: [], SCALING_THREADS: []}
    job = {"op": "epoch", "contender": "fastnn-cpp", **wl}
    for r in range(warmup + rounds):
        for t in ((1, SCALING_THREADS) if r % 2 == 0 else (SCALING_THREADS, 1)):
            ans = workers[t].call(job)
            if settle:
                time.sleep(settle)
            if "error" in ans:
                log(f"  scaling run failed ({t} threads): {ans['error']}")
                return {"workload": wl["id"], "error": ans["error"]}
            if r >= warmup:
                times[t].append(ans["seconds"])
    for w in workers.values():
        w.close()
    one, two = float(np.median(times[1])), float(np.median(times[SCALING_THREADS]))
    log(f"[scaling] {wl['label']}: 1 thread {_fmt_time(one)}, {SCALING_THREADS} threads {_fmt_time(two)} "
        f"(interleaved): {one / two:.2f}×")
    return {"workload": wl["id"], "label": wl["label"], "threads": [1, SCALING_THREADS],
            "times_s": {str(k): v for k, v in times.items()}, "median_s": {"1": one, str(SCALING_THREADS): two},
            "speedup": one / two}


def _progress_line(wl, t, rows):
    parts = []
    for r in rows:
        if "median_s" in r:
            parts.append(f"{r['contender']} {_fmt_time(r['median_s'])}")
        else:
            parts.append(f"{r['contender']} failed")
    return f"[{t} thr] {wl['label']}: " + ", ".join(parts)


def _mark_agreement(results, notes):
    """Flag contenders whose results (norm of C, or of the trained weights) differ from NumPy's:
    a contender that computes something else is not a fair comparison."""
    ref = {(r["workload"], r["threads"]): r.get("check") for r in results if r["engine"] == "numpy"}
    for r in results:
        base, mine = ref.get((r["workload"], r["threads"])), r.get("check")
        if base is None or mine is None:
            continue
        a, b = np.atleast_1d(np.asarray(mine, float)), np.atleast_1d(np.asarray(base, float))
        tol = 1e-4 if r["kind"] == "gemm" else 2e-2
        rel = float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))
        r["agrees_with_numpy"] = bool(rel <= tol)
        r["relative_difference"] = rel
        if not r["agrees_with_numpy"]:
            notes.append(f"{r['contender']} on {r['label']} ({r['threads']} threads) differs from NumPy's "
                         f"result by {rel:.2e} (relative): check its math")


# ------------------------------------------------------------------------------------- targets

def _row(results, workload, threads, contender):
    for r in results:
        if r["workload"] == workload and r["threads"] == threads and r["contender"] == contender and "median_s" in r:
            return r
    return None


def _torch_peer(results, workload, threads):
    rows = [r for r in (_row(results, workload, threads, c) for c in ("torch-manual", "torch-autograd")) if r]
    return min(rows, key=lambda r: r["median_s"]) if rows else None


def evaluate_targets(out):
    """Issue 5's targets, each met / not met / n/a, computed from the medians (1 thread unless
    stated). Speed-up = peer median / fastnn-cpp median."""
    res = out["results"]
    targets = []

    def add(tid, text, measured, needed, ok, why=None, info=False):
        # info: a figure shown beside the targets for reference, not one of them (never "not met")
        status = "n/a" if ok is None else ("info" if info else ("met" if ok else "not met"))
        targets.append({"id": tid, "target": text, "measured": measured, "needed": needed, "status": status,
                        **({"why": why} if why else {})})

    def speedup(workload, peer, threads=1):
        cpp = _row(res, workload, threads, "fastnn-cpp")
        other = _torch_peer(res, workload, threads) if peer == "torch" else _row(res, workload, threads, peer)
        if not cpp:
            return None, None, f"fastnn-cpp not measured on {workload}, {threads} thread(s)"
        if not other:
            return None, None, f"{peer} not measured on {workload}, {threads} thread(s)"
        return other["median_s"] / cpp["median_s"], other, None

    def pct(workload, threads=1, contender="fastnn-cpp"):
        cpp = _row(res, workload, threads, contender)
        return cpp.get("pct_floor") if cpp else None

    # softmax vs NumPy: ≥2.5×, or ≥70 % of the floor and ≥1.5×
    s, _, why = speedup("softmax", "fastnn-numpy")
    p = pct("softmax")
    ok = None if s is None else (s >= 2.5 or (p is not None and p >= 70 and s >= 1.5))
    add("softmax-numpy", "softmax epoch ≥2.5× NumPy (or ≥70% of floor and ≥1.5×)",
        None if s is None else f"{s:.2f}×" + (f", {p:.0f}% of floor" if p is not None else ""),
        "≥2.5× (or ≥70% and ≥1.5×)", ok, why)
    for tid, wl, peer, need, text in [
            ("softmax-torch", "softmax", "torch", 2.5, "softmax epoch ≥2.5× PyTorch"),
            ("h100-numpy", "mlp-h100", "fastnn-numpy", 1.5, "h=100 epoch ≥1.5× NumPy"),
            ("h100-torch", "mlp-h100", "torch", 1.5, "h=100 epoch ≥1.5× PyTorch"),
            ("h400-numpy", "mlp-h400", "fastnn-numpy", 1.3, "h=400 epoch ≥1.3× NumPy"),
            ("h400-torch", "mlp-h400", "torch", 1.2, "h=400 epoch ≥1.2× PyTorch")]:
        s, other, why = speedup(wl, peer)
        measured = None if s is None else f"{s:.2f}×" + (f" (vs {other['contender']})" if peer == "torch" else "")
        add(tid, text, measured, f"≥{need}×", None if s is None else s >= need, why)
    p = pct("mlp-h400")
    add("h400-floor", "h=400 epoch ≥70% of floor", None if p is None else f"{p:.0f}%", "≥70%",
        None if p is None else p >= 70,
        None if p is not None else "no fastnn-cpp measurement or no probes")
    # For reference, not a target of the issue: the same epoch with the dense kernels. The floor
    # counts dense FLOPs, which zero skipping avoids; this row shows how near the dense GEMMs
    # themselves come to the FMA peak.
    p = pct("mlp-h400", contender=DENSE_ONLY)
    add("h400-floor-dense", "for reference: h=400 epoch with the dense kernels (fastnn-cpp-dense), % of floor",
        None if p is None else f"{p:.0f}%", "(≥70% would match the target above)", None if p is None else p >= 70,
        None if p is not None else "no fastnn-cpp-dense measurement or no probes", info=True)
    # From the interleaved 1-/2-thread runs when the benchmark made them (see _measure_scaling);
    # otherwise from the two tables' medians.
    sc = out.get("scaling") or {}
    if sc.get("speedup"):
        s, how = sc["speedup"], " (interleaved runs)"
    else:
        one, two = _row(res, "mlp-h400", 1, "fastnn-cpp"), _row(res, "mlp-h400", 2, "fastnn-cpp")
        s, how = (one["median_s"] / two["median_s"] if one and two else None), ""
    add("h400-2threads", "h=400 epoch on 2 threads ≥1.7× faster than on 1", None if s is None else f"{s:.2f}×{how}",
        "≥1.7×", None if s is None else s >= 1.7, None if s is not None else "needs fastnn-cpp runs on 1 and 2 threads")
    s, _, why = speedup("sgemm-1024", "fastnn-numpy")
    add("sgemm1024-numpy", "sgemm 1024³ at least as fast as NumPy", None if s is None else f"{s:.2f}×", "≥1.0×",
        None if s is None else s >= 1.0, why)
    return targets


# ------------------------------------------------------------------------------------ markdown

def _fmt_time(s):
    if s is None:
        return "—"
    ms = s * 1e3
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    if ms >= 1:
        return f"{ms:.2f} ms"
    return f"{ms * 1e3:.0f} µs" if ms < 0.1 else f"{ms:.3f} ms"


def _fmt_range(lo, hi):
    if lo is None:
        return "—"
    a, b = _fmt_time(lo), _fmt_time(hi)
    ua, ub = a.split()[1], b.split()[1]
    return f"{a.split()[0]}–{b}" if ua == ub else f"{a}–{b}"


def _table(rows, results):
    lines = [TABLE_HEADER, "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "median_s" not in r:
            why = r.get("error", "no measurement")
            lines.append(f"| {r['label']} | {r['threads']} | {r['contender']} | failed | {why[:60]} | | | |")
            continue
        base = _row(results, r["workload"], r["threads"], "fastnn-numpy")
        x = f"{base['median_s'] / r['median_s']:.2f}×" if base else "—"
        pf = f"{r['pct_floor']:.0f}%" if r.get("pct_floor") is not None else "—"
        name = r["contender"] + ("" if r.get("agrees_with_numpy", True) else " ⚠")
        cpp_bold = r["contender"] == "fastnn-cpp"
        med = _fmt_time(r["median_s"]) + (" †" if r.get("contended") else "")
        lines.append(f"| {r['label']} | {r['threads']} | {name} | {'**' + med + '**' if cpp_bold else med} | "
                     f"{_fmt_range(r['min_s'], r['max_s'])} | {r['gflops']:.1f} | {pf} | {x} |")
    return lines


def render_markdown(out):
    m, p, cfg = out["machine"], out["probes"], out["config"]
    L = [f"# fastnn benchmark — {out['created']}", ""]
    cpu = m.get("cpu_model") or "unknown CPU"
    fms = m.get("cpu_family_model_stepping")
    L.append(f"* **Machine**: {cpu}" + (f" (family {fms[0]}, model {fms[1]})" if fms and fms[0] else "")
             + f", {m.get('usable_cpus')} usable CPUs; {m.get('platform')}")
    L.append(f"* **fastnn** {out['versions'].get('fastnn')}: ISA in use {m.get('isa_active') or '—'} "
             f"(detected {m.get('isa_detected') or '—'})")
    if m.get("numpy_blas"):
        L.append(f"* **NumPy** {out['versions'].get('numpy')}: {m['numpy_blas']}")
    else:
        L.append(f"* **NumPy** {out['versions'].get('numpy')}")
    if "torch" in out["versions"]:
        cap = out["blas"].get("torch", {}).get("cpu_capability")
        L.append(f"* **PyTorch** {out['versions']['torch']}" + (f" (CPU capability {cap})" if cap else ""))
    if p.get("available"):
        peaks = ", ".join(f"{v:.0f} GFLOP/s on {t} thread{'s' if t != '1' else ''}"
                          for t, v in p["fma_peak_gflops"].items())
        bws = ", ".join(f"{v:.1f} GB/s on {t} thread{'s' if t != '1' else ''}"
                        for t, v in p["read_bandwidth_gbs"].items())
        L.append(f"* **Probes**: FMA peak ({p['best_isa']}, fp32) {peaks}; read bandwidth {bws}")
        if p.get("micro_kernel_gflops"):
            one = p["fma_peak_gflops"].get("1")
            share = f" ({100 * p['micro_kernel_gflops'] / one:.0f}% of the FMA peak)" if one else ""
            L.append(f"* **fastnn's GEMM micro-kernel** with its operands in L1 (not a floor, the kernel's own "
                     f"ceiling on this core): {p['micro_kernel_gflops']:.0f} GFLOP/s on 1 thread{share}")
    else:
        L.append(f"* **Probes**: not available ({p.get('reason')}); no floors")
    if out.get("data"):
        d = out["data"]
        L.append(f"* **Data**: {d['rows']}×{d['cols']} float32 from {d['source']}")
    L.append(f"* **Method**: {cfg['rounds']} rounds after {cfg['warmup_rounds']} warm-up, contenders interleaved "
             f"(order rotated each round), one worker process per contender and thread count; "
             f"median (bold for fastnn-cpp) and min–max; float32.")
    L.append("")
    res = out["results"]
    for kind, title in (("epoch", "Epochs (batch 100, lr 0.1)"), ("gemm", "SGEMM C = A·B (float32)")):
        rows = [r for r in res if r["kind"] == kind]
        if not rows:
            continue
        L += [f"## {title}", ""] + _table(rows, res) + [""]
        if kind == "epoch" and (out.get("scaling") or {}).get("speedup"):
            sc = out["scaling"]
            t2 = str(sc["threads"][1])
            L += [f"Thread scaling, {sc['label']} (fastnn-cpp on 1 and {t2} threads alternating round by round, "
                  f"{len(sc['times_s']['1'])} rounds): {_fmt_time(sc['median_s']['1'])} on 1 thread, "
                  f"{_fmt_time(sc['median_s'][t2])} on {t2}: **{sc['speedup']:.2f}×**.", ""]
    L += ["## Targets (1 thread unless stated)", "", TARGETS_HEADER, "|---|---:|---|---|"]
    for t in out["targets"]:
        verdict = {"met": "✅ met", "not met": "❌ not met", "info": "ℹ️ not a target"}.get(t["status"], "n/a")
        if t["status"] == "n/a" and t.get("why"):
            verdict += f" ({t['why']})"
        L.append(f"| {t['target']} | {t.get('measured') or '—'} | {t['needed']} | {verdict} |")
    L.append("")
    L.append("Floor: the workload's GEMM FLOPs at the probed FMA peak (softmax epoch: or one read of X at the "
             "probed read bandwidth, whichever is longer). % of floor = floor / median. × NumPy = NumPy's median / "
             "this median. ⚠ = result differs from NumPy's (see notes).")
    if any(r["contender"] == DENSE_ONLY for r in res):
        L.append("")
        L.append("fastnn-cpp skips the zeros of X in the first layer of a net with a hidden layer when X is mostly "
                 "zeros (MNIST: 19% nonzero; `fastnn.set_skip_zeros`), so its first-layer products do about a "
                 "fifth of the dense multiply-adds. fastnn-cpp-dense is the same package with that turned off: "
                 "the dense GEMMs. The floor counts the dense FLOPs for both, so fastnn-cpp's % of floor can "
                 "pass 100%: it measures the epoch against the dense work, not the kernels against the FMA peak.")
    if any(r["contender"] == PIXELS_ONLY for r in res):
        L.append("")
        L.append("fastnn-cpp-pixels is fastnn-cpp's softmax epoch with X given as `fastnn.Pixels` (MNIST's uint8 "
                 "bytes and a scale of 1/255, widened batch by batch in the core): a quarter of the bytes of "
                 "float32 X to read. Its floor is the float32 epoch's (one read of float32 X or the FLOPs).")
    contended = [r for r in res if r.get("contended")]
    retried = sum(r.get("retries", 0) for r in res)
    if contended or retried:
        L.append(f"† {sum(r['contended'] for r in contended)} sample(s) in {len(contended)} row(s) ran while other "
                 f"work competed for the CPUs (PSI CPU stall above {cfg['max_cpu_stall']:.0%} of the sample) even "
                 f"after {cfg['retries']} retries; {retried} sample(s) were re-run in all. Rows with † are "
                 "pessimistic: rerun on a quiet machine.")
    if out["notes"]:
        L += ["", "Notes:", ""] + [f"* {n}" for n in out["notes"]]
    L.append("")
    return "\n".join(L)


# -------------------------------------------------------------------------------------- output

def _json_safe(x):
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {str(k): _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, np.generic):
        return _json_safe(x.item())
    return x


def _output_paths(out_arg, stamp):
    if out_arg and os.path.splitext(out_arg)[1] in (".json", ".md"):
        stem = os.path.splitext(out_arg)[0]
    else:
        directory = out_arg or os.path.join("bench", "results")
        stem = os.path.join(directory, f"bench-{stamp}")
    os.makedirs(os.path.dirname(stem) or ".", exist_ok=True)
    return stem + ".md", stem + ".json"


def build_parser():
    p = argparse.ArgumentParser(prog="fastnn bench", description="Benchmark fastnn-cpp against NumPy and PyTorch "
                                "(SGEMM and MNIST epochs); prints a markdown table and writes it with a JSON file.")
    p.add_argument("--quick", action="store_true", help="fewer rounds and GEMM sizes (about a minute)")
    p.add_argument("--smoke", action="store_true", help="a tiny run for tests: one small GEMM, a small synthetic "
                   "epoch, 1 round, 1 thread, no torch unless --contenders says so")
    p.add_argument("--threads", default="1,all", help="thread counts, comma-separated; 'all' = usable CPUs "
                   "(default 1,all)")
    p.add_argument("--rounds", type=int, default=None, help="measured rounds (default 5; --quick 3)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--epochs-only", action="store_true", help="only the MNIST epochs")
    g.add_argument("--gemm-only", action="store_true", help="only the SGEMM workloads (no MNIST needed)")
    p.add_argument("--data", default=None, help="MNIST directory (default: $FASTNN_DATA)")
    p.add_argument("--out", default=None, help="output directory, or a path ending in .md/.json for both files "
                   "(default bench/results/)")
    p.add_argument("--contenders", default=None, help="engines to run, comma-separated from cpp,numpy,torch "
                   "(default: all that are installed)")
    p.add_argument("--min-time", type=float, default=None, help="seconds of calls per GEMM measurement")
    p.add_argument("--settle", type=float, default=0.1, help="pause after a multi-threaded measurement, so the "
                   "previous worker's pool threads stop spinning (default 0.1 s)")
    p.add_argument("--max-stall", type=float, default=0.05, help="a sample during which some task waited for a "
                   "CPU (Linux PSI) for more than this fraction of its time is re-run (default 0.05)")
    p.add_argument("--retries", type=int, default=2, help="re-runs of a contended sample (default 2)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per measurement")
    p.add_argument("--check", action="store_true", help="exit with status 3 when a target is not met")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def main(argv=None):
    """Command-line entry point (`fastnn bench`, bench/run.py). Returns the exit status."""
    args = build_parser().parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        def _terminate(signum, frame):     # run the cleanup (stop the workers) on `kill`
            raise KeyboardInterrupt(f"signal {signum}")
        signal.signal(signal.SIGTERM, _terminate)
    if args.rounds is not None and args.rounds < 1:
        print("fastnn bench: --rounds: expected at least 1", file=sys.stderr)
        return 2
    try:
        out = run_benchmark(quick=args.quick, smoke=args.smoke, threads=args.threads, rounds=args.rounds,
                            gemm=not args.epochs_only, epochs=not args.gemm_only, data=args.data,
                            contenders=args.contenders, min_time=args.min_time, settle=args.settle,
                            timeout=args.timeout, max_stall=args.max_stall, retries=max(0, args.retries),
                            progress=not args.quiet)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("fastnn bench: interrupted", file=sys.stderr)
        return 130
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    md_path, json_path = _output_paths(args.out, stamp)
    md = render_markdown(out)
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(md)
    with open(json_path, "w", encoding="utf-8") as f:
        json.dump(_json_safe(out), f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(md)
    print(f"wrote {md_path} and {json_path} ({out['duration_s']:.0f} s)", file=sys.stderr)
    if args.check and any(t["status"] == "not met" for t in out["targets"]):
        return 3
    failed = [r for r in out["results"] if "median_s" not in r]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
