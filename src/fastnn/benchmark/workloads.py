"""What the benchmark measures: the SGEMM and epoch workloads, and which contenders run on them."""


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

def _runs(contender, workload):
    """Whether `contender` runs on `workload` (fastnn-cpp-dense only on nets with a hidden layer,
    fastnn-cpp-pixels only on softmax regression)."""
    if contender == DENSE_ONLY:
        return workload["kind"] == "epoch" and len(workload["dims"]) > 2
    if contender == PIXELS_ONLY:
        return workload["kind"] == "epoch" and len(workload["dims"]) == 2
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

def epoch_workload(wid, label, n, d, hidden, k=10, lr=0.1, batch=100):
    dims = [d] + ([hidden] if hidden else []) + [k]
    return {"kind": "epoch", "id": wid, "label": label, "dims": dims, "n": n, "lr": lr,
            "batch": batch, "flops": epoch_flops(n, dims), "x_bytes": 4.0 * n * d,
            "read_floor": hidden is None}

SCALING_WORKLOAD = "mlp-h400"

SCALING_THREADS = 2
