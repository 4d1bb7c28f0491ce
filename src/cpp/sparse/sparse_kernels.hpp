// The vector kernels of sparse_times_dense (see sparse_rows.hpp), of the transpose product's
// gather, and of the compaction of dense rows.
//
// Included by sparse_kernels_{generic,avx2,avx512}.cpp, each compiled with its own instruction-
// set flags and FASTNN_VECTOR_BYTES (16, 32, 64); written with GCC/Clang vector extensions, like
// softmax_epoch_kernels.hpp, and kept in an anonymous namespace for the same reason.
//
// For one output row, a block of up to kMaxVectors vectors of columns (the row's columns in
// blocks as even as can be) is kept in registers while the row's nonzeros stream by: each
// nonzero (value a, column c) adds a · D[c, block] (one broadcast, one load and one FMA per
// vector). When n is not a multiple of the vector width, the last n mod W columns are covered by
// one more vector that ends at column n (it overlaps the previous one: every load stays inside
// D's row) and only its last lanes are stored. Below one vector of columns the kernel is scalar.
// The blocked kernel (blocked_chunk) makes the same sums with D taken a block of rows at a time.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "sparse/sparse_rows.hpp"
#include "runtime/vector_lanes.hpp"

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace fastnn::sparse_detail {
namespace {

using std::int64_t;

using namespace fastnn::vector_lanes;   // Vec<T>, kLanes<T>, load, store

// Accumulators per block: 8 of AVX2's (and SSE's) 16 vector registers, leaving room for loads and
// broadcasts; 9 with AVX-512. Measured on the MNIST h=400 zero-skipping epoch (1 thread, rows of
// 25 vectors in even blocks): 9 + 8 + 8 took 346 ms, 7 + 6 + 6 + 6 360 ms, 13 + 12 370 ms, and the
// uneven 8 + 8 + 8 + 1 389 ms (a whole pass over the nonzeros for one vector). More accumulators
// per pass mean more lines of D in flight per nonzero; fewer, more passes over the nonzeros.
constexpr int kMaxVectors = FASTNN_VECTOR_BYTES == 64 ? 9 : 8;
static_assert(kMaxVectors <= 9, "with_vector_count dispatches up to 9");

// f(std::integral_constant<int, c>{}) for the run-time count c in [0, kMaxVectors] (kMaxVectors <= 9).
template <typename F>
inline void with_vector_count(int64_t c, F&& f) {
    switch (c) {
        case 0: f(std::integral_constant<int, 0>{}); break;
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2 <= kMaxVectors ? 2 : kMaxVectors>{}); break;
        case 3: f(std::integral_constant<int, 3 <= kMaxVectors ? 3 : kMaxVectors>{}); break;
        case 4: f(std::integral_constant<int, 4 <= kMaxVectors ? 4 : kMaxVectors>{}); break;
        case 5: f(std::integral_constant<int, 5 <= kMaxVectors ? 5 : kMaxVectors>{}); break;
        case 6: f(std::integral_constant<int, 6 <= kMaxVectors ? 6 : kMaxVectors>{}); break;
        case 7: f(std::integral_constant<int, 7 <= kMaxVectors ? 7 : kMaxVectors>{}); break;
        case 8: f(std::integral_constant<int, 8 <= kMaxVectors ? 8 : kMaxVectors>{}); break;
        case 9: f(std::integral_constant<int, 9 <= kMaxVectors ? 9 : kMaxVectors>{}); break;
        default: f(std::integral_constant<int, kMaxVectors>{}); break;
    }
}

// The last lanes of v, from lane `first` on, stored at p + first (the tail vector: the lanes
// before it belong to the vector before, which stores them itself).
template <typename T>
inline void store_lanes_from(T* p, const Vec<T>& v, int64_t first) {
    for (int64_t l = first; l < kLanes<T>; ++l) p[l] = v[l];
}

// Columns j0 … j0 + NV·W − 1 of one output row, plus (Tail) the vector of columns n − W … n − 1
// of which only the last `tail` lanes are stored.
template <typename T, int NV, bool Tail>
inline void row_block(const std::int32_t* idx, const T* val, int64_t nnz, const T* D, int64_t ldd,
                      int64_t j0, int64_t n, int64_t tail, const T* init, T* out, bool relu) {
    constexpr int W = kLanes<T>;
    constexpr int NA = NV + (Tail ? 1 : 0);
    // Vector v < NV: columns j0 + v·W …; the tail vector: columns n − W … — offsets from a
    // row's column j0 that are constants but for one (so the accumulators stay in registers).
    const int64_t tail_from = n - W - j0;
    auto at = [&](const T* from_j0, int v) { return v < NV ? from_j0 + v * W : from_j0 + tail_from; };
    Vec<T> acc[NA];
#pragma GCC unroll 16
    for (int v = 0; v < NA; ++v) acc[v] = init ? load(at(init + j0, v)) : Vec<T>{};
    for (int64_t t = 0; t < nnz; ++t) {
        const T a = val[t];
        const T* d = D + static_cast<int64_t>(idx[t]) * ldd + j0;
#pragma GCC unroll 16
        for (int v = 0; v < NA; ++v) acc[v] += a * load(at(d, v));   // acc += a · D[c, block]
    }
    if (relu)
#pragma GCC unroll 16
        for (int v = 0; v < NA; ++v) acc[v] = acc[v] < T(0) ? Vec<T>{} : acc[v];   // NaN stays NaN, as in the GEMM
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) store(out + j0 + v * W, acc[v]);
    if (Tail) store_lanes_from(out + n - W, acc[NA - 1], W - tail);
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

constexpr int64_t kRowGroup = 128;   // blocked_chunk's rows per pass over the blocks (cursors on the stack)

// Rows r0 … r1 − 1 of sparse_times_dense, chunk (columns j0 … j0 + NV·W − 1, plus the Tail
// vector as in row_block) of every row, with D read in blocks of kFeatureBlock of its rows (A's
// columns; sparse_rows.hpp). A chunk's outputs hold partial sums: out = init, then for each block
// of features in turn, each row with nonzeros there loads its partial sums, adds the block's terms
// and stores them; ReLU last. Every output sums init then its terms in the order t = begin[r],
// begin[r] + 1, … (the blocks are in column order, a row's columns increase), with the same
// multiply-adds as row_block's, so the result is the same, bit for bit: a float stored and loaded
// again is the same float. What changes is where D's rows come from: row_block walks all of D for
// each output row (784 × 400 floats, 1.25 MB: more than the L2 of most cores), here each block's
// rows of the chunk (128 × 9 vectors, 72 KB) serve every row of the group before the next block's.
template <typename T, int NV, bool Tail>
void blocked_chunk(const SparseRowsView<T>& A, int64_t r0, int64_t r1, const T* D, int64_t ldd, int64_t j0,
                   int64_t n, int64_t tail, const T* init, T* out, int64_t ldo, bool relu) {
    constexpr int W = kLanes<T>;
    constexpr int NA = NV + (Tail ? 1 : 0);
    const int64_t tail_from = n - W - j0;   // as in row_block
    auto at = [&](auto* from_j0, int v) { return v < NV ? from_j0 + v * W : from_j0 + tail_from; };
    auto put = [&](T* from_j0, int v, const Vec<T>& x) {   // the tail vector: its last `tail` lanes
        if (v < NV) store(from_j0 + v * W, x);
        else store_lanes_from(from_j0 + tail_from, x, W - tail);
    };
    // (Local copies: the compiler cannot tell that the stores to `out` leave A alone.)
    const std::int32_t* const indices = A.indices;
    const T* const values = A.values;
    const int64_t* const end = A.end;
    const int64_t cols = A.cols;
    int64_t cursor[kRowGroup];   // row r's first nonzero not yet added
    for (int64_t g0 = r0; g0 < r1; g0 += kRowGroup) {
        const int64_t g1 = std::min(r1, g0 + kRowGroup);
        for (int64_t r = g0; r < g1; ++r) {
            cursor[r - g0] = A.begin[r];
            T* o = out + r * ldo + j0;
#pragma GCC unroll 16
            for (int v = 0; v < NA; ++v) put(o, v, init ? load(at(init + j0, v)) : Vec<T>{});
        }
        for (int64_t c0 = 0; c0 < cols; c0 += kFeatureBlock) {
            const int64_t c1 = std::min(cols, c0 + kFeatureBlock);
            for (int64_t r = g0; r < g1; ++r) {
                int64_t q = cursor[r - g0];
                const int64_t e = end[r];
                if (q == e || indices[q] >= c1) continue;
                T* o = out + r * ldo + j0;
                Vec<T> acc[NA];
#pragma GCC unroll 16
                for (int v = 0; v < NA; ++v) acc[v] = load(at(o, v));
                do {
                    const T a = values[q];
                    const T* d = D + static_cast<int64_t>(indices[q]) * ldd + j0;
#pragma GCC unroll 16
                    for (int v = 0; v < NA; ++v) acc[v] += a * load(at(d, v));   // acc += a · D[c, chunk]
                } while (++q < e && indices[q] < c1);
#pragma GCC unroll 16
                for (int v = 0; v < NA; ++v) put(o, v, acc[v]);
                cursor[r - g0] = q;
            }
        }
        if (relu)
            for (int64_t r = g0; r < g1; ++r) {
                T* o = out + r * ldo + j0;
#pragma GCC unroll 16
                for (int v = 0; v < NA; ++v) {
                    const Vec<T> x = load(at(o, v));
                    put(o, v, x < T(0) ? Vec<T>{} : x);   // NaN stays NaN, as in row_block
                }
            }
    }
}

// The columns of an output row in blocks of at most `most` (<= kMaxVectors) vectors, as even as
// can be (400 floats: 9 + 8 + 8 vectors rather than 9 + 9 + 7), the last block ending with the
// overlapping tail vector when n is not a multiple of W: f(NV, Tail, j0) for each, NV and Tail as
// compile-time constants.
template <typename T, typename F>
inline void for_each_column_block(int64_t n, F&& f, int64_t most = kMaxVectors) {
    constexpr int W = kLanes<T>;
    const int64_t full = n / W, tail = n % W, vectors = full + (tail ? 1 : 0);
    const int64_t blocks = (vectors + most - 1) / most;
    int64_t j0 = 0;
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t nv = vectors / blocks + (blk < vectors % blocks ? 1 : 0);
        const bool last = blk == blocks - 1;
        const int64_t nfull = last && tail ? nv - 1 : nv;   // whole vectors in this block
        with_vector_count(nfull, [&](auto c) {
            if (last && tail) f(c, std::true_type{}, j0);
            else f(c, std::false_type{}, j0);
        });
        j0 += nfull * W;
    }
}

