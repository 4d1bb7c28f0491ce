// Batches of a dense X compacted to CSR, for the epochs that skip X's zeros (train_epoch.cpp's
// CompactedInput).
//
// Each batch's rows (entries start … start + B − 1 of `order`, or rows start … when it is null)
// are compacted row after row, each where the previous one ended, in one pass over the batch:
// nothing is counted first, since a copy's buffers have room for every value of the batch (they
// are not initialised, so only the pages the nonzeros land on are ever touched; batches of more
// than kOnePassMaxEntries values are counted first instead, and get room for their nonzeros
// only). A row's whole-vector stores past its end (compact_row) land where the next row will go,
// or on the kSpare entries after the last row of its chunk. The buffers grow to the largest batch
// seen and are reused: nothing is allocated per batch once they have. Values are converted to T.
// A copy compacted whole in one pass also counts each column's nonzeros (the view's
// column_counts), for the sort by column that the first layer's gradient needs.
//
// Who compacts: one thread for a small batch. On 2 threads, rows in order, each compacts the whole
// batch into a copy of its own (copies(): the first layer's products on column panels read thread
// t's copy on thread t); on more, or in a shuffled order (copies_for), the threads share one
// copy, a chunk of rows each, which needs the rows
// counted first (the count reads a row from memory once, the compaction finds it in cache) to
// know where each chunk starts. Every thread reads every row of the batch in the first layer (its
// panel's columns of all rows), so a shared copy's lines are in both cores' caches when the next
// batch overwrites them, and a store to a line another core holds waits for that core to drop
// it. Measured on the 2-vCPU Zen 4 (raw MNIST, 784-400-10, batch 100): a thread compacted its
// half of the batch into the shared copy in 11 ms per epoch, a thread compacting the whole batch
// into a copy of its own took 7.3 ms (1 thread, whole batch: 6.5 ms). On T threads a copy each
// costs every thread the whole batch, a shared copy a T-th of it at that rate: copies pay up to
// 2 threads. Counting first cost a second pass: the batch's fetch (count and compaction) took
// 13.2 ms of an epoch on 1 thread and 12.0–13.5 ms on 2; in one pass, 8.7–9.8 and 9.2 ms.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "epochs/forward_pass.hpp"   // for_chunks, DataMatrix
#include "runtime/prefetch.hpp"     // prefetch_lines
#include "runtime/threads.hpp"      // get_num_threads, run_team
#include "sparse/sparse_rows.hpp"

namespace fastnn {

template <typename T, typename TX>
class CompactedBatches {
public:
    // one_copy: a single copy however many threads compact it (a chunk of rows each), for a reader
    // that does not split the batch's columns between the threads (evaluation: mlp.cpp).
    CompactedBatches(const DataMatrix<TX>& X, const std::int64_t* order, std::int64_t n_order, std::int64_t max_rows,
                     bool one_copy = false)
        : X_(X), order_(order), n_order_(n_order), max_rows_(max_rows), one_copy_(one_copy) {}

