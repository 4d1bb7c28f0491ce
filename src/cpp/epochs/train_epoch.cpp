// The training epoch of every L-layer ReLU net, and inference of nets with biases (see train_epoch.hpp).
#include "epochs/train_epoch.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <array>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>

#include "epochs/batch_compaction.hpp"
#include "epochs/forward_pass.hpp"
#include "epochs/output_loss.hpp"
#include "epochs/softmax_cross_entropy.hpp"
#include "epochs/softmax_epoch.hpp"
#include "gemm/gemm.hpp"
#include "sparse/sparse_rows.hpp"
#include "runtime/threads.hpp"

namespace fastnn {
namespace {

using std::int64_t;

inline std::size_t sz(int64_t n) { return static_cast<std::size_t>(n); }

// Parameter updates are split into chunks of about this many values, shared among the threads.
constexpr int64_t kUpdateChunk = 16384;

// Scratch rows start on cache lines: an allocator for 64-byte-aligned vectors.
template <typename T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <typename U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(64)); }
    template <typename U>
    bool operator==(const CacheLineAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const CacheLineAllocator<U>&) const { return false; }
};
template <typename T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

// `n` rounded up to whole 64-byte lines of T.
template <typename T>
int64_t padded(int64_t n) {
    constexpr int64_t line = 64 / static_cast<int64_t>(sizeof(T));
    return (n + line - 1) / line * line;
}

// Scratch for batches of up to `rows` rows, allocated once per call and reused. Layer i's
// activations and gradients have row stride ld[i] (d_i, or d_i padded to whole cache lines).
template <typename T>
struct BiasedScratch {
    std::vector<AlignedVector<T>> H;    // H[i], i = 1 … L−1: rows × d_i (post-ReLU)
    std::vector<AlignedVector<T>> G;    // G[i], i = 1 … L: rows × d_i; G[L] holds Z first
    std::vector<AlignedVector<T>> gW;   // ∇W_i without the L2 term (training only), row stride ld[i+1]
    std::vector<std::vector<T>> gb;     // ∇b_i (training only, present biases)
    std::vector<std::array<int64_t, 3>> tasks;   // the backward pass's parameter-gradient tasks
    std::vector<std::array<int64_t, 3>> dealt;   // ... in the order the threads take them (deal)
    std::vector<int64_t> part_work, part_begin;  // (share_by_work: part t's tasks dealt[part_begin[t] …])
    std::vector<int> part_of_task;

    BiasedScratch(const BiasedNetwork<T>& net, int64_t rows, const std::vector<int64_t>& ld, bool train) {
        const int64_t L = net.layers();
        const auto& d = net.dims;
        H.resize(sz(L));
        G.resize(sz(L + 1));
        for (int64_t i = 1; i <= L; ++i) {
            if (i < L) H[i].resize(sz(rows * ld[i]));
            G[i].resize(sz(rows * ld[i]));
        }
        if (train) {
            gW.resize(sz(L));
            gb.resize(sz(L));
            for (int64_t i = 0; i < L; ++i) {
                gW[i].resize(sz(d[i] * ld[i + 1]));
                if (net.b[i]) gb[i].resize(sz(d[i + 1]));
            }
        }
    }
};

// A matrix (W_1, or one of its optimizer buffers) with padded rows (the sparse path; dense rows of a
// width that does not fill whole lines, in one panel), split by columns into
// `parts` panels (at whole 32-column units), each its own allocation with rows padded to whole cache
// lines (padding zero): the loads of a row never straddle two lines, and the update runs over
// whole blocks of rows at once. With one panel per thread, each thread keeps its columns of W_1
// in its own cache for the whole epoch: no line of W_1 moves between cores from batch to batch.
// (Splitting the columns of one shared row-major copy instead gained nothing, measured: lines
// next to the split still travel, e.g. fetched by the other core's prefetchers.)
//
// With `strip` > 0 (the dense path) each part is cut further into panels of at most `strip`
// columns, the GEMM micro-kernel's NR (gemm_tile_columns): a panel is then k × NR values in a row,
// which the micro-kernel reads as the packed micro-panel it was written for -- each k step's B
// values one contiguous 128-byte run, the next step's right behind it -- where a row-major W_1
// gives it one run per row, 1600 bytes apart for d_1 = 400. Nothing is packed per batch: the
// panels are W_1 itself for the epoch. (Measured on an Intel Xeon family 6 model 207, 1 thread,
// 100×784·784×416 over an epoch of batches: 13 calls on contiguous 784×32 panels 1.07x faster than
// one call on the row-major W_1, call overhead from Python included.) part t owns panels
// first_panel(t) … first_panel(t + 1) − 1.
//
// The caller's matrix is copied in at construction and written back when this goes out of scope,
// however the epoch ends.
template <typename T>
class ColumnPanels {
public:
    // Panels split at multiples of `unit` columns, by default kUnit: whole cache lines, and whole
    // kRowChunk-row chunks of the next layer's weight gradient (the sparse path computes it per
    // panel, in those chunks); the dense path's panels split at whole lines (kLineUnit).
    static constexpr int64_t kUnit = 32;
    static constexpr int64_t kLineUnit = 64 / static_cast<int64_t>(sizeof(T));
    static_assert(kUnit * sizeof(double) % 64 == 0, "a panel starts on a cache line");
    ColumnPanels(T* W, int64_t rows, int64_t cols, int parts, int64_t unit = kUnit, int64_t strip = 0)
        : W_(W), rows_(rows), cols_(cols) {
        const int64_t units = (cols + unit - 1) / unit;
        parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(parts, units)));
        for (int t = 0; t < parts; ++t) {
            first_.push_back(static_cast<int>(panels_.size()));
            const int64_t c0 = std::min(cols, units * t / parts * unit);
            const int64_t c1 = std::min(cols, units * (t + 1) / parts * unit);
            const int64_t width = strip > 0 ? strip : c1 - c0;
            for (int64_t c = c0; c < c1; c += width) {
                Panel<T> p;
                p.c0 = c;
                p.n = std::min(c1, c + width) - c;
                p.ld = padded<T>(p.n);
                panels_.push_back(p);
            }
        }
        first_.push_back(static_cast<int>(panels_.size()));
        store_.resize(panels_.size());
        for (std::size_t i = 0; i < panels_.size(); ++i) {
            Panel<T>& p = panels_[i];
            store_[i].resize(sz(rows * p.ld));
            p.data = store_[i].data();
            for (int64_t r = 0; r < rows; ++r)
                std::copy(W + r * cols + p.c0, W + r * cols + p.c0 + p.n, p.data + r * p.ld);
        }
    }
    ~ColumnPanels() {
        for (const Panel<T>& p : panels_)
            for (int64_t r = 0; r < rows_; ++r) std::copy(p.data + r * p.ld, p.data + r * p.ld + p.n, W_ + r * cols_ + p.c0);
    }
    ColumnPanels(const ColumnPanels&) = delete;
    ColumnPanels& operator=(const ColumnPanels&) = delete;
    const std::vector<Panel<T>>& panels() const { return panels_; }
    int parts() const { return static_cast<int>(first_.size()) - 1; }
    int first_panel(int part) const { return first_[sz(part)]; }
    T* data() { return panels_[0].data; }   // with one panel: the whole padded matrix
    int64_t ld() const { return panels_[0].ld; }

private:
    T* W_;
    int64_t rows_, cols_;
    std::vector<AlignedVector<T>> store_;
    std::vector<Panel<T>> panels_;
    std::vector<int> first_;
};

