// The vectorised kernels of the fused softmax-regression epoch (see softmax_epoch.hpp).
//
// Included by softmax_epoch_kernels_{generic,avx2,avx512}.cpp, each compiled with its own
// instruction-set flags and FASTNN_VECTOR_BYTES (16, 32, 64). Written with GCC/Clang vector
// extensions, so one source serves every ISA. Everything here is in an anonymous namespace
// (no function compiled with AVX flags can be merged into generic code by the linker); each
// including file exports only its Kernels getters.
#pragma once

#include <cstdint>
#include <cstring>
#include <utility>

#include "softmax_epoch.hpp"
#include "vector_lanes.hpp"

namespace fastnn::softmax_epoch_detail {
namespace {

using std::int64_t;

using namespace fastnn::vector_lanes;   // Vec<T>, kLanes<T>, load, store

// Σ of the lanes, as a tree in registers: add the vector's two halves until two lanes are left.
template <typename V, std::size_t... I>
inline auto low_half(const V& v, std::index_sequence<I...>) { return __builtin_shufflevector(v, v, I...); }
template <typename V, std::size_t... I>
inline auto high_half(const V& v, std::index_sequence<I...>) {
    return __builtin_shufflevector(v, v, (I + sizeof...(I))...);
}
template <int Lanes>
struct LaneSum {
    template <typename V>
    static auto of(const V& v) {
        constexpr auto half = std::make_index_sequence<Lanes / 2>{};
        return LaneSum<Lanes / 2>::of(low_half(v, half) + high_half(v, half));
    }
};
template <>
struct LaneSum<2> {
    template <typename V>
    static auto of(const V& v) { return v[0] + v[1]; }
};
template <typename T> inline T sum_lanes(const Vec<T>& v) { return LaneSum<kLanes<T>>::of(v); }

// The forward's register block: R rows × KB classes of accumulators, each step loading R row
// vectors and KB Θᵀ vectors for R·KB FMAs. With 32 registers (AVX-512), 4 rows × at most 6
// classes (k = 10 runs as 2 blocks of 5: 9 loads per 20 FMAs -- vector loads, not FMAs, are
// the scarce resource on some of these cores); with 16, 2 rows × at most 10 classes.
constexpr int kRowsPerDot = FASTNN_VECTOR_BYTES == 64 ? 4 : 2;
constexpr int kDotClassBlock = FASTNN_VECTOR_BYTES == 64 ? 6 : 10;
constexpr int kClassBlock = 10;     // classes per register block of the update: 2 × 10 coefficients
constexpr int kRowsPerUpdate = 2;   // rows sharing each Θᵀ load/store in the update

// Z[r][j0 + j] = Σ_p x_r[p] · Θᵀ[j0 + j][p] for R rows and KB classes, vectors along p.
template <typename T, int R, int KB>
void dot_block(const T* const* rows, const T* tt, int64_t dp, int64_t d, T* z, int64_t ldz) {
    constexpr int W = kLanes<T>;
    const T* x[R];   // a local copy, which the compiler keeps in registers
    for (int r = 0; r < R; ++r) x[r] = rows[r];
    Vec<T> acc[R][KB];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < KB; ++j) acc[r][j] = Vec<T>{};
    int64_t p = 0;
    for (; p + W <= d; p += W) {
        Vec<T> xv[R];
        for (int r = 0; r < R; ++r) xv[r] = load(x[r] + p);
        for (int j = 0; j < KB; ++j) {
            const Vec<T> t = in_register(load(tt + j * dp + p));   // one load for R FMAs
            for (int r = 0; r < R; ++r) acc[r][j] += xv[r] * t;
        }
    }
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < KB; ++j) {
            T s = sum_lanes<T>(acc[r][j]);
            for (int64_t q = p; q < d; ++q) s += x[r][q] * tt[j * dp + q];   // the last d mod W features
            z[r * ldz + j] = s;
        }
}

