"""The whole-data objective of a net with biases, for the estimators' 'lbfgs' solver and for
the activations other than ReLU: forward pass, loss and gradient, in NumPy (scikit-learn's
_forward_pass and _backprop). X may be a dense array or a scipy.sparse matrix (its products
are scipy's).

    H_0 = X,  H_i = act(H_{i-1} W_i + b_i)  (0 < i < L),  Z = H_{L-1} W_L + b_L
    loss = Σ_r w_r loss_r / S + (α / 2S) Σ_i ‖W_i‖²    (S = Σ_r w_r; w_r = 1 without weights)
    G_L = (w_r / S) ∂loss_r/∂Z_r,   G_i = (G_{i+1} W_{i+1}ᵀ) ∘ act'(H_i)
    ∇W_i = H_{i-1}ᵀ G_i + (α / S) W_i,   ∇b_i = Σ_rows G_i

loss_r and ∂loss_r/∂Z_r are numpy_backend._output_loss's (clipped cross-entropy against labels,
or squared error against values).
"""
import numpy as np

from .numpy_backend import _output_loss as output_loss   # the train_epoch row losses

ACTIVATIONS = ("identity", "logistic", "tanh", "relu")


def _activate(Z, activation):
    """act(Z) in place: identity, logistic 1 / (1 + e^−z), tanh, or ReLU max(z, 0)."""
    if activation == "logistic":
        np.negative(Z, out=Z)
        np.exp(Z, out=Z)
        Z += 1
        np.reciprocal(Z, out=Z)
    elif activation == "tanh":
        np.tanh(Z, out=Z)
    elif activation == "relu":
        np.maximum(Z, 0, out=Z)
    return Z


def _derivative(H, activation):
    """act'(z) expressed through h = act(z): 1, h (1 − h), 1 − h², 1{h > 0}."""
    if activation == "logistic":
        return H * (1 - H)
    if activation == "tanh":
        return 1 - H * H
    if activation == "relu":
        return (H > 0).astype(H.dtype)
    return None   # identity: no factor


def forward(X, coefs, intercepts, activation):
    """[H_1, …, H_{L−1}, Z] of the net for every row of X (Z: the outputs, before any softmax)."""
    H, out = X, []
    for i, (W, b) in enumerate(zip(coefs, intercepts)):
        Z = np.asarray(H @ W)
        Z += b
        if i < len(coefs) - 1:
            _activate(Z, activation)
        out.append(Z)
        H = Z
    return out


def loss_and_gradient(X, y, coefs, intercepts, alpha, activation, loss, sample_weight=None):
    """(loss, [∇W_1, …, ∇W_L], [∇b_1, …, ∇b_L]) over all rows of X, as in the module docstring."""
    H = [X] + forward(X, coefs, intercepts, activation)
    weighted_loss, S, G = output_loss(H[-1], y, sample_weight, loss)
    per_weight = 1.0 / S if S > 0 else 0.0
    squares = sum(float(np.dot(W.ravel(), W.ravel())) for W in coefs)
    value = (weighted_loss + 0.5 * alpha * squares) * per_weight
    grads_W, grads_b = [None] * len(coefs), [None] * len(coefs)
    for i in reversed(range(len(coefs))):
        grads_W[i] = np.asarray(H[i].T @ G) + (alpha * per_weight) * coefs[i]
        grads_b[i] = G.sum(axis=0)
        if i > 0:
            G = G @ coefs[i].T
            factor = _derivative(H[i], activation)
            if factor is not None:
                G *= factor
    return value, grads_W, grads_b
