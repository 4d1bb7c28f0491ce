#include "runtime/build_info.hpp"

#include <string>

#include "runtime/cpu_features.hpp"
#include "runtime/float_mode.hpp"
#include "runtime/threads.hpp"

#ifndef FASTNN_VERSION
#define FASTNN_VERSION "unknown"
#endif
#ifndef FASTNN_COMPILER
#define FASTNN_COMPILER "unknown"
#endif
#ifndef FASTNN_CXX_FLAGS
#define FASTNN_CXX_FLAGS ""
#endif
#ifndef FASTNN_BUILD_TYPE
#define FASTNN_BUILD_TYPE ""
#endif
#ifndef FASTNN_ISA_FLAGS
#define FASTNN_ISA_FLAGS ""
#endif

namespace fastnn {

pybind11::dict build_info() {
    pybind11::dict info;
    info["version"] = FASTNN_VERSION;
    info["compiler"] = FASTNN_COMPILER;
    info["build_type"] = FASTNN_BUILD_TYPE;
    info["cxx_flags"] = FASTNN_CXX_FLAGS;
    info["kernel_flags"] = FASTNN_ISA_FLAGS;   // per-file flags of the SIMD micro-kernels
#if FASTNN_X86_KERNELS
    info["simd_compiled"] = "generic, avx2, avx512";   // kernels built; one is chosen at run time
#else
    info["simd_compiled"] = "generic";
#endif
    info["simd_detected"] = isa_name(detected_isa());
    info["simd_active"] = isa_name(active_isa());
    info["simd_warning"] = isa_warning();
    info["cpu"] = cpu_model();
    info["l2_cache_bytes"] = l2_cache_bytes();   // per core, as the GEMM's blocking uses it
    info["l1d_cache_bytes"] = l1d_cache_bytes();   // per core, as the softmax forward's blocks use it
    info["openmp"] = openmp_enabled();
    info["num_threads"] = num_threads_in_force();
    info["default_num_threads"] = default_num_threads();   // the host's: affinity, OMP_NUM_THREADS
    info["num_threads_source"] = forked_after_threads() ? "fork (single-threaded child)"
                                 : num_threads_is_set()  ? "set_num_threads"
                                 : host_busy()           ? "host (busy: 1 thread for now)"
                                                         : "host";
    // Subnormals computed as zero (FTZ and DAZ) during the core's calls: set_flush_subnormals.
    info["flush_subnormals"] = flush_subnormals() && float_mode_supported();
    return info;
}

}  // namespace fastnn
