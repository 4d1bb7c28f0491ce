"""Reading MNIST-style IDX files (gzip-compressed or raw).

IDX: a big-endian header — int32 magic (2051 images, 2049 labels), int32 count, and for images
int32 rows, int32 cols — followed by the data as raw uint8, row-major.
"""
from __future__ import annotations

import gzip
import os
import zlib

import numpy as np
import numpy.typing as npt

from ._typing import PathLike

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_SIGNATURE = b"\x1f\x8b"


def _read_bytes(filename):
    with open(filename, "rb") as f:
        data = f.read()
    if data[:2] == _GZIP_SIGNATURE:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:   # zlib.error: a corrupt deflate stream
            raise ValueError(f"{filename}: not a readable gzip file ({exc})") from None
    return data


def _header(data, filename, magic, n_dims, what):
    header_bytes = 4 * (1 + n_dims)
    if len(data) >= 4 and int(np.frombuffer(data, dtype=">i4", count=1)[0]) != magic:
        found = int(np.frombuffer(data, dtype=">i4", count=1)[0])
        raise ValueError(f"{filename}: not an IDX {what} file: magic number {found}, expected {magic}")
    if len(data) < header_bytes:
        raise ValueError(f"{filename}: truncated IDX {what} file: {len(data)} bytes, "
                         f"expected a header of {header_bytes}")
    fields = np.frombuffer(data, dtype=">i4", count=1 + n_dims)
    dims = tuple(int(d) for d in fields[1:])
    if any(d < 0 for d in dims):
        raise ValueError(f"{filename}: corrupt IDX header: negative dimension in {dims}")
    expected = header_bytes + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{filename}: IDX {what} file {state}: {len(data)} bytes, expected {expected} "
                         f"for dimensions {dims}")
    return dims, header_bytes


def read_idx_images(filename: PathLike) -> npt.NDArray[np.uint8]:
    """uint8 array (count, rows, cols) from an IDX image file."""
    data = _read_bytes(filename)
    dims, offset = _header(data, filename, IMAGES_MAGIC, 3, "image")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def read_idx_labels(filename: PathLike) -> npt.NDArray[np.uint8]:
    """uint8 array (count,) from an IDX label file."""
    data = _read_bytes(filename)
    dims, offset = _header(data, filename, LABELS_MAGIC, 1, "label")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def parse_mnist(image_filename: PathLike,
                label_filename: PathLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Read an MNIST image file and label file (IDX format, gzip or raw).

    Returns:
        X: float32 array (num_examples, rows*cols), pixel values scaled to [0, 1].
        y: uint8 array (num_examples,) of labels.
    Raises ValueError naming the file for a bad magic number, a truncated file, or image and
    label counts that differ.
    """
    images = read_idx_images(os.fspath(image_filename))
    labels = read_idx_labels(os.fspath(label_filename))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{label_filename}: {labels.shape[0]} labels, but {image_filename} "
                         f"has {images.shape[0]} images")
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= np.float32(255.0)
    return X, labels.copy()
