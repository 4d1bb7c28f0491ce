// ReLU and its backward mask, element-wise on row-major matrices.
//   forward:  H = max(Z, 0)
//   backward: G ← G ∘ 1{H > 0}        (H the forward output; 1{Z>0} = 1{H>0})
// The epoch loops fuse both into the GEMM epilogues (Epilogue::relu / relu_mask); these
// stand-alone versions serve the `relu` building block.
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

template <typename T>
void relu_backward_mask(const T* H, std::int64_t ldh, std::int64_t rows, std::int64_t cols,
                        T* G, std::int64_t ldg) {
    for (std::int64_t i = 0; i < rows; ++i)
        for (std::int64_t j = 0; j < cols; ++j)
            if (!(H[i * ldh + j] > T(0))) G[i * ldg + j] = T(0);
}

}  // namespace fastnn
