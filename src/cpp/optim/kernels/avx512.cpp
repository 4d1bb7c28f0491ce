// The optimizers' update loops (optimizers.hpp) compiled for avx512.
#include "optim/optimizers.hpp"

namespace fastnn::optimizer_detail {
UpdateKernels<float> avx512_update_kernels_f32() { return {&sgd_update_flushed<float>, &adam_update_flushed<float>}; }
UpdateKernels<double> avx512_update_kernels_f64() { return {&sgd_update_flushed<double>, &adam_update_flushed<double>}; }
}  // namespace fastnn::optimizer_detail
