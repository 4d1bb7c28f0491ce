#include "gemm/probe.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "gemm/gemm_kernels.hpp"
#include "runtime/threads.hpp"

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
    double sink = 0;
    auto run = [&](std::int64_t iterations) {   // flops done; 0: ISA not compiled in (non-x86 build)
        switch (isa) {
            case Isa::avx512: return gemm_detail::avx512_fma_chains(dbl, iterations, &sink);
            case Isa::avx2: return gemm_detail::avx2_fma_chains(dbl, iterations, &sink);
            default: return gemm_detail::generic_fma_chains(dbl, iterations, &sink);
        }
    };
    const double best = probe_detail::best_gflops(run, 1 << 16, seconds);
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

double probe_core_to_core_ns(double seconds) {
    HandOverLine line;   // (HandOverLine::await yields after a while: on one CPU the other thread runs)
    std::thread answer([&] { line.answer_until_stopped(); });
    struct JoinOnExit {   // the answering thread stops and is joined however this function ends
        std::thread& thread;
        HandOverLine& line;
        ~JoinOnExit() {
            line.stop();   // (between hand-overs: the answering thread waits for the next one)
            thread.join();
        }
    } join_on_exit{answer, line};
    constexpr std::int64_t kBatch = 2000;
    // At least 3 batches, but never past 4x the time asked (on one CPU a round trip can take a
    // time slice): a batch cut short counts the round trips it made.
    const auto start = Clock::now();
    auto out_of_time = [&] { return seconds_since(start) >= 4 * seconds; };
    std::vector<double> batches;
    std::int64_t n = 0;
    do {
        const auto t0 = Clock::now();
        std::int64_t done = 0;
        while (done < kBatch) {
            line.ask(n);
            ++n;
            ++done;
            if (done % 64 == 0 && out_of_time()) break;
        }
        batches.push_back(seconds_since(t0) / static_cast<double>(done) * 1e9);
    } while ((batches.size() < 3 || seconds_since(start) < seconds) && !out_of_time());
    std::sort(batches.begin(), batches.end());
    return batches[batches.size() / 2];
}

}  // namespace fastnn
