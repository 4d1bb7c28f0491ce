// Training epochs and inference of L-layer ReLU nets with biases (see train_epoch.hpp).
#include "train_epoch.hpp"

#include <algorithm>
#include <stdexcept>
#include <type_traits>

#include "forward_pass.hpp"
#include "gemm.hpp"
#include "softmax_cross_entropy.hpp"
#include "threads.hpp"

namespace fastnn {
namespace {

using std::int64_t;

inline std::size_t sz(int64_t n) { return static_cast<std::size_t>(n); }

// Parameter updates are split into chunks of this many values, shared among the threads.
constexpr int64_t kUpdateChunk = 16384;

// Scratch for batches of up to `rows` rows, allocated once per call and reused.
template <typename T>
struct BiasedScratch {
    std::vector<T> x;                   // gathered (and/or widened) batch rows, rows × d_0
    std::vector<std::int64_t> y;        // gathered labels
    std::vector<std::vector<T>> H;      // H[i], i = 1 … L−1: rows × d_i (post-ReLU)
    std::vector<std::vector<T>> G;      // G[i], i = 1 … L: rows × d_i; G[L] holds Z first
    std::vector<std::vector<T>> gW;     // ∇W_i without the L2 term (training only)
    std::vector<std::vector<T>> gb;     // ∇b_i (training only, present biases)

    BiasedScratch(const BiasedNetwork<T>& net, int64_t rows, bool need_x, bool train) {
        const int64_t L = net.layers();
        const auto& d = net.dims;
        if (need_x) x.resize(sz(rows * d[0]));
        if (train) y.resize(sz(rows));
        H.resize(sz(L));
        G.resize(sz(L + 1));
        for (int64_t i = 1; i <= L; ++i) {
            if (i < L) H[i].resize(sz(rows * d[i]));
            G[i].resize(sz(rows * d[i]));
        }
        if (train) {
            gW.resize(sz(L));
            gb.resize(sz(L));
            for (int64_t i = 0; i < L; ++i) {
                gW[i].resize(sz(d[i] * d[i + 1]));
                if (net.b[i]) gb[i].resize(sz(d[i + 1]));
            }
        }
    }
};

}  // namespace

template <typename T, typename TX>
std::int64_t train_epoch(const DataMatrix<TX>& X, const std::int64_t* y, const std::int64_t* order,
                         std::int64_t n_order, const BiasedNetwork<T>& net,
                         const OptimizerConfig& opt, const OptimizerState<T>& state, double lr,
                         std::int64_t batch, double alpha, double* loss_sum,
                         const StopRequested& stop_requested) {
    if (batch < 1) throw std::invalid_argument("batch: expected an integer >= 1");
    const int64_t L = net.layers(), k = net.dims[L];
    const auto& d = net.dims;
    const bool need_x = order != nullptr || !std::is_same_v<T, TX>;
    BiasedScratch<T> s(net, std::max<int64_t>(1, std::min(batch, n_order)), need_x, /*train=*/true);
    const bool adam = opt.kind == OptimizerKind::adam;

    for (int64_t start = 0; start < n_order; start += batch) {
        if (stop_requested && stop_requested()) return start;
        const int64_t B = std::min(batch, n_order - start);
        int64_t ldx;
        const T* Xb = forward_pass::batch_rows(X, order, start, B, s.x, ldx);
        for (int64_t r = 0; r < B; ++r) s.y[r] = y[order ? order[start + r] : start + r];

        // Forward and the fused softmax cross-entropy: G_L = (S − I_y)/B in place of Z.
        T* Z = s.G[L].data();
        forward_pass::forward(Xb, ldx, B, net.W, &net.b, net.dims, s.H, Z);
        double batch_loss = softmax_cross_entropy_rows(Z, k, s.y.data(), B, k,
                                                       T(1) / static_cast<T>(B), Z, k);
        if (alpha != 0) {   // (α/2) Σ ‖W‖², before this batch's update
            double sq = 0;
            for (int64_t i = 0; i < L; ++i) {
                const T* W = net.W[i];
                for (int64_t j = 0, n = d[i] * d[i + 1]; j < n; ++j)
                    sq += static_cast<double>(W[j]) * static_cast<double>(W[j]);
            }
            batch_loss += 0.5 * alpha * sq;
        }
        *loss_sum += batch_loss;

        // Backward: every gradient from the parameters as they are before the update.
        for (int64_t i = L; i >= 1; --i) {
            const T* H_prev = i == 1 ? Xb : s.H[i - 1].data();
            const int64_t ld_prev = i == 1 ? ldx : d[i - 1];
            const T* Gi = s.G[i].data();
            // ∇W_i (without the L2 term, added in the update) = H_{i-1}ᵀ G_i
            gemm<T>(Op::T, Op::N, d[i - 1], d[i], B, T(1), H_prev, ld_prev, Gi, d[i], T(0),
                    s.gW[i - 1].data(), d[i]);
            if (net.b[i - 1]) {   // ∇b_i = Σ_rows G_i, rows in order
                T* gb = s.gb[i - 1].data();
                std::fill(gb, gb + d[i], T(0));
                for (int64_t r = 0; r < B; ++r)
                    for (int64_t j = 0; j < d[i]; ++j) gb[j] += Gi[r * d[i] + j];
            }
            if (i > 1)   // G_{i-1} = (G_i W_iᵀ) ∘ 1{H_{i-1} > 0}
                gemm<T>(Op::N, Op::T, B, d[i - 1], d[i], T(1), Gi, d[i], net.W[i - 1], d[i], T(0),
                        s.G[i - 1].data(), d[i - 1], Epilogue::relu_mask, s.H[i - 1].data(), d[i - 1]);
        }

        // The update of every parameter, W_1 … W_L then b_1 … b_L.
        const T l2 = static_cast<T>(alpha / static_cast<double>(B));
        T lr_t = static_cast<T>(lr);
        if (adam) {
            *state.t += 1;
            lr_t = static_cast<T>(adam_step_size(lr, opt.beta1, opt.beta2, *state.t));
        }
        for (int64_t p = 0; p < 2 * L; ++p) {
            const int64_t i = p % L;
            const bool is_bias = p >= L;
            T* param = is_bias ? net.b[i] : net.W[i];
            if (!param) continue;
            const T* g = is_bias ? s.gb[i].data() : s.gW[i].data();
            const int64_t n = is_bias ? d[i + 1] : d[i] * d[i + 1];
            const T l2_p = is_bias ? T(0) : l2;
            T* first = state.first[p];
            T* second = state.second[p];
            // Element-wise, so splitting into chunks across threads changes no result.
            auto update = [&](int64_t lo, int64_t hi) {
                if (adam)
                    adam_update<T>(param + lo, g + lo, first + lo, second + lo, hi - lo, lr_t, opt.beta1,
                                   opt.beta2, static_cast<T>(opt.epsilon), l2_p);
                else
                    sgd_update<T>(param + lo, g + lo, first ? first + lo : nullptr, hi - lo, lr_t,
                                  static_cast<T>(opt.momentum), opt.nesterov, l2_p);
            };
            const int64_t n_chunks = (n + kUpdateChunk - 1) / kUpdateChunk;
            const int nthreads = n_chunks > 1 ? std::min<int>(get_num_threads(), static_cast<int>(n_chunks)) : 1;
#ifdef _OPENMP
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1)
#endif
            for (int64_t c = 0; c < n_chunks; ++c)
                update(c * kUpdateChunk, std::min(n, (c + 1) * kUpdateChunk));
            (void)nthreads;
        }
    }
    return n_order;
}

