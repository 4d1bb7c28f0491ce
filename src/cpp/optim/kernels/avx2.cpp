// The optimizers' update loops (optimizers.hpp) compiled for avx2.
#include "optim/optimizers.hpp"

namespace fastnn::optimizer_detail {
UpdateKernels<float> avx2_update_kernels_f32() { return {&sgd_update<float>, &adam_update<float>, &column_squares<float>}; }
UpdateKernels<double> avx2_update_kernels_f64() { return {&sgd_update<double>, &adam_update<double>, &column_squares<double>}; }
}  // namespace fastnn::optimizer_detail