// Where a batch's rows come from, and the first layer's two products with them. The rest of the
// epoch (hidden layers, softmax, backward, update) is shared by both kinds of input.
//
// Dense rows: read in place or gathered (and/or widened) into scratch; the products are GEMMs.
template <typename T, typename TX>
class DenseInput {
public:
    DenseInput(const DataMatrix<TX>& X, const int64_t* order, int64_t max_rows)
        : X_(X), order_(order), max_rows_(max_rows) {
        if (!forward_pass::batch_in_place<T, TX>(order)) x_.resize(sz(max_rows * X.cols));
    }
    // Does gemm read the batches fetch gives in place, at their row stride (X's own where the rows
    // are read in place, else that of the scratch they are gathered or widened into)?
    bool gemm_reads_batches_in_place() const {
        const int64_t ld = forward_pass::batch_in_place<T, TX>(order_) ? X_.ld : X_.cols;
        return gemm_reads_rows_in_place<T>(max_rows_, X_.cols, ld);
    }
    void fetch(int64_t start, int64_t B) {
        B_ = B;
        Xb_ = forward_pass::batch_rows(X_, order_, start, B, x_, ldx_);
        // The next batch's rows, when they follow these in X (no order): see first_layer_sgd.
        const int64_t next_rows = order_ ? 0 : std::min(max_rows_, X_.rows - start - B);
        next_ = {X_.data + (start + B) * X_.ld,
                 next_rows > 0 ? ((next_rows - 1) * X_.ld + X_.cols) * static_cast<int64_t>(sizeof(TX)) : 0};
    }
    // Rows of W_1, H_1 and G_1 padded to whole cache lines (when d_1 does not fill them): the
    // threads of the first layer's GEMMs split C's columns, and with rows of, say, 100 floats
    // (400 bytes) the end of one row and the start of the next share a line that both threads
    // write -- false sharing. Measured on the 2-core Xeon, W_1 −= lr·X_bᵀG_1 with d_1 = 100:
    // 1.31x faster on 2 threads than on 1, with d_1 = 112 (448-byte rows) 1.60x.
    static constexpr bool kPadFirstLayer = true;
    static constexpr bool kFusedFirstUpdate = false;  // ∇W_1 is stored, then W_1 updated

    // H_1 = act(X_b W_1 + b_1)   (W_1 with row stride ldw, H_1 with row stride ld)
    void first_layer(const T* W, int64_t ldw, const T* b, int64_t d1, T* out, int64_t ld, bool relu) const {
        forward_pass::layer<T>(Xb_, ldx_, B_, W, b, X_.cols, d1, out, relu, ldw, ld);
    }
    // ∇W_1 (without the L2 term) = X_bᵀ G_1
    void first_layer_gradient(const T* G1, int64_t ldg, int64_t d1, T* gW, int64_t ldw) {
        gemm<T>(Op::T, Op::N, X_.cols, d1, B_, T(1), Xb_, ldx_, G1, ldg, T(0), gW, ldw);
    }
    // The same three on one column panel of W_1 (a thread's own, Panel p: columns p.c0 … of W_1, H_1
    // and G_1), blocked in k as the whole product of d1 columns is (the same bits).
    void first_layer(const Panel<T>& p, const T* b, int64_t d1, T* out, int64_t ld, bool relu) const {
        forward_pass::layer<T>(Xb_, ldx_, B_, p.data, b ? b + p.c0 : nullptr, X_.cols, p.n, out + p.c0, relu, p.ld,
                               ld, d1);
    }
    void first_layer_gradient(const T* G1, int64_t ldg, int64_t d1, const Panel<T>& p, T* gW) const {
        gemm<T>(Op::T, Op::N, X_.cols, p.n, B_, T(1), Xb_, ldx_, G1 + p.c0, ldg, T(0), gW, p.ld, Epilogue::none,
                nullptr, 0, {}, d1);
    }
    // Panel i of n also prefetches share i of n of the next batch's lines (into L2), so that each
    // thread pulls about its part's share into its own cache, not the whole batch: the next forward
    // reads the other shares from the other cores' caches. (Every thread the whole batch, as
    // before: each thread's lines in bursts of ~44 per micro-kernel call on 784-100-10, every core
    // reading all of the next batch from DRAM at once; measured on an Intel Xeon family 6 model
    // 167, 2 threads, centred MNIST, new/old epochs alternating: 784-100-10 0.921-0.926,
    // 784-400-10 0.993-0.995.)
    void first_layer_sgd(const T* G1, int64_t ldg, int64_t d1, const Panel<T>& p, T lr, int i, int n) const {
        const int64_t lines = (next_.bytes + 63) / 64, l0 = lines * i / n, l1 = lines * (i + 1) / n;
        const PrefetchRange share{static_cast<const char*>(next_.data) + 64 * l0,
                                  std::min(next_.bytes, 64 * l1) - std::min(next_.bytes, 64 * l0)};
        gemm<T>(Op::T, Op::N, X_.cols, p.n, B_, -lr, Xb_, ldx_, G1 + p.c0, ldg, T(1), p.data, p.ld, Epilogue::none,
                nullptr, 0, share, d1);
    }
    // Plain SGD inside the gradient's GEMM (β = 1): W_1 ← W_1 − lr · X_bᵀ G_1, pulling the next
    // batch's rows into L2 meanwhile (the next first-layer GEMM then packs them from cache).
    void first_layer_sgd(const T* G1, int64_t ldg, int64_t d1, T* W, int64_t ldw, T lr) const {
        gemm<T>(Op::T, Op::N, X_.cols, d1, B_, -lr, Xb_, ldx_, G1, ldg, T(1), W, ldw, Epilogue::none, nullptr, 0,
                next_);
    }

private:
    const DataMatrix<TX>& X_;
    const int64_t* order_;
    int64_t max_rows_;
    std::vector<T> x_;
    const T* Xb_ = nullptr;
    int64_t ldx_ = 0, B_ = 0;
    PrefetchRange next_;
};

// The first layer's two products from a batch held as CSR rows (sparse_rows.hpp), for the
// inputs below, which differ only in where the batch's rows come from (their fetch sets batch_
// and, when the next batch's rows are known, ahead_). The products cost nonzeros × d_1
// multiply-adds. The gradient needs the batch by columns: its transpose is built per batch
// into buffers that only grow.
template <typename T>
class SparseFirstLayer {
public:
    static constexpr bool kPadFirstLayer = true;    // rows of W_1, H_1, G_1 padded to cache lines
    static constexpr bool kFusedFirstUpdate = true;   // each row of ∇W_1 goes straight to the update

    void first_layer(const T* W, int64_t ldw, const T* b, int64_t d1, T* out, int64_t ld, bool relu) const {
        sparse_times_dense<T>(batch_, W, ldw, d1, b, out, ld, relu);
    }
    void first_layer_gradient(const T* G1, int64_t ldg, int64_t d1, T* gW, int64_t ldw) {
        sparse_times_dense<T>(batch_by_column(), G1, ldg, d1, nullptr, gW, ldw, false);
    }
    // Row k of ∇W_1 (without the L2 term) handed to sink as soon as it is complete: from blocks
    // of X_bᵀ G_1 kept in cache when G_1's rows are padded (zeros) to whole cache lines, else from
    // the batch's transpose (the logits of a one-layer net: a few columns).
    void first_layer_gradient(const T* G1, int64_t ldg, int64_t d1, const RowSink<T>& sink) {
        if (ldg == padded<T>(d1))
            sparse_transpose_times_dense<T>(batch_, G1, ldg, ldg, sink, transpose_scratch_, ahead_);
        else
            sparse_times_dense<T>(batch_by_column(), G1, ldg, d1, sink, row_scratch_.data());
    }

    // The same with W_1 in column panels, one per thread (thread t: panel t's columns of every
    // row): H_1 = act(X_b W_1 + b_1), each thread then sorting its share of X_b's nonzeros by
    // column for ∇W_1 (work that does not wait for G_1; the narrower panel's thread takes more) ...
    void first_layer(const std::vector<Panel<T>>& W, const T* b, T* out, int64_t ld, bool relu) {
        sparse_times_panels<T>(copies(), n_copies_, W.data(), static_cast<int>(W.size()), b, out, ld, relu,
                               transpose_scratch_);
    }
    // ... and ∇W_1 = X_bᵀ G_1, panel t's columns handed to sinks[t] by blocks of rows.
    // `also` runs first on each panel's thread (sparse_transpose_times_panels).
    void first_layer_gradient(const T* G1, int64_t ldg, const std::vector<Panel<T>>& W,
                              const std::vector<RowSink<T>>& sinks, const PanelWork& also) {
        sparse_transpose_times_panels<T>(copies()[0], G1, ldg, W.data(), static_cast<int>(W.size()),
                                         sinks.data(), transpose_scratch_, ahead_, also);   // (lists: first_layer's)
    }

