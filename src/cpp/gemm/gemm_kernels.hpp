// Internal interface between the GEMM driver (gemm.cpp, baseline x86-64 code) and the
// per-ISA kernel files (kernels/generic.cpp, avx2.cpp, avx512.cpp, each compiled
// with its own instruction-set flags).  Nothing in here is ISA-specific: only plain
// structs, constants and function declarations, so including it from a file compiled
// with -mavx512f cannot leak AVX-512 code into generic code (the ODR trap): every
// function *defined* in a kernel file lives in an anonymous namespace except the
// kernel-set getters declared below, which the driver calls only after run-time
// detection (cpu_features.hpp).
#pragma once

#include <cstddef>
#include <cstdint>

#include "gemm/gemm.hpp"
#include "runtime/isa_getters.hpp"

namespace fastnn::gemm_detail {

// Register tile: the micro-kernel computes an MR×NR block of C in registers.
// Columns (NR) run along the SIMD lanes, rows (MR) are broadcasts of A.
struct TileShape {
    int MR;  // rows of C per micro-kernel call  (broadcasts of A per k step)
    int NR;  // columns of C per micro-kernel call (a multiple of the vector width)
};
constexpr TileShape kGenericTileF32{4, 8};
constexpr TileShape kGenericTileF64{4, 4};
constexpr TileShape kAvx2TileF32{6, 16};     // 12 ymm accumulators + 2 B vectors + 1 broadcast
constexpr TileShape kAvx2TileF64{6, 8};
constexpr TileShape kAvx512TileF32{14, 32};  // 28 zmm accumulators + 2 B vectors + 1 broadcast
constexpr TileShape kAvx512TileF64{14, 16};
constexpr int kMaxMR = 16;  // bounds for stack tiles in the driver
constexpr int kMaxNR = 32;

// One micro-kernel call: C tile (rows×cols, rows<=MR, cols<=NR) from a depth-k sliver.
//   A sliver: element (r, p) at a[p*a_k_stride + r]   ("k-major": each k step holds the
//             tile's rows contiguously; a packed panel has a_k_stride == MR, an unpacked
//             op(A)=Aᵀ has a_k_stride == lda)
//   B sliver: element (p, c) at b[p*b_k_stride + c]   (packed: b_k_stride == NR; unpacked
//             op(B)=B: b_k_stride == ldb).  Only the first `cols` columns are ever read.
//   Result:   C(r, c) = epi( alpha*acc(r,c) + beta*C(r,c) ), C(r,c) at c[r*ldc + c]
//             (beta == 0: C is not read).  mask(r, c) at mask[r*ldmask + c].
//   If c == nullptr the kernel instead stores alpha*acc (no beta, no epilogue) into
//   tile_out[r*NR + c] for all r < rows, c < NR; the driver finishes the tile.
template <typename T>
struct MicroKernelArgs {
    std::int64_t k;
    const T* a;
    std::int64_t a_k_stride;
    const T* b;
    std::int64_t b_k_stride;
    int rows;
    int cols;
    T alpha;
    T beta;
    T* c;
    std::int64_t ldc;
    Epilogue epi;
    const T* mask;
    std::int64_t ldmask;
    T* tile_out;
    const T* a_next = nullptr;   // narrow kernels that take two row panels (rows > MR): the
                                 // second panel's A, rows MR … rows − 1, with a_k_stride as a
    std::int64_t a_row_stride = 0;   // KernelSet::micro_rows only: A(r, p) at a[r*a_row_stride + p]
                                     // (op(A) = A row-major, in place; a_k_stride unused)
    bool narrow_registers = true;    // a tile of a few columns on narrower registers where the ISA
                                     // has them (AVX-512: 256/128-bit; Tuning::narrow_registers)
};

// Dot-product ("inner-product") kernel for narrow outputs with k-contiguous operands:
//   out[r*ld_out + c] = Σ_{p<k} a[r*lda + p] · bt[c*ldbt + p]     r < rows, c < cols
// Vectors run along k; every (r, c) is reduced in the same fixed order whatever `rows`
// and `cols` are, so splitting rows between threads never changes a result bit.
template <typename T>
struct DotKernelArgs {
    std::int64_t k;
    const T* a;
    std::int64_t lda;
    std::int64_t rows;
    const T* bt;
    std::int64_t ldbt;
    int cols;
    T* out;
    std::int64_t ld_out;
};

template <typename T>
using MicroKernelFn = void (*)(const MicroKernelArgs<T>&);
template <typename T>
using DotKernelFn = void (*)(const DotKernelArgs<T>&);

// Optional vectorised packing of a row-major block of A (op(A) = A) into a k-major
// micro-panel:  dst[p*MR + r] = A[r*lda + p] for r < rows (<= MR), p < kc; rows r with
// rows <= r < MR are zero.  (A transpose of a rows×kc block.)
template <typename T>
using PackAFn = void (*)(const T* A, std::int64_t lda, int rows, std::int64_t kc, T* dst);

// Optional vectorised transpose: dst[j*ldd + i] = src[i*lds + j] for i < rows, j < cols (values
// only moved: the same bits as the driver's scalar loops). For its transposes of operands: op(B) =
// Bᵀ into B~ micro-panels, and B into the dot path's Bt.
template <typename T>
using TransposeFn = void (*)(const T* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, T* dst,
                             std::int64_t ldd);

// Tiles of at most this many columns (e.g. the 4 columns left of n = 100 after three 32-column
// panels) may be computed by a kernel with the SIMD lanes along the tile's rows (AVX-512 float:
// `cols` FMAs per k step, not MR), with the same contract and the same bits as the micro-kernel.
constexpr int kNarrowMaxCols = 8;

// A kernel for tiles of <= kNarrowMaxCols columns (the driver chooses it per tile; the same
// contract and bits as the micro-kernel), and how many row panels one call of it may take.
template <typename T>
struct NarrowKernel {
    MicroKernelFn<T> fn = nullptr;   // nullptr: none (the micro-kernel takes the narrow tiles)
    int group_cols = 0;              // tiles of at most this many columns may come several row
    int group_panels = 1;            // panels at a time, up to this many (args.rows up to that·MR;
                                     // 2: a pair, the second panel's A at args.a_next)
};

template <typename T>
struct KernelSet {
    TileShape tile{0, 0};
    MicroKernelFn<T> micro = nullptr;  // nullptr: not compiled for this target (non-x86)
    DotKernelFn<T> dot = nullptr;      // optional
    PackAFn<T> pack_a_rows = nullptr;  // optional (the driver has a scalar fallback)
    NarrowKernel<T> narrow{};          // optional: with A packed, or op(A) = Aᵀ in place
    MicroKernelFn<T> micro_rows = nullptr;  // optional: micro's contract and bits with A row-major in
                                            // place (args.a_row_stride), so op(A) = A need not be packed
    NarrowKernel<T> narrow_rows{};     // optional: with A read as by micro_rows (none: micro_rows
                                       // takes the narrow tiles too)
    NarrowKernel<T> narrow_strip{};    // optional: with op(A) = Aᵀ in place (a tile's rows of one k
                                       // step consecutive) and C not transposed; preferred to narrow
    TransposeFn<T> transpose = nullptr;   // optional (the driver has scalar loops)
};

// Kernel sets, one getter per ISA file.  The avx2/avx512 getters return an empty set
// (micro == nullptr) when the file was compiled for a non-x86 target.
FASTNN_ISA_GETTERS(KernelSet, kernels);

// Hardware probes (probe.cpp times them).
//  *_fma_chains: runs `iterations` rounds of FMA_CHAINS independent vector FMA chains;
//                returns the number of floating-point operations done (0 = not available).
//  *_read_sum:   sums `bytes` bytes (a multiple of 64, 64-byte aligned) as floats with
//                vector loads; returns the sum (to keep the loads alive).
constexpr int kProbeFmaChains = 12;
double generic_fma_chains(bool dbl, std::int64_t iterations, double* sink);
double avx2_fma_chains(bool dbl, std::int64_t iterations, double* sink);
double avx512_fma_chains(bool dbl, std::int64_t iterations, double* sink);
double generic_read_sum(const float* data, std::size_t bytes);
double avx2_read_sum(const float* data, std::size_t bytes);
double avx512_read_sum(const float* data, std::size_t bytes);

}  // namespace fastnn::gemm_detail

