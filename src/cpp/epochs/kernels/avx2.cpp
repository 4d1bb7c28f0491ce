// The fused softmax-epoch kernels for avx2 (32-byte vectors); see softmax_epoch_kernels.hpp.
#define FASTNN_VECTOR_BYTES 32
#include "epochs/softmax_epoch_kernels.hpp"

namespace fastnn::softmax_epoch_detail {
Kernels<float> avx2_kernels_f32() { return kernels<float>(); }
Kernels<double> avx2_kernels_f64() { return kernels<double>(); }
}  // namespace fastnn::softmax_epoch_detail
