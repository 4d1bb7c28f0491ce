// Thread count used by every parallel region of the C++ core.
//
// Parallelism lives *inside* one batch (GEMM blocks, row-wise softmax), never
// across batches, so SGD semantics do not depend on the thread count.  The
// default is the number of CPUs this process may run on (sched_getaffinity,
// which also reflects cgroup cpusets), capped by OpenMP's own limit.
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

int default_num_threads();   // CPUs in this process's affinity mask (>= 1)
int get_num_threads();       // current setting (>= 1)
void set_num_threads(int n); // n >= 1; throws std::invalid_argument otherwise
bool openmp_enabled();       // was the core built with OpenMP?

// Runs body(tid, nthreads) on a team of `nthreads` threads, or inline (no parallel region at all)
// when 1; orphaned barriers and `single`s inside body bind to the team.
template <typename Body>
void run_team(int nthreads, const Body& body) {
#if defined(_OPENMP)
    if (nthreads > 1) {
#pragma omp parallel num_threads(nthreads)
        body(omp_get_thread_num(), omp_get_num_threads());
        return;
    }
#else
    (void)nthreads;
#endif
    body(0, 1);
}

}  // namespace fastnn
