// CSR inputs (see sparse_rows.hpp): the threaded driver of the sparse × dense kernels, the
// per-batch transpose, and the conversion from dense.
#include "sparse/sparse_rows.hpp"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <type_traits>

#include "runtime/cpu_features.hpp"
#include "runtime/prefetch.hpp"
#include "runtime/threads.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace fastnn {
namespace {

using std::int64_t;
using namespace sparse_detail;

template <typename T>
Kernels<T> kernels_for(Isa isa) {
    if constexpr (std::is_same_v<T, float>)
        return for_isa(isa, generic_kernels_f32, avx2_kernels_f32, avx512_kernels_f32);
    else
        return for_isa(isa, generic_kernels_f64, avx2_kernels_f64, avx512_kernels_f64);
}

// The most vectors of D's columns per pass of gather_block, for D of `rows` rows (the batch): as many
// as keep a pass's reads (rows × vectors × the vector's bytes) within the L1 data cache, between
// the ISA's smallest pass and its accumulators (see gather_block). On a 32 KB L1 with AVX-512 and
// 100 rows that is the smallest, 5 (Zen 4's measured best); on a 48 KB L1, 7. Intel Xeon family 6
// model 207 (48 KB L1d), raw MNIST, batch 100, epochs with passes of 7 / of 5 (tools/ab_epochs.py,
// 11 alternating rounds): 784-400-10 0.991 on 1 thread (25 vectors in 4 passes, not 5) and 0.970
// on 2 (panels of 12 and 13 vectors in 2 passes each, not 3); 784-256-128-10 0.975 on 1 thread.
template <typename T>
int gather_pass_vectors(const Kernels<T>& k, int64_t rows) {
    if (gather_pass_setting() > 0) return gather_pass_setting();
    const int64_t pass_bytes_per_vector = std::max<int64_t>(1, rows) * k.lanes * static_cast<int64_t>(sizeof(T));
    const int64_t fit = l1d_cache_bytes() / pass_bytes_per_vector;
    return static_cast<int>(std::clamp<int64_t>(fit, k.gather_min_pass_vectors, k.max_vectors));
}

// Asks for row r of A (its column indices and values) to be brought into cache.
template <typename T>
void prefetch_row(const SparseRowsView<T>& A, int64_t r) {
    const int64_t n = A.end[r] - A.begin[r];
    prefetch_lines(A.indices + A.begin[r], n * static_cast<int64_t>(sizeof(std::int32_t)), PrefetchHint::l1);
    prefetch_lines(A.values + A.begin[r], n * static_cast<int64_t>(sizeof(T)), PrefetchHint::l1);
}

// A block of result rows of Aᵀ D takes at most this many bytes (it stays in L2; measured on
// MNIST h=100, 2 threads: 96 KiB blocks fit 1.75 s vs 1.9 s with L1-sized 24 KiB ones, whose
// every block walks all the batch's rows again) ...
constexpr int64_t kTransposeBlockBytes = 96 * 1024;
// ... and at most this many rows.
constexpr int64_t kTransposeBlockRows = 256;


// Below this many multiply-adds a product runs on one thread.
constexpr int64_t kParallelMinWork = 1 << 16;
// Rows handed to a thread at a time (rows differ in their nonzero counts).
constexpr int64_t kRowChunk = 8;

template <typename T>
int64_t stored_values(const SparseRowsView<T>& A) {
    int64_t nnz = 0;
    for (int64_t r = 0; r < A.rows; ++r) nnz += A.end[r] - A.begin[r];
    return nnz;
}

// The rows kernel for `rows` rows of A (a share of its rows, per thread) times D (n columns):
// see sparse_rows.hpp. The blocked one visits every row once per block of features, so it also
// needs at least one nonzero per row and block on average: wide, very sparse rows (text-like
// data, tens of nonzeros among 10^5 columns) stay row by row.
// (nnz: stored_values(A), which the callers have already counted.)
template <typename T>
auto rows_kernel_for(const Kernels<T>& k, const SparseRowsView<T>& A, int64_t nnz, int64_t rows, int64_t n) {
    const int setting = sparse_blocked_setting();
    if (setting != 0) return setting > 0 ? k.rows_blocked : k.rows;
    const int64_t blocks = (A.cols + kFeatureBlock - 1) / kFeatureBlock;
    const bool blocked = rows >= kBlockedMinRows && blocks > 1 &&
                         A.cols * n * static_cast<int64_t>(sizeof(T)) > kBlockedMinBytes && nnz >= A.rows * blocks;
    return blocked ? k.rows_blocked : k.rows;
}

// Threads for sparse_times_dense (A holding nnz values): all of them once the product is worth it.
template <typename T>
int row_threads(const SparseRowsView<T>& A, int64_t nnz, int64_t n) {
    return nnz * n >= kParallelMinWork && A.rows > kRowChunk ? get_num_threads() : 1;
}

// This thread's number inside a parallel region (0 without OpenMP).
inline int thread_index() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// The threads of the current team (1 without OpenMP).
inline int team_size() {
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

// v grown to at least `size` entries (never shrunk: callers that keep it allocate nothing later).
template <typename V>
void grow(V& v, int64_t size) {
    if (static_cast<int64_t>(v.size()) < size) v.resize(static_cast<std::size_t>(size));
}

// p rounded up to a 64-byte boundary (scratch carries a line's worth of slack for it).
template <typename T>
T* aligned_line(T* p) {
    return reinterpret_cast<T*>((reinterpret_cast<std::uintptr_t>(p) + 63) & ~std::uintptr_t(63));
}

// Boundaries first[0 … parts] of `parts` ranges of the units 0 … units − 1 (unit u: A's columns
// [u·width, (u+1)·width)) holding equal shares of A's nonzeros, or `shares` of them (summing to
// 1) when given: range t starts where the running count passes t/parts (or the sum of shares[0 …
// t−1]); MNIST's lower half holds more ink than its upper half.
template <typename T>
void nonzero_balanced_split(const SparseRowsView<T>& A, int64_t width, int64_t units, int parts,
                            std::vector<int64_t>& first, const double* shares = nullptr) {
    std::vector<int64_t> per_unit(static_cast<std::size_t>(units), 0);
    int64_t total = 0;
    for (int64_t r = 0; r < A.rows; ++r)
        for (int64_t q = A.begin[r]; q < A.end[r]; ++q) ++per_unit[static_cast<std::size_t>(A.indices[q] / width)];
    for (const int64_t c : per_unit) total += c;
    first.assign(static_cast<std::size_t>(parts + 1), units);
    first[0] = 0;
    int64_t seen = 0, u = 0;
    double before = 0;   // with shares: the sum of those of the parts before t
    for (int t = 1; t < parts; ++t) {
        if (shares) before += shares[t - 1];
        const int64_t target = shares ? static_cast<int64_t>(static_cast<double>(total) * before) : total * t / parts;
        while (u < units && seen + per_unit[static_cast<std::size_t>(u)] / 2 < target)
            seen += per_unit[static_cast<std::size_t>(u++)];
        first[static_cast<std::size_t>(t)] = std::max(u, first[static_cast<std::size_t>(t - 1)]);
    }
}

// cursor[r] = the first nonzero of row r of A in a column >= c0.
template <typename T>
void cursors_from(const SparseRowsView<T>& A, int64_t c0, int64_t* cursor) {
    for (int64_t r = 0; r < A.rows; ++r)
        cursor[r] = std::lower_bound(A.indices + A.begin[r], A.indices + A.end[r], static_cast<std::int32_t>(c0)) -
                    A.indices;
}

}  // namespace

int& sparse_blocked_setting() {
    static int setting = 0;
    return setting;
}

int& gather_pass_setting() {
    static int setting = 0;
    return setting;
}

template <typename T>
void sparse_times_dense(const SparseRowsView<T>& A, const T* D, int64_t ldd, int64_t n, const T* init,
                        T* out, int64_t ldo, bool relu) {
    const int64_t nnz = stored_values(A);
    const int nthreads = row_threads(A, nnz, n);
    const auto kernel = rows_kernel_for(kernels_for<T>(active_isa()), A, nnz, A.rows / nthreads, n);
    if (nthreads == 1) {
        kernel(A, 0, A.rows, D, ldd, n, init, out, ldo, relu);
        return;
    }
    // Thread t takes rows [rows·t/T, rows·(t+1)/T): the share that sparse_transpose_times_dense
    // prefetched into this thread's cache when A was its `ahead`.
    run_region(nthreads, [&] {
        const int t = thread_index();
        kernel(A, A.rows * t / nthreads, A.rows * (t + 1) / nthreads, D, ldd, n, init, out, ldo, relu);
    });
}

template <typename T>
void sparse_times_dense(const SparseRowsView<T>& A, const T* D, int64_t ldd, int64_t n, const RowSink<T>& sink,
                        T* scratch) {
    const auto kernel = kernels_for<T>(active_isa()).rows;
    const int nthreads = row_threads(A, stored_values(A), n);
    const int64_t chunks = (A.rows + kRowChunk - 1) / kRowChunk;
    run_region(nthreads, [&] {
        T* row = scratch + static_cast<int64_t>(thread_index()) * n;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t c = 0; c < chunks; ++c)
            for (int64_t r = c * kRowChunk, r1 = std::min(A.rows, (c + 1) * kRowChunk); r < r1; ++r) {
                SparseRowsView<T> one = A;   // row r alone, computed into `row`
                one.rows = 1;
                one.begin = A.begin + r;
                one.end = A.end + r;
                kernel(one, 0, 1, D, ldd, n, nullptr, row, n, false);
                sink.consume(sink.context, r, 1, row, n);
            }
    });
}

