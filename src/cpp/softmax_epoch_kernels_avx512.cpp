// The fused softmax-epoch kernels for avx512 (64-byte vectors); see softmax_epoch_kernels.hpp.
#define FASTNN_VECTOR_BYTES 64
#include "softmax_epoch_kernels.hpp"

namespace fastnn::softmax_epoch_detail {
Kernels<float> avx512_kernels_f32() { return kernels<float>(); }
Kernels<double> avx512_kernels_f64() { return kernels<double>(); }
}  // namespace fastnn::softmax_epoch_detail
