// Single- and double-precision matrix multiply (GEMM) for the fastnn core.
//
// Row-major.  C[m×n] = epi( alpha * op(A) · op(B) + beta * C )
//   op(A) is m×k: A stored m×k (row stride lda) when opA==N, stored k×m (row stride lda) when opA==T.
//   op(B) is k×n: B stored k×n (ldb) when opB==N, stored n×k (ldb) when opB==T.
//   beta == 0 means C is write-only (never read: NaN/garbage in C does not propagate).
//   k == 0 (or alpha == 0) gives C = epi(beta*C) (beta == 0 -> zeros); A and B are not read.
//   m == 0 or n == 0: nothing.
//   Epilogue::relu:      C = max(result, 0)   (NaN stays NaN, -0 stays -0: result < 0 ? 0 : result)
//   Epilogue::relu_mask: C = (mask[i*ldmask+j] > 0) ? result : 0   (backprop through a ReLU;
//                        mask = the layer's ReLU output, m×n, row stride ldmask)
//   The epilogue is applied exactly once per element, after the full k sum.
//   No transposes are materialised; lda/ldb/ldc may exceed the logical width (views);
//   no alignment is assumed.  C must not overlap A, B or mask.
//   blocking_n > 0: block k, and choose between the blocked and the narrow-output paths, as for a
//   product of blocking_n columns.  Both decide how each sum is grouped, so one column panel of a
//   product (a thread's own gemm call, a 16-column panel of W_1) passes the whole product's n to
//   get exactly the whole product's bits for its columns.
//
// The implementation (gemm.cpp) is a BLIS-style blocked algorithm whose micro-kernel is
// chosen at run time (see cpu_features.hpp).  Results are deterministic: the summation
// order of every C element depends neither on the thread count nor on the run, only on
// the shape and the active ISA.
#pragma once

#include <cstdint>

namespace fastnn {

enum class Op : char { N = 'N', T = 'T' };
enum class Epilogue : char { none, relu, relu_mask };

// Memory that a caller will need next (e.g. the next batch's rows): the blocked paths pull it
// into L2 while the product runs, a few cache lines per micro-kernel call, each thread an equal
// share in order -- spread out, so that the product's own loads never wait behind it. A hint
// only: the dot path ignores it, and it never changes a result.
struct PrefetchRange {
    const void* data = nullptr;
    std::int64_t bytes = 0;
};

template <typename T>
void gemm(Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k,
          T alpha, const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
          T beta, T* C, std::int64_t ldc,
          Epilogue epi = Epilogue::none, const T* mask = nullptr, std::int64_t ldmask = 0,
          PrefetchRange ahead = {}, std::int64_t blocking_n = 0);

// NR of the active ISA's micro-kernel for T: the width of C's register tiles and of op(B)'s packed
// micro-panels (AVX-512 float 32, AVX2 float 16). A k×NR block of B stored contiguously (row stride
// NR) is read by the micro-kernel exactly as a packed micro-panel, without packing: the layout the
// epochs keep W_1 in (train_epoch.cpp, ColumnPanels).
template <typename T>
std::int64_t gemm_tile_columns();

// Does gemm read a row-major op(A) = A of m × k (row stride lda) in place, row by row, rather than
// pack it for each call? (AVX-512 and AVX2 float, where A is small and its stride spares the L1
// sets.) A product split into many calls along n (the strips of W_1) packs A again for each call
// where it does not.
template <typename T>
bool gemm_reads_rows_in_place(std::int64_t m, std::int64_t k, std::int64_t lda);

// Naive triple loop with the same contract: the reference the tests compare against.
template <typename T>
void gemm_reference(Op opA, Op opB, std::int64_t m, std::int64_t n, std::int64_t k,
                    T alpha, const T* A, std::int64_t lda, const T* B, std::int64_t ldb,
                    T beta, T* C, std::int64_t ldc,
                    Epilogue epi = Epilogue::none, const T* mask = nullptr, std::int64_t ldmask = 0);

extern template void gemm<float>(Op, Op, std::int64_t, std::int64_t, std::int64_t, float,
                                 const float*, std::int64_t, const float*, std::int64_t, float,
                                 float*, std::int64_t, Epilogue, const float*, std::int64_t,
                                 PrefetchRange, std::int64_t);
extern template void gemm<double>(Op, Op, std::int64_t, std::int64_t, std::int64_t, double,
                                  const double*, std::int64_t, const double*, std::int64_t, double,
                                  double*, std::int64_t, Epilogue, const double*, std::int64_t,
                                  PrefetchRange, std::int64_t);
extern template void gemm_reference<float>(Op, Op, std::int64_t, std::int64_t, std::int64_t, float,
                                           const float*, std::int64_t, const float*, std::int64_t,
                                           float, float*, std::int64_t, Epilogue, const float*,
                                           std::int64_t);
extern template void gemm_reference<double>(Op, Op, std::int64_t, std::int64_t, std::int64_t,
                                            double, const double*, std::int64_t, const double*,
                                            std::int64_t, double, double*, std::int64_t, Epilogue,
                                            const double*, std::int64_t);

}  // namespace fastnn
