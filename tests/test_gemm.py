"""The GEMM engine against a float64 reference: every ISA the CPU has, every form, awkward shapes,
alpha/beta, views, and every strategy of the driver (forced through _core._gemm_tuning)."""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastnn
from fastnn import _core
from conftest import ISA_ORDER as ORDER, saved_num_threads
# (m, n, k): every awkward size in every position, the training shapes, and sizes that are not
# multiples of any block (MR 4/6/14, NR 8/16/32, KC 128/256, MC 96..336)
SHAPES = [(1, 1, 1), (2, 7, 17), (17, 33, 2), (33, 100, 7), (100, 129, 33), (129, 784, 100),
          (784, 17, 129), (7, 2, 784), (1037, 45, 300), (100, 10, 784), (784, 10, 100),
          (100, 400, 10), (15, 31, 257)]
FORMS = [("N", "N"), ("T", "N"), ("N", "T"), ("T", "T")]


def _operands(rng, m, n, k, op_a, op_b, dtype, view):
    """A, B stored as the forms require; `view` makes them row-offset, column-offset views of a
    larger array (row stride > width, base not 64-byte aligned)."""
    shape_a = (m, k) if op_a == "N" else (k, m)
    shape_b = (k, n) if op_b == "N" else (n, k)
    if view:
        big_a = rng.standard_normal((shape_a[0] + 3, shape_a[1] + 5)).astype(dtype)
        big_b = rng.standard_normal((shape_b[0] + 2, shape_b[1] + 3)).astype(dtype)
        return big_a[2:2 + shape_a[0], 1:1 + shape_a[1]], big_b[1:1 + shape_b[0], 3:3 + shape_b[1]]
    return rng.standard_normal(shape_a).astype(dtype), rng.standard_normal(shape_b).astype(dtype)


def _reference(A, B, op_a, op_b, alpha, beta, C):
    a = A.astype(np.float64).T if op_a == "T" else A.astype(np.float64)
    b = B.astype(np.float64).T if op_b == "T" else B.astype(np.float64)
    out = alpha * (a @ b)
    return out if beta == 0 else out + beta * C.astype(np.float64)


