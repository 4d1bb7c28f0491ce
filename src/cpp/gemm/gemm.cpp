// GEMM driver: C = epi(alpha·op(A)·op(B) + beta·C), row-major, float and double.
//
// Structure (after BLIS, "Anatomy of High-Performance Many-Threaded Matrix Multiplication",
// Smith et al. 2014, and the BLISlab tutorial), for row-major storage with the SIMD lanes
// running along the columns of C:
//
//   for jc in [0, n) step NC                      B column block         (L3)
//     for pc in [0, k) step KC                    depth block
//       pack op(B)[pc:pc+KC, jc:jc+NC] -> B~     (NR-wide micro-panels, KC×NR each)
//       for ic in [0, m) step MC                  A row block            (L2)
//         pack op(A)[ic:ic+MC, pc:pc+KC] -> A~   (MR-tall micro-panels, k-major)
//         for jr in [0, NC) step NR               B~ micro-panel         (L1)
//           for ir in [0, MC) step MR             A~ micro-panel         (streamed from L2)
//             micro-kernel: C[ir:ir+MR, jr:jr+NR] (+)= A~_ir · B~_jr  (registers)
//
// When both operands are packed and a B~ block fits in half of L2, the two innermost loops
// swap (ir outer: one A~ micro-panel in L1, the B~ block streamed from L2, NC capped to fit).
//
// The micro-kernel reads its A sliver as "k-major" (the MR values of one k step are
// contiguous) and its B sliver as "row-major" (the NR values of one k step are
// contiguous), each with an arbitrary stride between k steps.  That lets two common cases
// skip packing altogether: op(A) = Aᵀ is already k-major (stride lda) and op(B) = B is
// already row-major (stride ldb).  Where the ISA has a micro_rows kernel (AVX-512 and AVX2 float), a
// small row-major op(A) = A is not packed either: that kernel reads each of a tile's rows as a
// stream (the epoch's X_b·W_1: one pass over X_b less per product, per thread).  Edge tiles (fewer than MR rows / NR columns) use
// kernels specialised for the live rows and masked loads / stores for the live columns,
// so nothing is ever read or written outside the logical matrices and no work is wasted
// on padding rows.  Tiles of at most kNarrowMaxCols columns go to the ISA's narrow kernel
// where it has one (AVX-512 float: lanes along the rows, `cols` FMAs per k step instead of
// MR, the same bits; n = 100 = 3·32 + 4: the dense h = 100 MNIST epoch took 4-5% less). Where the
// micro-kernel takes such a tile (A read in place: micro_rows has no narrow kernel on AVX-512), it
// runs it on 256- or 128-bit registers (kernels/avx512.cpp, micro_kernel_rows; same bits).
// On AVX2 (float; lanes along the 6 rows of a panel) the narrow kernel takes two row panels
// at a time, where the driver pairs them: the masked one-vector tile's 6 FMA chains leave the
// FMA units half idle on a 4-cycle latency (n = 100 = 6·16 + 4).
//
// Two extra paths for the narrow products of a neural net's output layer (n = 10):
//   * dot path  (op(A) = A, small n): C(i, j) = A(i, :)·op(B)(:, j) with vectors along k,
//     which reads A once, contiguously, with every SIMD lane busy.
//   * swap path (op(A) = Aᵀ, op(B) = B, small n): compute Cᵀ = Bᵀ·A instead, whose wide
//     side (m) runs along the SIMD lanes; the tiles are written back transposed.
//
// Threading (OpenMP, one parallel region per call, only for products of at least
// Tuning::parallel_min_flops = 2 MFLOP): the team splits the packing of each block by
// micro-panels and the macro-kernel's tiles into contiguous runs of equal area; barriers
// separate packing from use (none are needed when neither operand is packed, e.g. the
// epoch loop's W1 += Xbᵀ·G1, nor when each thread packs all of a small A~ for itself, e.g.
// the epoch loop's Xb·W1).  k is never split.  The dot path splits rows.
//
// Determinism: every C element is produced by exactly one micro-kernel call per KC block,
// with k blocks in ascending order; threads only decide *which* thread runs a tile, never
// how it is summed, so 1 and N threads give bit-identical results.  (Results do depend on
// the active ISA, whose kernels differ in FMA use and lane order.)
//
// Buffers: packing buffers are thread_local, 64-byte aligned and only ever grow, so the
// epoch loop's thousands of calls per epoch allocate nothing in steady state.
#include "gemm/gemm.hpp"
#include "runtime/prefetch.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/cpu_features.hpp"
#include "gemm/gemm_kernels.hpp"
#include "gemm/probe.hpp"
#include "runtime/threads.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

namespace gemm_detail {
Tuning& tuning() {
    static Tuning t;
    return t;
}
}  // namespace gemm_detail

namespace {

using gemm_detail::DotKernelArgs;
using gemm_detail::KernelSet;
using gemm_detail::MicroKernelArgs;
using gemm_detail::TileShape;
using gemm_detail::tuning;

// ---------------------------------------------------------------------------------------
// Blocking constants.  MR×NR is the register tile of the ISA's micro-kernel; the cache
// blocks are chosen so that
//   KC·NR·sizeof(T)  (one B~ micro-panel)  fits comfortably in L1 (32-48 KiB),
//   MC·KC·sizeof(T)  (the A~ block)        fits in half of L2 (>= 512 KiB on every target),
//   KC·NC·sizeof(T)  (the B~ block)        fits in L3.
// Actual block sizes are balanced per call (e.g. k = 1037 runs as 5 blocks of ~208, not
// 4·256 + 13) and rounded to multiples of MR / NR; a small op(B) (<= kSingleKBlockBytes,
// e.g. the 784×100 W_1 of an h = 100 net) runs as a single k block.
struct Blocking {
    int MR, NR, MC, KC, NC;
};

constexpr Blocking kGenericF32{gemm_detail::kGenericTileF32.MR, gemm_detail::kGenericTileF32.NR,
                               /*MC=*/128, /*KC=*/256, /*NC=*/2048};
constexpr Blocking kGenericF64{gemm_detail::kGenericTileF64.MR, gemm_detail::kGenericTileF64.NR,
                               /*MC=*/128, /*KC=*/128, /*NC=*/2048};
constexpr Blocking kAvx2F32{gemm_detail::kAvx2TileF32.MR, gemm_detail::kAvx2TileF32.NR,
                            /*MC=*/168, /*KC=*/256, /*NC=*/4080};
constexpr Blocking kAvx2F64{gemm_detail::kAvx2TileF64.MR, gemm_detail::kAvx2TileF64.NR,
                            /*MC=*/96, /*KC=*/256, /*NC=*/4080};
constexpr Blocking kAvx512F32{gemm_detail::kAvx512TileF32.MR, gemm_detail::kAvx512TileF32.NR,
                              /*MC=*/336, /*KC=*/256, /*NC=*/4096};
constexpr Blocking kAvx512F64{gemm_detail::kAvx512TileF64.MR, gemm_detail::kAvx512TileF64.NR,
                              /*MC=*/168, /*KC=*/256, /*NC=*/4096};

static_assert(kAvx512F32.MR <= gemm_detail::kMaxMR && kAvx512F32.NR <= gemm_detail::kMaxNR, "");
static_assert(kAvx512F64.MR <= gemm_detail::kMaxMR && kAvx512F64.NR <= gemm_detail::kMaxNR, "");

// A product whose op(B) has at most this many bytes runs as a single k block.
constexpr std::int64_t kSingleKBlockBytes = 512 * 1024;

// With column_split, threads own C's columns in runs of whole cache lines (bytes).
constexpr std::int64_t kColumnSplitUnit = 64;

// Narrow-output paths apply when n is at most this many columns.
constexpr std::int64_t kDotMaxN = 16;
constexpr std::int64_t kDotMinK = 16;

// A kernel set together with its blocking, for one ISA and one element type.
template <typename T>
struct Engine {
    KernelSet<T> kernels;
    Blocking blocking;
};

// The engine of `isa` for T; the generic one when that ISA's file was compiled for another target.
template <typename T>
const Engine<T>& engine_for(Isa isa) {
    using namespace gemm_detail;
    static const std::array<Engine<T>, 3> engines = [] {
        if constexpr (std::is_same_v<T, float>)
            return std::array<Engine<float>, 3>{{{generic_kernels_f32(), kGenericF32},
                                                 {avx2_kernels_f32(), kAvx2F32}, {avx512_kernels_f32(), kAvx512F32}}};
        else
            return std::array<Engine<double>, 3>{{{generic_kernels_f64(), kGenericF64},
                                                  {avx2_kernels_f64(), kAvx2F64}, {avx512_kernels_f64(), kAvx512F64}}};
    }();
    const Engine<T>& e = engines[static_cast<std::size_t>(isa)];
    return e.kernels.micro != nullptr ? e : engines[0];
}

// ---------------------------------------------------------------------------------------
// Packing buffers: one set per calling thread, 64-byte aligned, grown on demand and never
// shrunk, so steady-state calls (the epoch loop) allocate nothing.
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    ~AlignedBuffer() { std::free(data_); }

