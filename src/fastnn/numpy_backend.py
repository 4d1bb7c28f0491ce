"""The NumPy reference backend: the math of softmax regression and ReLU MLPs, written to be read.

Notation (one minibatch of B rows, k classes):

    Z = X Θ                                   logits, B × k
    S = exp(Z − max Z) / Σ exp(Z − max Z)     row-wise softmax
    loss = mean_i ( logsumexp(Z_i) − Z_i,y_i ) mean cross-entropy
    ∇Z = (S − I_y) / B                        I_y: one-hot rows of the labels
    ∇Θ = Xᵀ ∇Z

An L-layer ReLU net (no biases) with weights W_1 … W_L:

    H_0 = X,  H_i = ReLU(H_{i-1} W_i)  (i < L),  Z = H_{L-1} W_L
    G_L = (S − I_y) / B,   G_{i} = (G_{i+1} W_{i+1}ᵀ) ∘ 1{H_i > 0}
    ∇W_i = H_{i-1}ᵀ G_i

Every function here is the specification that the C++ backend must reproduce. Inputs are
validated by `fastnn.api` before they arrive; parameters are updated in place in their own dtype.
"""
import math

import numpy as np

from .sparse import SparseRows


def matmul(A, B):
    """A · B."""
    return A @ B


def relu(Z):
    """ReLU(Z) = max(Z, 0), element-wise."""
    return np.maximum(Z, 0)


def _cross_entropy_rows(Z, y):
    """logsumexp(Z_i) − Z_i,y_i per row, as (m − Z_i,y_i) + log Σ exp(Z_i − m), m = max Z_i:
    stable (no overflow) and without cancelling large terms."""
    m = Z.max(axis=1)
    return (m - Z[np.arange(Z.shape[0]), y]) + np.log(np.exp(Z - m[:, None]).sum(axis=1))


def softmax_loss(Z, y):
    """Mean cross-entropy of logits Z (B × k) against labels y: mean(logsumexp(Z_i) − Z_i,y_i)."""
    return float(np.mean(_cross_entropy_rows(Z, y)))


def softmax_cross_entropy(Z, y):
    """Fused forward and gradient: (mean cross-entropy, ∇Z = (S − I_y) / B)."""
    B = Z.shape[0]
    E = np.exp(Z - Z.max(axis=1, keepdims=True))     # max-subtracted: no overflow
    S = E / E.sum(axis=1, keepdims=True)              # S = exp(Z) / Σ exp(Z), row-wise
    loss = float(np.mean(_cross_entropy_rows(Z, y)))
    S[np.arange(B), y] -= 1
    return loss, S / B


def _batches(n, batch):
    """Minibatch index ranges in data order; the last one may be shorter."""
    for start in range(0, n, batch):
        yield slice(start, min(start + batch, n))


def softmax_regression_epoch(X, y, theta, lr=0.1, batch=100):
    """One epoch of minibatch SGD for softmax regression, updating theta in place:
    Θ ← Θ − lr · Xᵀ (S − I_y) / B for each minibatch in order."""
    for b in _batches(X.shape[0], batch):
        Xb = X[b]
        _, dZ = softmax_cross_entropy(Xb @ theta, y[b])
        theta -= lr * (Xb.T @ dZ)


def nn_epoch(X, y, W1, W2, lr=0.1, batch=100):
    """One epoch of minibatch SGD for the two-layer net Z2 = ReLU(X W1) W2, in place."""
    for b in _batches(X.shape[0], batch):
        Xb = X[b]
        Z1 = relu(Xb @ W1)
        _, G2 = softmax_cross_entropy(Z1 @ W2, y[b])   # G2 = (S − I_y) / B
        G1 = (G2 @ W2.T) * (Z1 > 0)                     # G1 = 1{Z1>0} ∘ (G2 W2ᵀ)
        W1 -= lr * (Xb.T @ G1)
        W2 -= lr * (Z1.T @ G2)


def mlp_loss_grad(X, y, weights):
    """Loss and gradients [∇W_1, …, ∇W_L] of the L-layer ReLU net on one batch (X, y)."""
    H = [X]                                    # H_0 = X, H_i = ReLU(H_{i-1} W_i)
    for W in weights[:-1]:
        H.append(relu(H[-1] @ W))
    loss, G = softmax_cross_entropy(H[-1] @ weights[-1], y)   # G_L = (S − I_y) / B
    grads = [None] * len(weights)
    for i in reversed(range(len(weights))):
        grads[i] = H[i].T @ G                  # ∇W_{i+1} = H_iᵀ G_{i+1}
        if i > 0:
            G = (G @ weights[i].T) * (H[i] > 0)   # G_i = (G_{i+1} W_{i+1}ᵀ) ∘ 1{H_i > 0}
    return loss, grads