    // The panel products' sorted lists: a set per panel, or one shared (panel_lists_setting) --
    // a choice only where each of `parts` panels gets a copy of the batch (CompactedInput).
    void set_lists_per_panel(bool per_panel) { transpose_scratch_.lists_per_panel = per_panel; }
    bool copy_per_panel(int /*parts*/) const { return false; }

protected:
    explicit SparseFirstLayer(int64_t d1) : row_scratch_(sz(get_num_threads() * d1)) {}

    SparseRowsView<T> batch_;
    // The panel products' batch: n_copies_ identical copies, thread t's at copies_[t] (null: batch_
    // alone; see batch_compaction.hpp).
    const SparseRowsView<T>* copies_ = nullptr;
    int n_copies_ = 1;
    RowPrefetch ahead_;   // the next batch's rows, brought into cache during the gradient

private:
    const SparseRowsView<T>* copies() const { return copies_ ? copies_ : &batch_; }

    // The batch by columns (∇W_1 = X_bᵀ G_1 takes row k of X_bᵀ, i.e. column k of X_b).
    SparseRowsView<T> batch_by_column() {
        transpose_sparse_rows<T>(batch_, colptr_, rows_, values_, counts_);
        SparseRowsView<T> by_column;
        by_column.rows = batch_.cols;
        by_column.cols = batch_.rows;
        by_column.begin = colptr_.data();
        by_column.end = colptr_.data() + 1;
        by_column.indices = rows_.data();
        by_column.values = values_.data();
        return by_column;
    }

    std::vector<int64_t> colptr_, counts_;
    std::vector<std::int32_t> rows_;
    std::vector<T> values_, row_scratch_;
    TransposeScratch<T> transpose_scratch_;
};

// CSR rows: a batch is a list of row ranges of X, nothing is copied; the next batch's rows are
// prefetched during this one's gradient.
template <typename T>
class SparseInput : public SparseFirstLayer<T> {
public:
    SparseInput(const SparseRowsView<T>& X, const int64_t* order, int64_t n_order, int64_t max_rows, int64_t d1)
        : SparseFirstLayer<T>(d1), X_(X), order_(order), n_order_(n_order), begin_(sz(max_rows)),
          end_(sz(max_rows)), next_begin_(sz(max_rows)), next_end_(sz(max_rows)) {}
    void fetch(int64_t start, int64_t B) {
        this->batch_ = rows_view(start, B, begin_, end_);
        // The next batch's rows (scattered over X when shuffled), to prefetch during this one.
        next_ = rows_view(start + B, std::max<int64_t>(0, std::min(B, n_order_ - (start + B))), next_begin_,
                          next_end_);
        this->ahead_ = sparse_row_prefetch(next_);
    }

private:
    // Entries first … first + count − 1 of the order (null: rows first …) as a view of X whose
    // row ranges are stored in `begin` / `end`.
    SparseRowsView<T> rows_view(int64_t first, int64_t count, std::vector<int64_t>& begin,
                                std::vector<int64_t>& end) const {
        for (int64_t r = 0; r < count; ++r) {
            const int64_t row = order_ ? order_[first + r] : first + r;
            begin[sz(r)] = X_.begin[row];
            end[sz(r)] = X_.end[row];
        }
        SparseRowsView<T> view = X_;
        view.rows = count;
        view.begin = begin.data();
        view.end = end.data();
        return view;
    }

    SparseRowsView<T> X_, next_;
    const int64_t* order_;
    int64_t n_order_;
    std::vector<int64_t> begin_, end_, next_begin_, next_end_;
};

// Dense rows whose zeros are skipped: each batch's rows are compacted into CSR scratch
// (batch_compaction.hpp), and the products are the sparse ones. The result equals the dense
// input's up to rounding and does not depend on the thread count. Worth it when most of X is
// zeros (MNIST: 81%).
template <typename T, typename TX>
class CompactedInput : public SparseFirstLayer<T> {
public:
    CompactedInput(const DataMatrix<TX>& X, const int64_t* order, int64_t n_order, int64_t max_rows, int64_t d1)
        : SparseFirstLayer<T>(d1), batches_(X, order, n_order, max_rows) {}
    bool copy_per_panel(int parts) const { return parts > 1 && batches_.copies_for(parts) == parts; }
    void fetch(int64_t start, int64_t B) {
        batches_.fetch(start, B);
        this->batch_ = batches_.views()[0];
        this->copies_ = batches_.views();
        this->n_copies_ = batches_.copies();
        this->ahead_ = batches_.next_batch();   // prefetched into L2 during this batch's gradient
    }

private:
    CompactedBatches<T, TX> batches_;
};

using forward_pass::for_chunks;
using forward_pass::kRowChunk;
using forward_pass::kSplitMinWork;

// n contiguous values of a parameter, its gradient and the optimizer's buffers (m: velocity or
// first moment, v: second moment; null where the optimizer keeps none) through the active
// ISA's SGD or Adam loop.
template <typename T>
void update_stretch(const UpdateKernels<T>& kernels, bool adam, const OptimizerConfig& opt, T* p, const T* g,
                    T* m, T* v, int64_t n, T lr, T l2) {
    if (adam)
        kernels.adam(p, g, m, v, n, lr, opt.beta1, opt.beta2, static_cast<T>(opt.epsilon), l2);
    else
        kernels.sgd(p, g, m, n, lr, static_cast<T>(opt.momentum), opt.nesterov, l2);
}

// The update of one parameter (rows × cols, row stride ldp, gradient with row stride ldg; the
// optimizer's buffers contiguous), by the active ISA's loops. Element-wise, so sharing its rows
// among the threads changes no result.
template <typename T>
void update_parameter(const UpdateKernels<T>& kernels, bool adam, const OptimizerConfig& opt, T* param, int64_t ldp,
                      const T* g, int64_t ldg, T* first, T* second, int64_t rows, int64_t cols, T lr, T l2) {
    auto buffer = [](T* b, int64_t offset) { return b ? b + offset : nullptr; };
    auto update_rows = [&](int64_t r0, int64_t r1) {
        if (ldp == cols && ldg == cols) {   // contiguous: one call for the whole range
            const int64_t o = r0 * cols;
            update_stretch(kernels, adam, opt, param + o, g + o, buffer(first, o), buffer(second, o),
                           (r1 - r0) * cols, lr, l2);
            return;
        }
        for (int64_t r = r0; r < r1; ++r)
            update_stretch(kernels, adam, opt, param + r * ldp, g + r * ldg, buffer(first, r * cols),
                           buffer(second, r * cols), cols, lr, l2);
    };
    const int64_t rows_per_chunk = std::max<int64_t>(1, kUpdateChunk / std::max<int64_t>(1, cols));
    const int64_t n_chunks = (rows + rows_per_chunk - 1) / rows_per_chunk;
    const int nthreads = n_chunks > 1 ? std::min<int>(get_num_threads(), static_cast<int>(n_chunks)) : 1;
    if (nthreads == 1) {
        update_rows(0, rows);
        return;
    }
    for_chunks(rows, rows_per_chunk, /*parallel=*/true, [&](int64_t, int64_t r0, int64_t r1) { update_rows(r0, r1); });
}

