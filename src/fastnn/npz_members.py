"""Reading the `.npy` members of an `.npz` (zip) archive that may be hostile, with bounded memory.

    with NpzMembers(path) as npz:
        header = npz.header("W0")         # NpyHeader(dtype, shape, fortran_order, nbytes): reads
                                          # the member's first bytes only
        W0 = npz.read("W0", header)       # allocates header.nbytes, never more

Every check that can be made without reading array data is made before any array is allocated:
the zip's central directory (member names, compression method, declared sizes), then each
member's `.npy` header (bounded in size, parsed by NumPy without evaluating code). An array is
read only when its header's dtype × shape equals the member's uncompressed size, and that size
is physically possible for the member's compressed size (deflate expands at most ~1032:1), so a
small file cannot make the reader allocate much more than it could really hold.

Errors are `NpzError` (a ValueError) whose message says what is wrong; the caller adds the file.
"""
import io
import math
import os
import zipfile
import zlib
from collections import namedtuple

import numpy as np

NpyHeader = namedtuple("NpyHeader", "dtype shape fortran_order nbytes header_bytes")

MAX_NPY_HEADER = 4096          # np.save writes 128 bytes for any array fastnn saves
_DEFLATE_MAX_RATIO = 1100      # deflate's hard limit is 1032:1; a little slack
_READ_CHUNK = 1 << 20


class NpzError(ValueError):
    """The archive or one of its members is malformed (message without the file name)."""


class NpzMembers:
    """The `.npy` members of a zip archive, by name without the `.npy` suffix."""

    def __init__(self, path):
        self.path = os.fspath(path)
        self.archive_bytes = os.path.getsize(self.path)
        try:
            self.zip = zipfile.ZipFile(self.path)
        except zipfile.BadZipFile as exc:
            raise NpzError(f"truncated or corrupt .npz archive: {exc}") from None
        try:
            self.infos = self._member_infos()
        except BaseException:
            self.zip.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.zip.close()

    @property
    def names(self):
        return list(self.infos)

    def _member_infos(self):
        infos = {}
        for info in self.zip.infolist():
            name = info.filename
            if not name.endswith(".npy") or "/" in name:
                raise NpzError(f"unexpected member {name[:60]!r} (only .npy arrays belong in a model file)")
            key = name[:-4]
            if key in infos:
                raise NpzError(f"member {name[:60]!r} appears twice")
            _check_sizes(info, self.archive_bytes)
            infos[key] = info
        return infos

    def header(self, key):
        """The member's `.npy` header, checked against the member's declared size."""
        info = self.infos[key]
        with self._open(info) as f:
            header = _read_npy_header(f, key)
        if header.header_bytes + header.nbytes != info.file_size:
            raise NpzError(f"{key}: its header declares {header.dtype} {header.shape} "
                           f"({header.nbytes:,} bytes), but the member holds "
                           f"{info.file_size - header.header_bytes:,} bytes of data")
        return header

    def read(self, key, header):
        """The member's array, as `header` (from `header(key)`) declares it."""
        info = self.infos[key]
        out = np.empty(header.shape, dtype=header.dtype, order="F" if header.fortran_order else "C")
        view = memoryview(out.reshape(-1, order="A")).cast("B") if out.size else memoryview(b"")
        with self._open(info) as f:
            f.read(header.header_bytes)
            done = 0
            while done < header.nbytes:
                got = f.readinto(view[done:done + _READ_CHUNK])
                if not got:
                    raise NpzError(f"{key}: truncated data ({done:,} of {header.nbytes:,} bytes)")
                done += got
            if f.read(1):     # also makes zipfile check the CRC at the end of the member
                raise NpzError(f"{key}: data after the declared {header.nbytes:,} bytes")
        return out

    def _open(self, info):
        try:
            return _Guarded(self.zip.open(info))
        except (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, zlib.error) as exc:
            raise NpzError(f"{info.filename}: {type(exc).__name__}: {exc}") from None


class _Guarded:
    """A zip member stream whose low-level errors become NpzError."""
    _ERRORS = (zipfile.BadZipFile, NotImplementedError, OSError, EOFError, zlib.error)

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def _call(self, method, *args):
        try:
            return getattr(self.f, method)(*args)
        except self._ERRORS as exc:
            raise NpzError(f"{self.f.name}: {type(exc).__name__}: {exc}") from None

    def read(self, n):
        return self._call("read", n)

    def readinto(self, buffer):
        return self._call("readinto", buffer)


def _check_sizes(info, archive_bytes):
    """Declared sizes that no real member can have: more compressed bytes than the archive, or
    more uncompressed bytes than its compression method can produce from them."""
    name = info.filename[:60]
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise NpzError(f"{name}: compression method {info.compress_type} is not supported "
                       f"(only stored and deflate)")
    if info.compress_size > archive_bytes:
        raise NpzError(f"{name}: declares {info.compress_size:,} compressed bytes in a "
                       f"{archive_bytes:,}-byte file")
    limit = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
        _DEFLATE_MAX_RATIO * info.compress_size + 1024
    if info.file_size > limit:
        raise NpzError(f"{name}: declares {info.file_size:,} uncompressed bytes from "
                       f"{info.compress_size:,} compressed ones, which is impossible")


def _read_npy_header(f, key):
    magic = f.read(8)
    if len(magic) < 8 or magic[:6] != b"\x93NUMPY":
        raise NpzError(f"{key}: not a .npy array (no NumPy magic string)")
    major = magic[6]
    if major not in (1, 2):
        raise NpzError(f"{key}: .npy format version {major}.{magic[7]} is not supported")
    length_bytes = 2 if major == 1 else 4
    raw_length = f.read(length_bytes)
    if len(raw_length) < length_bytes:
        raise NpzError(f"{key}: truncated .npy header")
    length = int.from_bytes(raw_length, "little")
    if length > MAX_NPY_HEADER:
        raise NpzError(f"{key}: .npy header of {length:,} bytes (at most {MAX_NPY_HEADER} allowed)")
    text = f.read(length)
    if len(text) < length:
        raise NpzError(f"{key}: truncated .npy header")
    stream = io.BytesIO(raw_length + text)
    try:
        reader = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = reader(stream, max_header_size=MAX_NPY_HEADER + 1)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise NpzError(f"{key}: malformed .npy header ({exc})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise NpzError(f"{key}: dtype {dtype} is not a plain numeric or string type")
    nbytes = math.prod(shape) * dtype.itemsize
    return NpyHeader(dtype, tuple(shape), bool(fortran_order), nbytes, 8 + length_bytes + length)
