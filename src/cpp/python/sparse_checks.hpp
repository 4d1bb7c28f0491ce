// Boundary checks for CSR inputs (sparse_rows.hpp): nothing is converted or copied, and every
// failure is a TypeError/ValueError naming the argument, raised before anything is modified.
// A column index outside [0, cols) would be an out-of-bounds read of W, so every one is checked.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "python/array_checks.hpp"
#include "sparse/sparse_rows.hpp"

namespace fastnn {
namespace py = pybind11;

inline void require_vector(const py::array& a, const char* name) {
    if (a.ndim() != 1 || !(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a contiguous 1-D array, got shape " + shape_of(a));
}

// CSR with `cols` columns: data (T), indices (int32, each in [0, cols), non-decreasing within
// each row: "sorted indices", as scipy's sort_indices() leaves them) and indptr (int64, rows + 1
// entries, non-decreasing from 0 to the number of stored values). A repeated column adds up.
template <typename T>
SparseRowsView<T> sparse_rows_view(const py::array& data, const py::array& indices, const py::array& indptr,
                                   std::int64_t cols) {
    require_dtype<T>(data, "X.data");
    require_vector(data, "X.data");
    require_aligned<T>(data, "X.data");
    if (!indices.dtype().equal(py::dtype::of<std::int32_t>()))
        throw py::type_error("X.indices: expected dtype int32, got " + dtype_of(indices));
    require_vector(indices, "X.indices");
    require_aligned<std::int32_t>(indices, "X.indices");
    if (!indptr.dtype().equal(py::dtype::of<std::int64_t>()))
        throw py::type_error("X.indptr: expected dtype int64, got " + dtype_of(indptr));
    require_vector(indptr, "X.indptr");
    require_aligned<std::int64_t>(indptr, "X.indptr");
    if (cols < 1 || cols > INT32_MAX)
        throw py::value_error("X: expected between 1 and 2**31 - 1 columns, got " + std::to_string(cols));
    const std::int64_t nnz = data.shape(0);
    if (indices.shape(0) != nnz)
        throw py::value_error("X.indices: expected " + std::to_string(nnz) + " entries (one per stored value), got " +
                              std::to_string(indices.shape(0)));
    if (indptr.shape(0) < 1) throw py::value_error("X.indptr: expected at least one entry, got none");
    const auto* ptr = static_cast<const std::int64_t*>(indptr.data());
    const std::int64_t rows = indptr.shape(0) - 1;
    if (ptr[0] != 0 || ptr[rows] != nnz)
        throw py::value_error("X.indptr: expected to start at 0 and end at " + std::to_string(nnz) +
                              ", got " + std::to_string(ptr[0]) + " … " + std::to_string(ptr[rows]));
    for (std::int64_t r = 0; r < rows; ++r)
        if (ptr[r + 1] < ptr[r])
            throw py::value_error("X.indptr: expected non-decreasing offsets, got " + std::to_string(ptr[r]) +
                                  " then " + std::to_string(ptr[r + 1]) + " at row " + std::to_string(r));
    const auto* idx = static_cast<const std::int32_t*>(indices.data());
    if (!sparse_indices_valid(ptr, idx, rows, cols)) {   // find the first culprit, for the message
        for (std::int64_t r = 0; r < rows; ++r)
            for (std::int64_t t = ptr[r]; t < ptr[r + 1]; ++t) {
                if (idx[t] < 0 || idx[t] >= cols)
                    throw py::value_error("X.indices: expected column indices in [0, " + std::to_string(cols) +
                                          "), got " + std::to_string(idx[t]) + " at position " + std::to_string(t));
                if (t > ptr[r] && idx[t] < idx[t - 1])
                    throw py::value_error("X.indices: expected sorted column indices within each row, got " +
                                          std::to_string(idx[t - 1]) + " then " + std::to_string(idx[t]) +
                                          " in row " + std::to_string(r));
            }
    }
    SparseRowsView<T> view;
    view.rows = rows;
    view.cols = cols;
    view.begin = ptr;
    view.end = ptr + 1;
    view.indices = idx;
    view.values = static_cast<const T*>(data.data());
    return view;
}

}  // namespace fastnn
