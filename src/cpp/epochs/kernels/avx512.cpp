// The fused softmax-epoch kernels for avx512 (64-byte vectors); see softmax_epoch_kernels.hpp.
#define FASTNN_VECTOR_BYTES 64

#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized on their own _mm512_undefined_*()
// placeholders (GCC bug 105593, fixed in GCC 13), as in gemm/kernels/avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include "epochs/softmax_epoch_kernels.hpp"

namespace fastnn::softmax_epoch_detail {
Kernels<float> avx512_kernels_f32() { return kernels<float>(); }
Kernels<double> avx512_kernels_f64() { return kernels<double>(); }
}  // namespace fastnn::softmax_epoch_detail
