// AVX-512 micro-kernels (float and double) for the GEMM driver in gemm.cpp.
//
// Compiled with -mavx512f -mavx512vl -mavx512dq -mavx512bw -mavx2 -mfma.  Nothing in
// here may run before cpu_features.cpp has confirmed AVX-512 support, and everything
// except the getters at the bottom is in an anonymous namespace, so no function compiled
// with AVX-512 flags can be merged by the linker into the generic code paths.
#include "gemm/gemm_kernels.hpp"
#include "gemm/kernels/transpose_in_blocks.hpp"
#include "runtime/cpu_features.hpp"   // FASTNN_X86_KERNELS

#if FASTNN_X86_KERNELS

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's AVX-512 headers trip -Wuninitialized on their own _mm512_undefined_*()
// placeholders (GCC bug 105593, fixed in GCC 13); silence it for this file only.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include <array>
#include <utility>

namespace fastnn::gemm_detail {
namespace {

// ---------------------------------------------------------------------------------------
// Thin vector wrappers so one kernel template serves float (16 lanes) and double (8 lanes).
template <typename T>
struct Simd;

template <>
struct Simd<float> {
    using Reg = __m512;
    using Mask = __mmask16;
    static constexpr int kLanes = 16;
    static Reg zero() { return _mm512_setzero_ps(); }
    static Reg set1(float x) { return _mm512_set1_ps(x); }
    static Reg load(const float* p) { return _mm512_loadu_ps(p); }
    static Reg load(const float* p, Mask m) { return _mm512_maskz_loadu_ps(m, p); }
    static void store(float* p, Reg v) { _mm512_storeu_ps(p, v); }
    static void store(float* p, Reg v, Mask m) { _mm512_mask_storeu_ps(p, m, v); }
    static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
    static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
    static Reg add(Reg a, Reg b) { return _mm512_add_ps(a, b); }
    // max(0, x) with x's NaN / -0 kept: returns x unless 0 > x (vmaxps semantics).
    static Reg relu(Reg x) { return _mm512_max_ps(zero(), x); }
    // x where mask_value > 0, else 0 (NaN mask -> 0)
    static Reg keep_where_positive(Reg mask_value, Reg x) {
        return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(mask_value, zero(), _CMP_GT_OQ), x);
    }
    static Mask first(int n) { return static_cast<Mask>((1u << n) - 1u); }  // n in [1, 16]
    // Fixed-order lane sum: halves, then quarters, ... (deterministic).
    static float reduce_add(Reg v) {
        const __m512 halves = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
        const __m256 h = _mm512_castps512_ps256(halves);
        __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
        q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        q = _mm_add_ss(q, _mm_movehdup_ps(q));
        return _mm_cvtss_f32(q);
    }
};

template <>
struct Simd<double> {
    using Reg = __m512d;
    using Mask = __mmask8;
    static constexpr int kLanes = 8;
    static Reg zero() { return _mm512_setzero_pd(); }
    static Reg set1(double x) { return _mm512_set1_pd(x); }
    static Reg load(const double* p) { return _mm512_loadu_pd(p); }
    static Reg load(const double* p, Mask m) { return _mm512_maskz_loadu_pd(m, p); }
    static void store(double* p, Reg v) { _mm512_storeu_pd(p, v); }
    static void store(double* p, Reg v, Mask m) { _mm512_mask_storeu_pd(p, m, v); }
    static Reg fmadd(Reg a, Reg b, Reg c) { return _mm512_fmadd_pd(a, b, c); }
    static Reg mul(Reg a, Reg b) { return _mm512_mul_pd(a, b); }
    static Reg add(Reg a, Reg b) { return _mm512_add_pd(a, b); }
    static Reg relu(Reg x) { return _mm512_max_pd(zero(), x); }
    static Reg keep_where_positive(Reg mask_value, Reg x) {
        return _mm512_maskz_mov_pd(_mm512_cmp_pd_mask(mask_value, zero(), _CMP_GT_OQ), x);
    }
    static Mask first(int n) { return static_cast<Mask>((1u << n) - 1u); }  // n in [1, 8]
    static double reduce_add(Reg v) {
        const __m512d halves = _mm512_add_pd(v, _mm512_shuffle_f64x2(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
        const __m256d h = _mm512_castpd512_pd256(halves);
        __m128d q = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
        q = _mm_add_sd(q, _mm_unpackhi_pd(q, q));
        return _mm_cvtsd_f64(q);
    }
};

// The same wrappers on 256- and 128-bit registers (AVX-512VL: masked loads, stores and compares),
// for the micro-kernel's tiles of a few columns (micro_kernel_rows below): SimdVL<T, Bytes>, one
// definition for the four, P the intrinsics' prefix (_mm256_, _mm_) and S their type (ps, pd).
template <typename T, int Bytes>
struct SimdVL;

#define FASTNN_SIMD_VL(T, BYTES, REG, P, S)                                                           \
    template <>                                                                                     \
    struct SimdVL<T, BYTES> {                                                                       \
        using Reg = REG;                                                                            \
        using Mask = __mmask8;                                                                      \
        static constexpr int kLanes = BYTES / static_cast<int>(sizeof(T));                          \
        static Reg zero() { return P##setzero_##S(); }                                              \
        static Reg set1(T x) { return P##set1_##S(x); }                                             \
        static Reg load(const T* p) { return P##loadu_##S(p); }                                     \
        static Reg load(const T* p, Mask m) { return P##maskz_loadu_##S(m, p); }                    \
        static void store(T* p, Reg v) { P##storeu_##S(p, v); }                                     \
        static void store(T* p, Reg v, Mask m) { P##mask_storeu_##S(p, m, v); }                     \
        static Reg fmadd(Reg a, Reg b, Reg c) { return P##fmadd_##S(a, b, c); }                    \
        static Reg mul(Reg a, Reg b) { return P##mul_##S(a, b); }                                   \
        static Reg relu(Reg x) { return P##max_##S(zero(), x); }                                    \
        static Reg keep_where_positive(Reg mask_value, Reg x) {                                     \
            return P##maskz_mov_##S(P##cmp_##S##_mask(mask_value, zero(), _CMP_GT_OQ), x);          \
        }                                                                                           \
        static Mask first(int n) { return static_cast<Mask>((1u << n) - 1u); } /* n in [1, kLanes] */ \
    };

FASTNN_SIMD_VL(float, 32, __m256, _mm256_, ps)
FASTNN_SIMD_VL(float, 16, __m128, _mm_, ps)
FASTNN_SIMD_VL(double, 32, __m256d, _mm256_, pd)
FASTNN_SIMD_VL(double, 16, __m128d, _mm_, pd)
#undef FASTNN_SIMD_VL

// ---------------------------------------------------------------------------------------
// Micro-kernel: one ROWS × (NV·lanes) tile of C, ROWS <= MR = 14, NV <= 2 vectors per row.
//
//   acc(r, c) = Σ_{p=0}^{k-1} A(r, p) · B(p, c)        (one FMA chain per element, p ascending)
//   C(r, c)   = epi( alpha·acc(r, c) + beta·C(r, c) )  (C not read when beta == 0)
//
// Per k step: NV vector loads of the B row (the last one masked to `cols` when MASKED),
// ROWS broadcasts of A(r, p), ROWS·NV FMAs.  With ROWS = 14, NV = 2 that is 28 zmm
// accumulators + 2 B registers + 1 broadcast = 31 of the 32 zmm registers, and 28 FMAs
// per 16 loads, so the two FMA ports (not the load ports) are the bottleneck.
// MASKED tiles read / write only the first `cols` columns (masked loads never fault), so
// neither packing nor the caller has to pad B or C.
constexpr int kPrefetchSteps = 8;

// ROW_A (micro_rows): A row-major in place, A(r, p) at a[r·a_row_stride + p] -- the rows of
// X_b·W_1 without packing them. Each row's values are read as one sequential stream (14 streams,
// which the hardware prefetchers follow), the same broadcasts in the same order: the same bits.
// S: the registers of a row's NV vectors -- Simd<T>, or for a tile of a few columns (NV = 1) a
// narrower SimdVL (micro_kernel_rows).
template <typename T, int ROWS, int NV, bool MASKED, bool ROW_A = false, typename S = Simd<T>>
void micro_kernel(const MicroKernelArgs<T>& args) {
    using Reg = typename S::Reg;
    constexpr int L = S::kLanes;
    constexpr int NR = 2 * Simd<T>::kLanes;   // (the driver's tile width: tile_out's row stride)

    const typename S::Mask last_mask = MASKED ? S::first(args.cols - (NV - 1) * L)
                                              : static_cast<typename S::Mask>(~0u);
    if (args.c != nullptr) {
        // Pull the C tile towards L1 while the k loop runs (it is needed at the end).
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(args.c + r * args.ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(args.c + r * args.ldc + args.cols - 1),
                         _MM_HINT_T0);
        }
    }

    Reg acc[ROWS][NV];
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[r][v] = S::zero();

    const T* a = args.a;
    const T* b = args.b;
    const std::int64_t a_step = args.a_k_stride;
    const std::int64_t b_step = args.b_k_stride;
    // ROW_A: rows 3g, 3g + 1, 3g + 2 at base[g] + {0, 1, 2}·lda -- five pointers and two index
    // registers (lda, 2·lda) address all 14 rows.
    const std::int64_t lda = args.a_row_stride;
    constexpr int G = ROW_A ? (ROWS + 2) / 3 : 1;
    const T* base[G];
#pragma GCC unroll 5
    for (int g = 0; g < G; ++g) base[g] = a + 3 * g * lda;
#pragma GCC unroll 2
    for (std::int64_t p = 0; p < args.k; ++p) {
        if constexpr (!ROW_A) {
            // Software prefetch of the A sliver kPrefetchSteps k steps ahead: an unpacked Aᵀ
            // sliver has a row stride (lda) beyond the reach of the hardware stride
            // prefetcher (2 KiB), so without it every k step would wait on L2.
            _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchSteps * a_step), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchSteps * a_step + ROWS - 1), _MM_HINT_T0);
        }
        Reg b_row[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v)
            b_row[v] = (MASKED && v == NV - 1) ? S::load(b + v * L, last_mask) : S::load(b + v * L);
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r) {
            Reg a_rp;
            if constexpr (ROW_A) a_rp = S::set1(base[r / 3][(r % 3) * lda + p]);
            else a_rp = S::set1(a[r]);
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) acc[r][v] = S::fmadd(a_rp, b_row[v], acc[r][v]);
        }
        if constexpr (!ROW_A) a += a_step;
        b += b_step;
    }

    const Reg alpha = S::set1(args.alpha);
    if (args.c == nullptr) {  // the driver finishes this tile (transposed C)
#pragma GCC unroll 16
        for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) S::store(args.tile_out + r * NR + v * L, S::mul(alpha, acc[r][v]));
        return;
    }
    const Reg beta = S::set1(args.beta);
    const bool read_c = args.beta != T(0);
    const Epilogue epi = args.epi;
#pragma GCC unroll 16
    for (int r = 0; r < ROWS; ++r) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) {
            const bool masked = MASKED && v == NV - 1;
            T* c = args.c + r * args.ldc + v * L;
            Reg x = S::mul(alpha, acc[r][v]);
            if (read_c) x = S::fmadd(beta, masked ? S::load(c, last_mask) : S::load(c), x);
            if (epi == Epilogue::relu) {
                x = S::relu(x);
            } else if (epi == Epilogue::relu_mask) {
                const T* m = args.mask + r * args.ldmask + v * L;
                x = S::keep_where_positive(masked ? S::load(m, last_mask) : S::load(m), x);
            }
            if (masked)
                S::store(c, x, last_mask);
            else
                S::store(c, x);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Narrow tile (float): the C tile of micro_kernel for COLS <= kNarrowMaxCols columns and
// rows <= 14 (MR), with the lanes along the rows instead of the columns:
//
//   acc(·, c) = Σ_p A(·, p) · B(p, c)      one zmm per column: the tile's rows at k step p are
//                                          contiguous in a k-major A sliver (one masked load)
//
// Per k step: 1 load, COLS broadcasts, COLS FMAs, where micro_kernel's masked one-vector tile
// spends 14 FMAs whatever the width (n = 100 on NR = 32: the last 4 columns cost as much as 16).
// Bitwise the same results: every acc(r, c) is the same chain of FMAs a·b + acc over p
// ascending, and the epilogue is micro_kernel's instructions on the tile's rows (alpha·acc,
// then beta·C + that, then the ReLU or the mask), the rows regathered by a register transpose.
// Measured (1 thread, CPU time, alternating): 100×784·784×100 7% and 784×100·100×100 4% less.
template <int COLS>
void narrow_kernel(const MicroKernelArgs<float>& args) {
    using S = Simd<float>;
    constexpr int L = S::kLanes, NR = 2 * L;
    const S::Mask rows = S::first(args.rows);
    __m512 acc[COLS];
#pragma GCC unroll 8
    for (int c = 0; c < COLS; ++c) acc[c] = S::zero();
    const float* a = args.a;
    const float* b = args.b;
    for (std::int64_t p = 0; p < args.k; ++p) {
        _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchSteps * args.a_k_stride), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(a + kPrefetchSteps * args.a_k_stride + args.rows - 1),
                     _MM_HINT_T0);
        const __m512 a_rows = S::load(a, rows);
#pragma GCC unroll 8
        for (int c = 0; c < COLS; ++c) acc[c] = S::fmadd(S::set1(b[c]), a_rows, acc[c]);
        a += args.a_k_stride;
        b += args.b_k_stride;
    }
    const __m512 alpha = S::set1(args.alpha);
#pragma GCC unroll 8
    for (int c = 0; c < COLS; ++c) acc[c] = S::mul(alpha, acc[c]);
    if (args.c == nullptr) {  // the driver finishes this tile (transposed C)
        alignas(64) float by_column[COLS][L];
#pragma GCC unroll 8
        for (int c = 0; c < COLS; ++c) S::store(by_column[c], acc[c]);
        for (int r = 0; r < args.rows; ++r)
            for (int c = 0; c < COLS; ++c) args.tile_out[r * NR + c] = by_column[c][r];
        return;
    }
    // The tile's rows from its columns, in registers: by_row[q][v] holds columns 4q … 4q + 3
    // of rows 4b + (v mod 4) in its 128-bit block b (a 4 × 4 transpose in each block), so
    // row r's columns are 4 floats at by_row[q][r mod 4] + 4·(r div 4), each load inside one
    // vector store. (Gathered through scalar stores into a row vector, each row's vector load
    // waited on a failed store-to-load forward: on a Zen 4, 1 thread, the last 4 columns of the
    // 784×100·100×100 product took 14 µs, 10 µs now, 5.7 µs at the main tile's rate.)
    constexpr int Q = (COLS + 3) / 4;
    alignas(64) float by_row[Q][4][L];
#pragma GCC unroll 2
    for (int q = 0; q < Q; ++q) {
        auto column = [&](int c) { return c < COLS ? acc[c] : S::zero(); };
        const __m512 t0 = _mm512_unpacklo_ps(column(4 * q), column(4 * q + 1));
        const __m512 t1 = _mm512_unpacklo_ps(column(4 * q + 2), column(4 * q + 3));
        const __m512 t2 = _mm512_unpackhi_ps(column(4 * q), column(4 * q + 1));
        const __m512 t3 = _mm512_unpackhi_ps(column(4 * q + 2), column(4 * q + 3));
        S::store(by_row[q][0], _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))));
        S::store(by_row[q][1], _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t0), _mm512_castps_pd(t1))));
        S::store(by_row[q][2], _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t2), _mm512_castps_pd(t3))));
        S::store(by_row[q][3], _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t2), _mm512_castps_pd(t3))));
    }
    const S::Mask cols = S::first(COLS);
    const __m512 beta = S::set1(args.beta);
    const bool read_c = args.beta != 0.0f;
    for (int r = 0; r < args.rows; ++r) {
        const int at = 4 * (r / 4);
        __m512 x = _mm512_zextps128_ps512(_mm_load_ps(by_row[0][r % 4] + at));
        if constexpr (Q > 1) x = _mm512_insertf32x4(x, _mm_load_ps(by_row[1][r % 4] + at), 1);
        float* c_row = args.c + r * args.ldc;
        if (read_c) x = S::fmadd(beta, S::load(c_row, cols), x);
        if (args.epi == Epilogue::relu)
            x = S::relu(x);
        else if (args.epi == Epilogue::relu_mask)
            x = S::keep_where_positive(S::load(args.mask + r * args.ldmask, cols), x);
        S::store(c_row, x, cols);
    }
}

