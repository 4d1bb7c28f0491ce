// Batches of a dense X compacted to CSR, for the epochs that skip X's zeros (train_epoch.cpp's
// CompactedInput).
//
// Each batch's rows (entries start … start + B − 1 of `order`, or rows start … when it is null)
// are counted, then compacted: the count reads a row from memory once, the compaction finds it in
// cache, as a GEMM's packing would read it. Rows are compacted in chunks, each chunk's rows
// contiguous with kSpare entries after each chunk, so a row's whole-vector stores past its end
// (compact_row) land on the next row of the same chunk (compacted after it) or on the spare. The
// buffers grow to the largest batch seen and are reused: nothing is allocated per batch once they
// have. Values are converted to T.
//
// Who compacts: one thread for a small batch; on 2 threads each thread compacts the whole batch
// into a copy of its own (copies(): the first layer's products on column panels read thread t's
// copy on thread t); on more, the threads share one copy, a chunk of rows each. Every thread
// reads every row of the batch in the first layer (its panel's columns of all rows), so a shared
// copy's lines are in both cores' caches when the next batch overwrites them, and a store to a
// line another core holds waits for that core to drop it. Measured on the 2-vCPU Zen 4 (raw
// MNIST, 784-400-10, batch 100): a thread compacted its half of the batch into the shared copy in
// 11 ms per epoch, a thread compacting the whole batch into a copy of its own took 7.3 ms (1
// thread, whole batch: 6.5 ms). On T threads a copy each costs every thread the whole batch, a
// shared copy a T-th of it at that rate: copies pay up to 2 threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "epochs/forward_pass.hpp"   // for_chunks, DataMatrix
#include "runtime/threads.hpp"      // get_num_threads, run_team
#include "sparse/sparse_rows.hpp"

namespace fastnn {

template <typename T, typename TX>
class CompactedBatches {
public:
    CompactedBatches(const DataMatrix<TX>& X, const std::int64_t* order, std::int64_t n_order, std::int64_t max_rows)
        : X_(X), order_(order), n_order_(n_order), max_rows_(max_rows) {}

    // Compacts the batch: copies() identical copies (valid until the next fetch), views()[c] the
    // one thread c compacted (and reads fastest).
    void fetch(std::int64_t start, std::int64_t B) {
        const int threads = B * X_.cols >= kCompactSplitMin ? get_num_threads() : 1;
        const int copies = threads > 1 && threads <= kOwnCopyMaxThreads ? threads : 1;
        if (copies_.size() < static_cast<std::size_t>(copies)) copies_.resize(static_cast<std::size_t>(copies));
        views_.resize(static_cast<std::size_t>(copies));
        if (copies > 1) {
            run_team(copies, [&](int tid, int team) {
                for (int c = tid; c < copies; c += team) views_[at(c)] = compact(copies_[at(c)], start, B, 1);
            });
        } else {
            // One chunk per thread: thread t takes about rows B·t/T … B·(t+1)/T − 1, the share
            // of the batch it prefetched as the previous batch's `ahead` (sparse_rows.cpp).
            views_[0] = compact(copies_[0], start, B, threads);
        }
        next_start_ = start + B;
    }
    int copies() const { return static_cast<int>(views_.size()); }
    const SparseRowsView<T>* views() const { return views_.data(); }

    // The rows of the batch after the last one fetched, to prefetch into L2 while it is processed.
    RowPrefetch next_batch() const {
        return {std::max<std::int64_t>(0, std::min(max_rows_, n_order_ - next_start_)), &prefetch_row, this};
    }

private:
    static constexpr std::int64_t kSpare = 16;                  // entries after each chunk (compact_row)
    static constexpr std::int64_t kCompactSplitMin = 1 << 14;   // values per batch below which one thread compacts
    static constexpr int kOwnCopyMaxThreads = 2;                // up to this many threads: a copy each

    struct Copy {
        std::vector<std::int64_t> begin, end;
        std::vector<std::int32_t> indices;
        std::vector<T> values;
    };

    static std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

    // The batch into `copy`, in one chunk per thread of `threads` (1: on the calling thread).
    SparseRowsView<T> compact(Copy& copy, std::int64_t start, std::int64_t B, int threads) const {
        const std::int64_t chunk = (B + threads - 1) / threads;
        const bool parallel = threads > 1;
        if (copy.begin.size() < at(B)) {
            copy.begin.resize(at(max_rows_));
            copy.end.resize(at(max_rows_));
        }
        auto row = [&](std::int64_t r) { return X_.data + (order_ ? order_[start + r] : start + r) * X_.ld; };
        forward_pass::for_chunks(B, chunk, parallel, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r) copy.end[at(r)] = count_nonzeros(row(r), X_.cols);
        });
        std::int64_t next = 0;
        for (std::int64_t r = 0; r < B; ++r) {
            copy.begin[at(r)] = next;
            next += copy.end[at(r)];
            copy.end[at(r)] = next;
            if (r % chunk == chunk - 1 || r == B - 1) next += kSpare;
        }
        if (copy.indices.size() < at(next)) {   // grows to the largest batch seen, never shrinks
            copy.indices.resize(at(next));
            copy.values.resize(at(next));
        }
        forward_pass::for_chunks(B, chunk, parallel, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r)
                compact_row<TX, T>(row(r), X_.cols, copy.indices.data() + copy.begin[at(r)],
                                   copy.values.data() + copy.begin[at(r)]);
        });
        SparseRowsView<T> batch;
        batch.rows = B;
        batch.cols = X_.cols;
        batch.begin = copy.begin.data();
        batch.end = copy.end.data();
        batch.indices = copy.indices.data();
        batch.values = copy.values.data();
        return batch;
    }

    static void prefetch_row(const void* self, std::int64_t r) {
        const auto& in = *static_cast<const CompactedBatches*>(self);
        const std::int64_t row = in.order_ ? in.order_[in.next_start_ + r] : in.next_start_ + r;
        const char* p = reinterpret_cast<const char*>(in.X_.data + row * in.X_.ld);
        const char* end = reinterpret_cast<const char*>(in.X_.data + row * in.X_.ld + in.X_.cols);
        for (; p < end; p += 64) __builtin_prefetch(p, 0, 2);
    }

    const DataMatrix<TX>& X_;
    const std::int64_t* order_;
    std::int64_t n_order_, max_rows_, next_start_ = 0;
    std::vector<Copy> copies_;
    std::vector<SparseRowsView<T>> views_;
};

}  // namespace fastnn
