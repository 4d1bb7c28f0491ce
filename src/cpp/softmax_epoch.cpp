// The fused softmax-regression epoch loop (see softmax_epoch.hpp); the vector kernels it calls
// are chosen by the active ISA.
#include "softmax_epoch.hpp"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "cpu_features.hpp"
#include "softmax_cross_entropy.hpp"

namespace fastnn {
namespace {

using namespace softmax_epoch_detail;

template <typename T>
Kernels<T> kernels_for(Isa isa);

template <>
Kernels<float> kernels_for<float>(Isa isa) {
    switch (isa) {
        case Isa::avx512: return avx512_kernels_f32();
        case Isa::avx2: return avx2_kernels_f32();
        default: return generic_kernels_f32();
    }
}

template <>
Kernels<double> kernels_for<double>(Isa isa) {
    switch (isa) {
        case Isa::avx512: return avx512_kernels_f64();
        case Isa::avx2: return avx2_kernels_f64();
        default: return generic_kernels_f64();
    }
}

// Θᵀ (k × dp) ← Θ (d × k), and back.
template <typename T>
void transpose_in(const T* theta, std::int64_t d, std::int64_t k, T* theta_t, std::int64_t dp) {
    for (std::int64_t p = 0; p < d; ++p)
        for (std::int64_t j = 0; j < k; ++j) theta_t[j * dp + p] = theta[p * k + j];
}

template <typename T>
void transpose_out(const T* theta_t, std::int64_t dp, std::int64_t d, std::int64_t k, T* theta) {
    for (std::int64_t p = 0; p < d; ++p)
        for (std::int64_t j = 0; j < k; ++j) theta[p * k + j] = theta_t[j * dp + p];
}

}  // namespace

template <typename T>
std::int64_t softmax_regression_epoch_fused(const DataMatrix<T>& X, const std::int64_t* y, T* theta,
                                            std::int64_t k, T lr, std::int64_t batch,
                                            const StopRequested& stop_requested) {
    const Kernels<T> kern = kernels_for<T>(active_isa());
    const std::int64_t n = X.rows, d = X.cols;
    // Θᵀ rows start on 64-byte boundaries: no vector load or store of Θᵀ splits a cache line.
    constexpr std::int64_t line = 64 / sizeof(T);
    const std::int64_t dp = (d + line - 1) / line * line;
    std::vector<T> storage(static_cast<std::size_t>(k * dp + line));
    T* const theta_t = storage.data() + (line - (reinterpret_cast<std::uintptr_t>(storage.data()) / sizeof(T)) % line) % line;
    std::vector<T> Z(static_cast<std::size_t>(std::min(batch, n) * k));
    transpose_in(theta, d, k, theta_t, dp);

    std::int64_t start = 0;
    for (; start < n; start += batch) {
        if (stop_requested && stop_requested()) break;
        const std::int64_t B = std::min(batch, n - start);
        const T* Xb = X.data + start * X.ld;
        const T* next = Xb + B * X.ld;   // prefetched during the update
        const std::int64_t next_rows = std::min(batch, n - start - B);
        kern.logits(Xb, X.ld, B, d, theta_t, dp, k, Z.data());                    // Z = Xb Θ
        softmax_cross_entropy_rows(Z.data(), k, y + start, B, k, -lr / static_cast<T>(B), Z.data(), k);
        kern.update(Xb, X.ld, B, d, Z.data(), k, theta_t, dp, next, next_rows);  // Θ −= lr Xbᵀ (S − I_y)/B
    }
    transpose_out(theta_t, dp, d, k, theta);
    return std::min(start, n);
}

template std::int64_t softmax_regression_epoch_fused<float>(const DataMatrix<float>&, const std::int64_t*,
                                                            float*, std::int64_t, float, std::int64_t,
                                                            const StopRequested&);
template std::int64_t softmax_regression_epoch_fused<double>(const DataMatrix<double>&, const std::int64_t*,
                                                             double*, std::int64_t, double, std::int64_t,
                                                             const StopRequested&);

}  // namespace fastnn