template <typename T>
void rows_kernel(const SparseRowsView<T>& A, int64_t r0, int64_t r1, const T* D, int64_t ldd, int64_t n,
                 const T* init, T* out, int64_t ldo, bool relu) {
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = A.begin[r], nnz = A.end[r] - b;
        const std::int32_t* idx = A.indices + b;
        const T* val = A.values + b;
        T* o = out + r * ldo;
        if (n < kLanes<T>) {
            narrow_row<T>(idx, val, nnz, D, ldd, n, init, o, relu);
            continue;
        }
        for_each_column_block<T>(n, [&](auto nv, auto tail_c, int64_t j0) {
            row_block<T, decltype(nv)::value, decltype(tail_c)::value>(idx, val, nnz, D, ldd, j0, n, n % kLanes<T>,
                                                                       init, o, relu);
        });
    }
}

// The same rows, D read in blocks of its rows (blocked_chunk); below one vector of columns, rows_kernel.
template <typename T>
void rows_blocked_kernel(const SparseRowsView<T>& A, int64_t r0, int64_t r1, const T* D, int64_t ldd, int64_t n,
                         const T* init, T* out, int64_t ldo, bool relu) {
    if (n < kLanes<T>) {
        rows_kernel<T>(A, r0, r1, D, ldd, n, init, out, ldo, relu);
        return;
    }
    for_each_column_block<T>(n, [&](auto nv, auto tail_c, int64_t j0) {
        blocked_chunk<T, decltype(nv)::value, decltype(tail_c)::value>(A, r0, r1, D, ldd, j0, n, n % kLanes<T>, init,
                                                                       out, ldo, relu);
    });
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
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) acc[v] = Vec<T>{};
        for (int64_t e = lists.start[c]; e < lists.start[c + 1]; ++e) {
            const ListEntry<T> x = lists.entry[e];
            const T a = x.value;
            const T* d = D + static_cast<int64_t>(x.row) * ldd + j0;
#pragma GCC unroll 16
            for (int v = 0; v < NV; ++v) acc[v] += a * load(d + v * W);   // acc += a · D[r]
        }
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) store(G + c * ldg + j0 + v * W, acc[v]);
    }
}