// Each task, in the list's order, to the part with the least work so far (`work`: each part's
// work before any task, in multiply-adds; ties to the lowest part), listed part by part in `out`:
// part t's are out[begin[t]] … out[begin[t + 1] − 1]. (The first layer's panels are rarely even:
// 784-100-10 on 2 threads splits W_1's columns 48 | 52, so the lighter thread takes the small
// products of the later layers while the other finishes its panel. Measured on an Intel Xeon
// family 6 model 167, 2 threads, centred MNIST, against a team of their own dealt evenly,
// new/old epochs alternating: hw0's 784-100-10 0.968, 784-400-10 0.961; the estimators' Adam
// epochs 0.957 and 0.994. Dealt evenly inside the panels' team instead: 0.976, 0.995.)
template <typename Cost>
void share_by_work(const std::vector<std::array<int64_t, 3>>& tasks, const Cost& cost, std::vector<int64_t>& work,
                   std::vector<int>& part_of, std::vector<std::array<int64_t, 3>>& out, std::vector<int64_t>& begin) {
    const std::size_t parts = work.size();
    part_of.resize(tasks.size());
    for (std::size_t i = 0; i < tasks.size(); ++i) {
        const std::size_t t = sz(std::min_element(work.begin(), work.end()) - work.begin());
        part_of[i] = static_cast<int>(t);
        work[t] += cost(tasks[i]);
    }
    out.clear();
    begin.assign(parts + 1, 0);
    for (std::size_t t = 0; t < parts; ++t) {
        begin[t] = static_cast<int64_t>(out.size());
        for (std::size_t i = 0; i < tasks.size(); ++i)
            if (part_of[i] == static_cast<int>(t)) out.push_back(tasks[i]);
    }
    begin[parts] = static_cast<int64_t>(out.size());
}

// The tasks (what, lo, hi) reordered for `parts` threads that take contiguous, equal ranges of the
// list (for_chunks): each parameter's run of tasks is split into `parts` contiguous shares, and
// thread p's range holds share p of every parameter, as one `omp for` per parameter would.
inline void deal(const std::vector<std::array<int64_t, 3>>& tasks, int parts,
                 std::vector<std::array<int64_t, 3>>& dealt) {
    dealt.clear();
    for (int64_t p = 0; p < parts; ++p)
        for (std::size_t g = 0; g < tasks.size();) {   // g: the first task of a parameter's run
            std::size_t end = g;
            while (end < tasks.size() && tasks[end][0] == tasks[g][0]) ++end;
            const int64_t n = static_cast<int64_t>(end - g), q = n / parts, r = n % parts;
            const int64_t first = p * q + std::min(p, r), count = q + (p < r ? 1 : 0);
            for (int64_t i = first; i < first + count; ++i) dealt.push_back(tasks[g + sz(i)]);
            g = end;
        }
}

// ‖W‖² over n values, in double, in eight independent lanes (so the loop vectorises).
template <typename T>
double squared_norm(const T* W, int64_t n) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = 0;
    for (; j + 8 <= n; j += 8)
        for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(W[j + l]) * static_cast<double>(W[j + l]);
    double sq = 0;
    for (; j < n; ++j) sq += static_cast<double>(W[j]) * static_cast<double>(W[j]);
    for (int l = 0; l < 8; ++l) sq += lane[l];
    return sq;
}

// ‖W_1‖² for the L2 term of the epochs with a hidden layer, kept as the sums of squares of W_1's
// columns (UpdateKernels::column_squares):
//
//     s_c = Σ_r W_1[r, c]²   (rows in order, in double),     ‖W_1‖² = Σ_c s_c   (columns in order)
//
// No layout of W_1 (whole, rows padded, column panels, strips) and no thread count changes these
// sums: every column lies in one panel, and its sum runs down its rows. So each thread refreshes
// its own panel's columns right after it updates them, a block of rows at a time while they are in
// cache (FirstLayerUpdate, with blocks of block_rows rows on the dense path), instead of one thread
// reading the whole W_1 once more for every batch's loss, a chain of 8 lanes over all its values,
// half of them lines in the other core's cache (and the sparse path keeping W_1 whole for it).
template <typename T>
class ColumnSquares {
public:
    explicit ColumnSquares(int64_t cols) : s_(sz(cols), 0.0) {}
    // s_c of columns c0 … c0 + n − 1, from a panel (or the whole W_1) of `rows` rows, stride ld.
    void refresh(const UpdateKernels<T>& kernels, const T* W, int64_t rows, int64_t c0, int64_t n, int64_t ld) {
        std::fill(s_.begin() + c0, s_.begin() + c0 + n, 0.0);
        kernels.column_squares(W, rows, n, ld, s_.data() + c0);
    }
    // Rows of stride ld updated, then their squares added, at a time: 16 KiB of float32, in L1
    // between the two.
    static int64_t block_rows(int64_t ld) { return std::max<int64_t>(1, 4096 / ld); }
    double total() const {
        double sq = 0;
        for (const double s : s_) sq += s;
        return sq;
    }
    double* data() { return s_.data(); }   // s_0 … (the updates add to them: FirstLayerUpdate)

private:
    std::vector<double> s_;
};

// The update of W_1 from blocks of rows of its gradient: a RowSink for the sparse path, and each
// dense panel's update by blocks of rows.
// Padded (W_1 and its buffers with the gradient's row stride, padding zero, which the update
// keeps zero): a block is contiguous and updated in one call. Otherwise row by row, buffers
// with stride `cols`. With `column_sums` (the L2 term's s_c of these columns, ColumnSquares; only
// where one thread hands over every block, rows in order from row 0) each block's squares are
// added to them while its rows are in cache.
template <typename T>
struct FirstLayerUpdate {
    const UpdateKernels<T>* kernels;
    const OptimizerConfig* opt;
    bool adam, padded;
    T* W;              // row stride ldw
    int64_t ldw;
    T* first;          // the optimizer's buffers: stride ldw when padded, else cols
    T* second;
    int64_t cols;
    T lr, l2;
    double* column_sums;   // or null

    void update(T* p, const T* g, T* m, T* v, int64_t n) const {
        update_stretch(*kernels, adam, *opt, p, g, m, v, n, lr, l2);
    }

    static void consume(void* self, int64_t r0, int64_t rows, const T* g, int64_t ldg) {
        const auto& u = *static_cast<const FirstLayerUpdate*>(self);
        if (u.padded) {   // ldg == ldw: rows r0 … r0 + rows − 1 are one contiguous stretch
            const int64_t o = r0 * u.ldw, n = rows * u.ldw;
            u.update(u.W + o, g, u.first ? u.first + o : nullptr, u.second ? u.second + o : nullptr, n);
        } else {
            for (int64_t i = 0; i < rows; ++i) {
                const int64_t r = r0 + i;
                u.update(u.W + r * u.ldw, g + i * ldg, u.first ? u.first + r * u.cols : nullptr,
                         u.second ? u.second + r * u.cols : nullptr, u.cols);
            }
        }
        if (u.column_sums) {
            if (r0 == 0) std::fill(u.column_sums, u.column_sums + u.cols, 0.0);
            u.kernels->column_squares(u.W + r0 * u.ldw, rows, u.cols, u.ldw, u.column_sums);
        }
    }
};

