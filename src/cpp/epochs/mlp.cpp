// Loss and gradient, logits and evaluation of L-layer ReLU nets without biases (see mlp.hpp).
#include "epochs/mlp.hpp"

#include <algorithm>
#include <memory>
#include <tuple>
#include <type_traits>

#include "epochs/batch_compaction.hpp"
#include "epochs/forward_pass.hpp"
#include "gemm/gemm.hpp"
#include "epochs/softmax_cross_entropy.hpp"

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
//   G_{i-1} = (G_i W_iᵀ) ∘ 1{H_{i-1} > 0},   ∇W_i = H_{i-1}ᵀ G_i   (into grads[i-1])
template <typename T>
void backward(const T* Xb, std::int64_t ldx, std::int64_t B, const Network<T>& net, Scratch<T>& s,
              const std::vector<T*>& grads) {
    const auto& d = net.dims;
    for (std::int64_t i = net.layers(); i >= 1; --i) {
        const T* H_prev = i == 1 ? Xb : s.H[i - 1].data();
        const std::int64_t ld_prev = i == 1 ? ldx : d[i - 1];
        if (i > 1)
            gemm<T>(Op::N, Op::T, B, d[i - 1], d[i], T(1), s.G[i].data(), d[i], net.W[i - 1], d[i],
                    T(0), s.G[i - 1].data(), d[i - 1], Epilogue::relu_mask, s.H[i - 1].data(), d[i - 1]);
        gemm<T>(Op::T, Op::N, d[i - 1], d[i], B, T(1), H_prev, ld_prev, s.G[i].data(), d[i], T(0),
                grads[i - 1], d[i]);
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

// Runs the forward pass over row chunks of X in order, each chunk's logits (rows × d_L) into
// out + start·d_L (out null: a scratch chunk), then body(chunk_index, start, rows, logits). Each
// chunk's products are large enough to be threaded inside. With skip_zeros (and a hidden layer) the
// chunk's rows are compacted to CSR and the first layer runs over their nonzeros
// (forward_over_nonzeros); hw0's train_nn evaluates the whole training set after every epoch, and
// on MNIST (81% zeros) the dense first layer made that evaluation cost more than the epoch itself.
constexpr std::int64_t kEvalChunk = 1024;

template <typename T, typename TX, typename Body>
void for_each_chunk(const DataMatrix<TX>& X, const Network<T>& net, bool skip_zeros, T* out, Body&& body) {
    const std::int64_t L = net.layers(), k = net.dims[L];
    const std::int64_t max_rows = std::max<std::int64_t>(1, std::min(kEvalChunk, X.rows));
    const bool sparse = skip_zeros && L > 1;
    Scratch<T> s(net, max_rows, !sparse && !std::is_same_v<T, TX>);
    std::unique_ptr<CompactedBatches<T, TX>> batches;
    if (sparse) batches = std::make_unique<CompactedBatches<T, TX>>(X, nullptr, X.rows, max_rows, /*one_copy=*/true);
    for (std::int64_t c = 0, start = 0; start < X.rows; ++c, start += kEvalChunk) {
        const std::int64_t rows = std::min(kEvalChunk, X.rows - start);
        T* Z = out ? out + start * k : s.G[L].data();
        if (sparse) {
            forward_over_nonzeros(*batches, start, rows, net.W, static_cast<const std::vector<T*>*>(nullptr), net.dims,
                                  s.H, Z);   // (no biases)
        } else {
            std::int64_t ldx;
            const T* Xb = batch_rows(X, start, rows, s, ldx);
            forward(Xb, ldx, rows, net, s, Z);
        }
        body(c, start, rows, Z);
    }
}

}  // namespace

template <typename T, typename TX>
double mlp_loss_grad(const DataMatrix<TX>& X, const std::int64_t* y, const Network<T>& net,
                     const std::vector<T*>& grads) {
    Scratch<T> s(net, X.rows, !std::is_same_v<T, TX>);
    std::int64_t ldx;
    const T* Xb = batch_rows(X, 0, X.rows, s, ldx);
    const double loss_sum = forward_loss_grad(Xb, ldx, X.rows, y, net, s);
    backward(Xb, ldx, X.rows, net, s, grads);
    return loss_sum / static_cast<double>(X.rows);
}

template <typename T, typename TX>
void mlp_logits(const DataMatrix<TX>& X, const Network<T>& net, T* logits, bool skip_zeros) {
    for_each_chunk(X, net, skip_zeros, logits, [](std::int64_t, std::int64_t, std::int64_t, T*) {});
}

template <typename T, typename TX>
std::pair<double, std::int64_t> evaluate(const DataMatrix<TX>& X, const std::int64_t* y,
                                         const Network<T>& net, bool skip_zeros) {
    const std::int64_t k = net.dims[net.layers()];
    const std::int64_t n_chunks = (X.rows + kEvalChunk - 1) / kEvalChunk;
    std::vector<double> loss(static_cast<std::size_t>(n_chunks));
    std::vector<std::int64_t> errors(static_cast<std::size_t>(n_chunks));
    for_each_chunk(X, net, skip_zeros, static_cast<T*>(nullptr),
                   [&](std::int64_t c, std::int64_t start, std::int64_t rows, T* Z) {
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
    template double mlp_loss_grad<T, TX>(const DataMatrix<TX>&, const std::int64_t*,               \
                                         const Network<T>&, const std::vector<T*>&);                \
    template void mlp_logits<T, TX>(const DataMatrix<TX>&, const Network<T>&, T*, bool);           \
    template std::pair<double, std::int64_t> evaluate<T, TX>(const DataMatrix<TX>&,                \
                                                             const std::int64_t*, const Network<T>&, bool);

FASTNN_INSTANTIATE(float, float)
FASTNN_INSTANTIATE(double, double)
FASTNN_INSTANTIATE(double, float)   // float32 data, float64 parameters (hw0 under NumPy 2)

#undef FASTNN_INSTANTIATE

}  // namespace fastnn
