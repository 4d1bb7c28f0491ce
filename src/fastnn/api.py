"""The public API: hw0's names and signatures, plus the building blocks they are made of.

Each function validates its inputs once (see `validation`) and hands them to the current backend
(see `backends`). Parameters are updated in place, in their own dtype; the arithmetic follows
NumPy's type promotion (float32 only when every input is float32).
"""
from . import validation as v
from .backends import backend_module


def matmul(A, B):
    """A · B for 2-D float arrays (transposed views are fine: no copy is made on the cpp backend)."""
    A = v.as_float_matrix(A, "A")
    B = v.as_float_matrix(B, "B")
    if A.shape[1] != B.shape[0]:
        raise ValueError(f"B: expected {A.shape[1]} rows (A has {A.shape[1]} columns), got shape {B.shape}")
    return backend_module().matmul(A, B)


def relu(Z):
    """max(Z, 0), element-wise, as a new array."""
    return backend_module().relu(v.as_float_matrix(Z, "Z"))


def _logits_and_labels(Z, y):
    Z = v.as_float_matrix(Z, "Z")
    return Z, v.as_labels(y, Z.shape[0], Z.shape[1])


def softmax_loss(Z, y):
    """Mean softmax cross-entropy of logits Z (batch × classes) against integer labels y."""
    return backend_module().softmax_loss(*_logits_and_labels(Z, y))


def softmax_cross_entropy(Z, y):
    """Fused forward and gradient: returns (mean cross-entropy, ∇Z = (softmax(Z) − I_y) / B)."""
    return backend_module().softmax_cross_entropy(*_logits_and_labels(Z, y))


def loss_err(h, y):
    """(mean softmax cross-entropy, error rate) of logits h against labels y."""
    return backend_module().loss_err(*_logits_and_labels(h, y))


def _validated_net(X, y, weights, names, in_place):
    X = v.as_float_matrix(X, "X")
    if in_place:
        weights = [v.as_parameter(W, name) for W, name in zip(weights, names)]
    else:
        weights = [v.as_float_matrix(W, name) for W, name in zip(weights, names)]
    v.check_layer_shapes(X.shape[1], weights, names)
    if y is not None:
        y = v.as_labels(y, X.shape[0], weights[-1].shape[1])
    if in_place:
        v.check_no_overlap([X] + weights, ["X"] + names)
    return X, y, weights


def _layer_names(weights):
    return [f"weights[{i}]" for i in range(len(weights))]


def softmax_regression_epoch(X, y, theta, lr=0.1, batch=100):
    """One epoch of minibatch SGD for softmax regression (data order, last batch may be
    shorter), updating `theta` (input_dim × num_classes) in place. Returns None."""
    X, y, (theta,) = _validated_net(X, y, [theta], ["theta"], in_place=True)
    backend_module().softmax_regression_epoch(X, y, theta, v.as_learning_rate(lr), v.as_batch_size(batch))


def nn_epoch(X, y, W1, W2, lr=0.1, batch=100):
    """One epoch of minibatch SGD for the two-layer net ReLU(X W1) W2, updating W1 and W2 in
    place. Returns None."""
    X, y, (W1, W2) = _validated_net(X, y, [W1, W2], ["W1", "W2"], in_place=True)
    backend_module().nn_epoch(X, y, W1, W2, v.as_learning_rate(lr), v.as_batch_size(batch))


def mlp_epoch(X, y, weights, lr=0.1, batch=100):
    """One epoch of minibatch SGD for an L-layer ReLU net X → ReLU(X W_1) … W_L, updating each
    array of `weights` in place. Returns None."""
    weights = v.as_weight_list(weights)
    X, y, weights = _validated_net(X, y, weights, _layer_names(weights), in_place=True)
    backend_module().mlp_epoch(X, y, weights, v.as_learning_rate(lr), v.as_batch_size(batch))


def mlp_loss_grad(X, y, weights):
    """Mean cross-entropy and its gradients [∂loss/∂W_1, …] for the L-layer net on one batch."""
    weights = v.as_weight_list(weights)
    X, y, weights = _validated_net(X, y, weights, _layer_names(weights), in_place=False)
    return backend_module().mlp_loss_grad(X, y, weights)


def mlp_logits(X, weights):
    """The net's logits for every row of X."""
    weights = v.as_weight_list(weights)
    X, _, weights = _validated_net(X, None, weights, _layer_names(weights), in_place=False)
    return backend_module().mlp_logits(X, weights)


def predict(X, weights):
    """The predicted class of every row of X (argmax of the logits; ties go to the lower class)."""
    return mlp_logits(X, weights).argmax(axis=1)


def evaluate(X, y, weights):
    """(mean cross-entropy, error rate) of the L-layer net on the dataset (X, y)."""
    weights = v.as_weight_list(weights)
    X, y, weights = _validated_net(X, y, weights, _layer_names(weights), in_place=False)
    return backend_module().evaluate(X, y, weights)
