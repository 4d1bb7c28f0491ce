// The vector types of the per-ISA kernel files (softmax_epoch_kernels.hpp, sparse_kernels.hpp):
// GCC/Clang vector extensions of FASTNN_VECTOR_BYTES bytes (16, 32, 64), which the including
// .cpp file defines together with its instruction-set flags. Everything is in an anonymous
// namespace, so that each of those files keeps its own copy: the linker must never merge an
// AVX-512 instantiation into the generic path.
#pragma once

#include <cstring>

#ifndef FASTNN_VECTOR_BYTES
#error "define FASTNN_VECTOR_BYTES before including vector_lanes.hpp"
#endif

namespace fastnn::vector_lanes {
namespace {

template <typename T> struct VectorOf;
template <> struct VectorOf<float> { typedef float type __attribute__((vector_size(FASTNN_VECTOR_BYTES))); };
template <> struct VectorOf<double> { typedef double type __attribute__((vector_size(FASTNN_VECTOR_BYTES))); };
template <typename T> using Vec = typename VectorOf<T>::type;
template <typename T> constexpr int kLanes = FASTNN_VECTOR_BYTES / static_cast<int>(sizeof(T));

// x in every lane. (x − 0 is x for every x, −0 included, so this is one broadcast; 0 + x is
// not, and compiles to an add before the broadcast.)
template <typename T> inline Vec<T> splat(T x) { return x - Vec<T>{}; }

// v, kept in a register: stops the compiler from folding the load that produced v into every
// instruction that uses it (one load per use, which makes a kernel load-bound).
// (x86 only, and only where the vector fits a register of the file's flags: a 32-byte vector in a
// file built without AVX, as when CMake's FASTNN_X86_KERNELS is OFF, has no register to name.)
template <typename V> inline V in_register(V v) {
#if (defined(__x86_64__) || defined(__i386__)) && \
    (FASTNN_VECTOR_BYTES <= 16 || (FASTNN_VECTOR_BYTES == 32 && defined(__AVX__)) || defined(__AVX512F__))
    asm("" : "+v"(v));
#endif
    return v;
}

// Unaligned loads and stores of one vector.
template <typename T> inline Vec<T> load(const T* p) { Vec<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <typename T> inline void store(T* p, const Vec<T>& v) { std::memcpy(p, &v, sizeof v); }

}  // namespace
}  // namespace fastnn::vector_lanes
