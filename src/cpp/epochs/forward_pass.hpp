// The steps every epoch loop and evaluation shares (mlp.cpp, train_epoch.cpp): fetching a
// batch's rows as T, the forward pass of an L-layer ReLU net, and how the work after the first
// layer is shared among the threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "gemm/gemm.hpp"
#include "epochs/mlp.hpp"   // DataMatrix
#include "runtime/prefetch.hpp"
#include "runtime/threads.hpp"

namespace fastnn::forward_pass {

// Past the first layer, the batch's rows (and the later weights' rows, the biases' columns) go
// to the threads in chunks of this fixed size: which thread takes a chunk never changes a
// result, and every sum over rows runs in order inside one chunk (the loss: chunk by chunk, in
// order). The first layer's products are threaded inside the GEMM instead.
constexpr std::int64_t kRowChunk = 32;
// Below this many multiply-adds per batch in those layers, they run on one thread.
constexpr std::int64_t kSplitMinWork = 1 << 16;

// f(c, lo, hi) for the chunks [lo, hi) of [0, n), on the threads when `parallel`.
template <typename F>
void for_chunks(std::int64_t n, std::int64_t chunk, bool parallel, F&& f) {
    const std::int64_t chunks = (n + chunk - 1) / chunk;
    const int nthreads =
        parallel && chunks > 1 ? static_cast<int>(std::min<std::int64_t>(get_num_threads(), chunks)) : 1;
    run_region(nthreads, [&] {
#if defined(_OPENMP)
#pragma omp for schedule(static)
#endif
        for (std::int64_t c = 0; c < chunks; ++c) f(c, c * chunk, std::min(n, (c + 1) * chunk));
    });
}

// Values of a batch below which one thread gathers or widens it (batch_rows).
constexpr std::int64_t kGatherSplitMin = 1 << 15;
// batch_rows copies this many rows at once and prefetches this many lines of each of the next.
constexpr std::int64_t kGatherRows = 4, kGatherAheadLines = 8;

// Can batch_rows read a batch's rows in place: no order, X already of type T?
template <typename T, typename TX>
bool batch_in_place(const std::int64_t* order) {
    return std::is_same_v<T, TX> && order == nullptr;
}

// Rows of one batch as T: entries start … start + B − 1 of `order` (null: rows start … start+B−1).
// When the rows can be read in place (batch_in_place) this returns a pointer into X (ld = X's row
// stride); otherwise they are gathered and/or widened into `x` (B × X.cols, allocated by the
// caller) and ld = X.cols.
template <typename T, typename TX>
const T* batch_rows(const DataMatrix<TX>& X, const std::int64_t* order, std::int64_t start,
                    std::int64_t B, std::vector<T>& x, std::int64_t& ld) {
    if constexpr (std::is_same_v<T, TX>) {   // (X.data is a const T* only then)
        if (batch_in_place<T, TX>(order)) {
            ld = X.ld;
            return X.data + start * X.ld;
        }
    }
    // A share of the rows per thread where the batch is large enough: the copy is bound by memory
    // (a shuffled batch's rows come from all over X), and the threads read the rows anyway.
    // scikit-learn-style estimators (Adam, batch 200, shuffled), standardized MNIST, 2 threads, Intel
    // Xeon family 6 model 207: epochs new/old 784-100-10 0.920, 784-400-10 0.959 (1 thread: 1.000).
    // Each thread copies kGatherRows rows at once, a cache line of each in turn, so that as many
    // rows stream from memory together, and prefetches the first kGatherAheadLines lines of each
    // of the next kGatherRows rows (in a shuffled order) before copying these. One row at a time,
    // each row's first lines waited on DRAM before the hardware prefetcher took up its stream.
    // Measured on an Intel Xeon family 6 model 167, the estimators' epochs (Adam, batch 200,
    // shuffled, standardized MNIST), new/old alternating: 784-100-10 0.93-0.96 on 1 thread, 0.97
    // on 2; 784-400-10 0.97 and 0.98. (2 rows at once: 1.04 and 1.01 against 4; 8: 0.99 and
    // 1.01; 0, 2, 4, 8 or 16 lines ahead: within the noise of each other, 0 the slowest.)
    const int threads = B * X.cols >= kGatherSplitMin ? get_num_threads() : 1;
    for_chunks(B, (B + threads - 1) / threads, threads > 1, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
        auto source = [&](std::int64_t r) { return X.data + (order ? order[start + r] : start + r) * X.ld; };
        constexpr std::int64_t line = 64 / static_cast<std::int64_t>(sizeof(TX));
        const std::int64_t ahead_bytes = std::min(64 * kGatherAheadLines, X.cols * static_cast<std::int64_t>(sizeof(TX)));
        std::int64_t r = r0;
        for (; r + kGatherRows <= r1; r += kGatherRows) {
            const TX* src[kGatherRows];
            T* dst[kGatherRows];
            for (std::int64_t i = 0; i < kGatherRows; ++i) {
                src[i] = source(r + i);
                dst[i] = x.data() + (r + i) * X.cols;
            }
            if (order)
                for (std::int64_t i = r + kGatherRows; i < std::min(r1, r + 2 * kGatherRows); ++i)
                    prefetch_lines(source(i), ahead_bytes, PrefetchHint::l1);
            for (std::int64_t c0 = 0; c0 < X.cols; c0 += line) {
                const std::int64_t c1 = std::min(X.cols, c0 + line);
                for (std::int64_t i = 0; i < kGatherRows; ++i)
                    for (std::int64_t c = c0; c < c1; ++c) dst[i][c] = static_cast<T>(src[i][c]);
            }
        }
        for (; r < r1; ++r) {
            const TX* src = source(r);
            T* dst = x.data() + r * X.cols;
            for (std::int64_t c = 0; c < X.cols; ++c) dst[c] = static_cast<T>(src[c]);
        }
    });
    ld = X.cols;
    return x.data();
}