    template <typename T>
    T* get(std::size_t count) {
        const std::size_t bytes = ((count * sizeof(T) + 63) / 64) * 64;
        if (bytes > capacity_) {
            std::free(data_);
            data_ = std::aligned_alloc(64, bytes);
            if (data_ == nullptr) {
                capacity_ = 0;
                throw std::bad_alloc();
            }
            capacity_ = bytes;
        }
        return static_cast<T*>(data_);
    }

private:
    void* data_ = nullptr;
    std::size_t capacity_ = 0;
};

struct PackBuffers {
    AlignedBuffer a, b;
};
PackBuffers& pack_buffers() {
    thread_local PackBuffers buffers;
    return buffers;
}

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }
std::int64_t round_up(std::int64_t a, std::int64_t b) { return ceil_div(a, b) * b; }

// Split `total` into ceil(total / max_block) near-equal blocks, each a multiple of `unit`
// (except the last).
std::int64_t balanced_block(std::int64_t total, std::int64_t max_block, std::int64_t unit) {
    if (total <= max_block) return total;
    const std::int64_t blocks = ceil_div(total, max_block);
    return std::min(max_block, round_up(ceil_div(total, blocks), unit));
}

// [begin, end) of `count` work items for thread `tid` of `nthreads` (contiguous chunks).
struct Range {
    std::int64_t begin, end;
};
Range thread_share(std::int64_t count, int tid, int nthreads) {
    return {count * tid / nthreads, count * (tid + 1) / nthreads};
}

// Tiles of one macro-kernel call, in jr-major order (tile t = jr*n_ir + ir; for the ir-major
// order swap the roles: n_ir, n_jr, last_height, last_width, MR, NR), split into
// contiguous runs of near-equal *area* (edge tiles are narrower / shorter, so equal tile
// counts would leave the thread holding the full tiles behind).  Which thread computes a
// tile never changes how it is computed, so the split cannot change any result.
std::int64_t tile_split_point(std::int64_t n_jr, std::int64_t n_ir, std::int64_t last_width,
                              std::int64_t last_height, int NR, int MR, int part, int parts) {
    auto width = [&](std::int64_t jr) { return jr + 1 == n_jr ? last_width : NR; };
    auto height = [&](std::int64_t ir) { return ir + 1 == n_ir ? last_height : MR; };
    const std::int64_t total_height = (n_ir - 1) * MR + last_height;
    const std::int64_t total = ((n_jr - 1) * NR + last_width) * total_height;
    const std::int64_t target = total * part / parts;  // area before this part's first tile
    std::int64_t jr = 0, area = 0;
    while (jr < n_jr && area + width(jr) * total_height <= target) area += width(jr++) * total_height;
    if (jr == n_jr) return n_jr * n_ir;
    std::int64_t ir = 0;
    while (ir < n_ir && area + width(jr) * height(ir) <= target) area += width(jr) * height(ir++);
    return jr * n_ir + ir;
}

Range tile_share(std::int64_t n_jr, std::int64_t n_ir, std::int64_t last_width, std::int64_t last_height,
                 int NR, int MR, int tid, int nthreads) {
    return {tile_split_point(n_jr, n_ir, last_width, last_height, NR, MR, tid, nthreads),
            tile_split_point(n_jr, n_ir, last_width, last_height, NR, MR, tid + 1, nthreads)};
}

// Barrier of the team running run_blocked.  Only issued when that team has several
// threads, i.e. inside our own parallel region: with one thread there is nothing to wait
// for, and an orphaned barrier would bind to a *caller's* enclosing parallel region (when
// gemm is called from inside one) and deadlock it.
void team_barrier(int nthreads) {
#if defined(_OPENMP)
    if (nthreads > 1) {
#pragma omp barrier
    }
#else
    (void)nthreads;
#endif
}

// ---------------------------------------------------------------------------------------
// The problem as the blocked driver sees it.  When c_transposed is set, logical element
// C(i, j) (and mask(i, j)) lives at C[j*ldc + i] (mask[j*ldmask + i]): the swap path.
template <typename T>
struct Problem {
    Op opA, opB;
    std::int64_t m, n, k;
    T alpha;
    const T* A;
    std::int64_t lda;
    const T* B;
    std::int64_t ldb;
    T beta;
    T* C;
    std::int64_t ldc;
    Epilogue epi;
    const T* mask;
    std::int64_t ldmask;
    bool c_transposed;
    PrefetchRange ahead;
    std::int64_t blocking_n;   // > 0: the n that decides the k blocking (see gemm.hpp)
};

// x = epi(x) for one element; the scalar twin of the kernels' vector epilogue.
template <typename T>
T apply_epilogue(T x, Epilogue epi, const T* mask_element) {
    if (epi == Epilogue::relu) return x < T(0) ? T(0) : x;
    if (epi == Epilogue::relu_mask) return *mask_element > T(0) ? x : T(0);
    return x;
}

