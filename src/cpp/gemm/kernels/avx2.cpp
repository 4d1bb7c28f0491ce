// AVX2 + FMA micro-kernels (float and double) for the GEMM driver in gemm.cpp.
//
// Compiled with -mavx2 -mfma.  Nothing in here may run before cpu_features.cpp has
// confirmed AVX2 + FMA support (and OS-saved YMM state), and everything except the
// getters at the bottom is in an anonymous namespace, so no function compiled with AVX2
// flags can be merged by the linker into the generic code paths (the ODR trap).
#include "gemm/gemm_kernels.hpp"
#include "gemm/kernels/transpose_in_blocks.hpp"
#include "runtime/cpu_features.hpp"   // FASTNN_X86_KERNELS

#if FASTNN_X86_KERNELS

#include <immintrin.h>

#include <array>
#include <utility>

namespace fastnn::gemm_detail {
namespace {

// ---------------------------------------------------------------------------------------
// Thin vector wrappers: float = 8 lanes, double = 4 lanes.  AVX2 has no mask registers,
// so a lane mask is a vector whose lanes are all-ones (active) or zero; vmaskmov loads
// never fault on the inactive lanes.
template <typename T>
struct Simd;

template <>
struct Simd<float> {
    using Reg = __m256;
    using Mask = __m256i;
    static constexpr int kLanes = 8;
    static Reg zero() { return _mm256_setzero_ps(); }
    static Reg set1(float x) { return _mm256_set1_ps(x); }
    static Reg load(const float* p) { return _mm256_loadu_ps(p); }
    static Reg load(const float* p, Mask m) { return _mm256_maskload_ps(p, m); }
    static void store(float* p, Reg v) { _mm256_storeu_ps(p, v); }
    static void store(float* p, Reg v, Mask m) { _mm256_maskstore_ps(p, m, v); }
    static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
    static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
    static Reg add(Reg a, Reg b) { return _mm256_add_ps(a, b); }
    // max(0, x) keeping x's NaN / -0: returns x unless 0 > x (vmaxps semantics).
    static Reg relu(Reg x) { return _mm256_max_ps(zero(), x); }
    static Reg keep_where_positive(Reg mask_value, Reg x) {
        return _mm256_and_ps(_mm256_cmp_ps(mask_value, zero(), _CMP_GT_OQ), x);
    }
    static Mask first(int n) {  // lanes [0, n) active, n in [1, 8]
        return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    }
    static Mask all() { return _mm256_set1_epi32(-1); }
    static float reduce_add(Reg v) {
        __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        s = _mm_add_ss(s, _mm_movehdup_ps(s));
        return _mm_cvtss_f32(s);
    }
};

template <>
struct Simd<double> {
    using Reg = __m256d;
    using Mask = __m256i;
    static constexpr int kLanes = 4;
    static Reg zero() { return _mm256_setzero_pd(); }
    static Reg set1(double x) { return _mm256_set1_pd(x); }
    static Reg load(const double* p) { return _mm256_loadu_pd(p); }
    static Reg load(const double* p, Mask m) { return _mm256_maskload_pd(p, m); }
    static void store(double* p, Reg v) { _mm256_storeu_pd(p, v); }
    static void store(double* p, Reg v, Mask m) { _mm256_maskstore_pd(p, m, v); }
    static Reg fmadd(Reg a, Reg b, Reg c) { return _mm256_fmadd_pd(a, b, c); }
    static Reg mul(Reg a, Reg b) { return _mm256_mul_pd(a, b); }
    static Reg add(Reg a, Reg b) { return _mm256_add_pd(a, b); }
    static Reg relu(Reg x) { return _mm256_max_pd(zero(), x); }
    static Reg keep_where_positive(Reg mask_value, Reg x) {
        return _mm256_and_pd(_mm256_cmp_pd(mask_value, zero(), _CMP_GT_OQ), x);
    }
    static Mask first(int n) {  // lanes [0, n) active, n in [1, 4]
        return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    }
    static Mask all() { return _mm256_set1_epi64x(-1); }
    static double reduce_add(Reg v) {
        __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
        s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
        return _mm_cvtsd_f64(s);
    }
};

// ---------------------------------------------------------------------------------------
// Micro-kernel: one ROWS × (NV·lanes) tile of C, ROWS <= MR = 6, NV <= 2 vectors per row.
//
//   acc(r, c) = Σ_{p=0}^{k-1} A(r, p) · B(p, c)        (one FMA chain per element, p ascending)
//   C(r, c)   = epi( alpha·acc(r, c) + beta·C(r, c) )  (C not read when beta == 0)
//
// Per k step: NV vector loads of the B row (the last one masked to `cols` when MASKED),
// ROWS broadcasts of A(r, p), ROWS·NV FMAs.  6 × 2 = 12 ymm accumulators + 2 B + 1
// broadcast = 15 of the 16 ymm registers (the classic Haswell 6×16 / 6×8 shape).
//
// ROW_A (micro_rows): A row-major in place, A(r, p) at a[r·a_row_stride + p] -- the epoch's X_b
// in X_b·W_1 without packing it (a transpose of X_b per product, per thread: 11% of the
// 100×784·784×100 product on AMD Zen 2). Each row is read as a sequential stream, the same
// broadcasts in the same order: the same bits as the packed kernel. With ROW_A a tile may have
// up to 2·MR = 12 rows of one vector (NV = 1): the narrow edge of two row panels at once
// (narrow_rows_entry below), 12 FMA chains where one panel's 6 would wait on the FMA latency.
constexpr int kPrefetchSteps = 8;

template <typename T, int ROWS, int NV, bool MASKED, bool ROW_A = false>
void micro_kernel(const MicroKernelArgs<T>& args) {
    static_assert(ROWS * NV <= 12, "12 accumulators of the 16 ymm registers");
    using S = Simd<T>;
    using Reg = typename S::Reg;
    constexpr int L = S::kLanes;
    constexpr int NR = 2 * L;

    const typename S::Mask last_mask = MASKED ? S::first(args.cols - (NV - 1) * L) : S::all();
    if (args.c != nullptr) {
#pragma GCC unroll 12
        for (int r = 0; r < ROWS; ++r) {
            _mm_prefetch(reinterpret_cast<const char*>(args.c + r * args.ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char*>(args.c + r * args.ldc + args.cols - 1),
                         _MM_HINT_T0);
        }
    }

    Reg acc[ROWS][NV];
#pragma GCC unroll 12
    for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 2
        for (int v = 0; v < NV; ++v) acc[r][v] = S::zero();

    const T* a = args.a;
    const T* b = args.b;
    const std::int64_t a_step = args.a_k_stride;
    const std::int64_t b_step = args.b_k_stride;
    // ROW_A: rows 3g, 3g + 1, 3g + 2 at base[g] + {0, 1, 2}·lda -- up to four pointers and two
    // index registers (lda, 2·lda) address all 12 rows.
    const std::int64_t lda = args.a_row_stride;
    constexpr int G = ROW_A ? (ROWS + 2) / 3 : 1;
    const T* base[G];
#pragma GCC unroll 4
    for (int g = 0; g < G; ++g) base[g] = a + 3 * g * lda;
#pragma GCC unroll 4
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
#pragma GCC unroll 12
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
#pragma GCC unroll 12
        for (int r = 0; r < ROWS; ++r)
#pragma GCC unroll 2
            for (int v = 0; v < NV; ++v) S::store(args.tile_out + r * NR + v * L, S::mul(alpha, acc[r][v]));
        return;
    }
    const Reg beta = S::set1(args.beta);
    const bool read_c = args.beta != T(0);
    const Epilogue epi = args.epi;
#pragma GCC unroll 12
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

template <typename T, int ROWS, bool ROW_A = false>
void micro_kernel_rows(const MicroKernelArgs<T>& args) {
    constexpr int L = Simd<T>::kLanes;
    if (args.cols == 2 * L)
        micro_kernel<T, ROWS, 2, false, ROW_A>(args);
    else if (args.cols > L)
        micro_kernel<T, ROWS, 2, true, ROW_A>(args);
    else if (args.cols == L)
        micro_kernel<T, ROWS, 1, false, ROW_A>(args);
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

// Narrow tile with A read in place (KernelSet::narrow_rows): at most kNarrowMaxCols (one vector)
// columns of up to two row panels (args.rows <= 2·MR: the pair's rows are consecutive rows of A,
// so a_next is not needed), as one ROW_A tile of rows × 1 vector.
template <typename T, int ROWS>
void narrow_rows_kernel(const MicroKernelArgs<T>& args) {
    if (args.cols == Simd<T>::kLanes)
        micro_kernel<T, ROWS, 1, false, true>(args);
    else
        micro_kernel<T, ROWS, 1, true, true>(args);
}

template <typename T, std::size_t... R>
constexpr std::array<MicroKernelFn<T>, sizeof...(R)> make_narrow_rows_table(std::index_sequence<R...>) {
    return {{&narrow_rows_kernel<T, static_cast<int>(R) + 1>...}};
}

template <typename T, int MR>
void narrow_rows_entry(const MicroKernelArgs<T>& args) {
    static constexpr auto table = make_narrow_rows_table<T>(std::make_index_sequence<2 * MR>{});
    table[args.rows - 1](args);
}

// ---------------------------------------------------------------------------------------
// Narrow tile (float): the C tile of micro_kernel for COLS <= kNarrowPairCols columns, with the
// lanes along the rows (6 of a ymm's 8) instead of the columns, and two row panels at once
// where the driver pairs them (args.rows > MR: rows MR … from args.a_next):
//
//   acc_q(·, c) = Σ_p A_q(·, p) · B(p, c)      one ymm per column and panel q: the panel's rows
//                                              at k step p are contiguous (k-major A)
//
// Per k step: 1 masked load per panel, COLS broadcasts, COLS FMAs per panel: 2·COLS independent
// chains. The micro-kernel's masked one-vector tile (n = 100 = 6·16 + 4: the last 4 columns)
// runs 6 chains, and with a 4-cycle FMA latency (Zen 3) that is 1.5 FMAs a cycle, 4 cycles per
// k step for 6 rows; two panels of 4 columns are 8 chains, 4 cycles for 12 rows. Bitwise the
// same results: every acc(r, c) is the same chain of FMAs b·a + acc over p ascending (a·b and
// b·a are the same product), and the epilogue is micro_kernel's instructions on the tile's
// rows (alpha·acc, then beta·C + that, then the ReLU or the mask), the rows regathered by a
// 4 × 4 register transpose in each 128-bit half. Wider narrow tiles (7, 8 columns) gain
// nothing this way (one panel: as many chains as the micro-kernel's) and go to micro_kernel.
constexpr int kNarrowPairCols = 6;

// The first COLS floats of x (a row of the tile) to dst, without writing past them (no masked
// stores: vmaskmovps stores are slow on AMD Zen).
template <int COLS>
inline void store_columns(float* dst, __m256 x) {
    const __m128 lo = _mm256_castps256_ps128(x);
    if constexpr (COLS >= 4) {
        _mm_storeu_ps(dst, lo);
        const __m128 hi = _mm256_extractf128_ps(x, 1);
        if constexpr (COLS == 5) _mm_store_ss(dst + 4, hi);
        if constexpr (COLS == 6) _mm_storel_pi(reinterpret_cast<__m64*>(dst + 4), hi);
    } else {
        if constexpr (COLS == 1) _mm_store_ss(dst, lo);
        if constexpr (COLS >= 2) _mm_storel_pi(reinterpret_cast<__m64*>(dst), lo);
        if constexpr (COLS == 3) _mm_store_ss(dst + 2, _mm_movehl_ps(lo, lo));
    }
}

// STRIP (narrow_strip_entry): A k-major in place (op(A) = Aᵀ, unpacked), where a tile's rows at
// one k step are consecutive values: up to kStripPanels row panels (24 rows) at once, 8 rows per
// vector (PANELS = vectors, up to 3): 3·COLS chains, every lane busy, and one k step of 24 rows
// costs 3 loads and 3 prefetches where two pairs of panels cost 4 loads and 8 prefetches.
constexpr int kStripPanels = 4;

template <int COLS, int PANELS, bool STRIP = false>
void narrow_kernel(const MicroKernelArgs<float>& args) {
    using S = Simd<float>;
    constexpr int MR = kAvx2TileF32.MR, NR = kAvx2TileF32.NR;
    constexpr int VR = STRIP ? S::kLanes : MR;   // rows per vector (panel)
    static_assert(COLS <= kNarrowPairCols && PANELS >= 1 && PANELS <= (STRIP ? 3 : 2), "");
    int panel_rows[PANELS];
#pragma GCC unroll 3
    for (int q = 0; q < PANELS; ++q) {
        const int left = args.rows - q * VR;
        panel_rows[q] = left < VR ? left : VR;
    }
    __m256 acc[PANELS][COLS];
#pragma GCC unroll 2
    for (int q = 0; q < PANELS; ++q)
#pragma GCC unroll 8
        for (int c = 0; c < COLS; ++c) acc[q][c] = S::zero();
    {
        S::Mask live[PANELS];
        const float* a[PANELS];
#pragma GCC unroll 3
        for (int q = 0; q < PANELS; ++q) {
            live[q] = S::first(panel_rows[q]);
            a[q] = STRIP ? args.a + q * VR : q == 0 ? args.a : args.a_next;
        }
        const float* b = args.b;
        const std::int64_t a_step = args.a_k_stride, b_step = args.b_k_stride;
        for (std::int64_t p = 0; p < args.k; ++p) {
            __m256 a_rows[PANELS];
            if constexpr (STRIP) {   // the strip's first, middle and last rows kPrefetchSteps ahead
                const float* ahead = a[0] + kPrefetchSteps * a_step;
                _mm_prefetch(reinterpret_cast<const char*>(ahead), _MM_HINT_T0);
                if constexpr (PANELS > 1) _mm_prefetch(reinterpret_cast<const char*>(ahead + VR), _MM_HINT_T0);
                _mm_prefetch(reinterpret_cast<const char*>(ahead + args.rows - 1), _MM_HINT_T0);
            }
#pragma GCC unroll 3
            for (int q = 0; q < PANELS; ++q) {
                if constexpr (!STRIP) {
                    _mm_prefetch(reinterpret_cast<const char*>(a[q] + kPrefetchSteps * a_step), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(a[q] + kPrefetchSteps * a_step + panel_rows[q] - 1),
                                 _MM_HINT_T0);
                }
                a_rows[q] = S::load(a[q], live[q]);
                a[q] += a_step;
            }
#pragma GCC unroll 8
            for (int c = 0; c < COLS; ++c) {
                const __m256 b_pc = S::set1(b[c]);
#pragma GCC unroll 3
                for (int q = 0; q < PANELS; ++q) acc[q][c] = S::fmadd(b_pc, a_rows[q], acc[q][c]);
            }
            b += b_step;
        }
    }
    const __m256 alpha = S::set1(args.alpha);
    const __m256 beta = S::set1(args.beta);
    const bool read_c = args.c != nullptr && args.beta != 0.0f;
    const S::Mask cols = S::first(COLS);
    constexpr int G = (COLS + 3) / 4;   // groups of 4 columns
#pragma GCC unroll 3
    for (int q = 0; q < PANELS; ++q) {
        __m256 x[4 * G];
#pragma GCC unroll 8
        for (int c = 0; c < 4 * G; ++c) x[c] = c < COLS ? S::mul(alpha, acc[q][c]) : S::zero();
        // by_row[g][v]: columns 4g … 4g + 3 of rows v (low half) and v + 4 (high half)
        alignas(32) float by_row[G][4][8];
#pragma GCC unroll 2
        for (int g = 0; g < G; ++g) {
            const __m256 t0 = _mm256_unpacklo_ps(x[4 * g], x[4 * g + 1]);
            const __m256 t1 = _mm256_unpacklo_ps(x[4 * g + 2], x[4 * g + 3]);
            const __m256 t2 = _mm256_unpackhi_ps(x[4 * g], x[4 * g + 1]);
            const __m256 t3 = _mm256_unpackhi_ps(x[4 * g + 2], x[4 * g + 3]);
            _mm256_store_ps(by_row[g][0], _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t1))));
            _mm256_store_ps(by_row[g][1], _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t0), _mm256_castps_pd(t1))));
            _mm256_store_ps(by_row[g][2], _mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(t2), _mm256_castps_pd(t3))));
            _mm256_store_ps(by_row[g][3], _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(t2), _mm256_castps_pd(t3))));
        }
        for (int r = 0; r < panel_rows[q]; ++r) {
            const int at = 4 * (r / 4);
            __m256 row = _mm256_castps128_ps256(_mm_load_ps(by_row[0][r % 4] + at));
            if constexpr (G > 1) row = _mm256_insertf128_ps(row, _mm_load_ps(by_row[G - 1][r % 4] + at), 1);
            const int tile_row = q * VR + r;
            if (args.c == nullptr) {   // the driver finishes this tile (transposed C; not STRIP: 2·MR rows at most)
                alignas(32) float out[8];
                _mm256_store_ps(out, row);
                for (int c = 0; c < COLS; ++c) args.tile_out[tile_row * NR + c] = out[c];
                continue;
            }
            float* c_row = args.c + tile_row * args.ldc;
            if (read_c) row = S::fmadd(beta, S::load(c_row, cols), row);
            if (args.epi == Epilogue::relu)
                row = S::relu(row);
            else if (args.epi == Epilogue::relu_mask)
                row = S::keep_where_positive(S::load(args.mask + tile_row * args.ldmask, cols), row);
            store_columns<COLS>(c_row, row);
        }
    }
}

