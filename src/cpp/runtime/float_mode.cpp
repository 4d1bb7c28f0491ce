// The core's floating-point mode: subnormals as zero (see float_mode.hpp).
#include "runtime/float_mode.hpp"

#include <atomic>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || defined(_M_IX86)
#include <xmmintrin.h>
#define FASTNN_HAS_MXCSR 1
#else
#define FASTNN_HAS_MXCSR 0
#endif

namespace fastnn {

namespace {
std::atomic<bool> g_flush_subnormals{true};

// In a core call on this thread (CoreCallFloatMode): the caller's own flush bits from before it.
thread_local bool t_in_call = false;
thread_local unsigned t_own_mode = 0;

#if FASTNN_HAS_MXCSR
constexpr unsigned kFlushToZero = 0x8000;       // FTZ: a subnormal result becomes ±0
constexpr unsigned kDenormalsAreZero = 0x0040;  // DAZ: a subnormal input is read as ±0
constexpr unsigned kFlushBits = kFlushToZero | kDenormalsAreZero;
#else
constexpr unsigned kFlushBits = 0;
#endif

// This thread's flush bits := mode (the rest of MXCSR kept).
void set_float_mode(unsigned mode) {
#if FASTNN_HAS_MXCSR
    const unsigned csr = _mm_getcsr();
    const unsigned wanted = (csr & ~kFlushBits) | (mode & kFlushBits);
    if (wanted != csr) _mm_setcsr(wanted);
#else
    (void)mode;
#endif
}
}  // namespace

bool flush_subnormals() { return g_flush_subnormals.load(std::memory_order_relaxed); }
void set_flush_subnormals(bool on) { g_flush_subnormals.store(on, std::memory_order_relaxed); }
bool float_mode_supported() { return FASTNN_HAS_MXCSR != 0; }

unsigned float_mode() {
#if FASTNN_HAS_MXCSR
    return _mm_getcsr() & kFlushBits;
#else
    return 0;
#endif
}

CoreCallFloatMode::CoreCallFloatMode()
    : own_(float_mode()), outer_own_(t_own_mode), outer_in_call_(t_in_call) {
    // Nested (a call made from inside a call): the outermost caller's own mode stays the one to return to.
    if (!outer_in_call_) t_own_mode = own_;
    t_in_call = true;
    set_float_mode(flush_subnormals() ? kFlushBits : own_);
}

CoreCallFloatMode::~CoreCallFloatMode() {
    set_float_mode(own_);
    t_own_mode = outer_own_;
    t_in_call = outer_in_call_;
}

// (A thread's address of t_in_call tells threads apart.)
TeamFloatMode team_float_mode() {
    const unsigned now = float_mode();
    return {now, t_in_call ? t_own_mode : now, &t_in_call};
}

TeamFloatModeScope::TeamFloatModeScope(TeamFloatMode mode)
    : after_(mode.opener == &t_in_call ? mode.during : mode.after) {
    set_float_mode(mode.during);
}
TeamFloatModeScope::~TeamFloatModeScope() { set_float_mode(after_); }

CallersOwnFloatMode::CallersOwnFloatMode() : call_(float_mode()) { set_float_mode(t_in_call ? t_own_mode : call_); }
CallersOwnFloatMode::~CallersOwnFloatMode() { set_float_mode(call_); }

}  // namespace fastnn
