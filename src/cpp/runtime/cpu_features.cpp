#include "runtime/cpu_features.hpp"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(_M_X64)
#define FASTNN_X86_64 1
#if defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
#else
#include <cpuid.h>
#include <immintrin.h>
#endif
#endif

namespace fastnn {

namespace {

#if defined(FASTNN_X86_64)
struct CpuidRegs {
    std::uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(std::uint32_t leaf, std::uint32_t subleaf = 0) {
    CpuidRegs r;
#if defined(_MSC_VER)
    int out[4];
    __cpuidex(out, static_cast<int>(leaf), static_cast<int>(subleaf));
    r.eax = out[0]; r.ebx = out[1]; r.ecx = out[2]; r.edx = out[3];
#else
    // __get_cpuid_count checks that `leaf` is supported and leaves zeros otherwise.
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid_count(leaf, subleaf, &a, &b, &c, &d)) {
        r.eax = a; r.ebx = b; r.ecx = c; r.edx = d;
    }
#endif
    return r;
}

#if FASTNN_X86_KERNELS
// XCR0: which register states the OS saves/restores on context switches.
// Only call when CPUID.1:ECX.OSXSAVE (bit 27) is set, otherwise xgetbv faults.
#if defined(_MSC_VER)
std::uint64_t read_xcr0() { return _xgetbv(0); }
#else
__attribute__((target("xsave"))) std::uint64_t read_xcr0() { return _xgetbv(0); }
#endif

bool bit(std::uint32_t word, int index) { return (word >> index) & 1u; }

Isa detect() {
    const CpuidRegs leaf0 = cpuid(0);
    if (leaf0.eax < 7) return Isa::generic;
    const CpuidRegs leaf1 = cpuid(1);
    const CpuidRegs leaf7 = cpuid(7, 0);

    const bool osxsave = bit(leaf1.ecx, 27);
    if (!osxsave) return Isa::generic;
    const std::uint64_t xcr0 = read_xcr0();

    // AVX2 + FMA: CPU bits, and the OS saves XMM (bit 1) and YMM (bit 2) state.
    const bool cpu_avx2_fma = bit(leaf1.ecx, 28) /*AVX*/ && bit(leaf1.ecx, 12) /*FMA*/ &&
                              bit(leaf7.ebx, 5) /*AVX2*/;
    const bool os_ymm = (xcr0 & 0x6) == 0x6;
    if (!(cpu_avx2_fma && os_ymm)) return Isa::generic;

    // AVX-512 F/DQ/BW/VL, and the OS saves opmask (5), ZMM0-15 upper (6), ZMM16-31 (7).
    const bool cpu_avx512 = bit(leaf7.ebx, 16) /*F*/ && bit(leaf7.ebx, 17) /*DQ*/ &&
                            bit(leaf7.ebx, 30) /*BW*/ && bit(leaf7.ebx, 31) /*VL*/;
    const bool os_zmm = (xcr0 & 0xE6) == 0xE6;
    if (cpu_avx512 && os_zmm) return Isa::avx512;
    return Isa::avx2;
}
#else
Isa detect() { return Isa::generic; }   // no AVX kernels built: nothing else to choose
#endif  // FASTNN_X86_KERNELS
#else
Isa detect() { return Isa::generic; }
#endif

// Why an ISA above detected_isa() cannot be used: the CPU lacks it, or this build has no such kernels.
std::string why_unavailable() {
    if (!FASTNN_X86_KERNELS) return "is not built into this fastnn (FASTNN_X86_KERNELS=OFF)";
    return "is not supported by this CPU (" + cpu_model() + ")";
}

// The ISA switch: detection + FASTNN_ISA are evaluated once, on first use.
struct IsaState {
    Isa detected = Isa::generic;
    std::atomic<int> active{0};
    std::string warning;
};

IsaState& state() {
    static IsaState* s = [] {
        auto* st = new IsaState;  // never destroyed: usable during static destruction
        st->detected = detect();
        Isa chosen = st->detected;
        if (const char* env = std::getenv("FASTNN_ISA"); env != nullptr && *env != '\0') {
            std::string name(env);
            try {
                const Isa wanted = isa_from_name(name);
                if (static_cast<int>(wanted) <= static_cast<int>(st->detected)) {
                    chosen = wanted;
                } else {
                    st->warning = "FASTNN_ISA=" + name + " " + why_unavailable() + "; using " +
                                  isa_name(st->detected);
                }
            } catch (const std::invalid_argument&) {
                st->warning = "FASTNN_ISA=" + name +
                              " is not one of generic, avx2, avx512; using " +
                              isa_name(st->detected);
            }
        }
        st->active.store(static_cast<int>(chosen));
        return st;
    }();
    return *s;
}

}  // namespace

Isa detected_isa() { return state().detected; }

Isa active_isa() { return static_cast<Isa>(state().active.load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
    const int wanted = static_cast<int>(isa);
    if (wanted < 0 || wanted > 2)
        throw std::invalid_argument("set_isa: unknown ISA value " + std::to_string(wanted));
    if (wanted > static_cast<int>(detected_isa()))
        throw std::invalid_argument(std::string("set_isa: ") + isa_name(isa) + " " + why_unavailable() +
                                    " (best: " + isa_name(detected_isa()) + ")");
    state().active.store(wanted);
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::generic: return "generic";
        case Isa::avx2: return "avx2";
        case Isa::avx512: return "avx512";
    }
    return "unknown";
}

Isa isa_from_name(const std::string& name) {
    std::string lower;
    for (char ch : name) {
        if (ch == ' ' || ch == '\t' || ch == '\n') continue;
        lower += static_cast<char>((ch >= 'A' && ch <= 'Z') ? ch - 'A' + 'a' : ch);
    }
    if (lower == "generic") return Isa::generic;
    if (lower == "avx2") return Isa::avx2;
    if (lower == "avx512") return Isa::avx512;
    throw std::invalid_argument("unknown ISA name '" + name + "' (expected generic, avx2 or avx512)");
}

std::string isa_warning() { return state().warning; }

std::string cpu_model() {
#if defined(FASTNN_X86_64)
    if (cpuid(0x80000000u).eax < 0x80000004u) return "unknown x86-64 CPU";
    char brand[49];
    for (std::uint32_t i = 0; i < 3; ++i) {
        const CpuidRegs r = cpuid(0x80000002u + i);
        std::memcpy(brand + 16 * i + 0, &r.eax, 4);
        std::memcpy(brand + 16 * i + 4, &r.ebx, 4);
        std::memcpy(brand + 16 * i + 8, &r.ecx, 4);
        std::memcpy(brand + 16 * i + 12, &r.edx, 4);
    }
    brand[48] = '\0';
    std::string s(brand);
    const auto first = s.find_first_not_of(' ');
    const auto last = s.find_last_not_of(' ');
    return first == std::string::npos ? std::string("unknown x86-64 CPU") : s.substr(first, last - first + 1);
#else
    return "non-x86-64 CPU";
#endif
}

namespace {
// The sysconf queries of the per-core cache sizes, -1 where the C library has none.
#if defined(_SC_LEVEL1_DCACHE_SIZE)
constexpr int kL1dQuery = _SC_LEVEL1_DCACHE_SIZE;
#else
constexpr int kL1dQuery = -1;
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
constexpr int kL2Query = _SC_LEVEL2_CACHE_SIZE;
#else
constexpr int kL2Query = -1;
#endif

// A cache size as sysconf(query) reports it, clamped to [lo, hi]; `fallback` where it is not reported.
long long reported_cache_bytes(int query, long long fallback, long long lo, long long hi) {
    long long reported = 0;
#if defined(__unix__) || defined(__APPLE__)
    if (query >= 0) reported = sysconf(query);
#endif
    if (reported <= 0) return fallback;
    return std::min(std::max(reported, lo), hi);
}
}  // namespace

long long l1d_cache_bytes() {
    static const long long bytes = reported_cache_bytes(kL1dQuery, 32LL << 10, 16LL << 10, 256LL << 10);
    return bytes;
}

long long l2_cache_bytes() {
    static const long long bytes = reported_cache_bytes(kL2Query, 1LL << 20, 256LL << 10, 8LL << 20);
    return bytes;
}

}  // namespace fastnn
