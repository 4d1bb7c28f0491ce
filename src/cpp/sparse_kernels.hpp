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
#include "vector_lanes.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fastnn::sparse_detail {
namespace {

using std::int64_t;

using namespace fastnn::vector_lanes;   // Vec<T>, kLanes<T>, load, store

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
        for (int v = 0; v < NA; ++v) acc[v] = acc[v] < T(0) ? Vec<T>{} : acc[v];   // NaN stays NaN, as in the GEMM
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
    for (int64_t j = 0; j < n; ++j) out[j] = relu && acc[j] < T(0) ? T(0) : acc[j];
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
// A block of result rows kb0 … kb1 − 1 (columns kb0 … kb1 − 1 of A) at a time. First the
// block's nonzeros are sorted by column (a counting sort into small cache-resident lists, rows in
// increasing order within each column); then each result row is summed in registers, one
// vector chunk of columns at a time: G[c − kb0] = Σ_{(r, a) in column c} a · D[r]. Each result
// row sums its terms in row order. n is a multiple of the vector width (D and G are padded).
template <typename T, int NV>
void gather_chunk(const BlockLists<T>& lists, int64_t ncols, const T* D, int64_t ldd, int64_t j0, T* G, int64_t ldg) {
    constexpr int W = kLanes<T>;
    for (int64_t c = 0; c < ncols; ++c) {
        Vec<T> acc[NV];
        for (int v = 0; v < NV; ++v) acc[v] = Vec<T>{};
        for (int64_t e = lists.start[c]; e < lists.start[c + 1]; ++e) {
            const T a = lists.value[e];
            const T* d = D + static_cast<int64_t>(lists.row[e]) * ldd + j0;
            for (int v = 0; v < NV; ++v) acc[v] += a * load(d + v * W);   // acc += a · D[r]
        }
        for (int v = 0; v < NV; ++v) store(G + c * ldg + j0 + v * W, acc[v]);
    }
}

// The lists of block kb0 … kb1 − 1: its nonzeros by column (rows in increasing order within a
// column); cursor[r] is the first nonzero of row r of A in a column >= kb0, and is moved past
// column kb1 − 1. `lists` has room for A.rows × (kb1 − kb0) entries and kb1 − kb0 + 1 starts.
template <typename T>
void block_lists(const SparseRowsView<T>& A, int64_t* cursor, int64_t kb0, int64_t kb1, const BlockLists<T>& lists) {
    const int64_t ncols = kb1 - kb0;
    int64_t* start = lists.start;
    std::fill(start, start + ncols + 1, int64_t(0));
    for (int64_t r = 0; r < A.rows; ++r)   // count each column's entries
        for (int64_t t = cursor[r], e = A.end[r]; t < e && A.indices[t] < kb1; ++t) ++start[A.indices[t] - kb0 + 1];
    for (int64_t c = 0; c < ncols; ++c) start[c + 1] += start[c];
    for (int64_t r = 0; r < A.rows; ++r) {   // fill, rows in order; start[c] runs ahead meanwhile
        int64_t t = cursor[r];
        for (const int64_t e = A.end[r]; t < e && A.indices[t] < kb1; ++t) {
            const int64_t p = start[A.indices[t] - kb0]++;
            lists.row[p] = static_cast<std::int32_t>(r);
            lists.value[p] = A.values[t];
        }
        cursor[r] = t;
    }
    for (int64_t c = ncols; c > 0; --c) start[c] = start[c - 1];   // back to the columns' starts
    start[0] = 0;
}

// G (ncols rows, stride ldg) = Σ over each list of a · D[r, 0:n] (n a multiple of the vector width).
template <typename T>
void gather_block(const BlockLists<T>& lists, int64_t ncols, const T* D, int64_t ldd, int64_t n, T* G, int64_t ldg) {
    constexpr int W = kLanes<T>;
    for (int64_t j0 = 0; j0 < n; j0 += kMaxVectors * W) {
        switch (std::min<int64_t>(kMaxVectors, (n - j0) / W)) {
            case 1: gather_chunk<T, 1>(lists, ncols, D, ldd, j0, G, ldg); break;
            case 2: gather_chunk<T, 2>(lists, ncols, D, ldd, j0, G, ldg); break;
            case 3: gather_chunk<T, 3>(lists, ncols, D, ldd, j0, G, ldg); break;
            case 4: gather_chunk<T, 4>(lists, ncols, D, ldd, j0, G, ldg); break;
            case 5: gather_chunk<T, 5>(lists, ncols, D, ldd, j0, G, ldg); break;
            case 6: gather_chunk<T, 6>(lists, ncols, D, ldd, j0, G, ldg); break;
            case 7: gather_chunk<T, 7>(lists, ncols, D, ldd, j0, G, ldg); break;
            default: gather_chunk<T, 8>(lists, ncols, D, ldd, j0, G, ldg); break;
        }
    }
}

// G (kb1 − kb0 rows, stride n) = rows kb0 … kb1 − 1 of Aᵀ D: the block's lists, then the gather.
template <typename T>
void transpose_block(const SparseRowsView<T>& A, int64_t* cursor, int64_t kb0, int64_t kb1, const T* D,
                     int64_t ldd, int64_t n, T* G, const BlockLists<T>& lists) {
    block_lists<T>(A, cursor, kb0, kb1, lists);
    gather_block<T>(lists, kb1 - kb0, D, ldd, n, G, n);
}

// ---- Dense rows to CSR (dense_to_csr in sparse_rows.cpp, and per batch in training).
//
// The number of nonzeros of x[0 … cols) (NaN counts as nonzero, ±0 does not).
int64_t count_row_f32(const float* x, int64_t cols) {
    int64_t count = 0, c = 0;
#if defined(__AVX512F__)
    for (; c + 16 <= cols; c += 16)
        count += __builtin_popcount(static_cast<unsigned>(
            _mm512_cmp_ps_mask(_mm512_loadu_ps(x + c), _mm512_setzero_ps(), _CMP_NEQ_UQ)));
#endif
    for (; c < cols; ++c) count += x[c] != 0.0f;
    return count;
}


// The nonzeros of x[0 … cols) (NaN counts as nonzero, ±0 does not): their columns into idx and
// values into val, in column order; returns how many. idx and val have room for cols + 16
// entries (the vector path stores whole vectors and moves on by the count of nonzeros).
int64_t compact_row_f32(const float* x, int64_t cols, std::int32_t* idx, float* val) {
    int64_t p = 0, c = 0;
#if defined(__AVX512F__)
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (; c + 16 <= cols; c += 16) {
        const __m512 v = _mm512_loadu_ps(x + c);
        const __mmask16 nonzero = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_storeu_ps(val + p, _mm512_maskz_compress_ps(nonzero, v));
        const __m512i columns = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(c)));
        _mm512_storeu_si512(idx + p, _mm512_maskz_compress_epi32(nonzero, columns));
        p += __builtin_popcount(static_cast<unsigned>(nonzero));
    }
#endif
    for (; c < cols; ++c) {   // branch-free: write, then move on only past a nonzero
        idx[p] = static_cast<std::int32_t>(c);
        val[p] = x[c];
        p += x[c] != 0.0f;
    }
    return p;
}

}  // namespace
}  // namespace fastnn::sparse_detail
