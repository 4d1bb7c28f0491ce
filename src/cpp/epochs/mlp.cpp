// Forward/backward passes, SGD epochs and evaluation of L-layer ReLU nets (see mlp.hpp).
#include "epochs/mlp.hpp"

#include <algorithm>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "epochs/forward_pass.hpp"
#include "gemm/gemm.hpp"
#include "epochs/softmax_cross_entropy.hpp"
#include "epochs/softmax_epoch.hpp"
#include "runtime/threads.hpp"

namespace fastnn {
namespace {

// Scratch for one batch of up to `rows` rows, allocated once and reused for every batch.
template <typename T>
struct Scratch {
    std::vector<T> x;                    // the batch widened to T (only when X's type differs)
    std::vector<std::vector<T>> H;       // H[i] = ReLU(H[i-1] W_i), i = 1 … L−1   (rows × d_i)
    std::vector<std::vector<T>> G;       // G[i] = ∂loss/∂(pre-activation i), i = 1 … L (rows × d_i);
                                         // G[L] first holds the logits Z, then (S − I_y)/B in place
    Scratch(const Network<T>& net, std::int64_t rows, bool widen) {
        const std::int64_t L = net.layers();
        if (widen) x.resize(static_cast<std::size_t>(rows * net.dims[0]));
        H.resize(static_cast<std::size_t>(L));
        G.resize(static_cast<std::size_t>(L + 1));
        for (std::int64_t i = 1; i <= L; ++i) {
            if (i < L) H[i].resize(static_cast<std::size_t>(rows * net.dims[i]));
            G[i].resize(static_cast<std::size_t>(rows * net.dims[i]));
        }
    }
};

// The batch's rows as T (a pointer into X, or widened into s.x) and the forward pass: see
// forward_pass.hpp.
template <typename T, typename TX>
const T* batch_rows(const DataMatrix<TX>& X, std::int64_t start, std::int64_t B, Scratch<T>& s,
                    std::int64_t& ld) {
    return forward_pass::batch_rows(X, nullptr, start, B, s.x, ld);
}

template <typename T>
void forward(const T* Xb, std::int64_t ldx, std::int64_t B, const Network<T>& net, Scratch<T>& s,
             T* logits) {
    forward_pass::forward<T>(Xb, ldx, B, net.W, nullptr, net.dims, s.H, logits);
}

// Backward pass of B rows, from G_L = (S − I_y)/B in s.G[L]. For i = L … 1:
//   G_{i-1} = (G_i W_iᵀ) ∘ 1{H_{i-1} > 0}      (uses W_i before it changes)
//   target_i ← alpha · H_{i-1}ᵀ G_i + beta · target_i
// SGD passes target = W, alpha = −lr, beta = 1 (the update fused into the GEMM);
// a gradient evaluation passes target = ∇W, alpha = 1, beta = 0.
template <typename T>
void backward(const T* Xb, std::int64_t ldx, std::int64_t B, const Network<T>& net, Scratch<T>& s,
              T alpha, T beta, const std::vector<T*>& target) {
    const auto& d = net.dims;
    for (std::int64_t i = net.layers(); i >= 1; --i) {
        const T* H_prev = i == 1 ? Xb : s.H[i - 1].data();
        const std::int64_t ld_prev = i == 1 ? ldx : d[i - 1];
        if (i > 1)
            gemm<T>(Op::N, Op::T, B, d[i - 1], d[i], T(1), s.G[i].data(), d[i], net.W[i - 1], d[i],
                    T(0), s.G[i - 1].data(), d[i - 1], Epilogue::relu_mask, s.H[i - 1].data(), d[i - 1]);
        gemm<T>(Op::T, Op::N, d[i - 1], d[i], B, alpha, H_prev, ld_prev, s.G[i].data(), d[i], beta,
                target[i - 1], d[i]);
    }
}

// Forward, then the fused softmax cross-entropy turning the logits into G_L = (S − I_y)/B in
// place. Returns Σ loss over the B rows.
template <typename T>
double forward_loss_grad(const T* Xb, std::int64_t ldx, std::int64_t B, const std::int64_t* yb,
                         const Network<T>& net, Scratch<T>& s) {
    const std::int64_t L = net.layers(), k = net.dims[L];
    T* Z = s.G[L].data();
    forward(Xb, ldx, B, net, s, Z);
    return softmax_cross_entropy_rows(Z, k, yb, B, k, T(1) / static_cast<T>(B), Z, k);
}

// Runs body(chunk_index, start, rows, scratch) over row chunks of X in order, with one
// scratch. Each chunk's GEMMs are large enough to be threaded inside.
constexpr std::int64_t kEvalChunk = 1024;

template <typename T, typename TX, typename Body>
void for_each_chunk(const DataMatrix<TX>& X, const Network<T>& net, Body&& body) {
    Scratch<T> s(net, std::min(kEvalChunk, X.rows), !std::is_same_v<T, TX>);
    for (std::int64_t c = 0, start = 0; start < X.rows; ++c, start += kEvalChunk)
        body(c, start, std::min(kEvalChunk, X.rows - start), s);
}

}  // namespace

// One SGD epoch. Per batch: the first layer's products run threaded inside the GEMM; the
// layers after it, the loss gradient and the backward pass down to G_1 run on the threads by
// equal shares of the batch's rows, then the updates of W_L … W_2 by fixed chunks of their rows
// shared among the threads; every G_i is formed before any weight changes. The shares cannot
// change a result: each output element of those products is summed in the same order whatever
// the rows around it (test_threads_determinism.py), and no loss is summed here.
template <typename T, typename TX>
std::int64_t mlp_epoch(const DataMatrix<TX>& X, const std::int64_t* y, const Network<T>& net,
                       T lr, std::int64_t batch, const StopRequested& stop_requested) {
    if (batch < 1) throw std::invalid_argument("batch: expected an integer >= 1");
    if constexpr (std::is_same_v<T, TX>) {
        if (net.layers() == 1)   // softmax regression: the fused, transposed path
            return softmax_regression_epoch_fused<T>(X, y, net.W[0], net.dims[1], lr, batch, stop_requested);
    }
    const std::int64_t L = net.layers(), k = net.dims[L];
    const auto& d = net.dims;
    std::int64_t later_work = k;   // multiply-adds per row after the first layer (and the softmax)
    for (std::int64_t i = 2; i <= L; ++i) later_work += d[i - 1] * d[i];
    Scratch<T> s(net, std::min(batch, X.rows), !std::is_same_v<T, TX>);
    auto share = [](std::int64_t n, std::int64_t parts) { return std::max<std::int64_t>(1, (n + parts - 1) / parts); };

    for (std::int64_t start = 0; start < X.rows; start += batch) {
        if (stop_requested && stop_requested()) return start;
        const std::int64_t B = std::min(batch, X.rows - start);
        std::int64_t ldx;
        const T* Xb = batch_rows(X, start, B, s, ldx);
        T* Z = s.G[L].data();
        // H_1 = ReLU(Xb W_1)   (the logits Z when L = 1)
        forward_pass::layer<T>(Xb, ldx, B, net.W[0], nullptr, d[0], d[1], L == 1 ? Z : s.H[1].data(), L > 1);
        const int team = B * later_work >= forward_pass::kSplitMinWork ? get_num_threads() : 1;
        // One parallel region: the rows' shares, then (after the barrier ending the first loop)
        // each W_i's rows' shares.
#if defined(_OPENMP)
#pragma omp parallel num_threads(team) if (team > 1)
#endif
        {
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
            for (int part = 0; part < team; ++part) {
                const std::int64_t r0 = std::min(B, part * share(B, team)), r1 = std::min(B, r0 + share(B, team));
                if (r0 == r1) continue;
                const std::int64_t rows = r1 - r0;
                const T* in = L > 1 ? s.H[1].data() + r0 * d[1] : nullptr;
                for (std::int64_t i = 2; i <= L; ++i) {   // H_i = ReLU(H_{i-1} W_i), Z = H_{L-1} W_L
                    T* out = i == L ? Z + r0 * k : s.H[i].data() + r0 * d[i];
                    forward_pass::layer<T>(in, d[i - 1], rows, net.W[i - 1], nullptr, d[i - 1], d[i], out, i < L);
                    in = out;
                }
                // G_L = (S − I_y)/B in place of Z
                softmax_cross_entropy_rows(Z + r0 * k, k, y + start + r0, rows, k, T(1) / static_cast<T>(B),
                                           Z + r0 * k, k);
                for (std::int64_t i = L; i >= 2; --i)   // G_{i-1} = (G_i W_iᵀ) ∘ 1{H_{i-1} > 0}
                    gemm<T>(Op::N, Op::T, rows, d[i - 1], d[i], T(1), s.G[i].data() + r0 * d[i], d[i],
                            net.W[i - 1], d[i], T(0), s.G[i - 1].data() + r0 * d[i - 1], d[i - 1],
                            Epilogue::relu_mask, s.H[i - 1].data() + r0 * d[i - 1], d[i - 1]);
            }
            // W_i ← W_i − lr · H_{i-1}ᵀ G_i for i = L … 2, each by chunks of kRowChunk rows shared
            // among the threads. The chunks must not depend on the thread count: for a narrow
            // W_i (the output layer) the GEMM takes its swapped path, whose k blocking (over the
            // batch's rows) depends on the chunk's row count once the batch exceeds KC.
            for (std::int64_t i = L; i >= 2; --i) {
                const std::int64_t chunks = (d[i - 1] + forward_pass::kRowChunk - 1) / forward_pass::kRowChunk;
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
                for (std::int64_t c = 0; c < chunks; ++c) {
                    const std::int64_t j0 = c * forward_pass::kRowChunk;
                    const std::int64_t j1 = std::min(d[i - 1], j0 + forward_pass::kRowChunk);
                    gemm<T>(Op::T, Op::N, j1 - j0, d[i], B, -lr, s.H[i - 1].data() + j0, d[i - 1],
                            s.G[i].data(), d[i], T(1), net.W[i - 1] + j0 * d[i], d[i]);
                }
            }
        }
        // W_1 ← W_1 − lr · Xbᵀ G_1, pulling the next batch's rows into L2 meanwhile (the first
        // layer's GEMM of the next batch then packs them from cache, not from DRAM)
        const std::int64_t next_rows = std::min(batch, X.rows - start - B);
        const PrefetchRange next{X.data + (start + B) * X.ld,
                                 next_rows > 0 ? ((next_rows - 1) * X.ld + X.cols) * static_cast<std::int64_t>(sizeof(TX)) : 0};
        gemm<T>(Op::T, Op::N, d[0], d[1], B, -lr, Xb, ldx, s.G[1].data(), d[1], T(1), net.W[0], d[1],
                Epilogue::none, nullptr, 0, next);
    }
    return X.rows;
}

template <typename T, typename TX>
double mlp_loss_grad(const DataMatrix<TX>& X, const std::int64_t* y, const Network<T>& net,
                     const std::vector<T*>& grads) {
    Scratch<T> s(net, X.rows, !std::is_same_v<T, TX>);
    std::int64_t ldx;
    const T* Xb = batch_rows(X, 0, X.rows, s, ldx);
    const double loss_sum = forward_loss_grad(Xb, ldx, X.rows, y, net, s);
    backward(Xb, ldx, X.rows, net, s, T(1), T(0), grads);    // ∇W_i = H_{i-1}ᵀ G_i
    return loss_sum / static_cast<double>(X.rows);
}

template <typename T, typename TX>
void mlp_logits(const DataMatrix<TX>& X, const Network<T>& net, T* logits) {
    const std::int64_t k = net.dims[net.layers()];
    for_each_chunk(X, net, [&](std::int64_t, std::int64_t start, std::int64_t rows, Scratch<T>& s) {
        std::int64_t ldx;
        const T* Xb = batch_rows(X, start, rows, s, ldx);
        forward(Xb, ldx, rows, net, s, logits + start * k);
    });
}

template <typename T, typename TX>
std::pair<double, std::int64_t> evaluate(const DataMatrix<TX>& X, const std::int64_t* y,
                                         const Network<T>& net) {
    const std::int64_t k = net.dims[net.layers()];
    const std::int64_t n_chunks = (X.rows + kEvalChunk - 1) / kEvalChunk;
    std::vector<double> loss(static_cast<std::size_t>(n_chunks));
    std::vector<std::int64_t> errors(static_cast<std::size_t>(n_chunks));
    for_each_chunk(X, net, [&](std::int64_t c, std::int64_t start, std::int64_t rows, Scratch<T>& s) {
        std::int64_t ldx;
        const T* Xb = batch_rows(X, start, rows, s, ldx);
        T* Z = s.G[net.layers()].data();
        forward(Xb, ldx, rows, net, s, Z);
        std::tie(loss[c], errors[c]) = softmax_loss_errors(Z, k, y + start, rows, k);
    });
    double loss_sum = 0;
    std::int64_t error_count = 0;
    for (std::int64_t c = 0; c < n_chunks; ++c) {   // in chunk order
        loss_sum += loss[c];
        error_count += errors[c];
    }
    return {loss_sum, error_count};
}

#define FASTNN_INSTANTIATE(T, TX)                                                                   \
    template std::int64_t mlp_epoch<T, TX>(const DataMatrix<TX>&, const std::int64_t*,             \
                                           const Network<T>&, T, std::int64_t, const StopRequested&); \
    template double mlp_loss_grad<T, TX>(const DataMatrix<TX>&, const std::int64_t*,               \
                                         const Network<T>&, const std::vector<T*>&);                \
    template void mlp_logits<T, TX>(const DataMatrix<TX>&, const Network<T>&, T*);                 \
    template std::pair<double, std::int64_t> evaluate<T, TX>(const DataMatrix<TX>&,                \
                                                             const std::int64_t*, const Network<T>&);

FASTNN_INSTANTIATE(float, float)
FASTNN_INSTANTIATE(double, double)
FASTNN_INSTANTIATE(double, float)   // float32 data, float64 parameters (hw0 under NumPy 2)

#undef FASTNN_INSTANTIATE

}  // namespace fastnn
