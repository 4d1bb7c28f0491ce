#include "runtime/threads.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#include <sys/resource.h>
#endif
#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

namespace {

// CPUs in this process's affinity mask, read once: the mask rarely changes after start-up, and
// get_num_threads() runs before every parallel region (a syscall there would cost ~1% of an epoch).
int affinity_cpus() {
    static const int cpus = [] {
        int n = 0;
#if defined(__linux__)
        cpu_set_t set;
        if (sched_getaffinity(0, sizeof(set), &set) == 0) n = CPU_COUNT(&set);
#endif
#if defined(_OPENMP)
        if (n <= 0) n = omp_get_num_procs();
#endif
        return n > 0 ? n : 1;
    }();
    return cpus;
}

std::atomic<int> chosen_threads{0};        // set_num_threads's n; 0: follow the host
std::atomic<bool> team_may_have_run{false}; // a count > 1 was handed out: libgomp's pool may exist
std::atomic<bool> forked_child{false};
std::atomic<std::int64_t> busy_until_ns{0}; // BusyHostWatch's verdict: busy until then (steady clock)

std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch()).count();
}

bool busy_now() {
    const std::int64_t until = busy_until_ns.load(std::memory_order_relaxed);
    return until != 0 && now_ns() < until;
}

// CPU seconds (user + system) of all this process's threads so far (-1 where unknown).
double process_cpu_seconds() {
#if defined(__unix__) || defined(__APPLE__)
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0)
        return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
               1e-6 * static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
#endif
    return -1;
}

// Involuntary context switches of all this process's threads so far (0 where unknown: never busy).
long involuntary_switches() {
#if defined(__unix__) || defined(__APPLE__)
    rusage usage{};
    if (getrusage(RUSAGE_SELF, &usage) == 0) return usage.ru_nivcsw;
#endif
    return 0;
}

// Does the next team get the host's count (rules 2 and 1 do not apply)?
bool count_is_the_hosts() {
    return chosen_threads.load(std::memory_order_relaxed) == 0 && !forked_child.load(std::memory_order_relaxed);
}

#if defined(__unix__) || defined(__APPLE__)
// pthread_atfork's child handler: runs in the child of every fork(), Python's os.fork,
// multiprocessing's "fork" and ProcessPoolExecutor's workers included.
void on_fork_child() {
    if (team_may_have_run.load(std::memory_order_relaxed)) forked_child.store(true);
}
const bool fork_handler_installed = pthread_atfork(nullptr, nullptr, on_fork_child) == 0;
#endif

}  // namespace

int default_num_threads() {
    int n = affinity_cpus();
#if defined(_OPENMP)
    n = std::min(n, std::max(1, omp_get_max_threads()));
    n = std::min(n, std::max(1, omp_get_thread_limit()));
#endif
    return n;
}

int num_threads_in_force() {
#if defined(_OPENMP)
    if (forked_child.load(std::memory_order_relaxed)) return 1;
    const int chosen = chosen_threads.load(std::memory_order_relaxed);
    return chosen > 0 ? chosen : default_num_threads();
#else
    return 1;
#endif
}

namespace {
thread_local int epoch_thread_cap = 0;   // 0: none (EpochThreadCap)
}  // namespace

EpochThreadCap::EpochThreadCap(int cap) : previous_(epoch_thread_cap) { epoch_thread_cap = cap < 1 ? 1 : cap; }
EpochThreadCap::~EpochThreadCap() { epoch_thread_cap = previous_; }

int get_num_threads() {
    int n = num_threads_in_force();
    if (epoch_thread_cap > 0 && n > epoch_thread_cap) n = epoch_thread_cap;
    if (n > 1 && count_is_the_hosts() && busy_now()) n = 1;
    // From here on a fork's child must not open a team (on_fork_child).
    if (n > 1 && !team_may_have_run.load(std::memory_order_relaxed))
        team_may_have_run.store(true, std::memory_order_relaxed);
    return n;
}

void set_num_threads(int n) {
    if (n < 1)
        throw std::invalid_argument("num_threads: expected an integer >= 1, got " + std::to_string(n));
    chosen_threads.store(n);
}

void reset_num_threads() { chosen_threads.store(0); }

bool num_threads_is_set() { return chosen_threads.load() > 0; }

bool forked_after_threads() { return forked_child.load(); }

bool host_busy() { return busy_now(); }

BusyHostWatch::BusyHostWatch() {
    if (count_is_the_hosts() && num_threads_in_force() > 1 && !busy_now()) {
        watching_ = true;
        switches_ = involuntary_switches();
        threads_ = get_num_threads();   // (an EpochThreadCap in scope lowers it)
        cpu_start_ = process_cpu_seconds();
        start_ns_ = now_ns();
    }
}

BusyHostWatch::~BusyHostWatch() {
    if (!watching_) return;
    const std::int64_t end = now_ns();
    const double seconds = 1e-9 * static_cast<double>(end - start_ns_);
    if (seconds < kMinSampleSeconds) return;   // too short to judge
    const double rate = static_cast<double>(involuntary_switches() - switches_) / seconds;
    const double cpu = process_cpu_seconds() - cpu_start_;
    const bool starved = threads_ > 1 && cpu_start_ >= 0 && cpu < kMinCpuShare * seconds * threads_;
    busy_until_ns.store(rate >= kBusySwitchesPerSecond || starved
                            ? end + static_cast<std::int64_t>(kBusyBackoffSeconds * 1e9) : 0);
}

