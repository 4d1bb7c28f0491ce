"""`Pixels`: X kept as uint8 pixels and a scale, the kind of X that `softmax_regression_epoch`
accepts besides a float array.

X's value at (r, c) is float32(pixels[r, c]) * float32(scale), rounded once, as

    pixels.astype(np.float32) * np.float32(scale)

computes it. The softmax epoch is bound by reading X from memory on some CPUs (MNIST: 188 MB of
float32 per epoch against 1.9 GFLOP); as pixels an epoch reads a quarter of those bytes. The cpp
backend widens each batch's rows into a buffer that stays in cache; the NumPy backend widens
each batch with NumPy. Both give the float32 epoch's numbers on X's values, bit for bit on the
cpp backend.

    images = fastnn.mnist.read_idx_images("train-images-idx3-ubyte.gz")   # (60000, 28, 28) uint8
    X = fastnn.Pixels(images.reshape(len(images), -1), scale=1 / 255)
    fastnn.softmax_regression_epoch(X, y, theta, lr=0.1, batch=100)

Other functions take float arrays: `X.to_float32()` gives one.
"""
from __future__ import annotations

import math
import numbers
from typing import Any, NoReturn, Union

import numpy as np
import numpy.typing as npt

from . import validation as v


class Pixels:
    """A read-only matrix X = scale · pixels: `pixels` a 2-D uint8 array (rows of contiguous
    values; a row-strided view is used as it is, other layouts are copied), `scale` a positive
    finite number (X is float32: its values are float32(pixel) · float32(scale))."""

    _pixels: npt.NDArray[np.uint8]
    _scale: np.float32

    def __init__(self, pixels: npt.NDArray[np.uint8], scale: float = 1 / 255) -> None:
        if not isinstance(pixels, np.ndarray):
            raise TypeError(f"pixels: expected a 2-D uint8 numpy.ndarray, got {type(pixels).__name__}")
        pixels = v._plain_ndarray(pixels, "pixels")
        if pixels.dtype != np.uint8:
            raise TypeError(f"pixels: expected dtype uint8, got {pixels.dtype}")
        if pixels.ndim != 2:
            raise ValueError(f"pixels: expected a 2-D array (one row per example), got {pixels.ndim}-D "
                             f"with shape {pixels.shape}")
        if pixels.size == 0:
            raise ValueError(f"pixels: expected a non-empty array, got shape {pixels.shape}")
        if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, numbers.Real):
            raise TypeError(f"scale: expected a real number, got {type(scale).__name__}")
        if not (math.isfinite(float(scale)) and 0 < float(scale) <= float(np.finfo(np.float32).max)
                and np.float32(scale) > 0):
            raise ValueError(f"scale: expected a positive finite float32 value, got {scale!r}")
        scale32 = np.float32(scale)
        if pixels.shape[1] > 1 and pixels.strides[1] != 1 or pixels.strides[0] < pixels.shape[1]:
            pixels = np.ascontiguousarray(pixels)   # rows of contiguous bytes, as the core reads them
        self._pixels = pixels.view()
        self._pixels.flags.writeable = False
        self._scale = scale32

    @property
    def pixels(self) -> npt.NDArray[np.uint8]:
        """the uint8 values (a read-only view)"""
        return self._pixels

    @property
    def scale(self) -> np.float32:
        """the scale, as float32"""
        return self._scale

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)"""
        return (int(self._pixels.shape[0]), int(self._pixels.shape[1]))

    @property
    def dtype(self) -> np.dtype[np.float32]:
        """X's dtype: float32"""
        return np.dtype(np.float32)

    ndim = 2

    def __len__(self) -> int:
        return self._pixels.shape[0]

    def __getitem__(self, rows: Union[slice, npt.NDArray[np.integer[Any]], npt.NDArray[np.bool_]]
                    ) -> npt.NDArray[np.float32]:
        """Rows of X as a float32 array (a slice, an index array or a mask of rows)."""
        return self._pixels[rows].astype(np.float32) * self._scale

    def __array__(self, dtype: Any = None, copy: Any = None) -> NoReturn:
        raise TypeError("Pixels: only softmax_regression_epoch takes X as Pixels; pass X.to_float32() "
                        "where a float array is expected")

    def to_float32(self) -> npt.NDArray[np.float32]:
        """All of X as a float32 array."""
        return self[:]

    def __repr__(self) -> str:
        return f"Pixels(shape={self.shape}, scale={float(self._scale)!r})"
