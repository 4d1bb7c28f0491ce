// The vectorised kernels of the fused softmax-regression epoch (see softmax_epoch.hpp).
//
// Included by softmax_epoch_kernels_{generic,avx2,avx512}.cpp, each compiled with its own
// instruction-set flags and FASTNN_VECTOR_BYTES (16, 32, 64). Written with GCC/Clang vector
// extensions, so one source serves every ISA. Everything here is in an anonymous namespace
// (no function compiled with AVX flags can be merged into generic code by the linker); each
// including file exports only its Kernels getters.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "epochs/lane_sums.hpp"
#include "epochs/softmax_epoch.hpp"
#include "runtime/vector_lanes.hpp"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fastnn::softmax_epoch_detail {
namespace {

using std::int64_t;

using namespace fastnn::vector_lanes;   // Vec<T>, kLanes<T>, load, store

// The forward's register block: R rows × KB classes of accumulators, each step loading R row
// vectors and KB Θᵀ vectors for R·KB FMAs; k = 10 runs as 2 blocks of 5. With 32 registers
// (AVX-512), 5 rows × at most 5 classes (10 loads per 25 FMAs, 31 registers -- vector loads,
// not FMAs, are the scarce resource on some of these cores; on a Zen 4 the softmax epoch ran
// 1.5% faster than with 4 rows × 5); with 16 (AVX2, SSE2), 2 rows × at most 5 classes (13
// registers). (2 × 10, as these ISAs ran before, needs 23: the compiler kept 5 accumulators
// on the stack, and on an AMD EPYC Zen 3, 1 thread, MNIST, the softmax epoch ran 9% faster
// with 2 × 5; 3 × 4 was as fast as 2 × 5, 1 × 10 slower.)
// Wide blocks (the caller's choice, `wide`: where ten rows of Θᵀ and two of the batch fit in
// L1, see fused_epoch): all of k <= 10 classes at once, 2 rows with 32 registers, 1 row with
// 16, so each row of the batch is read from L2 once per batch, not once per block of 5
// classes. On a Sapphire Rapids-class Xeon (48 KB L1), 1 thread, MNIST: the softmax epoch
// 3-5% faster than with 5 × 5.
constexpr int kRowsPerDot = FASTNN_VECTOR_BYTES == 64 ? 5 : 2;
constexpr int kDotClassBlock = 5;
constexpr int kWideRowsPerDot = FASTNN_VECTOR_BYTES == 64 ? 2 : 1;
constexpr int kWideClassBlock = static_cast<int>(kWideClasses);   // softmax_epoch.hpp

// f(std::integral_constant<int, c>{}) for a block of c classes, 1 <= c <= Max <= 10: the class
// count of a register block as a compile-time constant.
template <int Max, typename F>
inline void with_class_count(int64_t c, F&& f) {
    static_assert(Max >= 1 && Max <= 10, "class blocks of 1 to 10");
    auto as = [&](auto n) { f(std::integral_constant<int, decltype(n)::value <= Max ? decltype(n)::value : Max>{}); };
    switch (c) {
        case 1: as(std::integral_constant<int, 1>{}); break;
        case 2: as(std::integral_constant<int, 2>{}); break;
        case 3: as(std::integral_constant<int, 3>{}); break;
        case 4: as(std::integral_constant<int, 4>{}); break;
        case 5: as(std::integral_constant<int, 5>{}); break;
        case 6: as(std::integral_constant<int, 6>{}); break;
        case 7: as(std::integral_constant<int, 7>{}); break;
        case 8: as(std::integral_constant<int, 8>{}); break;
        case 9: as(std::integral_constant<int, 9>{}); break;
        default: as(std::integral_constant<int, 10>{}); break;
    }
}

// One pixel widened: T(float(pixel) · scale), one float rounding (then exact as double).
template <typename T>
inline T widen_one(std::uint8_t pixel, float scale) { return static_cast<T>(static_cast<float>(pixel) * scale); }

#if defined(__AVX2__)
// Eight pixels as float(pixel) · scale.
inline __m256 eight_pixels(const std::uint8_t* src, float scale) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(src));
    return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes)), _mm256_set1_ps(scale));
}
#endif

// One vector of pixels widened: T(float(pixel) · scale), one float rounding (then exact as double).
template <typename T>
inline Vec<T> widen_vector(const std::uint8_t* src, float scale) {
    Vec<T> v;
#if defined(__AVX512F__) && FASTNN_VECTOR_BYTES == 64
    if constexpr (std::is_same_v<T, float>) {
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128(
                                           reinterpret_cast<const __m128i*>(src)))), _mm512_set1_ps(scale));
        std::memcpy(&v, &f, sizeof v);
    } else {
        const __m512d w = _mm512_cvtps_pd(eight_pixels(src, scale));
        std::memcpy(&v, &w, sizeof v);
    }
