// Thread count used by every parallel region of the C++ core.
//
// Parallelism lives *inside* one batch (GEMM blocks, row-wise softmax), never
// across batches, so SGD semantics do not depend on the thread count.  The
// default is the number of CPUs this process may run on (sched_getaffinity,
// which also reflects cgroup cpusets), capped by OpenMP's own limit.
#pragma once

namespace fastnn {

int default_num_threads();   // CPUs in this process's affinity mask (>= 1)
int get_num_threads();       // current setting (>= 1)
void set_num_threads(int n); // n >= 1; throws std::invalid_argument otherwise
bool openmp_enabled();       // was the core built with OpenMP?

}  // namespace fastnn
