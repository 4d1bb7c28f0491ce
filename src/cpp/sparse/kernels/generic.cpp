// The sparse × dense kernels for generic (16-byte vectors); see sparse_kernels.hpp.
#define FASTNN_VECTOR_BYTES 16
#include "sparse/sparse_kernels.hpp"

namespace fastnn::sparse_detail {
Kernels<float> generic_kernels_f32() { return {rows_kernel<float>, rows_blocked_kernel<float>, kLanes<float>, compact_row_f32<float>, count_row_f32, gather_block<float>, kMaxVectors, kGatherMinPassVectors}; }
Kernels<double> generic_kernels_f64() { return {rows_kernel<double>, rows_blocked_kernel<double>, kLanes<double>, compact_row_f32<double>, count_row_f32, gather_block<double>, kMaxVectors, kGatherMinPassVectors}; }
}  // namespace fastnn::sparse_detail