// narrow_kernel<cols, PANELS, STRIP> for cols = 1 … sizeof...(C).
template <int PANELS, bool STRIP, std::size_t... C>
constexpr std::array<MicroKernelFn<float>, sizeof...(C)> make_narrow_table(std::index_sequence<C...>) {
    return {{&narrow_kernel<static_cast<int>(C) + 1, PANELS, STRIP>...}};
}

// Narrow tiles of up to kStripPanels row panels of an in-place k-major A (see STRIP above).
void narrow_strip_entry(const MicroKernelArgs<float>& args) {
    constexpr int MR = kAvx2TileF32.MR;
    static constexpr auto one = make_narrow_table<1, true>(std::make_index_sequence<kNarrowPairCols>{});
    static constexpr auto two = make_narrow_table<2, true>(std::make_index_sequence<kNarrowPairCols>{});
    static constexpr auto three = make_narrow_table<3, true>(std::make_index_sequence<kNarrowPairCols>{});
    if (args.cols > kNarrowPairCols) return micro_kernel_entry<float, MR>(args);   // (never grouped)
    const int vectors = (args.rows + Simd<float>::kLanes - 1) / Simd<float>::kLanes;
    (vectors == 1 ? one : vectors == 2 ? two : three)[args.cols - 1](args);
}