// Where a row of D takes more than one pass (more than kMaxVectors vectors), passes of at most
// `pass_vectors` vectors (clamped to [1, kMaxVectors]; the caller's choice, gather_pass_vectors in
// sparse_rows.cpp): each pass reads its columns of every row of D (the batch's G_1), and the passes
// ran fastest where those reads fit the L1 data cache. With AVX-512's 64-byte vectors and 100 rows
// a pass of 9 reads 57.6 KB, 5 read 32 KB, 7 read 44.8 KB. Measured on the 2-vCPU Zen 4 (32 KB
// L1d), raw MNIST, epochs new/old (tools/ab_epochs.py, 15-21 rounds): 784-400-10 0.961-0.968 on 1
// thread (25 vectors: 5 × 5 instead of 9 + 8 + 8; 7 + 6 + 6 + 6: 0.976) and 0.981-0.989 on 2
// (panels of 12 and 13 vectors: 4 + 4 + 4 and 5 + 4 + 4 instead of 6 + 6 and 7 + 6);
// 784-256-128-10 1.004 (4 × 4 instead of 8 + 8). A row that fits one pass keeps it: 784-100-10's 7
// vectors in passes of 4 + 3 took 1.032. kGatherMinPassVectors is the ISA's smallest pass (AVX2's
// passes of 8: 25.6 KB), which a larger L1 may raise.
constexpr int kGatherMinPassVectors = FASTNN_VECTOR_BYTES == 64 ? 5 : kMaxVectors;

