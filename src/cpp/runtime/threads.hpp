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
//      omp_set_num_threads last said on this thread (threadpoolctl's OpenMP controller);
//      and 1 for a while when the host is busy (BusyHostWatch below).
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "runtime/float_mode.hpp"

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace fastnn {

int default_num_threads();   // the host's count (rule 3 above, >= 1)
int num_threads_in_force(); // the count in force (>= 1), for reports: build_info, Python
int get_num_threads();       // the same, for a caller about to open a parallel region; 1 while
                             // the host is busy and the count is the host's (BusyHostWatch)
void set_num_threads(int n); // n >= 1; throws std::invalid_argument otherwise
void reset_num_threads();    // drop set_num_threads's setting: follow the host again
bool num_threads_is_set();   // is a set_num_threads setting in force?
bool forked_after_threads(); // rule 1: is this a child forked after the parent ran a team?
bool openmp_enabled();       // was the core built with OpenMP?
bool host_busy();            // is a BusyHostWatch's verdict "busy" in force now?

// Watches one long call (an epoch) that runs a team of the host's threads for signs that the
// host is busy: other processes take our threads' CPUs. GNU OpenMP's barriers then wait for a
// descheduled partner, and a 2-thread epoch beside one CPU-bound process took 1.3-1.6x the
// 1-thread one even with a short barrier spin (up to 60x with libgomp's own). The sign is the
// rate of involuntary context switches of this process's threads (getrusage's ru_nivcsw): on
// the 2-core Xeon a 2-thread h=400 epoch measured 17-50/s on an idle host and 2,100-4,600/s
// beside one hog. At >= kBusySwitchesPerSecond over a call of at least kMinSampleSeconds, the
// host's count is 1 for the next kBusyBackoffSeconds; the first call after that is watched
// again. The thread count never changes results (every sum has a fixed order), only speed; a
// count set by set_num_threads (or threadpoolctl) is never reduced.
class BusyHostWatch {
public:
    static constexpr double kBusySwitchesPerSecond = 150;
    static constexpr double kMinSampleSeconds = 0.02;
    static constexpr double kBusyBackoffSeconds = 2;
    static constexpr double kMinCpuShare = 0.6;   // process CPU time / (wall · threads) below: busy
    BusyHostWatch();
    ~BusyHostWatch();
    BusyHostWatch(const BusyHostWatch&) = delete;
    BusyHostWatch& operator=(const BusyHostWatch&) = delete;

private:
    bool watching_ = false;
    long switches_ = 0;
    std::int64_t start_ns_ = 0;
    double cpu_start_ = 0;   // process CPU seconds at the start
    int threads_ = 1;        // the team the epoch may use
};

// The most threads one epoch's regions use, while an EpochThreadCap is in scope on the calling
// thread (every region of an epoch is opened from it): get_num_threads() answers at most `cap`
// there. A batch is shared among the threads, and past some count the shares are too small to
// pay for the team: on the 16-core Xeon a 784-100-10 epoch (batch 100) took 121 ms on 4 threads
// and 691 ms on 16, a 784-400-10 one 135 ms on 8 and 179 ms on 16 (epoch_threads in
// train_epoch.cpp chooses the cap). Never raises the count; nests (the innermost cap holds).
class EpochThreadCap {
public:
    explicit EpochThreadCap(int cap);
    ~EpochThreadCap();
    EpochThreadCap(const EpochThreadCap&) = delete;
    EpochThreadCap& operator=(const EpochThreadCap&) = delete;
private:
    int previous_;
};

// For one epoch (while in scope on the calling thread): the threads of a team of get_num_threads()
// are each bound to one CPU of the caller's affinity mask (the caller to the CPU it is on), and
// given their own masks back after. A team thread woken from sleep at an epoch's first region
// (after the short barrier spin of _openmp_env.py ran out between epochs) was often placed on the
// caller's CPU and stayed there: on the 2-core Xeon a softmax epoch started 0.1 s after the last
// took 55-69 ms on 2 threads every other time instead of 17-19 ms (CPU pressure 40% of the epoch);
// bound, 17-19 ms every time, and the centred h=400 epoch's 2-thread speed-up went from 1.79 to
// 1.90. Bound threads cannot leave a CPU another process takes, so BusyHostWatch also counts an
// epoch whose threads got less than kMinCpuShare of their CPUs as busy. Nothing is bound with one
// thread, a count larger than the mask, in a forked child, inside a parallel region, or off Linux.
class EpochPinning {
public:
    EpochPinning();
    ~EpochPinning();
    EpochPinning(const EpochPinning&) = delete;
    EpochPinning& operator=(const EpochPinning&) = delete;
private:
    struct Saved;
    Saved* saved_ = nullptr;
};

// One cache line that two threads hand each other, for the core-to-core probes
// (probe_core_to_core_ns, team_round_trip_ns): for hand-over i the asking thread stores 2i + 1 and
// the answering thread, spinning on it, stores 2i + 2; kStop tells the answering thread to return.
struct alignas(64) HandOverLine {
    static constexpr std::int64_t kStop = -1;
    std::atomic<std::int64_t> count{0};
    // Spins until the count is `want` (false: kStop came instead); after a while it yields, so that
    // on one CPU (or a busy one) the other thread gets to run at all.
    bool await(std::int64_t want) const;
    void ask(std::int64_t i) {   // (the asking thread)
        count.store(2 * i + 1, std::memory_order_release);
        await(2 * i + 2);
    }
    void answer_until_stopped() {   // (the answering thread)
        for (std::int64_t i = 0; await(2 * i + 1); ++i) count.store(2 * i + 2, std::memory_order_release);
    }
    void stop() { count.store(kStop, std::memory_order_release); }   // (the asking thread, between hand-overs)
};

// The round trip of one cache line between the first two threads of a team of two (run_team), in
// nanoseconds: the median of 5 batches of 16 hand-overs, after 8 to warm up (on the 2-vCPU Zen 4
// about 120 ns where the two threads' cores share a cache, 320 ns and more where they do not,
// microseconds on one CPU; never much past 2 ms: where the two threads wait for time slices, it
// stops early with what it has). 0 where no team of two
// runs (no OpenMP, or the runtime gave one thread). Call it where the epoch's threads are placed
// as they will run (inside EpochPinning).
double team_round_trip_ns();

// The flush bits (float_mode.hpp) each thread of a team of n has outside the core's calls, from a
// region that sets none: for the tests that check a call gives the team threads' modes back.
std::vector<unsigned> team_float_modes(int n);

// Runs body(tid, nthreads) on a team of `nthreads` threads, or inline (no parallel region at all)
// when 1; orphaned barriers and `single`s inside body bind to the team. Every thread computes in
// the calling thread's floating-point mode (float_mode.hpp).
template <typename Body>
void run_team(int nthreads, const Body& body) {
#if defined(_OPENMP)
    if (nthreads > 1) {
        const TeamFloatMode mode = team_float_mode();
#pragma omp parallel num_threads(nthreads)
        {
            const TeamFloatModeScope team_mode(mode);
            body(omp_get_thread_num(), omp_get_num_threads());
        }
        return;
    }
#else
    (void)nthreads;
#endif
    body(0, 1);
}

// Runs body() on each thread of a parallel region of `nthreads` threads that is opened even for one
// (a team of one), so that the `omp for`, barrier and `single` constructs inside body bind to this
// region, never to a caller's; every thread computes in the calling thread's floating-point mode
// (float_mode.hpp). omp_get_thread_num() / omp_get_num_threads() inside give a thread its share.
// (run_team runs body inline when nthreads is 1: for bodies without such constructs.)
template <typename Body>
void run_region(int nthreads, const Body& body) {
    const TeamFloatMode mode = team_float_mode();
#if defined(_OPENMP)
#pragma omp parallel num_threads(nthreads) if (nthreads > 1)
#endif
    {
        const TeamFloatModeScope team_mode(mode);
        body();
    }
    (void)nthreads;
}

}  // namespace fastnn
