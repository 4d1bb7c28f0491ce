// Batches of a dense X compacted to CSR, for the epochs that skip X's zeros (train_epoch.cpp's
// CompactedInput).
//
// Each batch's rows (entries start … start + B − 1 of `order`, or rows start … when it is null)
// are counted, then compacted: the count reads a row from memory once, the compaction finds it in
// cache, as a GEMM's packing would read it. The rows are compacted in one chunk per thread;
// each chunk's rows are contiguous and kSpare entries follow each chunk, so a row's
// whole-vector stores past its end (compact_row) land on the next row of the same chunk
// (compacted after it) or on the spare. The buffers grow to the largest batch seen and are
// reused: nothing is allocated per batch once they have. Values are converted to T.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "epochs/forward_pass.hpp"   // for_chunks, DataMatrix
#include "sparse/sparse_rows.hpp"

namespace fastnn {

template <typename T, typename TX>
class CompactedBatches {
public:
    CompactedBatches(const DataMatrix<TX>& X, const std::int64_t* order, std::int64_t n_order, std::int64_t max_rows)
        : X_(X), order_(order), n_order_(n_order), begin_(static_cast<std::size_t>(max_rows)),
          end_(static_cast<std::size_t>(max_rows)) {}

    // The batch as CSR (valid until the next fetch).
    SparseRowsView<T> fetch(std::int64_t start, std::int64_t B) {
        const bool parallel = B * X_.cols >= kCompactSplitMin;
        // One chunk per thread: thread t takes about rows B·t/T … B·(t+1)/T − 1, the share of
        // the batch it prefetched as the previous batch's `ahead` (sparse_rows.cpp).
        const int threads = parallel ? get_num_threads() : 1;
        const std::int64_t chunk = (B + threads - 1) / threads;
        auto row = [&](std::int64_t r) { return X_.data + (order_ ? order_[start + r] : start + r) * X_.ld; };
        forward_pass::for_chunks(B, chunk, parallel, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r) end_[at(r)] = count_nonzeros(row(r), X_.cols);
        });
        std::int64_t next = 0;
        for (std::int64_t r = 0; r < B; ++r) {
            begin_[at(r)] = next;
            next += end_[at(r)];
            end_[at(r)] = next;
            if (r % chunk == chunk - 1 || r == B - 1) next += kSpare;
        }
        if (indices_.size() < at(next)) {   // grows to the largest batch seen, never shrinks
            indices_.resize(at(next));
            values_.resize(at(next));
        }
        forward_pass::for_chunks(B, chunk, parallel, [&](std::int64_t, std::int64_t r0, std::int64_t r1) {
            for (std::int64_t r = r0; r < r1; ++r)
                compact_row<TX, T>(row(r), X_.cols, indices_.data() + begin_[at(r)], values_.data() + begin_[at(r)]);
        });
        next_start_ = start + B;
        SparseRowsView<T> batch;
        batch.rows = B;
        batch.cols = X_.cols;
        batch.begin = begin_.data();
        batch.end = end_.data();
        batch.indices = indices_.data();
        batch.values = values_.data();
        return batch;
    }

    // The rows of the batch after the last one fetched, to prefetch into L2 while it is processed.
    RowPrefetch next_batch() const {
        return {std::max<std::int64_t>(0, std::min<std::int64_t>(static_cast<std::int64_t>(begin_.size()),
                                                                  n_order_ - next_start_)),
                &prefetch_row, this};
    }

private:
    static constexpr std::int64_t kSpare = 16;                  // entries after each chunk (compact_row)
    static constexpr std::int64_t kCompactSplitMin = 1 << 14;   // values per batch below which one thread compacts

    static std::size_t at(std::int64_t i) { return static_cast<std::size_t>(i); }

    static void prefetch_row(const void* self, std::int64_t r) {
        const auto& in = *static_cast<const CompactedBatches*>(self);
        const std::int64_t row = in.order_ ? in.order_[in.next_start_ + r] : in.next_start_ + r;
        const char* p = reinterpret_cast<const char*>(in.X_.data + row * in.X_.ld);
        const char* end = reinterpret_cast<const char*>(in.X_.data + row * in.X_.ld + in.X_.cols);
        for (; p < end; p += 64) __builtin_prefetch(p, 0, 2);
    }

    const DataMatrix<TX>& X_;
    const std::int64_t* order_;
    std::int64_t n_order_, next_start_ = 0;
    std::vector<std::int64_t> begin_, end_;
    std::vector<std::int32_t> indices_;
    std::vector<T> values_;
};

}  // namespace fastnn
