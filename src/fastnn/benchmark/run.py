"""One benchmark run: which contenders and workloads, the data and a private copy of the package
for the workers, the probes, the measurements (timing.py), and the results dict."""
import datetime as _dt
import importlib.util
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

from .machine import machine_info, run_probes, _blas_summary
from .processes import _THREAD_VARS, _UNSET_FOR_PEERS, _cpu_stall_us
from .targets import _mark_agreement, evaluate_targets
from .timing import Plan, measure
from .workloads import (INPUT_FILES, INPUTS, MNIST_FILES, SQUARE_SIZES, TRAINING_GEMMS, centre_columns,
                        epoch_workloads, gemm_workload, square_gemm)

SCHEMA = "fastnn-bench/1"
TORCH_HINT = ("PyTorch is not installed: the torch contenders are skipped. To include them run "
              "`pip install torch==2.13.0` (a CPU build, installed from local disk) — never a bare "
              "`pip install torch`.")


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


def run_benchmark(quick=False, smoke=False, threads="1,all", rounds=None, gemm=True, epochs=True,
                  data=None, inputs="raw,centred", contenders=None, min_time=None, settle=0.1, timeout=600.0,
                  max_stall=0.05, retries=2, backoff=0.3, progress=True):
    """Run the benchmark and return the results dict (see bench/README.md for the schema)."""
    import fastnn

    def log(msg):
        if progress:
            print(msg, file=sys.stderr, flush=True)

    started = time.time()
    thread_counts = [1] if smoke and threads == "1,all" else _parse_threads(threads)
    inputs = _parse_inputs(inputs)
    rounds = rounds or (1 if smoke else 3 if quick else 5)
    min_time = min_time if min_time is not None else (0.005 if smoke else 0.05 if quick else 0.1)
    notes = []
    engines = _engines(fastnn, contenders, smoke, notes, log)
    workloads = _gemm_workloads(quick, smoke) if gemm else []
    tmpdir = tempfile.mkdtemp(prefix="fastnn-bench-")
    try:
        pkg_dir, pkg_parent = _private_copy(fastnn, tmpdir)
        data_info = None
        if epochs:
            epoch_wls, data_info = _epoch_data(fastnn, smoke, data, inputs, tmpdir, log)
            workloads += epoch_wls
        # Probes (before any worker exists, so nothing else competes for the cores).
        log("probing the FMA peak and the read bandwidth")
        probes = run_probes(thread_counts, seconds=0.05 if smoke else 0.2,
                            bw_bytes=(1 << 24) if smoke else (1 << 29))
        if not probes.get("available"):
            notes.append(f"no floors: {probes.get('reason')}")
        plan = Plan(rounds=rounds, warmup=1, min_time=min_time, min_reps=1 if smoke else 2, settle=settle,
                    timeout=timeout, max_stall=max_stall, retries=retries, backoff=backoff, tmpdir=tmpdir,
                    pkg_parent=pkg_parent, log=log)
        m = measure(workloads, engines, thread_counts, plan, probes, notes)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    _mark_agreement(m.results, notes)
    versions, blas = _versions_and_blas(fastnn, m.infos, engines, notes)
    out = {
        "schema": SCHEMA,
        "created": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "duration_s": None,
        "config": {"quick": quick, "smoke": smoke, "threads": thread_counts, "inputs": inputs, "rounds": rounds,
                   "warmup_rounds": plan.warmup, "gemm_min_time_s": min_time, "settle_s": settle,
                   "max_cpu_stall": max_stall, "retries": retries, "retry_backoff_s": backoff,
                   "psi_available": _cpu_stall_us() is not None,
                   "contenders": engines, "dtype": "float32",
                   "unset_for_numpy_and_torch": list(_UNSET_FOR_PEERS),
                   "parent_env": {k: os.environ.get(k) for k in _THREAD_VARS + _UNSET_FOR_PEERS}},
        "machine": _machine(fastnn, pkg_dir, blas),
        "versions": versions,
        "blas": blas,
        "data": data_info,
        "probes": probes,
        "background_load_cores": m.background,
        "workloads": workloads,
        "results": m.results,
        "scaling": m.scaling,
        "notes": notes,
        "worker_info": m.infos,
    }
    out["targets"] = evaluate_targets(out)
    out["duration_s"] = time.time() - started
    return out


