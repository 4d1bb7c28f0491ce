// Parameter update rules of the stochastic optimizers, exactly as scikit-learn's
// sklearn/neural_network/_stochastic_optimizers.py defines them (and as
// fastnn/numpy_backend.py's optimizer_update writes them in NumPy).
//
// One call updates one parameter array p (n values) from its gradient g, in place, together
// with the optimizer's per-parameter buffers. `l2` adds the L2 penalty's gradient on the fly:
// the gradient used is  g + l2 · p  (l2 = alpha / B for weights, 0 for biases), so that the
// full gradient never has to be materialised.
//
// SGD with momentum μ and learning rate η (sklearn's SGDOptimizer._get_updates):
//     v ← μ v − η g                                 (the velocity)
//     p ← p + v                                     (classical momentum)
//     p ← p + μ v − η g                             (nesterovs_momentum=True: the look-ahead)
//   μ = 0 is plain SGD: p ← p − η g (v is then not read, only written).
//
// Adam (sklearn's AdamOptimizer._get_updates; Kingma & Ba 2014), step t = 1, 2, …:
//     m ← β1 m + (1 − β1) g
//     v ← β2 v + (1 − β2) g²
//     η_t = η · √(1 − β2^t) / (1 − β1^t)            (computed once per step, in double)
//     p ← p − η_t · m / (√v + ε)
//
// The arithmetic is in T (float32 or float64), like NumPy's for arrays of that dtype with
// Python-float scalars. Element-wise: the result does not depend on the thread count.
//
// Subnormal numbers: late in training, Adam's first moment m of a weight whose gradient has
// gone quiet decays by β1 each step into the subnormal range (below 1.2e-38 in float32), where
// x86 arithmetic takes a slow microcode path (the update then ran 2-3× slower by the third
// epoch). The loops run inside the core's calls, which compute with subnormals as zero by
// default (runtime/float_mode.hpp, set_flush_subnormals): the parameters change by less than
// lr · 1e-30 from it, far below float32 rounding; the NumPy backend does not flush.
//
// The loops are compiled once per ISA (optimizer_kernels_{generic,avx2,avx512}.cpp, each with
// its own flags and -fno-math-errno so that sqrt vectorises) and called through the active
// ISA's UpdateKernels. They sit in an anonymous namespace so that each of those files keeps its
// own copy: the linker must never merge an AVX-512 instantiation into the generic path.
#pragma once

#include <cmath>
#include <cstdint>

#include "runtime/isa_getters.hpp"

namespace fastnn {

enum class OptimizerKind : int { sgd = 0, adam = 1 };

struct OptimizerConfig {
    OptimizerKind kind = OptimizerKind::sgd;
    double momentum = 0.0;    // SGD
    bool nesterov = false;    // SGD
    double beta1 = 0.9;       // Adam
    double beta2 = 0.999;     // Adam
    double epsilon = 1e-8;    // Adam
};

namespace {   // one copy per including file (see above)

// SGD with (optionally Nesterov) momentum; `velocity` may be null (plain SGD, momentum unused).
template <typename T>
void sgd_update(T* p, const T* g, T* velocity, std::int64_t n, T lr, T momentum, bool nesterov,
                T l2) {
    if (velocity == nullptr) {
        for (std::int64_t j = 0; j < n; ++j) p[j] -= lr * (g[j] + l2 * p[j]);   // p ← p − η g
        return;
    }
    for (std::int64_t j = 0; j < n; ++j) {
        const T grad = g[j] + l2 * p[j];
        const T v = momentum * velocity[j] - lr * grad;      // v ← μ v − η g
        velocity[j] = v;
        p[j] += nesterov ? momentum * v - lr * grad : v;     // p ← p + μ v − η g  |  p ← p + v
    }
}

// The step size of Adam's step t: η · √(1 − β2^t) / (1 − β1^t).
inline double adam_step_size(double lr, double beta1, double beta2, std::int64_t t) {
    const double td = static_cast<double>(t);
    return lr * std::sqrt(1.0 - std::pow(beta2, td)) / (1.0 - std::pow(beta1, td));
}

// One Adam step of one parameter; lr_t from adam_step_size.
// (1 − β1) and (1 − β2) are formed in double and then rounded to T, as NumPy does with
// Python-float scalars.
template <typename T>
void adam_update(T* p, const T* g, T* m, T* v, std::int64_t n, T lr_t, double beta1_d,
                 double beta2_d, T eps, T l2) {
    const T beta1 = static_cast<T>(beta1_d), beta2 = static_cast<T>(beta2_d);
    const T one_minus_b1 = static_cast<T>(1.0 - beta1_d), one_minus_b2 = static_cast<T>(1.0 - beta2_d);
    for (std::int64_t j = 0; j < n; ++j) {
        const T grad = g[j] + l2 * p[j];
        const T mj = beta1 * m[j] + one_minus_b1 * grad;            // m ← β1 m + (1 − β1) g
        const T vj = beta2 * v[j] + one_minus_b2 * (grad * grad);   // v ← β2 v + (1 − β2) g²
        m[j] = mj;
        v[j] = vj;
        p[j] -= lr_t * mj / (std::sqrt(vj) + eps);                  // p ← p − η_t m / (√v + ε)
    }
}

// The L2 term's ‖W‖² by columns (train_epoch.cpp, ColumnSquares): for c < cols,
//     acc[c] += Σ_r p[r·ld + c]²        rows r = 0 … rows − 1 in order, in double.
// Each column's sum is one chain down its rows, whichever file computes it: these files are
// compiled without FMA contraction (-ffp-contract=off), so every ISA gives the same bits.
template <typename T>
void column_squares(const T* p, std::int64_t rows, std::int64_t cols, std::int64_t ld, double* acc) {
    for (std::int64_t r = 0; r < rows; ++r) {
        const T* row = p + r * ld;
        for (std::int64_t c = 0; c < cols; ++c) {
            const double x = static_cast<double>(row[c]);
            acc[c] += x * x;
        }
    }
}

}  // namespace

// The update loops of one ISA, as function pointers; update_kernels<T>() picks the active ISA's.
template <typename T>
struct UpdateKernels {
    void (*sgd)(T* p, const T* g, T* velocity, std::int64_t n, T lr, T momentum, bool nesterov, T l2);
    void (*adam)(T* p, const T* g, T* m, T* v, std::int64_t n, T lr_t, double beta1, double beta2, T eps, T l2);
    void (*column_squares)(const T* p, std::int64_t rows, std::int64_t cols, std::int64_t ld, double* acc);
};

template <typename T>
UpdateKernels<T> update_kernels();   // by active_isa() (optimizer_kernels.cpp)

namespace optimizer_detail {
FASTNN_ISA_GETTERS(UpdateKernels, update_kernels);   // one set per file of optim/kernels/
}  // namespace optimizer_detail

}  // namespace fastnn
