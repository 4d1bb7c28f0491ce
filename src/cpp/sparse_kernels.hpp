// The vector kernel of sparse_times_dense (see sparse_rows.hpp).
//
// Included by sparse_kernels_{generic,avx2,avx512}.cpp, each compiled with its own instruction-
// set flags and FASTNN_VECTOR_BYTES (16, 32, 64); written with GCC/Clang vector extensions, like
// softmax_epoch_kernels.hpp, and kept in an anonymous namespace for the same reason.
//
// For one output row, a block of up to kMaxVectors vectors of columns is kept in registers
// while the row's nonzeros stream by: each nonzero (value a, column c) adds a · D[c, block]
// (one broadcast, one load and one FMA per vector). When n is not a multiple of the vector
// width, the last n mod W columns are covered by one more vector that ends at column n (it
// overlaps the previous one: every load stays inside D's row) and only its last lanes are
// stored. Below one vector of columns the kernel is scalar.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "sparse_rows.hpp"

#ifndef FASTNN_VECTOR_BYTES
#error "define FASTNN_VECTOR_BYTES before including sparse_kernels.hpp"
#endif

namespace fastnn::sparse_detail {
namespace {

using std::int64_t;

template <typename T> struct VectorOf;
template <> struct VectorOf<float> { typedef float type __attribute__((vector_size(FASTNN_VECTOR_BYTES))); };
template <> struct VectorOf<double> { typedef double type __attribute__((vector_size(FASTNN_VECTOR_BYTES))); };
template <typename T> using Vec = typename VectorOf<T>::type;
template <typename T> constexpr int kLanes = FASTNN_VECTOR_BYTES / static_cast<int>(sizeof(T));

template <typename T> inline Vec<T> load(const T* p) { Vec<T> v; std::memcpy(&v, p, sizeof v); return v; }
template <typename T> inline void store(T* p, const Vec<T>& v) { std::memcpy(p, &v, sizeof v); }

// Accumulators per block: 8 of the 16 vector registers, leaving room for loads and broadcasts.
constexpr int kMaxVectors = 8;

// Columns j0 … j0 + NV·W − 1 of one output row, plus (Tail) the vector of columns n − W … n − 1
// of which only the last `tail` lanes are stored.
template <typename T, int NV, bool Tail>
inline void row_block(const std::int32_t* idx, const T* val, int64_t nnz, const T* D, int64_t ldd,
                      int64_t j0, int64_t n, int64_t tail, const T* init, T* out, bool relu) {
    constexpr int W = kLanes<T>;
    constexpr int NA = NV + (Tail ? 1 : 0);
    Vec<T> acc[NA];
    int64_t col[NA];
    for (int v = 0; v < NV; ++v) col[v] = j0 + v * W;
    if (Tail) col[NA - 1] = n - W;
    for (int v = 0; v < NA; ++v) acc[v] = init ? load(init + col[v]) : Vec<T>{};
    for (int64_t t = 0; t < nnz; ++t) {
        const T a = val[t];
        const T* d = D + static_cast<int64_t>(idx[t]) * ldd;
        for (int v = 0; v < NA; ++v) acc[v] += a * load(d + col[v]);   // acc += a · D[c, block]
    }
    if (relu)
        for (int v = 0; v < NA; ++v) acc[v] = acc[v] > T(0) ? acc[v] : Vec<T>{};
    for (int v = 0; v < NV; ++v) store(out + col[v], acc[v]);
    if (Tail)
        for (int64_t l = W - tail; l < W; ++l) out[n - W + l] = acc[NA - 1][l];
}

template <typename T, int NV>
inline void tail_block(const std::int32_t* idx, const T* val, int64_t nnz, const T* D, int64_t ldd,
                       int64_t j0, int64_t n, int64_t tail, const T* init, T* out, bool relu) {
    if (tail)
        row_block<T, NV, true>(idx, val, nnz, D, ldd, j0, n, tail, init, out, relu);
    else
        row_block<T, NV, false>(idx, val, nnz, D, ldd, j0, n, tail, init, out, relu);
}

// Fewer columns than one vector: scalar, accumulators in a small array.
template <typename T>
inline void narrow_row(const std::int32_t* idx, const T* val, int64_t nnz, const T* D, int64_t ldd,
                       int64_t n, const T* init, T* out, bool relu) {
    T acc[kLanes<T>];
    for (int64_t j = 0; j < n; ++j) acc[j] = init ? init[j] : T(0);
    for (int64_t t = 0; t < nnz; ++t) {
        const T a = val[t];
        const T* d = D + static_cast<int64_t>(idx[t]) * ldd;
        for (int64_t j = 0; j < n; ++j) acc[j] += a * d[j];
    }
    for (int64_t j = 0; j < n; ++j) out[j] = relu && !(acc[j] > T(0)) ? T(0) : acc[j];
}

template <typename T>
void rows_kernel(const SparseRowsView<T>& A, int64_t r0, int64_t r1, const T* D, int64_t ldd, int64_t n,
                 const T* init, T* out, int64_t ldo, bool relu) {
    constexpr int W = kLanes<T>;
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = A.begin[r], nnz = A.end[r] - b;
        const std::int32_t* idx = A.indices + b;
        const T* val = A.values + b;
        T* o = out + r * ldo;
        if (n < W) {
            narrow_row<T>(idx, val, nnz, D, ldd, n, init, o, relu);
            continue;
        }
        int64_t j0 = 0;
        while (true) {
            const int64_t full = (n - j0) / W, tail = (n - j0) % W;
            if (full > kMaxVectors || (full == kMaxVectors && tail)) {   // a whole block, more after it
                row_block<T, kMaxVectors, false>(idx, val, nnz, D, ldd, j0, n, 0, init, o, relu);
                j0 += kMaxVectors * W;
                continue;
            }
            switch (full) {   // the last block: `full` vectors and the overlapping tail vector
                case 0: tail_block<T, 0>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 1: tail_block<T, 1>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 2: tail_block<T, 2>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 3: tail_block<T, 3>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 4: tail_block<T, 4>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 5: tail_block<T, 5>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 6: tail_block<T, 6>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                case 7: tail_block<T, 7>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
                default: tail_block<T, 8>(idx, val, nnz, D, ldd, j0, n, tail, init, o, relu); break;
            }
            break;
        }
    }
}

// ---- Aᵀ D by blocks of rows of the result (sparse_transpose_times_dense in sparse_rows.cpp).
//
// A block of result rows kb0 … kb1 − 1 (columns kb0 … kb1 − 1 of A) is small enough to stay in
// L1. Each row r of A with nonzeros in [kb0, kb1) loads its row of D once into registers and
// adds value · D[r] to the result row of every such nonzero: G[c − kb0] += a · D[r]. Rows r are
// taken in increasing order, so each result row sums its terms in row order. n is a multiple of
// the vector width (D and G are padded), so there is no tail.
template <typename T, int NV>
void block_chunk(const SparseRowsView<T>& A, int64_t* cursor, bool advance, int64_t kb0, int64_t kb1,
                 const T* D, int64_t ldd, int64_t j0, T* G, int64_t ldg) {
    constexpr int W = kLanes<T>;
    for (int64_t r = 0; r < A.rows; ++r) {
        int64_t t = cursor[r];
        const int64_t e = A.end[r];
        if (t < e && A.indices[t] < kb1) {
            Vec<T> d[NV];
            for (int v = 0; v < NV; ++v) d[v] = load(D + r * ldd + j0 + v * W);
            do {
                const T a = A.values[t];
                T* g = G + (A.indices[t] - kb0) * ldg + j0;
                for (int v = 0; v < NV; ++v) store(g + v * W, load(g + v * W) + a * d[v]);   // G[c] += a · D[r]
                ++t;
            } while (t < e && A.indices[t] < kb1);
        }
        if (advance) cursor[r] = t;
    }
}

// G (kb1 − kb0 rows, stride n, zeroed here) = rows kb0 … kb1 − 1 of Aᵀ D; cursor[r] is the first
// nonzero of row r of A in a column >= kb0, and is moved past column kb1 − 1.
template <typename T>
void transpose_block(const SparseRowsView<T>& A, int64_t* cursor, int64_t kb0, int64_t kb1, const T* D,
                     int64_t ldd, int64_t n, T* G) {
    constexpr int W = kLanes<T>;
    std::memset(static_cast<void*>(G), 0, static_cast<std::size_t>((kb1 - kb0) * n) * sizeof(T));
    for (int64_t j0 = 0; j0 < n; j0 += kMaxVectors * W) {
        const int64_t nv = std::min<int64_t>(kMaxVectors, (n - j0) / W);
        const bool last = j0 + kMaxVectors * W >= n;   // the last chunk moves the cursors on
        switch (nv) {
            case 1: block_chunk<T, 1>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            case 2: block_chunk<T, 2>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            case 3: block_chunk<T, 3>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            case 4: block_chunk<T, 4>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            case 5: block_chunk<T, 5>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            case 6: block_chunk<T, 6>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            case 7: block_chunk<T, 7>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
            default: block_chunk<T, 8>(A, cursor, last, kb0, kb1, D, ldd, j0, G, n); break;
        }
    }
}

}  // namespace
}  // namespace fastnn::sparse_detail