// The epoch. With sgd_in_gemm (mlp_epoch: no biases, plain SGD, no L2, dense rows) each
// W_i ← W_i − lr · H_{i-1}ᵀ G_i is the gradient's own GEMM with β = 1: no ∇W_i is stored and W is
// read and written once, where the optimizers' loops (update_parameter) make a second pass.
template <typename T, typename Input>
int64_t run_epoch(Input& input, const Targets<T>& y, const int64_t* order, int64_t n_order,
                  const BiasedNetwork<T>& net, const OptimizerConfig& opt, const OptimizerState<T>& state,
                  double lr, int64_t batch, double alpha, double* loss_sum, const StopRequested& stop_requested,
                  bool sgd_in_gemm = false) {
    const int64_t L = net.layers(), k = net.dims[L];
    const auto& d = net.dims;
    const EpochThreadCap thread_cap(L > 1 ? epoch_threads(std::min(batch, n_order), d[1]) : 1 << 20);
    if (sgd_in_gemm && (Input::kFusedFirstUpdate || alpha != 0 || opt.kind != OptimizerKind::sgd ||
                        std::any_of(net.b.begin(), net.b.end(), [](const T* b) { return b != nullptr; })))
        throw std::logic_error("run_epoch: sgd_in_gemm takes dense rows, no biases, plain SGD and no L2");
    // Row strides: layer 1's activations, gradients and weights (and the optimizer's buffers for W_1)
    // are padded to whole cache lines when it is hidden (the logits keep stride k): always for the
    // sparse input's fused update, for dense rows when d_1 does not fill whole lines (see
    // DenseInput). W_1 and its buffers are then copies for the epoch, written back at its end.
    // With several threads, W_1 and its optimizer buffers are split into one column panel per thread
    // (ColumnPanels), each its own allocation, and each thread runs the first layer's products on its
    // own panel, so that no line of W_1 moves between cores from batch to batch: with the fused
    // sparse first layer, and with dense rows where each panel is at least kDensePanelMinLines lines
    // wide; an L2 term or not (its ‖W_1‖² by columns, each thread its own panel's: ColumnSquares).
    // (Dense panels with scikit-learn's default alpha = 1e-4, Adam, 2 threads on an Intel Xeon family
    // 6 model 207, standardized MNIST: epochs 784-100-10 new/old 0.957, 784-400-10 0.923.) (Dense
    // rows with W_1 whole, 2 threads on the 2-core Xeon: the area split of the GEMM's tiles cuts a column
    // panel of W_1 between the threads, and lines of W_1 travel with every batch, also fetched by
    // the other core's prefetchers; X_b·W_1 then W_1 −= lr·X_bᵀG_1 for d_1 = 100 ran 1.3x faster
    // than on 1 thread, in panels 1.76x, and d_1 = 400 1.75x -> 1.92x.) Every panel's products are
    // blocked in k as the whole product is, so the bits do not depend on the panels.
    constexpr int64_t kDensePanelMinLines = 3;
    const int threads = get_num_threads();
    const bool dense_panels = !Input::kFusedFirstUpdate && L > 1 && threads > 1 &&
                              d[1] >= kDensePanelMinLines * ColumnPanels<T>::kLineUnit * threads;
    // A W_1 (or optimizer buffer) that does not start on a cache line is copied too, even when d_1
    // fills whole lines: NumPy places arrays of a MiB or so 16 bytes past a page, and then every
    // 128-byte row slice of a micro-kernel's B sliver or C tile straddles three lines, not two.
    // Measured on a Sapphire Rapids-class Xeon (1 thread, d_1 = 400, the two first-layer products
    // over an epoch of batches, alternating): X_b·W_1 and W_1 −= lr·X_bᵀG_1 each 4-6% faster with
    // W_1 64-byte aligned than 16 bytes past.
    auto off_line = [](const T* p) { return p != nullptr && reinterpret_cast<std::uintptr_t>(p) % 64 != 0; };
    const bool misaligned = off_line(net.W[0]) || off_line(state.first[0]) || off_line(state.second[0]);
    // Dense rows on one thread, or in a panel per thread: W_1 in panels of NR columns (ColumnPanels'
    // strip), which the first layer's GEMMs read as packed micro-panels, where W_1's rows are wider
    // than kStripMinRowBytes and it has at least kStripMinRows rows. (Measured on an Intel Xeon
    // family 6 model 207, 1 thread, centred MNIST, new/old epochs alternating: d_1 = 160 0.963, 256
    // 0.92-0.93, 400 0.95; d_1 = 64 and 100, whose rows span 4 and 7 lines, 1.006-1.014, the strips'
    // calls costing what their layout saves. Random dense X, separate processes: 128-400-10 0.93-0.97,
    // but 64-1000-10 1.01-1.03 and 20-1000-10 1.04: over a few rows a strip's product is too small
    // for its call.) With several threads and too narrow a d_1 for a panel each, W_1 stays whole:
    // each GEMM shares its tiles among the team.
    // And only where the GEMM reads X_b in place: where it packs X_b (float64, the generic kernels, a
    // batch past 2 MiB, rows of a multiple of 1 KiB) it would pack it again for every strip (784-400-10
    // in float64: 1.55x as long).
    constexpr int64_t kStripMinRowBytes = 512, kStripMinRows = 128;
    const int strips_setting = dense_strips_setting();
    bool batch_in_place = false;
    if constexpr (!Input::kFusedFirstUpdate) batch_in_place = input.gemm_reads_batches_in_place();
    const bool strips = !Input::kFusedFirstUpdate && L > 1 && (threads == 1 || dense_panels) &&
                        (strips_setting > 0 ||
                         (strips_setting == 0 && batch_in_place && d[0] >= kStripMinRows &&
                          padded<T>(d[1]) * static_cast<int64_t>(sizeof(T)) > kStripMinRowBytes));
    const bool pad = Input::kPadFirstLayer && L > 1 &&
                     (Input::kFusedFirstUpdate || dense_panels || strips || padded<T>(d[1]) != d[1] || misaligned);
    const bool fused = Input::kFusedFirstUpdate && pad;
    std::vector<int64_t> ld(d.begin(), d.end());
    if (pad) ld[1] = padded<T>(d[1]);
    const int parts = fused || dense_panels ? threads : 1;
    const int64_t unit = fused ? ColumnPanels<T>::kUnit : ColumnPanels<T>::kLineUnit;
    const int64_t strip = strips ? padded<T>(gemm_tile_columns<T>()) : 0;
    std::unique_ptr<ColumnPanels<T>> W1_padded, first_padded, second_padded;
    if (pad) {
        W1_padded = std::make_unique<ColumnPanels<T>>(net.W[0], d[0], d[1], parts, unit, strip);
        if (state.first[0])
            first_padded = std::make_unique<ColumnPanels<T>>(state.first[0], d[0], d[1], parts, unit, strip);
        if (state.second[0])
            second_padded = std::make_unique<ColumnPanels<T>>(state.second[0], d[0], d[1], parts, unit, strip);
    }
    const bool panels = pad && W1_padded->panels().size() > 1;
    if constexpr (Input::kFusedFirstUpdate) {
        if (panels && input.copy_per_panel(W1_padded->parts())) {   // (else the lists are shared: no probe)
            const int setting = panel_lists_setting();
            input.set_lists_per_panel(setting > 0 || (setting == 0 && team_round_trip_ns() > kListsPerPanelRoundTripNs));
        }
    }
    // body(panel, i) for every panel i of W_1, part t's panels on thread t of a team (the GEMMs
    // inside run on their calling thread), then after_part(t).
    auto run_panels = [&](const auto& body, const auto& after_part) {
        const int n = W1_padded->parts();
        run_team(n, [&](int tid, int team) {
            for (int t = tid; t < n; t += team) {
                const int first = W1_padded->first_panel(t), count = W1_padded->first_panel(t + 1) - first;
                for (int j = 0; j < count; ++j) body(W1_padded->panels()[sz(first + j)], first + j);
                after_part(t);
            }
        });
    };
    const auto nothing_after = [](int) {};
    // The dense panels' ∇W_1 (optimizers other than SGD in the GEMM), one buffer per panel, padding zero.
    std::vector<AlignedVector<T>> panel_gradients;
    if (panels && !Input::kFusedFirstUpdate && !sgd_in_gemm)
        for (const Panel<T>& p : W1_padded->panels()) panel_gradients.emplace_back(sz(d[0] * p.ld), T(0));
    T* const W1 = pad ? W1_padded->data() : net.W[0];
    T* const first1 = first_padded ? first_padded->data() : state.first[0];
    T* const second1 = second_padded ? second_padded->data() : state.second[0];
    std::vector<FirstLayerUpdate<T>> panel_updates;   // per panel, refreshed each batch (the step)
    std::vector<RowSink<T>> panel_sinks;
    BiasedNetwork<T> work = net;   // the net as the epoch sees it: W_1 possibly the padded copy
    work.W[0] = W1;

    const int64_t max_rows = std::max<int64_t>(1, std::min(batch, n_order));
    BiasedScratch<T> s(net, max_rows, ld, /*train=*/true);
    std::vector<double> row_loss(sz(max_rows));
    BatchTargets<T> targets(y, k, max_rows);
    int64_t later_work = d[L];   // multiply-adds per row beyond the first layer (and the softmax)
    for (int64_t i = 2; i <= L; ++i) later_work += d[i - 1] * d[i];
    const bool adam = opt.kind == OptimizerKind::adam;
    const UpdateKernels<T> kernels = update_kernels<T>();
    // ‖W_1‖² for the L2 term by W_1's columns (ColumnSquares), where W_1 is a hidden layer's;
    // refreshed after each update of W_1 (below).
    std::unique_ptr<ColumnSquares<T>> w1_squares;
    if (L > 1 && alpha != 0) {
        w1_squares = std::make_unique<ColumnSquares<T>>(d[1]);
        if (panels)
            for (const Panel<T>& p : W1_padded->panels()) w1_squares->refresh(kernels, p.data, d[0], p.c0, p.n, p.ld);
        else
            w1_squares->refresh(kernels, W1, d[0], 0, d[1], ld[1]);
    }

    for (int64_t start = 0; start < n_order; start += batch) {
        if (stop_requested && stop_requested()) return start;
        const int64_t B = std::min(batch, n_order - start);
        input.fetch(start, B);
        const double weight_sum = targets.gather(order, start, B);   // S = Σ w_r (B unweighted)

        // Forward and the output loss (output_loss.hpp): G_L = (w_r/S) ∂loss_r/∂z in place of Z.
        T* Z = s.G[L].data();
        bool first_done = false;   // (with panels: by panel; otherwise from W_1 whole)
        if constexpr (Input::kFusedFirstUpdate) {
            if (panels) {
                input.first_layer(W1_padded->panels(), net.b[0], s.H[1].data(), ld[1], /*relu=*/true);
                first_done = true;
            }
        }
        if constexpr (!Input::kFusedFirstUpdate) {
            if (panels) {   // each thread its own panel's columns of H_1
                run_panels([&](const Panel<T>& p, int) {
                    input.first_layer(p, net.b[0], d[1], s.H[1].data(), ld[1], true);
                }, nothing_after);
                first_done = true;
            }
        }
        if (!first_done)
            input.first_layer(W1, ld[1], net.b[0], d[1], L == 1 ? Z : s.H[1].data(), ld[1], /*relu=*/L > 1);
        // The other layers, the loss and the backward pass to G_1: one share of the rows per
        // thread. No result depends on the shares: a GEMM's rows do not depend on how many it
        // computes at once, and the loss is summed row by row in order below.
        const bool split = B * later_work >= kSplitMinWork;
        const int64_t share = split ? (B + get_num_threads() - 1) / get_num_threads() : B;
        for_chunks(B, share, split, [&](int64_t, int64_t r0, int64_t r1) {
            const T* in = L > 1 ? s.H[1].data() + r0 * ld[1] : nullptr;   // (H[1] exists only then)
            int64_t ld_in = ld[1];
            for (int64_t i = 2; i <= L; ++i) {
                T* out = i == L ? Z + r0 * k : s.H[i].data() + r0 * ld[i];
                forward_pass::layer<T>(in, ld_in, r1 - r0, work.W[i - 1], net.b[i - 1], d[i - 1], d[i], out, i < L);
                in = out;
                ld_in = ld[i];
            }
            for (int64_t r = r0; r < r1; ++r) row_loss[sz(r)] = targets.row(r, Z + r * k);
            // Back through the layers for these rows (W_i as before the update):
            // G_{i-1} = (G_i W_iᵀ) ∘ 1{H_{i-1} > 0}
            for (int64_t i = L; i >= 2; --i)
                gemm<T>(Op::N, Op::T, r1 - r0, d[i - 1], d[i], T(1), s.G[i].data() + r0 * ld[i], ld[i], work.W[i - 1],
                        ld[i], T(0), s.G[i - 1].data() + r0 * ld[i - 1], ld[i - 1], Epilogue::relu_mask,
                        s.H[i - 1].data() + r0 * ld[i - 1], ld[i - 1]);
        });
        double batch_loss = 0;
        for (int64_t r = 0; r < B; ++r) batch_loss += row_loss[sz(r)];
        if (alpha != 0) {   // (α/2) Σ ‖W‖², before this batch's update
            double sq = 0;
            if (w1_squares)
                sq += w1_squares->total();
            else
                sq += squared_norm(W1, d[0] * ld[1]);   // (no hidden layer: W_1 whole, unpadded)
            for (int64_t i = 1; i < L; ++i) sq += squared_norm(work.W[i], d[i] * d[i + 1]);
            batch_loss += 0.5 * alpha * sq;
        }
        // B · (Σ w_r loss_r + (α/2) Σ ‖W‖²) / S: the batch's mean loss times B (factor 1 unweighted)
        const double per_weight = weight_sum > 0 ? 1.0 / weight_sum : 0.0;
        *loss_sum += weight_sum == static_cast<double>(B) ? batch_loss : batch_loss * static_cast<double>(B) * per_weight;

        // The step of this batch's update (Adam: η_t for step t); L2 gradient (α/S) W.
        const T l2 = static_cast<T>(weight_sum > 0 ? alpha / weight_sum : 0.0);
        T lr_t = static_cast<T>(lr);
        if (adam) {
            *state.t += 1;
            lr_t = static_cast<T>(adam_step_size(lr, opt.beta1, opt.beta2, *state.t));
        }

        // The gradients, every one from the parameters as they are before the update.
        // (the sparse path's whole W_1: its column sums taken block by block where one thread runs the
        // transposed product, so hands the blocks over in row order; on several, after it: below)
        const bool sums_in_update = Input::kFusedFirstUpdate && w1_squares && !panels && get_num_threads() == 1;
        const FirstLayerUpdate<T> first_update{&kernels, &opt, adam, pad, W1, ld[1], first1, second1,
                                               d[1], lr_t, l2, sums_in_update ? w1_squares->data() : nullptr};
        // The update of panel t of W_1 and of its buffers (padded), adding to its columns' s_c.
        auto panel_update = [&](std::size_t t) {
            const Panel<T>& p = W1_padded->panels()[t];
            return FirstLayerUpdate<T>{&kernels, &opt, adam, /*padded=*/true, p.data, p.ld,
                                       first_padded ? first_padded->panels()[t].data : nullptr,
                                       second_padded ? second_padded->panels()[t].data : nullptr, p.n, lr_t, l2,
                                       w1_squares ? w1_squares->data() + p.c0 : nullptr};
        };
        // ∇W_i (i > 1; without the L2 term, added in the update) = H_{i-1}ᵀ G_i by chunks of its
        // rows, and ∇b_i = Σ_rows G_i (rows in order) by chunks of columns: one list of tasks.
        std::vector<std::array<int64_t, 3>>& tasks = s.tasks;   // (what, lo, hi): what < L: ∇W_{what+1}
        tasks.clear();
        for (int64_t i = L; i >= (panels && fused ? 3 : 2); --i)   // (sparse panels: ∇W_2 is formed by panel below)
            for (int64_t j0 = 0; j0 < d[i - 1]; j0 += kRowChunk) tasks.push_back({i - 1, j0, std::min(d[i - 1], j0 + kRowChunk)});
        for (int64_t i = L; i >= 1; --i)
            if (net.b[i - 1])
                for (int64_t j0 = 0; j0 < d[i]; j0 += kRowChunk) tasks.push_back({L + i - 1, j0, std::min(d[i], j0 + kRowChunk)});
        // for_chunks gives each thread a contiguous range of the list: dealt out, each range holds
        // a share of every parameter's chunks (W_L's are small, W_{L-1}'s large). With dense panels
        // the tasks run instead in the first layer's team below, each thread's after its panels,
        // given to the parts with the least work (share_by_work): no team of their own.
        const int64_t n_tasks = static_cast<int64_t>(tasks.size());
        const bool tasks_after_panels = panels && !Input::kFusedFirstUpdate;
        if (tasks_after_panels) {
            std::vector<int64_t>& work_of_part = s.part_work;
            work_of_part.assign(sz(W1_padded->parts()), 0);
            for (int t = 0; t < W1_padded->parts(); ++t)
                for (int i = W1_padded->first_panel(t); i < W1_padded->first_panel(t + 1); ++i)
                    work_of_part[sz(t)] += 2 * d[0] * B * W1_padded->panels()[sz(i)].n;   // X_b·W_1 and ∇W_1
            share_by_work(tasks, [&](const std::array<int64_t, 3>& task) {
                const int64_t i = task[0] + 1;   // (∇W_i, or ∇b_{i−L})
                return (task[2] - task[1]) * B * (task[0] < L ? d[i] : 1);
            }, work_of_part, s.part_of_task, s.dealt, s.part_begin);
        } else {
            deal(tasks, split ? static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(get_num_threads(), n_tasks))) : 1,
                 s.dealt);
        }
        auto run_task = [&](int64_t t0) {
            const auto [what, j0, j1] = s.dealt[sz(t0)];
            if (what < L) {   // ∇W_i, i = what + 1 (or, sgd_in_gemm, W_i ← W_i − lr · ∇W_i)
                const int64_t i = what + 1;
                T* const target = sgd_in_gemm ? work.W[i - 1] + j0 * ld[i] : s.gW[i - 1].data() + j0 * ld[i];
                gemm<T>(Op::T, Op::N, j1 - j0, d[i], B, sgd_in_gemm ? -lr_t : T(1), s.H[i - 1].data() + j0, ld[i - 1],
                        s.G[i].data(), ld[i], sgd_in_gemm ? T(1) : T(0), target, ld[i]);
            } else {          // ∇b_i, i = what − L + 1
                const int64_t i = what - L + 1;
                const T* Gi = s.G[i].data();
                T* gb = s.gb[i - 1].data();
                std::fill(gb + j0, gb + j1, T(0));
                for (int64_t r = 0; r < B; ++r)
                    for (int64_t j = j0; j < j1; ++j) gb[j] += Gi[r * ld[i] + j];
            }
        };
        const int64_t n_dealt = static_cast<int64_t>(s.dealt.size());
        if (!tasks_after_panels)
            for_chunks(n_dealt, 1, split, [&](int64_t, int64_t t0, int64_t) { run_task(t0); });
        // part t's tasks (tasks_after_panels)
        const auto part_tasks = [&](int t) {
            for (int64_t t0 = s.part_begin[sz(t)]; t0 < s.part_begin[sz(t) + 1]; ++t0) run_task(t0);
        };
        // ∇W_1 = X_bᵀ G_1; with a sparse input, W_1 is updated block by block as its gradient rows
        // are completed (no other gradient reads W_1, and nothing reads it after).
        if constexpr (Input::kFusedFirstUpdate) {
            if (panels) {   // each thread updates its own panel of W_1 (and of the buffers)
                panel_updates.clear();
                panel_sinks.clear();
                for (std::size_t t = 0; t < W1_padded->panels().size(); ++t) panel_updates.push_back(panel_update(t));
                for (auto& u : panel_updates) panel_sinks.push_back({&FirstLayerUpdate<T>::consume, &u});
                // ∇W_2 = H_1ᵀ G_2: each panel's rows by the thread that computed those columns of
                // H_1, in the same kRowChunk-row chunks as the task list forms them (panels start
                // on chunk boundaries), so that every GEMM has the same shape as on one thread.
                struct SecondLayerGradient {
                    const std::vector<Panel<T>>* panels;
                    const T *H1, *G2;
                    T* gW2;
                    int64_t ldh, ldg, d2, B;
                    static void run(void* self, int part) {
                        const auto& g = *static_cast<const SecondLayerGradient*>(self);
                        const Panel<T>& p = (*g.panels)[sz(part)];
                        for (int64_t j0 = p.c0; j0 < p.c0 + p.n; j0 += kRowChunk) {
                            const int64_t rows = std::min(p.c0 + p.n, j0 + kRowChunk) - j0;
                            gemm<T>(Op::T, Op::N, rows, g.d2, g.B, T(1), g.H1 + j0, g.ldh, g.G2, g.ldg, T(0),
                                    g.gW2 + j0 * g.ldg, g.ldg);
                        }
                    }
                } second{&W1_padded->panels(), s.H[1].data(), s.G[2].data(), s.gW[1].data(), ld[1], ld[2], d[2], B};
                input.first_layer_gradient(s.G[1].data(), ld[1], W1_padded->panels(), panel_sinks,
                                           PanelWork{&SecondLayerGradient::run, &second});
            } else {
                input.first_layer_gradient(s.G[1].data(), ld[1], d[1],
                                           RowSink<T>{&FirstLayerUpdate<T>::consume,
                                                      const_cast<FirstLayerUpdate<T>*>(&first_update)});
            }
        } else if (panels && sgd_in_gemm) {   // each thread its own panel of W_1
            const int n_panels = static_cast<int>(W1_padded->panels().size());
            run_panels([&](const Panel<T>& p, int i) {
                input.first_layer_sgd(s.G[1].data(), ld[1], d[1], p, lr_t, i, n_panels);
            }, part_tasks);
        } else if (panels) {   // each thread: its panel's ∇W_1, then the update of the panel and its buffers
            run_panels([&](const Panel<T>& p, int t) {
                T* g = panel_gradients[sz(t)].data();
                input.first_layer_gradient(s.G[1].data(), ld[1], d[1], p, g);
                // whole padded rows: the padding of W_1, ∇W_1 and the buffers is zero and stays zero
                FirstLayerUpdate<T> update = panel_update(sz(t));
                const int64_t block = w1_squares ? ColumnSquares<T>::block_rows(p.ld) : d[0];
                for (int64_t r0 = 0; r0 < d[0]; r0 += block)
                    FirstLayerUpdate<T>::consume(&update, r0, std::min(block, d[0] - r0), g + r0 * p.ld, p.ld);
            }, part_tasks);
        } else if (sgd_in_gemm) {   // W_1 ← W_1 − lr · X_bᵀ G_1 (the other W_i in their tasks above)
            input.first_layer_sgd(s.G[1].data(), ld[1], d[1], W1, ld[1], lr_t);
        } else {
            input.first_layer_gradient(s.G[1].data(), ld[1], d[1], s.gW[0].data(), ld[1]);
        }

        // The update of every other parameter, W_1 (unless done above) … W_L then b_1 … b_L
        // (none left with sgd_in_gemm).
        for (int64_t p = sgd_in_gemm ? 2 * L : Input::kFusedFirstUpdate ? 1 : 0; p < 2 * L; ++p) {
            const int64_t i = p % L;
            if (p == 0 && panels) continue;   // (updated by panel above)
            if (p == 0 && pad)   // W_1 and its buffers padded alike: padding updated too (zeros stay zero)
                update_parameter<T>(kernels, adam, opt, W1, ld[1], s.gW[0].data(), ld[1], first1, second1, d[0], ld[1],
                                    lr_t, l2);
            else if (p < L)
                update_parameter<T>(kernels, adam, opt, work.W[i], ld[i + 1], s.gW[i].data(), ld[i + 1], state.first[p],
                                    state.second[p], d[i], d[i + 1], lr_t, l2);
            else if (net.b[i])
                update_parameter<T>(kernels, adam, opt, net.b[i], d[i + 1], s.gb[i].data(), d[i + 1], state.first[p],
                                    state.second[p], 1, d[i + 1], lr_t, T(0));
        }
        if (w1_squares && !panels && !sums_in_update)   // (W_1 updated whole above)
            w1_squares->refresh(kernels, W1, d[0], 0, d[1], ld[1]);
    }
    return n_order;
}

}  // namespace