def _check(got, expected, dtype, k):
    # float32: error grows like sqrt(k) * eps * |terms|; compare against the scale of the result
    scale = max(1.0, float(np.max(np.abs(expected))))
    tol = (5e-6 if dtype == np.float32 else 1e-13) * np.sqrt(max(k, 1)) * scale
    np.testing.assert_allclose(got, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("op_a,op_b", FORMS, ids=["NN", "TN", "NT", "TT"])
@pytest.mark.parametrize("m,n,k", SHAPES, ids=["x".join(map(str, s)) for s in SHAPES])
def test_gemm_every_isa_form_and_shape(isa, dtype, op_a, op_b, m, n, k):
    rng = np.random.default_rng(m * 10007 + n * 101 + k)
    A, B = _operands(rng, m, n, k, op_a, op_b, dtype, view=(m + n) % 2 == 0)
    C = np.full((m, n), np.nan, dtype=dtype)           # beta = 0: C must not be read
    _core.gemm(op_a, op_b, A, B, C, 1.0, 0.0)
    _check(C, _reference(A, B, op_a, op_b, 1.0, 0.0, C), dtype, k)
    C0 = rng.standard_normal((m, n)).astype(dtype)     # alpha, beta
    C = C0.copy()
    _core.gemm(op_a, op_b, A, B, C, -0.37, 0.5)
    _check(C, _reference(A, B, op_a, op_b, -0.37, 0.5, C0), dtype, k)


STRATEGIES = [dict(force_pack=1), dict(force_pack=-1), dict(allow_dot_path=False, allow_swap_path=False),
              dict(allow_narrow_kernel=False), dict(allow_rows_kernel=False),
              dict(single_k_block=False), dict(a_panel_outer=True), dict(auto_order=False),
              dict(private_a=False, parallel_min_flops=0.0), dict(kc=64, mc=48, nc=96),
              dict(parallel_min_flops=0.0), dict(column_split=1, parallel_min_flops=0.0),
              dict(column_split=-1, parallel_min_flops=0.0)]


@pytest.mark.parametrize("strategy", STRATEGIES, ids=[",".join(f"{k}={v}" for k, v in s.items()) for s in STRATEGIES])
def test_gemm_every_driver_strategy(isa, strategy):
    previous = _core._gemm_tuning(**strategy)
    try:
        for dtype in (np.float32, np.float64):
            for (m, n, k) in [(129, 100, 300), (100, 10, 784), (784, 10, 100), (33, 47, 513)]:
                for op_a, op_b in FORMS:
                    rng = np.random.default_rng(m + n + k)
                    A, B = _operands(rng, m, n, k, op_a, op_b, dtype, view=True)
                    C0 = rng.standard_normal((m, n)).astype(dtype)
                    C = C0.copy()
                    _core.gemm(op_a, op_b, A, B, C, 0.5, 1.0)
                    _check(C, _reference(A, B, op_a, op_b, 0.5, 1.0, C0), dtype, k)
    finally:
        _core._gemm_tuning(**previous)


# op(B) = Bᵀ packed into B~ (blocked path, n > 16) and B transposed into the dot path's Bt (n <= 16,
# k >= 16): the ISA's register transpose where it has one (AVX-512 and AVX2, float and double), else
# the scalar loops. Edges of every block (16, 8 or 4 wide): n and k not multiples of 16, several k
# blocks (kc=64 below), one row.
TRANSPOSED_SHAPES = [(100, 400, 10), (17, 33, 2), (33, 100, 7), (15, 31, 257), (100, 10, 784), (7, 2, 784),
                     (100, 10, 100), (33, 12, 17), (1, 16, 33), (64, 17, 300)]


@pytest.mark.parametrize("m,n,k", TRANSPOSED_SHAPES, ids=["x".join(map(str, s)) for s in TRANSPOSED_SHAPES])
@pytest.mark.parametrize("settings", [dict(force_pack=1), dict(force_pack=1, kc=64)], ids=["packed", "kc64"])
def test_a_transposed_b_gives_the_bits_of_b_stored_as_used(isa, dtype, m, n, k, settings):
    """gemm(N, T) on B stored n × k and gemm(N, N) on the same values stored k × n: whichever way
    B is stored, the packing hands the kernels the same values in the same order (B~ micro-panels,
    or the dot path's rows of Bᵀ: one copies rows, the other transposes), so the same bits, and
    both within the reference's tolerance."""
    rng = np.random.default_rng(m * 7 + n * 3 + k)
    A, B_nk = _operands(rng, m, n, k, "N", "T", dtype, view=True)
    B_kn = np.ascontiguousarray(B_nk.T)
    B_kn_view = np.zeros((k + 1, n + 3), dtype)[1:, 2:2 + n]   # (a strided copy too)
    B_kn_view[...] = B_kn
    C0 = rng.standard_normal((m, n)).astype(dtype)
    for alpha, beta in ((1.0, 0.0), (-0.37, 0.5)):
        by_rows = _gemm_under(settings, "N", "T", A, B_nk, C0, alpha, beta)
        for B in (B_kn, B_kn_view):
            np.testing.assert_array_equal(_gemm_under(settings, "N", "N", A, B, C0, alpha, beta), by_rows,
                                          err_msg=f"alpha={alpha} beta={beta}")
        _check(by_rows, _reference(A, B_nk, "N", "T", alpha, beta, C0), dtype, k)


def test_gemm_one_and_two_threads_bit_identical():
    import fastnn
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 500)).astype(np.float32)
    B = rng.standard_normal((500, 400)).astype(np.float32)
    saved = saved_num_threads()
    results = []
    try:
        for threads in (1, 2):
            fastnn.set_num_threads(threads)
            C = np.empty((300, 400), np.float32)
            _core.gemm("N", "N", A, B, C, 1.0, 0.0)
            results.append(C)
    finally:
        fastnn.set_num_threads(saved)
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.parametrize("value,expected", [("generic", "generic"), ("AVX2", "avx2"), ("bogus", None)])
def test_fastnn_isa_environment_variable(value, expected):
    """FASTNN_ISA forces a lower ISA at start-up; an unknown or unavailable one falls back to the
    best available with a warning in build_info()."""
    if expected and ORDER.index(expected) > ORDER.index(_core.detected_isa()):
        pytest.skip(f"{expected} is not available: this CPU or this build lacks it "
                    f"(kernels built: {fastnn.build_info()['simd_compiled']}; detected: {_core.detected_isa()})")
    code = "import fastnn; i = fastnn.build_info(); print(i['simd_active'], '|', i['simd_warning'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env=dict(os.environ, FASTNN_ISA=value)).stdout.strip()
    active, warning = [s.strip() for s in out.split("|")]
    if expected:
        assert active == expected and warning == ""
    else:
        assert active == _core.detected_isa() and "bogus" in warning


