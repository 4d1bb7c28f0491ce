"""`SparseRows`: a read-only matrix in compressed sparse row (CSR) form, the sparse kind of X
that `fastnn.train_epoch` accepts.

Row r holds the value data[t] in column indices[t] for t in [indptr[r], indptr[r + 1]); every
other entry is zero. On the cpp backend only the first layer uses the sparsity (X W_1 and
∇W_1 = Xᵀ G_1 skip the zeros: nonzeros × d_1 multiply-adds instead of rows × d_0 × d_1), which
pays for mostly-zero data such as MNIST (19% nonzero). The NumPy backend gathers each batch as
dense rows (`rows`).

    S = SparseRows.from_dense(X)               # or SparseRows(data, indices, indptr, shape)
    S = SparseRows.from_scipy(m)               # any scipy.sparse matrix or array
    fastnn.train_epoch(S, y, weights, biases, Adam(), lr=1e-3, batch=200)

scipy is not needed: `from_scipy` only calls the matrix's own methods.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from ._typing import ArrayLike, FloatArray, IntArray

from . import validation as v

try:
    from . import _core
except ImportError:   # no compiled core: from_dense works in NumPy
    _core = None

_INT32_MAX = np.iinfo(np.int32).max


def _vector(a, name, integer):
    """`a` as a 1-D ndarray of an integer (or float32/float64) dtype; nothing is copied here."""
    a = v._plain_ndarray(a, name) if isinstance(a, np.ndarray) else np.asarray(a)
    if integer and (a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{name}: expected an integer dtype, got {a.dtype}")
    if not integer and a.dtype not in v.FLOAT_DTYPES:
        raise TypeError(f"{name}: expected dtype float32 or float64, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got {a.ndim}-D with shape {a.shape}")
    return a


def _frozen(a, dtype):
    """A read-only, C-contiguous, aligned array of `dtype`: `a` itself (a read-only view of it)
    when it already is one, else a copy."""
    a = np.require(a, dtype=dtype, requirements=["C_CONTIGUOUS", "ALIGNED"]).view()
    a.flags.writeable = False
    return a


class SparseRows:
    """An immutable CSR matrix of float32 or float64 values.

    Attributes: `data` (the stored values, float32/float64), `indices` (their columns, int32,
    non-decreasing within each row; a repeated column adds up), `indptr` (int64, rows + 1
    offsets from 0 to nnz), `shape`, `dtype`, `nnz` (stored values) and `density`
    (nnz / (rows · cols)). The arrays are read-only; they are the caller's own memory when that
    already had the right dtype and layout (do not modify it afterwards), else copies.

    SparseRows(data, indices, indptr, shape) checks everything once and raises TypeError
    (dtype) or ValueError (shape, lengths, offsets, column range, order) naming the argument.
    """

    __slots__ = ("_data", "_indices", "_indptr", "_shape")

    def __init__(self, data: ArrayLike, indices: ArrayLike, indptr: ArrayLike, shape: Sequence[int]) -> None:
        shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
        if (not isinstance(shape, tuple) or len(shape) != 2 or
                not all(isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_)) for s in shape)):
            raise TypeError(f"shape: expected a pair of integers (rows, cols), got {shape!r}")
        rows, cols = int(shape[0]), int(shape[1])
        if rows < 0 or not 0 <= cols <= _INT32_MAX:
            raise ValueError(f"shape: expected rows >= 0 and 0 <= cols <= 2**31 - 1, got {(rows, cols)}")
        data = _vector(data, "data", integer=False)
        indices = _vector(indices, "indices", integer=True)
        indptr = _vector(indptr, "indptr", integer=True)
        nnz = data.shape[0]
        if indices.shape[0] != nnz:
            raise ValueError(f"indices: expected {nnz} entries (one per value in data), got {indices.shape[0]}")
        if indptr.shape[0] != rows + 1:
            raise ValueError(f"indptr: expected {rows + 1} entries (rows + 1), got {indptr.shape[0]}")
        if int(indptr[0]) != 0 or int(indptr[-1]) != nnz:
            raise ValueError(f"indptr: expected offsets from 0 to {nnz} (the number of values), "
                             f"got {int(indptr[0])} … {int(indptr[-1])}")
        v._check_index_range(indptr, "indptr", nnz + 1, "offsets")   # now int64 is exact
        indptr = indptr.astype(np.int64, copy=False)
        drops = np.flatnonzero(np.diff(indptr) < 0)
        if drops.shape[0]:
            r = int(drops[0])
            raise ValueError(f"indptr: expected non-decreasing offsets, got {indptr[r]} then {indptr[r + 1]} "
                             f"at row {r}")
        v._check_index_range(indices, "indices", cols, "column indices")
        indices = indices.astype(np.int32, copy=False)
        descents = np.diff(indices) < 0                  # descents[t - 1]: indices[t] < indices[t - 1]
        row_starts = indptr[1:-1]                        # where a row begins, a descent is fine
        descents[row_starts[(row_starts > 0) & (row_starts < nnz)] - 1] = False
        if descents.any():
            t = int(np.argmax(descents)) + 1
            r = int(np.searchsorted(indptr, t, side="right")) - 1
            raise ValueError(f"indices: expected sorted column indices within each row, got {indices[t - 1]} "
                             f"then {indices[t]} in row {r}")
        self._set(_frozen(data, data.dtype), _frozen(indices, np.int32), _frozen(indptr, np.int64), (rows, cols))

    def _set(self, data, indices, indptr, shape):
        self._data, self._indices, self._indptr, self._shape = data, indices, indptr, shape

    @classmethod
    def _trusted(cls, data, indices, indptr, shape):
        """Arrays built by fastnn itself, valid by construction: frozen without the checks."""
        self = cls.__new__(cls)
        self._set(_frozen(data, data.dtype), _frozen(indices, np.int32), _frozen(indptr, np.int64), shape)
        return self

    @property
    def data(self) -> FloatArray:
        """the stored values (float32 or float64), read-only"""
        return self._data

    @property
    def indices(self) -> npt.NDArray[np.int32]:
        """the column of each value (int32), read-only"""
        return self._indices

    @property
    def indptr(self) -> npt.NDArray[np.int64]:
        """row r's values are data[indptr[r]:indptr[r + 1]]"""
        return self._indptr

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)"""
        return self._shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """the dtype of the values"""
        return self._data.dtype

    @property
    def nnz(self) -> int:
        """the number of stored values"""
        return int(self._data.shape[0])

    @property
    def density(self) -> float:
        """nnz / (rows · cols): the fraction of entries stored (0.0 for an empty matrix)."""
        size = self._shape[0] * self._shape[1]
        return self.nnz / size if size else 0.0

    @classmethod
    def from_dense(cls, X: ArrayLike, dtype: npt.DTypeLike = None, max_density: float = 1.0) -> Optional[SparseRows]:
        """The nonzeros of the 2-D float32/float64 array X (NaN counts as nonzero and is kept)
        as SparseRows of `dtype` (None: X's dtype), or None when more than `max_density` of X's
        entries are nonzero: the nonzeros are counted first, so a dense X costs one pass over it
        and nothing is allocated. Uses the compiled core (threaded) when it imports, else NumPy."""
        X = v.as_float_matrix(X, "X")
        dtype = X.dtype if dtype is None else np.dtype(dtype)
        if dtype not in v.FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        max_density = v.as_nonnegative(max_density, "max_density")
        if X.shape[1] > _INT32_MAX:
            raise ValueError(f"X: expected at most 2**31 - 1 columns (int32 indices), got {X.shape[1]}")
        if _core is not None:
            X = np.require(X, requirements=["C_CONTIGUOUS", "ALIGNED"])
            # the core converts float32 X to float64 values; the other way round, we do
            parts = _core.dense_to_csr(X, dtype if X.dtype.itemsize <= dtype.itemsize else X.dtype, max_density)
            if parts is None:
                return None
            data, indices, indptr = parts
        else:
            nonzero = X != 0                                   # NaN != 0: kept
            if np.count_nonzero(nonzero) > max_density * X.shape[0] * X.shape[1]:
                return None
            row_of, indices = np.nonzero(nonzero)              # row by row, columns increasing
            data = X[row_of, indices]
            indptr = np.zeros(X.shape[0] + 1, np.int64)
            np.cumsum(np.count_nonzero(nonzero, axis=1), out=indptr[1:])
        return cls._trusted(data.astype(dtype, copy=False), indices, indptr, X.shape)

    @classmethod
    def from_scipy(cls, m: Any) -> SparseRows:
        """A scipy.sparse matrix or array (any format) as SparseRows. Duplicate entries are
        summed and indices sorted on a copy (`m` is left as it is); values must already be
        float32/float64."""
        if not hasattr(m, "tocsr") or not hasattr(m, "shape"):
            raise TypeError(f"m: expected a scipy.sparse matrix or array, got {type(m).__name__}")
        if len(m.shape) != 2:
            raise ValueError(f"m: expected a 2-D sparse matrix, got shape {m.shape}")
        csr = m.tocsr()
        if not csr.has_canonical_format:   # unsorted or repeated columns
            csr = csr.copy() if csr is m else csr
            csr.sum_duplicates()           # also sorts the indices
        return cls(csr.data, csr.indices, csr.indptr, csr.shape)

    def rows(self, idx: Union[slice, IntArray]) -> FloatArray:
        """The rows `idx` (a slice or integer row indices) as a dense 2-D array of `dtype`."""
        selected = np.arange(self._shape[0])[idx]
        starts, stops = self._indptr[selected], self._indptr[selected + 1]
        lengths = stops - starts
        # positions in data/indices of the stored values of the selected rows, row after row
        offsets = np.cumsum(lengths) - lengths
        positions = np.repeat(starts - offsets, lengths) + np.arange(lengths.sum())
        out = np.zeros((selected.shape[0], self._shape[1]), self.dtype)
        np.add.at(out, (np.repeat(np.arange(selected.shape[0]), lengths), self._indices[positions]),
                  self._data[positions])                   # add: a repeated column sums
        return out

    def toarray(self) -> FloatArray:
        """The whole matrix as a dense 2-D array of `dtype`."""
        return self.rows(slice(None))

    def __repr__(self) -> str:
        return (f"SparseRows(shape={self._shape}, dtype={self.dtype}, nnz={self.nnz}, "
                f"density={self.density:.3g})")
