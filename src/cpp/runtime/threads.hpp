// Thread count used by every parallel region of the C++ core, and how it follows the host.
//
// Parallelism lives *inside* one batch (GEMM blocks, row-wise softmax), never across batches, so
// SGD semantics do not depend on the thread count.  The count is, in order of precedence:
//   1. 1 in a process forked after the core ran a team of threads: GNU OpenMP's thread pool does
//      not survive fork() (the child would wait for ever on threads that were not copied), so
//      such a child runs every region inline — the same bits, one core;
//   2. set_num_threads(n) (also what threadpoolctl's fastnn controller calls);
//   3. otherwise the host's: the smaller of the CPUs this process may run on
//      (sched_getaffinity, which reflects cgroup cpusets and taskset) and OpenMP's nthreads-var,
//      which is OMP_NUM_THREADS when set (joblib/loky, dask and ray workers set it to 1) or what
//      omp_set_num_threads last said on this thread (threadpoolctl's OpenMP controller).
#pragma once

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

int default_num_threads();   // the host's count (rule 3 above, >= 1)
int num_threads_in_force(); // the count in force (>= 1), for reports: build_info, Python
int get_num_threads();       // the same, for a caller about to open a parallel region
void set_num_threads(int n); // n >= 1; throws std::invalid_argument otherwise
void reset_num_threads();    // drop set_num_threads's setting: follow the host again
bool num_threads_is_set();   // is a set_num_threads setting in force?
bool forked_after_threads(); // rule 1: is this a child forked after the parent ran a team?
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