# (m, n, k) whose last column panel is at most 8 wide for NR = 32, 16 or 8 (n = 100: 4 left;
# 72: 8; 35 and 38: 3 and 6, whose rows are regathered from 1 and 2 groups of 4 columns; 4 and 1:
# nothing but a narrow tile) or a vector and at most 8 more (52, 84: 20 = 16 + 4), rows that are
# not a multiple of MR, depths across KC blocks.
NARROW_SHAPES = [(100, 100, 784), (784, 100, 100), (100, 4, 33), (37, 72, 300), (15, 1, 600), (100, 200, 10),
                 (100, 52, 300), (64, 84, 100), (43, 35, 129), (29, 38, 70)]


# The narrow tiles under each way a team splits a product: 1 thread, 2 threads splitting tiles
# by area (shares that start and end inside a column panel), 2 threads splitting columns.
NARROW_TEAMS = {"1thread": (1, {}), "2threads_area": (2, dict(parallel_min_flops=0.0, column_split=-1)),
                "2threads_columns": (2, dict(parallel_min_flops=0.0, column_split=1))}


@pytest.mark.parametrize("team", list(NARROW_TEAMS))
@pytest.mark.parametrize("m,n,k", NARROW_SHAPES, ids=["x".join(map(str, s)) for s in NARROW_SHAPES])
def test_narrow_kernel_gives_the_micro_kernels_bits(isa, dtype, m, n, k, team):
    """Tiles of a few columns go to the ISA's narrow kernel (lanes along the rows) where it has
    one: the same FMA chain per element and the same epilogue, so the same bits as the
    micro-kernel, for every form and alpha/beta (and the swap path's transposed tiles), on one
    thread and on two however they split the tiles."""
    threads, settings = NARROW_TEAMS[team]
    rng = np.random.default_rng(m + n + k)
    before = saved_num_threads()
    fastnn.set_num_threads(threads)
    team_previous = _core._gemm_tuning(**settings)
    try:
        _narrow_against_micro(rng, dtype, m, n, k)
    finally:
        _core._gemm_tuning(**team_previous)
        fastnn.set_num_threads(before)


def _gemm_under(settings, op_a, op_b, A, B, C0, alpha, beta):
    """C0 · beta + alpha · op(A) op(B) by _core.gemm with _gemm_tuning(**settings) in force (a new C)."""
    previous = _core._gemm_tuning(**settings)
    try:
        C = C0.copy()
        _core.gemm(op_a, op_b, A, B, C, alpha, beta)
    finally:
        _core._gemm_tuning(**previous)
    return C


def _narrow_against_micro(rng, dtype, m, n, k):
    for op_a, op_b in FORMS:
        A, B = _operands(rng, m, n, k, op_a, op_b, dtype, view=True)
        C0 = rng.standard_normal((m, n)).astype(dtype)
        for alpha, beta in ((1.0, 0.0), (-0.37, 0.5), (-0.1, 1.0)):
            got = [_gemm_under(dict(allow_narrow_kernel=narrow), op_a, op_b, A, B, C0, alpha, beta)
                   for narrow in (True, False)]
            np.testing.assert_array_equal(got[0], got[1], err_msg=f"{op_a}{op_b} alpha={alpha} beta={beta}")
            _check(got[0], _reference(A, B, op_a, op_b, alpha, beta, C0), dtype, k)


# op(A) = A read in place by the ISA's micro_rows kernel (AVX-512 float) or packed: rows that are
# not a multiple of MR (100 = 7·14 + 2, 13, 1; read in place, in panels of near-equal heights:
# 100 as 4·13 + 4·12), masked columns, narrow tiles (which micro_rows then takes), depths in one
# and in several k blocks (784 × 400: blocks of 196), rows in two MC blocks (350).
ROWS_SHAPES = [(100, 400, 784), (100, 100, 784), (13, 70, 33), (29, 38, 70), (1, 5, 9), (100, 52, 300),
               (350, 40, 20)]


