// Small hardware probes for the benchmark harness: what the core's GEMM numbers should
// be compared against.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

#include "runtime/cpu_features.hpp"

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

// Round trip of one cache line between two threads, in nanoseconds: one thread stores a count,
// the other, spinning on it, stores the next, and so on; the median over batches of 2000 round
// trips, measured for about `seconds`. It is what two threads of a team pay each time one reads
// what the other wrote -- the batches' hand-overs of a multi-threaded epoch -- and it depends on
// where the two threads run: cores that share a cache answer in tens of nanoseconds, cores that
// do not (another CCD, another socket, vCPUs the hypervisor placed far apart) in hundreds.
// Meant for a process with two CPUs or more; with one, each hand-over waits for the scheduler
// (the spinning thread yields after a while), and the figure says so.
double probe_core_to_core_ns(double seconds = 0.1);

namespace probe_detail {

// GFLOP/s of run(iterations) -- which does the work and returns the floating-point operations
// it did (0: nothing to measure here) -- as the best of runs of at least 1 ms (`iterations`
// doubled until they take that long) after a 20 ms warm-up (clock ramp, AVX-512 licence), for
// about `seconds`.
template <typename Run>
double best_gflops(Run&& run, std::int64_t iterations, double seconds) {
    using Clock = std::chrono::steady_clock;
    auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
    for (const auto start = Clock::now(); since(start) < 0.02;) run(iterations);
    double best = 0;
    for (const auto start = Clock::now(); since(start) < seconds;) {
        const auto t0 = Clock::now();
        const double flops = run(iterations);
        const double dt = since(t0);
        if (flops == 0) break;
        if (dt < 1e-3) {
            iterations *= 2;
            continue;
        }
        best = std::max(best, flops / dt * 1e-9);
    }
    return best;
}

}  // namespace probe_detail

}  // namespace fastnn
