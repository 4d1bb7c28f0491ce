"""fastnn's controller for threadpoolctl, so that ``threadpool_limits(n)`` — and with it joblib's
inner limits, dask's and ray's workers — caps fastnn's threads inside the block and restores them
after, and ``threadpool_info()`` lists fastnn.

threadpoolctl finds libraries among the shared objects this process has loaded, by file-name
prefix, and keeps those that export the controller's ``check_symbols``: the compiled core
``_core.*.so`` exports ``fastnn_threadpool_get_num_threads`` / ``..._set_num_threads``
(src/cpp/threads.cpp), plain C functions that read and change the same setting as
``fastnn.get_num_threads`` / ``fastnn.set_num_threads``."""
try:
    import threadpoolctl
except ImportError:   # threadpoolctl is optional: without it there is nothing to register
    threadpoolctl = None


def _controller_class():
    class FastnnController(threadpoolctl.LibController):
        user_api = "openmp"        # fastnn's threads are OpenMP threads: limits on "openmp" apply
        internal_api = "fastnn"
        filename_prefixes = ("_core",)
        check_symbols = ("fastnn_threadpool_get_num_threads", "fastnn_threadpool_set_num_threads")

        def get_num_threads(self):
            get = getattr(self.dynlib, "fastnn_threadpool_get_num_threads", None)
            return get() if get is not None else None

        def set_num_threads(self, num_threads):
            set_ = getattr(self.dynlib, "fastnn_threadpool_set_num_threads", None)
            if set_ is not None:
                set_(int(num_threads))

        def get_version(self):
            from . import __version__
            return __version__

    return FastnnController


_registered = False


def register():
    """Register the controller, once; False where threadpoolctl is missing or older than 3.2
    (no ``register``)."""
    global _registered
    if not _registered and threadpoolctl is not None and hasattr(threadpoolctl, "register"):
        threadpoolctl.register(_controller_class())
        _registered = True
    return _registered