#elif defined(__AVX2__) && FASTNN_VECTOR_BYTES == 32
    if constexpr (std::is_same_v<T, float>) {
        const __m256 f = eight_pixels(src, scale);
        std::memcpy(&v, &f, sizeof v);
    } else {
        std::int32_t four;
        std::memcpy(&four, src, sizeof four);
        const __m128 f = _mm_mul_ps(_mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four))), _mm_set1_ps(scale));
        const __m256d w = _mm256_cvtps_pd(f);
        std::memcpy(&v, &w, sizeof v);
    }
#else
    for (int i = 0; i < kLanes<T>; ++i) v[i] = widen_one<T>(src[i], scale);
#endif
    return v;
}

// Where the rows of a batch come from: as T (pixels == nullptr), or as uint8 pixels widened on
// the way -- with `keep`, into the rows (which are then scratch this pass writes) by the first
// class block, for the next blocks and the update to read; without, by every block (and by the
// update itself: update_pixels), nothing stored.
struct PixelRows {
    const std::uint8_t* pixels = nullptr;
    int64_t ldp = 0;
    float scale = 1;
    bool keep = true;
};

// How a dot block gets its rows: loaded (Rows::stored), widened from pixels and stored into the
// rows for later passes (Rows::widen_and_store), or widened and used only here (Rows::widen).
enum class Rows { stored, widen_and_store, widen };

// Z[r][j0 + j] = Σ_p x_r[p] · Θᵀ[j0 + j][p] for R rows and KB classes, vectors along p. Unless
// Rows::stored, x_r is made from pixel row pix[r] (x_r[p] = T(float(pix[r][p]) · scale)) and,
// with Rows::widen_and_store, stored, for the next class blocks and the update to read. `ahead_lines` lines of `ahead` are
// prefetched along the way, one per vector step (the rest, if any, after the loop: logits_blocks
// asks for no more lines than steps).
//
// The loop is written so that the compiler keeps all R·KB accumulators and every pointer in
// registers: rows shorter than a vector go another way (scalar_dot_block), so the loop is known
// to run and acc needs no home on the stack, and the prefetch is a pointer and a limit (a
// credit-paced stepper it replaced held five more registers and cost the kernel about 8% on a Zen 4).
template <typename T, int R, int KB, Rows Mode>
void scalar_dot_block(const T* const* rows, const std::uint8_t* const* pix, float scale, const T* tt, int64_t d, T* z,
                      int64_t ldz) {
    T row[kLanes<T>];   // (d < W) a row widened from pixels, for Rows::widen: summed from memory, as dot_block's tail
    for (int r = 0; r < R; ++r) {
        T* x = Mode == Rows::widen ? row : const_cast<T*>(rows[r]);
        if constexpr (Mode != Rows::stored)
            for (int64_t q = 0; q < d; ++q) x[q] = widen_one<T>(pix[r][q], scale);
        for (int j = 0; j < KB; ++j) {
            T s = T(0);   // (the lane sum of the vector loop's accumulators, none here)
            for (int64_t q = 0; q < d; ++q) s += x[q] * tt[j * kPanelFeatures<T> + q];   // (d < W: all in panel 0)
            z[r * ldz + j] = s;
        }
    }
}