template <typename T>
int64_t transpose_block_rows(int64_t n) {
    return std::clamp<int64_t>(kTransposeBlockBytes / (std::max<int64_t>(1, n) * static_cast<int64_t>(sizeof(T))), 1,
                               kTransposeBlockRows);
}


// Consecutive blocks of `block` columns from c0 (the last one ending at c1), each block's
// nonzeros sorted into lists by column (rows in increasing order within a column), in one
// counting sort over [c0, c1): two passes over A's rows in all, not two per block. Block i
// (from 0) gets lists_at(i): its block + 1 column starts in starts + i·(block + 1), its entries
// from entries + i·A.rows·block. Scratch: cursor (A.rows entries), slot (c1 − c0).
template <typename T>
struct SortedBlocks {
    int64_t* starts;
    ListEntry<T>* entries;
    int64_t block, capacity;   // capacity = A.rows · block entries per block
    BlockLists<T> lists_at(int64_t i) const { return {starts + i * (block + 1), entries + i * capacity}; }
    SortedBlocks from(int64_t i) const {   // the same layout with block i as block 0
        const BlockLists<T> l = lists_at(i);
        return {l.start, l.entry, block, capacity};
    }
};

// (Whole: [c0, c1) = [0, A.cols), every nonzero of every row: no cursors to search for, no column
// to test against c1.)
template <bool Whole, typename T>
void sort_rows_into_blocks(const SparseRowsView<T>& A, int64_t c0, int64_t c1, const SortedBlocks<T>& out,
                           int64_t* cursor, int64_t* slot) {
    if constexpr (Whole) std::copy(A.begin, A.begin + A.rows, cursor);
    else cursors_from(A, c0, cursor);
    // (Local copies of the pointers: the compiler cannot tell that the stores below leave A and
    // out alone, and would reload them for every entry.)
    const std::int32_t* const indices = A.indices;
    const T* const values = A.values;
    const int64_t* const end = A.end;
    auto in_range = [&](int64_t q) { return Whole || indices[q] < c1; };
    if (A.column_counts)   // each column's count: given, or counted
        std::copy(A.column_counts + c0, A.column_counts + c1, slot);
    else {
        std::fill(slot, slot + (c1 - c0), int64_t(0));
        for (int64_t r = 0; r < A.rows; ++r)
            for (int64_t q = cursor[r], e = end[r]; q < e && in_range(q); ++q) ++slot[indices[q] - c0];
    }
    for (int64_t i = 0, cb0 = c0; cb0 < c1; ++i, cb0 += out.block) {   // counts -> starts and write positions
        int64_t* start = out.lists_at(i).start;
        start[0] = 0;
        for (int64_t c = cb0; c < std::min(c1, cb0 + out.block); ++c) {
            const int64_t count = slot[c - c0];
            slot[c - c0] = i * out.capacity + start[c - cb0];
            start[c - cb0 + 1] = start[c - cb0] + count;
        }
    }
    ListEntry<T>* const sorted = out.entries;
    for (int64_t r = 0; r < A.rows; ++r)   // fill, rows in order
        for (int64_t q = cursor[r], e = end[r]; q < e && in_range(q); ++q)
            sorted[slot[indices[q] - c0]++] = ListEntry<T>{static_cast<std::int32_t>(r), values[q]};
}