// G (ncols rows, stride ldg) = Σ over each list of a · D[r, 0:n] (n a multiple of the vector width).
template <typename T>
void gather_block(const BlockLists<T>& lists, int64_t ncols, const T* D, int64_t ldd, int64_t n, T* G, int64_t ldg,
                  int pass_vectors) {
    const int64_t vectors = n / kLanes<T>;   // (no tail vector: n is a whole number of them)
    const int64_t most = vectors > kMaxVectors ? std::min<int64_t>(kMaxVectors, std::max(1, pass_vectors)) : kMaxVectors;
    for_each_column_block<T>(n, [&](auto nv, auto, int64_t j0) {
        constexpr int NV = decltype(nv)::value;
        if constexpr (NV > 0) gather_chunk<T, NV>(lists, ncols, D, ldd, j0, G, ldg);
    }, most);
}

// ---- Dense rows to CSR (dense_to_csr in sparse_rows.cpp, and per batch in training).
//
#if !defined(__AVX512F__) && defined(__AVX2__)
// AVX2 has no compress: the nonzero lanes of 8 are moved to the front by a permutation looked up
// by their mask. Entry m holds, in its 4-bit field i, the lane of the i-th set bit of m (the
// fields past the set bits are 0: the lanes they fill are past the count, never read).
struct LeftPackTable {
    std::uint32_t lanes[256];
};
constexpr LeftPackTable make_left_pack_table() {
    LeftPackTable t{};
    for (int m = 0; m < 256; ++m) {
        int i = 0;
        for (int lane = 0; lane < 8; ++lane)
            if (m >> lane & 1) t.lanes[m] |= static_cast<std::uint32_t>(lane) << (4 * i++);
    }
    return t;
}
inline constexpr LeftPackTable kLeftPack = make_left_pack_table();

// The permutation that moves the lanes set in `mask` (8 bits) to the front, in lane order.
inline __m256i left_pack_permutation(int mask) {
    const __m256i fields = _mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(kLeftPack.lanes[mask])),
                                             _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28));
    return _mm256_and_si256(fields, _mm256_set1_epi32(0xF));
}
#endif

// The number of nonzeros of x[0 … cols) (NaN counts as nonzero, ±0 does not).
int64_t count_row_f32(const float* x, int64_t cols) {
    int64_t count = 0, c = 0;
#if defined(__AVX512F__)
    for (; c + 16 <= cols; c += 16)
        count += __builtin_popcount(static_cast<unsigned>(
            _mm512_cmp_ps_mask(_mm512_loadu_ps(x + c), _mm512_setzero_ps(), _CMP_NEQ_UQ)));
#elif defined(__AVX2__)
    for (; c + 8 <= cols; c += 8)
        count += __builtin_popcount(static_cast<unsigned>(
            _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + c), _mm256_setzero_ps(), _CMP_NEQ_UQ))));
