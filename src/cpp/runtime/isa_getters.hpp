// The declarations of the getters that a concern's per-ISA files (kernels/{generic,avx2,avx512}.cpp)
// export, one per ISA and element type; the dispatch picks one with for_isa (cpu_features.hpp).
// Plain declarations and no includes: safe in files compiled with AVX-512 flags.
#pragma once

// FASTNN_ISA_GETTERS(Kernels, kernels) declares Kernels<float> generic_kernels_f32(),
// Kernels<double> generic_kernels_f64(), and the same for avx2_ and avx512_.
#define FASTNN_ISA_GETTERS(Set, name)                                                 \
    Set<float> generic_##name##_f32();                                                \
    Set<double> generic_##name##_f64();                                               \
    Set<float> avx2_##name##_f32();                                                   \
    Set<double> avx2_##name##_f64();                                                  \
    Set<float> avx512_##name##_f32();                                                 \
    Set<double> avx512_##name##_f64()
