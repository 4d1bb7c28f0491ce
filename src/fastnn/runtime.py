"""How the C++ core was built and how it runs: build_info(), thread count."""
from __future__ import annotations

import os
from typing import Any

from ._openmp_env import load_core

try:
    _core = load_core()   # the first import of the core, with OpenMP's short barrier spin
except ImportError as exc:   # the NumPy backend still works without the extension
    _core = None
    _core_import_error = exc


def _require_core(what):
    if _core is None:
        raise RuntimeError(f"{what}: the compiled extension fastnn._core is not available "
                           f"({_core_import_error}); reinstall with `pip install .`")
    return _core


def build_info() -> dict[str, Any]:
    """How the C++ core was built and what it runs with, like numpy.show_config():
    version, compiler, flags, SIMD level detected and in use, OpenMP, threads."""
    return dict(_require_core("build_info").build_info())


def set_num_threads(n: int | None) -> None:
    """Threads used inside each batch by the C++ core (GEMM blocks, row-wise softmax); batches
    stay sequential, so SGD semantics and results do not change with it.

    ``n`` >= 1 fixes the count; ``None`` drops the setting, so that the core follows the host
    again: the smaller of the CPUs this process may run on and ``OMP_NUM_THREADS`` (see
    docs/threads.md). ``threadpoolctl.threadpool_limits`` changes the same setting for the
    duration of its block."""
    import numbers
    core = _require_core("set_num_threads")
    if n is None:
        core.reset_num_threads()
        return
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an integer >= 1 or None, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1 or None, got {n}")
    core.set_num_threads(int(n))


def get_num_threads() -> int:
    """Threads the C++ core uses: set_num_threads's setting if any, else the host's — the smaller
    of the CPUs this process may run on and OMP_NUM_THREADS; 1 in a child forked after the core
    ran threads (GNU OpenMP's pool does not survive fork)."""
    return _require_core("get_num_threads").get_num_threads()


def _warn_if_forked_after_threads() -> None:
    # os.register_at_fork's child hook (the C++ core's pthread_atfork handler has already run).
    if _core is not None and _core.forked_after_threads():
        import warnings
        warnings.warn("fastnn: this process was forked after fastnn ran multi-threaded work; GNU "
                      "OpenMP's threads do not survive fork, so fastnn runs single-threaded here "
                      "(same results). Use the 'spawn' or 'forkserver' start method for threaded "
                      "workers (docs/threads.md).", RuntimeWarning, stacklevel=2)


if _core is not None and hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_warn_if_forked_after_threads)


# Skipping X's zeros in the first layer (C++ backend). When the rows an epoch visits first are
# at most SKIP_ZEROS_MAX_DENSITY nonzero, a dense X's epoch of a net with a hidden layer compacts
# each batch to CSR and runs the first layer's two products (X_b W_1 and X_bᵀ G_1) over the
# nonzeros only: on MNIST (19% nonzero) that is 5× fewer multiply-adds in those products. The
# result equals the dense kernels' up to rounding. Measured crossover on MNIST-shaped data
# (784 inputs, h = 100 and 400, batch 100): about a third nonzero, hence the margin.
SKIP_ZEROS_MAX_DENSITY = 0.25
SKIP_ZEROS_SAMPLE_ROWS = 1024   # rows sampled (the first the epoch visits) to estimate the density
# Larger batches run the dense GEMMs: a batch's CSR copy, its sorted lists and G_1 then outgrow
# the caches, and the dense kernels' blocking does not. Intel Xeon family 6 model 207, 1 thread,
# raw MNIST, zero-skipping / dense epoch time: h = 100 0.82 (batch 1000), 0.88 (4000), 1.47 (8000),
# 2.81 (60000); h = 400 0.64, 0.69, 1.02, 1.88.
SKIP_ZEROS_MAX_BATCH = 4096
_skip_zeros = True


def set_skip_zeros(enabled: bool) -> None:
    """Whether the C++ backend's epochs may skip the zeros of a mostly-zero dense X in the first
    layer (default True; see docs/input-formats.md, "Skipping zeros"). False always runs the dense GEMMs."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected True or False, got {type(enabled).__name__}")
    global _skip_zeros
    _skip_zeros = enabled


def get_skip_zeros() -> bool:
    """The setting of set_skip_zeros."""
    return _skip_zeros


def set_flush_subnormals(enabled: bool) -> None:
    """Whether the C++ core computes with subnormal numbers as zero (default True).

    A subnormal is a number below 1.2e-38 in magnitude in float32 (2.2e-308 in float64). A
    saturated softmax makes them in its gradient (an X not scaled to [0, 1], large weights, a
    high learning rate), and on Intel CPUs each operation on one costs a slow microcode assist:
    an epoch then takes up to 10 times as long (bench/subnormals.py). With True, each call into the core sets the CPU's
    flush-to-zero and denormals-are-zero modes (MXCSR's FTZ and DAZ) on its threads, and gives
    them their own modes back when it returns, as TensorFlow does on CPUs. Only values below
    those bounds change, to zero. False computes as IEEE 754 says, in the caller's own mode, as the
    NumPy backend does. See docs/reliability.md, "Subnormal numbers"."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled: expected True or False, got {type(enabled).__name__}")
    _require_core("set_flush_subnormals").set_flush_subnormals(enabled)


def get_flush_subnormals() -> bool:
    """The setting of set_flush_subnormals (False where the CPU has no such mode: not x86)."""
    return _require_core("get_flush_subnormals").get_flush_subnormals()
