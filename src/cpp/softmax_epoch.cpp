// The fused softmax-regression epoch loop (see softmax_epoch.hpp); the vector kernels it calls
// are chosen by the active ISA.
#include "softmax_epoch.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_features.hpp"

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
        for (std::int64_t j = 0; j < k_; ++j) ptr_[j * dp_ + p] = theta_[p * k_ + j];
}

template <typename T>
void TransposedWeights<T>::write_back() {
    for (std::int64_t p = 0; p < d_; ++p)
        for (std::int64_t j = 0; j < k_; ++j) theta_[p * k_ + j] = ptr_[j * dp_ + p];
}

template class TransposedWeights<float>;
template class TransposedWeights<double>;

}  // namespace softmax_epoch_detail

template <typename T>
std::int64_t softmax_regression_epoch_fused(const DataMatrix<T>& X, const std::int64_t* y, T* theta,
                                            std::int64_t k, T lr, std::int64_t batch,
                                            const StopRequested& stop_requested) {
    const Kernels<T> kern = kernels_for<T>(active_isa());
    const std::int64_t n = X.rows, d = X.cols;
    TransposedWeights<T> theta_t(theta, d, k);   // Θᵀ for the epoch; written back at the end
    const std::int64_t dp = theta_t.stride();
    std::vector<T> Z(static_cast<std::size_t>(std::min(batch, n) * k + kGradientSpare));

    std::int64_t start = 0;
    for (; start < n; start += batch) {
        if (stop_requested && stop_requested()) break;
        const std::int64_t B = std::min(batch, n - start);
        const T* Xb = X.data + start * X.ld;
        const std::int64_t next_rows = std::min(batch, n - start - B);
        // the next batch's rows, pulled into L2 half during each kernel
        RangePrefetch next;
        if (next_rows > 0) next = RangePrefetch(Xb + B * X.ld, ((next_rows - 1) * X.ld + d) * static_cast<std::int64_t>(sizeof(T)));
        kern.logits(Xb, X.ld, B, d, theta_t.data(), dp, k, Z.data(), next, next.lines_left() / 2);   // Z = Xb Θ
        kern.gradient(Z.data(), B, k, y + start, -lr / static_cast<T>(B));   // −lr (S − I_y)/B
        kern.update(Xb, X.ld, B, d, Z.data(), k, theta_t.data(), dp, next);   // Θ += −lr Xbᵀ (S − I_y)/B
    }
    theta_t.write_back();
    return std::min(start, n);
}

template std::int64_t softmax_regression_epoch_fused<float>(const DataMatrix<float>&, const std::int64_t*,
                                                            float*, std::int64_t, float, std::int64_t,
                                                            const StopRequested&);
template std::int64_t softmax_regression_epoch_fused<double>(const DataMatrix<double>&, const std::int64_t*,
                                                             double*, std::int64_t, double, std::int64_t,
                                                             const StopRequested&);

}  // namespace fastnn