template <typename T>
void sort_into_blocks(const SparseRowsView<T>& A, int64_t c0, int64_t c1, const SortedBlocks<T>& out,
                      int64_t* cursor, int64_t* slot) {
    if (c0 == 0 && c1 == A.cols) sort_rows_into_blocks<true>(A, c0, c1, out, cursor, slot);
    else sort_rows_into_blocks<false>(A, c0, c1, out, cursor, slot);
}

template <typename T>
void sparse_transpose_times_dense(const SparseRowsView<T>& A, const T* D, int64_t ldd, int64_t n,
                                  const RowSink<T>& sink, TransposeScratch<T>& scratch, const RowPrefetch& ahead) {
    const Kernels<T> k = kernels_for<T>(active_isa());
    const int pass_vectors = gather_pass_vectors(k, A.rows);   // (D has A's rows)
    if (n % k.lanes != 0) throw std::invalid_argument("sparse_transpose_times_dense: n must be a multiple of the vector width");
    const int64_t block = transpose_block_rows<T>(n);
    const int64_t blocks = (A.cols + block - 1) / block;   // no more threads than blocks
    const int nthreads = stored_values(A) * n >= kParallelMinWork && blocks > 1
                             ? static_cast<int>(std::min<int64_t>(get_num_threads(), blocks)) : 1;
    // Thread t owns the result rows [first[t], first[t+1]) (in blocks from first[t] on), chosen
    // on the first call with this thread count to share out A's nonzeros evenly (MNIST's lower
    // half holds more ink than its upper half) and kept for later calls, so that each thread
    // keeps updating the same parameter rows. Neither the split nor the blocks change any
    // result row: each sums its column's entries in row order.
    std::vector<int64_t>& first = scratch.first_column;
    if (static_cast<int>(first.size()) != nthreads + 1 || first.back() != A.cols)
        nonzero_balanced_split(A, 1, A.cols, nthreads, first);
    // Scratch: the lists of every thread's blocks (thread t's from block first_block[t] on), each
    // thread's cursors and counts, and its block of results (64-byte aligned).
    std::vector<int64_t>& first_block = scratch.block_offsets;
    first_block.assign(static_cast<std::size_t>(nthreads + 1), 0);
    for (std::size_t t = 0; t < static_cast<std::size_t>(nthreads); ++t)
        first_block[t + 1] = first_block[t] + (first[t + 1] - first[t] + block - 1) / block;
    const int64_t total_blocks = first_block.back(), capacity = A.rows * block;
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    grow(scratch.entries, total_blocks * capacity);
    grow(scratch.values, nthreads * (block * n + line));
    grow(scratch.counts, total_blocks * (block + 1) + nthreads * (A.rows + A.cols));
    run_region(nthreads, [&] {
        const int t = thread_index();
        const auto ut = static_cast<std::size_t>(t);
        const int64_t c0 = first[ut], c1 = first[ut + 1], b0 = first_block[ut];
        const SortedBlocks<T> sorted =
            SortedBlocks<T>{scratch.counts.data(), scratch.entries.data(), block, capacity}.from(b0);
        int64_t* cursor = scratch.counts.data() + total_blocks * (block + 1) + t * (A.rows + A.cols);
        sort_into_blocks(A, c0, c1, sorted, cursor, cursor + A.rows);
        T* G = aligned_line(scratch.values.data() + t * (block * n + line));
        // This thread's share of `ahead`, the rows it will take in sparse_times_dense
        // ([rows·t/T, rows·(t+1)/T)), prefetched a part after each of its blocks.
        const int64_t my_blocks = std::max<int64_t>(1, first_block[ut + 1] - b0);
        const int64_t a0 = ahead.rows * t / nthreads, a1 = ahead.rows * (t + 1) / nthreads;
        int64_t next_row = a0;
        for (int64_t kb0 = c0, i = 0; kb0 < c1; kb0 += block, ++i) {
            const int64_t kb1 = std::min(c1, kb0 + block);
            k.gather_block(sorted.lists_at(i), kb1 - kb0, D, ldd, n, G, n, pass_vectors);
            sink.consume(sink.context, kb0, kb1 - kb0, G, n);
            for (const int64_t until = a0 + (a1 - a0) * (i + 1) / my_blocks; next_row < until; ++next_row)
                ahead.fetch(ahead.context, next_row);
        }
    });
}

