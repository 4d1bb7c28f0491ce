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
import numpy as np


def matmul(A, B):
    """A · B."""
    return A @ B


def relu(Z):
    """ReLU(Z) = max(Z, 0), element-wise."""
    return np.maximum(Z, 0)


def _logsumexp_rows(Z):
    """Row-wise log Σ exp(Z), stable: subtract each row's max first."""
    m = Z.max(axis=1, keepdims=True)
    return (m + np.log(np.exp(Z - m).sum(axis=1, keepdims=True)))[:, 0]


def softmax_loss(Z, y):
    """Mean cross-entropy of logits Z (B × k) against labels y: mean(logsumexp(Z_i) − Z_i,y_i)."""
    B = Z.shape[0]
    return float(np.mean(_logsumexp_rows(Z) - Z[np.arange(B), y]))


def softmax_cross_entropy(Z, y):
    """Fused forward and gradient: (mean cross-entropy, ∇Z = (S − I_y) / B)."""
    B = Z.shape[0]
    lse = _logsumexp_rows(Z)
    loss = float(np.mean(lse - Z[np.arange(B), y]))
    S = np.exp(Z - lse[:, None])
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
