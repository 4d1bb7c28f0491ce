"""Subnormal numbers: the C++ core computes with them as zero by default (fastnn.set_flush_subnormals).

A saturated softmax makes subnormal gradients, and on Intel CPUs every operation on one is a
microcode assist (an epoch up to 9x slower; docs/reliability.md, "Subnormal numbers"). So each core
call sets FTZ and DAZ on its threads and restores their own modes afterwards. These tests check
that the mode is applied on every thread of a team (results do not depend on the thread count),
that it is given back (NumPy on the calling thread, later IEEE calls), that IEEE mode still
computes subnormals as IEEE says, and that training in the saturated regime stays deterministic
and agrees with the NumPy reference. Timings live in bench/subnormals.py.
"""
import platform

import numpy as np
import pytest

import fastnn

pytestmark = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64", "i686", "i386"),
                                reason="the flush mode is x86's MXCSR; elsewhere the core computes as IEEE says")

# Per dtype: a normal x, a normal w and a subnormal x·w; a subnormal s and a normal v with s·v normal.
TINY = {
    np.float32: dict(x=2.0 ** -100, w=2.0 ** -40, s=2.0 ** -130, v=2.0 ** 20),
    np.float64: dict(x=2.0 ** -540, w=2.0 ** -500, s=2.0 ** -1030, v=2.0 ** 20),
}


@pytest.fixture
def flush():
    saved = fastnn.get_flush_subnormals()
    yield fastnn.set_flush_subnormals
    fastnn.set_flush_subnormals(saved)


def test_on_by_default_and_reported():
    assert fastnn.get_flush_subnormals() is True
    assert fastnn.build_info()["flush_subnormals"] is True


@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.bool_(True)])
def test_setting_must_be_a_bool(bad, flush):
    with pytest.raises(TypeError, match="enabled: expected True or False"):
        fastnn.set_flush_subnormals(bad)
    assert fastnn.get_flush_subnormals() is True


@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_products_follow_the_setting_on_every_thread(cpp, threads, flush, dtype, n_threads):
    # 192 × 128 · 128 × 192 (6 MFLOP) runs on a team of two (every part of C from one of its
    # threads): with the flush, every entry is 0 (FTZ for the subnormal products, DAZ for the
    # subnormal inputs); without, each is what IEEE arithmetic gives, exactly (k equal powers of
    # two summed). A team thread left in the flush mode by the first call would zero its share in
    # the second.
    threads(n_threads)
    t = TINY[dtype]
    m, k = 192, 128
    A, B = np.full((m, k), t["x"], dtype), np.full((k, m), t["w"], dtype)
    S, V = np.full((m, k), t["s"], dtype), np.full((k, m), t["v"], dtype)
    expected = {id(A): dtype(k * t["x"] * t["w"]), id(S): dtype(k * t["s"] * t["v"])}
    assert 0 < expected[id(A)] < np.finfo(dtype).tiny and 0 < S[0, 0] < np.finfo(dtype).tiny
    for enabled in (True, False, True, False):
        flush(enabled)
        for left, right in ((A, B), (S, V)):
            C = fastnn.matmul(left, right)
            if enabled:
                assert not C.any()
            else:
                assert (C == expected[id(left)]).all()