template <typename T, int R, int KB, Rows Mode>
void dot_block(const T* const* rows, const std::uint8_t* const* pix, float scale, const T* tt, int64_t panel, int64_t d,
               T* z, int64_t ldz, RangePrefetch& ahead, int64_t ahead_lines) {
    constexpr int W = kLanes<T>;
    constexpr int kStepsPerPanel = static_cast<int>(kPanelFeatures<T> / W);   // 1 with AVX-512
    static_assert(kStepsPerPanel >= 1 && kPanelFeatures<T> % W == 0, "vectors tile a panel");
    const RangePrefetch::Span due = ahead.take(ahead_lines);
    if (d < W) {
        scalar_dot_block<T, R, KB, Mode>(rows, pix, scale, tt, d, z, ldz);
        for (const char* line = due.first; line < due.last; line += 64) due.line(line);
        return;
    }
    const char* pf = due.first;
    const char* const pf_end = due.last;
    const T* x[R];   // a local copy, which the compiler keeps in registers
    for (int r = 0; r < R; ++r) x[r] = rows[r];
    Vec<T> acc[R][KB];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < KB; ++j) acc[r][j] = Vec<T>{};
    int64_t p = 0;
    const T* tp = tt;   // this step's panel: Θᵀ[j][p …] at tp + j·L (+ the step's place in the panel)
    int step_in_panel = 0;
    do {
        if (pf < pf_end) {
            due.line(pf);
            pf += 64;
        }
        Vec<T> xv[R];
        for (int r = 0; r < R; ++r) {
            if constexpr (Mode != Rows::stored) {
                xv[r] = widen_vector<T>(pix[r] + p, scale);
                if constexpr (Mode == Rows::widen_and_store) store(const_cast<T*>(x[r]) + p, xv[r]);
            } else {
                xv[r] = load(x[r] + p);
            }
        }
        const T* tv = kStepsPerPanel == 1 ? tp : tp + step_in_panel * W;
        for (int j = 0; j < KB; ++j) {
            const Vec<T> t = in_register(load(tv + j * kPanelFeatures<T>));   // one load for R FMAs
            for (int r = 0; r < R; ++r) acc[r][j] += xv[r] * t;
        }
        p += W;
        if constexpr (kStepsPerPanel == 1) {
            tp += panel;
        } else if (++step_in_panel == kStepsPerPanel) {
            step_in_panel = 0;
            tp += panel;
        }
    } while (p + W <= d);
    for (; pf < pf_end; pf += 64) due.line(pf);
    // The last d mod W features: widened into the rows (Rows::widen_and_store) or into `tail`
    // (Rows::widen), then summed from memory alike. (Widened inside the sum below, GCC 12 gave
    // other bits for a tail of 8 features: it contracted that expression otherwise.)
    T tail[Mode == Rows::widen ? R : 1][W];
    if constexpr (Mode != Rows::stored)
        for (int r = 0; r < R; ++r)
            for (int64_t q = p; q < d; ++q) {
                const T v = widen_one<T>(pix[r][q], scale);
                if constexpr (Mode == Rows::widen) tail[r][q - p] = v;
                else const_cast<T*>(x[r])[q] = v;
            }
    Vec<T> sums[R * KB];   // acc's lane sums, all at once (lane_sums.hpp), then the last d mod W features
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < KB; ++j) sums[r * KB + j] = acc[r][j];
    if constexpr (kSumsByPermute<T, R * KB, KB>) {
        if (p == d) {   // no last features: the sums are the logits, permuted straight into Z's rows
            lane_sums_to_rows<T, R, KB>(sums, z, ldz);
            return;
        }
    }
    T s[R * KB];
    lane_sums<T, R * KB>(sums, s);
    const T* tail_t = tt + theta_index<T>(panel, 0, p);   // the last features lie in one panel (p % W == 0, d − p < W)
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < KB; ++j) {
            T zj = s[r * KB + j];
            for (int64_t q = p; q < d; ++q)
                zj += (Mode == Rows::widen ? tail[r][q - p] : x[r][q]) * tail_t[j * kPanelFeatures<T> + (q - p)];
            z[r * ldz + j] = zj;
        }
}

// Rows r … r+R−1 of Xb against the KB classes of Θᵀ from tt (made from `source`'s pixels as
// `mode` says).
template <typename T, int R, int KB>
void logits_rows(const T* Xb, int64_t ldx, const PixelRows& source, Rows mode, int64_t r, int64_t d, const T* tt,
                 int64_t panel, T* z, int64_t ldz, RangePrefetch& ahead, int64_t ahead_lines) {
    const T* x[R];
    const std::uint8_t* pix[R];
    for (int i = 0; i < R; ++i) {
        x[i] = Xb ? Xb + (r + i) * ldx : nullptr;
        pix[i] = source.pixels ? source.pixels + (r + i) * source.ldp : nullptr;
    }
    const float scale = source.scale;
    switch (mode) {
        case Rows::stored: dot_block<T, R, KB, Rows::stored>(x, pix, scale, tt, panel, d, z + r * ldz, ldz, ahead, ahead_lines); break;
        case Rows::widen_and_store:
            dot_block<T, R, KB, Rows::widen_and_store>(x, pix, scale, tt, panel, d, z + r * ldz, ldz, ahead, ahead_lines);
            break;
        case Rows::widen: dot_block<T, R, KB, Rows::widen>(x, pix, scale, tt, panel, d, z + r * ldz, ldz, ahead, ahead_lines); break;
    }
}

