"""Numerical gradient checking by central finite differences.

    ∂f/∂θ_j ≈ (f(θ + ε e_j) − f(θ − ε e_j)) / 2ε        (error O(ε²))

compared with the analytic gradient a through the relative error of each parameter,

    err = max_j |a_j − n_j| / max(max_j |a_j|, max_j |n_j|, floor)

(an element-wise ratio would be dominated by entries near zero, where the estimate's rounding
error, about 1e-16·|f|/ε, exceeds the entry itself). Use float64 parameters: in float32 the
differences drown in rounding error.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ._typing import ArrayLike, FloatArray


class GradcheckError(AssertionError):
    """The analytic gradient disagrees with the finite-difference estimate."""


def numerical_gradient(loss: Callable[[], float], params: Sequence[FloatArray], index: int,
                       eps: float = 1e-6) -> FloatArray:
    """Central-difference estimate of ∂loss/∂params[index], perturbing it in place and restoring it."""
    P = params[index]
    grad = np.zeros_like(P, dtype=np.float64)
    flat = P.reshape(-1)           # a view: P must be contiguous
    if not np.shares_memory(flat, P):
        raise ValueError(f"params[{index}]: expected a contiguous array to perturb in place")
    for j in range(flat.size):
        saved = flat[j]
        flat[j] = saved + eps
        up = loss()
        flat[j] = saved - eps
        down = loss()
        flat[j] = saved
        grad.reshape(-1)[j] = (up - down) / (2 * eps)
    return grad


def gradcheck(f: Callable[[list[FloatArray]], tuple[float, Sequence[ArrayLike]]], params: Sequence[FloatArray],
              eps: float = 1e-6, tol: float = 1e-6, floor: float = 1e-8, raise_on_failure: bool = True) -> list[float]:
    """Check analytic gradients against central finite differences.

    Args:
        f: callable `f(params) -> (loss, grads)`, `grads` a list shaped like `params`.
        params: list of float arrays; each is perturbed in place and restored.
        eps: finite-difference step.
        tol: largest relative error accepted for every parameter.
        floor: smallest denominator of the relative error (guards all-zero gradients).
    Returns:
        list with the largest relative error of each parameter.
    Raises:
        GradcheckError if some parameter's largest relative error exceeds `tol`
        (unless raise_on_failure=False).
    """
    params = list(params)
    _, analytic = f(params)
    if len(analytic) != len(params):
        raise ValueError(f"f: returned {len(analytic)} gradients for {len(params)} parameters")

    def loss():
        return float(f(params)[0])

    errors = []
    for i, (P, G) in enumerate(zip(params, analytic)):
        G = np.asarray(G, dtype=np.float64)
        if G.shape != P.shape:
            raise ValueError(f"f: gradient {i} has shape {G.shape}, parameter has shape {P.shape}")
        N = numerical_gradient(loss, params, i, eps)
        scale = max(float(np.max(np.abs(G))), float(np.max(np.abs(N))), floor)
        errors.append(float(np.max(np.abs(G - N))) / scale)
    worst = max(errors)
    if raise_on_failure and worst > tol:
        detail = ", ".join(f"params[{i}]: {e:.3g}" for i, e in enumerate(errors))
        raise GradcheckError(f"gradient check failed: largest relative error {worst:.3g} > tol {tol:g} ({detail})")
    return errors