void narrow_kernel_entry(const MicroKernelArgs<float>& args) {
    constexpr int MR = kAvx2TileF32.MR;
    static constexpr auto single = make_narrow_table<1, false>(std::make_index_sequence<kNarrowPairCols>{});
    static constexpr auto paired = make_narrow_table<2, false>(std::make_index_sequence<kNarrowPairCols>{});
    if (args.cols > kNarrowPairCols) return micro_kernel_entry<float, MR>(args);   // (never paired)
    (args.rows > MR ? paired : single)[args.cols - 1](args);
}

// ---------------------------------------------------------------------------------------
// Dot-product kernel (see gemm_kernels.hpp):   out(r, c) = Σ_p A(r, p) · Bt(c, p)
// RA = 2 rows × NB <= 6 columns: 12 ymm accumulators + 2 A + 1 Bt registers; per 8 (4)
// values of p: RA + NB loads, RA·NB FMAs; masked k tail; fixed-order lane reduction.
constexpr int kDotRowBlock = 2;
constexpr int kDotMaxColBlock = 6;

template <typename T, int RA, int NB>
void dot_block(std::int64_t k, const T* a, std::int64_t lda, const T* bt, std::int64_t ldbt,
               T* out, std::int64_t ld_out) {
    using S = Simd<T>;
    using Reg = typename S::Reg;
    constexpr int L = S::kLanes;
    Reg acc[RA][NB];
#pragma GCC unroll 2
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 6
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
#pragma GCC unroll 6
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
#pragma GCC unroll 6
        for (int c = 0; c < NB; ++c) {
            const Reg b_vec = S::load(bt + c * ldbt + p, tail);
#pragma GCC unroll 2
            for (int r = 0; r < RA; ++r) acc[r][c] = S::fmadd(a_vec[r], b_vec, acc[r][c]);
        }
    }
