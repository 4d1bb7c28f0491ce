// ReLU, element-wise on row-major matrices: H = max(Z, 0).
// The epoch loops fuse it, and its backward mask G ← G ∘ 1{H > 0}, into the GEMM epilogues
// (Epilogue::relu / relu_mask); this stand-alone version serves the `relu` building block.
#pragma once

#include <cstdint>

namespace fastnn {

template <typename T>
void relu_forward(const T* Z, std::int64_t ldz, std::int64_t rows, std::int64_t cols,
                  T* H, std::int64_t ldh) {
    for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j) {
            const T z = Z[i * ldz + j];
            H[i * ldh + j] = (z > T(0) || z != z) ? z : T(0);   // NaN propagates, as np.maximum
        }
}

}  // namespace fastnn