// The lists of a panel product's blocks (sparse_transpose_times_panels): their layout in
// `scratch`, grown to hold them, and which blocks each of `parts` threads sorts.
template <typename T>
struct PanelLists {
    int64_t block, blocks, entries, starts, widest;
    int sets;                  // 1: one set of lists, shared; > 1: a set per panel (panel_list_sets)
    SortedBlocks<T> sorted;    // set 0
    // The lists panel q's gather reads (and, with a set per panel, panel q's thread writes).
    SortedBlocks<T> set(int q) const {
        const int64_t s = sets > 1 ? q : 0;
        return {sorted.starts + s * starts, sorted.entries + s * entries, block, sorted.capacity};
    }
};

// The sets of sorted lists a panel product keeps: one per panel where the caller asks for it
// (TransposeScratch::lists_per_panel) and every panel has its own copy of A (copies == parts), each
// sorted whole by the panel's own thread from its copy; else one set, shared, each thread sorting a
// share of it. Shared, the lists are written by one core and read by both (each panel's gather
// reads every block), so each batch's sort waits for lines the other core holds. On the 2-vCPU Zen
// 4, raw MNIST h = 400 on 2 threads (the epoch's median, alternating runs): with a core-to-core round
// trip of 320 ns (vCPUs on cores that share no cache) 268-276 ms shared, 233-244 ms per panel; at
// 70 ns, 178-186 ms shared, 180-189 ms per panel (each thread sorting all of the batch instead of
// its share, and no share to even out the panels' widths: 12 and 13 vectors of h = 400).
inline int panel_list_sets(bool per_panel, int copies, int parts) {
    return per_panel && copies == parts && parts > 1 ? parts : 1;
}

