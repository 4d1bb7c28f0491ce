"""Inside a worker process: the jobs it runs (info, one SGEMM measurement, one timed epoch) for
fastnn-cpp, fastnn-numpy or PyTorch."""
import gc
import json
import os
import sys
import time

import numpy as np

from .machine import core_to_core_round_trip_ns
from .processes import _THREAD_VARS, _UNSET_FOR_PEERS, _cpu_stall_us, _stall_fraction
from .workloads import DENSE_ONLY, INPUT_FILES, PIXELS_ONLY



def torch_manual_epoch(torch, X, y, weights, lr, batch):
    """numpy_backend's epoch written with torch tensors (X float32, y int64): no autograd, in-place
    updates of `weights` (NumPy arrays, shared with the tensors). Returns the seconds it took."""
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
        self._data = {}        # input ("raw", "centred") -> (X, y)
        self._tdata = {}       # the same as torch tensors
        self._pixels = None
        self._gemm = {}

    # -- data
    def data(self, input="raw"):
        """X and y of one of the epochs' inputs (workloads.INPUTS), as the parent saved them."""
        if input not in self._data:
            X = np.load(os.path.join(self.datadir, INPUT_FILES[input]))
            y = np.load(os.path.join(self.datadir, "y.npy"))
            self._data[input] = (X, y)
            if self.torch is not None:
                self._tdata[input] = (self.torch.from_numpy(X), self.torch.from_numpy(y.astype(np.int64)))
        return self._data[input]

    def pixels(self):
        """Raw X as fastnn.Pixels: its uint8 values (MNIST's own bytes, as X = bytes / 255) and 1/255."""
        if self._pixels is None:
            X, _ = self.data("raw")
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
        X, y = self.data(job.get("input", "raw"))
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
            seconds = self._torch_manual(self._tdata[job.get("input", "raw")], weights, lr, batch)
        elif contender == "torch-autograd":
            seconds, weights = self._torch_autograd(self._tdata[job.get("input", "raw")], weights, lr, batch)
        else:
            raise ValueError(f"unknown contender {contender!r}")
        stall = _stall_fraction(s0, _cpu_stall_us(), seconds)
        answer = {"seconds": seconds, "stall": stall,
                  "check": [float(np.linalg.norm(W.astype(np.float64))) for W in weights]}
        if job.get("round_trip"):   # where this process's threads run now (fastnn-cpp only)
            answer["round_trip_ns"] = core_to_core_round_trip_ns(0.02)
        return answer

    def _torch_manual(self, data, weights, lr, batch):
        return torch_manual_epoch(self.torch, *data, weights, lr, batch)

    def _torch_autograd(self, data, weights, lr, batch):
        """The idiomatic torch way: nn.Linear(bias=False) layers, cross_entropy, optim.SGD."""
        torch = self.torch
        nn, F = torch.nn, torch.nn.functional
        X, y = data
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


def worker_main():
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
