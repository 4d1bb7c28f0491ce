// The tiling of a transpose into register blocks, for the ISA files' transpose_f32 (included by
// avx2.cpp and avx512.cpp; in an anonymous namespace, like their kernels, so that each file's copy
// is compiled with its own instruction set and never shared with another's).
#pragma once

#include <cstdint>

namespace fastnn::gemm_detail {
namespace {

// dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols, in blocks of up to B × B:
// block(src', lds, nr, nc, dst', ldd) transposes nr rows × nc columns (nr, nc <= B) starting at
// src', writing column q's nr values at dst' + q·ldd.
template <int B, typename T, typename Block>
void transpose_in_blocks(const T* src, std::int64_t lds, std::int64_t rows, std::int64_t cols, T* dst,
                         std::int64_t ldd, const Block& block) {
    for (std::int64_t i0 = 0; i0 < rows; i0 += B) {
        const int nr = static_cast<int>(rows - i0 < B ? rows - i0 : B);
        for (std::int64_t j0 = 0; j0 < cols; j0 += B)
            block(src + i0 * lds + j0, lds, nr, static_cast<int>(cols - j0 < B ? cols - j0 : B), dst + j0 * ldd + i0,
                  ldd);
    }
}

}  // namespace
}  // namespace fastnn::gemm_detail
