"""Pixels: X as uint8 values and a scale, taken by softmax_regression_epoch on both backends."""
import numpy as np
import pytest

import fastnn
from conftest import softmax_epoch_on_both_backends, saved_num_threads
from fastnn import Pixels


def _images(rng, n=203, d=97):
    return rng.integers(0, 256, (n, d), dtype=np.uint8)


# ---- the object ----------------------------------------------------------------------------

def test_values_are_one_float32_rounding_of_pixel_times_scale():
    rng = np.random.default_rng(0)
    images = _images(rng)
    X = Pixels(images, scale=1 / 255)
    expected = images.astype(np.float32) * np.float32(1 / 255)
    np.testing.assert_array_equal(X.to_float32(), expected)
    np.testing.assert_array_equal(X[10:20], expected[10:20])
    np.testing.assert_array_equal(X[np.array([5, 1, 7])], expected[[5, 1, 7]])
    assert X.shape == images.shape and len(X) == images.shape[0] and X.dtype == np.float32
    assert X.scale == np.float32(1 / 255)
    assert "Pixels(shape=(203, 97)" in repr(X)


def test_pixels_are_a_read_only_view_and_other_layouts_are_copied():
    rng = np.random.default_rng(1)
    big = _images(rng, 50, 60)
    view = big[:, 5:45]                      # rows of contiguous bytes, row stride 60: used as is
    X = Pixels(view, 0.5)
    assert np.shares_memory(X.pixels, big)
    assert not X.pixels.flags.writeable
    with pytest.raises(ValueError):
        X.pixels[0, 0] = 1
    F = Pixels(np.asfortranarray(view), 0.5)   # column-major: copied into rows
    assert F.pixels.flags.c_contiguous
    np.testing.assert_array_equal(F.to_float32(), X.to_float32())


@pytest.mark.parametrize("pixels,error,match", [
    ([[1, 2], [3, 4]], TypeError, "pixels: expected a 2-D uint8 numpy.ndarray"),
    (np.zeros((3, 4), np.float32), TypeError, "pixels: expected dtype uint8, got float32"),
    (np.zeros((3, 4), np.int8), TypeError, "pixels: expected dtype uint8, got int8"),
    (np.zeros((2, 3, 4), np.uint8), ValueError, "pixels: expected a 2-D array"),
    (np.zeros((0, 4), np.uint8), ValueError, "pixels: expected a non-empty array"),
])
def test_bad_pixels_are_refused(pixels, error, match):
    with pytest.raises(error, match=match):
        Pixels(pixels, 1.0)


@pytest.mark.parametrize("scale,error", [
    ("0.5", TypeError), (True, TypeError), (None, TypeError),
    (0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
    (1e40, ValueError),   # finite, but not as float32
])
def test_bad_scales_are_refused(scale, error):
    with pytest.raises(error, match="scale"):
        Pixels(np.ones((2, 3), np.uint8), scale)


def test_only_the_softmax_epoch_takes_pixels():
    rng = np.random.default_rng(2)
    X = Pixels(_images(rng, 20, 8), 0.1)
    y = rng.integers(0, 3, 20)
    W1, W2 = np.zeros((8, 5), np.float32), np.zeros((5, 3), np.float32)
    with pytest.raises(TypeError, match="X: only softmax_regression_epoch takes X as Pixels"):
        fastnn.nn_epoch(X, y, W1, W2)
    with pytest.raises(TypeError, match="X: only softmax_regression_epoch"):
        fastnn.evaluate(X, y, [W1, W2])
    with pytest.raises(TypeError, match="to_float32"):
        np.asarray(X)           # no silent conversion anywhere else either
    assert not W1.any() and not W2.any()


# ---- the epoch -------------------------------------------------------------------------------

@pytest.mark.parametrize("threads", [1, 2, 3])
def test_cpp_epoch_on_pixels_is_bitwise_the_float32_epoch(isa, threads, softmax_teams):
    """Widening each batch in the core gives exactly the epoch on X's float32 values, on every
    ISA and thread count (each thread widens into its own buffer)."""
    if "cpp" not in fastnn.available_backends():
        pytest.skip("cpp backend not built")
    rng = np.random.default_rng(3)
    X = Pixels(_images(rng, 537, 301), 1 / 255)
    y = rng.integers(0, 12, 537)
    saved = saved_num_threads()
    fastnn.set_num_threads(threads)
    try:
        with fastnn.use_backend("cpp"):
            a = np.full((301, 12), 0.01, np.float32)
            b = a.copy()
            fastnn.softmax_regression_epoch(X, y, a, lr=0.5, batch=64)
            fastnn.softmax_regression_epoch(X.to_float32(), y, b, lr=0.5, batch=64)
    finally:
        fastnn.set_num_threads(saved)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - 0.01).max() > 1e-3   # it trained


def test_pixel_epoch_agrees_with_numpy(isa, dtype):
    """cpp and NumPy on the same Pixels; float64 weights beside float32 data as NumPy promotes."""
    if "cpp" not in fastnn.available_backends():
        pytest.skip("cpp backend not built")
    rng = np.random.default_rng(4)
    X = Pixels(_images(rng, 300, 784), 1 / 255)
    y = rng.integers(0, 10, 300)
    expected, theta = softmax_epoch_on_both_backends(X, y, np.zeros((784, 10), dtype), lr=0.1, batch=50)
    assert theta.dtype == dtype
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(theta, expected, **tol)


def test_numpy_epoch_on_pixels_is_the_float32_epoch(backend):
    rng = np.random.default_rng(5)
    X = Pixels(_images(rng, 90, 33), 0.01)
    y = rng.integers(0, 4, 90)
    a = np.zeros((33, 4), np.float32)
    b = a.copy()
    with fastnn.use_backend(backend):
        fastnn.softmax_regression_epoch(X, y, a, lr=0.2, batch=16)
        fastnn.softmax_regression_epoch(X.to_float32(), y, b, lr=0.2, batch=16)
    np.testing.assert_array_equal(a, b)


def test_bad_arguments_leave_theta_untouched(backend):
    rng = np.random.default_rng(6)
    X = Pixels(_images(rng, 40, 12), 0.1)
    theta = np.ones((12, 3), np.float32)
    with fastnn.use_backend(backend):
        with pytest.raises(ValueError, match="y: expected 40 labels"):
            fastnn.softmax_regression_epoch(X, np.zeros(39, np.int64), theta)
        with pytest.raises(ValueError, match="theta: expected 12 rows"):
            fastnn.softmax_regression_epoch(X, np.zeros(40, np.int64), np.ones((11, 3), np.float32))
        with pytest.raises(ValueError, match="y"):
            fastnn.softmax_regression_epoch(X, np.full(40, 3), theta)   # label 3 with 3 classes
        with pytest.raises(ValueError, match="batch"):
            fastnn.softmax_regression_epoch(X, np.zeros(40, np.int64), theta, batch=0)
    np.testing.assert_array_equal(theta, 1)


def test_theta_sharing_memory_with_the_pixels_is_refused(backend):
    """An update of theta would change X in the middle of the epoch."""
    theta = np.zeros((6, 2), np.float32)
    X = Pixels(theta.view(np.uint8).reshape(6, 8)[:, :6], 1.0)   # theta's own bytes, read as pixels
    with fastnn.use_backend(backend):
        with pytest.raises(ValueError, match="theta"):
            fastnn.softmax_regression_epoch(X, np.zeros(6, np.int64), theta)