    // Compacts the batch: copies() identical copies (valid until the next fetch), views()[c] the
    // one thread c compacted (and reads fastest). Everything is allocated before the threads
    // start (an allocation that fails raises, in no parallel region).
    void fetch(std::int64_t start, std::int64_t B) {
        const int threads = B * X_.cols >= kCompactSplitMin ? get_num_threads() : 1;
        const int copies = one_copy_ ? 1 : copies_for(threads);
        auto row = [&](std::int64_t r) { return X_.data + (order_ ? order_[start + r] : start + r) * X_.ld; };
        // A shuffled batch's rows lie all over X: row r + kRowsAhead is pulled into L1 while row r
        // is compacted (the hardware prefetchers follow a row only once it has started).
        auto prefetch = [&](std::int64_t r, std::int64_t r1) {
            if (order_ != nullptr && r + kRowsAhead < r1)
                prefetch_lines(row(r + kRowsAhead), X_.cols * static_cast<std::int64_t>(sizeof(TX)), PrefetchHint::l1);
        };
        if (copies_.size() < at(copies)) copies_.resize(at(copies));
        views_.resize(at(copies));
        auto compact = [&](Copy& copy, std::int64_t r0, std::int64_t r1) {   // rows [r0, r1) where they go
            for (std::int64_t r = r0; r < r1; ++r) {
                prefetch(r, r1);
                compact_row<TX, T>(row(r), X_.cols, copy.indices.get() + copy.begin[at(r)],
                                   copy.values.get() + copy.begin[at(r)]);
            }
        };
        if ((copies > 1 || threads == 1) && B * X_.cols <= kOnePassMaxEntries) {
            // Each copy by one thread, whole, in one pass: row r goes where row r − 1 ended.
            for (int c = 0; c < copies; ++c) reserve(copies_[at(c)], B * X_.cols + kSpare);
            auto compact_all = [&](Copy& copy) {   // (and each column's nonzeros counted)
                std::fill(copy.counts.begin(), copy.counts.end(), std::int32_t(0));
                std::int64_t next = 0;
                for (std::int64_t r = 0; r < B; ++r) {
                    prefetch(r, B);
                    copy.begin[at(r)] = next;
                    next += compact_row<TX, T>(row(r), X_.cols, copy.indices.get() + next, copy.values.get() + next,
                                               copy.counts.data());
                    copy.end[at(r)] = next;
                }
                copy.counted = true;
            };
            if (copies > 1)
                run_team(copies, [&](int tid, int team) {
                    for (int c = tid; c < copies; c += team) compact_all(copies_[at(c)]);
                });
            else
                compact_all(copies_[0]);
        } else {
            // Counted first: one chunk of rows per thread, thread t about rows B·t/T … B·(t+1)/T − 1,
            // the share of the batch it prefetched as the previous batch's `ahead` (sparse_rows.cpp).
            Copy& first = copies_[0];
            reserve(first, 0);   // (the rows' offsets)
            for (int c = 0; c < copies; ++c) copies_[at(c)].counted = false;   // (the sort counts)
            const std::int64_t share = (B + threads - 1) / threads;
            forward_pass::for_chunks(B, share, threads > 1, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
                for (std::int64_t r = r0; r < r1; ++r) {
                    prefetch(r, r1);
                    first.end[at(r)] = count_nonzeros(row(r), X_.cols);
                }
            });
            // Where each row goes, the same in every copy: the rows in chunks compacted one after
            // the other (copies: one chunk, all the rows, per thread; one copy: a chunk per thread).
            const std::int64_t chunk = copies > 1 ? B : share;
            std::int64_t next = 0;
            for (std::int64_t r = 0; r < B; ++r) {
                first.begin[at(r)] = next;
                next += first.end[at(r)];
                first.end[at(r)] = next;
                if (r % chunk == chunk - 1 || r == B - 1) next += kSpare;
            }
            for (int c = 0; c < copies; ++c) {
                Copy& copy = copies_[at(c)];
                reserve(copy, next);
                if (c > 0) {
                    std::copy(first.begin.begin(), first.begin.begin() + B, copy.begin.begin());
                    std::copy(first.end.begin(), first.end.begin() + B, copy.end.begin());
                }
            }
            if (copies > 1)
                run_team(copies, [&](int tid, int team) {
                    for (int c = tid; c < copies; c += team) compact(copies_[at(c)], 0, B);
                });
            else
                forward_pass::for_chunks(B, chunk, threads > 1,
                                         [&](std::int64_t, std::int64_t r0, std::int64_t r1) { compact(first, r0, r1); });
        }
        for (int c = 0; c < copies; ++c) views_[at(c)] = view(copies_[at(c)], B);
        next_start_ = start + B;
    }
    int copies() const { return static_cast<int>(views_.size()); }
    // The copies a batch large enough to share gets on `threads` threads: one each, up to
    // kOwnCopyMaxThreads threads, where the rows come in order; else one.
    // (Rows in order only: a shuffled batch's rows come from all over X, each row's lines wait on
    // DRAM, and a thread compacting the whole batch waits on all of them; sharing the rows (and a
    // count pass, the rows' first touch) halves that. Measured on an Intel Xeon family 6 model
    // 167, 2 threads, the estimators' zero-skipping epochs (Adam, batch 200, shuffled) on raw
    // MNIST, one shared copy against a copy each: 784-100-10 0.915, 784-400-10 0.966; hw0's
    // epochs, rows in order: 1.024 and 1.003.)
    int copies_for(int threads) const {
        return threads > 1 && threads <= kOwnCopyMaxThreads && order_ == nullptr ? threads : 1;
    }
    const SparseRowsView<T>* views() const { return views_.data(); }