// Z = Xb · Θ: for each block of classes (balanced: k = 10 runs as 5 + 5, not 6 + 4), all the
// rows, kRowsPerDot at a time (then pairs, then a single row), prefetching ahead_lines lines of
// `ahead` along the way. The class blocks are the outer loop so that the block's rows of Θᵀ
// (half of it for k = 10: 16 KB) stay in L1 while the batch's rows stream past from L2 -- all
// of Θᵀ and a group's rows (44 KB) do not fit in a 32 KB L1 (AMD Zen). Every Z[r][j] is summed
// in the same order whichever group or block its row and class fall in. With pixels in
// `source`, Xb (then scratch) is made from them on the way by the first class block:
// T(float(pixel) · scale); or, without source.keep, every block widens them again, Xb unused.
template <typename T, int RowsPerDot, int ClassBlock>
void logits_blocks(const T* Xb, int64_t ldx, const PixelRows& source, int64_t B, int64_t d, const T* tt, int64_t panel,
                   int64_t k, T* Z, RangePrefetch& ahead, int64_t ahead_lines) {
    const int64_t blocks = (k + ClassBlock - 1) / ClassBlock;
    const int64_t block = (k + blocks - 1) / blocks;
    const int64_t groups = B / RowsPerDot + (B % RowsPerDot) / 2 + (B % RowsPerDot) % 2;
    // Lines per dot_block: an even share, but at most one per vector step (what is not asked for here
    // is left in `ahead` for the update). Where a share has more lines than steps, two per step -- or
    // one per step and the rest at the loop's end -- left the batch rows arriving late: a Zen 4 drops
    // software prefetches that find its miss buffers full (4,900 prefetcht2 back to back, then a
    // 38 µs wait, brought MNIST's next batch into L2 so little that the forward over it took 1.9x as
    // long as from L2; one per 25 cycles, 1.02x). Zen 4 (32 KB L1: 5 × 5 blocks, 49 steps for 61
    // lines), 1 thread, MNIST: in a loop of the epoch's kernels the forward took 10.1 ms an epoch,
    // not 11.1 ms. Wide blocks have a step per line (Xeon family 6 model 167: unchanged).
    const int64_t steps = d / kLanes<T>;   // (0: scalar_dot_block, which prefetches its lines at once)
    const int64_t calls = groups * blocks;
    int64_t per_call = (ahead_lines + calls - 1) / calls;
    if (steps > 0) per_call = std::min(per_call, steps);
    for (int64_t j0 = 0; j0 < k; j0 += block) {
        const T* t = tt + j0 * kPanelFeatures<T>;
        T* zj = Z + j0;
        const Rows mode = source.pixels == nullptr ? Rows::stored
                          : !source.keep           ? Rows::widen
                          : j0 == 0                ? Rows::widen_and_store   // the first block widens them
                                                   : Rows::stored;
        with_class_count<ClassBlock>(k - j0 < block ? k - j0 : block, [&](auto kb) {
            constexpr int KB = decltype(kb)::value;
            int64_t r = 0;
            for (; r + RowsPerDot <= B; r += RowsPerDot)
                logits_rows<T, RowsPerDot, KB>(Xb, ldx, source, mode, r, d, t, panel, zj, k, ahead, per_call);
            for (; r + 2 <= B; r += 2)
                logits_rows<T, 2, KB>(Xb, ldx, source, mode, r, d, t, panel, zj, k, ahead, per_call);
            for (; r < B; ++r) logits_rows<T, 1, KB>(Xb, ldx, source, mode, r, d, t, panel, zj, k, ahead, per_call);
        });
    }
}

template <typename T>
void logits_from(const T* Xb, int64_t ldx, const PixelRows& source, int64_t B, int64_t d, const T* tt, int64_t panel,
                 int64_t k, T* Z, RangePrefetch& ahead, int64_t ahead_lines, bool wide) {
    if (wide)
        logits_blocks<T, kWideRowsPerDot, kWideClassBlock>(Xb, ldx, source, B, d, tt, panel, k, Z, ahead, ahead_lines);
    else
        logits_blocks<T, kRowsPerDot, kDotClassBlock>(Xb, ldx, source, B, d, tt, panel, k, Z, ahead, ahead_lines);
}

template <typename T>
void logits(const T* Xb, int64_t ldx, int64_t B, int64_t d, const T* tt, int64_t panel, int64_t k, T* Z,
            RangePrefetch& ahead, int64_t ahead_lines, bool wide) {
    logits_from<T>(Xb, ldx, PixelRows{}, B, d, tt, panel, k, Z, ahead, ahead_lines, wide);
}

template <typename T>
void logits_pixels(const std::uint8_t* pixels, int64_t ldp, float scale, T* Xb, int64_t ldx, int64_t B, int64_t d,
                   const T* tt, int64_t panel, int64_t k, T* Z, RangePrefetch& ahead, int64_t ahead_lines, bool wide) {
    logits_from<T>(Xb, ldx, PixelRows{pixels, ldp, scale, Xb != nullptr}, B, d, tt, panel, k, Z, ahead, ahead_lines, wide);
}

// exp(x) on a whole vector, for x <= 0 (logits minus their row's maximum), the Cephes way:
//   n = round(x / ln 2),   r = x − n·ln 2  (ln 2 in two parts, so r is exact),
//   exp(x) = 2ⁿ · P(r),    |r| <= ln 2 / 2,
// P being Cephes's minimax polynomial for float (within about 1 ulp of exp) and the degree-12
// Taylor polynomial for double (truncation < 2e-16). n comes from adding 1.5·2^mantissa, whose
// last bit is worth 1, and 2ⁿ is built in the exponent field. Below `lowest` e^x is 0: there it
// is less than e^lowest ≈ 1.6e-38 (double: 3.3e-308), so at most a subnormal, which the core's
// calls flush to zero anyway (runtime/float_mode.hpp), and 0 where NumPy's exp underflows too
// (below −103.9; double −745). (It used to be e^lowest: then every saturated probability became a
// subnormal gradient once scaled by 1/B, and with set_flush_subnormals(False) the softmax epoch
// on X = pixels 0-255 took 726 ms instead of 18 ms on an Intel Xeon family 6 model 207.)
// NaN stays NaN.
template <typename T> struct ExpConstants;
template <> struct ExpConstants<float> {
    typedef std::int32_t IntVec __attribute__((vector_size(FASTNN_VECTOR_BYTES)));
    static constexpr float lowest = -87.0f, log2e = 1.44269504088896341f, magic = 12582912.0f;   // 1.5·2^23
    static constexpr float ln2_hi = 0.693359375f, ln2_lo = -2.12194440e-4f;
    static constexpr int mantissa_bits = 23, bias = 127;
};
template <> struct ExpConstants<double> {
    typedef std::int64_t IntVec __attribute__((vector_size(FASTNN_VECTOR_BYTES)));
    static constexpr double lowest = -708.0, log2e = 1.4426950408889634074, magic = 6755399441055744.0;   // 1.5·2^52
    static constexpr double ln2_hi = 6.93145751953125e-1, ln2_lo = 1.42860682030941723212e-6;
    static constexpr int mantissa_bits = 52, bias = 1023;
};