// ---------------------------------------------------------------------------------------
// N contiguous values of each of kc rows of a matrix (row stride ld) into a packed panel,
// dst[p*N + i] = src[p*ld + i]: the packing of op(A) = Aᵀ (N = MR) and of op(B) = B (N = NR)
// for whole tiles. A copy of known length, which the compiler makes a few vector moves, where
// std::memcpy of a run-time length was a library call per k step: X_bᵀ G_1 of the dense
// h = 400 MNIST epoch packs 56 panels × 100 k steps of 14 values a batch, and memcpy had 1.5-1.9%
// of the epoch's perf samples, the packing 1.3% now (Zen 4). That product alone: 601-607 ->
// 594-596 µs; the epoch 1 thread 731 -> 727 ms, 2 threads 415 -> 398 ms (five alternating pairs
// of processes, medians of their best epochs). Software prefetch of the rows 8 k steps ahead
// gained nothing.
template <typename T, int N>
void copy_k_steps(const T* src, std::int64_t ld, std::int64_t kc, T* dst) {
    for (std::int64_t p = 0; p < kc; ++p) {
        const T* s = src + p * ld;
        T* d = dst + p * N;
#pragma GCC unroll 32
        for (int i = 0; i < N; ++i) d[i] = s[i];
    }
}

// copy_k_steps for a run-time width that is a tile's MR or NR (generic 4×8 / 4×4, AVX2 6×16 /
// 6×8, AVX-512 14×32 / 14×16); false, copying nothing, for any other width.
template <typename T>
bool copy_whole_tile_k_steps(const T* src, std::int64_t ld, std::int64_t kc, int width, T* dst) {
    switch (width) {
        case 4: copy_k_steps<T, 4>(src, ld, kc, dst); return true;
        case 6: copy_k_steps<T, 6>(src, ld, kc, dst); return true;
        case 8: copy_k_steps<T, 8>(src, ld, kc, dst); return true;
        case 14: copy_k_steps<T, 14>(src, ld, kc, dst); return true;
        case 16: copy_k_steps<T, 16>(src, ld, kc, dst); return true;
        case 32: copy_k_steps<T, 32>(src, ld, kc, dst); return true;
        default: return false;
    }
}

// Packing.  A~ micro-panel (MR rows × kc): element (r, p) at dst[p*MR + r].
// Rows beyond `rows` are zero-filled so the panel is fully defined (the edge kernels never
// read them anyway).
template <typename T>
void pack_a_panel(const Problem<T>& P, std::int64_t i0, int rows, std::int64_t p0, std::int64_t kc,
                  int MR, T* dst) {
    if (P.opA == Op::N) {
        // A is m×k row-major: row i is contiguous along p -> transpose a rows×kc block.
        const T* src = P.A + i0 * P.lda + p0;
        for (std::int64_t p = 0; p < kc; ++p) {
            T* d = dst + p * MR;
            for (int r = 0; r < rows; ++r) d[r] = src[r * P.lda + p];
            for (int r = rows; r < MR; ++r) d[r] = T(0);
        }
    } else {
        // A is stored k×m: the rows of one k step are already contiguous -> copy.
        const T* src = P.A + p0 * P.lda + i0;
        if (rows == MR && copy_whole_tile_k_steps(src, P.lda, kc, MR, dst)) return;
        for (std::int64_t p = 0; p < kc; ++p) {
            const T* s = src + p * P.lda;
            T* d = dst + p * MR;
            std::memcpy(d, s, sizeof(T) * rows);
            for (int r = rows; r < MR; ++r) d[r] = T(0);
        }
    }
}

// B~ micro-panel (kc × NR): element (p, c) at dst[p*NR + c]; columns beyond `cols` zeroed.
template <typename T>
void pack_b_panel(const Problem<T>& P, std::int64_t j0, int cols, std::int64_t p0, std::int64_t kc,
                  int NR, T* dst, gemm_detail::TransposeFn<T> transpose) {
    if (P.opB == Op::N) {
        // B is k×n row-major: copy cols contiguous values per k step.
        const T* src = P.B + p0 * P.ldb + j0;
        if (cols == NR && copy_whole_tile_k_steps(src, P.ldb, kc, NR, dst)) return;
        for (std::int64_t p = 0; p < kc; ++p) {
            const T* s = src + p * P.ldb;
            T* d = dst + p * NR;
            std::memcpy(d, s, sizeof(T) * cols);
            for (int c = cols; c < NR; ++c) d[c] = T(0);
        }
    } else {
        // B is stored n×k: column c of op(B) is row j0+c of B, contiguous along p.
        if (transpose != nullptr) {   // (e.g. the epoch's W_2ᵀ of G_1 = G_2·W_2ᵀ: 10 × h)
            transpose(P.B + j0 * P.ldb + p0, P.ldb, cols, kc, dst, NR);
        } else {
            for (int c = 0; c < cols; ++c) {
                const T* s = P.B + (j0 + c) * P.ldb + p0;
                for (std::int64_t p = 0; p < kc; ++p) dst[p * NR + c] = s[p];
            }
        }
        if (cols < NR)
            for (std::int64_t p = 0; p < kc; ++p) std::fill(dst + p * NR + cols, dst + (p + 1) * NR, T(0));
    }
}