int& dense_strips_setting() {
    static int setting = 0;
    return setting;
}

int& panel_lists_setting() {
    static int setting = 0;
    return setting;
}

// The most threads worth sharing a batch of B rows whose first hidden layer has d1 units: about
// sqrt(B·d1 / 625), i.e. 4 for 784-100-10 and 8 for 784-400-10 at batch 100, the fastest counts
// measured on the 16-core Xeon (1, 2, 4, 8, 16 threads: h = 100 218, 141, 121, 234, 685 ms on raw
// MNIST, 274, 164, 134, 213, 494 centred; h = 400 515, 279, 163, 135, 179 raw, 934, 476, 273, 172,
// 305 centred). Past it each thread's share of the first layer is a few columns and the epoch's
// barriers cost more than the work they divide.
int epoch_threads(std::int64_t B, std::int64_t d1) {
    const double useful = std::sqrt(static_cast<double>(B) * static_cast<double>(d1) / 625.0);
    return static_cast<int>(std::max(1.0, std::min(1024.0, std::round(useful))));
}

template <typename T, typename TX>
std::int64_t train_epoch(const DataMatrix<TX>& X, const Targets<T>& y, const std::int64_t* order,
                         std::int64_t n_order, const BiasedNetwork<T>& net,
                         const OptimizerConfig& opt, const OptimizerState<T>& state, double lr,
                         std::int64_t batch, double alpha, double* loss_sum,
                         const StopRequested& stop_requested, bool skip_zeros) {
    if (batch < 1) throw std::invalid_argument("batch: expected an integer >= 1");
    const int64_t max_rows = std::max<int64_t>(1, std::min(batch, n_order));
    if (skip_zeros) {
        CompactedInput<T, TX> input(X, order, n_order, max_rows, net.dims[1]);
        return run_epoch<T>(input, y, order, n_order, net, opt, state, lr, batch, alpha, loss_sum, stop_requested);
    }
    DenseInput<T, TX> input(X, order, max_rows);
    return run_epoch<T>(input, y, order, n_order, net, opt, state, lr, batch, alpha, loss_sum, stop_requested);
}