def test_the_calling_thread_gets_its_mode_back(cpp, flush):
    flush(True)
    A = np.full((64, 64), 2.0 ** -100, np.float32)
    assert not fastnn.matmul(A, A * 2.0 ** 60).any()
    # NumPy, on this thread, after the call: still gradual underflow (scalar and SIMD loops).
    tiny = np.float32(2.0 ** -100) * np.float32(2.0 ** -30)
    assert tiny == np.float32(2.0 ** -130)
    assert (np.full(1000, 2.0 ** -100, np.float32) * np.float32(2.0 ** -30) == np.float32(2.0 ** -130)).all()
    assert np.float32(2.0 ** -130) * np.float32(2.0 ** 20) == np.float32(2.0 ** -110)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_saturated_softmax_gradient(cpp, flush, dtype):
    # Logits `gap` below their row's maximum: probabilities e^-gap (float32: e^-100 ≈ 4e-44; float64:
    # e^-720 ≈ 2e-313) below the dtype's smallest normal. With the flush the gradient's entries there
    # are exactly 0; the rest agree with NumPy's reference either way.
    gap = 100.0 if dtype == np.float32 else 720.0
    Z = np.array([[0.0, -gap, -1.0], [5.0, 4.0, 5.0 - gap]], dtype)
    y = np.array([1, 0], np.int64)
    with fastnn.use_backend("numpy"):
        loss_ref, G_ref = fastnn.softmax_cross_entropy(Z, y)
    for enabled in (True, False):
        flush(enabled)
        loss, G = fastnn.softmax_cross_entropy(Z, y)
        np.testing.assert_allclose(loss, loss_ref, rtol=1e-6)
        np.testing.assert_allclose(G, G_ref, rtol=1e-5, atol=1e-30)
        assert np.isfinite(G).all()
        if enabled:
            assert G[1, 2] == 0 and (G[np.abs(G) < np.finfo(dtype).tiny] == 0).all()


def _saturated_problem(dtype, n=400, d=784, h=128, softmax_margin=None, net_margin=None):
    # Every row labelled 0 and class 0's logit a margin above the others' (0): the other classes'
    # probabilities e^-margin are below the dtype's smallest normal, so their gradient columns,
    # and the updates of Θ's and W_2's columns 1-9 (which start at 0), are subnormal: exactly 0
    # with the flush, subnormal without it. (W_2's column 0 is the only one W_2ᵀ passes back, and
    # its gradient (S_0 − 1)/B rounds to 0: W_1 keeps its values either way.) The core's exp gives
    # 0 below e^-87 (float64: e^-708), so the margins lie between that and the smallest normal
    # times B = 100 (e^-82.7; e^-703.8): the probabilities are normal, and subnormal once scaled by 1/B.
    float32 = dtype == np.float32
    softmax_margin = softmax_margin or (84.9 if float32 else 705.9)
    net_margin = net_margin or softmax_margin
    rng = np.random.default_rng(7)
    X = (0.99 + 0.02 * rng.random((n, d))).astype(dtype)   # rows of nearly equal sums: nearly equal margins
    y = np.zeros(n, np.uint8)
    theta = np.zeros((d, 10), dtype)
    theta[:, 0] = softmax_margin / X.sum(1).mean()
    W1 = (rng.random((d, h)) / d).astype(dtype)
    W2 = np.zeros((h, 10), dtype)
    W2[:, 0] = net_margin / np.maximum(X @ W1, 0).sum(1).mean()
    return X, y, theta, W1, W2