@pytest.mark.parametrize("team", list(NARROW_TEAMS))
@pytest.mark.parametrize("m,n,k", ROWS_SHAPES, ids=["x".join(map(str, s)) for s in ROWS_SHAPES])
def test_rows_kernel_gives_the_packed_kernels_bits(isa, dtype, m, n, k, team):
    """A row-major op(A) = A (the epoch's X_b·W_1) is read in place where the ISA has a kernel for
    it, instead of being packed: the same broadcasts in the same order, so the same bits as the
    packed path, for alpha/beta, views (a row stride past the width), one thread and two; and the
    same bits whether the rows read in place are cut into panels of MR rows or of near-equal heights."""
    threads, settings = NARROW_TEAMS[team]
    rng = np.random.default_rng(m * n + k)
    before = saved_num_threads()
    fastnn.set_num_threads(threads)
    team_previous = _core._gemm_tuning(**settings)
    try:
        for view in (False, True):
            for op_b in ("N", "T"):
                A, B = _operands(rng, m, n, k, "N", op_b, dtype, view=view)
                C0 = rng.standard_normal((m, n)).astype(dtype)
                for alpha, beta in ((1.0, 0.0), (-0.37, 0.5)):
                    got = [_gemm_under(dict(allow_rows_kernel=rows_kernel, balanced_rows=balanced),
                                       "N", op_b, A, B, C0, alpha, beta)
                           for rows_kernel, balanced in ((True, True), (True, False), (False, True))]
                    np.testing.assert_array_equal(got[0], got[1], err_msg=f"N{op_b} view={view} alpha={alpha}")
                    np.testing.assert_array_equal(got[0], got[2], err_msg=f"N{op_b} view={view} alpha={alpha}")
                    _check(got[0], _reference(A, B, "N", op_b, alpha, beta, C0), dtype, k)
    finally:
        _core._gemm_tuning(**team_previous)
        fastnn.set_num_threads(before)


def test_rows_kernel_leaves_the_dense_epoch_bitwise_unchanged(isa):
    """The epoch's X_b·W_1 with its ReLU epilogue, and G_2·W_2ᵀ with the ReLU mask, through the rows
    kernel (dense path, h = 400: k blocks of 196; h = 100: the last 4 columns): nn_epoch's weights
    are the same bits as with A packed, and with the rows in panels of MR rows as of near-equal heights."""
    rng = np.random.default_rng(7)
    X = rng.standard_normal((350, 784)).astype(np.float32)
    y = rng.integers(0, 10, 350).astype(np.uint8)
    for hidden in (400, 100):
        W1 = (rng.standard_normal((784, hidden)) / np.sqrt(hidden)).astype(np.float32)
        W2 = (rng.standard_normal((hidden, 10)) / np.sqrt(10)).astype(np.float32)
        _assert_epoch_bits_unchanged_by(X, y, W1, W2, "allow_rows_kernel")
        _assert_epoch_bits_unchanged_by(X, y, W1, W2, "balanced_rows")


def _assert_epoch_bits_unchanged_by(X, y, W1, W2, setting):
    """nn_epoch (cpp backend, dense path) with _gemm_tuning(setting=True) and =False: the same
    bits for both weights, and it trained."""
    import fastnn
    backend = fastnn.get_backend()
    fastnn.set_backend("cpp")
    got = []
    try:
        for on in (True, False):
            previous = _core._gemm_tuning(**{setting: on})
            try:
                w1, w2 = W1.copy(), W2.copy()
                fastnn.nn_epoch(X, y, w1, w2, lr=0.1, batch=100)
            finally:
                _core._gemm_tuning(**previous)
            got.append((w1, w2))
    finally:
        fastnn.set_backend(backend)
    np.testing.assert_array_equal(got[0][0], got[1][0])
    np.testing.assert_array_equal(got[0][1], got[1][1])
    assert not np.array_equal(got[0][0], W1)   # it trained


@pytest.mark.parametrize("hidden", [100, 40])
def test_narrow_kernel_leaves_the_dense_epoch_bitwise_unchanged(isa, hidden):
    """The epoch's ReLU and ReLU-mask epilogues through the narrow kernel: nn_epoch's weights
    (dense path, h = 100 and 40: 4 and 8 columns past the last full panel) are the same bits
    with the narrow kernel as without."""
    rng = np.random.default_rng(hidden)
    X = rng.standard_normal((450, 784)).astype(np.float32)
    y = rng.integers(0, 10, 450).astype(np.uint8)
    W1 = (rng.standard_normal((784, hidden)) / np.sqrt(hidden)).astype(np.float32)
    W2 = (rng.standard_normal((hidden, 10)) / np.sqrt(10)).astype(np.float32)
    _assert_epoch_bits_unchanged_by(X, y, W1, W2, "allow_narrow_kernel")