def _engines(fastnn, contenders, smoke, notes, log):
    """The engines asked for (cpp, numpy, torch) that can run here; a note for each that cannot."""
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
    return [e for e in ("cpp", "numpy", "torch") if e in wanted]


def _gemm_workloads(quick, smoke):
    if smoke:
        return [gemm_workload("sgemm-64", "sgemm 64³", 64, 64, 64)]
    sizes = (256, 1024) if quick else SQUARE_SIZES
    return [square_gemm(s) for s in sizes] + (TRAINING_GEMMS[:2] if quick else TRAINING_GEMMS)


def _private_copy(fastnn, tmpdir):
    """The workers import a private copy of this fastnn package: a rebuild of the extension in the
    source tree during the run (overwriting the mapped .so) would otherwise crash them, and every
    worker runs the same build. Returns (the package's directory, the copy's parent)."""
    pkg_dir = os.path.dirname(os.path.abspath(fastnn.__file__))
    pkg_parent = os.path.join(tmpdir, "pkg")
    shutil.copytree(pkg_dir, os.path.join(pkg_parent, "fastnn"), ignore=shutil.ignore_patterns("__pycache__"))
    if os.path.isdir(pkg_dir + ".libs"):      # libraries vendored by auditwheel, found via $ORIGIN
        shutil.copytree(pkg_dir + ".libs", os.path.join(pkg_parent, "fastnn.libs"))
    return pkg_dir, pkg_parent


def _epoch_data(fastnn, smoke, data, inputs, tmpdir, log):
    """The epoch workloads on each of `inputs` and their data (MNIST, or 300 synthetic rows for
    --smoke), saved in tmpdir for the workers (X, centred X, y); and a description of the data."""
    if smoke:
        rng = np.random.default_rng(0)
        X = rng.random((300, 784), dtype=np.float32)
        y = rng.integers(0, 10, size=300).astype(np.uint8)
        info = {"source": "synthetic (smoke)", "rows": 300, "cols": 784}
        hiddens = (16,)
    else:
        mnist = _find_mnist(data)
        log(f"loading MNIST from {mnist}")
        X, y = fastnn.parse_mnist(os.path.join(mnist, MNIST_FILES[0]), os.path.join(mnist, MNIST_FILES[1]))
        info = {"source": mnist, "rows": int(X.shape[0]), "cols": int(X.shape[1])}
        hiddens = (100, 400)
    info["inputs"] = list(inputs)
    workloads = epoch_workloads(X.shape[0], X.shape[1], hiddens, inputs)
    np.save(os.path.join(tmpdir, INPUT_FILES["raw"]), X)
    if "centred" in inputs:     # computed once here, so every worker trains on the same bytes
        np.save(os.path.join(tmpdir, INPUT_FILES["centred"]), centre_columns(X))
    np.save(os.path.join(tmpdir, "y.npy"), y)
    return workloads, info


def _parse_inputs(spec):
    inputs = [s.strip() for s in str(spec).split(",") if s.strip()]
    unknown = [s for s in inputs if s not in INPUTS]
    if unknown or not inputs:
        raise SystemExit(f"fastnn bench: --inputs: expected a comma-separated subset of {','.join(INPUTS)}, "
                         f"got {spec!r}")
    return [s for s in INPUTS if s in inputs]


def _versions_and_blas(fastnn, infos, engines, notes):
    """Versions of everything measured, and each engine's BLAS / build, from the workers' infos."""
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
    return versions, blas


def _machine(fastnn, pkg_dir, blas):
    machine = machine_info()
    try:
        build = fastnn.build_info()
        machine.update(isa_detected=build.get("simd_detected"), isa_active=build.get("simd_active"),
                       fastnn_build=build)
    except Exception as exc:   # no extension
        machine.update(isa_detected=None, isa_active=None, fastnn_build=f"unavailable ({exc})")
    machine["fastnn_package"] = pkg_dir
    if blas.get("numpy"):
        machine["numpy_blas"] = blas["numpy"]["summary"]
    return machine
