"""How long fastnn's OpenMP threads spin at a barrier before they sleep, set before the compiled
core loads GNU OpenMP (libgomp reads its environment once, when it is loaded).

Left alone, a libgomp thread that waits at a barrier spins 300,000 times (`pause` each: about
10-40 ms, by CPU) before it sleeps. On a host where another process is busy, the thread it waits
for is often descheduled, and the spinner holds the CPU that thread could have run on: a 0.35 s
h=400 epoch on 2 threads took 0.8-26 s beside one CPU hog. A short spin keeps the idle-host speed
(the waits inside an epoch are microseconds) and hands the CPU back within a fraction of a
millisecond when the partner is not running; the C++ core's BusyHostWatch then drops to one
thread while the host stays busy (docs/threads.md has both, with the measurements).

Only when the user set neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT, and only while the core loads:
the variable is removed again afterwards, so other libraries loaded later and child processes see
the environment as the user left it. Where libgomp was already loaded by another module, its
setting stands (libgomp has no call to change it later)."""
import os

SPIN_COUNT = "2000"   # GOMP_SPINCOUNT: `pause` iterations before a waiting thread sleeps


def load_core():
    """Import fastnn._core with the short spin; returns the module, or raises its ImportError."""
    ours = "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ
    if ours:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
    try:
        from . import _core
    finally:
        if ours:
            os.environ.pop("GOMP_SPINCOUNT", None)
    return _core
