"""Thread safety and determinism of the cpp backend.

  * Several Python threads training separate models at once (the core releases the GIL, so
    they really run concurrently) give bitwise the same parameters as sequential runs.
  * The same seed and thread count give bitwise identical parameters run to run; the thread
    count itself does not change the result either (each output element of every GEMM is
    summed by one thread, in a fixed order: threads split the rows/columns, never k).

Two threads updating the *same* parameters at once are unsupported (docs/reliability.md).
"""
import contextlib
import threading
import time

import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.skipif("cpp" not in fastnn.available_backends(), reason="cpp backend not built")


def _model(seed, n=600, sizes=(64, 48, 10), dtype=np.float32):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], n)
    W = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(dtype) for a, b in zip(sizes, sizes[1:])]
    return X, y, W


def _train(seed, epochs=3, batch=50):
    X, y, W = _model(seed)
    for _ in range(epochs):
        fastnn.mlp_epoch(X, y, W, lr=0.1, batch=batch)
    return W


@contextlib.contextmanager
def _skip_zeros(on):
    """fastnn.set_skip_zeros(on) for the block, the previous setting restored after it."""
    saved = fastnn.get_skip_zeros()
    fastnn.set_skip_zeros(on)
    try:
        yield
    finally:
        fastnn.set_skip_zeros(saved)


def test_concurrent_training_of_separate_models_matches_sequential(cpp):
    seeds = list(range(6))
    sequential = {s: _train(s) for s in seeds}
    concurrent, errors = {}, []
    barrier = threading.Barrier(len(seeds))

    def work(s):
        try:
            with fastnn.use_backend("cpp"):   # the backend choice is per thread
                barrier.wait()
                concurrent[s] = _train(s)
        except BaseException as exc:      # pragma: no cover - reported below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(s,)) for s in seeds]
    for t in workers:
        t.start()
    for t in workers:
        t.join(60)
    assert not errors, errors
    for s in seeds:
        for a, b in zip(concurrent[s], sequential[s]):
            np.testing.assert_array_equal(a, b)


def test_epoch_releases_the_gil(cpp):
    """While one thread runs a C++ epoch, another Python thread keeps running."""
    X, y, W = _model(0, n=20000, sizes=(256, 256, 10))
    ticks, running = [0], threading.Event()

    def count():
        running.wait()
        while running.is_set():
            ticks[0] += 1

    counter = threading.Thread(target=count)
    counter.start()
    try:
        running.set()
        start = time.perf_counter()
        fastnn.mlp_epoch(X, y, W, lr=0.01, batch=100)
        elapsed = time.perf_counter() - start
    finally:
        running.clear()
        counter.join()
    # with the GIL held for the whole epoch the counter would barely move
    assert ticks[0] > 2000 * elapsed, (ticks[0], elapsed)


