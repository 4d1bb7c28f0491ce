// Subnormal numbers, and the floating-point mode the core computes in.
//
// A subnormal float is one below 2^-126 ≈ 1.2e-38 in magnitude (double: 2^-1022 ≈ 2.2e-308).
// Intel cores handle an operation with a subnormal input or result in a microcode assist that
// costs on the order of a hundred cycles. Training makes them where the softmax saturates: a
// probability e^(z − max z) of 1e-37 times 1/B is one, and so is every product and sum it then
// enters. On an Intel Xeon family 6 model 207, 1 thread, MNIST (bench/subnormals.py): a
// 784-100-10 epoch on standardized X from weights drawn N(0, 1) took 1,241 ms in IEEE arithmetic
// and takes 142 ms flushed, as long as with hw0's initial weights (NumPy: 1,288 ms; PyTorch:
// 1,432 ms, 212 ms after torch.set_flush_denormal(True)).
//
// So, by default, every call into the core computes with subnormals as zero: MXCSR's FTZ (a
// subnormal result is 0) and DAZ (a subnormal input reads as 0), on the calling thread and on
// every thread of its teams, for the duration of the call, and the threads' own modes come back
// after it. TensorFlow does the same in its CPU threads; torch.set_flush_denormal(True) is
// PyTorch's switch for it. What changes is below 1.2e-38 (2.2e-308), where a weight of ordinary
// size registers nothing anyway (a float32 weight of 1e-3 has an ulp of 1e-10).
// set_flush_subnormals(false) keeps IEEE gradual underflow (the caller's own mode).
//
// A team thread computes in the mode of the thread that opened the region, and leaves it in that
// thread's own mode from before its core call (TeamFloatModeScope): so the thread count never
// changes results, whatever the mode -- the zero-skipping compaction, for one, counts nonzeros and
// copies them in one mode -- and a pool thread that OpenMP creates during a call (a new thread
// starts in its creator's mode) is not left flushing for the process's other OpenMP work.
// Off x86 (no MXCSR) these are no-ops and the core computes in the platform's default mode.
#pragma once

namespace fastnn {

bool flush_subnormals();               // the policy: compute with subnormals as zero (default true)
void set_flush_subnormals(bool on);
bool float_mode_supported();           // can this build set the mode (x86: MXCSR)?

// The calling thread's flush bits (MXCSR & (FTZ | DAZ); 0 off x86).
unsigned float_mode();

// One call into the core, on its calling thread (python/bindings.cpp, after the GIL is released):
// the flush bits FTZ | DAZ with flush_subnormals(), else the caller's own, until it goes out of
// scope; then the caller's own mode again. Nests.
class CoreCallFloatMode {
public:
    CoreCallFloatMode();
    ~CoreCallFloatMode();
    CoreCallFloatMode(const CoreCallFloatMode&) = delete;
    CoreCallFloatMode& operator=(const CoreCallFloatMode&) = delete;
private:
    unsigned own_, outer_own_;
    bool outer_in_call_;
};

// What a parallel region's threads compute in (`during`: the opening thread's mode) and return to
// (`after`: the opening thread's own mode from before its core call, or its current one outside a
// call). Read on the opening thread, before the region.
struct TeamFloatMode {
    unsigned during, after;
    const void* opener;   // the opening thread (which stays in `during`: it is still in its call)
};
TeamFloatMode team_float_mode();

// On a team thread, for the region's body: its flush bits set to mode.during (the rest of its
// MXCSR, rounding included, untouched), and to mode.after when it goes out of scope (but for the
// opening thread, which goes on in mode.during).
class TeamFloatModeScope {
public:
    explicit TeamFloatModeScope(TeamFloatMode mode);
    ~TeamFloatModeScope();
    TeamFloatModeScope(const TeamFloatModeScope&) = delete;
    TeamFloatModeScope& operator=(const TeamFloatModeScope&) = delete;
private:
    unsigned after_;
};

// Python's signal handlers, called from inside an epoch, run in the caller's own mode
// (python_signal_check in bindings.cpp): this thread's own mode while in scope, then the call's.
class CallersOwnFloatMode {
public:
    CallersOwnFloatMode();
    ~CallersOwnFloatMode();
    CallersOwnFloatMode(const CallersOwnFloatMode&) = delete;
    CallersOwnFloatMode& operator=(const CallersOwnFloatMode&) = delete;
private:
    unsigned call_;
};

}  // namespace fastnn