template <typename T>
inline Vec<T> exp_polynomial(const Vec<T>& r) {
    if constexpr (sizeof(T) == 4) {
        Vec<T> p = splat<T>(1.9875691500e-4f);
        p = p * r + 1.3981999507e-3f;
        p = p * r + 8.3334519073e-3f;
        p = p * r + 4.1665795894e-2f;
        p = p * r + 1.6666665459e-1f;
        p = p * r + 5.0000001201e-1f;
        return p * (r * r) + r + 1.0f;
    } else {
        constexpr double inverse_factorial[13] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720,
                                                  1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800,
                                                  1.0 / 39916800, 1.0 / 479001600};
        Vec<T> p = splat<T>(inverse_factorial[12]);
        for (int i = 11; i >= 0; --i) p = p * r + inverse_factorial[i];
        return p;
    }
}

template <typename T>
inline Vec<T> exp_nonpositive(Vec<T> x) {
    using C = ExpConstants<T>;
    using IntVec = typename C::IntVec;
    const auto underflows = x < C::lowest;   // NaN compares false: kept
    x = underflows ? splat<T>(C::lowest) : x;   // (keeps 2ⁿ's exponent field in range)
    const Vec<T> shifted = x * C::log2e + C::magic;   // round(x / ln 2) in the last bits
    const Vec<T> n = shifted - C::magic;
    const Vec<T> r = (x - n * C::ln2_hi) - n * C::ln2_lo;
    IntVec shifted_bits, magic_bits;
    std::memcpy(&shifted_bits, &shifted, sizeof shifted);
    const Vec<T> magic = splat<T>(C::magic);
    std::memcpy(&magic_bits, &magic, sizeof magic);
    const IntVec exponent = (shifted_bits - magic_bits + C::bias) << C::mantissa_bits;   // 2ⁿ's bits
    Vec<T> two_to_n;
    std::memcpy(&two_to_n, &exponent, sizeof exponent);
    const Vec<T> e = two_to_n * exp_polynomial<T>(r);
    return underflows ? splat<T>(0) : e;
}

// G = scale · (softmax(Z) − onehot(y)) in place, for B rows of k logits stored contiguously
// (no loss is formed: the epoch does not need it). Per row the maximum m_r is subtracted; then
// e = exp(z − m_r) over the rows' B·k values, a vector at a time (the last, partial vector through
// a copy: nothing past the B rows is read or written, so threads may each take their own rows);
// then each row is scaled by scale / Σ_j e_j and loses `scale` at its label.
template <typename T>
void softmax_gradient(T* Z, int64_t B, int64_t k, const int64_t* y, T scale) {
    constexpr int W = kLanes<T>;
    const int64_t n = B * k;
    for (int64_t r = 0; r < B; ++r) {
        T* z = Z + r * k;
        T m = z[0];
        for (int64_t j = 1; j < k; ++j) m = z[j] > m ? z[j] : m;
        for (int64_t j = 0; j < k; ++j) z[j] -= m;
    }
    const int64_t whole = n / W * W;
    for (int64_t i = 0; i < whole; i += W) store(Z + i, exp_nonpositive<T>(load(Z + i)));
    if (whole < n) {   // (exp acts lane by lane: the same values as in a whole vector)
        T last[W] = {};
        std::memcpy(last, Z + whole, static_cast<std::size_t>(n - whole) * sizeof(T));
        store(last, exp_nonpositive<T>(load(last)));
        std::memcpy(Z + whole, last, static_cast<std::size_t>(n - whole) * sizeof(T));
    }
    for (int64_t r = 0; r < B; ++r) {
        T* g = Z + r * k;
        T sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += g[j];
        const T to_gradient = scale / sum;   // scale · softmax_j = e_j · scale / Σ e
        for (int64_t j = 0; j < k; ++j) g[j] *= to_gradient;
        g[y[r]] -= scale;
    }
}