// One layer of B rows: out = act(in W + b), act = ReLU when `relu`, else the identity; W and out
// have row stride d_out unless ld_w / ld_out say otherwise (a first layer with rows padded to whole
// cache lines); blocking_n as gemm's (a column panel of a wider layer). A bias (optional: null means none) is broadcast into the output first and the GEMM
// accumulates onto it (beta = 1); the ReLU is fused into the GEMM's epilogue.
template <typename T>
void layer(const T* in, std::int64_t ld_in, std::int64_t B, const T* W, const T* bias, std::int64_t d_in,
           std::int64_t d_out, T* out, bool relu, std::int64_t ld_w = 0, std::int64_t ld_out = 0,
           std::int64_t blocking_n = 0) {
    if (ld_w == 0) ld_w = d_out;
    if (ld_out == 0) ld_out = d_out;
    if (bias)
        for (std::int64_t r = 0; r < B; ++r) std::copy(bias, bias + d_out, out + r * ld_out);
    gemm<T>(Op::N, Op::N, B, d_out, d_in, T(1), in, ld_in, W, ld_w, bias ? T(1) : T(0), out, ld_out,
            relu ? Epilogue::relu : Epilogue::none, nullptr, 0, {}, blocking_n);
}

// Forward pass of B rows through layers first … L (1-based; `in` is H_{first-1}):
// H_i = ReLU(H_{i-1} W_i + b_i) into H[i] (i < L), and Z = H_{L-1} W_L + b_L into `logits`
// (row stride d_L). `b` null, or a null entry, means no bias. H[i] holds B × d_i values.
template <typename T, typename Buffers>
void forward(const T* in, std::int64_t ld_in, std::int64_t B, const std::vector<T*>& W,
             const std::vector<T*>* b, const std::vector<std::int64_t>& d,
             Buffers& H, T* logits, std::int64_t first = 1) {
    const std::int64_t L = static_cast<std::int64_t>(W.size());
    for (std::int64_t i = first; i <= L; ++i) {
        const bool last = i == L;
        T* out = last ? logits : H[i].data();
        layer<T>(in, ld_in, B, W[i - 1], b ? (*b)[i - 1] : nullptr, d[i - 1], d[i], out, !last);
        in = out;
        ld_in = d[i];
    }
}

}  // namespace fastnn::forward_pass