template <typename T, int R>
void dot_rows(const T* const* x, const T* tt, int64_t dp, int64_t d, int64_t k, T* z, int64_t ldz) {
    const int64_t blocks = (k + kDotClassBlock - 1) / kDotClassBlock;
    const int64_t block = (k + blocks - 1) / blocks;   // balanced: k = 10 -> 5 + 5, not 6 + 4
    for (int64_t j0 = 0; j0 < k; j0 += block) {
        const T* t = tt + j0 * dp;
        T* zj = z + j0;
        switch (k - j0 < block ? k - j0 : block) {   // the class block, as a constant
            case 1: dot_block<T, R, 1>(x, t, dp, d, zj, ldz); break;
            case 2: dot_block<T, R, 2>(x, t, dp, d, zj, ldz); break;
            case 3: dot_block<T, R, 3>(x, t, dp, d, zj, ldz); break;
            case 4: dot_block<T, R, 4>(x, t, dp, d, zj, ldz); break;
            case 5: dot_block<T, R, 5>(x, t, dp, d, zj, ldz); break;
            case 6: dot_block<T, R, 6>(x, t, dp, d, zj, ldz); break;
#if FASTNN_VECTOR_BYTES != 64
            case 7: dot_block<T, R, 7>(x, t, dp, d, zj, ldz); break;
            case 8: dot_block<T, R, 8>(x, t, dp, d, zj, ldz); break;
            case 9: dot_block<T, R, 9>(x, t, dp, d, zj, ldz); break;
            case 10: dot_block<T, R, 10>(x, t, dp, d, zj, ldz); break;
#endif
            default: break;   // unreachable: 1 <= block <= kDotClassBlock
        }
    }
}

// Rows r … r+R−1 of Xb.
template <typename T, int R>
void logits_rows(const T* Xb, int64_t ldx, int64_t r, int64_t d, const T* tt, int64_t dp, int64_t k, T* Z) {
    const T* x[R];
    for (int i = 0; i < R; ++i) x[i] = Xb + (r + i) * ldx;
    dot_rows<T, R>(x, tt, dp, d, k, Z + r * k, k);
}

// Z = Xb · Θ, kRowsPerDot rows at a time (then pairs, then a single row). Every Z[r][j] is
// summed in the same order whichever group its row falls in.
template <typename T>
void logits(const T* Xb, int64_t ldx, int64_t B, int64_t d, const T* tt, int64_t dp, int64_t k, T* Z) {
    int64_t r = 0;
    for (; r + kRowsPerDot <= B; r += kRowsPerDot) logits_rows<T, kRowsPerDot>(Xb, ldx, r, d, tt, dp, k, Z);
    for (; r + 2 <= B; r += 2) logits_rows<T, 2>(Xb, ldx, r, d, tt, dp, k, Z);
    for (; r < B; ++r) logits_rows<T, 1>(Xb, ldx, r, d, tt, dp, k, Z);
}

// Where one pass of the update (R rows) puts its sum Σ_r C[r][j] · x_r[:]:
//   first:  Γ = sum              (Γ: the batch's gradient buffer; no zeroing pass needed)
//   middle: Γ = Γ + sum
//   last:   Θᵀ = Θᵀ + (Γ + sum)  (the batch's whole update added to Θᵀ in one rounding, as
//                                 NumPy's Θ −= lr·(Xᵀ ∇Z) does)
//   only:   Θᵀ = Θᵀ + sum        (a batch of at most R rows)
// Adding each pass's rank-R piece straight into Θᵀ instead would round a small increment onto
// a large weight B/R times per batch, which in float32 drifts measurably over an epoch.
enum class Pass { first, middle, last, only };

template <typename T, Pass P>
inline Vec<T> pass_result(const T* grad, const T* theta, const Vec<T>& sum) {
    if constexpr (P == Pass::first) return sum;
    if constexpr (P == Pass::middle) return load(grad) + sum;
    if constexpr (P == Pass::last) return load(theta) + (load(grad) + sum);
    return load(theta) + sum;
}
template <typename T, Pass P>
inline T pass_result(const T* grad, const T* theta, T sum) {
    if constexpr (P == Pass::first) return sum;
    if constexpr (P == Pass::middle) return *grad + sum;
    if constexpr (P == Pass::last) return *theta + (*grad + sum);
    return *theta + sum;
}

// One pass for R rows and KB classes, vectors along the features, with the R × KB coefficients
// broadcast once into registers; the result goes to Γ (first, middle) or Θᵀ (last, only). While
// the rows are in registers, the same columns of R rows of the next batch (`ahead`, or null)
// are prefetched into L2, so the next forward pass does not wait for DRAM.
template <typename T, int R, int KB, Pass P>
void update_block(const T* const* rows, const T* const* ahead_rows, const T* C, int64_t ldc, T* theta,
                  T* grad, int64_t dp, int64_t d) {
    constexpr int W = kLanes<T>;
    constexpr bool to_theta = P == Pass::last || P == Pass::only;
    const T* x[R];       // local copies: stores through theta / grad cannot change them, so they
    const T* ahead[R];   // stay in registers instead of being reloaded at every step
    for (int r = 0; r < R; ++r) {
        x[r] = rows[r];
        ahead[r] = ahead_rows ? ahead_rows[r] : nullptr;
    }
    Vec<T> c[R][KB];
    for (int r = 0; r < R; ++r)
        for (int j = 0; j < KB; ++j) c[r][j] = splat(C[r * ldc + j]);
    int64_t p = 0;
    for (; p + W <= d; p += W) {
        if (ahead_rows)
            for (int r = 0; r < R; ++r) __builtin_prefetch(ahead[r] + p, 0, 1);   // into L2, not L1
        Vec<T> xv[R];
        for (int r = 0; r < R; ++r) xv[r] = load(x[r] + p);
        for (int j = 0; j < KB; ++j) {
            Vec<T> sum = c[0][j] * xv[0];
            for (int r = 1; r < R; ++r) sum += c[r][j] * xv[r];
            const int64_t at = j * dp + p;
            store(to_theta ? theta + at : grad + at, pass_result<T, P>(grad + at, theta + at, sum));
        }
    }
    for (; p < d; ++p)
        for (int j = 0; j < KB; ++j) {
            T sum = C[j] * x[0][p];
            for (int r = 1; r < R; ++r) sum += C[r * ldc + j] * x[r][p];
            const int64_t at = j * dp + p;
            (to_theta ? theta : grad)[at] = pass_result<T, P>(grad + at, theta + at, sum);
        }
}