// The update's register block: PV vectors of features × KB classes of sums
//   acc[j][v] = Σ_r C[r][j] · x_r[p + v·W]      (r = 0 … B−1 in order, one FMA chain each)
// kept in registers while every row of the batch streams past (per row: PV loads, KB
// broadcasts, PV·KB FMAs), then added to Θᵀ in one rounding, Θᵀ ← Θᵀ + acc, as NumPy's
// Θ −= lr·(Xᵀ ∇Z) does. Nothing but Θᵀ is stored: no gradient buffer streams through L1.
// With 32 registers (AVX-512) 2 × 10 sums + 2 row vectors + 1 broadcast; with 16, 1 × 10.
// (On a Zen 3, 2 × 5 -- fewer loads per FMA, but the batch streamed twice -- was 8% slower.)
constexpr int kUpdateVectors = FASTNN_VECTOR_BYTES == 64 ? 2 : 1;
// SSE2 has no broadcast from memory (a load and a shuffle, and the shuffles would outnumber the
// multiply-adds): there the batch's coefficients are broadcast once per batch into a table of
// vectors, which the update then loads.
constexpr bool kBroadcastTable = FASTNN_VECTOR_BYTES == 16;
constexpr int kClassBlock = 10;   // classes per register block of the update

// The update's rows: x_r[p] from the batch's rows as T, or widened from its pixels on the way
// (the values logits_pixels makes). The update walks a row pointer (at(r, p), then + ld per row).
template <typename T>
struct StoredRows {
    using Element = T;
    const T* X;
    int64_t ld;
    const T* at(int64_t r, int64_t p) const { return X + r * ld + p; }
    static Vec<T> vec(const T* x) { return load(x); }
    T one(int64_t r, int64_t p) const { return X[r * ld + p]; }
};
template <typename T>
struct WidenedRows {
    using Element = std::uint8_t;
    const std::uint8_t* pixels;
    int64_t ld;
    float scale;
    const std::uint8_t* at(int64_t r, int64_t p) const { return pixels + r * ld + p; }
    Vec<T> vec(const std::uint8_t* x) const { return widen_vector<T>(x, scale); }
    T one(int64_t r, int64_t p) const { return widen_one<T>(pixels[r * ld + p], scale); }
};

// Features p … p + PV·W − 1 of KB classes: per row, PV vectors of the row and KB broadcasts of
// its coefficients; the lines of `due` (the next batch, into L2) one per row step, and, where
// kPrefetchStrip, the row's next line (its next strips of features) into L1. The batch is read
// strip by strip down its rows (a line per row, 3 KB apart for MNIST), a pattern the hardware
// prefetchers do not follow; asked for a line ahead, each line is in L1 when its strip comes.
// On an AMD EPYC Zen 3 (16 vector registers, 1 × 10 blocks), 1 thread, MNIST: the softmax
// epoch 4% faster with the prefetch alone, 10% with the row pointer and the per-block prefetch
// span too (GCC had kept the row stride and the pacing state on the stack). Not with AVX-512
// (32 registers, 2 vectors per row): unmeasured there.
constexpr bool kPrefetchStrip = FASTNN_VECTOR_BYTES != 64;

// Rows [r0, r1) onto the register block's sums acc (features p … p + PV·W − 1, KB classes).
template <typename T, int PV, int KB, typename Src>
inline void accumulate_rows(const Src& rows, int64_t r0, int64_t r1, const T* C, const Vec<T>* c_table, int64_t ldc,
                            int64_t p, RangePrefetch::Span due, Vec<T> (&acc)[KB][PV]) {
    constexpr int W = kLanes<T>;
    const typename Src::Element* x = rows.at(r0, p);
    const int64_t ld = rows.ld;
    const char* pf = due.first;
    const char* const pf_end = due.last;
    // One line per row, two per row over the first rows where the span has more lines than the loop
    // has rows (a burst of the rest after the loop lost lines: see logits_blocks).
    const int64_t extra = std::max<int64_t>(0, std::min<int64_t>(r1 - r0, (pf_end - pf) / 64 - (r1 - r0)));
    const char* const pairs_end = pf + 128 * extra;
    for (int64_t r = r0; r < r1; ++r, x += ld) {
        if (pf < pairs_end) {
            due.line(pf);
            due.line(pf + 64);
            pf += 128;
        } else if (pf < pf_end) {
            due.line(pf);
            pf += 64;
        }
        if constexpr (kPrefetchStrip) __builtin_prefetch(reinterpret_cast<const char*>(x) + 64, 0, 3);
        Vec<T> xv[PV];
        for (int v = 0; v < PV; ++v) xv[v] = rows.vec(x + v * W);
        const T* c = C + r * ldc;
        for (int j = 0; j < KB; ++j) {
            Vec<T> cj;
            if constexpr (kBroadcastTable) cj = c_table[r * ldc + j];
            else cj = splat(c[j]);
            for (int v = 0; v < PV; ++v) acc[j][v] += cj * xv[v];
        }
    }
    for (; pf < pf_end; pf += 64) due.line(pf);
}