// ---------------------------------------------------------------------------------------
// Finishing a transposed tile (swap path): tile holds alpha·acc (rows × cols, ld NR) for
// logical C(i0+r, j0+c), which is stored at C[(j0+c)*ldc + i0+r]. (Through the ISA's transpose,
// masked loads and stores of the epoch's 10-value rows of W_2, the swap path's W_2 −= lr·H_1ᵀG_2
// took 1.1-1.2x as long on AMD Zen 4: the scalar loop stays.)
template <typename T>
void finish_transposed_tile(const Problem<T>& P, const T* tile, int NR, std::int64_t i0,
                            std::int64_t j0, int rows, int cols, T beta, Epilogue epi) {
    for (int c = 0; c < cols; ++c) {
        T* dst = P.C + (j0 + c) * P.ldc + i0;
        const T* mask_row = epi == Epilogue::relu_mask ? P.mask + (j0 + c) * P.ldmask + i0 : nullptr;
        for (int r = 0; r < rows; ++r) {
            T x = tile[r * NR + c];
            if (beta != T(0)) x += beta * dst[r];
            dst[r] = apply_epilogue(x, epi, mask_row ? mask_row + r : nullptr);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The blocked algorithm, run by every thread of the team (or by the caller alone).
// Threads split the packing of each block by micro-panels and the macro-kernel by tiles;
// barriers separate packing from use and use from re-packing.
template <typename T>
struct BlockedPlan {
    const Problem<T>* P;
    const KernelSet<T>* K;
    Blocking bl;
    std::int64_t mc_max, kc_max, nc_max;  // balanced block sizes for this call
    bool pack_a, pack_b;
    bool a_rows;   // op(A) = A read in place by the kernel set's micro_rows (no A~ at all)
    bool a_outer;  // macro-kernel order: ir outer (A~ micro-panel in L1) instead of jr outer
    bool a_private;           // every thread packs all of A~ into its own slice (no barriers)
    std::int64_t a_slice;     // elements of one thread's slice of a_buf (a_private)
    T* a_buf;  // mc_max × kc_max (panels of MR)
    T* b_buf;  // kc_max × nc_max (panels of NR)
    gemm_detail::NarrowKernel<T> narrow;  // tiles of <= kNarrowMaxCols columns (no fn: micro)
    bool narrow_registers;                // Tuning::narrow_registers, for the micro-kernel's args
    bool column_split;        // threads split C by columns (see blocked_gemm), not by tiles' area
    bool balanced_rows;       // a block's row panels of near-equal heights (a_rows only; see blocked_gemm)
};

// This thread's share of a PrefetchRange, issued a few cache lines per micro-kernel call
// (into L2: prefetcht1), so that the product's own loads never queue behind it.
class PrefetchStream {
public:
    PrefetchStream(PrefetchRange range, int tid, int nthreads, std::int64_t calls) {
        if (range.data == nullptr || range.bytes <= 0) return;
        const auto first = reinterpret_cast<std::uintptr_t>(range.data) / 64 * 64;
        const std::int64_t lines =
            static_cast<std::int64_t>((reinterpret_cast<std::uintptr_t>(range.data) + range.bytes - first + 63) / 64);
        const Range mine = thread_share(lines, tid, nthreads);
        next_ = first + static_cast<std::uintptr_t>(mine.begin) * 64;
        end_ = first + static_cast<std::uintptr_t>(mine.end) * 64;
        per_call_ = ceil_div(mine.end - mine.begin, std::max<std::int64_t>(1, calls));
    }
    void step() {
        for (std::int64_t i = 0; i < per_call_ && next_ < end_; ++i, next_ += 64)
            prefetch_line(reinterpret_cast<const void*>(next_), PrefetchHint::l2);
    }
    void finish() {   // whatever the estimate of calls left over
        for (; next_ < end_; next_ += 64) prefetch_line(reinterpret_cast<const void*>(next_), PrefetchHint::l2);
    }
private:
    std::uintptr_t next_ = 0, end_ = 0;
    std::int64_t per_call_ = 0;
};

template <typename T>
void run_blocked(const BlockedPlan<T>& plan, int tid, int nthreads) noexcept {
    const Problem<T>& P = *plan.P;
    const int MR = plan.bl.MR, NR = plan.bl.NR;
    const auto micro = plan.a_rows ? plan.K->micro_rows : plan.K->micro;
    const auto narrow = plan.narrow.fn != nullptr ? plan.narrow.fn : micro;
    // About this many micro-kernel calls fall to this thread.
    const std::int64_t blocks = ceil_div(P.n, plan.nc_max) * ceil_div(P.k, plan.kc_max) * ceil_div(P.m, plan.mc_max);
    const std::int64_t block_tiles = ceil_div(std::min(P.n, plan.nc_max), NR) * ceil_div(std::min(P.m, plan.mc_max), MR);
    PrefetchStream ahead(P.ahead, tid, nthreads, blocks * ceil_div(block_tiles, nthreads));
    T* const a_buf = plan.a_private ? plan.a_buf + tid * plan.a_slice : plan.a_buf;

    for (std::int64_t jc = 0; jc < P.n; jc += plan.nc_max) {
        const std::int64_t nc = std::min(plan.nc_max, P.n - jc);
        const std::int64_t n_jr = ceil_div(nc, NR);
        for (std::int64_t pc = 0; pc < P.k; pc += plan.kc_max) {
            const std::int64_t kc = std::min(plan.kc_max, P.k - pc);
            const bool first_k = pc == 0;
            const bool last_k = pc + kc == P.k;

            if (plan.pack_b) {
                const Range mine = thread_share(n_jr, tid, nthreads);
                for (std::int64_t jr = mine.begin; jr < mine.end; ++jr) {
                    const std::int64_t j = jc + jr * NR;
                    pack_b_panel(P, j, static_cast<int>(std::min<std::int64_t>(NR, P.n - j)), pc, kc,
                                 NR, plan.b_buf + jr * NR * kc, plan.K->transpose);
                }
                team_barrier(nthreads);
            }

            for (std::int64_t ic = 0; ic < P.m; ic += plan.mc_max) {
                const std::int64_t mc = std::min(plan.mc_max, P.m - ic);
                const std::int64_t n_ir = ceil_div(mc, MR);

                if (plan.pack_a) {
                    // Shared A~: each thread packs a share of the panels, then all wait. Private
                    // A~ (plan.a_private): each thread packs every panel into its own slice.
                    const Range mine = plan.a_private ? Range{0, n_ir} : thread_share(n_ir, tid, nthreads);
                    for (std::int64_t ir = mine.begin; ir < mine.end; ++ir) {
                        const std::int64_t i = ic + ir * MR;
                        const int rows = static_cast<int>(std::min<std::int64_t>(MR, P.m - i));
                        T* dst = a_buf + ir * MR * kc;
                        if (P.opA == Op::N && plan.K->pack_a_rows != nullptr)
                            plan.K->pack_a_rows(P.A + i * P.lda + pc, P.lda, rows, kc, dst);
                        else
                            pack_a_panel(P, i, rows, pc, kc, MR, dst);
                    }
                    if (!plan.a_private) team_barrier(nthreads);
                }

                // Macro-kernel: tiles in jr-major order (a B~ micro-panel stays in L1 while
                // the A~ micro-panels stream past it) or, with plan.a_outer, in ir-major
                // order; each thread takes a contiguous run -- or, with plan.column_split, a
                // contiguous range of C's columns (whole cache lines of each row), all rows.
                // Row panel ir's first row: MR rows apart, the last panel the rest; or, with
                // plan.balanced_rows, the block's mc rows in n_ir panels of near-equal heights.
                auto panel_row = [&](std::int64_t ir) {
                    return plan.balanced_rows ? ic + mc * ir / n_ir : ic + ir * MR;
                };
                MicroKernelArgs<T> args{};
                args.narrow_registers = plan.narrow_registers;
                args.alpha = P.alpha;
                args.beta = first_k ? P.beta : T(1);
                args.epi = last_k ? P.epi : Epilogue::none;
                args.k = kc;
                alignas(64) T tile[gemm_detail::kMaxMR * gemm_detail::kMaxNR];
                // Columns j + offset … j + offset + cols − 1 of the tile of rows ir·MR … of this
                // block whose columns start at j (jr: its packed B~ micro-panel).
                // With `panels` > 1 (a narrow part), rows ir·MR … of that many row panels (a_next: the
                // second panel's A, for the kernels that take a pair).
                auto run_part = [&](std::int64_t ir, std::int64_t jr, std::int64_t j, int offset, int cols,
                                    int panels = 1) {
                    const std::int64_t i = panel_row(ir);
                    const bool pair = panels > 1;
                    args.rows = static_cast<int>(std::min(panel_row(ir + panels), ic + mc) - i);
                    args.cols = cols;
                    const auto kernel = cols <= gemm_detail::kNarrowMaxCols ? narrow : micro;
                    if (plan.pack_a) {
                        args.a = a_buf + ir * MR * kc;
                        args.a_k_stride = MR;
                    } else if (plan.a_rows) {  // op(A) = A in place: A(i, p) at A[i*lda + p]
                        args.a = P.A + i * P.lda + pc;
                        args.a_row_stride = P.lda;
                    } else {  // op(A) = Aᵀ: A(i, p) at A[p*lda + i], already k-major
                        args.a = P.A + pc * P.lda + i;
                        args.a_k_stride = P.lda;
                    }
                    args.a_next = !pair ? nullptr
                                  : plan.pack_a ? args.a + MR * kc
                                  : plan.a_rows ? args.a + (panel_row(ir + 1) - i) * P.lda
                                                : args.a + MR;
                    j += offset;
                    if (plan.pack_b) {
                        args.b = plan.b_buf + jr * NR * kc + offset;
                        args.b_k_stride = NR;
                    } else {  // op(B) = B: B(p, j) at B[p*ldb + j], already row-major
                        args.b = P.B + pc * P.ldb + j;
                        args.b_k_stride = P.ldb;
                    }
                    ahead.step();
                    if (!P.c_transposed) {
                        args.c = P.C + i * P.ldc + j;
                        args.ldc = P.ldc;
                        if (args.epi == Epilogue::relu_mask) {
                            args.mask = P.mask + i * P.ldmask + j;
                            args.ldmask = P.ldmask;
                        }
                        kernel(args);
                    } else {
                        args.c = nullptr;
                        args.tile_out = tile;
                        kernel(args);
                        finish_transposed_tile(P, tile, NR, i, j, args.rows, args.cols, args.beta,
                                               args.epi);
                    }
                };
                // A tile of cols <= NR columns. One of a vector and a few columns more is computed as
                // a one-vector tile and a narrow one (e.g. 20 = 16 + 4 on AVX-512: 14 + 4 FMAs per k
                // step, not a masked two-vector tile's 28): the same chains, the same bits. With
                // `panels` > 1, the tiles of row panels ir … ir + panels − 1, their narrow parts in one
                // call (narrow_width(cols) <= plan.narrow.group_cols: see group_size).
                const int vector = NR / 2;
                auto narrow_width = [&](int cols) {   // the columns of a tile that go to the narrow kernel
                    if (plan.narrow.fn == nullptr) return 0;
                    if (cols <= gemm_detail::kNarrowMaxCols) return cols;
                    return cols < NR && cols > vector && cols - vector <= gemm_detail::kNarrowMaxCols ? cols - vector : 0;
                };
                auto run_tile = [&](std::int64_t ir, std::int64_t jr, std::int64_t j, int cols, int panels = 1) {
                    const int narrow_cols = narrow_width(cols);
                    if (narrow_cols == 0) {
                        run_part(ir, jr, j, 0, cols);
                        return;
                    }
                    if (narrow_cols < cols)
                        for (int q = 0; q < panels; ++q) run_part(ir + q, jr, j, 0, vector);
                    run_part(ir, jr, j, cols - narrow_cols, narrow_cols, panels);
                };
                // How many row panels from ir (all of which this thread runs next: at most `left`)
                // take their tiles of `cols` columns in one call: narrow kernels that take several
                // panels (AVX2) run that many times the independent FMA chains, where one panel's are
                // too few to hide the latency.
                auto group_size = [&](std::int64_t ir, std::int64_t n_ir, int cols, std::int64_t left) {
                    const int w = narrow_width(cols);
                    if (w == 0 || w > plan.narrow.group_cols) return 1;
                    return static_cast<int>(std::max<std::int64_t>(
                        1, std::min<std::int64_t>({plan.narrow.group_panels, n_ir - ir, left})));
                };
                if (plan.column_split) {   // B in place: a tile may start at any column
                    const std::int64_t unit = kColumnSplitUnit / static_cast<std::int64_t>(sizeof(T));
                    const Range share = thread_share(ceil_div(nc, unit), tid, nthreads);
                    const std::int64_t j_end = std::min(jc + nc, jc + share.end * unit);
                    for (std::int64_t j = jc + share.begin * unit; j < j_end; j += NR) {
                        const int cols = static_cast<int>(std::min<std::int64_t>(NR, j_end - j));
                        for (std::int64_t ir = 0; ir < n_ir; ++ir) {
                            const int panels = group_size(ir, n_ir, cols, n_ir - ir);
                            run_tile(ir, 0, j, cols, panels);
                            ir += panels - 1;
                        }
                    }
                } else {
                    const bool a_outer = plan.a_outer;
                    const std::int64_t last_width = nc - (n_jr - 1) * NR, last_height = mc - (n_ir - 1) * MR;
                    const Range mine =
                        a_outer ? tile_share(n_ir, n_jr, last_height, last_width, MR, NR, tid, nthreads)
                                : tile_share(n_jr, n_ir, last_width, last_height, NR, MR, tid, nthreads);
                    for (std::int64_t t = mine.begin; t < mine.end; ++t) {
                        const std::int64_t jr = a_outer ? t % n_jr : t / n_ir;
                        const std::int64_t ir = a_outer ? t / n_jr : t % n_ir;
                        const std::int64_t j = jc + jr * NR;
                        const int cols = static_cast<int>(std::min<std::int64_t>(NR, P.n - j));
                        // (jr-major order: the next tile is panel ir + 1's, if this thread's)
                        const int panels = a_outer ? 1 : group_size(ir, n_ir, cols, mine.end - t);
                        run_tile(ir, jr, j, cols, panels);
                        t += panels - 1;
                    }
                }
                if ((plan.pack_a && !plan.a_private) || plan.pack_b)
                    team_barrier(nthreads);  // before the shared buffers are refilled
            }
        }
    }
    ahead.finish();
}

// The packing policy's two tests of an operand (see blocked_gemm): small enough to use unpacked
// (the epoch loop's shapes), and a row stride that is a multiple of 1 KiB (strides like 4 KiB map
// every k step to the same few L1 sets).
template <typename T>
bool small_operand(std::int64_t rows, std::int64_t cols) {
    return rows * cols * static_cast<std::int64_t>(sizeof(T)) <= (std::int64_t(2) << 20);
}
template <typename T>
bool conflict_stride(std::int64_t ld) {
    return ld * static_cast<std::int64_t>(sizeof(T)) % 1024 == 0;
}

// Is op(A) = A (m × k, row stride lda) read in place by E's micro_rows kernel (BlockedPlan::a_rows)?
template <typename T>
bool rows_in_place(const Engine<T>& E, std::int64_t m, std::int64_t k, std::int64_t lda) {
    return E.kernels.micro_rows != nullptr && tuning().allow_rows_kernel && tuning().force_pack <= 0 &&
           small_operand<T>(m, k) && !conflict_stride<T>(lda);
}

int team_size(double flops, std::int64_t work_items) {
    if (flops < tuning().parallel_min_flops) return 1;
#if defined(_OPENMP)
    // Called from inside a parallel region (a thread's share of an epoch's later layers): the
    // threads are busy already; a nested region would only cost its setup.
    if (omp_in_parallel()) return 1;
#endif
    const std::int64_t n = std::min<std::int64_t>(get_num_threads(), work_items);
    return static_cast<int>(std::max<std::int64_t>(1, n));
}

template <typename T>
void blocked_gemm(const Problem<T>& P, const Engine<T>& E) {
    Blocking bl = E.blocking;
    // Overrides are rounded to whole register tiles: the macro-kernel assumes MC % MR == 0 and
    // NC % NR == 0 (an override of 48 rows with MR = 14 gave wrong rows; test_gemm.py).
    if (tuning().mc > 0) bl.MC = static_cast<int>(round_up(tuning().mc, bl.MR));
    if (tuning().kc > 0) bl.KC = tuning().kc;
    if (tuning().nc > 0) bl.NC = static_cast<int>(round_up(tuning().nc, bl.NR));
    BlockedPlan<T> plan{};
    plan.P = &P;
    plan.K = &E.kernels;
    plan.bl = bl;
    plan.kc_max = balanced_block(P.k, bl.KC, 8);
    // Products with a small op(B) (at most kSingleKBlockBytes, e.g. an h = 100 net's 784×100
    // W_1) run as one k block. That won when every k block cost a team a barrier after packing
    // a shared A~ (2 threads, 100×784·784×100: 157 -> 136 ms per h = 100 epoch); since such an
    // A~ is packed by each thread for itself (a_private below), one and several k blocks measure
    // about the same there. Larger ones keep KC-deep blocks, whose B~ sliver stays in L1
    // (100×784·784×400: 600 -> 568 ms per h = 400 epoch on 1 thread, 351 -> 328 ms on 2).
    // The choice depends on k and n only -- never on m or the thread count, which would change
    // how C's sums are split and so the results (test_threads_determinism.py).
    const std::int64_t n_for_k = P.blocking_n > 0 ? P.blocking_n : P.n;
    if (tuning().single_k_block && P.k <= 4 * bl.KC &&
        P.k * n_for_k * static_cast<std::int64_t>(sizeof(T)) <= kSingleKBlockBytes)
        plan.kc_max = P.k;
    plan.mc_max = balanced_block(P.m, bl.MC, bl.MR);
    plan.nc_max = balanced_block(P.n, bl.NC, bl.NR);

    // Packing policy.  Packing is required when the operand's layout does not match the
    // kernel (op(A) = A must become k-major, op(B) = Bᵀ must become row-major).  Otherwise
    // it is a trade: it costs one pass over the operand per use, and buys contiguous,
    // TLB- and cache-friendly micro-panels.  Unpacked operands are used when they are
    // small (the epoch loop's shapes) and their row stride is not a multiple of 1 KiB
    // (strides like 4 KiB map every k step to the same few L1 sets).
    const int force = tuning().force_pack;
    const bool a_small = small_operand<T>(P.m, P.k);
    const bool b_small = small_operand<T>(P.k, P.n);
    // A tall op(A) = Aᵀ feeding many column panels is packed too (the epoch's ∇W_1 = X_bᵀ G_1:
    // X_b's rows of 784 values give 14-value slivers that straddle cache lines at every k step;
    // packed, the dense h = 400 MNIST epoch took 2-3% less, 1 and 2 threads, same bits).
    const bool a_many_panels = !P.c_transposed && P.m >= 256 && P.n >= 128;
    // op(A) = A read in place, row by row, where the ISA has a kernel for it (AVX-512 and AVX2 float):
    // a small A (the epoch's X_b, 100 × 784) whose rows do not share L1 sets. Packing X_b cost a pass
    // over it per product -- per thread, when each packs its own A~ -- and the kernel reads its 14 rows
    // as fast as a packed panel (Intel Xeon family 6 model 167, X_b and W_1 in L2: 181-214
    // GFLOP/s either way). On AVX2 (AMD Zen 2) the packing was 11% of 100×784·784×100, which now
    // runs 1.07× faster (h = 400: 1.01×).
    plan.a_rows = P.opA == Op::N && rows_in_place(E, P.m, P.k, P.lda);
    // Rows read in place may be cut into panels of any heights up to MR: m = 100 with MR = 14 runs as
    // 4 panels of 13 rows and 4 of 12 rather than 7 of 14 and one of 2, whose 4 FMA chains per k step
    // leave the FMA units half idle on their latency (AVX-512: the 2-row tile took 1.7% of the dense
    // h = 400 epoch for 1% of its multiply-adds). Rows never depend on their tile: the same bits.
    plan.balanced_rows = plan.a_rows && tuning().balanced_rows;
    plan.pack_a = !plan.a_rows && (P.opA == Op::N || force > 0 ||
                                   (force == 0 && (!a_small || conflict_stride<T>(P.lda) || a_many_panels)));
    plan.pack_b = P.opB == Op::T || force > 0 ||
                  (force == 0 && (!b_small || conflict_stride<T>(P.ldb)));
    // Narrow tiles, by how A is read. The set's narrow kernel reads a panel's rows of one k step as
    // a vector, which needs A~ or an in-place Aᵀ. With A read by micro_rows they go to the set's
    // narrow_rows kernel where it has one (AVX2: the edge of two row panels as one 12-row tile),
    // else to micro_rows. With op(A) = Aᵀ in place (a tile's rows at one k step consecutive) they go
    // to its narrow_strip kernel where it has one, several row panels at a time (AVX2: up to 4
    // panels, 24 rows in 3 vectors, every lane busy): the epoch's W_1 −= lr·X_bᵀG_1 of an h = 100
    // net (its last 4 columns), where on AMD Zen 2 the pairs of panels took 7% of that product,
    // which strips of 24 rows make 1.03× faster (the dense h = 100 epoch new/old 0.991 on 1 thread,
    // 0.960 on 2). Not with C transposed (the swap path's tile buffer holds 2·MR rows).
    const bool strip = P.opA == Op::T && !plan.pack_a && !P.c_transposed && E.kernels.narrow_strip.fn != nullptr;
    plan.narrow_registers = tuning().narrow_registers;
    if (tuning().allow_narrow_kernel)
        plan.narrow = plan.a_rows ? E.kernels.narrow_rows : strip ? E.kernels.narrow_strip : E.kernels.narrow;

    // Macro-kernel order.  BLIS's jr-outer order keeps one B~ micro-panel (KC·NR) in L1 while
    // the A~ micro-panels stream past it from the A~ block in L2.  When both operands are
    // packed, the ir-outer order (GotoBLAS's "A~ micro-panel in L1, B~ block in L2") does
    // better where the B~ block fits in half of L2: NC is then capped to fit.  Measured on a
    // Sapphire Rapids core (2 MiB L2), 1 thread: sgemm 1024³ 14.2 -> 13.2 ms, 2048³ (NC capped
    // from 2048 to 1024) 113 -> 104 ms, 256³ 0.22 -> 0.20 ms.
    plan.a_outer = tuning().a_panel_outer;
    if (!plan.a_outer && tuning().auto_order && plan.pack_a && plan.pack_b) {
        const std::int64_t half_l2 = l2_cache_bytes() / 2;
        std::int64_t nc_fit = half_l2 / (plan.kc_max * static_cast<std::int64_t>(sizeof(T)));
        nc_fit = nc_fit / bl.NR * bl.NR;
        if (nc_fit >= 4 * bl.NR) {
            plan.a_outer = true;
            if (tuning().nc <= 0) plan.nc_max = balanced_block(P.n, std::min<std::int64_t>(bl.NC, nc_fit), bl.NR);
        }
    }

    const double flops = 2.0 * double(P.m) * double(P.n) * double(P.k);
    const std::int64_t tiles = ceil_div(std::min(P.m, plan.mc_max), bl.MR) *
                               ceil_div(std::min(P.n, plan.nc_max), bl.NR);
    const int nthreads = team_size(flops, tiles);
    // Few rows, B used in place (the epoch's X_b·W_1 on several threads): every thread packs
    // all of A~ itself rather than a share of a common copy -- the packing is small, and the
    // team then never waits at a barrier, and never reads panels another core packed.
    plan.a_slice = round_up(plan.mc_max, bl.MR) * plan.kc_max;
    plan.a_private = tuning().private_a && nthreads > 1 && plan.pack_a && !plan.pack_b &&
                     P.m <= plan.mc_max && P.n <= plan.nc_max;
    // Column split: with B used in place (a tile may then start at any column), each thread takes
    // a contiguous run of whole 64-byte lines of C's rows, all rows, instead of a run of tiles of
    // equal area. Then no line of C is written by two threads, and when two products share C's
    // columns (the epoch's X_b·W_1 and W_1 −= lr·X_bᵀG_1, both n = d_1), each thread keeps the
    // same columns of W_1 in its cache from one to the next. The area split cuts a column panel
    // by rows between threads, whose lines of W_1 then travel between the cores every batch:
    // d_1 = 100, 2 threads, the two products in turn: X_b·W_1 1.17x faster than on 1 thread
    // (1.48x when W_1 is not written in between). Where each share is at least 3 lines wide.
    const std::int64_t split_unit = kColumnSplitUnit / static_cast<std::int64_t>(sizeof(T));
    plan.column_split = nthreads > 1 && !plan.pack_b && tuning().column_split >= 0 &&
                        (tuning().column_split > 0 || std::min(P.n, plan.nc_max) >= 3 * split_unit * nthreads);

    PackBuffers& buffers = pack_buffers();
    if (plan.pack_a) plan.a_buf = buffers.a.get<T>(plan.a_slice * (plan.a_private ? nthreads : 1));
    if (plan.pack_b) plan.b_buf = buffers.b.get<T>(round_up(plan.nc_max, bl.NR) * plan.kc_max);

    run_team(nthreads, [&](int tid, int team) { run_blocked(plan, tid, team); });
}

// ---------------------------------------------------------------------------------------
// Dot path: op(A) = A (rows contiguous along k), n <= kDotMaxN.
//   C(i, j) = epi( alpha · Σ_p A(i, p)·op(B)(p, j) + beta·C(i, j) )
// op(B) is needed as n rows contiguous along k: that is B itself when op(B) = Bᵀ, and a
// small packed transpose (n×k) when op(B) = B.
template <typename T>
void dot_gemm(const Problem<T>& P, const Engine<T>& E) {
    // Bt (n×k) is always packed into a 64-byte aligned buffer with a 64-byte row stride, so
    // that its loads (the majority of the kernel's loads) never split cache lines.
    const std::int64_t ldbt = round_up(P.k, 64 / static_cast<std::int64_t>(sizeof(T)));
    T* bt = pack_buffers().b.get<T>(P.n * ldbt);
    if (P.opB == Op::N && E.kernels.transpose != nullptr) {   // (the epoch's W_2: h × 10 into 10 × h)
        E.kernels.transpose(P.B, P.ldb, P.k, P.n, bt, ldbt);
    } else {
        for (std::int64_t j = 0; j < P.n; ++j) {
            T* dst = bt + j * ldbt;
            if (P.opB == Op::T) {
                std::memcpy(dst, P.B + j * P.ldb, sizeof(T) * P.k);
            } else {
                const T* src = P.B + j;  // column j of B: stride ldb
                for (std::int64_t p = 0; p < P.k; ++p) dst[p] = src[p * P.ldb];
            }
        }
    }
    constexpr std::int64_t kRowChunk = 32;  // rows per kernel call (stack tile of sums)
    const auto dot = E.kernels.dot;
    // C = 1·sums, no β, no epilogue (the epoch's logits): the kernel's sums go to C itself.
    const bool direct = P.alpha == T(1) && P.beta == T(0) && P.epi == Epilogue::none;
    const double flops = 2.0 * double(P.m) * double(P.n) * double(P.k);
    run_team(team_size(flops, ceil_div(P.m, kRowChunk)), [&](int tid, int nthreads) {
        // Row share rounded to pairs so the 2-row kernel stays busy (results do not depend
        // on the split either way).
        const Range pairs = thread_share(ceil_div(P.m, 2), tid, nthreads);
        const std::int64_t row_end = std::min(P.m, pairs.end * 2);
        T sums[kRowChunk * kDotMaxN];
        for (std::int64_t i0 = pairs.begin * 2; i0 < row_end; i0 += kRowChunk) {
            const std::int64_t rows = std::min(kRowChunk, row_end - i0);
            DotKernelArgs<T> args{P.k, P.A + i0 * P.lda, P.lda, rows, bt, ldbt, static_cast<int>(P.n),
                                  direct ? P.C + i0 * P.ldc : sums, direct ? P.ldc : kDotMaxN};
            dot(args);
            if (direct) continue;
            for (std::int64_t r = 0; r < rows; ++r) {
                T* c_row = P.C + (i0 + r) * P.ldc;
                const T* mask_row = P.epi == Epilogue::relu_mask ? P.mask + (i0 + r) * P.ldmask : nullptr;
                for (std::int64_t j = 0; j < P.n; ++j) {
                    T x = P.alpha * sums[r * kDotMaxN + j];
                    if (P.beta != T(0)) x += P.beta * c_row[j];
                    c_row[j] = apply_epilogue(x, P.epi, mask_row ? mask_row + j : nullptr);
                }
            }
        }
    });
}

// C = epi(beta·C): the k == 0 / alpha == 0 case (A and B are not read).
template <typename T>
void scale_c(const Problem<T>& P) {
    for (std::int64_t i = 0; i < P.m; ++i) {
        T* c_row = P.C + i * P.ldc;
        const T* mask_row = P.epi == Epilogue::relu_mask ? P.mask + i * P.ldmask : nullptr;
        for (std::int64_t j = 0; j < P.n; ++j) {
            const T x = P.beta == T(0) ? T(0) : P.beta * c_row[j];
            c_row[j] = apply_epilogue(x, P.epi, mask_row ? mask_row + j : nullptr);
        }
    }
}

void check_arguments(Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k,
                     const void* A, std::int64_t lda, const void* B, std::int64_t ldb,
                     const void* C, std::int64_t ldc, Epilogue epi, const void* mask,
                     std::int64_t ldmask) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("gemm: " + what); };
    if ((opA != Op::N && opA != Op::T) || (opB != Op::N && opB != Op::T)) fail("op must be N or T");
    if (m < 0 || n < 0 || k < 0) fail("negative dimension");
    if (m == 0 || n == 0) return;
    if (C == nullptr) fail("C is null");
    if (ldc < n) fail("ldc < n");
    if (epi == Epilogue::relu_mask) {
        if (mask == nullptr) fail("relu_mask epilogue needs a mask");
        if (ldmask < n) fail("ldmask < n");
    }
    if (k == 0) return;
    if (A == nullptr || B == nullptr) fail("A or B is null");
    if (lda < (opA == Op::N ? k : m)) fail("lda is smaller than the row width of A");
    if (ldb < (opB == Op::N ? n : k)) fail("ldb is smaller than the row width of B");
}

}  // namespace