namespace fastnn::gemm_detail {

// Strategy switches of the driver.  The defaults are what gemm() uses; they are exposed
// (not part of the public API) so that tests can force every code path and benchmarks
// can compare strategies.  Not thread-safe to change while gemm() runs.
struct Tuning {
    double parallel_min_flops = 2.0e6;  // smaller products run on the calling thread only
    bool allow_dot_path = true;         // narrow n, op(A) = A: dot-product kernel
    bool allow_swap_path = true;        // narrow n, op(A) = Aᵀ, op(B) = B: compute Cᵀ = Bᵀ·A
    bool allow_narrow_kernel = true;    // tiles of <= kNarrowMaxCols columns: the ISA's narrow kernel, if any
    bool allow_rows_kernel = true;      // op(A) = A read in place by the ISA's micro_rows kernel, if any
    bool narrow_registers = true;       // micro-kernel tiles of a few columns on 256/128-bit registers (AVX-512)
    bool balanced_rows = true;          // rows read in place: row panels of near-equal heights
    int force_pack = 0;                 // 0: heuristics, 1: always pack A and B, -1: pack only when required
    int mc = 0, kc = 0, nc = 0;         // > 0: override the ISA's MC / KC / NC (benchmarks)
    bool single_k_block = true;         // small op(B): one k block (see kSingleKBlockBytes)
    bool a_panel_outer = false;         // force the ir-outer macro-kernel order (A~ micro-panel in L1)
    bool private_a = true;              // few rows, B in place, several threads: each packs all of A~
    int column_split = 0;               // 0: heuristics, 1: whenever B is used in place, -1: never
                                        // (threads split C by columns instead of by tiles' area)
    bool auto_order = true;             // false: always BLIS's jr-outer order (B~ micro-panel in L1)
                                        // unless a_panel_outer; true: ir outer when A and B are both
                                        // packed and a B~ block of >= 4 micro-panels fits in L2 / 2
};
Tuning& tuning();

}  // namespace fastnn::gemm_detail
