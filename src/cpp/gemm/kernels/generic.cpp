// Portable micro-kernel (float and double): plain C++ that the compiler vectorises for
// the baseline target (SSE2 on x86-64, NEON on AArch64).  It is the only kernel on
// non-x86 builds and the FASTNN_ISA=generic fallback everywhere.
#include <cstring>

#include "gemm/gemm_kernels.hpp"

namespace fastnn::gemm_detail {
namespace {

// Micro-kernel: one rows × cols tile of C (rows <= MR, cols <= NR).
//
//   acc(r, c) = Σ_{p=0}^{k-1} A(r, p) · B(p, c)        (p ascending)
//   C(r, c)   = epi( alpha·acc(r, c) + beta·C(r, c) )  (C not read when beta == 0)
//
// Full tiles run the fixed-size loop nest (the inner c loop becomes SIMD code); edge
// tiles run the same arithmetic with run-time bounds, reading only live rows / columns.
template <typename T, int MR, int NR>
void micro_kernel(const MicroKernelArgs<T>& args) {
    T acc[MR][NR];
    for (int r = 0; r < MR; ++r)
        for (int c = 0; c < NR; ++c) acc[r][c] = T(0);

    const T* a = args.a;
    const T* b = args.b;
    if (args.rows == MR && args.cols == NR) {
        for (std::int64_t p = 0; p < args.k; ++p) {
            for (int r = 0; r < MR; ++r)
                for (int c = 0; c < NR; ++c) acc[r][c] += a[r] * b[c];
            a += args.a_k_stride;
            b += args.b_k_stride;
        }
    } else {
        for (std::int64_t p = 0; p < args.k; ++p) {
            for (int r = 0; r < args.rows; ++r)
                for (int c = 0; c < args.cols; ++c) acc[r][c] += a[r] * b[c];
            a += args.a_k_stride;
            b += args.b_k_stride;
        }
    }

    if (args.c == nullptr) {  // the driver finishes this tile (transposed C)
        for (int r = 0; r < MR; ++r)
            for (int c = 0; c < NR; ++c) args.tile_out[r * NR + c] = args.alpha * acc[r][c];
        return;
    }
    const bool read_c = args.beta != T(0);
    for (int r = 0; r < args.rows; ++r) {
        T* c_row = args.c + r * args.ldc;
        const T* mask_row = args.epi == Epilogue::relu_mask ? args.mask + r * args.ldmask : nullptr;
        for (int c = 0; c < args.cols; ++c) {
            T x = args.alpha * acc[r][c];
            if (read_c) x += args.beta * c_row[c];
            if (args.epi == Epilogue::relu)
                x = x < T(0) ? T(0) : x;
            else if (args.epi == Epilogue::relu_mask)
                x = mask_row[c] > T(0) ? x : T(0);
            c_row[c] = x;
        }
    }
}

// Probe: kProbeFmaChains chains of 4 lanes each, x <- x·s + t (multiply + add: baseline
// x86-64 has no FMA instruction).
template <typename T>
double fma_chains(std::int64_t iterations, double* sink) {
    constexpr int kLanes = 4;
    T x[kProbeFmaChains][kLanes];
    for (int i = 0; i < kProbeFmaChains; ++i)
        for (int l = 0; l < kLanes; ++l) x[i][l] = T(1) + T(i * kLanes + l) * T(1e-4);
    const T s = T(0.999999), t = T(1e-7);
    for (std::int64_t it = 0; it < iterations; ++it)
        for (int i = 0; i < kProbeFmaChains; ++i)
            for (int l = 0; l < kLanes; ++l) x[i][l] = x[i][l] * s + t;
    double total = 0;
    for (int i = 0; i < kProbeFmaChains; ++i)
        for (int l = 0; l < kLanes; ++l) total += static_cast<double>(x[i][l]);
    *sink += total;
    return 2.0 * kLanes * kProbeFmaChains * static_cast<double>(iterations);
}

}  // namespace

KernelSet<float> generic_kernels_f32() {
    return {kGenericTileF32, &micro_kernel<float, kGenericTileF32.MR, kGenericTileF32.NR>, nullptr, nullptr};
}
KernelSet<double> generic_kernels_f64() {
    return {kGenericTileF64, &micro_kernel<double, kGenericTileF64.MR, kGenericTileF64.NR>, nullptr, nullptr};
}

double generic_fma_chains(bool dbl, std::int64_t iterations, double* sink) {
    return dbl ? fma_chains<double>(iterations, sink) : fma_chains<float>(iterations, sink);
}

// Streaming read with 16 independent float lanes (vectorisable without reassociation).
double generic_read_sum(const float* data, std::size_t bytes) {
    const std::size_t n = bytes / sizeof(float);
    float lanes[16] = {};
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) lanes[l] += data[i + l];
    double total = 0;
    for (float v : lanes) total += v;
    return total;
}

}  // namespace fastnn::gemm_detail