template <typename T>
void gemm(Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k, T alpha, const T* A,
          std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C, std::int64_t ldc,
          Epilogue epi, const T* mask, std::int64_t ldmask, PrefetchRange ahead, std::int64_t blocking_n) {
    check_arguments(opA, opB, m, n, k, A, lda, B, ldb, C, ldc, epi, mask, ldmask);
    if (m == 0 || n == 0) return;
    Problem<T> P{opA, opB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc, epi, mask, ldmask, false, ahead, blocking_n};
    if (k == 0 || alpha == T(0)) {
        scale_c(P);
        return;
    }
    const Engine<T>& E = engine_for<T>(active_isa());
    const gemm_detail::Tuning& tune = tuning();

    // The narrow paths sum differently from the blocked one: a column panel of a wider product
    // (blocking_n) takes the path the whole product takes.
    const std::int64_t path_n = blocking_n > 0 ? blocking_n : n;
    if (tune.allow_dot_path && E.kernels.dot != nullptr && opA == Op::N && path_n <= kDotMaxN &&
        k >= kDotMinK) {
        dot_gemm(P, E);
        return;
    }
    if (tune.allow_swap_path && opA == Op::T && opB == Op::N && path_n <= kDotMaxN &&
        path_n * 2 <= E.blocking.NR && m >= E.blocking.NR) {
        // Cᵀ = op(B)ᵀ·op(A)ᵀ = Bᵀ·A: the roles of A and B swap, and so do the op flags;
        // both operands stay in their kernel-friendly layouts (no packing).
        Problem<T> S{Op::T, Op::N, n, m, k, alpha, B, ldb, A, lda, beta, C, ldc, epi, mask, ldmask, true, ahead, 0};
        blocked_gemm(S, E);
        return;
    }
    blocked_gemm(P, E);
}

