// The active ISA's optimizer update loops (see optimizers.hpp).
#include "cpu_features.hpp"
#include "optimizers.hpp"

namespace fastnn {

using namespace optimizer_detail;

template <>
UpdateKernels<float> update_kernels<float>() {
    switch (active_isa()) {
        case Isa::avx512: return avx512_update_kernels_f32();
        case Isa::avx2: return avx2_update_kernels_f32();
        default: return generic_update_kernels_f32();
    }
}

template <>
UpdateKernels<double> update_kernels<double>() {
    switch (active_isa()) {
        case Isa::avx512: return avx512_update_kernels_f64();
        case Isa::avx2: return avx2_update_kernels_f64();
        default: return generic_update_kernels_f64();
    }
}

}  // namespace fastnn