def test_same_seed_same_threads_is_bitwise_reproducible(cpp, threads):
    for n in (1, 2):
        threads(n)
        first, second = _train(3), _train(3)
        for a, b in zip(first, second):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("sizes", [(300, 200, 10), (300, 120, 50, 10)], ids=["2-layer", "3-layer"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_results(cpp, threads, dtype, sizes):
    # With 1, 2 and 3 threads the layers after the first are split into 1, 2 and 3 shares of
    # the batch's rows (and of each later W's rows): the results must not move a bit.
    results = []
    for n in (1, 2, 3):
        threads(n)
        X, y, W = _model(5, n=512 + 37, sizes=sizes, dtype=dtype)
        fastnn.mlp_epoch(X, y, W, lr=0.05, batch=256)
        results.append(W)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("skip_zeros", [False, True], ids=["dense", "skip-zeros"])
@pytest.mark.parametrize("epoch", ["nn_epoch", "train_epoch"])
def test_batches_past_the_gemm_depth_block_do_not_depend_on_the_thread_count(cpp, threads, skip_zeros, epoch):
    """A batch of 500 rows is deeper than the GEMM's KC (256): how the products over the batch's
    rows are blocked then depends on their shapes, so every product must keep its shape whatever
    the thread count (a W_2 update split into one share per thread did not: 1 thread and 2 gave
    different bits for batches of about 330 to 650 rows). Dense X and zero-skipped X alike."""
    rng = np.random.default_rng(11)
    X = (rng.standard_normal((1100, 120)) * (rng.random((1100, 120)) < 0.15)).astype(np.float32)
    y = rng.integers(0, 10, 1100)
    W = [(rng.standard_normal((120, 400)) / 11).astype(np.float32),
         (rng.standard_normal((400, 10)) / 20).astype(np.float32)]
    results = []
    with _skip_zeros(skip_zeros):
        for n in (1, 2, 3):
            threads(n)
            Wc = [w.copy() for w in W]
            if epoch == "nn_epoch":
                fastnn.nn_epoch(X, y, *Wc, lr=0.05, batch=500)
                results.append((None, Wc))
            else:
                results.append((fastnn.train_epoch(X, y, Wc, lr=0.05, batch=500), Wc))
    for loss, Wc in results[1:]:
        assert loss == results[0][0]
        for a, b in zip(results[0][1], Wc):
            np.testing.assert_array_equal(a, b)


@pytest.fixture(params=[-1, 1], ids=["shared-lists", "lists-per-panel"])
def panel_lists(request):
    """The 2-thread zero-skipping epoch's sorted lists forced shared or per panel (train_epoch.hpp)."""
    from fastnn import _core
    previous = _core._panel_lists_tuning(request.param)
    yield request.param
    _core._panel_lists_tuning(previous)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shuffled", [False, True], ids=["in-order", "shuffled"])
def test_zero_skipping_compaction_does_not_depend_on_the_thread_count(cpp, threads, dtype, shuffled, panel_lists):
    """Each batch of a mostly-zero dense X is compacted to CSR: on 1 thread into one copy, on 2
    into a copy per thread (each panel's thread reads its own, and sorts its nonzeros by column
    into lists of its own or a share of lists both read), on 3 into one copy shared by chunks of
    rows (batch_compaction.hpp). 1103 rows in batches of 100 end on a 3-row batch (compacted on
    one thread: too small to share), biases and an L2-free Adam use the panels' fused update.
    Parameters, optimizer buffers and the loss must not move a bit."""
    rng = np.random.default_rng(21)
    X = (rng.random((1103, 784)) * (rng.random((1103, 784)) < 0.2)).astype(dtype)
    y = rng.integers(0, 10, 1103)
    order = rng.permutation(1103) if shuffled else None
    W0 = [(rng.standard_normal((784, 160)) / 28).astype(dtype), (rng.standard_normal((160, 10)) / 13).astype(dtype)]
    b0 = [np.zeros(160, dtype), np.zeros(10, dtype)]
    results = []
    with _skip_zeros(True):
        for n in (1, 2, 3):
            threads(n)
            W, b = [w.copy() for w in W0], [v.copy() for v in b0]
            opt = fastnn.Adam()
            losses = [fastnn.train_epoch(X, y, W, b, optimizer=opt, lr=0.01, batch=100, order=order)
                      for _ in range(2)]
            results.append((losses, W + b + list(opt.ms) + list(opt.vs)))
    first_losses, first_arrays = results[0]
    assert np.isfinite(first_losses).all() and first_losses[1] < first_losses[0]
    for losses, arrays in results[1:]:
        assert losses == first_losses
        assert len(arrays) == len(first_arrays) == 12   # W, b, and Adam's m and v of each
        for a, c in zip(first_arrays, arrays):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("d,k,batch,last", [(784, 10, 100, 7), (784, 10, 100, 1), (300, 12, 64, 7), (37, 3, 9, 7)],
                         ids=["mnist-shape", "one-row-last-batch", "two-class-blocks", "narrow"])
def test_softmax_epoch_thread_count_does_not_change_results(cpp, threads, softmax_teams, isa, dtype, d, k, batch,
                                                            last):
    """The fused softmax epoch splits each batch's forward and gradient by rows (each thread's
    rows' B·k logits end mid-vector for 3 threads of the MNIST shape: the gradient's last partial
    vector must not touch the next thread's rows). Its update runs, on 2 threads, as a chain over
    the same rows (each thread's sums handed on to the next, register block by register block,
    the scalar tail of 300 features and the second block of 12 classes too; a last batch of one
    row leaves the first thread none), on 3 by blocks of features: 1, 2 and 3 threads must give
    the same bits, with every ISA's kernels (vectors of 4, 8 and 16 floats: other tails)."""
    rng = np.random.default_rng(d + k)
    X = rng.standard_normal((5 * batch + last, d)).astype(dtype)
    y = rng.integers(0, k, X.shape[0])
    results = []
    for n in (1, 2, 3):
        threads(n)
        theta = np.full((d, k), 0.01, dtype)
        fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=batch)
        results.append(theta)
    np.testing.assert_array_equal(results[0], results[1])
    np.testing.assert_array_equal(results[0], results[2])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("d1", [100, 400, 47])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_first_layer_in_column_panels_does_not_change_results(cpp, threads, optimizer, d1, dtype):
    """Dense X on several threads: W_1 (and its optimizer's buffers) is split into one column
    panel per thread, each thread running the first layer's products and W_1's update on its own
    panel (d_1 = 100 and 400 on 2 and 3 threads; 47 is too narrow for panels). Biases, every
    optimizer, a last batch shorter than the rest, and an L2 term (whose ‖W_1‖² in the loss is kept
    as the sums of W_1's columns, each thread refreshing its own panel's: ColumnSquares): the
    parameters, the optimizer's buffers and the loss must not move a bit with the thread count."""
    rng = np.random.default_rng(d1)
    X = rng.standard_normal((437, 150)).astype(dtype)
    y = rng.integers(0, 10, 437)
    W = [(rng.standard_normal((150, d1)) / 12).astype(dtype), (rng.standard_normal((d1, 10)) / 10).astype(dtype)]
    b = [rng.standard_normal(d1).astype(dtype) * 0.1, np.zeros(10, dtype)]
    make = {"sgd": lambda: fastnn.SGD(), "momentum": lambda: fastnn.SGD(momentum=0.9, nesterov=True),
            "adam": lambda: fastnn.Adam()}[optimizer]
    for alpha in (0.0, 1e-3):
        results = []
        for n in (1, 2, 3):
            threads(n)
            Wc, bc, opt = [w.copy() for w in W], [v.copy() for v in b], make()
            losses = [fastnn.train_epoch(X, y, Wc, bc, opt, lr=0.01, batch=100, alpha=alpha) for _ in range(2)]
            buffers = [np.array(x, copy=True) for group in opt.buffers() if group for x in group if x is not None]
            results.append((losses, Wc, bc, buffers))
        for losses, Wc, bc, buffers in results[1:]:
            assert losses == results[0][0]
            for a, c in zip(results[0][1] + results[0][2] + results[0][3], Wc + bc + buffers):
                np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("sizes", [(150, 100, 96, 10), (150, 400, 10)])
def test_later_gradients_shared_by_work_do_not_change_results(cpp, threads, optimizer, sizes):
    """Dense X in column panels: the later layers' weight and bias gradients (chunks of 32 rows or
    columns) run in the first layer's team, each given to the thread whose work is smallest so far
    (share_by_work), after its panels. With a second hidden layer of 96 units they spread over
    the threads (W_1's 100 columns split 48 | 52 on 2 threads); with 784-400-10's shape they all
    go to the narrower panel's thread. Biases, SGD with momentum and Adam, an L2 term, a last
    batch shorter than the rest: 1, 2 and 3 threads give the same bits, losses included."""
    rng = np.random.default_rng(sum(sizes))
    X = rng.standard_normal((437, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], 437)
    W = [(rng.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32) for a, b in zip(sizes[:-1], sizes[1:])]
    b = [(rng.standard_normal(n) * 0.1).astype(np.float32) for n in sizes[1:]]
    make = {"sgd": lambda: fastnn.SGD(momentum=0.9), "adam": lambda: fastnn.Adam()}[optimizer]
    results = []
    for n in (1, 2, 3):
        threads(n)
        Wc, bc, opt = [w.copy() for w in W], [v.copy() for v in b], make()
        losses = [fastnn.train_epoch(X, y, Wc, bc, opt, lr=0.01, batch=100, alpha=1e-3) for _ in range(2)]
        buffers = [np.array(x, copy=True) for group in opt.buffers() if group for x in group if x is not None]
        results.append((losses, Wc + bc + buffers))
    assert np.isfinite(results[0][0]).all() and results[0][0][1] < results[0][0][0]
    for losses, arrays in results[1:]:
        assert losses == results[0][0]
        for a, c in zip(results[0][1], arrays):
            np.testing.assert_array_equal(a, c)


@contextlib.contextmanager
def _dense_strips(setting):
    """The dense epoch's W_1 in panels of the GEMM's NR columns (1), row-major (-1), or by d_1 (0)."""
    from fastnn import _core
    previous = _core._dense_strips_tuning(setting)
    try:
        yield
    finally:
        _core._dense_strips_tuning(previous)


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
@pytest.mark.parametrize("d1", [20, 47, 100, 400])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_first_layer_in_strips_gives_the_row_major_bits(cpp, threads, isa, optimizer, d1, dtype):
    """Dense X: W_1 is kept for the epoch in panels of the micro-kernel's NR columns (32 floats on
    AVX-512, 16 on AVX2), which the first layer's GEMMs read as packed micro-panels; on several
    threads, each thread's column panel in such strips. The strips' last one is narrower (400 =
    12·32 + 16, 100 = 3·32 + 4), and a 16-column strip of a wide product must take the wide
    product's blocked path, not the narrow-output path a 16-column product would. Biases, an L2
    term, Adam's buffers, a last batch shorter than the rest, 1 and 2 threads, every ISA: the
    parameters, buffers and losses equal the row-major W_1's to the bit; and hw0's nn_epoch too."""
    rng = np.random.default_rng(d1 + 5)
    X = rng.standard_normal((437, 150)).astype(dtype)
    y = rng.integers(0, 10, 437)
    W = [(rng.standard_normal((150, d1)) / 12).astype(dtype), (rng.standard_normal((d1, 10)) / 10).astype(dtype)]
    b = [rng.standard_normal(d1).astype(dtype) * 0.1, np.zeros(10, dtype)]
    make = {"sgd": lambda: fastnn.SGD(momentum=0.9), "adam": lambda: fastnn.Adam()}[optimizer]
    for n in (1, 2):
        threads(n)
        for alpha in (0.0, 1e-3):
            results = []
            for setting in (-1, 1):
                with _dense_strips(setting), _skip_zeros(False):
                    Wc, bc, opt = [w.copy() for w in W], [v.copy() for v in b], make()
                    losses = [fastnn.train_epoch(X, y, Wc, bc, opt, lr=0.01, batch=100, alpha=alpha)
                              for _ in range(2)]
                    buffers = [np.array(x, copy=True) for group in opt.buffers() if group for x in group
                               if x is not None]
                    results.append((losses, Wc + bc + buffers))
            assert not np.array_equal(results[0][1][0], W[0])
            assert results[1][0] == results[0][0]
            for a, c in zip(results[0][1], results[1][1]):
                np.testing.assert_array_equal(a, c)
        hw0 = []
        for setting in (-1, 1):
            with _dense_strips(setting), _skip_zeros(False):
                Wc = [w.copy() for w in W]
                fastnn.nn_epoch(X, y, Wc[0], Wc[1], lr=0.1, batch=100)
                hw0.append(Wc)
        for a, c in zip(*hw0):
            np.testing.assert_array_equal(a, c)


def test_dense_strips_setting_is_checked(cpp):
    from fastnn import _core
    previous = _core._dense_strips_tuning()
    with pytest.raises(ValueError, match="strips must be -1, 0 or 1, got 3"):
        _core._dense_strips_tuning(3)
    assert _core._dense_strips_tuning() == previous


@pytest.mark.parametrize("weights", [np.float32, np.float64], ids=["float32", "float32-rows-float64-weights"])
def test_shuffled_batches_gathered_on_several_threads_give_the_same_bits(cpp, threads, weights):
    """A shuffled batch of dense rows (and float32 rows under float64 weights) is gathered into
    scratch by the threads, a share of the rows each, when it holds at least 2^15 values (here
    100 rows × 400): every row lands where one thread would put it, so 1, 2 and 3 threads agree."""
    rng = np.random.default_rng(7)
    n, d = 450, 400
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = rng.integers(0, 10, n)
    W = [(rng.standard_normal((d, 64)) / 20).astype(weights), (rng.standard_normal((64, 10)) / 8).astype(weights)]
    b = [np.zeros(64, weights), np.zeros(10, weights)]
    order = rng.permutation(n)
    results = []
    for t in (1, 2, 3):
        threads(t)
        Wc, bc = [w.copy() for w in W], [v.copy() for v in b]
        losses = [fastnn.train_epoch(X, y, Wc, bc, fastnn.Adam(), lr=1e-3, batch=100, order=order, alpha=1e-4)
                  for _ in range(2)]
        results.append((losses, Wc + bc))
    assert not np.array_equal(results[0][1][0], W[0])
    for losses, params in results[1:]:
        assert losses == results[0][0]
        for a, c in zip(results[0][1], params):
            np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("d1", [100, 400])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_l2_term_over_column_panels_gives_the_whole_matrix_bits(cpp, threads, d1, dtype):
    """With an L2 term the loss holds (α/2)·‖W‖², W_1's part summed over the threads' column panels
    in the order of the whole (padded) matrix. A large α makes that term most of the loss, so a sum
    taken in any other order shows in the loss's bits."""
    rng = np.random.default_rng(d1 + 1)
    X = rng.standard_normal((300, 150)).astype(dtype)
    y = rng.integers(0, 10, 300)
    W = [(rng.standard_normal((150, d1)) / 3).astype(dtype), (rng.standard_normal((d1, 10)) / 10).astype(dtype)]
    results = []
    for n in (1, 2, 3):
        threads(n)
        Wc = [w.copy() for w in W]
        results.append([fastnn.train_epoch(X, y, Wc, None, fastnn.Adam(), lr=1e-3, batch=100, alpha=50.0)
                        for _ in range(2)])
    assert results[0][0] > 10   # (the L2 term dominates)
    assert results[1] == results[0] and results[2] == results[0]


def test_panel_lists_setting_is_checked_and_the_team_probe_answers(cpp, threads):
    from fastnn import _core
    previous = _core._panel_lists_tuning()
    with pytest.raises(ValueError, match="lists must be -1, 0 or 1, got 2"):
        _core._panel_lists_tuning(2)
    assert _core._panel_lists_tuning() == previous
    threads(2)
    round_trip = _core._team_round_trip_ns()
    assert round_trip == 0 or 1 < round_trip < 1e7   # (0: OpenMP gave no team of two)