#pragma GCC unroll 2
    for (int r = 0; r < RA; ++r)
#pragma GCC unroll 6
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
// Transposes through registers, float. The 8×8 transpose of r (row i in r[i]) into column
// (column j in column[j]): unpack, shuffle, 128-bit permute, 24 shuffles.
inline void transpose_8x8(const __m256 (&r)[8], __m256 (&column)[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    column[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    column[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    column[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    column[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    column[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    column[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    column[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    column[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// The first n (1 … 8) lanes of v at d, without masked stores (vmaskmovps stores are slow on AMD
// Zen): 4, 2 and 1 at a time.
inline void store_first(float* d, __m256 v, int n) {
    if (n == 8) {
        _mm256_storeu_ps(d, v);
        return;
    }
    __m128 part = _mm256_castps256_ps128(v);
    if (n >= 4) {
        _mm_storeu_ps(d, part);
        part = _mm256_extractf128_ps(v, 1);
        d += 4;
        n -= 4;
    }
    if (n >= 2) {
        _mm_storel_pi(reinterpret_cast<__m64*>(d), part);
        part = _mm_movehl_ps(part, part);
        d += 2;
        n -= 2;
    }
    if (n == 1) _mm_store_ss(d, part);
}

// A block of up to 8 rows (nr; the rest read as zero) × nc <= 8 columns of src, transposed: the
// first `width` lanes of column q (its rows; zeros past nr) stored at dst + q·ldd.
inline void transpose_block(const float* src, std::int64_t lds, int nr, int nc, float* dst, std::int64_t ldd,
                            int width) {
    const __m256i col_lanes = Simd<float>::first(nc);
    __m256 r[8], column[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i) r[i] = i < nr ? _mm256_maskload_ps(src + i * lds, col_lanes) : _mm256_setzero_ps();
    transpose_8x8(r, column);
    for (int q = 0; q < nc; ++q) store_first(dst + q * ldd, column[q], width);
}

// Packing op(A) = A (row-major) into a k-major MR = 6 panel, float:
//   dst[p*6 + r] = A[r*lda + p]   (r < rows),   0 for rows <= r < 6.
// 8 values of p at a time: up to 6 row segments are loaded (masked at the k tail, zero rows
// beyond `rows` and for rows 6, 7), transposed, and the first 6 lanes of each column are stored
// as 4 + 2 floats.
void pack_a_rows_f32(const float* A, std::int64_t lda, int rows, std::int64_t kc, float* dst) {
    constexpr int MR = kAvx2TileF32.MR;
    static_assert(MR <= 8, "one 8×8 transpose per 8 k steps");
    for (std::int64_t p = 0; p < kc; p += 8)
        transpose_block(A + p, lda, rows < MR ? rows : MR, static_cast<int>(kc - p < 8 ? kc - p : 8), dst + p * MR,
                        MR, MR);
}

// dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols: blocks of 8×8 through registers. Values
// are only moved: the same bits as the driver's scalar loops.
void transpose_f32(const float* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, float* dst,
                   std::int64_t ldd) {
    transpose_in_blocks<8>(src, lds, rows, cols, dst, ldd,
                              [](const float* s, std::int64_t ls, int nr, int nc, float* d, std::int64_t ld) {
                                  transpose_block(s, ls, nr, nc, d, ld, nr);
                              });
}

// The same for double: 4×4 blocks (unpack, 128-bit permute: 8 shuffles), the first n lanes stored
// as 2 + 1.
inline void store_first(double* d, __m256d v, int n) {
    if (n == 4) {
        _mm256_storeu_pd(d, v);
        return;
    }
    __m128d part = _mm256_castpd256_pd128(v);
    if (n >= 2) {
        _mm_storeu_pd(d, part);
        part = _mm256_extractf128_pd(v, 1);
        d += 2;
        n -= 2;
    }
    if (n == 1) _mm_store_sd(d, part);
}

inline void transpose_block(const double* src, std::int64_t lds, int nr, int nc, double* dst, std::int64_t ldd) {
    const __m256i col_lanes = Simd<double>::first(nc);
    __m256d r[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) r[i] = i < nr ? _mm256_maskload_pd(src + i * lds, col_lanes) : _mm256_setzero_pd();
    const __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]), t1 = _mm256_unpackhi_pd(r[0], r[1]);   // elements 0 2 / 1 3
    const __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]), t3 = _mm256_unpackhi_pd(r[2], r[3]);
    const __m256d column[4] = {_mm256_permute2f128_pd(t0, t2, 0x20), _mm256_permute2f128_pd(t1, t3, 0x20),
                               _mm256_permute2f128_pd(t0, t2, 0x31), _mm256_permute2f128_pd(t1, t3, 0x31)};
    for (int q = 0; q < nc; ++q) store_first(dst + q * ldd, column[q], nr);
}

void transpose_f64(const double* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, double* dst,
                   std::int64_t ldd) {
    transpose_in_blocks<4>(src, lds, rows, cols, dst, ldd,
                           [](const double* s, std::int64_t ls, int nr, int nc, double* d, std::int64_t ld) {
                               transpose_block(s, ls, nr, nc, d, ld);
                           });
}

// ---------------------------------------------------------------------------------------
// FMA peak probe: kProbeFmaChains independent chains x_i <- x_i·s + t.
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

KernelSet<float> avx2_kernels_f32() {
    return {kAvx2TileF32, &micro_kernel_entry<float, kAvx2TileF32.MR>, &dot_kernel<float>,
            &pack_a_rows_f32, {&narrow_kernel_entry, kNarrowPairCols, 2},
            &micro_kernel_entry<float, kAvx2TileF32.MR, true>,
            {&narrow_rows_entry<float, kAvx2TileF32.MR>, kNarrowMaxCols, 2},
            {&narrow_strip_entry, kNarrowPairCols, kStripPanels}, &transpose_f32};
}
KernelSet<double> avx2_kernels_f64() {
    return {kAvx2TileF64, &micro_kernel_entry<double, kAvx2TileF64.MR>, &dot_kernel<double>, nullptr, {}, nullptr,
            {}, {}, &transpose_f64};
}

double avx2_fma_chains(bool dbl, std::int64_t iterations, double* sink) {
    return dbl ? fma_chains<double>(iterations, sink) : fma_chains<float>(iterations, sink);
}

// Streaming read: 4 independent 32-byte loads per step into 4 accumulators.
double avx2_read_sum(const float* data, std::size_t bytes) {
    const std::size_t n = bytes / sizeof(float);
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    std::size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_add_ps(s0, _mm256_load_ps(data + i));
        s1 = _mm256_add_ps(s1, _mm256_load_ps(data + i + 8));
        s2 = _mm256_add_ps(s2, _mm256_load_ps(data + i + 16));
        s3 = _mm256_add_ps(s3, _mm256_load_ps(data + i + 24));
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_add_ps(s0, _mm256_load_ps(data + i));
    return Simd<float>::reduce_add(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
}

}  // namespace fastnn::gemm_detail

#else  // FASTNN_X86_KERNELS off (or not x86-64): no AVX2 kernels

namespace fastnn::gemm_detail {
KernelSet<float> avx2_kernels_f32() { return {}; }
KernelSet<double> avx2_kernels_f64() { return {}; }
double avx2_fma_chains(bool, std::int64_t, double*) { return 0.0; }
double avx2_read_sum(const float*, std::size_t) { return 0.0; }
}  // namespace fastnn::gemm_detail

#endif
