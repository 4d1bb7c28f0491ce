// The active ISA's optimizer update loops (see optimizers.hpp).
#include "runtime/cpu_features.hpp"
#include "optim/optimizers.hpp"

namespace fastnn {

using namespace optimizer_detail;

template <>
UpdateKernels<float> update_kernels<float>() {
    return for_isa(active_isa(), generic_update_kernels_f32, avx2_update_kernels_f32, avx512_update_kernels_f32);
}

template <>
UpdateKernels<double> update_kernels<double>() {
    return for_isa(active_isa(), generic_update_kernels_f64, avx2_update_kernels_f64, avx512_update_kernels_f64);
}

}  // namespace fastnn
