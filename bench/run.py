#!/usr/bin/env python3
"""Run fastnn's benchmark harness (fastnn.benchmark): fastnn-cpp vs NumPy vs PyTorch.

    python bench/run.py                 # full run (~5 min on 2 cores): markdown to stdout,
                                        # .md + .json in bench/results/
    python bench/run.py --quick         # ~1.5 min
    python bench/run.py --threads 1,2 --rounds 7 --epochs-only
    python bench/run.py --help

MNIST comes from $FASTNN_DATA (or --data DIR). To benchmark an in-tree build rather than the
installed package, run with PYTHONPATH=src.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import fastnn.benchmark as benchmark
except ImportError:   # not installed: use the source tree beside this script
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
    import fastnn.benchmark as benchmark

if __name__ == "__main__":
    argv = sys.argv[1:]
    if not any(a == "--out" or a.startswith("--out=") for a in argv):
        argv += ["--out", os.path.join(HERE, "results")]
    raise SystemExit(benchmark.main(argv))