template <typename T>
PanelLists<T> panel_lists(const SparseRowsView<T>& A, const Panel<T>* panels, int parts, int sets,
                          TransposeScratch<T>& scratch) {
    int64_t widest = 0;
    for (int t = 0; t < parts; ++t) widest = std::max(widest, panels[t].ld);
    // Blocks of half the size the gather alone would take: finer shares for the sorting.
    const int64_t block = std::max<int64_t>(1, transpose_block_rows<T>(widest) / 2);
    const int64_t blocks = (A.cols + block - 1) / block;
    // Scratch: every block's lists (room for A.rows × block entries and block + 1 starts), `sets`
    // times over, each thread's cursors and counts, and each panel's block of results (64-byte aligned).
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    const int64_t capacity = A.rows * block, entries = blocks * capacity, starts = blocks * (block + 1);
    grow(scratch.entries, sets * entries);
    grow(scratch.values, parts * (block * widest + line));
    grow(scratch.counts, sets * starts + parts * (A.rows + A.cols));
    scratch.list_sets = sets;
    // Thread t sorts blocks [first[t], first[t+1]), chosen on the first call with this many
    // blocks and threads to share out A's nonzeros, and kept for later calls. Which thread sorts
    // a block changes no result. The shares are such that each thread's panel columns (the
    // forward's work, which the sort follows in sparse_times_panels) and its sort add up alike,
    // the whole sort counted as kSortColumns columns: h = 400 splits as 192 + 208 columns (12 +
    // 13 vectors), and the narrower panel's thread sorts 58% of the nonzeros. Measured on the
    // 2-vCPU Zen 4, raw MNIST, 2 threads, eight alternating pairs of processes (the best epoch
    // of each, median over pairs): h = 100 81.2 -> 79.3 ms, h = 400 176.6 -> 176.0 ms (the
    // h = 400 epoch's own phases: the first layer 72 -> 87 ms, the gradient 80 -> 63 ms). The
    // sort's move alone, with even shares, gained nothing measurable.
    std::vector<int64_t>& first = scratch.first_block;
    if (sets == 1 && (static_cast<int>(first.size()) != parts + 1 || first.back() != blocks)) {
        constexpr double kSortColumns = 100;
        double cols = 0;
        for (int t = 0; t < parts; ++t) cols += static_cast<double>(panels[t].n);
        const double level = (cols + kSortColumns) / parts;
        std::vector<double> shares(static_cast<std::size_t>(parts));
        double sum = 0;
        for (int t = 0; t < parts; ++t) {
            shares[static_cast<std::size_t>(t)] = std::max(0.0, level - static_cast<double>(panels[t].n));
            sum += shares[static_cast<std::size_t>(t)];
        }
        for (double& x : shares) x = sum > 0 ? x / sum : 1.0 / parts;
        nonzero_balanced_split(A, block, blocks, parts, first, shares.data());
    }
    return {block, blocks, entries, starts, widest, sets,
            SortedBlocks<T>{scratch.counts.data(), scratch.entries.data(), block, capacity}};
}

// Thread t of `team` sorts its lists: with a set per panel, all the blocks of each of its panels'
// sets, from that panel's copy of A; with one shared set, its share of the blocks (a smaller team
// than `parts` takes the shares of the missing threads too).
template <typename T>
void sort_panel_share(const SparseRowsView<T>* copies_of_A, int copies, int parts, const PanelLists<T>& lists,
                      TransposeScratch<T>& scratch, int t, int team) {
    const SparseRowsView<T>& A = copies_of_A[t % copies];
    int64_t* cursor = scratch.counts.data() + lists.sets * lists.starts + static_cast<int64_t>(t) * (A.rows + A.cols);
    if (lists.sets > 1) {
        for (int q = t; q < parts; q += team)
            sort_into_blocks(copies_of_A[q % copies], 0, A.cols, lists.set(q), cursor, cursor + A.rows);
        return;
    }
    const std::vector<int64_t>& first = scratch.first_block;
    const int64_t b0 = first[static_cast<std::size_t>(parts * t / team)],
                  b1 = first[static_cast<std::size_t>(parts * (t + 1) / team)];
    sort_into_blocks(A, std::min(A.cols, b0 * lists.block), std::min(A.cols, b1 * lists.block),
                     lists.sorted.from(b0), cursor, cursor + A.rows);
}

