// Fused softmax cross-entropy: one pass per row gives the loss and the gradient.
//
// For a row z of k logits with label y:
//   m      = max_j z_j                       (subtracted for stability: no overflow for |z| ~ 1e4)
//   lse    = m + log Σ_j exp(z_j − m)        (log-sum-exp)
//   loss   = lse − z_y = (m − z_y) + log Σ_j exp(z_j − m)   (cross-entropy; summed in this order)
//   ∂loss/∂z_j = softmax(z)_j − 1{j = y} = exp(z_j − lse) − 1{j = y}
// Over a batch the loss is the mean, so the gradient of row i is scaled by 1/B.
#pragma once

#include <cmath>
#include <cstdint>
#include <utility>

namespace fastnn {

// Cross-entropy of one row against label y: logsumexp(z) − z_y, computed as
// (m − z_y) + log Σ_j exp(z_j − m) with m = max_j z_j, so that no large term cancels
// (for z = [1e30, 1e30] the loss is log 2, not 0).
template <typename T>
inline double row_cross_entropy(const T* z, std::int64_t k, std::int64_t y) {
    T m = z[0];
    for (std::int64_t j = 1; j < k; ++j) m = z[j] > m ? z[j] : m;
    T sum = 0;
    for (std::int64_t j = 0; j < k; ++j) sum += std::exp(z[j] - m);
    return (static_cast<double>(m) - static_cast<double>(z[y])) + std::log(static_cast<double>(sum));
}

// Index of the largest logit of one row; ties go to the lowest index (as numpy.argmax).
template <typename T>
inline std::int64_t row_argmax(const T* z, std::int64_t k) {
    std::int64_t best = 0;
    for (std::int64_t j = 1; j < k; ++j)
        if (z[j] > z[best]) best = j;
    return best;
}

// Σ_i loss_i over B rows of Z (row stride ldz); the caller divides by B for the mean.
template <typename T>
double softmax_loss_sum(const T* Z, std::int64_t ldz, const std::int64_t* y,
                        std::int64_t B, std::int64_t k) {
    double total = 0;
    for (std::int64_t i = 0; i < B; ++i) {
        total += row_cross_entropy(Z + i * ldz, k, y[i]);
    }
    return total;
}

// Loss and gradient in one pass per row, in place: on return row i of G holds
// scale · (softmax(z_i) − onehot(y_i)). G may alias Z (same pointer and stride).
// One exp per logit: e_j = exp(z_j − m) is kept, then softmax_j = e_j / Σ e.
// Returns Σ_i loss_i (not yet divided by B).
template <typename T>
double softmax_cross_entropy_rows(const T* Z, std::int64_t ldz, const std::int64_t* y,
                                  std::int64_t B, std::int64_t k, T scale,
                                  T* G, std::int64_t ldg) {
    double total = 0;
    for (std::int64_t i = 0; i < B; ++i) {
        const T* z = Z + i * ldz;
        T* g = G + i * ldg;
        const T zy = z[y[i]];                  // read before g (possibly z itself) is overwritten
        T m = z[0];
        for (std::int64_t j = 1; j < k; ++j) m = z[j] > m ? z[j] : m;
        T sum = 0;
        for (std::int64_t j = 0; j < k; ++j) {
            const T e = std::exp(z[j] - m);
            g[j] = e;
            sum += e;
        }
        total += (static_cast<double>(m) - static_cast<double>(zy)) + std::log(static_cast<double>(sum));
        const T to_gradient = scale / sum;     // scale · softmax_j = e_j · scale / Σ e
        for (std::int64_t j = 0; j < k; ++j) g[j] *= to_gradient;
        g[y[i]] -= scale;
    }
    return total;
}

}  // namespace fastnn

namespace fastnn {

// (Σ loss, number of rows whose argmax differs from the label) over B rows of Z.
template <typename T>
std::pair<double, std::int64_t> softmax_loss_errors(const T* Z, std::int64_t ldz, const std::int64_t* y,
                                                    std::int64_t B, std::int64_t k) {
    std::int64_t errors = 0;
    for (std::int64_t i = 0; i < B; ++i) errors += row_argmax(Z + i * ldz, k) != y[i];
    return {softmax_loss_sum(Z, ldz, y, B, k), errors};
}

}  // namespace fastnn
