"""The backend switch: which implementation ("numpy" or "cpp") computes the public API.

    set_backend("cpp")            # process-wide
    with use_backend("numpy"):    # this thread only, restored on exit
        ...
    FASTNN_BACKEND=numpy python train.py   # the environment wins over the built-in default

The default is "cpp" when the compiled extension imports, else "numpy".
"""
from __future__ import annotations

import contextlib
import importlib
import os
import threading
from types import ModuleType
from typing import Iterator, Optional

# name -> module implementing every function of numpy_backend
_MODULES = {"numpy": "fastnn.numpy_backend", "cpp": "fastnn.cpp_backend"}
_loaded: dict[str, ModuleType] = {}
_load_errors: dict[str, ImportError] = {}
_thread_local = threading.local()


def _load(name):
    if name not in _loaded and name not in _load_errors:
        try:
            _loaded[name] = importlib.import_module(_MODULES[name])
        except ImportError as exc:
            _load_errors[name] = exc
    return _loaded.get(name)


def available_backends() -> list[str]:
    """Names of the backends that can be used on this installation."""
    return [name for name in _MODULES if _load(name) is not None]


def _checked(name):
    if not isinstance(name, str) or name not in _MODULES:
        raise ValueError(f"backend: expected one of {available_backends()}, got {name!r}")
    if _load(name) is None:
        raise ValueError(f"backend: {name!r} is not available on this installation "
                         f"({_load_errors[name]}); available: {available_backends()}")
    return name


def _default_backend():
    env = os.environ.get("FASTNN_BACKEND")
    if env:
        try:
            return _checked(env.strip().lower())
        except ValueError as exc:
            raise ValueError(f"FASTNN_BACKEND={env!r}: {exc}") from None
    return "cpp" if _load("cpp") is not None else "numpy"


_global_name = None


def set_backend(name: str) -> None:
    """Select the backend for the whole process: "numpy" or "cpp"."""
    global _global_name
    _global_name = _checked(name)


def get_backend() -> str:
    """The name of the backend in effect for the calling thread."""
    global _global_name
    stack = getattr(_thread_local, "stack", None)
    if stack:
        return stack[-1]
    if _global_name is None:
        _global_name = _default_backend()
    return _global_name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Use backend `name` in this thread for the duration of the `with` block."""
    name = _checked(name)
    stack = _thread_local.__dict__.setdefault("stack", [])
    stack.append(name)
    try:
        yield name
    finally:
        stack.pop()


def backend_module(name: Optional[str] = None) -> ModuleType:
    """The module that implements the API for `name` (default: the current backend)."""
    return _load(_checked(name) if name is not None else get_backend())
