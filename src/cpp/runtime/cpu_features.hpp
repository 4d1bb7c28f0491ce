// Run-time CPU feature detection and the instruction-set (ISA) switch of the GEMM engine.
//
// The core is compiled for baseline x86-64; the AVX2 and AVX-512 kernels live in
// separately compiled files and may only be *called* after detected_isa() says the CPU
// and the operating system support them (cpuid feature bits + XCR0 register state).
//
// FASTNN_ISA=generic|avx2|avx512 (read once, at first use) forces a lower ISA, e.g. to
// test or benchmark the fallbacks.  Asking for an ISA the CPU lacks, or an unknown
// name, selects the best available one and records a message in isa_warning().
#pragma once

#include <string>

// 1 when the AVX2/AVX-512 kernels and their cpuid detection are built (CMake option
// FASTNN_X86_KERNELS, which defines it; default: on x86-64 only). At 0 no file gets SIMD flags,
// the GEMM's per-ISA files compile to empty getters and detected_isa() is always generic, so
// only the generic kernels ever run.
#ifndef FASTNN_X86_KERNELS
#if defined(__x86_64__) || defined(_M_X64)
#define FASTNN_X86_KERNELS 1
#else
#define FASTNN_X86_KERNELS 0
#endif
#endif

namespace fastnn {

enum class Isa { generic = 0, avx2 = 1, avx512 = 2 };

Isa detected_isa();           // the best ISA this CPU + OS supports
Isa active_isa();             // the ISA the GEMM engine uses now (<= detected_isa())
void set_isa(Isa isa);        // throws std::invalid_argument if isa > detected_isa()
const char* isa_name(Isa isa);  // "generic", "avx2", "avx512"
Isa isa_from_name(const std::string& name);  // inverse of isa_name; throws std::invalid_argument
std::string isa_warning();    // "" unless FASTNN_ISA could not be honoured
std::string cpu_model();      // cpuid brand string, e.g. "Intel(R) Xeon(R) Processor"
// Per-core L2 cache size in bytes, as the C library reports it (sysconf), clamped to
// [256 KiB, 8 MiB]; 1 MiB where it is not reported.  Used to size the GEMM's blocks.
long long l2_cache_bytes();
// Per-core L1 data cache size in bytes, as the C library reports it (sysconf), clamped to
// [16 KiB, 256 KiB]; 32 KiB where it is not reported. Used to choose the softmax forward's
// register blocks (softmax_epoch.hpp).
long long l1d_cache_bytes();

// The kernels of `isa`, from the getters that the per-ISA files export (only the chosen one is
// called): for_isa(active_isa(), generic_kernels, avx2_kernels, avx512_kernels).
template <typename Getter>
auto for_isa(Isa isa, Getter generic, Getter avx2, Getter avx512) {
    switch (isa) {
        case Isa::avx512: return avx512();
        case Isa::avx2: return avx2();
        default: return generic();
    }
}

}  // namespace fastnn
