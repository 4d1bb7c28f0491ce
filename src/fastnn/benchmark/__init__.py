"""The benchmark harness: fastnn-cpp against fastnn-numpy (NumPy + its BLAS) and PyTorch.

    python bench/run.py [--quick] [--threads 1,2] [--rounds N] [--epochs-only | --gemm-only]
    python -m fastnn.benchmark [--quick] ...          (also `fastnn bench`)

Workloads
  * SGEMM (float32): squares 256³ … 2048³ and the products of one training step at batch 100
    (X·W1, Xᵀ·G1, Z1·W2, G2·W2ᵀ of the h=400 net; X·Θ, Xᵀ·dZ of softmax regression).
  * Epochs on MNIST (60000×784 float32, batch 100, lr 0.1): softmax regression, 2-layer h=100,
    2-layer h=400 — through the public API (`softmax_regression_epoch`, `nn_epoch`) — on raw X
    and on centred X (minus its column means: dense, no zeros to skip).

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

Nothing here asserts speed: the targets of issues 5 and 20 are evaluated and reported (met / not
met); `--check` turns issue 5's (or those of the issues it names) into the exit status.

Modules
  workloads  what is measured, and which contender runs on what
  processes  the worker processes (one per engine and thread count) and the machine's load
  jobs       inside a worker: the timed GEMM and epoch jobs of each engine
  machine    probes (FMA peak, read bandwidth), floors, CPU and BLAS description
  timing     the interleaved rounds, retries of contended samples, the scaling runs
  targets    issue 5's and issue 20's targets, and the check that every contender agrees with NumPy
  report     the markdown table and the JSON file
  run, cli   one run from start to results; the command line
"""
from .cli import build_parser, main
from .jobs import worker_main
from .machine import ISA_ORDER, floor_seconds, machine_cpus, machine_info, run_probes
from .processes import Worker, _worker_env, busy_cores  # noqa: F401  (_worker_env, _measure_scaling, _runs: for tests)
from .report import TABLE_HEADER, TARGETS_HEADER, render_markdown
from .run import SCHEMA, TORCH_HINT, run_benchmark
from .targets import CHECKED_ISSUES, evaluate_targets, failed_targets
from .timing import _measure_scaling
from .workloads import (DENSE_ONLY, DENSE_SCALING_WORKLOAD, EPOCH_CONTENDERS, GEMM_CONTENDERS, INPUTS, MNIST_FILES,
                        PIXELS_ONLY, SCALING_THREADS, SCALING_WORKLOAD, TRAINING_GEMMS, _runs, centre_columns,
                        epoch_flops, epoch_workload, epoch_workloads, gemm_workload, square_gemm)

__all__ = ["main", "build_parser", "run_benchmark", "render_markdown", "evaluate_targets", "failed_targets",
           "CHECKED_ISSUES", "INPUTS", "centre_columns", "epoch_workloads", "DENSE_SCALING_WORKLOAD", "run_probes",
           "floor_seconds", "machine_info", "machine_cpus", "busy_cores", "Worker", "worker_main",
           "gemm_workload", "epoch_workload", "epoch_flops", "square_gemm", "TRAINING_GEMMS", "ISA_ORDER",
           "GEMM_CONTENDERS", "EPOCH_CONTENDERS", "DENSE_ONLY", "PIXELS_ONLY", "MNIST_FILES",
           "SCALING_WORKLOAD", "SCALING_THREADS", "SCHEMA", "TORCH_HINT", "TABLE_HEADER", "TARGETS_HEADER"]