template <typename T, typename TX>
void biased_logits(const DataMatrix<TX>& X, const BiasedNetwork<T>& net, T* logits) {
    constexpr int64_t kChunk = 1024;
    const int64_t k = net.dims[net.layers()];
    BiasedScratch<T> s(net, std::min(kChunk, X.rows), !std::is_same_v<T, TX>, /*train=*/false);
    for (int64_t start = 0; start < X.rows; start += kChunk) {
        const int64_t rows = std::min(kChunk, X.rows - start);
        int64_t ldx;
        const T* Xb = forward_pass::batch_rows(X, nullptr, start, rows, s.x, ldx);
        forward_pass::forward(Xb, ldx, rows, net.W, &net.b, net.dims, s.H, logits + start * k);
    }
}

#define FASTNN_INSTANTIATE(T, TX)                                                                  \
    template std::int64_t train_epoch<T, TX>(const DataMatrix<TX>&, const std::int64_t*,          \
                                             const std::int64_t*, std::int64_t,                    \
                                             const BiasedNetwork<T>&, const OptimizerConfig&,      \
                                             const OptimizerState<T>&, double, std::int64_t,       \
                                             double, double*, const StopRequested&);               \
    template void biased_logits<T, TX>(const DataMatrix<TX>&, const BiasedNetwork<T>&, T*);

FASTNN_INSTANTIATE(float, float)
FASTNN_INSTANTIATE(double, double)
FASTNN_INSTANTIATE(double, float)   // float32 data, float64 parameters

#undef FASTNN_INSTANTIATE

}  // namespace fastnn
