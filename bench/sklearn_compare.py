"""fastnn.estimators against scikit-learn's MLPClassifier / MLPRegressor, side by side in one run.

    pip install .            # (or .[bench] for threadpoolctl's BLAS report)
    FASTNN_DATA=/path/to/mnist python bench/sklearn_compare.py [--max-iter 20] [--repeat 1]

Three cases, each fitted by fastnn and by scikit-learn with the same call and every other
setting at its default (Adam, lr 0.001, batch 200, alpha 1e-4, shuffling, random_state=0):

  mnist-raw      MLPClassifier((100,), max_iter=20) on the 60 000 training images (float32 in
                 [0, 1], as fastnn.parse_mnist returns them; 19% nonzero: fastnn skips zeros)
  mnist-scaled   Pipeline(StandardScaler(), MLPClassifier((100,), max_iter=20)) on the same
                 images (no zeros left to skip)
  regression     Pipeline(StandardScaler(), MLPRegressor((100,), max_iter=20)) on
                 sklearn.datasets.make_friedman1 (50 000 train / 10 000 test rows, 20 features)

Prints a markdown table: test accuracy (classifiers) or R² (regressor), fit time of each and
the speed-up. The fits run one after the other in this process, on the same threads (fastnn:
all its threads; scikit-learn: NumPy's BLAS with its default threads). OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE, which slow OpenBLAS down, are removed from this process's environment before
NumPy loads (the script re-executes itself without them). It uses the installed fastnn (with
its compiled core), never the source tree.
"""
import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

_SLOWING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
if any(name in os.environ for name in _SLOWING) and not os.environ.get("_FASTNN_COMPARE_CLEAN_ENV"):
    _env = {k: v for k, v in os.environ.items() if k not in _SLOWING}
    _env["_FASTNN_COMPARE_CLEAN_ENV"] = "1"
    os.execve(sys.executable, [sys.executable] + sys.argv, _env)

import numpy as np  # noqa: E402

import fastnn  # noqa: E402   (the installed package: run `pip install .` first)

CASES = ("mnist-raw", "mnist-scaled", "regression")


def load_mnist(root):
    root = Path(root)
    if (root / "mnist").is_dir():
        root = root / "mnist"
    X, y = fastnn.parse_mnist(str(root / "train-images-idx3-ubyte.gz"), str(root / "train-labels-idx1-ubyte.gz"))
    Xt, yt = fastnn.parse_mnist(str(root / "t10k-images-idx3-ubyte.gz"), str(root / "t10k-labels-idx1-ubyte.gz"))
    return X, y, Xt, yt


def load_regression():
    from sklearn.datasets import make_friedman1
    X, y = make_friedman1(n_samples=60000, n_features=20, noise=0.5, random_state=0)
    return X[:50000], y[:50000], X[50000:], y[50000:]


def make_estimator(library, case, max_iter):
    """The case's estimator from `library` ('fastnn' or 'sklearn')."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    if library == "fastnn":
        from fastnn.estimators import MLPClassifier, MLPRegressor
    else:
        from sklearn.neural_network import MLPClassifier, MLPRegressor
    Est = MLPRegressor if case == "regression" else MLPClassifier
    est = Est(hidden_layer_sizes=(100,), max_iter=max_iter, random_state=0)
    return est if case == "mnist-raw" else make_pipeline(StandardScaler(), est)


def timed_fit(make, X, y, Xt, yt, repeat):
    """(test score, fastest fit time of `repeat`) of the estimators `make()` returns."""
    best, est = None, None
    for _ in range(repeat):
        est = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the ConvergenceWarning at max_iter, expected for both
            t0 = time.perf_counter()
            est.fit(X, y)
            dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return est.score(Xt, yt), best


def describe_machine():
    info = fastnn.build_info()
    cpu = info.get("cpu") or platform.processor() or "?"
    print(f"fastnn backend={fastnn.get_backend()} threads={fastnn.get_num_threads()} "
          f"simd={info.get('simd_active', '?')}; cpu: {cpu}")
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} threads)"
                for p in threadpool_info() if p.get("user_api") == "blas"]
        print("NumPy's BLAS:", "; ".join(blas) or "none found")
    except ImportError:
        print("NumPy's BLAS: (install threadpoolctl to see which kernel runs)")


def limit_threads(n):
    """n threads for fastnn's core and for NumPy's BLAS (for this whole process)."""
    fastnn.set_num_threads(n)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        sys.exit("--threads needs threadpoolctl (pip install threadpoolctl) to limit NumPy's BLAS")
    threadpool_limits(limits=n, user_api="blas")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("FASTNN_DATA"), help="MNIST directory (default $FASTNN_DATA)")
    ap.add_argument("--max-iter", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="fits per library; the fastest time is reported")
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated subset of {CASES}")
    ap.add_argument("--threads", type=int, default=None,
                    help="threads for both libraries: fastnn.set_num_threads and NumPy's BLAS (threadpoolctl)")
    args = ap.parse_args()
    cases = [c for c in args.cases.split(",") if c]
    if any(c not in CASES for c in cases):
        sys.exit(f"--cases: expected a subset of {CASES}, got {args.cases!r}")
    if "cpp" not in fastnn.available_backends():
        sys.exit("fastnn's compiled core is not importable: install the package (pip install .) and run "
                 "this script from any directory")
    if any(c.startswith("mnist") for c in cases) and not args.data:
        sys.exit("set FASTNN_DATA or pass --data: a directory with the four MNIST .gz files")
    import sklearn
    if args.threads is not None:
        limit_threads(args.threads)
    describe_machine()
    print(f"scikit-learn {sklearn.__version__}; hidden_layer_sizes=(100,), max_iter={args.max_iter}, "
          f"random_state=0; best of {args.repeat}\n")
    mnist = load_mnist(args.data) if any(c.startswith("mnist") for c in cases) else None
    print("| case | metric | fastnn | sklearn | fastnn fit (s) | sklearn fit (s) | speed-up |")
    print("|---|---|---|---|---|---|---|")
    for case in cases:
        data = load_regression() if case == "regression" else mnist
        scores, times = {}, {}
        for library in ("fastnn", "sklearn"):
            scores[library], times[library] = timed_fit(lambda: make_estimator(library, case, args.max_iter),
                                                        *data, args.repeat)
        metric = "R²" if case == "regression" else "accuracy"
        print(f"| {case} | {metric} | {scores['fastnn']:.4f} | {scores['sklearn']:.4f} | {times['fastnn']:.2f} | "
              f"{times['sklearn']:.2f} | {times['sklearn'] / times['fastnn']:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
