#include "probe.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>

#include "gemm_kernels.hpp"

namespace fastnn {

namespace {
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

volatile double g_probe_sink = 0;  // keeps the probes' results observable
}  // namespace

double probe_fma_peak_gflops(Isa isa, bool dbl, double seconds) {
    if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
        throw std::invalid_argument(std::string("probe_fma_peak_gflops: ") + isa_name(isa) +
                                    " is not supported by this CPU");
    auto run = [&](std::int64_t iterations, double* sink) {
        switch (isa) {
            case Isa::avx512: return gemm_detail::avx512_fma_chains(dbl, iterations, sink);
            case Isa::avx2: return gemm_detail::avx2_fma_chains(dbl, iterations, sink);
            default: return gemm_detail::generic_fma_chains(dbl, iterations, sink);
        }
    };
    double sink = 0;
    // Warm up (clock ramp, AVX-512 license transition), then take the best of short runs.
    std::int64_t iterations = 1 << 16;
    auto start = Clock::now();
    while (seconds_since(start) < 0.02) run(iterations, &sink);
    double best = 0;
    start = Clock::now();
    while (seconds_since(start) < seconds) {
        const auto t0 = Clock::now();
        const double flops = run(iterations, &sink);
        const double dt = seconds_since(t0);
        if (flops == 0) break;  // ISA not compiled in (non-x86 build)
        if (dt < 1e-3) {
            iterations *= 2;
            continue;
        }
        best = std::max(best, flops / dt * 1e-9);
    }
    g_probe_sink = g_probe_sink + sink;
    return best;
}

double probe_read_bandwidth_gbs(std::size_t bytes, double seconds) {
    bytes = std::max<std::size_t>(bytes / 4096 * 4096, 4096);
    float* data = static_cast<float*>(std::aligned_alloc(4096, bytes));
    if (data == nullptr) throw std::bad_alloc();
    for (std::size_t i = 0; i < bytes / sizeof(float); ++i) data[i] = 1.0f;  // fault pages in
    const Isa isa = active_isa();
    auto read = [&] {
        switch (isa) {
            case Isa::avx512: return gemm_detail::avx512_read_sum(data, bytes);
            case Isa::avx2: return gemm_detail::avx2_read_sum(data, bytes);
            default: return gemm_detail::generic_read_sum(data, bytes);
        }
    };
    double sink = read();  // warm-up pass
    double best = 0;
    const auto start = Clock::now();
    int passes = 0;
    while (passes < 2 || seconds_since(start) < seconds) {
        const auto t0 = Clock::now();
        sink += read();
        best = std::max(best, double(bytes) / seconds_since(t0) * 1e-9);
        ++passes;
    }
    std::free(data);
    g_probe_sink = g_probe_sink + sink;
    return best;
}

}  // namespace fastnn
