// The output layer's loss for train_epoch (train_epoch.hpp): what each row's outputs z (k values)
// are compared with, with optional per-row sample weights w_r >= 0 — scikit-learn's MLP losses.
//
//   cross-entropy (classifier):  loss_r = clip(logsumexp(z) − z_y),   ∂/∂z = softmax(z) − I_y
//       clip: to [−log(1 − ε), −log ε], ε the machine epsilon of T (sklearn's log_loss clips
//       the probabilities to [ε, 1 − ε]; its gradient is the unclipped softmax(z) − I_y)
//   squared error (regressor):   loss_r = ½ Σ_j (z_j − y_j)² / k,   ∂/∂z = z − y
//       (sklearn's squared_loss averages over the k outputs, its gradient z − y does not)
//
// Over a batch of B rows with S = Σ_r w_r (w_r = 1 without weights, S = B):
//   batch loss = Σ_r w_r loss_r / S,   G_L row r = (w_r / S) · ∂loss_r/∂z
// and the L2 term is (α / 2S) Σ ‖W‖² (sklearn's _backprop divides it by sw_sum too).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "epochs/softmax_cross_entropy.hpp"

namespace fastnn {

enum class OutputLoss { cross_entropy, squared_error };

// The targets of the whole data set (n rows).
template <typename T>
struct Targets {
    OutputLoss loss = OutputLoss::cross_entropy;
    const std::int64_t* labels = nullptr;   // cross_entropy: n labels in [0, k)
    const T* values = nullptr;              // squared_error: n × k values, contiguous
    const T* sample_weight = nullptr;       // n weights >= 0; null: every weight 1
};

// One batch's targets, gathered row by row (row r = order[start + r], or start + r), and the loss
// and output gradient of each of its rows.
template <typename T>
class BatchTargets {
public:
    BatchTargets(const Targets<T>& t, std::int64_t k, std::int64_t max_rows)
        : t_(t), k_(k), labels_(static_cast<std::size_t>(max_rows)),
          values_(t.values ? static_cast<std::size_t>(max_rows * k) : 0),
          weights_(t.sample_weight ? static_cast<std::size_t>(max_rows) : 0) {}

    // Gathers B rows; returns S = Σ_r w_r (B without weights).
    double gather(const std::int64_t* order, std::int64_t start, std::int64_t B) {
        B_ = B;
        double S = 0;
        for (std::int64_t r = 0; r < B; ++r) {
            const std::int64_t row = order ? order[start + r] : start + r;
            if (t_.labels) labels_[static_cast<std::size_t>(r)] = t_.labels[row];
            if (t_.values) std::copy(t_.values + row * k_, t_.values + (row + 1) * k_, values_.data() + r * k_);
            if (t_.sample_weight) {
                weights_[static_cast<std::size_t>(r)] = t_.sample_weight[row];
                S += static_cast<double>(t_.sample_weight[row]);
            }
        }
        S_ = t_.sample_weight ? S : static_cast<double>(B);
        return S_;
    }

    // w_r · loss_r of row r, and in place of its outputs z (k values) (w_r / S) · ∂loss_r/∂z.
    // A batch of weight S = 0 has no gradient (sklearn would divide by zero).
    double row(std::int64_t r, T* z) const {
        const T w = t_.sample_weight ? weights_[static_cast<std::size_t>(r)] : T(1);
        const T scale = !t_.sample_weight ? T(1) / static_cast<T>(B_)
                                          : (S_ > 0 ? static_cast<T>(static_cast<double>(w) / S_) : T(0));
        double loss;
        if (t_.loss == OutputLoss::cross_entropy) {
            loss = softmax_cross_entropy_rows(z, k_, labels_.data() + r, 1, k_, scale, z, k_);
            loss = std::clamp(loss, kMinCrossEntropy, kMaxCrossEntropy);
        } else {
            const T* y = values_.data() + r * k_;
            double sq = 0;
            for (std::int64_t j = 0; j < k_; ++j) {
                const T e = z[j] - y[j];
                sq += static_cast<double>(e) * static_cast<double>(e);
                z[j] = scale * e;
            }
            loss = 0.5 * sq / static_cast<double>(k_);
        }
        return t_.sample_weight ? static_cast<double>(w) * loss : loss;
    }

    // The labels of the gathered rows (cross_entropy), for the callers that still need them.
    const std::int64_t* labels() const { return labels_.data(); }

private:
    static constexpr double kEps = static_cast<double>(std::numeric_limits<T>::epsilon());
    static inline const double kMinCrossEntropy = -std::log1p(-kEps);
    static inline const double kMaxCrossEntropy = -std::log(kEps);

    Targets<T> t_;
    std::int64_t k_;
    std::vector<std::int64_t> labels_;
    std::vector<T> values_;
    std::vector<T> weights_;
    std::int64_t B_ = 0;
    double S_ = 0;
};

}  // namespace fastnn