template <typename T>
void gemm_reference(Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k, T alpha,
                    const T* A, std::int64_t lda, const T* B, std::int64_t ldb, T beta, T* C,
                    std::int64_t ldc, Epilogue epi, const T* mask, std::int64_t ldmask) {
    check_arguments(opA, opB, m, n, k, A, lda, B, ldb, C, ldc, epi, mask, ldmask);
    for (std::int64_t i = 0; i < m; ++i) {
        for (std::int64_t j = 0; j < n; ++j) {
            T result = T(0);
            if (k > 0 && alpha != T(0)) {
                T sum = T(0);
                for (std::int64_t p = 0; p < k; ++p) {
                    const T a = opA == Op::N ? A[i * lda + p] : A[p * lda + i];
                    const T b = opB == Op::N ? B[p * ldb + j] : B[j * ldb + p];
                    sum += a * b;
                }
                result = alpha * sum;
            }
            if (beta != T(0)) result += beta * C[i * ldc + j];
            if (epi == Epilogue::relu) result = result < T(0) ? T(0) : result;
            if (epi == Epilogue::relu_mask) result = mask[i * ldmask + j] > T(0) ? result : T(0);
            C[i * ldc + j] = result;
        }
    }
}

template <typename T>
std::int64_t gemm_tile_columns() {
    return engine_for<T>(active_isa()).blocking.NR;
}
template std::int64_t gemm_tile_columns<float>();
template std::int64_t gemm_tile_columns<double>();

