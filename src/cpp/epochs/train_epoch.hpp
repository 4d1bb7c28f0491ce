// The training epoch of every L-layer ReLU net: optional per-layer biases, SGD (with momentum or
// Nesterov momentum) or Adam with an L2 penalty, as scikit-learn's MLPClassifier does; rows dense,
// compacted to skip zeros, or CSR. hw0's epoch (mlp_epoch: no biases, plain SGD) is its case with
// each update inside the gradient's GEMM; softmax regression (L = 1) has its own fused epoch
// (softmax_epoch.hpp), which mlp_epoch calls.
//
//   H_0 = X,  H_i = ReLU(H_{i-1} W_i + b_i)  (0 < i < L),  Z = H_{L-1} W_L + b_L
//   loss of a batch of B rows = mean_r CE(Z_r, y_r) + (α / 2B) Σ_i ‖W_i‖²
//   G_L = (softmax(Z) − I_y) / B,   G_i = (G_{i+1} W_{i+1}ᵀ) ∘ 1{H_i > 0}
//   ∇W_i = H_{i-1}ᵀ G_i + (α / B) W_i,   ∇b_i = Σ_rows G_i
//
// (sklearn's _backprop: coef_grad = (H_{i-1}ᵀ δ_i + α W_i) / B with δ = S − I_y, the same
// quantity.) The parameters are updated after every batch by the rule of optimizers.hpp.
// The output loss may also be the regressor's squared error, and rows may carry sample
// weights (B above becomes S = Σ w_r): see output_loss.hpp.
#pragma once

#include <cstdint>
#include <vector>

#include "epochs/mlp.hpp"          // DataMatrix, Network, StopRequested
#include "epochs/output_loss.hpp"  // Targets: labels or values, sample weights
#include "optim/optimizers.hpp"
#include "sparse/sparse_rows.hpp"

namespace fastnn {

// W[i] is dims[i] × dims[i+1] (contiguous); b[i] has dims[i+1] values or is null (no bias).
template <typename T>
struct BiasedNetwork {
    std::vector<T*> W;
    std::vector<T*> b;
    std::vector<std::int64_t> dims;   // d_0 … d_L; size L + 1
    std::int64_t layers() const { return static_cast<std::int64_t>(W.size()); }
};

// The optimizer's buffers, one entry per parameter in the order W_1 … W_L, b_1 … b_L (entries
// of absent biases are null): SGD uses `first` as its velocities (null entries: plain SGD);
// Adam uses `first` (m) and `second` (v). `t` is Adam's step counter, advanced once per batch.
template <typename T>
struct OptimizerState {
    std::vector<T*> first;
    std::vector<T*> second;
    std::int64_t* t = nullptr;
};

// One epoch: the batches are rows order[0 … B), order[B … 2B), … of X (the last may be
// shorter); order == nullptr means 0, 1, …, X.rows − 1 (then n_order = X.rows). Each batch's
// rows are gathered into a scratch buffer allocated once per call. Returns the number of
// order entries processed (n_order unless stop_requested() returned true) and adds to
// *loss_sum, for every batch, B · (its loss above) = Σ CE + (α/2) Σ ‖W‖², with the parameters
// as they were before that batch's update (sklearn's accumulated_loss).
// With skip_zeros, the first layer's products skip the zeros of X: each batch's rows are
// compacted to CSR in scratch (reused from batch to batch) and go through train_epoch_sparse's
// products. The result equals the dense epoch's up to rounding; faster when most of X is zeros
// (the crossover on MNIST-shaped data is about a third of X nonzero).
template <typename T, typename TX>
std::int64_t train_epoch(const DataMatrix<TX>& X, const Targets<T>& y, const std::int64_t* order,
                         std::int64_t n_order, const BiasedNetwork<T>& net,
                         const OptimizerConfig& opt, const OptimizerState<T>& state, double lr,
                         std::int64_t batch, double alpha, double* loss_sum,
                         const StopRequested& stop_requested, bool skip_zeros = false);

// The same epoch with X given as CSR (sparse_rows.hpp; begin/end indexed by row, values of
// type T): the first layer's product and gradient skip the zeros of X; nothing else changes.
template <typename T>
std::int64_t train_epoch_sparse(const SparseRowsView<T>& X, const Targets<T>& y, const std::int64_t* order,
                                std::int64_t n_order, const BiasedNetwork<T>& net,
                                const OptimizerConfig& opt, const OptimizerState<T>& state, double lr,
                                std::int64_t batch, double alpha, double* loss_sum,
                                const StopRequested& stop_requested);

// hw0's epoch: minibatch SGD in data order (the last batch may be shorter), no biases, every W
// updated in place (W_i ← W_i − lr · H_{i-1}ᵀ G_i). Scratch memory is allocated once per call.
// Returns the number of rows processed (X.rows unless stop_requested() returned true).
template <typename T, typename TX>
std::int64_t mlp_epoch(const DataMatrix<TX>& X, const std::int64_t* y, const Network<T>& net,
                       T lr, std::int64_t batch, const StopRequested& stop_requested);

// The dense first layer's W_1 in panels of the GEMM's NR columns for the epoch (ColumnPanels'
// strips, train_epoch.cpp), which its two GEMMs read as packed micro-panels: on one thread, and on a
// column panel per thread. dense_strips_setting(): 0 (the default) where W_1's rows are wider than
// 512 bytes (d_1 > 128 floats), it has at least 128 rows (inputs) and gemm reads the batch in place;
// 1 always, -1 never (W_1 row-major). Only the speed differs, never a result.
int& dense_strips_setting();

// The most threads an epoch of batches of B rows shares a batch among, for a first hidden layer
// of d1 units (each epoch above caps get_num_threads() at this while it runs: EpochThreadCap).
int epoch_threads(std::int64_t B, std::int64_t d1);

// Where the zero-skipping first layer runs on column panels with a copy of the batch per panel
// (2 threads), the batch's nonzeros sorted by column for ∇W_1 are kept either as one set of lists
// that the threads share or as a set per panel, each sorted by its own thread
// (TransposeScratch::lists_per_panel, sparse_rows.cpp). Shared is less work; per panel, no line
// of the lists crosses between the cores. panel_lists_setting(): 0 (the default) chooses at the
// start of each epoch by the team's core-to-core round trip (team_round_trip_ns): a set per panel
// above kListsPerPanelRoundTripNs, shared below; 1 always a set per panel, -1 always shared.
// Only the speed differs, never a result.
int& panel_lists_setting();
constexpr double kListsPerPanelRoundTripNs = 200;

// Logits (X.rows × d_L, contiguous) of the biased net for every row of X; with skip_zeros (a net
// with a hidden layer) the first layer over X's nonzeros, chunk by chunk, as mlp_logits does.
template <typename T, typename TX>
void biased_logits(const DataMatrix<TX>& X, const BiasedNetwork<T>& net, T* logits, bool skip_zeros = false);

}  // namespace fastnn