// ---------------------------------------------------------------------------------------
// Θᵀ[j][:] += Σ_r C[r][j] · x_r[:], register block by register block (PV vectors of features × up
// to kClassBlock classes, then single vectors, then the last d mod W features one at a time), as
// one link of a chain over the rows (UpdateChain, softmax_epoch.hpp): this link's rows [r0, r1)
// onto the sums the link before it left in the block's slot. Link 0 starts from zero and the last
// link adds to Θᵀ, so every sum is one chain over r = 0 … B − 1 whatever the links; a single
// link (UpdateChain{}: the whole update on one thread) touches no slot.
inline void cpu_pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// Until slot `unit` holds what the link before this one left in it (a spin, then yields: the
// other link's thread may have lost its CPU).
inline void wait_for_slot(const UpdateChain& chain, int64_t unit) {
    const std::int64_t want = chain.stamp(chain.link);
    for (int spins = 0; chain.slots[unit].ready.load(std::memory_order_acquire) != want; ++spins) {
        if (spins < (1 << 12)) cpu_pause();
        else std::this_thread::yield();
    }
}

inline void hand_on(const UpdateChain& chain, int64_t unit) {
    chain.slots[unit].ready.store(chain.stamp(chain.link + 1), std::memory_order_release);
}

template <typename T>
T* slot_of(const UpdateChain& chain, int64_t unit) {
    return reinterpret_cast<T*>(chain.slots[unit].sums);
}

// The register block of features p … p + PV·W − 1 and KB classes (see kUpdateVectors): its sums
// over rows [r0, r1), from zero (link 0) or from the slot, then added to Θᵀ in one rounding (the
// last link) or handed on in the slot. Always inlined into update_rows: left to itself, GCC 12
// stopped inlining it once the forward's lane sums changed (unrelated code in the same file), and
// the update ran 4% slower on a Zen 4 (1 thread), 6% slower on 2 threads.
template <typename T, int PV, int KB, typename Src>
__attribute__((always_inline)) inline void update_block(const Src& rows, int64_t r0, int64_t r1, const T* C,
                                                        const Vec<T>* c_table, int64_t ldc, T* theta, int64_t panel,
                                                        int64_t p, RangePrefetch::Span due, const UpdateChain& chain,
                                                        int64_t unit) {
    constexpr int W = kLanes<T>;
    static_assert(sizeof(Vec<T>) * KB * PV <= sizeof(ChainSlot::sums), "a register block's sums fit a slot");
    Vec<T> acc[KB][PV];
    if (chain.link == 0) {
        for (int j = 0; j < KB; ++j)
            for (int v = 0; v < PV; ++v) acc[j][v] = Vec<T>{};
    } else {
        wait_for_slot(chain, unit);
        const Vec<T>* slot = reinterpret_cast<const Vec<T>*>(slot_of<T>(chain, unit));
        for (int j = 0; j < KB; ++j)
            for (int v = 0; v < PV; ++v) acc[j][v] = slot[j * PV + v];
    }
    accumulate_rows<T, PV, KB>(rows, r0, r1, C, c_table, ldc, p, due, acc);
    if (chain.link == chain.links - 1) {
        for (int j = 0; j < KB; ++j)
            for (int v = 0; v < PV; ++v) {
                T* t = theta + theta_index<T>(panel, j, p + v * W);   // (W features within one panel)
                store(t, load(t) + acc[j][v]);
            }
    } else {
        Vec<T>* slot = reinterpret_cast<Vec<T>*>(slot_of<T>(chain, unit));
        for (int j = 0; j < KB; ++j)
            for (int v = 0; v < PV; ++v) slot[j * PV + v] = acc[j][v];
        hand_on(chain, unit);
    }
}

// The last d mod W features, one at a time, summed in the same row order (the partial sums of
// its features × classes in the slot between links).
template <typename T, typename Src>
void update_tail(const Src& rows, int64_t r0, int64_t r1, const T* C, int64_t ldc, T* theta, int64_t panel, int64_t p0,
                 int64_t d, int64_t classes, const UpdateChain& chain, int64_t unit) {
    const bool first = chain.link == 0, last = chain.link == chain.links - 1;
    T* slot = first && last ? nullptr : slot_of<T>(chain, unit);
    if (!first) wait_for_slot(chain, unit);
    for (int64_t p = p0; p < d; ++p)
        for (int64_t j = 0; j < classes; ++j) {
            T sum = first ? T(0) : slot[(p - p0) * classes + j];
            for (int64_t r = r0; r < r1; ++r) sum += C[r * ldc + j] * rows.one(r, p);
            if (last) theta[theta_index<T>(panel, j, p)] += sum;
            else slot[(p - p0) * classes + j] = sum;
        }
    if (!last) hand_on(chain, unit);
}

// The vector register blocks over d features of one class block: PV vectors each, then single vectors.
template <typename T>
int64_t vector_blocks(int64_t d) {
    constexpr int W = kLanes<T>, PV = kUpdateVectors;
    return d / (PV * W) + (d % (PV * W)) / W;
}

// The register blocks of update_rows, in its order (the scalar tail too), one slot each.
template <typename T>
int64_t chain_units(int64_t d, int64_t k) {
    return (k + kClassBlock - 1) / kClassBlock * (vector_blocks<T>(d) + (d % kLanes<T> != 0 ? 1 : 0));
}

