// The softmax-regression epoch, fused: one pass over each batch with the classes along rows.
//
// For softmax regression (Θ: d × k, k small — 10 for MNIST) the two GEMMs of a batch are
// narrow (n = k) and memory-bound, so the generic path (two GEMM calls and a softmax per batch)
// spends its time in overheads. This path keeps Θᵀ (k × d, each class's weights contiguous)
// for the whole epoch, so both products vectorise along the d features:
//
//   forward   z_r[j] = Σ_p x_r[p] · Θᵀ[j][p]                  (k dot products per row, 2 or 5 rows at a time)
//   softmax   g_r = (softmax(z_r) − onehot(y_r)) / B          (in place on Z, exp a vector at a
//                                                               time over a thread's rows)
//   update    Θᵀ[j][:] ← Θᵀ[j][:] − lr · Σ_r g_r[j] · x_r[:]  (32 features × 10 classes of sums
//                                                               in registers over all the rows;
//                                                               after the whole batch's forward,
//                                                               so SGD is exact)
//
// The forward runs class block by class block over all of a thread's rows, so that the block's
// rows of Θᵀ stay in L1 while the batch's rows stream past from L2 (all of Θᵀ, 31 KB for
// MNIST, and a group's rows do not fit a 32 KB L1 together). Where they do fit (a 48 KB L1
// with AVX-512's 32 registers: softmax_forward_wide), blocks of 10 classes and 2 rows read
// each row from L2 once.
//
// On several threads each batch's forward and gradient are split by rows (a thread turns its
// rows' logits into their gradient at once). On two threads of float rows the update is a chain
// over the same rows (UpdateChain: each thread reads only rows its own forward read; no barrier
// between the products); otherwise it is split by blocks of 32 features (each thread owns those
// columns of Θᵀ: one barrier per batch). No result depends on the split.
//
// The batch rows are read twice (the second time from cache), Θᵀ stays in L1/L2, nothing is
// allocated per batch. The next batch's rows are prefetched into L2 while both products of
// this one compute (RangePrefetch), so reading X from DRAM overlaps the arithmetic. Θ is
// transposed into scratch at the start and back into the caller's array at the end — also when
// the epoch is stopped early.
//
// The kernel source (softmax_epoch_kernels.hpp) is written once with GCC/Clang vector extensions
// and compiled three times: generic (SSE2 baseline), AVX2+FMA and AVX-512 — chosen at run time
// with the GEMM's ISA (cpu_features.hpp).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "epochs/mlp.hpp"
#include "runtime/isa_getters.hpp"