template <typename T, typename TX>
std::int64_t mlp_epoch(const DataMatrix<TX>& X, const std::int64_t* y, const Network<T>& net, T lr,
                       std::int64_t batch, const StopRequested& stop_requested) {
    if (batch < 1) throw std::invalid_argument("batch: expected an integer >= 1");
    if (net.layers() == 1) {   // softmax regression: the fused, transposed path
        if constexpr (std::is_same_v<T, TX>)
            return softmax_regression_epoch_fused<T>(X, y, net.W[0], net.dims[1], lr, batch, stop_requested);
        else if constexpr (std::is_same_v<T, double> && std::is_same_v<TX, float>)   // (X widened batch by batch)
            return softmax_regression_epoch_float_rows(X, y, net.W[0], net.dims[1], lr, batch, stop_requested);
    }
    const BiasedNetwork<T> no_biases{net.W, std::vector<T*>(net.W.size(), nullptr), net.dims};
    const std::vector<T*> no_buffers(2 * net.W.size(), nullptr);
    const OptimizerState<T> plain_sgd{no_buffers, no_buffers, nullptr};
    double loss_sum = 0;   // (not reported: hw0's epoch returns nothing)
    DenseInput<T, TX> input(X, nullptr, std::max<int64_t>(1, std::min(batch, X.rows)));
    Targets<T> labels;   // cross-entropy on y, every sample weight 1
    labels.labels = y;
    return run_epoch<T>(input, labels, nullptr, X.rows, no_biases, OptimizerConfig{}, plain_sgd, lr, batch, 0.0, &loss_sum,
                        stop_requested, /*sgd_in_gemm=*/true);
}

