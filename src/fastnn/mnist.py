"""Reading MNIST-style IDX files (gzip-compressed or raw).

IDX: a big-endian header — int32 magic (2051 images, 2049 labels), int32 count, and for images
int32 rows, int32 cols — followed by the data as raw uint8, row-major.
"""
from __future__ import annotations

import gzip
import math
import os
import zlib

import numpy as np
import numpy.typing as npt

from ._typing import PathLike

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
_GZIP_SIGNATURE = b"\x1f\x8b"
_CHUNK = 1 << 20
_GZIP_MAX_RATIO = 1100    # deflate expands at most ~1032:1


class _IdxFile:
    """An open IDX file (gzip or raw) whose header has been read and checked; `read_data()`
    then reads exactly the bytes the header declares, into an array allocated for them, so
    memory never exceeds the declared size and a gzip bomb stops at the declared end."""

    def __init__(self, filename, magic, n_dims, what):
        self.filename, self.what = filename, what
        self.raw = open(filename, "rb")
        try:
            self.compressed = self.raw.read(2) == _GZIP_SIGNATURE
            self.raw.seek(0)
            self.f = gzip.GzipFile(fileobj=self.raw, mode="rb") if self.compressed else self.raw
            self.dims, self.header_bytes = self._header(magic, n_dims)
        except BaseException:
            self.raw.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.raw.close()

    def _read(self, n):
        try:
            return self.f.read(n)
        except (OSError, EOFError, zlib.error) as exc:   # zlib.error: a corrupt deflate stream
            raise ValueError(f"{self.filename}: not a readable gzip file ({exc})") from None

    def _header(self, magic, n_dims):
        header_bytes = 4 * (1 + n_dims)
        data = self._read(header_bytes)
        if len(data) >= 4 and int(np.frombuffer(data, dtype=">i4", count=1)[0]) != magic:
            found = int(np.frombuffer(data, dtype=">i4", count=1)[0])
            raise ValueError(f"{self.filename}: not an IDX {self.what} file: magic number {found}, "
                             f"expected {magic}")
        if len(data) < header_bytes:
            raise ValueError(f"{self.filename}: truncated IDX {self.what} file: {len(data)} bytes, "
                             f"expected a header of {header_bytes}")
        dims = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=1 + n_dims)[1:])
        if any(d < 0 for d in dims):
            raise ValueError(f"{self.filename}: corrupt IDX header: negative dimension in {dims}")
        return dims, header_bytes

    @property
    def data_bytes(self):
        return math.prod(self.dims)

    def read_data(self):
        """The uint8 data, shaped as the header says; ValueError when the file holds fewer or
        more bytes (a raw file's size is checked before anything is read)."""
        expected = self.header_bytes + self.data_bytes
        size = os.fstat(self.raw.fileno()).st_size
        if not self.compressed and size != expected:
            self._wrong_size(size, expected)
        if self.compressed and expected > _GZIP_MAX_RATIO * size + 1024:
            raise ValueError(f"{self.filename}: corrupt IDX {self.what} file: dimensions {self.dims} "
                             f"declare {expected:,} bytes, more than a {size:,}-byte gzip file can hold")
        out = np.empty(self.data_bytes, dtype=np.uint8)
        view, done = memoryview(out), 0
        while done < self.data_bytes:
            chunk = self._read(min(_CHUNK, self.data_bytes - done))
            if not chunk:
                self._wrong_size(self.header_bytes + done, expected)
            view[done:done + len(chunk)] = chunk
            done += len(chunk)
        if self._read(1):     # (for gzip, reaching the end also checks the CRC and length)
            raise ValueError(f"{self.filename}: IDX {self.what} file has trailing bytes after the "
                             f"{expected} expected for dimensions {self.dims}")
        return out.reshape(self.dims)

    def _wrong_size(self, size, expected):
        state = "truncated" if size < expected else "has trailing bytes"
        raise ValueError(f"{self.filename}: IDX {self.what} file {state}: {size} bytes, expected "
                         f"{expected} for dimensions {self.dims}")


def _open_images(filename):
    return _IdxFile(filename, IMAGES_MAGIC, 3, "image")


def _open_labels(filename):
    return _IdxFile(filename, LABELS_MAGIC, 1, "label")


def read_idx_images(filename: PathLike) -> npt.NDArray[np.uint8]:
    """uint8 array (count, rows, cols) from an IDX image file."""
    with _open_images(os.fspath(filename)) as f:
        return f.read_data()


def read_idx_labels(filename: PathLike) -> npt.NDArray[np.uint8]:
    """uint8 array (count,) from an IDX label file."""
    with _open_labels(os.fspath(filename)) as f:
        return f.read_data()


def check_labels(labels, num_classes, filename):
    """ValueError naming the file and the first index whose label is not in [0, num_classes)."""
    bad = np.flatnonzero(labels >= num_classes)
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{filename}: label {int(labels[i])} at index {i} is outside the dataset's "
                         f"{num_classes} classes (0 to {num_classes - 1})"
                         + (f"; {bad.size} such labels" if bad.size > 1 else ""))


def parse_mnist(image_filename: PathLike,
                label_filename: PathLike) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
    """Read an MNIST image file and label file (IDX format, gzip or raw).

    Returns:
        X: float32 array (num_examples, rows*cols), pixel values scaled to [0, 1].
        y: uint8 array (num_examples,) of labels.
    Raises ValueError naming the file for a bad magic number, a truncated file, or image and
    label counts that differ. Memory is bounded by the sizes the headers declare: the counts are
    compared before any image is read, and no file is read past its declared end.
    """
    with _open_images(os.fspath(image_filename)) as image_file:
        labels = read_idx_labels(os.fspath(label_filename))
        if image_file.dims[0] != labels.shape[0]:     # before reading (or inflating) any image
            raise ValueError(f"{label_filename}: {labels.shape[0]} labels, but {image_filename} "
                             f"has {image_file.dims[0]} images")
        images = image_file.read_data()
    X = images.reshape(images.shape[0], -1).astype(np.float32)
    X /= np.float32(255.0)
    return X, labels.copy()
