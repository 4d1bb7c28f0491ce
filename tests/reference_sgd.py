"""An independent, per-sample implementation of the SGD epochs, used only as a test oracle.

It shares no code with fastnn: each sample's gradient is formed as outer products from the
chain rule, in float64, and summed over the batch; the parameters are updated after each batch.
"""
import numpy as np


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def mlp_epoch_per_sample(X, y, weights, lr, batch):
    """Returns new float64 weights after one epoch (the inputs are not modified)."""
    W = [np.array(w, dtype=np.float64) for w in weights]
    n = X.shape[0]
    for start in range(0, n, batch):
        rows = range(start, min(start + batch, n))
        grads = [np.zeros_like(w) for w in W]
        for i in rows:
            h = [np.asarray(X[i], dtype=np.float64)]      # activations, h[0] = x
            pre = []
            for w in W[:-1]:
                pre.append(h[-1] @ w)
                h.append(np.maximum(pre[-1], 0.0))
            delta = _softmax(h[-1] @ W[-1])
            delta[y[i]] -= 1.0                            # ∂loss_i/∂z
            for layer in range(len(W) - 1, -1, -1):
                grads[layer] += np.outer(h[layer], delta)
                if layer > 0:
                    delta = (W[layer] @ delta) * (pre[layer - 1] > 0)
        for w, g in zip(W, grads):
            w -= lr * g / len(rows)
    return W
