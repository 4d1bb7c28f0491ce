// Inputs stored as compressed sparse rows (CSR), and the one product the training epochs need
// from them: a sparse matrix times a dense one.
//
// MNIST-like data is mostly zeros (81% of MNIST's pixels), and a zero input contributes nothing
// to the first layer's product H_1 = X W_1 nor to its gradient ∇W_1 = Xᵀ G_1. With X in CSR
// form both products cost (nonzeros × d_1) multiply-adds instead of (rows × d_0 × d_1).
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/isa_getters.hpp"

namespace fastnn {

// A sparse matrix, row by row: the nonzeros of row r are values[t] in column indices[t] for
// t in [begin[r], end[r]). With begin = indptr and end = indptr + 1 this is plain CSR; other
// begin/end arrays select (and reorder) rows without copying them, e.g. a shuffled batch.
// column_counts, when not null, holds each column's number of nonzeros over the view's rows (a
// batch compacted from dense rows counts them as it goes), which the sort by column then need not
// count again.
template <typename T>
struct SparseRowsView {
    std::int64_t rows = 0;
    std::int64_t cols = 0;
    const std::int64_t* begin = nullptr;
    const std::int64_t* end = nullptr;
    const std::int32_t* indices = nullptr;
    const T* values = nullptr;
    const std::int32_t* column_counts = nullptr;
};

// out[r, 0:n] = act(init[0:n] + Σ_{t ∈ [begin[r], end[r])} values[t] · D[indices[t], 0:n])
// for every row r of A, where act is ReLU when `relu` (max(·, 0) with NaN kept, as the GEMM's
// epilogue and np.maximum) and the identity otherwise, init is a
// row vector (a bias) or null (zeros), D is dense with row stride ldd and out has row stride
// ldo. Every column index must be a valid row of D. Each output row sums its terms in the order
// t = begin[r], begin[r] + 1, …, so the result does not depend on the thread count. Rows are
// shared among the threads (fastnn::get_num_threads()); the vector kernel is the active ISA's.
template <typename T>
void sparse_times_dense(const SparseRowsView<T>& A, const T* D, std::int64_t ldd, std::int64_t n,
                        const T* init, T* out, std::int64_t ldo, bool relu);

// Columns c0 … c0 + n − 1 of a dense matrix held apart, at data with row stride ld (the
// first layer's weights split by columns, one panel per thread: see train_epoch.cpp).
template <typename T>
struct Panel {
    T* data = nullptr;
    std::int64_t ld = 0, c0 = 0, n = 0;
};

// sparse_times_dense with D in column panels, thread t computing panel t's columns of every row:
// out[r, c0_t : c0_t + n_t] = act(init[c0_t …] + Σ_t values · panel_t[indices, 0:n_t]). Each
// output value is the same sum as sparse_times_dense's. A holds `copies` views of the same rows:
// one (read by every thread) or one per panel (panel t's thread reads A[t], a copy in its own
// cache; the copies' offsets may differ, their rows may not). Each thread then sorts its share
// of A's nonzeros by column into `lists_for_transpose`, for sparse_transpose_times_panels (below)
// with the same A and panels: work that does not wait for the gradient.
template <typename T>
struct TransposeScratch;
template <typename T>
void sparse_times_panels(const SparseRowsView<T>* A, int copies, const Panel<T>* panels, int parts, const T* init,
                         T* out, std::int64_t ldo, bool relu, TransposeScratch<T>& lists_for_transpose);

// Where the products below send finished output rows instead of storing them:
// consume(context, r0, rows, values, ld) with rows r0 … r0 + rows − 1 of the result, row i at
// values + i·ld (then discarded).
template <typename T>
struct RowSink {
    void (*consume)(void* context, std::int64_t r0, std::int64_t rows, const T* values, std::int64_t ld);
    void* context;
};

// The same product (no init, no ReLU), row r handed to sink.consume as soon as it is complete,
// from the thread that computed it (rows never straddle threads). `scratch` holds
// get_num_threads() × n values. This lets a caller fuse a per-row step (an optimizer update)
// without ever storing the whole product.
template <typename T>
void sparse_times_dense(const SparseRowsView<T>& A, const T* D, std::int64_t ldd, std::int64_t n,
                        const RowSink<T>& sink, T* scratch);

// One nonzero of a list sorted by column: its row of A and its value, side by side, so that the
// sort's scattered writes land on one line per entry rather than two (one in an array of rows,
// one in an array of values). On the 2-vCPU Zen 4, a MNIST batch's sort alone (600 batches of 100
// rows, in cache) took 13-14 ms this way against 17-20 ms from two arrays.
template <typename T>
struct ListEntry {
    std::int32_t row;
    T value;
};

// Aᵀ D for a CSR A whose column indices are sorted within each row (rows × cols; any begin/end
// selection) and a dense D (A.rows × n, row stride ldd, where n is the row length padded to
// whole 64-byte lines, padding zero): the result (A.cols rows of n values) goes to sink block by
// block, as each is complete. Each thread takes a contiguous range of result rows (balanced by
// the nonzeros of the first call's A), in blocks of at most transpose_block_rows(n) rows, small
// enough for L2; each row sums its terms in row order of A, so neither the blocks nor the
// thread count change the result. `scratch` is grown as needed (so a caller that keeps it allocates nothing per call).
template <typename T>
struct TransposeScratch {
    std::vector<ListEntry<T>> entries;        // the sorted lists
    std::vector<T> values;                    // each thread's block of results
    std::vector<std::int64_t> counts;
    std::vector<std::int64_t> first_column;   // thread t's result rows start at first_column[t]
    std::vector<std::int64_t> first_block;    // (panels) thread t sorts the blocks from first_block[t] on
    std::vector<std::int64_t> block_offsets;  // thread t's blocks' lists are from block_offsets[t] on
    // (panels) A set of sorted lists per panel, each sorted whole by its panel's own thread from
    // its own copy of A, where there is a copy per panel; else one shared set (sparse_rows.cpp,
    // panel_list_sets). The caller's choice; the results are the same either way.
    bool lists_per_panel = false;
    int list_sets = 1;                        // (panels) sets of lists the last sparse_times_panels left
};
// Rows to bring into cache while a product runs (in training: the next batch's, so that they
// are in cache when that batch comes): fetch(context, r) asks for row r, 0 <= r < rows.
struct RowPrefetch {
    std::int64_t rows = 0;
    void (*fetch)(const void* context, std::int64_t r) = nullptr;
    const void* context = nullptr;
};
// The rows of a CSR view (their column indices and values); the view must outlive its use.
template <typename T>
RowPrefetch sparse_row_prefetch(const SparseRowsView<T>& rows);

// Along the way the rows of `ahead` are prefetched, each thread the share [rows·t/T,
// rows·(t+1)/T) that it takes in sparse_times_dense, a part after each of its blocks.
template <typename T>
void sparse_transpose_times_dense(const SparseRowsView<T>& A, const T* D, std::int64_t ldd, std::int64_t n,
                                  const RowSink<T>& sink, TransposeScratch<T>& scratch,
                                  const RowPrefetch& ahead = {});
template <typename T>
std::int64_t transpose_block_rows(std::int64_t n);

// Aᵀ D (as sparse_transpose_times_dense; D padded with zeros to whole 64-byte lines, row stride
// ldd) for a first layer held in column panels, after sparse_times_panels with the same A,
// panels and scratch, which left A's nonzeros there sorted by column in blocks of result rows:
// thread t gathers panel t's columns of every block (panels[t].ld of them: D's zero padding
// fills a last narrow panel) and hands them to sinks[t] block by block. Each value sums its
// terms in row order of A, as sparse_transpose_times_dense's do (A: any one of the copies given
// to sparse_times_panels; only its shape is read). Meanwhile thread t prefetches its share of `ahead`.
// First the thread of panel t calls also.run(also.context, t) when `also.run` is set: other
// work of that panel's columns, done where they are in cache (the next layer's ∇W rows).
struct PanelWork {
    void (*run)(void* context, int part) = nullptr;
    void* context = nullptr;
};
template <typename T>
void sparse_transpose_times_panels(const SparseRowsView<T>& A, const T* D, std::int64_t ldd, const Panel<T>* panels,
                                   int parts, const RowSink<T>* sinks, TransposeScratch<T>& scratch,
                                   const RowPrefetch& ahead = {}, const PanelWork& also = {});

// The transpose of a selection of rows, as CSR of Aᵀ (A.cols rows): fills `indptr` (A.cols + 1
// entries), `rows` and `values` (one entry per nonzero, resized as needed, never shrunk) so
// that column c of A holds values[t] in row rows[t] of A for t in [indptr[c], indptr[c+1]),
// rows in increasing order. Threaded (a counting sort by column, each thread taking a range of
// rows); `counts` is scratch, resized as needed.
template <typename T>
void transpose_sparse_rows(const SparseRowsView<T>& A, std::vector<std::int64_t>& indptr,
                           std::vector<std::int32_t>& rows, std::vector<T>& values,
                           std::vector<std::int64_t>& counts);

// Which of sparse_times_dense's rows kernels runs (sparse_detail::Kernels): 0 (the default) by
// the shape, as above; 1 always the blocked one; -1 never. Only the speed differs, never a result
// (tests force both; benchmarks compare them).
int& sparse_blocked_setting();

// The most vectors of columns per pass of the ∇W_1 gather (sparse_detail::Kernels::gather_block):
// 0 (the default) as many as keep a pass's reads of the batch's rows within the L1 data cache
// (l1d_cache_bytes()), at least the ISA's kGatherMinPassVectors and at most its kMaxVectors; n > 0
// passes of at most n. Only the speed differs, never a result (tests force several).
int& gather_pass_setting();

// Whether every column index is in [0, cols) and non-decreasing within each row (indptr has
// rows + 1 valid, non-decreasing offsets). One threaded pass; the caller looks for the culprit
// only when this says no.
bool sparse_indices_valid(const std::int64_t* indptr, const std::int32_t* indices, std::int64_t rows,
                          std::int64_t cols);

// The row offsets of the CSR form of a dense matrix (rows × cols, row stride ld): indptr[0] = 0
// and indptr[r + 1] = indptr[r] + the nonzeros of row r (NaN counts as nonzero). Threaded;
// returns the number of nonzeros.
template <typename TX>
std::int64_t csr_row_offsets(const TX* X, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                             std::int64_t* indptr);

// The number of nonzeros of one dense row x of cols values (NaN counts as nonzero).
template <typename TX>
std::int64_t count_nonzeros(const TX* x, std::int64_t cols);

// The nonzeros of one dense row x (cols values; NaN counts as nonzero), in column order:
// their column indices into idx and their values, converted to T, into val. Returns their
// count p; entries p … p + 15 of idx and val may be overwritten too (whole-vector stores), so
// both need room for p + 16 entries. With column_counts (cols entries), adds 1 to
// column_counts[c] for each nonzero's column c.
template <typename TX, typename T>
std::int64_t compact_row(const TX* x, std::int64_t cols, std::int32_t* idx, T* val,
                         std::int32_t* column_counts = nullptr);

// The rest of the CSR form, given indptr from csr_row_offsets: indices and values (indptr[rows]
// each), columns in increasing order within a row, values converted to T. Threaded.
template <typename TX, typename T>
void dense_to_csr(const TX* X, std::int64_t rows, std::int64_t cols, std::int64_t ld,
                  const std::int64_t* indptr, std::int32_t* indices, T* values);

namespace sparse_detail {

// Scratch of one block of the transpose product: the block's nonzeros sorted by column.
template <typename T>
struct BlockLists {
    std::int64_t* start;     // column c's entries are [start[c], start[c + 1])
    ListEntry<T>* entry;     // (row of A, value)
};

// sparse_times_dense's rows kernels: `rows` walks all of D's rows for each output row; `rows_blocked`
// takes D's rows a block of kFeatureBlock at a time for a group of output rows, each row's partial
// sums stored and loaded again between blocks (sparse_kernels.hpp, blocked_chunk). The same sums in
// the same order: the same bits. The blocked one serves batches whose D outgrows the L2; the
// driver takes it for at least kBlockedMinRows rows when D's rows for A's columns take more than
// kBlockedMinBytes, A has more than kFeatureBlock columns and at least one nonzero per row and
// block of columns on average (sparse_rows.cpp, rows_kernel_for).
// Measured on the 2-vCPU Zen 4 (AMD EPYC, family 25 model 17, 1 MB L2), raw MNIST, batch 100,
// epochs new/old in one process (tools/ab_epochs.py): 784-400-10 0.884 on 1 thread (W_1 is 1.25 MB)
// and 0.927 on 2 (a 650 KB panel each); 784-200-10 0.922 / 0.985; 784-100-10 0.973 / 0.960;
// 784-64-10 0.938 on 1 thread; 784-48-10 (150 KB) 1.016; 784-256-128-10 0.977 / 0.983. Blocks of
// 64 and 192 features against 128: 0.990 / 1.035 on h = 400, 1.015 / 1.009 on h = 100 (1 thread).
constexpr std::int64_t kFeatureBlock = 128;
constexpr std::int64_t kBlockedMinRows = 16;
constexpr std::int64_t kBlockedMinBytes = 160 * 1024;

// One ISA's kernels (sparse_kernels.hpp).
template <typename T>
struct Kernels {
    // rows r0 … r1 − 1 of sparse_times_dense (two ways, above)
    void (*rows)(const SparseRowsView<T>& A, std::int64_t r0, std::int64_t r1, const T* D, std::int64_t ldd,
                 std::int64_t n, const T* init, T* out, std::int64_t ldo, bool relu);
    void (*rows_blocked)(const SparseRowsView<T>& A, std::int64_t r0, std::int64_t r1, const T* D, std::int64_t ldd,
                         std::int64_t n, const T* init, T* out, std::int64_t ldo, bool relu);
    int lanes;   // values per vector
    // the nonzeros of one float row: columns and values as T (room for cols + 16); returns the
    // count; counts (nullable) gains 1 at each nonzero's column
    std::int64_t (*compact_row_f32)(const float* x, std::int64_t cols, std::int32_t* idx, T* val,
                                    std::int32_t* counts);
    // the number of nonzeros of one float row
    std::int64_t (*count_row_f32)(const float* x, std::int64_t cols);
    // the gather of n columns of D from a block's lists: G (ncols rows) = Σ over each list of a · D[r, 0:n],
    // in passes of at most pass_vectors vectors where a row takes more than max_vectors
    void (*gather_block)(const BlockLists<T>& lists, std::int64_t ncols, const T* D, std::int64_t ldd, std::int64_t n,
                         T* G, std::int64_t ldg, int pass_vectors);
    int max_vectors;             // accumulators per pass (kMaxVectors)
    int gather_min_pass_vectors; // the smallest pass the gather is given (kGatherMinPassVectors)
};

FASTNN_ISA_GETTERS(Kernels, kernels);   // one set per file of sparse/kernels/

}  // namespace sparse_detail
}  // namespace fastnn
