// Small hardware probes for the benchmark harness: what the core's GEMM numbers should
// be compared against.
#pragma once

#include <cstddef>

#include "cpu_features.hpp"

namespace fastnn {

// Single-thread peak of fused multiply-adds in GFLOP/s (1 FMA = 2 flops) with the vector
// width of `isa` (float if !dbl, double if dbl), measured for about `seconds`.  Throws
// std::invalid_argument if `isa` is above detected_isa().  For Isa::generic it measures
// multiply + add on the baseline target.
double probe_fma_peak_gflops(Isa isa, bool dbl, double seconds = 0.2);

// Single-thread streaming read bandwidth in GB/s (1e9 bytes/s) over a buffer of `bytes`
// bytes (choose it much larger than the last-level cache), measured for about `seconds`.
double probe_read_bandwidth_gbs(std::size_t bytes = std::size_t(512) << 20, double seconds = 0.5);

// Single-thread GFLOP/s of the active ISA's float GEMM micro-kernel with all its operands in L1
// (one register tile, depth 256, called over and over; defined in gemm.cpp): the ceiling of
// every GEMM on this core, below the FMA peak by what the kernel's loads cost.
double probe_micro_kernel_gflops(double seconds = 0.2);

}  // namespace fastnn
