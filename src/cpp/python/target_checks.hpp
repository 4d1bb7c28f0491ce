// Checks of train_epoch's targets at the Python boundary (output_loss.hpp's Targets): labels for
// the cross-entropy, values for the squared error, optional sample weights.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "python/array_checks.hpp"
#include "epochs/output_loss.hpp"

namespace fastnn {
namespace py = pybind11;

// A read-only C-contiguous array of dtype T with the given shape (cols < 0: 1-D of `rows`).
template <typename T>
const T* contiguous_values(const py::array& a, const char* name, std::int64_t rows, std::int64_t cols) {
    require_dtype<T>(a, name);
    const bool shape_ok = cols < 0 ? (a.ndim() == 1 && a.shape(0) == rows)
                                   : (a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols);
    if (!shape_ok)
        throw py::value_error(std::string(name) + ": expected shape (" + std::to_string(rows) +
                              (cols < 0 ? ",)" : ", " + std::to_string(cols) + ")") + ", got " + shape_of(a));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a C-contiguous array");
    require_aligned<T>(a, name);
    return static_cast<const T*>(a.data());
}

// y as labels ('log_loss') or values ('squared_error') for n rows and k outputs, and the
// sample weights (None, or n finite values >= 0).
template <typename T>
Targets<T> targets(const py::array& y, const std::string& loss, const py::object& sample_weight,
                   std::int64_t n, std::int64_t k) {
    Targets<T> t;
    if (loss == "log_loss") {
        t.loss = OutputLoss::cross_entropy;
        t.labels = labels(y, n, k, "y");
    } else if (loss == "squared_error") {
        t.loss = OutputLoss::squared_error;
        t.values = contiguous_values<T>(y, "y", n, k);
    } else {
        throw py::value_error("loss: expected 'log_loss' or 'squared_error', got '" + loss + "'");
    }
    if (!sample_weight.is_none()) {
        if (!py::isinstance<py::array>(sample_weight))
            throw py::type_error("sample_weight: expected None or a numpy.ndarray");
        t.sample_weight = contiguous_values<T>(sample_weight.cast<py::array>(), "sample_weight", n, -1);
        for (std::int64_t i = 0; i < n; ++i)
            if (!(t.sample_weight[i] >= 0) || !std::isfinite(t.sample_weight[i]))
                throw py::value_error("sample_weight: expected finite values >= 0, got " +
                                      std::to_string(static_cast<double>(t.sample_weight[i])) + " at index " +
                                      std::to_string(i));
    }
    return t;
}

}  // namespace fastnn