#endif
    for (; c < cols; ++c) count += x[c] != 0.0f;
    return count;
}


// The nonzeros of x[0 … cols) (NaN counts as nonzero, ±0 does not): their columns into idx and
// values into val, in column order; returns how many. idx and val have room for cols + 16
// entries (the vector path stores whole vectors and moves on by the count of nonzeros). With
// counts (cols entries), counts[c] += 1 for each nonzero's column c: with AVX-512 one masked add
// per 16 columns, which spares the sort by column (sparse_rows.cpp) its own counting pass over
// the batch (on raw MNIST, about a third of that sort's time).
//
// The values are stored as T: float, or widened to double (float32 X beside float64 weights, as
// hw0's code under NumPy 2 gives them; exact).
#if defined(__AVX512F__)
inline void store_values(float* dst, __m512 v) { _mm512_storeu_ps(dst, v); }
inline void store_values(double* dst, __m512 v) {   // (maskz forms: GCC 12 warns on the others' undefined)
    _mm512_storeu_pd(dst, _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 0)));
    _mm512_storeu_pd(dst + 8, _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 1)));
}
#elif defined(__AVX2__)
inline void store_values(float* dst, __m256 v) { _mm256_storeu_ps(dst, v); }
inline void store_values(double* dst, __m256 v) {
    _mm256_storeu_pd(dst, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    _mm256_storeu_pd(dst + 4, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}
#endif

template <typename T>
int64_t compact_row_f32(const float* x, int64_t cols, std::int32_t* idx, T* val, std::int32_t* counts) {
    int64_t p = 0, c = 0;
#if defined(__AVX512F__)
    const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i one = _mm512_set1_epi32(1);
    for (; c + 16 <= cols; c += 16) {
        const __m512 v = _mm512_loadu_ps(x + c);
        const __mmask16 nonzero = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        store_values(val + p, _mm512_maskz_compress_ps(nonzero, v));
        const __m512i columns = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int>(c)));
        _mm512_storeu_si512(idx + p, _mm512_maskz_compress_epi32(nonzero, columns));
        if (counts) {
            const __m512i n = _mm512_loadu_si512(counts + c);
            _mm512_storeu_si512(counts + c, _mm512_mask_add_epi32(n, nonzero, n, one));
        }
        p += __builtin_popcount(static_cast<unsigned>(nonzero));
    }
#elif defined(__AVX2__)
    // 8 columns at a time (no compress: a looked-up permutation, left_pack_permutation); the
    // columns are c + the permutation's source lanes. counts[c …] −= the compare's all-ones lanes.
    // The scalar loop below took a ninth of the raw h = 400 epoch on AMD Zen 2.
    for (; c + 8 <= cols; c += 8) {
        const __m256 v = _mm256_loadu_ps(x + c);
        const __m256 nonzero = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_UQ);
        const int mask = _mm256_movemask_ps(nonzero);
        const __m256i from = left_pack_permutation(mask);
        store_values(val + p, _mm256_permutevar8x32_ps(v, from));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + p),
                            _mm256_add_epi32(from, _mm256_set1_epi32(static_cast<int>(c))));
        if (counts) {
            __m256i* n = reinterpret_cast<__m256i*>(counts + c);
            _mm256_storeu_si256(n, _mm256_sub_epi32(_mm256_loadu_si256(n), _mm256_castps_si256(nonzero)));
        }
        p += __builtin_popcount(static_cast<unsigned>(mask));
    }
#endif
    const int64_t vector_part = p;
    for (; c < cols; ++c) {   // branch-free: write, then move on only past a nonzero
        idx[p] = static_cast<std::int32_t>(c);
        val[p] = static_cast<T>(x[c]);
        p += x[c] != 0.0f;
    }
    if (counts)
        for (int64_t t = vector_part; t < p; ++t) ++counts[idx[t]];
    return p;
}

}  // namespace
}  // namespace fastnn::sparse_detail
