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
// Who compacts: one thread for a small batch. On 2 threads the threads count the rows together,
// then each compacts the whole batch into a copy of its own (copies(): the first layer's
// products on column panels read thread t's copy on thread t); on more, the threads share one
// copy, a chunk of rows each. Every thread reads every row of the batch in the first layer (its
// panel's columns of all rows), so a shared copy's lines are in both cores' caches when the next
// batch overwrites them, and a store to a line another core holds waits for that core to drop
// it. Measured on the 2-vCPU Zen 4 (raw MNIST, 784-400-10, batch 100): a thread compacted its
// half of the batch into the shared copy in 11 ms per epoch, a thread compacting the whole batch
// into a copy of its own took 7.3 ms (1 thread, whole batch: 6.5 ms). On T threads a copy each
// costs every thread the whole batch, a shared copy a T-th of it at that rate: copies pay up to
// 2 threads.
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
        : X_(X), order_(order), n_order_(n_order), max_rows_(max_rows), begin_(at(max_rows)), end_(at(max_rows)) {}

    // Compacts the batch: copies() identical copies (valid until the next fetch), views()[c] the
    // one thread c compacted (and reads fastest). Everything is allocated before the threads
    // start (an allocation that fails raises, in no parallel region).
    void fetch(std::int64_t start, std::int64_t B) {
        const int threads = B * X_.cols >= kCompactSplitMin ? get_num_threads() : 1;
        const int copies = threads > 1 && threads <= kOwnCopyMaxThreads ? threads : 1;
        auto row = [&](std::int64_t r) { return X_.data + (order_ ? order_[start + r] : start + r) * X_.ld; };
        // The count: one chunk of rows per thread, thread t about rows B·t/T … B·(t+1)/T − 1, the
        // share of the batch it prefetched as the previous batch's `ahead` (sparse_rows.cpp).
        const std::int64_t share = (B + threads - 1) / threads;
        forward_pass::for_chunks(B, share, threads > 1, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r) end_[at(r)] = count_nonzeros(row(r), X_.cols);
        });
        // Where each row goes, the same in every copy: the rows in chunks compacted one after the
        // other (copies: one chunk, all the rows, per thread; one copy: a chunk per thread).
        const std::int64_t chunk = copies > 1 ? B : share;
        std::int64_t next = 0;
        for (std::int64_t r = 0; r < B; ++r) {
            begin_[at(r)] = next;
            next += end_[at(r)];
            end_[at(r)] = next;
            if (r % chunk == chunk - 1 || r == B - 1) next += kSpare;
        }
        if (copies_.size() < at(copies)) copies_.resize(at(copies));
        views_.resize(at(copies));
        for (int c = 0; c < copies; ++c) {
            Copy& copy = copies_[at(c)];
            if (copy.indices.size() < at(next)) {   // grows to the largest batch seen, never shrinks
                copy.indices.resize(at(next));
                copy.values.resize(at(next));
            }
            views_[at(c)] = view(copy, B);
        }
        auto compact = [&](Copy& copy, std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r)
                compact_row<TX, T>(row(r), X_.cols, copy.indices.data() + begin_[at(r)],
                                   copy.values.data() + begin_[at(r)]);
        };
        if (copies > 1) {
            run_team(copies, [&](int tid, int team) {
                for (int c = tid; c < copies; c += team) compact(copies_[at(c)], 0, B);
            });
        } else {
            forward_pass::for_chunks(B, chunk, threads > 1,
                                     [&](std::int64_t, std::int64_t r0, std::int64_t r1) { compact(copies_[0], r0, r1); });
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

    struct Copy {   // one copy's nonzeros (the rows' offsets, begin_ and end_, are the same in every copy)
        std::vector<std::int32_t> indices;
        std::vector<T> values;
    };

    static std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

    SparseRowsView<T> view(const Copy& copy, std::int64_t B) const {
        SparseRowsView<T> batch;
        batch.rows = B;
        batch.cols = X_.cols;
        batch.begin = begin_.data();
        batch.end = end_.data();
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
    std::vector<std::int64_t> begin_, end_;
    std::vector<Copy> copies_;
    std::vector<SparseRowsView<T>> views_;
};

}  // namespace fastnn