template <typename T>
void sparse_times_panels(const SparseRowsView<T>* A, int copies, const Panel<T>* panels, int parts, const T* init,
                         T* out, int64_t ldo, bool relu, TransposeScratch<T>& lists_for_transpose) {
    const Kernels<T> k = kernels_for<T>(active_isa());
    const int64_t nnz = stored_values(A[0]);   // (every copy holds the same rows)
    const PanelLists<T> lists = panel_lists(A[0], panels, parts,
                                            panel_list_sets(lists_for_transpose.lists_per_panel, copies, parts),
                                            lists_for_transpose);
    run_region(parts, [&] {
        const int t = thread_index(), team = team_size();
        for (int q = t; q < parts; q += team) {
            const Panel<T>& p = panels[q];
            const SparseRowsView<T>& rows = A[q % copies];
            const auto kernel = rows_kernel_for(k, rows, nnz, rows.rows, p.n);
            kernel(rows, 0, rows.rows, p.data, p.ld, p.n, init ? init + p.c0 : nullptr, out + p.c0, ldo, relu);
        }
        sort_panel_share(A, copies, parts, lists, lists_for_transpose, t, team);
    });
}

template <typename T>
void sparse_transpose_times_panels(const SparseRowsView<T>& A, const T* D, int64_t ldd, const Panel<T>* panels,
                                   int parts, const RowSink<T>* sinks, TransposeScratch<T>& scratch,
                                   const RowPrefetch& ahead, const PanelWork& also) {
    const Kernels<T> k = kernels_for<T>(active_isa());
    const int pass_vectors = gather_pass_vectors(k, A.rows);   // (D has A's rows)
    const PanelLists<T> lists = panel_lists(A, panels, parts, scratch.list_sets, scratch);   // (sparse_times_panels')
    const int64_t block = lists.block, blocks = lists.blocks, widest = lists.widest;
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    run_region(parts, [&] {
        const int t = thread_index(), team = team_size();
        if (also.run)
            for (int q = t; q < parts; q += team) also.run(also.context, q);
        for (int q = t; q < parts; q += team) {   // (a smaller team than asked still covers every panel)
            const Panel<T>& p = panels[q];
            T* G = aligned_line(scratch.values.data() + q * (block * widest + line));
            const SortedBlocks<T> sorted = lists.set(q);
            const int64_t a0 = ahead.rows * q / parts, a1 = ahead.rows * (q + 1) / parts;
            int64_t next_row = a0;
            for (int64_t b = 0; b < blocks; ++b) {
                const int64_t kb0 = b * block, rows = std::min(A.cols, kb0 + block) - kb0;
                k.gather_block(sorted.lists_at(b), rows, D + p.c0, ldd, p.ld, G, p.ld, pass_vectors);
                sinks[q].consume(sinks[q].context, kb0, rows, G, p.ld);
                for (const int64_t until = a0 + (a1 - a0) * (b + 1) / blocks; next_row < until; ++next_row)
                    ahead.fetch(ahead.context, next_row);
            }
        }
    });
}

template <typename T>
RowPrefetch sparse_row_prefetch(const SparseRowsView<T>& rows) {
    return {rows.rows, [](const void* view, int64_t r) { prefetch_row(*static_cast<const SparseRowsView<T>*>(view), r); },
            &rows};
}

