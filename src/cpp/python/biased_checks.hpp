// Boundary checks for the biased networks and optimizer buffers of train_epoch.hpp (the
// bias-free ones live in array_checks.hpp). Nothing converts or copies: every failure is a
// TypeError/ValueError naming the argument, raised before anything is modified.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "python/array_checks.hpp"
#include "epochs/train_epoch.hpp"

namespace fastnn {
namespace py = pybind11;

// A writeable C-contiguous array of dtype T with exactly `n` elements and the given
// dimensionality (1 for biases, 2 for weights' buffers).
template <typename T>
T* writeable_array(const py::handle& obj, const std::string& name, py::ssize_t ndim,
                   std::int64_t rows, std::int64_t cols) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(name + ": expected a numpy.ndarray, got " +
                             py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    const py::array a = py::reinterpret_borrow<py::array>(obj);
    require_dtype<T>(a, name.c_str());
    const bool shape_ok = ndim == 1 ? (a.ndim() == 1 && a.shape(0) == cols)
                                    : (a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols);
    if (!shape_ok)
        throw py::value_error(name + ": expected shape " +
                              (ndim == 1 ? "(" + std::to_string(cols) + ",)"
                                         : "(" + std::to_string(rows) + ", " + std::to_string(cols) + ")") +
                              ", got " + shape_of(a));
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(name + ": expected a C-contiguous array (updated in place)");
    if (!a.writeable())
        throw py::value_error(name + ": expected a writeable array (updated in place), got a read-only one");
    return static_cast<T*>(const_cast<void*>(a.data()));
}

// Weights W_1 … W_L (as network() checks them) and biases: a list of L entries, each None or a
// vector of d_i values; or None for no biases at all.
template <typename T>
BiasedNetwork<T> biased_network(const py::list& weights, const py::object& biases,
                                std::int64_t features, bool writeable) {
    const Network<T> plain = network<T>(weights, features, writeable);
    BiasedNetwork<T> net{plain.W, std::vector<T*>(plain.W.size(), nullptr), plain.dims};
    if (biases.is_none()) return net;
    const py::list b = biases.cast<py::list>();
    if (b.size() != weights.size())
        throw py::value_error("biases: expected " + std::to_string(weights.size()) +
                              " entries (one per layer), got " + std::to_string(b.size()));
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (b[i].is_none()) continue;
        const std::string name = "biases[" + std::to_string(i) + "]";
        if (writeable) {
            net.b[i] = writeable_array<T>(b[i], name, 1, 1, net.dims[i + 1]);
        } else {
            if (!py::isinstance<py::array>(b[i])) throw py::type_error(name + ": expected a numpy.ndarray");
            const py::array a = b[i].cast<py::array>();
            require_dtype<T>(a, name.c_str());
            if (a.ndim() != 1 || a.shape(0) != net.dims[i + 1] || !(a.flags() & py::array::c_style))
                throw py::value_error(name + ": expected a contiguous array of shape (" +
                                      std::to_string(net.dims[i + 1]) + ",), got " + shape_of(a));
            net.b[i] = static_cast<T*>(const_cast<void*>(a.data()));
        }
    }
    return net;
}

// One optimizer buffer list: an entry per parameter (W_1 … W_L, b_1 … b_L), each shaped like
// its parameter, or None (allowed only where the parameter is absent, or when `optional`).
template <typename T>
std::vector<T*> buffer_list(const py::list& buffers, const BiasedNetwork<T>& net, const char* list_name,
                            bool optional) {
    const std::int64_t L = net.layers();
    if (static_cast<std::int64_t>(buffers.size()) != 2 * L)
        throw py::value_error(std::string(list_name) + ": expected " + std::to_string(2 * L) +
                              " entries (weights then biases), got " + std::to_string(buffers.size()));
    std::vector<T*> out(static_cast<std::size_t>(2 * L), nullptr);
    for (std::int64_t p = 0; p < 2 * L; ++p) {
        const std::int64_t i = p % L;
        const bool is_bias = p >= L;
        const bool present = !is_bias || net.b[i] != nullptr;
        const std::string name = std::string(list_name) + "[" + std::to_string(p) + "]";
        if (buffers[p].is_none()) {
            if (present && !optional) throw py::value_error(name + ": expected an array, got None");
            continue;
        }
        if (!present) continue;
        out[p] = is_bias ? writeable_array<T>(buffers[p], name, 1, 1, net.dims[i + 1])
                         : writeable_array<T>(buffers[p], name, 2, net.dims[i], net.dims[i + 1]);
    }
    return out;
}

// Row indices: int64, 1-D, contiguous, each in [0, n).
inline const std::int64_t* row_order(const py::array& order, std::int64_t n, std::int64_t& count) {
    if (!order.dtype().equal(py::dtype::of<std::int64_t>()))
        throw py::type_error("order: expected dtype int64, got " + dtype_of(order));
    if (order.ndim() != 1 || !(order.flags() & py::array::c_style))
        throw py::value_error("order: expected a contiguous 1-D array, got shape " + shape_of(order));
    count = order.shape(0);
    const auto* p = static_cast<const std::int64_t*>(order.data());
    for (std::int64_t i = 0; i < count; ++i)
        if (p[i] < 0 || p[i] >= n)
            throw py::value_error("order: expected row indices in [0, " + std::to_string(n) + "), got " +
                                  std::to_string(p[i]) + " at index " + std::to_string(i));
    return p;
}

}  // namespace fastnn
