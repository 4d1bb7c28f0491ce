// Software prefetches of whole ranges of memory that the compiler keeps.
//
// GCC treats __builtin_prefetch as free of side effects, so a loop of nothing but prefetches
// (over the lines of a row, say) can be deleted whole as dead code, and whether it is depends on
// what was inlined around it: sparse_rows.cpp's prefetch of a CSR row's indices and values (two
// such loops) was absent from the GCC 12 -O3 binary, and so was a row prefetch written the same
// way in the compaction, while the same loop in other functions was kept. An `asm volatile`
// statement is never deleted, so on x86-64 each line is prefetched by one; elsewhere
// __builtin_prefetch (the hint as its locality).
#pragma once

#include <cstdint>

namespace fastnn {

enum class PrefetchHint { l1, l2, l3 };   // prefetcht0, prefetcht1, prefetcht2

inline void prefetch_line(const void* p, PrefetchHint hint) {
#if defined(__x86_64__) || defined(__i386__)
    const char& line = *static_cast<const char*>(p);
    switch (hint) {
        case PrefetchHint::l1: asm volatile("prefetcht0 %0" : : "m"(line)); break;
        case PrefetchHint::l2: asm volatile("prefetcht1 %0" : : "m"(line)); break;
        case PrefetchHint::l3: asm volatile("prefetcht2 %0" : : "m"(line)); break;
    }
#else
    switch (hint) {
        case PrefetchHint::l1: __builtin_prefetch(p, 0, 3); break;
        case PrefetchHint::l2: __builtin_prefetch(p, 0, 2); break;
        case PrefetchHint::l3: __builtin_prefetch(p, 0, 1); break;
    }
#endif
}

// Every 64-byte line of [begin, begin + bytes).
inline void prefetch_lines(const void* begin, std::int64_t bytes, PrefetchHint hint) {
    if (bytes <= 0) return;
    const auto first = reinterpret_cast<std::uintptr_t>(begin) / 64 * 64;
    const auto last = reinterpret_cast<std::uintptr_t>(begin) + static_cast<std::uintptr_t>(bytes);
    for (std::uintptr_t a = first; a < last; a += 64) prefetch_line(reinterpret_cast<const void*>(a), hint);
}

}  // namespace fastnn