def mlp_epoch(X, y, weights, lr=0.1, batch=100):
    """One epoch of minibatch SGD for an L-layer ReLU net, updating every W_i in place."""
    for b in _batches(X.shape[0], batch):
        _, grads = mlp_loss_grad(X[b], y[b], weights)
        for W, dW in zip(weights, grads):
            W -= lr * dW


def mlp_logits(X, weights):
    """Forward pass: the logits H_{L-1} W_L for every row of X."""
    H = X
    for W in weights[:-1]:
        H = relu(H @ W)
    return H @ weights[-1]


def loss_err(h, y):
    """(mean cross-entropy, error rate) of logits h against labels y."""
    return softmax_loss(h, y), float(np.mean(h.argmax(axis=1) != y))


def evaluate(X, y, weights):
    """(loss, error rate) of the L-layer net on the whole dataset."""
    return loss_err(mlp_logits(X, weights), y)


# ---------------------------------------------------------------------------------------------
# Networks with biases, trained by SGD / momentum / Adam with an L2 penalty (the estimators'
# engine; the bias-free hw0 functions above are unchanged). With biases b_i (None: no bias):
#
#     H_0 = X,  H_i = ReLU(H_{i-1} W_i + b_i),  Z = H_{L-1} W_L + b_L
#     loss of a batch of B rows = mean CE + (α / 2B) Σ ‖W_i‖²        (sklearn's _backprop)
#     G_L = (S − I_y) / B,   G_i = (G_{i+1} W_{i+1}ᵀ) ∘ 1{H_i > 0}
#     ∇W_i = H_{i-1}ᵀ G_i + (α / B) W_i,   ∇b_i = Σ_rows G_i
#
# The output loss (`_output_loss`) is the cross-entropy above with sklearn's clipping, or the
# regressor's squared error ½ ‖z − y‖² / k; with sample weights w_r, B becomes S = Σ_rows w_r
# and each row's loss and G_L row are weighted by w_r.
#
# followed, after every batch, by the optimizer's update of every parameter (fastnn.optimizers).

def biased_logits(X, weights, biases):
    """Logits of the net with biases for every row of X."""
    H = X
    for i, W in enumerate(weights):
        H = H @ W
        if biases[i] is not None:
            H += biases[i]
        if i < len(weights) - 1:
            H = relu(H)
    return H


def _sgd_update(p, g, velocity, lr, momentum, nesterov, l2):
    """sklearn's SGDOptimizer on one parameter, in place; gradient g + l2·p (the L2 term)."""
    grad = g + l2 * p
    if velocity is None:                          # plain SGD
        p -= lr * grad
        return
    velocity[...] = momentum * velocity - lr * grad                    # v ← μ v − η g
    p += momentum * velocity - lr * grad if nesterov else velocity     # nesterov look-ahead | v


def _adam_step_size(lr, beta_1, beta_2, t):
    """η_t = η √(1 − β2^t) / (1 − β1^t), a Python float (so float32 arithmetic stays float32)."""
    return lr * math.sqrt(1.0 - beta_2 ** t) / (1.0 - beta_1 ** t)


def _adam_update(p, g, m, v, lr_t, beta_1, beta_2, epsilon, l2):
    """sklearn's AdamOptimizer on one parameter, in place (lr_t from _adam_step_size)."""
    grad = g + l2 * p
    m[...] = beta_1 * m + (1.0 - beta_1) * grad            # m ← β1 m + (1 − β1) g
    v[...] = beta_2 * v + (1.0 - beta_2) * (grad * grad)   # v ← β2 v + (1 − β2) g²
    p -= lr_t * m / (np.sqrt(v) + epsilon)                 # p ← p − η_t m / (√v + ε)


