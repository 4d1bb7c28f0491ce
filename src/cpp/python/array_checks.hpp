// Checks at the Python/C++ boundary. The Python layer (fastnn.api, fastnn.cpp_backend) has
// already validated and converted every argument; these checks make the extension itself safe
// to call directly: nothing here converts or copies (a parameter updated on a silent copy would
// be lost data), and every failure is a TypeError/ValueError naming the argument, the expected
// and the actual, raised before anything is modified.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include "epochs/mlp.hpp"

namespace fastnn {
namespace py = pybind11;

inline std::string shape_of(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

inline std::string dtype_of(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
const char* dtype_name() {
    if constexpr (std::is_same_v<T, std::uint8_t>) return "uint8";
    return sizeof(T) == 4 ? "float32" : "float64";
}

template <typename T>
void require_dtype(const py::array& a, const char* name) {
    if (!a.dtype().equal(py::dtype::of<T>()))
        throw py::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() + ", got " + dtype_of(a));
}

// The core reads and writes through T*: a misaligned buffer (np.frombuffer at an odd offset)
// would be undefined behaviour, so it is refused (fastnn.cpp_backend copies such arrays first).
template <typename T>
void require_aligned(const py::array& a, const std::string& name) {
    if (reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) != 0)
        throw py::value_error(name + ": expected an array aligned to " + std::to_string(alignof(T)) +
                              " bytes, got a misaligned one");
}

// [begin, end) of the bytes an array's elements may touch (strides of either sign).
inline std::pair<std::uintptr_t, std::uintptr_t> byte_extent(const py::array& a) {
    auto lo = reinterpret_cast<std::uintptr_t>(a.data()), hi = lo;
    for (py::ssize_t i = 0; i < a.ndim(); ++i) {
        if (a.shape(i) == 0) return {lo, lo};
        const auto span = static_cast<std::intptr_t>(a.shape(i) - 1) * a.strides(i);
        if (span < 0) lo -= static_cast<std::uintptr_t>(-span); else hi += static_cast<std::uintptr_t>(span);
    }
    return {lo, hi + static_cast<std::uintptr_t>(a.itemsize())};
}

inline bool may_overlap(const py::array& a, const py::array& b) {
    const auto ea = byte_extent(a), eb = byte_extent(b);
    return ea.first < ea.second && eb.first < eb.second && ea.first < eb.second && eb.first < ea.second;
}

inline void require_2d(const py::array& a, const char* name) {
    if (a.ndim() != 2)
        throw py::value_error(std::string(name) + ": expected a 2-D array, got shape " + shape_of(a));
}

// A read-only matrix with unit column stride and any non-negative row stride (views are fine).
template <typename T>
DataMatrix<T> data_matrix(const py::array& a, const char* name) {
    require_dtype<T>(a, name);
    require_2d(a, name);
    require_aligned<T>(a, name);
    const auto rows = a.shape(0), cols = a.shape(1);
    const auto s0 = a.strides(0), s1 = a.strides(1);
    const auto item = static_cast<py::ssize_t>(sizeof(T));
    if ((cols > 1 && s1 != item) || s0 < 0 || s0 % item != 0 || (rows > 1 && s0 / item < cols))
        throw py::value_error(std::string(name) + ": expected rows of contiguous elements (unit column "
                              "stride), got strides (" + std::to_string(s0) + ", " + std::to_string(s1) + ")");
    return {static_cast<const T*>(a.data()), rows, cols, rows > 1 ? s0 / item : cols};
}

// A matrix updated in place: exact dtype, C-contiguous, writeable.
template <typename T>
T* writeable_matrix(const py::array& a, const char* name) {
    require_dtype<T>(a, name);
    require_2d(a, name);
    if (!(a.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a C-contiguous array (updated in place), "
                              "got a non-contiguous one");
    if (!a.writeable())
        throw py::value_error(std::string(name) + ": expected a writeable array (updated in place), got a read-only one");
    require_aligned<T>(a, name);
    return static_cast<T*>(const_cast<void*>(a.data()));
}

// `out` for a net's logits: a writeable C-contiguous T matrix of shape (rows, k).
template <typename T>
T* logits_out(const py::array& out, std::int64_t rows, std::int64_t k) {
    T* z = writeable_matrix<T>(out, "out");
    if (out.shape(0) != rows || out.shape(1) != k)
        throw py::value_error("out: expected shape (" + std::to_string(rows) + ", " + std::to_string(k) + "), got " +
                              shape_of(out));
    return z;
}

// Labels: int64, 1-D, contiguous, n of them, each in [0, k).
inline const std::int64_t* labels(const py::array& y, std::int64_t n, std::int64_t k, const char* name) {
    if (!y.dtype().equal(py::dtype::of<std::int64_t>()))
        throw py::type_error(std::string(name) + ": expected dtype int64, got " + dtype_of(y));
    if (y.ndim() != 1 || !(y.flags() & py::array::c_style))
        throw py::value_error(std::string(name) + ": expected a contiguous 1-D array, got shape " + shape_of(y));
    require_aligned<std::int64_t>(y, name);
    if (y.shape(0) != n)
        throw py::value_error(std::string(name) + ": expected " + std::to_string(n) + " labels, got " +
                              std::to_string(y.shape(0)));
    const auto* p = static_cast<const std::int64_t*>(y.data());
    for (std::int64_t i = 0; i < n; ++i)
        if (p[i] < 0 || p[i] >= k)
            throw py::value_error(std::string(name) + ": expected labels in [0, " + std::to_string(k) +
                                  "), got " + std::to_string(p[i]) + " at index " + std::to_string(i));
    return p;
}

// The parameters W_1 … W_L: each C-contiguous and writeable (when updated), shapes that chain
// from `features` inputs.
template <typename T>
Network<T> network(const py::list& weights, std::int64_t features, bool writeable) {
    Network<T> net;
    if (weights.size() == 0) throw py::value_error("weights: expected at least one matrix, got none");
    net.dims.push_back(features);
    for (std::size_t i = 0; i < weights.size(); ++i) {
        const std::string name = "weights[" + std::to_string(i) + "]";
        if (!py::isinstance<py::array>(weights[i]))
            throw py::type_error(name + ": expected a numpy.ndarray, got " +
                                 py::str(py::type::of(weights[i]).attr("__name__")).cast<std::string>());
        const py::array W = weights[i].cast<py::array>();
        T* data = nullptr;
        if (writeable) {
            data = writeable_matrix<T>(W, name.c_str());
        } else {
            require_dtype<T>(W, name.c_str());
            require_2d(W, name.c_str());
            if (!(W.flags() & py::array::c_style))
                throw py::value_error(name + ": expected a C-contiguous array");
            require_aligned<T>(W, name);
            data = static_cast<T*>(const_cast<void*>(W.data()));
        }
        if (W.shape(0) != net.dims.back())
            throw py::value_error(name + ": expected " + std::to_string(net.dims.back()) + " rows, got shape " + shape_of(W));
        if (W.shape(1) < 1) throw py::value_error(name + ": expected at least one column, got shape " + shape_of(W));
        net.W.push_back(data);
        net.dims.push_back(W.shape(1));
    }
    return net;
}

// Arrays updated in place must not share memory with the inputs read while they change
// (labels that alias a weight would turn into out-of-range indices mid-epoch).
inline void require_separate(const py::array& input, const char* input_name, const py::list& params) {
    for (std::size_t i = 0; i < params.size(); ++i)
        if (may_overlap(input, params[i].cast<py::array>()))
            throw py::value_error(std::string(input_name) + " and weights[" + std::to_string(i) +
                                  "]: expected separate arrays, got overlapping memory");
}

}  // namespace fastnn