// All k classes, kClassBlock at a time (each block streams the rows again, from cache); what is
// left of `ahead` is prefetched during the first block, spread evenly over its row steps.
template <typename T, typename Src>
void update_rows(const Src& rows, int64_t r0, int64_t r1, int64_t d, const T* C, int64_t k, T* theta, int64_t panel,
                 RangePrefetch& ahead, const UpdateChain& chain) {
    constexpr int W = kLanes<T>, PV = kUpdateVectors;
    const int64_t blocks = vector_blocks<T>(d);
    const int64_t per_block = blocks > 0 ? (ahead.lines_left() + blocks - 1) / blocks : 0;
    const Vec<T>* c_table = nullptr;
    if constexpr (kBroadcastTable) {
        thread_local std::vector<Vec<T>> table;   // grows to the largest batch, then is reused
        const int64_t B = r1;   // (rows before r0 are never read)
        if (table.size() < static_cast<std::size_t>(B * k)) table.resize(static_cast<std::size_t>(B * k));
        for (int64_t i = r0 * k; i < B * k; ++i) table[static_cast<std::size_t>(i)] = splat(C[i]);
        c_table = table.data();
    }
    RangePrefetch none;
    int64_t unit = 0;
    for (int64_t j0 = 0; j0 < k; j0 += kClassBlock) {
        const T* Cj = C + j0;
        const Vec<T>* tj = c_table ? c_table + j0 : nullptr;
        T* t = theta + j0 * kPanelFeatures<T>;
        RangePrefetch& ahead_now = j0 == 0 ? ahead : none;
        with_class_count<kClassBlock>(k - j0, [&](auto kb) {
            constexpr int KB = decltype(kb)::value;
            int64_t p = 0;
            for (; p + PV * W <= d; p += PV * W)
                update_block<T, PV, KB>(rows, r0, r1, Cj, tj, k, t, panel, p, ahead_now.take(per_block), chain, unit++);
            for (; p + W <= d; p += W)
                update_block<T, 1, KB>(rows, r0, r1, Cj, tj, k, t, panel, p, ahead_now.take(per_block), chain, unit++);
            if (p < d) update_tail<T>(rows, r0, r1, Cj, k, t, panel, p, d, KB, chain, unit++);
        });
    }
    const RangePrefetch::Span rest = ahead.take(ahead.lines_left());
    for (const char* line = rest.first; line < rest.last; line += 64) rest.line(line);
}

template <typename T>
void update(const T* Xb, int64_t ldx, int64_t r0, int64_t r1, int64_t d, const T* C, int64_t k, T* theta,
            int64_t panel, RangePrefetch& ahead, const UpdateChain& chain) {
    update_rows<T>(StoredRows<T>{Xb, ldx}, r0, r1, d, C, k, theta, panel, ahead, chain);
}

// The same update with the rows widened from pixels on the way (nothing read but the pixels).
template <typename T>
void update_pixels(const std::uint8_t* pixels, int64_t ldp, float scale, int64_t B, int64_t d, const T* C,
                   int64_t k, T* theta, int64_t panel, RangePrefetch& ahead) {
    update_rows<T>(WidenedRows<T>{pixels, ldp, scale}, 0, B, d, C, k, theta, panel, ahead, UpdateChain{});
}

// out[r][p] = T(float(pixels[r][p]) · scale) for rows [0, B) and features [p0, p1) (the same
// values logits_pixels writes).
template <typename T>
void widen_pixels(const std::uint8_t* pixels, int64_t ldp, int64_t B, int64_t p0, int64_t p1, float scale, T* out,
                  int64_t ldo) {
    constexpr int W = kLanes<T>;
    for (int64_t r = 0; r < B; ++r) {
        const std::uint8_t* src = pixels + r * ldp;
        T* dst = out + r * ldo;
        int64_t p = p0;
        for (; p + W <= p1; p += W) store(dst + p, widen_vector<T>(src + p, scale));
        for (; p < p1; ++p) dst[p] = widen_one<T>(src[p], scale);
    }
}

// out[r][p] = T(x[r][p]) for rows [0, B) and features [p0, p1): float rows as T, exactly (float
// X beside double weights), in this ISA's vectors.
template <typename T>
void widen_floats(const float* x, int64_t ldx, int64_t B, int64_t p0, int64_t p1, T* out, int64_t ldo) {
    for (int64_t r = 0; r < B; ++r) {
        const float* src = x + r * ldx;
        T* dst = out + r * ldo;
        for (int64_t p = p0; p < p1; ++p) dst[p] = static_cast<T>(src[p]);
    }
}

template <typename T>
Kernels<T> kernels() {
    return {&logits<T>,        &softmax_gradient<T>, &update<T>,       &chain_units<T>,
            &logits_pixels<T>, &widen_pixels<T>,     &update_pixels<T>, &widen_floats<T>};
}

}  // namespace
}  // namespace fastnn::softmax_epoch_detail
