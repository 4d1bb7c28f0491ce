// The Python module fastnn._core: argument checks (array_checks.hpp), dtype dispatch, GIL release.
// All the math lives in the other files; fastnn/cpp_backend.py is the Python face of this module.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>

#include "python/array_checks.hpp"
#include "python/biased_checks.hpp"
#include "python/sparse_checks.hpp"
#include "python/target_checks.hpp"
#include "runtime/build_info.hpp"
#include "runtime/cpu_features.hpp"
#include "runtime/float_mode.hpp"
#include "gemm/gemm.hpp"
#include "gemm/gemm_kernels.hpp"
#include "epochs/mlp.hpp"
#include "epochs/output_loss.hpp"
#include "gemm/probe.hpp"
#include "epochs/relu.hpp"
#include "epochs/softmax_cross_entropy.hpp"
#include "epochs/softmax_epoch.hpp"
#include "sparse/sparse_rows.hpp"
#include "runtime/threads.hpp"
#include "epochs/train_epoch.hpp"

namespace py = pybind11;
using namespace fastnn;
using std::int64_t;

namespace {

template <typename T> struct tag { using type = T; };

// Calls f(tag<T>, tag<TX>) for the parameter dtype T and the data dtype TX: (float, float),
// (double, double) or (double, float) — float32 data with float64 parameters.
template <typename F>
auto dispatch(const py::dtype& param, const py::dtype& data, F&& f) {
    const auto f32 = py::dtype::of<float>(), f64 = py::dtype::of<double>();
    if (param.equal(f32) && data.equal(f32)) return f(tag<float>{}, tag<float>{});
    if (param.equal(f64) && data.equal(f64)) return f(tag<double>{}, tag<double>{});
    if (param.equal(f64) && data.equal(f32)) return f(tag<double>{}, tag<float>{});
    throw py::type_error("expected float32 or float64 parameters and data of the same or a lower "
                         "precision, got parameters " + py::str(param).cast<std::string>() +
                         " and data " + py::str(data).cast<std::string>());
}

py::dtype first_dtype(const py::list& weights) {
    if (weights.size() == 0) throw py::value_error("weights: expected at least one matrix, got none");
    return weights[0].cast<py::array>().dtype();
}

Op op_from(const std::string& s, const char* name) {
    if (s == "N") return Op::N;
    if (s == "T") return Op::T;
    throw py::value_error(std::string(name) + ": expected 'N' or 'T', got '" + s + "'");
}

// Between batches: at most every 100 ms, take the GIL and let Python run its signal handlers
// (Ctrl-C sets KeyboardInterrupt); a pending exception stops the epoch.
// The thread cap of an epoch over `rows` rows in batches of `batch` (epoch_threads; none without
// a hidden layer), set before the epoch's BusyHostWatch and EpochPinning read the count.
int epoch_cap(const std::vector<int64_t>& dims, int64_t batch, int64_t rows) {
    return dims.size() > 2 ? epoch_threads(std::max<int64_t>(1, std::min(batch, rows)), dims[1]) : 1 << 20;
}

// The computing part of a call: the GIL released, then the core's floating-point mode set (subnormals
// as zero unless set_flush_subnormals(false); runtime/float_mode.hpp); on leaving, the caller's mode
// back, then the GIL taken again.
struct Computing {
    py::gil_scoped_release nogil;
    CoreCallFloatMode mode;
};

// Python's handlers run in the caller's own floating-point mode, not the epoch's (float_mode.hpp).
StopRequested python_signal_check() {
    auto last = std::chrono::steady_clock::now();
    return [last]() mutable {
        const auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::milliseconds(100)) return false;
        last = now;
        py::gil_scoped_acquire gil;
        const CallersOwnFloatMode python_mode;
        return PyErr_CheckSignals() != 0;
    };
}

