// The fused softmax-regression epoch loop (see softmax_epoch.hpp); the vector kernels it calls
// are chosen by the active ISA.
#include "epochs/softmax_epoch.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "runtime/cpu_features.hpp"
#include "runtime/threads.hpp"

namespace fastnn {
namespace {

using namespace softmax_epoch_detail;

template <typename T>
Kernels<T> kernels_for(Isa isa);

template <>
Kernels<float> kernels_for<float>(Isa isa) {
    return for_isa(isa, generic_kernels_f32, avx2_kernels_f32, avx512_kernels_f32);
}

template <>
Kernels<double> kernels_for<double>(Isa isa) {
    return for_isa(isa, generic_kernels_f64, avx2_kernels_f64, avx512_kernels_f64);
}

}  // namespace

namespace softmax_epoch_detail {

template <typename T>
TransposedWeights<T>::TransposedWeights(T* theta, std::int64_t d, std::int64_t k) : theta_(theta), d_(d), k_(k) {
    constexpr std::int64_t line = 64 / sizeof(T);     // rows start on cache-line boundaries
    dp_ = (d + line - 1) / line * line;
    storage_.assign(static_cast<std::size_t>(k * dp_ + line), T(0));
    const auto misalign = (reinterpret_cast<std::uintptr_t>(storage_.data()) / sizeof(T)) % line;
    ptr_ = storage_.data() + (line - misalign) % line;
    for (std::int64_t p = 0; p < d_; ++p)
        for (std::int64_t j = 0; j < k_; ++j) ptr_[theta_index<T>(panel(), j, p)] = theta_[p * k_ + j];
}

template <typename T>
void TransposedWeights<T>::write_back() {
    for (std::int64_t p = 0; p < d_; ++p)
        for (std::int64_t j = 0; j < k_; ++j) theta_[p * k_ + j] = ptr_[theta_index<T>(panel(), j, p)];
}

template class TransposedWeights<float>;
template class TransposedWeights<double>;

}  // namespace softmax_epoch_detail

namespace {

// The epoch over X as T (TX = T), as float rows widened to T = double (TX = float), or as uint8
// pixels times `scale` (TX = std::uint8_t). Float rows under double: each thread widens the rows its
// forward reads into its own buffer, and the epoch runs on those as on double rows. With
// pixels each thread widens the batch into its own buffer (a batch of rows as T): its rows of the
// forward on the way through it, then its features of the other threads' rows, for its update.
// The update then reads only lines its own core wrote (none that the other core holds modified).
// Where the forward runs wide blocks covering all k classes (softmax_forward_wide), nothing is
// stored: the forward and the update each widen the pixels they read, in registers. Storing a
// batch of floats (313 KB for MNIST) to read it once more cost more than widening it twice:
// Sapphire Rapids-class Xeon, 1 thread, the MNIST pixel epoch 22.1 -> 16.5 ms without the stores.
template <typename T, typename TX>
std::int64_t fused_epoch(const DataMatrix<TX>& X, float scale, const std::int64_t* y, T* theta, std::int64_t k,
                         T lr, std::int64_t batch, const StopRequested& stop_requested) {
    constexpr bool kPixels = std::is_same_v<TX, std::uint8_t>;
    constexpr bool kWidenedFloats = !kPixels && !std::is_same_v<T, TX>;   // float rows, double Θ
    static_assert(!kWidenedFloats || (std::is_same_v<T, double> && std::is_same_v<TX, float>), "");
    const Kernels<T> kern = kernels_for<T>(active_isa());
    const std::int64_t n = X.rows, d = X.cols;
    TransposedWeights<T> theta_t(theta, d, k);   // Θᵀ for the epoch; written back at the end
    const std::int64_t panel = theta_t.panel();
    const bool wide = softmax_forward_wide(d, theta_t.padded_features(), k, sizeof(T));
    std::vector<T> Z(static_cast<std::size_t>(std::min(batch, n) * k));

    // Threads share each batch: the forward and the gradient by rows (each thread turns its own
    // rows' logits into their gradient at once), the update by blocks of features (each thread
    // owns a range of Θᵀ's columns; one barrier per batch separates the two products) or, see
    // `chained` below, as a chain over the same rows. No result depends on the shares: a row's
    // logits and gradient, and a feature's sum over the rows, are formed the same way whichever
    // thread and group they fall in (test_threads_determinism.py).
    constexpr std::int64_t kFeatureUnit = 32;   // a whole register block of the update (any ISA), whole panels
    static_assert(kFeatureUnit % kPanelFeatures<T> == 0, "a thread's features start on a panel");
    const std::int64_t units = (d + kFeatureUnit - 1) / kFeatureUnit;
    const int team = 2 * std::min<std::int64_t>(batch, n) * d * k >= softmax_split_min_work()
                         ? static_cast<int>(std::min<std::int64_t>(get_num_threads(), units)) : 1;
    const bool widen_in_registers = kPixels && wide && k <= kWideClasses;
    // Float rows on two threads: the update as a chain over the rows (UpdateChain), each thread
    // its forward's rows, not a share of the features of every row -- which had each core read a
    // quarter of the batch from the other core's cache, every batch: on an Intel Xeon family 6
    // model 167, 2 threads, MNIST, each thread's half of the update took 8.4-8.9 ms of the epoch,
    // against 9.2 ms for the whole update on 1 thread. Chained, the epoch new/old 0.88 (raw X) and
    // 0.89 (centred). With `Pixels` (a quarter of the bytes cross) the chain measured 1.05: not
    // used. Other team sizes keep the split by features (unmeasured: the 2-core machines only).
    const bool chained = !kPixels && team == 2;
    std::vector<ChainSlot> slots(chained ? static_cast<std::size_t>(kern.chain_units(d, k)) : 0);
    const std::int64_t widened_size = std::min(batch, n) * d;
    std::vector<T> widened((kPixels && !widen_in_registers) || kWidenedFloats ? static_cast<std::size_t>(team * widened_size)
                                                                                : 0);
    // Batch `start` on thread t of `size` (the barrier below binds to the team, if any).
    auto one_batch = [&](std::int64_t start, int t, int size) {
        const std::int64_t B = std::min(batch, n - start);
        const TX* batch_rows = X.data + start * X.ld;
        const std::int64_t ldx = kPixels || kWidenedFloats ? d : X.ld;
        const std::int64_t next_rows = std::min(batch, n - start - B);
        const TX* next = next_rows > 0 ? batch_rows + B * X.ld : nullptr;
        // Rows [r0, r1) for the forward, features [p0, p1) for the update. This thread
        // prefetches the same share of the next batch's rows, up to half during the forward (at
        // most a line per vector step: logits_blocks) and the rest during the update: into
        // L2, or into L1 (prefetcht0) when one thread streams float rows past wide forward
        // blocks. Intel Xeon family 6 model 167 (AVX-512, 48 KB L1d, 2 MB L2), MNIST,
        // alternating builds, new/old: 1 thread 0.91-0.98 (the host's memory traffic moved it);
        // but 1.02 on 2 threads, 1.01 with `Pixels`, 1.055 with AVX2's 2 × 5 blocks forced.
        // Unmeasured on AMD's AVX-512 cores with a 48 KB L1 (Zen 5).
        const std::int64_t r0 = B * t / size, r1 = B * (t + 1) / size;
        const std::int64_t p0 = std::min(d, units * t / size * kFeatureUnit);
        const std::int64_t p1 = std::min(d, units * (t + 1) / size * kFeatureUnit);
        const std::int64_t n0 = next_rows * t / size, n1 = next_rows * (t + 1) / size;
        T* mine = widened.empty() ? nullptr : widened.data() + t * widened_size;   // this thread's rows as T
        const T* Xb = kPixels || kWidenedFloats ? mine : reinterpret_cast<const T*>(batch_rows);  // (TX = T then)
        RangePrefetch ahead;
        if (n1 > n0)
            ahead = RangePrefetch(next + n0 * X.ld, ((n1 - n0 - 1) * X.ld + d) * static_cast<std::int64_t>(sizeof(TX)),
                                  /*to_l1=*/!kPixels && wide && size == 1);
        if (r1 > r0) {   // Z = Xb Θ (with pixels: this thread's rows of Xb made on the way)
            if constexpr (kWidenedFloats)   // this thread's rows as double, then as double rows
                kern.widen_floats(batch_rows + r0 * X.ld, X.ld, r1 - r0, 0, d, mine + r0 * d, d);
            if constexpr (kPixels)
                kern.logits_pixels(batch_rows + r0 * X.ld, X.ld, scale, mine ? mine + r0 * d : nullptr, d, r1 - r0, d,
                                   theta_t.data(), panel, k, Z.data() + r0 * k, ahead, ahead.lines_left() / 2, wide);
            else
                kern.logits(Xb + r0 * ldx, ldx, r1 - r0, d, theta_t.data(), panel, k, Z.data() + r0 * k, ahead,
                            ahead.lines_left() / 2, wide);
            // −lr (S − I_y)/B for these rows
            kern.gradient(Z.data() + r0 * k, r1 - r0, k, y + start + r0, -lr / static_cast<T>(B));
        }
        if (chained) {   // Θ += −lr Xbᵀ (S − I_y)/B: this thread's link of the chain (no barrier needed:
                         // a link adds to Θᵀ only after every link before it has finished its forward)
            kern.update(Xb, ldx, r0, r1, d, Z.data(), k, theta_t.data(), panel, ahead,
                        UpdateChain{slots.data(), start / batch, t, size});
            return;
        }
        if constexpr (kPixels) {   // features [p0, p1) of the other threads' rows
            if (!widen_in_registers) {
                kern.widen(batch_rows, X.ld, r0, p0, p1, scale, mine, d);
                kern.widen(batch_rows + r1 * X.ld, X.ld, B - r1, p0, p1, scale, mine + r1 * d, d);
            }
        } else if constexpr (kWidenedFloats) {
            kern.widen_floats(batch_rows, X.ld, r0, p0, p1, mine, d);
            kern.widen_floats(batch_rows + r1 * X.ld, X.ld, B - r1, p0, p1, mine + r1 * d, d);
        }
#if defined(_OPENMP)
#pragma omp barrier
#endif
        // Θ += −lr Xbᵀ (S − I_y)/B for features [p0, p1), once every row's gradient is formed
        if (p1 > p0) {
            if constexpr (kPixels) {
                if (widen_in_registers) {
                    kern.update_pixels(batch_rows + p0, X.ld, scale, B, p1 - p0, Z.data(), k,
                                       theta_t.data() + p0 / kPanelFeatures<T> * panel, panel, ahead);
                    return;
                }
            }
            kern.update(Xb + p0, ldx, 0, B, p1 - p0, Z.data(), k, theta_t.data() + p0 / kPanelFeatures<T> * panel, panel,
                        ahead, UpdateChain{});
        }
    };
    // One team for the whole epoch, a barrier after each batch (Θᵀ whole again before the next
    // forward reads it), rather than a parallel region per batch: its fork and join cost more than
    // one barrier. Between batches the calling thread (thread 0) asks Python whether to stop; the
    // answer reaches the others through the barrier. Intel Xeon family 6 model 207, MNIST, batch
    // 100, 2 threads: the epoch new/old 0.953 (raw X), 0.956 (centred), 0.957 (Pixels); 1 thread 1.00.
    // (The answer to batch i is stop[i % 2]: thread 0 may write batch i + 1's while another thread,
    // just past batch i's barrier, still reads batch i's.)
    std::int64_t done = 0;
    bool stop[2] = {false, false};
    if (!(stop_requested && stop_requested()))
        run_team(team, [&](int t, int size) {
            for (std::int64_t start = 0, i = 0; start < n; start += batch, ++i) {
                one_batch(start, t, size);
                if (t == 0) {
                    done = std::min(start + batch, n);
                    stop[i % 2] = done < n && stop_requested && stop_requested();
                }
#if defined(_OPENMP)
#pragma omp barrier
#endif
                if (stop[i % 2]) break;
            }
        });
    theta_t.write_back();
    return done;
}

}  // namespace

std::int64_t& softmax_split_min_work() {
    static std::int64_t setting = kSoftmaxSplitMinWork;
    return setting;
}

int& softmax_forward_blocks() {
    static int setting = 0;
    return setting;
}

bool softmax_forward_wide(std::int64_t d, std::int64_t dp, std::int64_t k, std::size_t element_bytes) {
    if (softmax_forward_blocks() != 0) return softmax_forward_blocks() > 0;
    if (active_isa() != Isa::avx512) return false;
    const std::int64_t block_rows = std::min(k, kWideClasses);
    const auto bytes = static_cast<long long>((block_rows * dp + 2 * d) * static_cast<std::int64_t>(element_bytes));
    return bytes <= l1d_cache_bytes() / 8 * 7;
}

template <typename T>
std::int64_t softmax_regression_epoch_fused(const DataMatrix<T>& X, const std::int64_t* y, T* theta,
                                            std::int64_t k, T lr, std::int64_t batch,
                                            const StopRequested& stop_requested) {
    return fused_epoch<T, T>(X, 1.0f, y, theta, k, lr, batch, stop_requested);
}

std::int64_t softmax_regression_epoch_float_rows(const DataMatrix<float>& X, const std::int64_t* y, double* theta,
                                                 std::int64_t k, double lr, std::int64_t batch,
                                                 const StopRequested& stop_requested) {
    return fused_epoch<double, float>(X, 1.0f, y, theta, k, lr, batch, stop_requested);
}

template <typename T>
std::int64_t softmax_regression_epoch_pixels(const DataMatrix<std::uint8_t>& pixels, float scale, const std::int64_t* y,
                                             T* theta, std::int64_t k, T lr, std::int64_t batch,
                                             const StopRequested& stop_requested) {
    if (batch < 1) throw std::invalid_argument("batch: expected an integer >= 1");
    return fused_epoch<T, std::uint8_t>(pixels, scale, y, theta, k, lr, batch, stop_requested);
}

template std::int64_t softmax_regression_epoch_fused<float>(const DataMatrix<float>&, const std::int64_t*,
                                                            float*, std::int64_t, float, std::int64_t,
                                                            const StopRequested&);
template std::int64_t softmax_regression_epoch_fused<double>(const DataMatrix<double>&, const std::int64_t*,
                                                             double*, std::int64_t, double, std::int64_t,
                                                             const StopRequested&);
template std::int64_t softmax_regression_epoch_pixels<float>(const DataMatrix<std::uint8_t>&, float, const std::int64_t*,
                                                             float*, std::int64_t, float, std::int64_t,
                                                             const StopRequested&);
template std::int64_t softmax_regression_epoch_pixels<double>(const DataMatrix<std::uint8_t>&, float, const std::int64_t*,
                                                              double*, std::int64_t, double, std::int64_t,
                                                              const StopRequested&);

}  // namespace fastnn
