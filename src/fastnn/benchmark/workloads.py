"""What the benchmark measures: the SGEMM and epoch workloads, and which contenders run on them."""
import numpy as np


MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")

# Contenders: name -> engine (the worker process that runs it).
GEMM_CONTENDERS = {"fastnn-cpp": "cpp", "fastnn-numpy": "numpy", "torch": "torch"}

EPOCH_CONTENDERS = {"fastnn-cpp": "cpp", "fastnn-cpp-dense": "cpp", "fastnn-cpp-pixels": "cpp",
                    "fastnn-numpy": "numpy", "torch-manual": "torch", "torch-autograd": "torch"}

# fastnn-cpp runs as a user gets it: a net with a hidden layer skips the zeros of mostly-zero X
# in its first layer (fastnn.set_skip_zeros). fastnn-cpp-dense is the same package with that off
# (the dense GEMMs), run only where the two differ.
DENSE_ONLY = "fastnn-cpp-dense"

# fastnn-cpp-pixels: the softmax epoch with X as fastnn.Pixels (MNIST's uint8 bytes and a scale of
# 1/255: a quarter of the bytes to read), against fastnn-cpp's float32 X.
PIXELS_ONLY = "fastnn-cpp-pixels"

# The epochs' inputs: "raw" is MNIST as parse_mnist gives it (81% zeros, which fastnn-cpp's
# first layer skips); "centred" is X minus its column means, as a user who centres or
# standardizes the features has it: no zeros to skip, so every contender does the dense work.
INPUTS = ("raw", "centred")

INPUT_FILES = {"raw": "X.npy", "centred": "X-centred.npy"}

def centre_columns(X):
    """X minus its column means (the means summed in float64), as float32."""
    return (X - X.mean(axis=0, dtype=np.float64)).astype(np.float32)

def _runs(contender, workload):
    """Whether `contender` runs on `workload`: fastnn-cpp-dense only on nets with a hidden layer
    and raw X (on centred X fastnn-cpp already runs the dense kernels), fastnn-cpp-pixels only on
    softmax regression with raw X (centred X is not bytes)."""
    raw_epoch = workload["kind"] == "epoch" and workload.get("input", "raw") == "raw"
    if contender == DENSE_ONLY:
        return raw_epoch and len(workload["dims"]) > 2
    if contender == PIXELS_ONLY:
        return raw_epoch and len(workload["dims"]) == 2
    return True

def gemm_workload(wid, label, m, k, n, ta="N", tb="N"):
    return {"kind": "gemm", "id": wid, "label": label, "m": m, "k": k, "n": n, "ta": ta, "tb": tb,
            "flops": 2.0 * m * n * k}

SQUARE_SIZES = (256, 512, 1024, 2048)

TRAINING_GEMMS = [
    gemm_workload("XW1-h400", "X·W1 100×784·784×400", 100, 784, 400),
    gemm_workload("XtG1-h400", "Xᵀ·G1 784×100·100×400", 784, 100, 400, ta="T"),
    gemm_workload("Z1W2-h400", "Z1·W2 100×400·400×10", 100, 400, 10),
    gemm_workload("G2W2t-h400", "G2·W2ᵀ 100×10·10×400", 100, 10, 400, tb="T"),
    gemm_workload("XTheta", "X·Θ 100×784·784×10", 100, 784, 10),
    gemm_workload("XtdZ", "Xᵀ·dZ 784×100·100×10", 784, 100, 10, ta="T"),
]

def square_gemm(s):
    return gemm_workload(f"sgemm-{s}", f"sgemm {s}³", s, s, s)

def epoch_flops(n, dims):
    """GEMM FLOPs of one SGD epoch over n rows of an MLP with layer sizes dims = [d, h…, k]:
    forward H_i·W_{i+1}, ∇W_i = H_{i-1}ᵀ·G_i, and G_{i+1}·W_{i+1}ᵀ for every hidden layer
    (each 2·m·n·k; linear in the batch size, so the batching does not change the sum)."""
    per_row = 0.0
    for i, (a, b) in enumerate(zip(dims, dims[1:])):
        per_row += 2.0 * a * b          # forward
        per_row += 2.0 * a * b          # weight gradient
        if i > 0:
            per_row += 2.0 * a * b      # gradient into the layer below
    return per_row * n

def epoch_workload(wid, label, n, d, hidden, k=10, lr=0.1, batch=100, input="raw"):
    """One epoch of softmax regression (hidden None) or of a 2-layer net, on X of `input`
    (INPUTS); the same FLOPs and floor for every input."""
    if input not in INPUTS:
        raise ValueError(f"epoch_workload: input: expected one of {INPUTS}, got {input!r}")
    dims = [d] + ([hidden] if hidden else []) + [k]
    return {"kind": "epoch", "id": wid, "label": label, "dims": dims, "n": n, "lr": lr,
            "batch": batch, "flops": epoch_flops(n, dims), "x_bytes": 4.0 * n * d,
            "read_floor": hidden is None, "input": input}

def epoch_workloads(n, d, hiddens, inputs=INPUTS):
    """The epochs of softmax regression and of 2-layer nets with each of `hiddens` on every
    input: ids softmax, mlp-h100 … on raw X, with a -centred suffix on centred X."""
    out = []
    for inp in inputs:
        suffix, note = ("", "") if inp == "raw" else (f"-{inp}", f", {inp} X")
        out.append(epoch_workload("softmax" + suffix, "softmax regression" + note, n, d, None, input=inp))
        out += [epoch_workload(f"mlp-h{h}{suffix}", f"2-layer h={h}{note}", n, d, h, input=inp) for h in hiddens]
    return out

SCALING_WORKLOAD = "mlp-h400"

DENSE_SCALING_WORKLOAD = "mlp-h400-centred"

SCALING_THREADS = 2