def _train(X, y, theta, W1, W2):
    theta, W1, W2 = theta.copy(), W1.copy(), W2.copy()
    fastnn.softmax_regression_epoch(X, y, theta, lr=1.0, batch=100)
    fastnn.nn_epoch(X, y, W1, W2, lr=1.0, batch=100)
    return theta, W1, W2


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_saturated_training_follows_the_setting_not_the_thread_count(cpp, threads, flush, dtype):
    # An epoch opens many regions one after another; each team thread (and the calling thread
    # between regions) must compute in the call's mode, or the columns that only subnormal updates
    # reach would differ with the thread count.
    problem = _saturated_problem(dtype)
    tiny = np.finfo(dtype).tiny
    for enabled in (True, False):
        flush(enabled)
        results = []
        for n in (1, 2, 3):
            threads(n)
            results.append(_train(*problem))
        for other in results[1:]:
            for a, b in zip(results[0], other):
                np.testing.assert_array_equal(a, b)
        theta, W1, W2 = results[0]
        np.testing.assert_array_equal(W1, problem[3])
        for reached in (theta[:, 1:], W2[:, 1:]):
            if enabled:
                assert not reached.any()
            else:
                # (each update subnormal; 600 batches of them add up to a few times the smallest normal)
                assert reached.any() and (np.abs(reached) < 100 * tiny).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_saturated_training_agrees_with_numpy(flush, dtype):
    # NumPy's reference, in IEEE arithmetic, against the core with and without the flush: the
    # values the flush zeroes are below the smallest normal, nothing a tolerance can see. (The
    # core's exp raises e^x below about 1e-37 (float64: 1e-307) to that, so its IEEE results are
    # that far from NumPy's where the softmax saturates: atol.)
    problem = _saturated_problem(dtype, n=200)
    with fastnn.use_backend("numpy"):
        reference = _train(*problem)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    for enabled in (True, False):
        flush(enabled)
        with fastnn.use_backend("cpp"):
            result = _train(*problem)
        for a, b in zip(result, reference):
            np.testing.assert_allclose(a, b, rtol=rtol, atol=100 * np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_fused_softmax_exp_underflows_to_zero_as_numpy(cpp, flush, dtype):
    # Far past the smallest normal (float32: e^-110; float64: e^-760) the probabilities are 0 in
    # NumPy's arithmetic, and in the fused softmax epoch's exp too: even in IEEE mode no subnormal
    # gradient is made (it used to raise e^x to e^-87, then 1/B made a subnormal of it).
    X, y, theta, _, _ = _saturated_problem(dtype, softmax_margin=110.0 if dtype == np.float32 else 760.0)
    flush(False)
    ours = theta.copy()
    fastnn.softmax_regression_epoch(X, y, ours, lr=1.0, batch=100)
    with fastnn.use_backend("numpy"):
        reference = theta.copy()
        fastnn.softmax_regression_epoch(X, y, reference, lr=1.0, batch=100)
    assert not ours[:, 1:].any() and not reference[:, 1:].any()
    np.testing.assert_array_equal(ours, reference)


def test_team_threads_get_their_modes_back(cpp, threads, flush):
    from fastnn import _core
    threads(2)
    for enabled in (True, False):
        flush(enabled)
        _train(*_saturated_problem(np.float32, n=200))
        fastnn.matmul(np.ones((256, 256), np.float32), np.ones((256, 256), np.float32))
        assert _core._team_float_modes(2) == [0, 0]


def test_threads_created_during_a_flushed_call_do_not_keep_the_flush(tmp_path):
    # A new thread starts in its creator's mode: OpenMP's pool, made during the first flushed call
    # of a fresh process, must still be left in the caller's own mode.
    import subprocess
    import sys
    code = (
        "import numpy as np, fastnn\n"
        "from fastnn import _core\n"
        "fastnn.set_backend('cpp'); fastnn.set_num_threads(4)\n"
        "fastnn.matmul(np.ones((512, 512), np.float32), np.ones((512, 512), np.float32))\n"
        "print(_core._team_float_modes(4), np.float32(2.0 ** -100) * np.float32(2.0 ** -30) > 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["[0,", "0,", "0,", "0]", "True"]


def test_estimator_in_the_saturated_regime(flush):
    # The estimators' epochs and predictions go through the same calls: raw 0-255 features.
    from fastnn import _core
    from fastnn.estimators import MLPClassifier
    rng = np.random.default_rng(3)
    X = (rng.random((400, 64)) * 255).astype(np.float32)
    y = (X[:, 0] > X[:, 1]).astype(np.int64) + 2 * (X[:, 2] > 128)
    probabilities = {}
    for enabled in (True, False):
        flush(enabled)
        clf = MLPClassifier((32,), max_iter=3, tol=0, random_state=0, batch_size=50)
        with fastnn.use_backend("cpp"), pytest.warns(Warning, match="Maximum iterations"):
            clf.fit(X, y)
        with fastnn.use_backend("cpp"):
            probabilities[enabled] = clf.predict_proba(X)
        assert np.isfinite(probabilities[enabled]).all()
        assert _core._team_float_modes(2) == [0, 0]
    np.testing.assert_allclose(probabilities[True], probabilities[False], atol=1e-6)
