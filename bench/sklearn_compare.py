"""fastnn.estimators.MLPClassifier against scikit-learn's MLPClassifier on MNIST, in one run.

    FASTNN_DATA=/path/to/mnist python bench/sklearn_compare.py [--max-iter 20] [--repeat 1]

Both fit `MLPClassifier(hidden_layer_sizes=(100,), max_iter=20, random_state=0)` with every
other setting at its default (Adam, lr 0.001, batch 200, alpha 1e-4, shuffling) on the 60 000
training images (float32 in [0, 1], as fastnn.parse_mnist returns them) and are scored on the
10 000 test images. Prints accuracy and fit time of each, and the speed-up. The fits run one
after the other in this process, on the same threads (fastnn: all its threads; scikit-learn:
NumPy's BLAS with its default threads). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE, which slow
OpenBLAS down, are removed from this process's environment before NumPy loads (the script
re-executes itself without them), and the BLAS that ran is printed (threadpoolctl, when
installed).
"""
import argparse
import os
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import fastnn  # noqa: E402
from fastnn.estimators import MLPClassifier as FastMLP  # noqa: E402


def load(root):
    root = Path(root)
    if (root / "mnist").is_dir():
        root = root / "mnist"
    X, y = fastnn.parse_mnist(str(root / "train-images-idx3-ubyte.gz"), str(root / "train-labels-idx1-ubyte.gz"))
    Xt, yt = fastnn.parse_mnist(str(root / "t10k-images-idx3-ubyte.gz"), str(root / "t10k-labels-idx1-ubyte.gz"))
    return X, y, Xt, yt


def timed_fit(make, X, y, Xt, yt, repeat):
    best, clf = None, None
    for _ in range(repeat):
        clf = make()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # the ConvergenceWarning at max_iter, expected for both
            t0 = time.perf_counter()
            clf.fit(X, y)
            dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return clf.score(Xt, yt), best, clf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("FASTNN_DATA"), help="MNIST directory (default $FASTNN_DATA)")
    ap.add_argument("--max-iter", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=1, help="fits per library; the fastest time is reported")
    ap.add_argument("--skip-sklearn", action="store_true")
    args = ap.parse_args()
    if not args.data:
        sys.exit("set FASTNN_DATA or pass --data: a directory with the four MNIST .gz files")
    X, y, Xt, yt = load(args.data)
    call = f"MLPClassifier(hidden_layer_sizes=(100,), max_iter={args.max_iter}, random_state=0)"
    info = fastnn.build_info()
    print(f"MNIST {X.shape[0]} train / {Xt.shape[0]} test, {X.dtype}; {call}")
    print(f"fastnn backend={fastnn.get_backend()} threads={fastnn.get_num_threads()} "
          f"simd={info.get('simd_active', '?')}; cpu: {info.get('cpu', '?')}")
    try:
        from threadpoolctl import threadpool_info
        blas = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')}, {p.get('num_threads')} threads)"
                for p in threadpool_info() if p.get("user_api") == "blas"]
        print("NumPy's BLAS:", "; ".join(blas) or "none found")
    except ImportError:
        print("NumPy's BLAS: (install threadpoolctl to see which kernel runs)")

    acc_f, t_f, clf = timed_fit(lambda: FastMLP(hidden_layer_sizes=(100,), max_iter=args.max_iter, random_state=0),
                                X, y, Xt, yt, args.repeat)
    print(f"fastnn  : accuracy {acc_f:.4f}  fit {t_f:7.2f} s  ({clf.n_iter_} epochs, final loss {clf.loss_:.4f})")
    if args.skip_sklearn:
        return
    import sklearn
    from sklearn.neural_network import MLPClassifier as SkMLP
    acc_s, t_s, sk = timed_fit(lambda: SkMLP(hidden_layer_sizes=(100,), max_iter=args.max_iter, random_state=0),
                               X, y, Xt, yt, args.repeat)
    print(f"sklearn : accuracy {acc_s:.4f}  fit {t_s:7.2f} s  ({sk.n_iter_} epochs, final loss {sk.loss_:.4f}; "
          f"scikit-learn {sklearn.__version__})")
    print(f"accuracy difference (fastnn − sklearn): {acc_f - acc_s:+.4f}; speed-up: {t_s / t_f:.1f}x")


if __name__ == "__main__":
    main()