template <std::size_t... C>
constexpr std::array<MicroKernelFn<float>, sizeof...(C)> make_narrow_table(std::index_sequence<C...>) {
    return {{&narrow_kernel<static_cast<int>(C) + 1>...}};
}

void narrow_kernel_entry(const MicroKernelArgs<float>& args) {
    static_assert(kAvx512TileF32.MR <= Simd<float>::kLanes, "narrow_kernel holds a tile's rows in one zmm");
    static constexpr auto table = make_narrow_table(std::make_index_sequence<kNarrowMaxCols>{});
    table[args.cols - 1](args);
}

// Column dispatch for a fixed row count: full 2-vector tile, masked 2-vector, full or
// masked 1-vector (edge tiles of narrow matrices such as n = 10), on a 256-bit register where
// the tile has at most a quarter vector's columns, 128-bit at most an eighth's -- the same FMAs
// on fewer lanes, so the same bits. Where 512-bit FMAs are two 256-bit halves (AMD Zen 4), a
// 128- or 256-bit FMA takes one of the two FMA pipes, so a tile's ROWS FMAs per k step take half
// the cycles: the last 4 columns of X_b·W_1 (100×784·784×100, A read in place: micro_rows,
// which has no narrow kernel) cost 28 µs of 164 on a Zen 4, 1 thread. (On cores with 512-bit
// FMA units, e.g. Intel's, the narrow FMAs take the same ports: no change.)
template <typename T, int ROWS, bool ROW_A = false>
void micro_kernel_rows(const MicroKernelArgs<T>& args) {
    constexpr int L = Simd<T>::kLanes;
    if (args.cols == 2 * L)
        micro_kernel<T, ROWS, 2, false, ROW_A>(args);
    else if (args.cols > L)
        micro_kernel<T, ROWS, 2, true, ROW_A>(args);
    else if (args.cols == L)
        micro_kernel<T, ROWS, 1, false, ROW_A>(args);
    else if (args.narrow_registers && args.cols <= SimdVL<T, 16>::kLanes)
        micro_kernel<T, ROWS, 1, true, ROW_A, SimdVL<T, 16>>(args);
    else if (args.narrow_registers && args.cols <= SimdVL<T, 32>::kLanes)
        micro_kernel<T, ROWS, 1, true, ROW_A, SimdVL<T, 32>>(args);
    else
        micro_kernel<T, ROWS, 1, true, ROW_A>(args);
}