def _output_loss(Z, y, sample_weight, loss):
    """(Σ_r w_r loss_r, S = Σ_r w_r, G_L) for a batch of outputs Z (B × k) against targets y,
    with w_r = 1 (S = B) when sample_weight is None:
        'log_loss':      loss_r = clip(logsumexp(Z_r) − Z_r,y_r),  ∂loss_r/∂Z_r = softmax(Z_r) − I_y_r
                         (clip to [−log(1 − ε), −log ε], ε = finfo(Z.dtype).eps: sklearn's log_loss
                         clips the probabilities to [ε, 1 − ε]; the gradient is unclipped)
        'squared_error': loss_r = ½ ‖Z_r − y_r‖² / k,  ∂loss_r/∂Z_r = Z_r − y_r (sklearn's pair)
    G_L row r = (w_r / S) ∂loss_r/∂Z_r (zero when S = 0)."""
    B, k = Z.shape
    if loss == "log_loss":
        eps = float(np.finfo(Z.dtype).eps)
        rows = np.clip(_cross_entropy_rows(Z, y), -math.log1p(-eps), -math.log(eps))
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        D = E / E.sum(axis=1, keepdims=True)              # softmax(Z)
        D[np.arange(B), y] -= 1                           # − I_y
    else:
        D = Z - y
        rows = 0.5 * np.sum(D.astype(np.float64) ** 2, axis=1) / k
    if sample_weight is None:
        return float(np.sum(rows)), float(B), D / B
    S = float(np.sum(sample_weight, dtype=np.float64))
    scale = (sample_weight.astype(np.float64) / S if S > 0 else np.zeros(B)).astype(Z.dtype)
    return float(np.dot(sample_weight.astype(np.float64), rows)), S, D * scale[:, None]


def train_epoch(X, y, weights, biases, optimizer, lr, batch, order, alpha, sample_weight=None, loss="log_loss"):
    """One epoch over the rows X[order] (order None: data order) in batches of `batch` rows,
    updating the parameters and the optimizer's state in place. Returns Σ over the batches of
    B · (the batch's loss, with the parameters before its update). X may be SparseRows: each
    batch's rows are then gathered as a dense array, and the math is the same. y, sample_weight
    and loss: as _output_loss takes them (labels, or rows × d_L values for 'squared_error')."""
    L = len(weights)
    n = X.shape[0] if order is None else order.shape[0]
    first, second = optimizer.buffers()
    first = first if first is not None else [None] * (2 * L)
    loss_sum = 0.0
    for b in _batches(n, batch):
        idx = b if order is None else order[b]
        Xb = X.rows(idx) if isinstance(X, SparseRows) else X[idx]   # gathers only this batch's rows
        yb = y[idx]
        wb = None if sample_weight is None else sample_weight[idx]
        B = Xb.shape[0]
        H = [Xb]                               # H_0 = X_b, H_i = ReLU(H_{i-1} W_i + b_i)
        for i in range(L):
            Z = H[-1] @ weights[i]
            if biases[i] is not None:
                Z += biases[i]
            H.append(relu(Z) if i < L - 1 else Z)
        weighted_loss, S, G = _output_loss(H[-1], yb, wb, loss)   # G_L = (w_r/S) ∂loss_r/∂Z_r
        if alpha != 0:
            weighted_loss += 0.5 * alpha * sum(float(np.sum(W.astype(np.float64) ** 2)) for W in weights)
        loss_sum += weighted_loss if S == B else (weighted_loss * B / S if S > 0 else 0.0)   # B · batch loss
        grads_W, grads_b = [None] * L, [None] * L
        for i in reversed(range(L)):
            grads_W[i] = H[i].T @ G                        # ∇W_i without the L2 term
            if biases[i] is not None:
                grads_b[i] = G.sum(axis=0)                 # ∇b_i = Σ_rows G_i
            if i > 0:
                G = (G @ weights[i].T) * (H[i] > 0)       # G_i = (G_{i+1} W_{i+1}ᵀ) ∘ 1{H_i > 0}
        l2 = alpha / S if S > 0 else 0.0
        if optimizer.kind == "adam":
            optimizer.t += 1
            lr_t = _adam_step_size(lr, optimizer.beta_1, optimizer.beta_2, optimizer.t)
        params = list(weights) + list(biases)
        grads = grads_W + grads_b
        for j, (p, g) in enumerate(zip(params, grads)):
            if p is None:
                continue
            l2_p = l2 if j < L else 0.0
            if optimizer.kind == "adam":
                _adam_update(p, g, first[j], second[j], lr_t, optimizer.beta_1,
                            optimizer.beta_2, optimizer.epsilon, l2_p)
            else:
                _sgd_update(p, g, first[j], lr, optimizer.momentum, optimizer.nesterov, l2_p)
    return loss_sum
