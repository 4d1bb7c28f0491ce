"""How the C++ core was built and how it runs: build_info(), thread count."""
try:
    from . import _core
except ImportError as exc:   # the NumPy backend still works without the extension
    _core = None
    _core_import_error = exc


def _require_core(what):
    if _core is None:
        raise RuntimeError(f"{what}: the compiled extension fastnn._core is not available "
                           f"({_core_import_error}); reinstall with `pip install .`")
    return _core


def build_info():
    """How the C++ core was built and what it runs with, like numpy.show_config():
    version, compiler, flags, SIMD level detected and in use, OpenMP, threads."""
    return dict(_require_core("build_info").build_info())


def set_num_threads(n):
    """Threads used inside each batch by the C++ core (GEMM blocks, row-wise softmax).
    Batches stay sequential, so SGD semantics do not change."""
    import numbers
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n: expected an integer, got {type(n).__name__}")
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1, got {n}")
    _require_core("set_num_threads").set_num_threads(int(n))


def get_num_threads():
    """Threads the C++ core uses (default: the CPUs this process may run on)."""
    return _require_core("get_num_threads").get_num_threads()