template <typename T, bool ROW_A, std::size_t... R>
constexpr std::array<MicroKernelFn<T>, sizeof...(R)> make_row_table(std::index_sequence<R...>) {
    return {{&micro_kernel_rows<T, static_cast<int>(R) + 1, ROW_A>...}};
}

template <typename T, int MR, bool ROW_A = false>
void micro_kernel_entry(const MicroKernelArgs<T>& args) {
    static constexpr auto table = make_row_table<T, ROW_A>(std::make_index_sequence<MR>{});
    table[args.rows - 1](args);
}

// ---------------------------------------------------------------------------------------
// Dot-product kernel for narrow C with k-contiguous operands (op(A) = A row-major,
// op(B) given as Bᵀ rows):
//
//   out(r, c) = Σ_p A(r, p) · Bt(c, p)
//
// A block of RA = 2 rows × NB <= 12 columns keeps RA·NB vector accumulators running
// along p (24 zmm + 2 A + 1 Bt registers); per 16 (8) values of p it does RA + NB loads
// and RA·NB FMAs.  The k tail uses masked loads.  Each accumulator is reduced across
// lanes at the end with the same fixed tree, so the RA = 1 / RA = 2 and column-chunk
// choices never change a result bit.
constexpr int kDotRowBlock = 2;
constexpr int kDotMaxColBlock = 12;

