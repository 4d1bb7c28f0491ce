// The fused softmax-epoch kernels for generic (16-byte vectors); see softmax_epoch_kernels.hpp.
#define FASTNN_VECTOR_BYTES 16
#include "epochs/softmax_epoch_kernels.hpp"

namespace fastnn::softmax_epoch_detail {
Kernels<float> generic_kernels_f32() { return kernels<float>(); }
Kernels<double> generic_kernels_f64() { return kernels<double>(); }
}  // namespace fastnn::softmax_epoch_detail