template <typename T>
std::int64_t train_epoch_sparse(const SparseRowsView<T>& X, const Targets<T>& y, const std::int64_t* order,
                                std::int64_t n_order, const BiasedNetwork<T>& net,
                                const OptimizerConfig& opt, const OptimizerState<T>& state, double lr,
                                std::int64_t batch, double alpha, double* loss_sum,
                                const StopRequested& stop_requested) {
    if (batch < 1) throw std::invalid_argument("batch: expected an integer >= 1");
    SparseInput<T> input(X, order, n_order, std::max<int64_t>(1, std::min(batch, n_order)), net.dims[1]);
    return run_epoch<T>(input, y, order, n_order, net, opt, state, lr, batch, alpha, loss_sum, stop_requested);
}

template <typename T, typename TX>
void biased_logits(const DataMatrix<TX>& X, const BiasedNetwork<T>& net, T* logits, bool skip_zeros) {
    constexpr int64_t kChunk = 1024;
    const int64_t k = net.dims[net.layers()];
    const int64_t max_rows = std::max<int64_t>(1, std::min(kChunk, X.rows));
    const bool sparse = skip_zeros && net.layers() > 1;   // the first layer over X's nonzeros (as mlp.cpp's)
    BiasedScratch<T> s(net, max_rows, net.dims, /*train=*/false);
    std::vector<T> x(std::is_same_v<T, TX> || sparse ? 0 : sz(max_rows * X.cols));
    std::unique_ptr<CompactedBatches<T, TX>> batches;
    if (sparse) batches = std::make_unique<CompactedBatches<T, TX>>(X, nullptr, X.rows, max_rows, /*one_copy=*/true);
    for (int64_t start = 0; start < X.rows; start += kChunk) {
        const int64_t rows = std::min(kChunk, X.rows - start);
        if (sparse) {
            forward_over_nonzeros(*batches, start, rows, net.W, &net.b, net.dims, s.H, logits + start * k);
            continue;
        }
        int64_t ldx;
        const T* Xb = forward_pass::batch_rows(X, nullptr, start, rows, x, ldx);
        forward_pass::forward(Xb, ldx, rows, net.W, &net.b, net.dims, s.H, logits + start * k);
    }
}

#define FASTNN_INSTANTIATE(T, TX)                                                                  \
    template std::int64_t train_epoch<T, TX>(const DataMatrix<TX>&, const Targets<T>&,            \
                                             const std::int64_t*, std::int64_t,                    \
                                             const BiasedNetwork<T>&, const OptimizerConfig&,      \
                                             const OptimizerState<T>&, double, std::int64_t,       \
                                             double, double*, const StopRequested&, bool);         \
    template std::int64_t mlp_epoch<T, TX>(const DataMatrix<TX>&, const std::int64_t*,           \
                                           const Network<T>&, T, std::int64_t, const StopRequested&); \
    template void biased_logits<T, TX>(const DataMatrix<TX>&, const BiasedNetwork<T>&, T*, bool);

FASTNN_INSTANTIATE(float, float)
FASTNN_INSTANTIATE(double, double)
FASTNN_INSTANTIATE(double, float)   // float32 data, float64 parameters

template std::int64_t train_epoch_sparse<float>(const SparseRowsView<float>&, const Targets<float>&,
                                                const std::int64_t*, std::int64_t, const BiasedNetwork<float>&,
                                                const OptimizerConfig&, const OptimizerState<float>&, double,
                                                std::int64_t, double, double*, const StopRequested&);
template std::int64_t train_epoch_sparse<double>(const SparseRowsView<double>&, const Targets<double>&,
                                                 const std::int64_t*, std::int64_t, const BiasedNetwork<double>&,
                                                 const OptimizerConfig&, const OptimizerState<double>&, double,
                                                 std::int64_t, double, double*, const StopRequested&);

#undef FASTNN_INSTANTIATE

}  // namespace fastnn