template <typename T, int RA, int NB>
void dot_block(std::int64_t k, const T* a, std::int64_t lda, const T* bt, std::int64_t ldbt,
               T* out, std::int64_t ld_out) {
    using S = Simd<T>;
    using Reg = typename S::Reg;
    constexpr int L = S::kLanes;
    Reg acc[RA][NB];
#pragma GCC unroll 2
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 12
        for (int c = 0; c < NB; ++c) acc[r][c] = S::zero();

    std::int64_t p = 0;
    for (; p + L <= k; p += L) {
        Reg a_vec[RA];
#pragma GCC unroll 2
        for (int r = 0; r < RA; ++r) {
            // A is streamed once (often from DRAM): fetch the next row block's line now.
            _mm_prefetch(reinterpret_cast<const char*>(a + (RA + r) * lda + p), _MM_HINT_T0);
            a_vec[r] = S::load(a + r * lda + p);
        }
#pragma GCC unroll 12
        for (int c = 0; c < NB; ++c) {
            const Reg b_vec = S::load(bt + c * ldbt + p);
#pragma GCC unroll 2
            for (int r = 0; r < RA; ++r) acc[r][c] = S::fmadd(a_vec[r], b_vec, acc[r][c]);
        }
    }
    if (p < k) {
        const typename S::Mask tail = S::first(static_cast<int>(k - p));
        Reg a_vec[RA];
#pragma GCC unroll 2
        for (int r = 0; r < RA; ++r) a_vec[r] = S::load(a + r * lda + p, tail);
#pragma GCC unroll 12
        for (int c = 0; c < NB; ++c) {
            const Reg b_vec = S::load(bt + c * ldbt + p, tail);
#pragma GCC unroll 2
            for (int r = 0; r < RA; ++r) acc[r][c] = S::fmadd(a_vec[r], b_vec, acc[r][c]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 12
        for (int c = 0; c < NB; ++c) out[r * ld_out + c] = S::reduce_add(acc[r][c]);
}

template <typename T>
using DotBlockFn = void (*)(std::int64_t, const T*, std::int64_t, const T*, std::int64_t, T*,
                            std::int64_t);

template <typename T, int RA, std::size_t... C>
constexpr std::array<DotBlockFn<T>, sizeof...(C)> make_dot_table(std::index_sequence<C...>) {
    return {{&dot_block<T, RA, static_cast<int>(C) + 1>...}};
}

template <typename T>
void dot_kernel(const DotKernelArgs<T>& args) {
    static constexpr auto pairs = make_dot_table<T, 2>(std::make_index_sequence<kDotMaxColBlock>{});
    static constexpr auto singles = make_dot_table<T, 1>(std::make_index_sequence<kDotMaxColBlock>{});
    for (int c0 = 0; c0 < args.cols; c0 += kDotMaxColBlock) {
        const int nb = args.cols - c0 < kDotMaxColBlock ? args.cols - c0 : kDotMaxColBlock;
        const T* bt = args.bt + c0 * args.ldbt;
        std::int64_t r = 0;
        for (; r + kDotRowBlock <= args.rows; r += kDotRowBlock)
            pairs[nb - 1](args.k, args.a + r * args.lda, args.lda, bt, args.ldbt,
                          args.out + r * args.ld_out + c0, args.ld_out);
        if (r < args.rows)
            singles[nb - 1](args.k, args.a + r * args.lda, args.lda, bt, args.ldbt,
                            args.out + r * args.ld_out + c0, args.ld_out);
    }
}

// ---------------------------------------------------------------------------------------
// Transposes through registers, float. The 16×16 transpose of r (row i in r[i]) into column
// (column j in column[j]): 32-bit, 64-bit and two 128-bit-lane interleave stages, 64 shuffles.
inline void transpose_16x16(const __m512 (&r)[16], __m512 (&column)[16]) {
    // Stage 1: interleave 32-bit elements of row pairs.
    __m512 t[16];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    // Stage 2: interleave 64-bit pairs within groups of 4 rows; u[4g + j] then holds,
    // in 128-bit lane L, column 4L + j of rows 4g .. 4g+3.
    __m512 u[16];
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        const __m512d a = _mm512_castps_pd(t[4 * g]), b = _mm512_castps_pd(t[4 * g + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * g + 2]), d = _mm512_castps_pd(t[4 * g + 3]);
        u[4 * g + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // Stages 3-4: gather 128-bit lane L of the four groups into column 4L + j.
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
        const __m512 even01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x88);   // g0L0 g0L2 g1L0 g1L2
        const __m512 odd01 = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xDD);    // g0L1 g0L3 g1L1 g1L3
        const __m512 even23 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x88);
        const __m512 odd23 = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xDD);
        column[0 + j] = _mm512_shuffle_f32x4(even01, even23, 0x88);   // lane 0 of g0..g3
        column[8 + j] = _mm512_shuffle_f32x4(even01, even23, 0xDD);   // lane 2
        column[4 + j] = _mm512_shuffle_f32x4(odd01, odd23, 0x88);     // lane 1
        column[12 + j] = _mm512_shuffle_f32x4(odd01, odd23, 0xDD);    // lane 3
    }
}