#if defined(__linux__) && defined(_OPENMP)
struct EpochPinning::Saved {
    std::vector<pthread_t> threads;
    std::vector<cpu_set_t> masks;   // each thread's own mask before the epoch
};

EpochPinning::EpochPinning() {
    const int n = get_num_threads();
    if (n < 2 || forked_after_threads() || omp_in_parallel()) return;
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < n) return;
    std::vector<int> cpus;   // the caller's CPU first, then the mask's others in order
    const int here = sched_getcpu();
    if (here >= 0 && here < CPU_SETSIZE && CPU_ISSET(here, &allowed)) cpus.push_back(here);
    for (int c = 0; c < CPU_SETSIZE && static_cast<int>(cpus.size()) < n; ++c)
        if (CPU_ISSET(c, &allowed) && c != here) cpus.push_back(c);
    const std::size_t count = static_cast<std::size_t>(n);
    std::vector<pthread_t> threads(count);
    std::vector<cpu_set_t> masks(count);
    std::vector<char> bound(count, 0);
#pragma omp parallel num_threads(n)
    {
        const std::size_t i = static_cast<std::size_t>(omp_get_thread_num());
        if (i < count) {
            threads[i] = pthread_self();
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpus[i], &one);
            if (pthread_getaffinity_np(threads[i], sizeof(cpu_set_t), &masks[i]) == 0 &&
                pthread_setaffinity_np(threads[i], sizeof(cpu_set_t), &one) == 0)
                bound[i] = 1;
        }
    }
    saved_ = new Saved;
    for (std::size_t i = 0; i < count; ++i)
        if (bound[i]) {
            saved_->threads.push_back(threads[i]);
            saved_->masks.push_back(masks[i]);
        }
}

EpochPinning::~EpochPinning() {
    if (saved_ == nullptr) return;
    for (std::size_t i = 0; i < saved_->threads.size(); ++i)   // (libgomp's pool threads live on)
        pthread_setaffinity_np(saved_->threads[i], sizeof(cpu_set_t), &saved_->masks[i]);
    delete saved_;
}
#else
struct EpochPinning::Saved {};
EpochPinning::EpochPinning() {}
EpochPinning::~EpochPinning() {}
#endif

bool HandOverLine::await(std::int64_t want) const {
    for (int spins = 0;; ++spins) {
        const std::int64_t now = count.load(std::memory_order_acquire);
        if (now == want) return true;
        if (now == kStop) return false;
        if (spins >= 4096) std::this_thread::yield();
    }
}

double team_round_trip_ns() {
    constexpr int kWarmUp = 8, kBatch = 16, kBatches = 5;
    constexpr std::int64_t kTotal = kWarmUp + kBatch * kBatches;
    // Where the two threads do not both hold a CPU (a busy host, a CPU quota) each hand-over can
    // wait for a time slice: past this the probe stops, with the batches it has.
    constexpr double kMaxNs = 2e6;
    HandOverLine line;
    double batches[kBatches];
    int measured = 0;
    run_team(2, [&](int t, int team) {
        if (team < 2 || t > 1) return;
        if (t == 1) {
            line.answer_until_stopped();
            return;
        }
        const auto start = std::chrono::steady_clock::now();
        std::chrono::steady_clock::time_point t0;
        for (std::int64_t i = 0; i < kTotal; ++i) {
            const std::int64_t in_batch = i - kWarmUp;
            if (in_batch >= 0 && in_batch % kBatch == 0) t0 = std::chrono::steady_clock::now();
            line.ask(i);
            const auto now = std::chrono::steady_clock::now();
            if (in_batch >= 0 && in_batch % kBatch == kBatch - 1)
                batches[measured++] = std::chrono::duration<double, std::nano>(now - t0).count() / kBatch;
            if (i + 1 < kTotal && std::chrono::duration<double, std::nano>(now - start).count() > kMaxNs) {
                if (measured == 0)   // (not one batch: the time so far, per hand-over)
                    batches[measured++] = std::chrono::duration<double, std::nano>(now - start).count() /
                                          static_cast<double>(i + 1);
                break;
            }
        }
        line.stop();
    });
    if (measured == 0) return 0;
    std::nth_element(batches, batches + measured / 2, batches + measured);
    return batches[measured / 2];
}

bool openmp_enabled() {
#if defined(_OPENMP)
    return true;
#else
    return false;
#endif
}

std::vector<unsigned> team_float_modes(int n) {
    std::vector<unsigned> modes(static_cast<std::size_t>(std::max(1, n)), 0);
#if defined(_OPENMP)
#pragma omp parallel num_threads(n)
    {
        const int t = omp_get_thread_num();
        if (t < n) modes[static_cast<std::size_t>(t)] = float_mode();
    }
#else
    modes[0] = float_mode();
#endif
    return modes;
}

}  // namespace fastnn

// threadpoolctl's view of the core (fastnn/threadpool.py registers a controller that finds this
// library by these symbols and calls them through ctypes): the same count as num_threads_in_force().
#if defined(__GNUC__)
#define FASTNN_EXPORT extern "C" __attribute__((visibility("default")))
#else
#define FASTNN_EXPORT extern "C"
#endif

FASTNN_EXPORT int fastnn_threadpool_get_num_threads() { return fastnn::num_threads_in_force(); }

FASTNN_EXPORT void fastnn_threadpool_set_num_threads(int n) {
    if (n >= 1) fastnn::set_num_threads(n);
}
