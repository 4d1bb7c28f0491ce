"""The worker processes, one per (engine, thread count), and what the parent reads of the
machine's load while they run (Linux PSI, /proc/stat)."""
import json
import os
import select
import subprocess
import sys
import time


_UNSET_FOR_PEERS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

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
        code = "from fastnn.benchmark.jobs import worker_main; worker_main()"
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