    // The rows of the batch after the last one fetched, to prefetch into L2 while it is processed.
    RowPrefetch next_batch() const {
        return {std::max<std::int64_t>(0, std::min(max_rows_, n_order_ - next_start_)), &prefetch_row, this};
    }

private:
    static constexpr std::int64_t kSpare = 16;                  // entries after each chunk (compact_row)
    // (fetch: with a row order, each row's lines are prefetched this many rows ahead. Measured on
    // an Intel Xeon family 6 model 167, the estimators' epochs (Adam, batch 200, shuffled) on
    // raw MNIST, zeros skipped, new/old alternating: 784-100-10 0.937 on 1 thread and 0.961 on
    // 2, 784-400-10 0.972 and 0.971; 1 row ahead 0.943 and 0.973 on 1 thread, 4 rows 0.946 and
    // 0.988, 8 rows 0.972 and 0.982. Without the next batch's prefetch during the gradient as
    // well, 2 rows ahead 0.970 and 0.982, and that prefetch alone removed 0.994 and 0.998.)
    static constexpr std::int64_t kRowsAhead = 2;
    // (prefetch_row: of a shuffled batch's next rows, only each row's first lines. The whole rows,
    // 49 lines each for MNIST in float32 and 98 in float64, came as bursts of thousands of
    // prefetches per block of the gradient, which stalled it about as long as they saved.
    // Measured on an Intel Xeon family 6 model 167, the estimators' zero-skipping epochs on raw
    // MNIST, new/old alternating: 784-100-10 0.961 (float64 0.905), 784-400-10 0.968; 16 lines
    // 0.973, 0.936, 0.979; none 0.995, 0.945, 0.991. Rows in order keep the whole rows: 8 lines
    // there measured 1.025 on 1 thread and 1.090 on 2 (784-100-10).)
    static constexpr std::int64_t kShuffledRowAheadLines = 8;
    static constexpr std::int64_t kCompactSplitMin = 1 << 14;   // values per batch below which one thread compacts
    static constexpr int kOwnCopyMaxThreads = 2;                // up to this many threads: a copy each
    static constexpr std::int64_t kOnePassMaxEntries = 1 << 22;  // room reserved for one pass, at most (32 MB a float copy)

    struct Copy {   // one copy of the batch in CSR form
        std::unique_ptr<std::int32_t[]> indices;   // (not initialised: pages are touched as rows land)
        std::unique_ptr<T[]> values;
        std::int64_t capacity = 0;
        std::vector<std::int64_t> begin, end;       // row r: entries [begin[r], end[r])
        std::vector<std::int32_t> counts;           // each column's nonzeros, when `counted`
        bool counted = false;
    };

    // Room for `entries` entries (it grows to the largest need seen, never shrinks) and max_rows_ rows.
    void reserve(Copy& copy, std::int64_t entries) {
        if (copy.capacity < entries) {   // the old buffers go first: a lower peak, and if `new`
            copy.indices.reset();           // throws, a copy with no room that says so
            copy.values.reset();
            copy.capacity = 0;
            copy.indices.reset(new std::int32_t[at(entries)]);
            copy.values.reset(new T[at(entries)]);
            copy.capacity = entries;
        }
        if (copy.begin.size() < at(max_rows_)) {
            copy.begin.resize(at(max_rows_));
            copy.end.resize(at(max_rows_));
        }
        copy.counts.resize(at(X_.cols));
    }

    static std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

    SparseRowsView<T> view(const Copy& copy, std::int64_t B) const {
        SparseRowsView<T> batch;
        batch.rows = B;
        batch.cols = X_.cols;
        batch.begin = copy.begin.data();
        batch.end = copy.end.data();
        batch.indices = copy.indices.get();
        batch.values = copy.values.get();
        batch.column_counts = copy.counted ? copy.counts.data() : nullptr;
        return batch;
    }

    static void prefetch_row(const void* self, std::int64_t r) {
        const auto& in = *static_cast<const CompactedBatches*>(self);
        const std::int64_t row = in.order_ ? in.order_[in.next_start_ + r] : in.next_start_ + r;
        const std::int64_t bytes = in.X_.cols * static_cast<std::int64_t>(sizeof(TX));
        prefetch_lines(in.X_.data + row * in.X_.ld, in.order_ ? std::min(bytes, 64 * kShuffledRowAheadLines) : bytes,
                       PrefetchHint::l2);
    }

    const DataMatrix<TX>& X_;
    const std::int64_t* order_;
    std::int64_t n_order_, max_rows_, next_start_ = 0;
    bool one_copy_;
    std::vector<Copy> copies_;
    std::vector<SparseRowsView<T>> views_;
};

// The forward pass of rows start … start + rows − 1 of the batches' X with the first layer over
// their nonzeros: the rows compacted (fetch), H_1 = ReLU(X_c W_1 + b_1) by sparse_times_dense (the
// bias, if any, as each row's starting value), then layers 2 … L into `logits` (b: null, or null
// entries, for none). The evaluations' zero-skipping chunks (mlp.cpp; biased_logits).
template <typename T, typename TX, typename Buffers>
void forward_over_nonzeros(CompactedBatches<T, TX>& batches, std::int64_t start, std::int64_t rows,
                           const std::vector<T*>& W, const std::vector<T*>* b, const std::vector<std::int64_t>& d,
                           Buffers& H, T* logits) {
    batches.fetch(start, rows);
    sparse_times_dense<T>(batches.views()[0], W[0], d[1], d[1], b ? (*b)[0] : nullptr, H[1].data(), d[1],
                          /*relu=*/true);
    forward_pass::forward<T>(H[1].data(), d[1], rows, W, b, d, H, logits, /*first=*/2);
}

}  // namespace fastnn