template <typename T>
void transpose_sparse_rows(const SparseRowsView<T>& A, std::vector<int64_t>& indptr,
                           std::vector<std::int32_t>& rows, std::vector<T>& values,
                           std::vector<int64_t>& counts) {
    int64_t nnz = 0;
    for (int64_t r = 0; r < A.rows; ++r) nnz += A.end[r] - A.begin[r];
    grow(rows, nnz);
    grow(values, nnz);
    const int64_t cols = A.cols;
    const int nthreads = nnz >= kParallelMinWork / 8 && A.rows >= 2 ? std::min<int>(get_num_threads(), 64) : 1;
    indptr.resize(static_cast<std::size_t>(cols + 1));
    counts.assign(static_cast<std::size_t>(nthreads * cols), 0);
    // Thread t takes rows [A.rows·t/T, A.rows·(t+1)/T): it counts them per column, then writes
    // them from its own offset within each column: thread 0's rows first, so rows stay in order.
    run_region(nthreads, [&] {
        const int t = thread_index();
        const int64_t r0 = A.rows * t / nthreads, r1 = A.rows * (t + 1) / nthreads;
        int64_t* my = counts.data() + static_cast<int64_t>(t) * cols;
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t q = A.begin[r]; q < A.end[r]; ++q) ++my[A.indices[q]];
#ifdef _OPENMP
#pragma omp barrier
#pragma omp single
#endif
        {   // counts become write positions; indptr the columns' starts
            int64_t pos = 0;
            for (int64_t c = 0; c < cols; ++c) {
                indptr[static_cast<std::size_t>(c)] = pos;
                for (int u = 0; u < nthreads; ++u) {
                    int64_t& k = counts[static_cast<std::size_t>(u * cols + c)];
                    const int64_t count = k;
                    k = pos;
                    pos += count;
                }
            }
            indptr[static_cast<std::size_t>(cols)] = pos;
        }   // (the implicit barrier of `single`)
        for (int64_t r = r0; r < r1; ++r)
            for (int64_t q = A.begin[r]; q < A.end[r]; ++q) {
                const int64_t p = my[A.indices[q]]++;
                rows[p] = static_cast<std::int32_t>(r);
                values[p] = A.values[q];
            }
    });
}

bool sparse_indices_valid(const int64_t* indptr, const std::int32_t* indices, int64_t rows, int64_t cols) {
    const int64_t nnz = indptr[rows];
    (void)nnz;   // (unused without OpenMP)
    int bad = 0;
#ifdef _OPENMP
#pragma omp parallel for num_threads(get_num_threads()) schedule(static) reduction(| : bad) if (nnz > (1 << 18))
#endif
    for (int64_t r = 0; r < rows; ++r) {
        const std::int32_t* idx = indices + indptr[r];
        const int64_t n = indptr[r + 1] - indptr[r];
        std::uint32_t worst = 0;   // as unsigned, a negative index is larger than any valid one
        int decreasing = 0;
        for (int64_t t = 0; t < n; ++t) worst = std::max(worst, static_cast<std::uint32_t>(idx[t]));
        for (int64_t t = 1; t < n; ++t) decreasing |= idx[t] < idx[t - 1];
        bad |= decreasing | (n > 0 && worst >= static_cast<std::uint64_t>(cols));
    }
    return bad == 0;
}

template <typename TX>
int64_t count_nonzeros(const TX* x, int64_t cols) {
    if constexpr (std::is_same_v<TX, float>)
        return kernels_for<float>(active_isa()).count_row_f32(x, cols);
    else {
        int64_t count = 0;
        for (int64_t c = 0; c < cols; ++c) count += x[c] != TX(0);
        return count;
    }
}

template <typename TX>
int64_t csr_row_offsets(const TX* X, int64_t rows, int64_t cols, int64_t ld, int64_t* indptr) {
    indptr[0] = 0;
    // (The team counts in the caller's mode: with subnormals as zero, a subnormal is not counted,
    // as dense_to_csr, in the same mode, does not copy it; runtime/float_mode.hpp.)
    const int threads = get_num_threads();
    run_region(rows * cols > (1 << 20) ? threads : 1, [&] {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t r = 0; r < rows; ++r) indptr[r + 1] = count_nonzeros(X + r * ld, cols);
    });
    for (int64_t r = 0; r < rows; ++r) indptr[r + 1] += indptr[r];
    return indptr[rows];
}

template <typename TX, typename T>
int64_t compact_row(const TX* x, int64_t cols, std::int32_t* idx, T* val, std::int32_t* column_counts) {
    if constexpr (std::is_same_v<TX, float>)
        return kernels_for<T>(active_isa()).compact_row_f32(x, cols, idx, val, column_counts);
    else {
        int64_t p = 0;
        for (int64_t c = 0; c < cols; ++c) {   // branch-free: write, then move on only past a nonzero
            idx[p] = static_cast<std::int32_t>(c);
            val[p] = static_cast<T>(x[c]);
            p += x[c] != TX(0);
        }
        if (column_counts)
            for (int64_t t = 0; t < p; ++t) ++column_counts[idx[t]];
        return p;
    }
}