namespace fastnn {

// One epoch of softmax regression (Θ: d × k, contiguous, updated in place), fused as above.
// Returns the number of rows processed (fewer when stop_requested() returned true).
template <typename T>
std::int64_t softmax_regression_epoch_fused(const DataMatrix<T>& X, const std::int64_t* y, T* theta,
                                            std::int64_t k, T lr, std::int64_t batch,
                                            const StopRequested& stop_requested);

// The same epoch with X = scale · pixels (uint8; X's values are float32(pixel) · float32(scale),
// one rounding): each batch's rows are widened into a scratch buffer that stays in cache, so an
// epoch reads a quarter of the bytes of float32 X. Bitwise the same as the float32 epoch on
// those values.
template <typename T>
std::int64_t softmax_regression_epoch_pixels(const DataMatrix<std::uint8_t>& pixels, float scale, const std::int64_t* y,
                                             T* theta, std::int64_t k, T lr, std::int64_t batch,
                                             const StopRequested& stop_requested);

// The same epoch with float32 X and a float64 Θ (hw0's float32 data beside float64 weights): each
// batch's rows are widened to double into a scratch buffer that stays in cache, and the epoch runs
// as on float64 X -- bitwise the epoch on X.astype(float64), as NumPy's promotion computes it.
std::int64_t softmax_regression_epoch_float_rows(const DataMatrix<float>& X, const std::int64_t* y, double* theta,
                                                 std::int64_t k, double lr, std::int64_t batch,
                                                 const StopRequested& stop_requested);

// The forward's register blocks for a Θᵀ of k classes over d features padded to dp (whole lines): wide (up to
// 10 classes at once: 2 rows with AVX-512, 1 row with 16 vector registers) where AVX-512 is
// active and that many rows of Θᵀ and two rows of the batch take at most 7/8 of the L1 data
// cache (l1d_cache_bytes), else the ISA's own (5 classes at once: AVX-512 5 rows, AVX2 and
// SSE2 2 rows). Wide blocks with 16 registers were measured only where they do not fit L1 (a
// Zen 3: slower), so they are never chosen there, only forced. Only the speed differs, never a
// result. softmax_forward_blocks() overrides the choice (tests, benchmarks): 0 chooses as
// above, 1 always wide, -1 never.
bool softmax_forward_wide(std::int64_t d, std::int64_t dp, std::int64_t k, std::size_t element_bytes);
int& softmax_forward_blocks();
// Multiply-adds per batch (2·B·d·k) below which one thread runs a batch whatever the thread count:
// a team's fork, join and hand-overs cost about 10 µs per batch between two cores ~200 ns apart.
// Intel Xeon family 6 model 207, MNIST (d = 784, k = 10), 1-thread / 2-thread epoch time by
// batch: 0.24 (10 rows), 0.69 (50), 0.87 (70), 1.09 (100), 1.44 (200); the 2^17 used before
// shared batches of 9 rows and more. softmax_split_min_work() overrides it (tests: 0 shares every
// batch). Only the speed depends on it, never a result.
constexpr std::int64_t kSoftmaxSplitMinWork = 1'400'000;
std::int64_t& softmax_split_min_work();
// Classes per wide register block.
constexpr std::int64_t kWideClasses = 10;

namespace softmax_epoch_detail {

// Θᵀ's layout for an epoch (TransposedWeights), in panels of one cache line of features: panel q
// holds features qL … qL + L − 1 (L = 64 / sizeof(T): 16 floats, 8 doubles) of classes 0 … k − 1,
// one line per class, so Θᵀ[j][p] is at (p / L)·panel + j·L + p mod L, panel = L·k values. A
// forward step then reads one vector of each of its classes at fixed offsets from one pointer.
// (As k rows of stride dp, each class's row took a register: with ten classes and two rows of the
// batch per wide AVX-512 block, GCC kept pointers in vector registers and on the stack, and an
// accumulator went to the stack too. Intel Xeon family 6 model 207, MNIST, the softmax epoch
// new/old: 1 thread 0.945 (raw X), 0.950 (centred), 0.944 (Pixels); 2 threads 0.95-0.99; the same
// bits.) Features [p0, p1) with p0 a multiple of L start at panel p0 / L.
template <typename T>
inline constexpr std::int64_t kPanelFeatures = 64 / static_cast<std::int64_t>(sizeof(T));
template <typename T>
constexpr std::int64_t theta_index(std::int64_t panel, std::int64_t j, std::int64_t p) {
    return p / kPanelFeatures<T> * panel + j * kPanelFeatures<T> + p % kPanelFeatures<T>;
}

// The next batch's bytes, prefetched into L2 (prefetcht2), or into L1 too where into_l1
// (prefetcht0: fused_epoch says where that measured faster), a few lines per step, front to
// back, while this batch's kernels compute: reading X from DRAM then overlaps with the
// arithmetic instead of stalling the next forward pass. Each kernel takes its share off the
// front in spans (take) and prefetches a span's lines one per step of its own loop (Span::line).
struct RangePrefetch {
    const char* next = nullptr;
    const char* end = nullptr;
    bool into_l1 = false;