@pytest.mark.parametrize("team", list(NARROW_TEAMS))
@pytest.mark.parametrize("m,n,k", NARROW_SHAPES + ROWS_SHAPES, ids=["x".join(map(str, s)) for s in NARROW_SHAPES + ROWS_SHAPES])
def test_narrow_registers_give_the_full_vectors_bits(isa, dtype, m, n, k, team):
    """A micro-kernel tile of at most a quarter (an eighth) of a vector's columns runs on 256-bit
    (128-bit) registers with AVX-512: the same FMA chain per element and the same epilogue on fewer
    lanes, so the same bits as on full vectors -- for every form and alpha/beta, A read in place or
    packed, with the narrow kernel or without it (then the micro-kernel takes every narrow tile),
    on one thread and two. (Other ISAs: the switch changes nothing, and the same holds.)"""
    threads, settings = NARROW_TEAMS[team]
    rng = np.random.default_rng(m + 3 * n + k)
    before = saved_num_threads()
    fastnn.set_num_threads(threads)
    team_previous = _core._gemm_tuning(**settings)
    try:
        for op_a, op_b in FORMS:
            A, B = _operands(rng, m, n, k, op_a, op_b, dtype, view=True)
            C0 = rng.standard_normal((m, n)).astype(dtype)
            for alpha, beta in ((1.0, 0.0), (-0.37, 0.5)):
                for narrow_kernel in (True, False):
                    got = [_gemm_under(dict(narrow_registers=registers, allow_narrow_kernel=narrow_kernel),
                                       op_a, op_b, A, B, C0, alpha, beta) for registers in (True, False)]
                    np.testing.assert_array_equal(got[0], got[1], err_msg=f"{op_a}{op_b} alpha={alpha} "
                                                  f"narrow kernel {narrow_kernel}")
                    _check(got[0], _reference(A, B, op_a, op_b, alpha, beta, C0), dtype, k)
    finally:
        _core._gemm_tuning(**team_previous)
        fastnn.set_num_threads(before)


@pytest.mark.parametrize("hidden", [100, 40])
def test_narrow_registers_leave_the_dense_epoch_bitwise_unchanged(isa, hidden):
    """The epoch's ReLU and ReLU-mask epilogues on 128- and 256-bit registers (X_b·W_1 with A read in
    place has no narrow kernel: its last 4 or 8 columns go to the micro-kernel): nn_epoch's weights
    are the same bits as on full vectors."""
    rng = np.random.default_rng(hidden + 1)
    X = rng.standard_normal((450, 784)).astype(np.float32)
    y = rng.integers(0, 10, 450).astype(np.uint8)
    W1 = (rng.standard_normal((784, hidden)) / np.sqrt(hidden)).astype(np.float32)
    W2 = (rng.standard_normal((hidden, 10)) / np.sqrt(10)).astype(np.float32)
    _assert_epoch_bits_unchanged_by(X, y, W1, W2, "narrow_registers")


@pytest.mark.parametrize("column_split", [1, -1], ids=["column-split", "area-split"])
def test_threads_split_by_columns_or_by_area_give_the_same_bits(column_split):
    """Threads take C by runs of whole cache lines of its columns (B in place) or by runs of
    tiles of equal area: either way every element is one micro-kernel chain, so 1, 2 and 3
    threads, and both splits, give one result (n = 100 and 400 as the epoch's first layer has,
    a run of 3 lines per thread and less, alpha and beta)."""
    import fastnn
    rng = np.random.default_rng(7)
    saved_threads = fastnn.get_num_threads()
    previous = _core._gemm_tuning(column_split=column_split, parallel_min_flops=0.0)
    try:
        for (m, n, k) in [(100, 100, 784), (784, 100, 100), (100, 400, 300), (50, 40, 64)]:
            A = rng.standard_normal((m, k)).astype(np.float32)
            At = np.ascontiguousarray(A.T)
            B = rng.standard_normal((k, n)).astype(np.float32)
            C0 = rng.standard_normal((m, n)).astype(np.float32)
            results = []
            for threads in (1, 2, 3):
                fastnn.set_num_threads(threads)
                C1, C2 = C0.copy(), C0.copy()
                _core.gemm("N", "N", A, B, C1, -0.3, 1.0)
                _core.gemm("T", "N", At, B, C2, 1.0, 0.0)
                results.append((C1, C2))
            _core._gemm_tuning(column_split=-column_split)   # the other split, 2 threads
            fastnn.set_num_threads(2)
            C1, C2 = C0.copy(), C0.copy()
            _core.gemm("N", "N", A, B, C1, -0.3, 1.0)
            _core.gemm("T", "N", At, B, C2, 1.0, 0.0)
            results.append((C1, C2))
            _core._gemm_tuning(column_split=column_split)
            for other in results[1:]:
                np.testing.assert_array_equal(results[0][0], other[0])
                np.testing.assert_array_equal(results[0][1], other[1])
            _check(results[0][1], A @ B, np.float32, k)
    finally:
        _core._gemm_tuning(**previous)
        fastnn.set_num_threads(saved_threads)
