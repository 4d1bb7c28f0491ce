// L-layer ReLU networks without biases: the types every epoch shares (Network, DataMatrix,
// StopRequested), and the loss with its gradient, the logits and the evaluation over a dataset.
// Their training epoch, mlp_epoch, is train_epoch.hpp's.
//
//   H_0 = X,  H_i = ReLU(H_{i-1} W_i)  (0 < i < L),  Z = H_{L-1} W_L     W_i: d_{i-1} × d_i
//   G_L = (softmax(Z) − I_y) / B
//   G_i = (G_{i+1} W_{i+1}ᵀ) ∘ 1{H_i > 0}
//   ∇W_i = H_{i-1}ᵀ G_i,   SGD: W_i ← W_i − lr · ∇W_i
//
// Softmax regression is L = 1 (Θ = W_1); hw0's two-layer net is L = 2.
// Row-major throughout. X may be float while the parameters are double (NumPy's promotion of
// float32 data with float64 weights): each batch is then widened into a scratch buffer.
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

namespace fastnn {

// The parameters: W[i] is dims[i] × dims[i+1], contiguous, for i = 0 … L−1.
template <typename T>
struct Network {
    std::vector<T*> W;
    std::vector<std::int64_t> dims;   // d_0 (input features) … d_L (classes); size L + 1
    std::int64_t layers() const { return static_cast<std::int64_t>(W.size()); }
};

// A row-major data matrix: n rows of `cols` values, row stride `ld` (>= cols).
template <typename TX>
struct DataMatrix {
    const TX* data;
    std::int64_t rows, cols, ld;
};

// Called between batches; returning true stops the epoch early (Ctrl-C).
using StopRequested = std::function<bool()>;

// Mean loss over the rows of X, and the gradients ∇W_i written into grads[i] (shaped like W[i]).
template <typename T, typename TX>
double mlp_loss_grad(const DataMatrix<TX>& X, const std::int64_t* y, const Network<T>& net,
                     const std::vector<T*>& grads);

// Logits (X.rows × d_L, contiguous) for every row of X. With skip_zeros (a net with a hidden layer),
// the first layer runs over X's nonzeros only, each chunk of rows compacted to CSR as the
// zero-skipping epoch's batches are: the same sums as that epoch's forward, equal to the dense
// GEMMs' up to rounding.
template <typename T, typename TX>
void mlp_logits(const DataMatrix<TX>& X, const Network<T>& net, T* logits, bool skip_zeros = false);

// Σ loss and the number of misclassified rows over the whole dataset, in row chunks
// (the GEMMs of each chunk are threaded; sums are taken in chunk order). skip_zeros as above.
template <typename T, typename TX>
std::pair<double, std::int64_t> evaluate(const DataMatrix<TX>& X, const std::int64_t* y,
                                         const Network<T>& net, bool skip_zeros = false);

}  // namespace fastnn
