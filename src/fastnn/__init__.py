"""fastnn: softmax regression and ReLU MLPs trained by minibatch SGD, on a NumPy reference
backend or a C++ core (`fastnn.set_backend("cpp")`), with CMU 10-414 hw0's API.

    from fastnn import *
    X, y = parse_mnist("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
    theta = np.zeros((784, 10), dtype=np.float32)
    softmax_regression_epoch(X, y, theta, lr=0.1, batch=100)
"""
from typing import TYPE_CHECKING, Any

from . import runtime   # first: it loads the C++ core (fastnn/_openmp_env.py says why that comes first)
from .api import (add, biased_logits, evaluate, loss_err, matmul, mlp_epoch, mlp_logits, mlp_loss_grad,
                  nn_epoch, predict, relu, softmax_cross_entropy, softmax_loss, softmax_regression_epoch,
                  softmax_regression_epoch_cpp, train_epoch)
from .backends import available_backends, get_backend, set_backend, use_backend
from .datasets import load_fashion_mnist, load_mnist
from .fitting import History, fit
from .gradcheck import GradcheckError, gradcheck
from .mnist import parse_mnist
from .model_io import load_model, save_model
from .optimizers import SGD, Adam
from .runtime import (build_info, get_flush_subnormals, get_num_threads, get_skip_zeros, set_flush_subnormals,
                      set_num_threads, set_skip_zeros)
from .pixels import Pixels
from .sparse import SparseRows
from .training import train_mlp, train_nn, train_softmax
from .threadpool import register as _register_threadpool_controller

# The one place the version is written: pyproject.toml reads it from here (scikit-build-core's
# regex provider), and so do the package metadata, build_info()["version"] and `fastnn --version`.
__version__ = "0.1.0"

if runtime._core is not None:   # threadpoolctl.threadpool_limits / threadpool_info see fastnn
    _register_threadpool_controller()

# `from fastnn import *` gives hw0's names (and the building blocks), as hw0's simple_ml did.
__all__ = [
    "parse_mnist", "softmax_loss", "softmax_regression_epoch", "nn_epoch", "loss_err",
    "train_softmax", "train_nn", "add", "softmax_regression_epoch_cpp",
    "matmul", "relu", "softmax_cross_entropy", "mlp_epoch", "mlp_loss_grad", "mlp_logits",
    "predict", "evaluate", "train_mlp", "gradcheck", "GradcheckError",
    "set_backend", "get_backend", "available_backends", "use_backend",
    "build_info", "set_num_threads", "get_num_threads", "set_skip_zeros", "get_skip_zeros",
    "set_flush_subnormals", "get_flush_subnormals",
    "load_mnist", "load_fashion_mnist", "save_model", "load_model", "fit", "History",
    "train_epoch", "biased_logits", "SGD", "Adam", "SparseRows", "Pixels",   # MLPClassifier, MLPRegressor, SoftmaxRegression: lazy, below
]


if TYPE_CHECKING:   # what the lazy import below gives, for type checkers
    from .estimators import MLPClassifier, MLPRegressor, SoftmaxRegression


def __getattr__(name: str) -> Any:   # scikit-learn is optional: the estimators are imported on first use
    if name in ("MLPClassifier", "MLPRegressor", "SoftmaxRegression"):
        from . import estimators
        return getattr(estimators, name)
    raise AttributeError(f"module 'fastnn' has no attribute {name!r}")