template <typename T>
bool gemm_reads_rows_in_place(std::int64_t m, std::int64_t k, std::int64_t lda) {
    return rows_in_place(engine_for<T>(active_isa()), m, k, lda);
}
template bool gemm_reads_rows_in_place<float>(std::int64_t, std::int64_t, std::int64_t);
template bool gemm_reads_rows_in_place<double>(std::int64_t, std::int64_t, std::int64_t);

// The active ISA's float micro-kernel on operands that stay in L1: one MR×NR tile of C
// (β = 1) from packed A~ (MR×kc) and B~ (kc×NR) slivers, kc = 256, called over and over; the
// best rate of short runs after a warm-up, in GFLOP/s. What the kernel itself can do on this
// core, whatever the caches and the driver around it.
double probe_micro_kernel_gflops(double seconds) {
    const Engine<float>& E = engine_for<float>(active_isa());
    const int MR = E.blocking.MR, NR = E.blocking.NR;
    constexpr std::int64_t kc = 256;
    std::vector<float> a(static_cast<std::size_t>(MR * kc + 64), 1e-3f), b(static_cast<std::size_t>(kc * NR + 64), 1e-3f);
    std::vector<float> c(static_cast<std::size_t>(MR * NR), 0.0f);
    MicroKernelArgs<float> args{};
    args.k = kc;
    args.a = a.data();
    args.a_k_stride = MR;
    args.b = b.data();
    args.b_k_stride = NR;
    args.rows = MR;
    args.cols = NR;
    args.alpha = 1.0f;
    args.beta = 1.0f;
    args.c = c.data();
    args.ldc = NR;
    args.epi = Epilogue::none;
    const double flops_per_call = 2.0 * MR * NR * kc;
    double best = probe_detail::best_gflops(
        [&](std::int64_t calls) {
            for (std::int64_t i = 0; i < calls; ++i) E.kernels.micro(args);
            return flops_per_call * static_cast<double>(calls);
        },
        64, seconds);
    if (!(c[0] == c[0])) best = 0;   // keeps the results observable
    return best;
}

template void gemm<float>(Op, Op, std::int64_t, std::int64_t, std::int64_t, float, const float*,
                          std::int64_t, const float*, std::int64_t, float, float*, std::int64_t,
                          Epilogue, const float*, std::int64_t, PrefetchRange, std::int64_t);
template void gemm<double>(Op, Op, std::int64_t, std::int64_t, std::int64_t, double, const double*,
                           std::int64_t, const double*, std::int64_t, double, double*, std::int64_t,
                           Epilogue, const double*, std::int64_t, PrefetchRange, std::int64_t);
template void gemm_reference<float>(Op, Op, std::int64_t, std::int64_t, std::int64_t, float,
                                    const float*, std::int64_t, const float*, std::int64_t, float,
                                    float*, std::int64_t, Epilogue, const float*, std::int64_t);
template void gemm_reference<double>(Op, Op, std::int64_t, std::int64_t, std::int64_t, double,
                                     const double*, std::int64_t, const double*, std::int64_t,
                                     double, double*, std::int64_t, Epilogue, const double*,
                                     std::int64_t);

}  // namespace fastnn