    RangePrefetch() = default;
    RangePrefetch(const void* begin, std::int64_t bytes, bool to_l1 = false)
        : next(static_cast<const char*>(begin)), end(static_cast<const char*>(begin) + bytes), into_l1(to_l1) {}
    std::int64_t lines_left() const { return next < end ? (end - next + 63) / 64 : 0; }
    // The next `lines_wanted` lines (at most what is left), taken off the front as one span
    // [first, last) for the caller to prefetch itself (a pointer and a limit in registers).
    struct Span {
        const char* first;
        const char* last;
        bool into_l1;
        void line(const char* p) const {
            if (into_l1) __builtin_prefetch(p, 0, 3);
            else __builtin_prefetch(p, 0, 1);
        }
    };
    Span take(std::int64_t lines_wanted) {
        const char* first = next;
        next += 64 * std::min(lines_wanted, lines_left());
        return {first, next, into_l1};
    }
};

// One register block's partial sums between two links of a chained update (UpdateChain): at most
// 10 classes × 2 vectors of at most 64 bytes (the scalar tail's 10 × 15 values fit too), and
// which link last filled them, as UpdateChain::stamp(batch, link + 1).
struct ChainSlot {
    std::atomic<std::int64_t> ready{-1};
    alignas(64) unsigned char sums[10 * 2 * 64];
};

// The update shared by a team as a chain over the batch's rows (fused_epoch): link i of n sums
// rows [r0, r1) -- the rows its own forward read, so its cache holds them -- onto the partial
// sums link i − 1 left in a slot, register block by register block, and hands them on; the last
// link adds them to Θᵀ. Each (class, feature) sum is thus the one chain over r = 0 … B − 1 that a
// single thread forms, whatever the team. The default, one link, is the whole update on one
// thread, and touches no slot.
struct UpdateChain {
    ChainSlot* slots = nullptr;   // one per register block of the update (Kernels::chain_units)
    std::int64_t batch = 0;       // this batch's number in the epoch
    int link = 0, links = 1;
    std::int64_t stamp(int filled_by) const { return batch * (links + 1) + filled_by; }
};

// The vectorised kernels of one batch, compiled once per ISA (softmax_epoch_kernels_*.cpp).
// Θᵀ (theta_t) is in panels of `panel` = L·k values (theta_index above; a class block's kernels get
// theta_t + j0·L, a feature range's theta_t + p0 / L · panel); the batch is B rows of d features
// with row stride ldx.
template <typename T>
struct Kernels {
    // Z (B × k, contiguous) = Xb · Θ, i.e. Z[r][j] = Σ_p Xb[r][p] · Θᵀ[j][p]
    // Along the way ahead_lines lines of `ahead` are prefetched. `wide`: register blocks of all
    // of k <= 10 classes (softmax_forward_wide), else the ISA's own; the same bits.
    void (*logits)(const T* Xb, std::int64_t ldx, std::int64_t B, std::int64_t d, const T* theta_t,
                   std::int64_t panel, std::int64_t k, T* Z, RangePrefetch& ahead, std::int64_t ahead_lines,
                   bool wide);
    // Z ← scale · (softmax(Z) − onehot(y)) in place, row by row (Z: B × k, contiguous; nothing
    // past its B·k values is touched).
    void (*gradient)(T* Z, std::int64_t B, std::int64_t k, const std::int64_t* y, T scale);
    // Θᵀ[j][:] += Σ_r C[r][j] · Xb[r][:]   (C: rows × k, contiguous): the sum over the rows is
    // formed in registers and added to Θᵀ once -- as `chain`'s link for rows [r0, r1) (the
    // default UpdateChain{}: all of rows [r0, r1) = [0, B) on one thread). Along the way what is
    // left of `ahead` is prefetched.
    void (*update)(const T* Xb, std::int64_t ldx, std::int64_t r0, std::int64_t r1, std::int64_t d, const T* C,
                   std::int64_t k, T* theta_t, std::int64_t panel, RangePrefetch& ahead, const UpdateChain& chain);
    // The slots a chained update over d features and k classes uses.
    std::int64_t (*chain_units)(std::int64_t d, std::int64_t k);
    // logits from B rows of d uint8 pixels (row stride ldp) as X = T(float(pixel) · scale), which
    // are written into Xb (row stride ldx) on the way, for the update -- or, Xb == nullptr, used
    // in registers only (update_pixels widens them again)
    void (*logits_pixels)(const std::uint8_t* pixels, std::int64_t ldp, float scale, T* Xb, std::int64_t ldx,
                          std::int64_t B, std::int64_t d, const T* theta_t, std::int64_t panel, std::int64_t k, T* Z,
                          RangePrefetch& ahead, std::int64_t ahead_lines, bool wide);
    // out[r][p] = T(float(pixels[r][p]) · scale), rows [0, B), features [p0, p1)
    void (*widen)(const std::uint8_t* pixels, std::int64_t ldp, std::int64_t B, std::int64_t p0, std::int64_t p1,
                  float scale, T* out, std::int64_t ldo);
    // update from B rows of d uint8 pixels (row stride ldp), widened on the way as above
    void (*update_pixels)(const std::uint8_t* pixels, std::int64_t ldp, float scale, std::int64_t B, std::int64_t d,
                          const T* C, std::int64_t k, T* theta_t, std::int64_t panel, RangePrefetch& ahead);
    // out[r][p] = T(x[r][p]), rows [0, B), features [p0, p1): float rows as T (float X, double Θ)
    void (*widen_floats)(const float* x, std::int64_t ldx, std::int64_t B, std::int64_t p0, std::int64_t p1, T* out,
                         std::int64_t ldo);
};

// Θᵀ (k × d) kept in scratch for an epoch, in 64-byte aligned panels (theta_index); the caller's Θ
// (d × k, contiguous) is read at construction and written back by write_back().
template <typename T>
class TransposedWeights {
public:
    TransposedWeights(T* theta, std::int64_t d, std::int64_t k);
    T* data() { return ptr_; }
    std::int64_t panel() const { return kPanelFeatures<T> * k_; }   // values per panel
    std::int64_t padded_features() const { return dp_; }             // d rounded up to whole panels
    void write_back();
private:
    T* theta_;
    std::int64_t d_, k_, dp_;
    std::vector<T> storage_;
    T* ptr_;
};

// Per-ISA kernel sets, each defined in its own translation unit (epochs/kernels/*.cpp).
FASTNN_ISA_GETTERS(Kernels, kernels);

}  // namespace softmax_epoch_detail
}  // namespace fastnn