OptimizerConfig optimizer_config(const std::string& kind, int64_t batch, const py::array& t, double momentum,
                                 bool nesterov, double beta1, double beta2, double epsilon) {
    OptimizerConfig opt;
    if (kind == "sgd") opt.kind = OptimizerKind::sgd;
    else if (kind == "adam") opt.kind = OptimizerKind::adam;
    else throw py::value_error("kind: expected 'sgd' or 'adam', got '" + kind + "'");
    opt.momentum = momentum;
    opt.nesterov = nesterov;
    opt.beta1 = beta1;
    opt.beta2 = beta2;
    opt.epsilon = epsilon;
    if (batch < 1) throw py::value_error("batch: expected an integer >= 1, got " + std::to_string(batch));
    if (!t.dtype().equal(py::dtype::of<int64_t>()) || t.ndim() != 1 || t.shape(0) != 1 ||
        !t.writeable() || !(t.flags() & py::array::c_style))
        throw py::value_error("t: expected a writeable int64 array of shape (1,)");
    return opt;
}

// The checks and the call shared by train_epoch and train_epoch_csr: `epoch(targets, order,
// count, net, opt, state, lr, batch, alpha, &loss_sum, stop)` runs the epoch on X (rows × cols).
template <typename T, typename Epoch>
double run_train_epoch(int64_t rows, int64_t cols, const py::array& y, const py::object& order,
                       const py::list& weights, const py::object& biases, const OptimizerConfig& opt,
                       const py::list& first, const py::list& second, const py::array& t, Epoch&& epoch,
                       double lr, int64_t batch, double alpha, const std::string& loss,
                       const py::object& sample_weight) {
    const BiasedNetwork<T> net = biased_network<T>(weights, biases, cols, /*writeable=*/true);
    const Targets<T> targets_ = targets<T>(y, loss, sample_weight, rows, net.dims.back());
    const int64_t* order_ = nullptr;
    int64_t count = rows;
    if (!order.is_none()) order_ = row_order(order.cast<py::array>(), rows, count);
    OptimizerState<T> state;
    const bool adam = opt.kind == OptimizerKind::adam;
    state.first = buffer_list<T>(first, net, adam ? "m" : "velocities", /*optional=*/!adam);
    state.second = adam ? buffer_list<T>(second, net, "v", false)
                        : std::vector<T*>(static_cast<std::size_t>(2 * net.layers()), nullptr);
    state.t = static_cast<int64_t*>(const_cast<void*>(t.data()));
    const StopRequested stop = python_signal_check();
    double loss_sum = 0;
    int64_t done;
    {
        const Computing computing;
        const EpochThreadCap cap(epoch_cap(net.dims, batch, count));
        const BusyHostWatch watch;
        const EpochPinning pinning;
        done = epoch(targets_, order_, count, net, opt, state, lr, batch, alpha, &loss_sum, stop);
    }
    if (done < count) throw py::error_already_set();   // the signal handler's exception
    return loss_sum;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "fastnn's C++ core: GEMM, fused softmax cross-entropy, ReLU, SGD epochs, evaluation";

    m.def("build_info", &build_info, "How the core was built and what it runs with.");
    m.def("get_num_threads", &num_threads_in_force);
    m.def("set_num_threads", &set_num_threads, py::arg("n"));
    m.def("reset_num_threads", &reset_num_threads);
    m.def("num_threads_is_set", &num_threads_is_set);
    m.def("default_num_threads", &default_num_threads);
    m.def("forked_after_threads", &forked_after_threads);
    m.def("get_flush_subnormals", [] { return flush_subnormals() && float_mode_supported(); },
          "Whether the core's calls compute with subnormal numbers as zero (FTZ and DAZ).");
    m.def("set_flush_subnormals", [](bool enabled) {
        const bool previous = flush_subnormals() && float_mode_supported();
        set_flush_subnormals(enabled);
        return previous;
    }, py::arg("enabled"), "Compute with subnormals as zero (True) or as IEEE says (False); returns the previous setting.");
    m.def("detected_isa", [] { return std::string(isa_name(detected_isa())); });
    m.def("active_isa", [] { return std::string(isa_name(active_isa())); });
    m.def("set_isa", [](const std::string& name) { set_isa(isa_from_name(name)); }, py::arg("name"));

    m.def("gemm", [](const std::string& op_a, const std::string& op_b, const py::array& A,
                     const py::array& B, const py::array& C, double alpha, double beta) {
        const Op oa = op_from(op_a, "op_a"), ob = op_from(op_b, "op_b");
        dispatch(C.dtype(), C.dtype(), [&](auto t, auto) {
            using T = typename decltype(t)::type;
            const auto a = data_matrix<T>(A, "A"), b = data_matrix<T>(B, "B");
            T* c = writeable_matrix<T>(C, "C");
            const int64_t m = oa == Op::N ? a.rows : a.cols, k = oa == Op::N ? a.cols : a.rows;
            const int64_t kb = ob == Op::N ? b.rows : b.cols, n = ob == Op::N ? b.cols : b.rows;
            if (k != kb) throw py::value_error("B: expected " + std::to_string(k) + " rows in op(B), got " + std::to_string(kb));
            if (C.shape(0) != m || C.shape(1) != n)
                throw py::value_error("C: expected shape (" + std::to_string(m) + ", " + std::to_string(n) +
                                      "), got " + shape_of(C));
            const Computing computing;
            gemm<T>(oa, ob, m, n, k, static_cast<T>(alpha), a.data, a.ld, b.data, b.ld, static_cast<T>(beta), c, n);
        });
    }, py::arg("op_a"), py::arg("op_b"), py::arg("A").noconvert(), py::arg("B").noconvert(),
       py::arg("C").noconvert(), py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
       "C = alpha · op(A) · op(B) + beta · C, in place in C.");

    m.def("relu", [](const py::array& Z, const py::array& H) {
        dispatch(H.dtype(), H.dtype(), [&](auto t, auto) {
            using T = typename decltype(t)::type;
            const auto z = data_matrix<T>(Z, "Z");
            T* h = writeable_matrix<T>(H, "out");
            if (H.shape(0) != z.rows || H.shape(1) != z.cols)
                throw py::value_error("out: expected the shape of Z " + shape_of(Z) + ", got " + shape_of(H));
            const Computing computing;
            relu_forward(z.data, z.ld, z.rows, z.cols, h, z.cols);
        });
    }, py::arg("Z").noconvert(), py::arg("out").noconvert(), "out = max(Z, 0).");

    m.def("softmax_cross_entropy", [](const py::array& Z, const py::array& y, const py::object& G) {
        return dispatch(Z.dtype(), Z.dtype(), [&](auto t, auto) {
            using T = typename decltype(t)::type;
            const auto z = data_matrix<T>(Z, "Z");
            const int64_t* labels_ = labels(y, z.rows, z.cols, "y");
            if (G.is_none()) {
                const Computing computing;
                return softmax_loss_sum(z.data, z.ld, labels_, z.rows, z.cols);
            }
            const py::array g_arr = G.cast<py::array>();
            T* g = writeable_matrix<T>(g_arr, "out");
            if (g_arr.shape(0) != z.rows || g_arr.shape(1) != z.cols)
                throw py::value_error("out: expected the shape of Z " + shape_of(Z) + ", got " + shape_of(g_arr));
            const Computing computing;
            return softmax_cross_entropy_rows(z.data, z.ld, labels_, z.rows, z.cols,
                                              T(1) / static_cast<T>(z.rows), g, z.cols);
        });
    }, py::arg("Z").noconvert(), py::arg("y").noconvert(), py::arg("out") = py::none(),
       "Σ cross-entropy over the rows of Z; with `out`, also writes (softmax(Z) − I_y)/B into it.");

    m.def("loss_errors", [](const py::array& Z, const py::array& y) {
        return dispatch(Z.dtype(), Z.dtype(), [&](auto t, auto) {
            using T = typename decltype(t)::type;
            const auto z = data_matrix<T>(Z, "Z");
            const int64_t* labels_ = labels(y, z.rows, z.cols, "y");
            const Computing computing;
            return softmax_loss_errors(z.data, z.ld, labels_, z.rows, z.cols);
        });
    }, py::arg("Z").noconvert(), py::arg("y").noconvert(),
       "(Σ cross-entropy, number of rows whose argmax is not the label).");

    m.def("mlp_epoch", [](const py::array& X, const py::array& y, const py::list& weights,
                          double lr, int64_t batch) {
        int64_t done = 0, rows = 0;
        dispatch(first_dtype(weights), X.dtype(), [&](auto t, auto tx) {
            using T = typename decltype(t)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            const Network<T> net = network<T>(weights, x.cols, /*writeable=*/true);
            const int64_t* labels_ = labels(y, x.rows, net.dims.back(), "y");
            require_separate(X, "X", weights);
            require_separate(y, "y", weights);
            if (batch < 1) throw py::value_error("batch: expected an integer >= 1, got " + std::to_string(batch));
            rows = x.rows;
            const StopRequested stop = python_signal_check();
            const Computing computing;
            const EpochThreadCap cap(epoch_cap(net.dims, batch, x.rows));
            const BusyHostWatch watch;
            const EpochPinning pinning;
            done = mlp_epoch<T, TX>(x, labels_, net, static_cast<T>(lr), batch, stop);
        });
        if (done < rows) throw py::error_already_set();   // the signal handler's exception
        return done;
    }, py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("weights"), py::arg("lr"),
       py::arg("batch"), "One SGD epoch over (X, y), updating each array of `weights` in place.");

    m.def("softmax_regression_epoch_pixels", [](const py::array& pixels, double scale, const py::array& y,
                                                const py::array& theta, double lr, int64_t batch) {
        const auto x = data_matrix<std::uint8_t>(pixels, "X.pixels");
        int64_t done = 0;
        auto run = [&](auto t) {
            using T = typename decltype(t)::type;
            T* th = writeable_matrix<T>(theta, "theta");
            if (theta.shape(0) != x.cols)
                throw py::value_error("theta: expected " + std::to_string(x.cols) + " rows (X's columns), got shape " +
                                      shape_of(theta));
            const int64_t k = theta.shape(1);
            const int64_t* labels_ = labels(y, x.rows, k, "y");
            py::list params;
            params.append(theta);
            require_separate(pixels, "X.pixels", params);
            require_separate(y, "y", params);
            if (batch < 1) throw py::value_error("batch: expected an integer >= 1, got " + std::to_string(batch));
            const StopRequested stop = python_signal_check();
            const Computing computing;
            const BusyHostWatch watch;
            const EpochPinning pinning;
            done = softmax_regression_epoch_pixels<T>(x, static_cast<float>(scale), labels_, th, k, static_cast<T>(lr),
                                                      batch, stop);
        };
        if (theta.dtype().equal(py::dtype::of<float>())) run(tag<float>{});
        else if (theta.dtype().equal(py::dtype::of<double>())) run(tag<double>{});
        else throw py::type_error("theta: expected dtype float32 or float64, got " + dtype_of(theta));
        if (done < x.rows) throw py::error_already_set();   // the signal handler's exception
        return done;
    }, py::arg("pixels").noconvert(), py::arg("scale"), py::arg("y").noconvert(), py::arg("theta").noconvert(),
       py::arg("lr"), py::arg("batch"),
       "One softmax-regression SGD epoch over X = scale · pixels (uint8), updating theta in place.");

    m.def("mlp_loss_grad", [](const py::array& X, const py::array& y, const py::list& weights,
                              const py::list& grads) {
        return dispatch(first_dtype(weights), X.dtype(), [&](auto t, auto tx) {
            using T = typename decltype(t)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            const Network<T> net = network<T>(weights, x.cols, /*writeable=*/false);
            const Network<T> out = network<T>(grads, x.cols, /*writeable=*/true);
            if (out.dims != net.dims) throw py::value_error("grads: expected the shapes of weights");
            const int64_t* labels_ = labels(y, x.rows, net.dims.back(), "y");
            const Computing computing;
            return mlp_loss_grad<T, TX>(x, labels_, net, out.W);
        });
    }, py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("weights"), py::arg("grads"),
       "Mean loss; writes ∂loss/∂W_i into grads[i].");

    m.def("mlp_logits", [](const py::array& X, const py::list& weights, const py::array& out, bool skip_zeros) {
        dispatch(first_dtype(weights), X.dtype(), [&](auto t, auto tx) {
            using T = typename decltype(t)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            const Network<T> net = network<T>(weights, x.cols, /*writeable=*/false);
            T* z = logits_out<T>(out, x.rows, net.dims.back());
            const Computing computing;
            mlp_logits<T, TX>(x, net, z, skip_zeros);
        });
    }, py::arg("X").noconvert(), py::arg("weights"), py::arg("out").noconvert(), py::arg("skip_zeros") = false,
       "out = the net's logits (skip_zeros: the first layer over X's nonzeros).");

    m.def("evaluate", [](const py::array& X, const py::array& y, const py::list& weights, bool skip_zeros) {
        return dispatch(first_dtype(weights), X.dtype(), [&](auto t, auto tx) {
            using T = typename decltype(t)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            const Network<T> net = network<T>(weights, x.cols, /*writeable=*/false);
            const int64_t* labels_ = labels(y, x.rows, net.dims.back(), "y");
            const Computing computing;
            return evaluate<T, TX>(x, labels_, net, skip_zeros);
        });
    }, py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("weights"), py::arg("skip_zeros") = false,
       "(Σ loss, number of errors) over the dataset (skip_zeros: the first layer over X's nonzeros).");

    // ---- Biased networks and optimizers (train_epoch.hpp, optimizers.hpp): the estimators' core.
    // X is dense (train_epoch) or CSR (train_epoch_csr); every other argument is the same.
    m.def("train_epoch", [](const py::array& X, const py::array& y, const py::object& order,
                            const py::list& weights, const py::object& biases, const std::string& kind,
                            const py::list& first, const py::list& second, const py::array& t,
                            double lr, int64_t batch, double alpha, double momentum, bool nesterov,
                            double beta1, double beta2, double epsilon, bool skip_zeros, const std::string& loss,
                            const py::object& sample_weight) {
        const OptimizerConfig opt = optimizer_config(kind, batch, t, momentum, nesterov, beta1, beta2, epsilon);
        return dispatch(first_dtype(weights), X.dtype(), [&](auto tt, auto tx) {
            using T = typename decltype(tt)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            return run_train_epoch<T>(x.rows, x.cols, y, order, weights, biases, opt, first, second, t,
                                      [&](const auto&... a) { return train_epoch<T, TX>(x, a..., skip_zeros); },
                                      lr, batch, alpha, loss, sample_weight);
        });
    }, py::arg("X").noconvert(), py::arg("y").noconvert(), py::arg("order"), py::arg("weights"),
       py::arg("biases"), py::arg("kind"), py::arg("first"), py::arg("second"), py::arg("t").noconvert(),
       py::arg("lr"), py::arg("batch"), py::arg("alpha"), py::arg("momentum"), py::arg("nesterov"),
       py::arg("beta1"), py::arg("beta2"), py::arg("epsilon"), py::arg("skip_zeros") = false,
       py::arg("loss") = "log_loss", py::arg("sample_weight") = py::none(),
       "One epoch of SGD/Adam with biases and L2 over the rows X[order]; returns Σ batch losses × B. "
       "With skip_zeros, each batch is compacted to CSR and the first layer skips X's zeros. loss: "
       "'log_loss' (y: int64 labels) or 'squared_error' (y: rows × d_L values of the parameters' dtype); "
       "sample_weight: None or one weight >= 0 per row (the parameters' dtype).");

    m.def("train_epoch_csr", [](const py::array& data, const py::array& indices, const py::array& indptr,
                                int64_t n_cols, const py::array& y, const py::object& order,
                                const py::list& weights, const py::object& biases, const std::string& kind,
                                const py::list& first, const py::list& second, const py::array& t,
                                double lr, int64_t batch, double alpha, double momentum, bool nesterov,
                                double beta1, double beta2, double epsilon, const std::string& loss,
                                const py::object& sample_weight) {
        const OptimizerConfig opt = optimizer_config(kind, batch, t, momentum, nesterov, beta1, beta2, epsilon);
        return dispatch(first_dtype(weights), data.dtype(), [&](auto tt, auto tx) {
            using T = typename decltype(tt)::type;
            using TX = typename decltype(tx)::type;
            if constexpr (!std::is_same_v<T, TX>) {
                throw py::type_error("X.data: expected the parameters' dtype " + std::string(dtype_name<T>()) +
                                     ", got " + dtype_of(data));
                return 0.0;
            } else {
                const SparseRowsView<T> x = sparse_rows_view<T>(data, indices, indptr, n_cols);
                return run_train_epoch<T>(x.rows, x.cols, y, order, weights, biases, opt, first, second, t,
                                          [&](const auto&... a) { return train_epoch_sparse<T>(x, a...); },
                                          lr, batch, alpha, loss, sample_weight);
            }
        });
    }, py::arg("data").noconvert(), py::arg("indices").noconvert(), py::arg("indptr").noconvert(),
       py::arg("n_cols"), py::arg("y").noconvert(), py::arg("order"), py::arg("weights"),
       py::arg("biases"), py::arg("kind"), py::arg("first"), py::arg("second"), py::arg("t").noconvert(),
       py::arg("lr"), py::arg("batch"), py::arg("alpha"), py::arg("momentum"), py::arg("nesterov"),
       py::arg("beta1"), py::arg("beta2"), py::arg("epsilon"), py::arg("loss") = "log_loss",
       py::arg("sample_weight") = py::none(),
       "train_epoch with X in CSR form (data, indices int32, indptr int64; n_cols columns).");

    m.def("dense_to_csr", [](const py::array& X, const py::dtype& dtype, double max_density) -> py::object {
        return dispatch(dtype, X.dtype(), [&](auto tt, auto tx) -> py::object {
            using T = typename decltype(tt)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            if (x.cols > INT32_MAX) throw py::value_error("X: expected at most 2**31 - 1 columns, got " + std::to_string(x.cols));
            py::array_t<int64_t> ptr(x.rows + 1);
            int64_t nnz;
            {
                const Computing computing;
                nnz = csr_row_offsets<TX>(x.data, x.rows, x.cols, x.ld, ptr.mutable_data());
            }
            if (static_cast<double>(nnz) > max_density * static_cast<double>(x.rows) * static_cast<double>(x.cols))
                return py::none();
            py::array_t<T> values(nnz);
            py::array_t<std::int32_t> idx(nnz);
            {
                const Computing computing;
                dense_to_csr<TX, T>(x.data, x.rows, x.cols, x.ld, ptr.data(), idx.mutable_data(), values.mutable_data());
            }
            return py::make_tuple(values, idx, ptr);
        });
    }, py::arg("X").noconvert(), py::arg("dtype"), py::arg("max_density") = 1.0,
       "(data, indices, indptr) of X's nonzeros as dtype, or None when more than max_density of X is nonzero.");

    m.def("biased_logits", [](const py::array& X, const py::list& weights, const py::object& biases,
                              const py::array& out, bool skip_zeros) {
        dispatch(first_dtype(weights), X.dtype(), [&](auto t, auto tx) {
            using T = typename decltype(t)::type;
            using TX = typename decltype(tx)::type;
            const auto x = data_matrix<TX>(X, "X");
            const BiasedNetwork<T> net = biased_network<T>(weights, biases, x.cols, /*writeable=*/false);
            T* z = logits_out<T>(out, x.rows, net.dims.back());
            const Computing computing;
            biased_logits<T, TX>(x, net, z, skip_zeros);
        });
    }, py::arg("X").noconvert(), py::arg("weights"), py::arg("biases"), py::arg("out").noconvert(),
       py::arg("skip_zeros") = false,
       "out = the logits of the net with biases (skip_zeros: the first layer over X's nonzeros).");
    // ---- end of biased networks and optimizers.

    // Strategy switches of the GEMM driver (gemm_kernels.hpp: Tuning), for tests that force
    // every code path and for benchmarks comparing strategies. Not part of the public API; not
    // to be changed while another thread runs a GEMM. Returns the previous settings.
    m.def("_epoch_threads", [](int64_t batch, int64_t d1) {
        if (batch < 1 || d1 < 1) throw py::value_error("_epoch_threads: batch and d1 must be >= 1");
        return std::min(get_num_threads(), epoch_threads(batch, d1));
    }, py::arg("batch"), py::arg("d1"),
       "Threads an epoch of batches of `batch` rows and a first hidden layer of d1 units would use now "
       "(get_num_threads(), capped where the batch's shares get too small).");
    m.def("_gemm_tuning", [](py::kwargs kwargs) {
        auto& t = gemm_detail::tuning();
        py::dict previous;
        previous["parallel_min_flops"] = t.parallel_min_flops;
        previous["allow_dot_path"] = t.allow_dot_path;
        previous["allow_swap_path"] = t.allow_swap_path;
        previous["allow_narrow_kernel"] = t.allow_narrow_kernel;
        previous["allow_rows_kernel"] = t.allow_rows_kernel;
        previous["narrow_registers"] = t.narrow_registers;
        previous["balanced_rows"] = t.balanced_rows;
        previous["force_pack"] = t.force_pack;
        previous["mc"] = t.mc;
        previous["kc"] = t.kc;
        previous["nc"] = t.nc;
        previous["single_k_block"] = t.single_k_block;
        previous["a_panel_outer"] = t.a_panel_outer;
        previous["auto_order"] = t.auto_order;
        previous["private_a"] = t.private_a;
        previous["column_split"] = t.column_split;
        for (auto item : kwargs) {
            const auto key = item.first.cast<std::string>();
            if (key == "parallel_min_flops") t.parallel_min_flops = item.second.cast<double>();
            else if (key == "allow_dot_path") t.allow_dot_path = item.second.cast<bool>();
            else if (key == "allow_swap_path") t.allow_swap_path = item.second.cast<bool>();
            else if (key == "allow_narrow_kernel") t.allow_narrow_kernel = item.second.cast<bool>();
            else if (key == "allow_rows_kernel") t.allow_rows_kernel = item.second.cast<bool>();
            else if (key == "narrow_registers") t.narrow_registers = item.second.cast<bool>();
            else if (key == "balanced_rows") t.balanced_rows = item.second.cast<bool>();
            else if (key == "force_pack") t.force_pack = item.second.cast<int>();
            else if (key == "mc") t.mc = item.second.cast<int>();
            else if (key == "kc") t.kc = item.second.cast<int>();
            else if (key == "nc") t.nc = item.second.cast<int>();
            else if (key == "single_k_block") t.single_k_block = item.second.cast<bool>();
            else if (key == "a_panel_outer") t.a_panel_outer = item.second.cast<bool>();
            else if (key == "auto_order") t.auto_order = item.second.cast<bool>();
            else if (key == "private_a") t.private_a = item.second.cast<bool>();
            else if (key == "column_split") t.column_split = item.second.cast<int>();
            else throw py::value_error("_gemm_tuning: unknown setting '" + key + "'");
        }
        return previous;
    });

    // An internal three-way setting (0 automatic, 1 and -1 forced): `value` sets it, None reads
    // it; returns the previous one.
    auto three_way = [](int& setting, const py::object& value, const char* function, const char* argument) {
        const int previous = setting;
        if (!value.is_none()) {
            const int v = value.cast<int>();
            if (v < -1 || v > 1)
                throw py::value_error(std::string(function) + ": " + argument + " must be -1, 0 or 1, got " +
                                      std::to_string(v));
            setting = v;
        }
        return previous;
    };

    m.def("_softmax_tuning", [three_way](py::object forward_blocks) {
        // The softmax epoch's forward register blocks (softmax_epoch.hpp): 0 chooses by the ISA
        // and the L1 data cache, 1 always wide (all of k <= 10 classes at once), -1 the ISA's own
        // (5 classes at once).
        return three_way(softmax_forward_blocks(), forward_blocks, "_softmax_tuning", "forward_blocks");
    }, py::arg("forward_blocks") = py::none(),
       "Internal: the softmax epoch's forward blocks (0 auto, 1 wide, -1 the ISA's); returns the previous setting.");

    m.def("_softmax_split_tuning", [](py::object min_work) {
        // The softmax epoch shares a batch among threads from this many multiply-adds (softmax_epoch.hpp).
        const std::int64_t previous = softmax_split_min_work();
        if (!min_work.is_none()) {
            const std::int64_t v = min_work.cast<std::int64_t>();
            if (v < 0) throw py::value_error("_softmax_split_tuning: min_work must be >= 0, got " + std::to_string(v));
            softmax_split_min_work() = v;
        }
        return previous;
    }, py::arg("min_work") = py::none(),
       "Internal: multiply-adds per batch from which the softmax epoch shares it among threads (0: always); "
       "returns the previous setting.");

    m.def("_panel_lists_tuning", [three_way](py::object lists) {
        // The zero-skipping first layer's sorted lists on 2-thread column panels (train_epoch.hpp):
        // 0 chooses by the team's core-to-core round trip, 1 a set per panel, -1 one shared set.
        return three_way(panel_lists_setting(), lists, "_panel_lists_tuning", "lists");
    }, py::arg("lists") = py::none(),
       "Internal: the 2-thread zero-skipping epoch's sorted lists (0 auto, 1 per panel, -1 shared); returns the previous setting.");

    m.def("_dense_strips_tuning", [three_way](py::object strips) {
        // The dense first layer's W_1 in panels of NR columns for the epoch (train_epoch.hpp): 0 where
        // W_1's rows are wider than 512 bytes and it has 128 rows or more, 1 always, -1 never.
        return three_way(dense_strips_setting(), strips, "_dense_strips_tuning", "strips");
    }, py::arg("strips") = py::none(),
       "Internal: the dense epoch's W_1 in NR-column panels (0 auto, 1 always, -1 never); returns the previous setting.");

    m.def("_sparse_tuning", [three_way](py::object blocked) {
        // sparse_times_dense's rows kernels (sparse_rows.hpp): 0 chooses by the shape, 1 always the
        // blocked one, -1 never.
        return three_way(sparse_blocked_setting(), blocked, "_sparse_tuning", "blocked");
    }, py::arg("blocked") = py::none(),
       "Internal: the zero-skipping first layer's rows kernel (0 auto, 1 blocked, -1 row by row); returns the previous setting.");

    m.def("_gather_pass_tuning", [](py::object vectors) {
        // The ∇W_1 gather's passes (sparse_rows.hpp, gather_pass_setting): 0 by the L1 data cache,
        // n > 0 at most n vectors of columns per pass.
        const int previous = gather_pass_setting();
        if (!vectors.is_none()) {
            const int v = vectors.cast<int>();
            if (v < 0 || v > 64)
                throw py::value_error("_gather_pass_tuning: vectors must be 0 (automatic) or 1 ... 64, got " +
                                      std::to_string(v));
            gather_pass_setting() = v;
        }
        return previous;
    }, py::arg("vectors") = py::none(),
       "Internal: the zero-skipping ∇W_1 gather's vectors per pass (0 by the L1 data cache, n > 0 at most n); returns the previous setting.");

    m.def("_team_float_modes", [](int n) {
        if (n < 1 || n > 1024) throw py::value_error("_team_float_modes: n must be in [1, 1024], got " + std::to_string(n));
        py::gil_scoped_release nogil;
        return team_float_modes(n);
    }, py::arg("n"), "Internal: MXCSR's FTZ | DAZ bits of each thread of a team of n, outside any core call.");
    m.def("_team_round_trip_ns", []() {
        py::gil_scoped_release release;
        return team_round_trip_ns();
    }, "Internal: the core-to-core round trip between the first two threads of an OpenMP team of two, in ns (0: no team).");

    m.def("probe_fma_peak_gflops", [](const std::string& isa, bool dbl, double seconds) {
        const Isa i = isa_from_name(isa);
        py::gil_scoped_release nogil;
        return probe_fma_peak_gflops(i, dbl, seconds);
    }, py::arg("isa"), py::arg("double") = false, py::arg("seconds") = 0.2,
       "Single-thread FMA throughput in GFLOP/s for the ISA's widest vectors.");
    m.def("probe_micro_kernel_gflops", [](double seconds) {
        py::gil_scoped_release nogil;
        return probe_micro_kernel_gflops(seconds);
    }, py::arg("seconds") = 0.2,
       "Single-thread GFLOP/s of the active ISA's float GEMM micro-kernel with its operands in L1.");
    m.def("probe_read_bandwidth_gbs", [](std::size_t bytes, double seconds) {
        py::gil_scoped_release nogil;
        return probe_read_bandwidth_gbs(bytes, seconds);
    }, py::arg("bytes") = std::size_t(1) << 29, py::arg("seconds") = 0.3,
       "Single-thread streaming-read bandwidth in GB/s.");
    m.def("probe_core_to_core_ns", [](double seconds) {
        if (!(seconds > 0 && seconds <= 60))
            throw py::value_error("probe_core_to_core_ns: seconds must be in (0, 60], got " + std::to_string(seconds));
        py::gil_scoped_release nogil;
        return probe_core_to_core_ns(seconds);
    }, py::arg("seconds") = 0.1,
       "Round trip of a cache line between two threads in ns (median of batches): what a team's hand-overs "
       "cost where the process's CPUs are placed.");
}