// A block of up to 16 rows (nr; the rest read as zero) × nc <= 16 columns of src, transposed:
// column q's lanes under store_lanes (its rows; zeros past nr) stored at dst + q·ldd.
inline void transpose_block(const float* src, std::int64_t lds, int nr, int nc, float* dst, std::int64_t ldd,
                            __mmask16 store_lanes) {
    const __mmask16 col_lanes = Simd<float>::first(nc);
    __m512 r[16], column[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = i < nr ? _mm512_maskz_loadu_ps(col_lanes, src + i * lds) : _mm512_setzero_ps();
    transpose_16x16(r, column);
    for (int q = 0; q < nc; ++q) _mm512_mask_storeu_ps(dst + q * ldd, store_lanes, column[q]);
}

// Packing op(A) = A (row-major) into a k-major MR = 14 panel, float:
//   dst[p*14 + r] = A[r*lda + p]   (r < rows),   0 for rows <= r < 14.
// 16 values of p at a time: up to 14 row segments are loaded (masked at the k tail, zero
// rows beyond `rows`), transposed, and the first 14 lanes of each column are stored.  About
// 0.3 cycles per element instead of ~2 for the scalar gather loop.
void pack_a_rows_f32(const float* A, std::int64_t lda, int rows, std::int64_t kc, float* dst) {
    constexpr int MR = kAvx512TileF32.MR;
    static_assert(MR <= 16, "one 16×16 transpose per 16 k steps");
    for (std::int64_t p = 0; p < kc; p += 16)
        transpose_block(A + p, lda, rows, static_cast<int>(kc - p < 16 ? kc - p : 16), dst + p * MR, MR,
                        Simd<float>::first(MR));
}

// dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols: blocks of 16×16 through registers, the
// edges masked. Values are only moved: the same bits as the driver's scalar loops.
void transpose_f32(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, float* dst,
                   std::int64_t ldd) {
    transpose_in_blocks<16>(src, lds, rows, cols, dst, ldd,
                               [](const float* s, std::int64_t ls, int nr, int nc, float* d, std::int64_t ld) {
                                   transpose_block(s, ls, nr, nc, d, ld, Simd<float>::first(nr));
                               });
}

// The same for double: 8×8 blocks (unpack, then two 128-bit-lane stages, 24 shuffles).
inline void transpose_8x8(const __m512d (&r)[8], __m512d (&column)[8]) {
    __m512d t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {   // t[2i]: elements 0, 2, 4, 6 of rows 2i, 2i+1 interleaved; t[2i+1]: 1, 3, 5, 7
        t[2 * i] = _mm512_unpacklo_pd(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_pd(r[2 * i], r[2 * i + 1]);
    }
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {   // rows 4h … 4h+3: u[4h + e] holds elements e and e + 4, e < 4, in lanes (0 2 | 4 6 ...)
        u[4 * h + 0] = _mm512_shuffle_f64x2(t[4 * h], t[4 * h + 2], 0x88);       // elements 0 | 4
        u[4 * h + 2] = _mm512_shuffle_f64x2(t[4 * h], t[4 * h + 2], 0xDD);       // elements 2 | 6
        u[4 * h + 1] = _mm512_shuffle_f64x2(t[4 * h + 1], t[4 * h + 3], 0x88);   // elements 1 | 5
        u[4 * h + 3] = _mm512_shuffle_f64x2(t[4 * h + 1], t[4 * h + 3], 0xDD);   // elements 3 | 7
    }
#pragma GCC unroll 4
    for (int e = 0; e < 4; ++e) {
        column[e] = _mm512_shuffle_f64x2(u[e], u[4 + e], 0x88);
        column[e + 4] = _mm512_shuffle_f64x2(u[e], u[4 + e], 0xDD);
    }
}

inline void transpose_block(const double* src, std::int64_t lds, int nr, int nc, double* dst, std::int64_t ldd) {
    const __mmask8 col_lanes = Simd<double>::first(nc), row_lanes = Simd<double>::first(nr);
    __m512d r[8], column[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < nr ? _mm512_maskz_loadu_pd(col_lanes, src + i * lds) : _mm512_setzero_pd();
    transpose_8x8(r, column);
    for (int q = 0; q < nc; ++q) _mm512_mask_storeu_pd(dst + q * ldd, row_lanes, column[q]);
}

void transpose_f64(const double* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, double* dst,
                   std::int64_t ldd) {
    transpose_in_blocks<8>(src, lds, rows, cols, dst, ldd,
                           [](const double* s, std::int64_t ls, int nr, int nc, double* d, std::int64_t ld) {
                               transpose_block(s, ls, nr, nc, d, ld);
                           });
}

// ---------------------------------------------------------------------------------------
// Probes.  FMA peak: kProbeFmaChains independent chains x_i <- x_i·s + t (latency 4 cycles
// × 2 FMA ports needs >= 8 chains in flight; 12 leaves slack).
template <typename T>
double fma_chains(std::int64_t iterations, double* sink) {
    using S = Simd<T>;
    using Reg = typename S::Reg;
    Reg x[kProbeFmaChains];
    for (int i = 0; i < kProbeFmaChains; ++i) x[i] = S::set1(T(1) + T(i) * T(1e-3));
    const Reg s = S::set1(T(0.999999)), t = S::set1(T(1e-7));
    for (std::int64_t it = 0; it < iterations; ++it) {
#pragma GCC unroll 12
        for (int i = 0; i < kProbeFmaChains; ++i) x[i] = S::fmadd(x[i], s, t);
    }
    Reg total = x[0];
    for (int i = 1; i < kProbeFmaChains; ++i) total = S::add(total, x[i]);
    *sink += static_cast<double>(S::reduce_add(total));
    return 2.0 * S::kLanes * kProbeFmaChains * static_cast<double>(iterations);
}

}  // namespace

KernelSet<float> avx512_kernels_f32() {
    return {kAvx512TileF32, &micro_kernel_entry<float, kAvx512TileF32.MR>, &dot_kernel<float>,
            &pack_a_rows_f32, {&narrow_kernel_entry}, &micro_kernel_entry<float, kAvx512TileF32.MR, true>,
            {}, {}, &transpose_f32};
}
KernelSet<double> avx512_kernels_f64() {
    return {kAvx512TileF64, &micro_kernel_entry<double, kAvx512TileF64.MR>, &dot_kernel<double>,
            nullptr, {}, nullptr, {}, {}, &transpose_f64};
}

double avx512_fma_chains(bool dbl, std::int64_t iterations, double* sink) {
    return dbl ? fma_chains<double>(iterations, sink) : fma_chains<float>(iterations, sink);
}

// Streaming read: 4 independent 64-byte loads per step into 4 accumulators (adds, not
// FMAs: one add per 64 bytes is far below the add throughput, so memory is the limit).
double avx512_read_sum(const float* data, std::size_t bytes) {
    const std::size_t n = bytes / sizeof(float);
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    std::size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_add_ps(s0, _mm512_load_ps(data + i));
        s1 = _mm512_add_ps(s1, _mm512_load_ps(data + i + 16));
        s2 = _mm512_add_ps(s2, _mm512_load_ps(data + i + 32));
        s3 = _mm512_add_ps(s3, _mm512_load_ps(data + i + 48));
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_add_ps(s0, _mm512_load_ps(data + i));
    return Simd<float>::reduce_add(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
}

}  // namespace fastnn::gemm_detail

#else  // FASTNN_X86_KERNELS off (or not x86-64): no AVX-512 kernels

namespace fastnn::gemm_detail {
KernelSet<float> avx512_kernels_f32() { return {}; }
KernelSet<double> avx512_kernels_f64() { return {}; }
double avx512_fma_chains(bool, std::int64_t, double*) { return 0.0; }
double avx512_read_sum(const float*, std::size_t) { return 0.0; }
}  // namespace fastnn::gemm_detail

#endif
