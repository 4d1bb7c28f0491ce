"""Optimizer state for `fastnn.train_epoch`: plain SGD, SGD with (Nesterov) momentum, and Adam,
with scikit-learn's update rules (sklearn/neural_network/_stochastic_optimizers.py):

    SGD:   v ← μ v − η g;   p ← p + v   (nesterov: p ← p + μ v − η g);   μ = 0: p ← p − η g
    Adam:  m ← β1 m + (1 − β1) g;  v ← β2 v + (1 − β2) g²;  t ← t + 1
           p ← p − η √(1 − β2^t) / (1 − β1^t) · m / (√v + ε)

An optimizer object holds its per-parameter buffers (created, as zeros shaped like each
parameter, on the first `train_epoch` call) and Adam's step counter `t` (one step per batch).
Keep one object per set of parameters and pass it to every epoch. Both backends read and update
the same buffers in place, so an optimizer can even move between backends.

The buffers are ordered like the parameters: W_1 … W_L, then b_1 … b_L (None for an absent bias).
"""
from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from ._typing import FloatArray

    Buffers = Optional[list[Optional[FloatArray]]]   # one entry per parameter, None where it is absent


def _real(value, name, low, high, low_open=False, high_open=False):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    ok = math.isfinite(value) and (value > low if low_open else value >= low) and \
        (value < high if high_open else value <= high)
    if not ok:
        lo, hi = "(" if low_open else "[", ")" if high_open else "]"
        raise ValueError(f"{name}: expected a number in {lo}{low}, {high}{hi}, got {value}")
    return value


class _Optimizer:
    kind: Optional[str] = None   # "sgd" or "adam" in the subclasses

    def _buffer_lists(self):
        raise NotImplementedError

    def _allocate(self, weights, biases):
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the buffers (and Adam's step count): the next epoch starts afresh."""
        raise NotImplementedError

    def _check_settings(self):
        """The hyper-parameters and counters are plain attributes: check them again before each
        epoch, so that a value set after construction is refused like one passed to __init__."""
        raise NotImplementedError

    def _ensure_state(self, weights, biases):
        """Create the buffers on first use; afterwards check that they still fit the parameters."""
        self._check_settings()
        params = list(weights) + list(biases)
        lists = self._buffer_lists()
        if lists is None:
            self._allocate(weights, biases)
            return
        for buffers, list_name in lists:
            if len(buffers) != len(params):
                raise ValueError(f"optimizer: its state holds {len(buffers)} {list_name} buffers, but the "
                                 f"network has {len(params)} parameter slots; call optimizer.reset() "
                                 f"or use a new optimizer for a different network")
            for j, (buf, p) in enumerate(zip(buffers, params)):
                if buf is not None and not isinstance(buf, np.ndarray):
                    raise TypeError(f"optimizer: {list_name}[{j}] is a {type(buf).__name__}, expected a "
                                    f"numpy.ndarray or None; call optimizer.reset()")
                if buf is not None and not buf.flags.writeable:
                    raise ValueError(f"optimizer: {list_name}[{j}] is read-only (it is updated in place); "
                                     f"call optimizer.reset()")
                if (buf is None) != (p is None) or (p is not None and (buf.shape != p.shape or buf.dtype != p.dtype)):
                    got = None if buf is None else f"{buf.dtype} {buf.shape}"
                    want = None if p is None else f"{p.dtype} {p.shape}"
                    raise ValueError(f"optimizer: {list_name}[{j}] is {got} but its parameter is {want}; "
                                     f"call optimizer.reset() or use a new optimizer")


def _check_bool(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected a bool, got {type(value).__name__}")
    return bool(value)


def _check_step_count(t, name="t"):
    if isinstance(t, (bool, np.bool_)) or not isinstance(t, numbers.Integral):
        raise TypeError(f"{name}: expected an integer step count, got {type(t).__name__}")
    if not 0 <= t < 2**62:
        raise ValueError(f"{name}: expected an integer step count >= 0, got {t}")
    return int(t)


def _zeros_like_all(params):
    return [None if p is None else np.zeros(p.shape, dtype=p.dtype) for p in params]


class SGD(_Optimizer):
    """Minibatch SGD; with `momentum` > 0, classical or (nesterov=True) Nesterov momentum."""
    kind = "sgd"

    def __init__(self, momentum: float = 0.0, nesterov: bool = False) -> None:
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)
        self.nesterov = _check_bool(nesterov, "nesterov")
        self.velocities = None

    def _check_settings(self):
        self.momentum = _real(self.momentum, "momentum", 0.0, 1.0)
        self.nesterov = _check_bool(self.nesterov, "nesterov")

    def _buffer_lists(self):
        if self.momentum == 0.0:
            return []          # plain SGD: no state
        return None if self.velocities is None else [(self.velocities, "velocities")]

    def _allocate(self, weights, biases):
        self.velocities = _zeros_like_all(list(weights) + list(biases))

    def reset(self) -> None:
        self.velocities = None

    def buffers(self) -> tuple[Buffers, Buffers]:
        """(first, second): the velocities (None entries for plain SGD) and no second list."""
        return self.velocities, None

    def __repr__(self) -> str:
        return f"SGD(momentum={self.momentum}, nesterov={self.nesterov})"


class Adam(_Optimizer):
    """Adam (Kingma & Ba), with scikit-learn's defaults."""
    kind = "adam"

    def __init__(self, beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-8) -> None:
        self.beta_1 = _real(beta_1, "beta_1", 0.0, 1.0, high_open=True)
        self.beta_2 = _real(beta_2, "beta_2", 0.0, 1.0, high_open=True)
        self.epsilon = _real(epsilon, "epsilon", 0.0, math.inf, low_open=True, high_open=True)
        self.t = 0
        self.ms = None
        self.vs = None

    def _check_settings(self):
        self.beta_1 = _real(self.beta_1, "beta_1", 0.0, 1.0, high_open=True)
        self.beta_2 = _real(self.beta_2, "beta_2", 0.0, 1.0, high_open=True)
        self.epsilon = _real(self.epsilon, "epsilon", 0.0, math.inf, low_open=True, high_open=True)
        self.t = _check_step_count(self.t)
        if (self.ms is None) != (self.vs is None):
            raise ValueError("optimizer: ms and vs must both be set or both be None; call optimizer.reset()")

    def _buffer_lists(self):
        return None if self.ms is None else [(self.ms, "ms"), (self.vs, "vs")]

    def _allocate(self, weights, biases):
        params = list(weights) + list(biases)
        self.ms, self.vs = _zeros_like_all(params), _zeros_like_all(params)

    def reset(self) -> None:
        self.t, self.ms, self.vs = 0, None, None

    def buffers(self) -> tuple[Buffers, Buffers]:
        return self.ms, self.vs

    def __repr__(self) -> str:
        return f"Adam(beta_1={self.beta_1}, beta_2={self.beta_2}, epsilon={self.epsilon}, t={self.t})"