template <typename TX, typename T>
void dense_to_csr(const TX* X, int64_t rows, int64_t cols, int64_t ld, const int64_t* indptr,
                  std::int32_t* indices, T* values) {
    const int threads = get_num_threads();
    run_region(rows * cols > (1 << 20) ? threads : 1, [&] {
        // Compaction into a per-thread row buffer (room for whole vectors), then a copy.
        std::vector<std::int32_t> idx(static_cast<std::size_t>(cols + 16));
        std::vector<T> val(static_cast<std::size_t>(cols + 16));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t p = compact_row<TX, T>(X + r * ld, cols, idx.data(), val.data());
            std::copy(idx.begin(), idx.begin() + p, indices + indptr[r]);
            std::copy(val.begin(), val.begin() + p, values + indptr[r]);
        }
    });
}

template void sparse_times_dense<float>(const SparseRowsView<float>&, const float*, int64_t, int64_t,
                                        const float*, float*, int64_t, bool);
template void sparse_times_dense<double>(const SparseRowsView<double>&, const double*, int64_t, int64_t,
                                         const double*, double*, int64_t, bool);
template void sparse_times_dense<float>(const SparseRowsView<float>&, const float*, int64_t, int64_t,
                                        const RowSink<float>&, float*);
template void sparse_times_dense<double>(const SparseRowsView<double>&, const double*, int64_t, int64_t,
                                         const RowSink<double>&, double*);
template void sparse_transpose_times_dense<float>(const SparseRowsView<float>&, const float*, int64_t, int64_t,
                                                  const RowSink<float>&, TransposeScratch<float>&,
                                                  const RowPrefetch&);
template void sparse_transpose_times_dense<double>(const SparseRowsView<double>&, const double*, int64_t, int64_t,
                                                   const RowSink<double>&, TransposeScratch<double>&,
                                                   const RowPrefetch&);
template RowPrefetch sparse_row_prefetch<float>(const SparseRowsView<float>&);
template RowPrefetch sparse_row_prefetch<double>(const SparseRowsView<double>&);
template void sparse_times_panels<float>(const SparseRowsView<float>*, int, const Panel<float>*, int, const float*,
                                         float*, int64_t, bool, TransposeScratch<float>&);
template void sparse_times_panels<double>(const SparseRowsView<double>*, int, const Panel<double>*, int,
                                          const double*, double*, int64_t, bool, TransposeScratch<double>&);
template void sparse_transpose_times_panels<float>(const SparseRowsView<float>&, const float*, int64_t,
                                                   const Panel<float>*, int, const RowSink<float>*,
                                                   TransposeScratch<float>&, const RowPrefetch&,
                                                   const PanelWork&);
template void sparse_transpose_times_panels<double>(const SparseRowsView<double>&, const double*, int64_t,
                                                    const Panel<double>*, int, const RowSink<double>*,
                                                    TransposeScratch<double>&, const RowPrefetch&,
                                                    const PanelWork&);
template int64_t transpose_block_rows<float>(int64_t);
template int64_t transpose_block_rows<double>(int64_t);
template void transpose_sparse_rows<float>(const SparseRowsView<float>&, std::vector<int64_t>&,
                                           std::vector<std::int32_t>&, std::vector<float>&, std::vector<int64_t>&);
template void transpose_sparse_rows<double>(const SparseRowsView<double>&, std::vector<int64_t>&,
                                            std::vector<std::int32_t>&, std::vector<double>&, std::vector<int64_t>&);
template int64_t csr_row_offsets<float>(const float*, int64_t, int64_t, int64_t, int64_t*);
template int64_t csr_row_offsets<double>(const double*, int64_t, int64_t, int64_t, int64_t*);
template int64_t count_nonzeros<float>(const float*, int64_t);
template int64_t count_nonzeros<double>(const double*, int64_t);
template int64_t compact_row<float, float>(const float*, int64_t, std::int32_t*, float*, std::int32_t*);
template int64_t compact_row<float, double>(const float*, int64_t, std::int32_t*, double*, std::int32_t*);
template int64_t compact_row<double, double>(const double*, int64_t, std::int32_t*, double*, std::int32_t*);
template int64_t compact_row<double, float>(const double*, int64_t, std::int32_t*, float*, std::int32_t*);
template void dense_to_csr<float, float>(const float*, int64_t, int64_t, int64_t, const int64_t*, std::int32_t*, float*);
template void dense_to_csr<float, double>(const float*, int64_t, int64_t, int64_t, const int64_t*, std::int32_t*, double*);
template void dense_to_csr<double, double>(const double*, int64_t, int64_t, int64_t, const int64_t*, std::int32_t*, double*);
template void dense_to_csr<double, float>(const double*, int64_t, int64_t, int64_t, const int64_t*, std::int32_t*, float*);

}  // namespace fastnn