template <typename T, int R, Pass P>
void update_rows(const T* const* x, const T* const* ahead, const T* C, int64_t k, T* theta, T* grad,
                 int64_t dp, int64_t d) {
    for (int64_t j0 = 0; j0 < k; j0 += kClassBlock) {
        const T* Cj = C + j0;
        T* t = theta + j0 * dp;
        T* g = grad + j0 * dp;
        const T* const* pf = j0 == 0 ? ahead : nullptr;   // prefetch once per row group
        switch (k - j0 < kClassBlock ? k - j0 : kClassBlock) {   // the class block, as a constant
            case 1: update_block<T, R, 1, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 2: update_block<T, R, 2, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 3: update_block<T, R, 3, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 4: update_block<T, R, 4, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 5: update_block<T, R, 5, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 6: update_block<T, R, 6, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 7: update_block<T, R, 7, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 8: update_block<T, R, 8, P>(x, pf, Cj, k, t, g, dp, d); break;
            case 9: update_block<T, R, 9, P>(x, pf, Cj, k, t, g, dp, d); break;
            default: update_block<T, R, kClassBlock, P>(x, pf, Cj, k, t, g, dp, d); break;
        }
    }
}

// One pass over rows r … r+R−1 (and the same rows of `ahead`, when all of them exist there).
template <typename T, int R>
void update_pass(Pass pass, const T* Xb, int64_t ldx, int64_t r, const T* C, int64_t k, T* theta, T* grad,
                 int64_t dp, int64_t d, const T* ahead, int64_t ahead_rows) {
    const T* x[R];
    const T* next[R];
    for (int i = 0; i < R; ++i) {
        x[i] = Xb + (r + i) * ldx;
        next[i] = ahead + (r + i) * ldx;
    }
    const T* const* pf = r + R <= ahead_rows ? next : nullptr;
    C += r * k;
    switch (pass) {
        case Pass::first: update_rows<T, R, Pass::first>(x, pf, C, k, theta, grad, dp, d); break;
        case Pass::middle: update_rows<T, R, Pass::middle>(x, pf, C, k, theta, grad, dp, d); break;
        case Pass::last: update_rows<T, R, Pass::last>(x, pf, C, k, theta, grad, dp, d); break;
        case Pass::only: update_rows<T, R, Pass::only>(x, pf, C, k, theta, grad, dp, d); break;
    }
}

// Θᵀ += Cᵀ · Xb in passes of two rows (2 × 10 coefficients + 2 rows + 1 accumulator fit in the
// 32 AVX-512 registers), the last pass for an odd row alone; rows r, r+1 of `ahead` (the next
// batch) are prefetched with rows r, r+1 of this one, up to ahead_rows.
template <typename T>
void update(const T* Xb, int64_t ldx, int64_t B, int64_t d, const T* C, int64_t k, T* theta, T* grad,
            int64_t dp, const T* ahead, int64_t ahead_rows) {
    constexpr int R = kRowsPerUpdate;
    const int64_t passes = (B + R - 1) / R;
    for (int64_t q = 0; q < passes; ++q) {
        const Pass pass = passes == 1 ? Pass::only : q == 0 ? Pass::first : q + 1 == passes ? Pass::last : Pass::middle;
        const int64_t r = q * R;
        if (r + R <= B)
            update_pass<T, R>(pass, Xb, ldx, r, C, k, theta, grad, dp, d, ahead, ahead_rows);
        else
            update_pass<T, 1>(pass, Xb, ldx, r, C, k, theta, grad, dp, d, ahead, ahead_rows);
    }
}

template <typename T>
Kernels<T> kernels() {
    return {&logits<T>, &update<T>};
}

}  // namespace
}  // namespace fastnn::softmax_epoch_detail
