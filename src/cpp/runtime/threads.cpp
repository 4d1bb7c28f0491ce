#include "runtime/threads.hpp"

#include <atomic>
#include <stdexcept>
#include <string>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

int default_num_threads() {
    int n = 0;
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
#if defined(_OPENMP)
    if (n <= 0) n = omp_get_num_procs();
#endif
    return n > 0 ? n : 1;
}

namespace {
std::atomic<int>& thread_setting() {
    static std::atomic<int> n{default_num_threads()};
    return n;
}
}  // namespace

int get_num_threads() {
#if defined(_OPENMP)
    return thread_setting().load();
#else
    return 1;
#endif
}

void set_num_threads(int n) {
    if (n < 1)
        throw std::invalid_argument("num_threads: expected an integer >= 1, got " + std::to_string(n));
    thread_setting().store(n);
}

bool openmp_enabled() {
#if defined(_OPENMP)
    return true;
#else
    return false;
#endif
}

}  // namespace fastnn
