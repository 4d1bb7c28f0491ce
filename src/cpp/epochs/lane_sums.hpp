// Sums of the lanes of vectors (the horizontal sums that end a dot product whose vectors ran
// along the features), for the per-ISA kernel files: as vector_lanes.hpp, everything is in an
// anonymous namespace and FASTNN_VECTOR_BYTES is set by the including file.
//
// One vector, sum_lanes(v): add the two halves, then the halves of that, until one lane is left:
//   level L (L = W, W/2, …, 2):  v'[i] = v[i] + v[i + L/2]   for i < L/2.
// N vectors at once, lane_sums(v, out): the same additions of the same lanes, level by level, so
// out[a] == sum_lanes(v[a]) bit for bit — but two vectors share every shuffle and add:
//   out of x and y, whose L-lane segments each hold one vector's partial sums, one vector whose
//   L/2-lane segments hold the halved sums of x's segments and of y's:
//     lo = x's and y's segment halves [0, L/2),  hi = their halves [L/2, L),  x'y' = lo + hi.
// Segments are laid out so that each shuffle is one instruction: while a segment spans more than
// 128 bits, a whole vector is [x's halves, y's halves] (vshuff32x4 on AVX-512, vperm2f128 on
// AVX2); below that, each 128-bit block is [x's halves in it, y's halves in it] (vshufps).
// Where the sums land follows from that layout, at compile time (final_lanes). For N vectors:
// about 3·N/2 + 3·N/4 + … shuffles and adds, against 2·log2(W) per vector one at a time (on a
// Zen 4 the 25 sums of the softmax forward's 5 × 5 register block took 10% of the kernel).
#pragma once

#include <array>
#include <cstddef>
#include <utility>

#include "runtime/vector_lanes.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace fastnn::vector_lanes {
namespace {

// Σ of one vector's lanes, as a tree in registers: add the vector's two halves until two are left.
template <typename V, std::size_t... I>
inline auto low_half(const V& v, std::index_sequence<I...>) { return __builtin_shufflevector(v, v, I...); }
template <typename V, std::size_t... I>
inline auto high_half(const V& v, std::index_sequence<I...>) {
    return __builtin_shufflevector(v, v, (I + sizeof...(I))...);
}
template <int Lanes>
struct LaneSum {
    template <typename V>
    static auto of(const V& v) {
        constexpr auto half = std::make_index_sequence<Lanes / 2>{};
        return LaneSum<Lanes / 2>::of(low_half(v, half) + high_half(v, half));
    }
};
template <>
struct LaneSum<2> {
    template <typename V>
    static auto of(const V& v) { return v[0] + v[1]; }
};
template <typename T> inline T sum_lanes(const Vec<T>& v) { return LaneSum<kLanes<T>>::of(v); }

namespace lane_sums_detail {

// The lanes of a 128-bit block (of the whole vector, where that is narrower): Q below.
template <typename T>
constexpr int block_lanes_of() { return kLanes<T> < 16 / static_cast<int>(sizeof(T)) ? kLanes<T> : 16 / static_cast<int>(sizeof(T)); }

// W lanes per vector, Q per 128-bit block. The block within which a level of L-lane segments
// gathers x's halves and y's: the whole vector while a segment is wider than 128 bits.
template <int W, int Q>
constexpr int block_lanes(int L) { return L <= Q ? Q : W; }

// Which lane of (x, y) -- y's lanes numbered W … 2W−1 -- lane i of lo (Upper = false) or of hi
// (Upper = true) takes, at the level of L-lane segments.
template <int W, int Q, int L, bool Upper>
constexpr int source_lane(int i) {
    const int G = block_lanes<W, Q>(L), half = L / 2, block = i / G;
    int pos = i % G;
    const bool from_y = pos >= G / 2;
    if (from_y) pos -= G / 2;
    return block * G + (pos / half) * L + (Upper ? half : 0) + pos % half + (from_y ? W : 0);
}

template <typename V, int W, int Q, int L, bool Upper, std::size_t... I>
inline V halves(const V& x, const V& y, std::index_sequence<I...>) {
    return __builtin_shufflevector(x, y, source_lane<W, Q, L, Upper>(I)...);
}

// Pairs 2o and 2o+1 of the first n vectors into v[o] (a last unpaired vector with itself).
template <typename V, int W, int Q, int L, int N>
inline void level(V* v) {
    constexpr auto lanes = std::make_index_sequence<W>{};
    for (int o = 0; o < (N + 1) / 2; ++o) {
        const V x = v[2 * o], y = 2 * o + 1 < N ? v[2 * o + 1] : v[2 * o];
        v[o] = halves<V, W, Q, L, false>(x, y, lanes) + halves<V, W, Q, L, true>(x, y, lanes);
    }
}
template <typename V, int W, int Q, int L, int N>
inline void levels(V* v) {
    if constexpr (L > 1) {
        level<V, W, Q, L, N>(v);
        levels<V, W, Q, L / 2, (N + 1) / 2>(v);
    }
}
template <int W, int N>
constexpr int vectors_left() {
    int n = N;
    for (int L = W; L > 1; L /= 2) n = (n + 1) / 2;
    return n;
}

// Where vector a's sum ends: lane final_lanes()[a] of the remaining vectors laid end to end.
template <int W, int Q, int N>
constexpr std::array<int, N> final_lanes() {
    // owner[v][s]: the vector whose partial sums segment s of vector v holds
    std::array<std::array<int, 64>, N> owner{}, next{};
    for (int a = 0; a < N; ++a) owner[a][0] = a;
    int n = N;
    for (int L = W; L > 1; L /= 2) {
        const int half = L / 2, G = block_lanes<W, Q>(L);
        for (int o = 0; o < (n + 1) / 2; ++o) {
            const int x = 2 * o, y = 2 * o + 1 < n ? 2 * o + 1 : 2 * o;
            for (int i = 0; i < W; i += half) {   // each segment of the result
                int pos = i % G;
                const bool from_y = pos >= G / 2;
                if (from_y) pos -= G / 2;
                const int source_segment = ((i / G) * G + (pos / half) * L) / L;
                next[o][i / half] = from_y ? owner[y][source_segment] : owner[x][source_segment];
            }
        }
        owner = next;
        n = (n + 1) / 2;
    }
    std::array<int, N> lane{};
    for (int v = n - 1; v >= 0; --v)   // (a vector paired with itself shows twice: either will do)
        for (int i = W - 1; i >= 0; --i) lane[owner[v][i]] = v * W + i;
    return lane;
}

}  // namespace lane_sums_detail

// out[a] = sum_lanes(v[a]) for a < N, bit for bit; v is scratch.
template <typename T, int N>
inline void lane_sums(Vec<T> (&v)[N], T* out) {
    using namespace lane_sums_detail;
    constexpr int W = kLanes<T>, Q = block_lanes_of<T>();
    static_assert(W <= 64, "at most 64 lanes");
    levels<Vec<T>, W, Q, W, N>(v);
    constexpr int left = vectors_left<W, N>();
    T lanes[left * W];
    for (int i = 0; i < left; ++i) store(lanes + i * W, v[i]);
    constexpr std::array<int, N> where = final_lanes<W, Q, N>();
    for (int a = 0; a < N; ++a) out[a] = lanes[where[a]];
}

// Where lane_sums_to_rows applies: the levels leave at most two vectors and a row's C sums fit
// one vector (32- and 64-byte vectors).
template <typename T, int N, int C>
constexpr bool kSumsByPermute = FASTNN_VECTOR_BYTES >= 32 && lane_sums_detail::vectors_left<kLanes<T>, N>() <= 2 &&
                                C <= kLanes<T>;

namespace lane_sums_detail {

// Lanes where[Base + i] (i < C; lane 0's sum again past C) of a and b laid end to end, in lanes 0 … W−1.
template <int W, int Q, int N, int Base, int C, typename V, std::size_t... I>
inline V gather_lanes(const V& a, const V& b, std::index_sequence<I...>) {
    return __builtin_shufflevector(a, b, final_lanes<W, Q, N>()[Base + (static_cast<int>(I) < C ? static_cast<int>(I) : 0)]...);
}

// The first C lanes of v into z[0 … C−1], nothing past them written: one masked store with
// AVX-512; else 16-byte stores while whole ones fit, then lane by lane.
template <int C, typename T, typename V>
inline void store_first_lanes(T* z, const V& v) {
#if defined(__AVX512F__)
    if constexpr (sizeof(V) == 64) {
        if constexpr (sizeof(T) == 4) {
            __m512 s;
            std::memcpy(&s, &v, sizeof s);
            _mm512_mask_storeu_ps(z, static_cast<__mmask16>((1u << C) - 1), s);
        } else {
            __m512d s;
            std::memcpy(&s, &v, sizeof s);
            _mm512_mask_storeu_pd(z, static_cast<__mmask8>((1u << C) - 1), s);
        }
        return;
    }
#endif
    constexpr int per16 = 16 / static_cast<int>(sizeof(T));
    T lanes[sizeof(V) / sizeof(T)];
    std::memcpy(lanes, &v, sizeof v);   // (folded into the stores and extracts below)
    int c = 0;
    for (; c + per16 <= C; c += per16) std::memcpy(z + c, lanes + c, 16);
    for (; c < C; ++c) z[c] = lanes[c];
}

// Row `Row`'s C sums into z[Row·ldz …].
template <typename T, int W, int Q, int N, int C, int Row>
inline void store_row(const Vec<T>& a, const Vec<T>& b, T* z, std::ptrdiff_t ldz) {
    store_first_lanes<C>(z + Row * ldz, gather_lanes<W, Q, N, Row * C, C>(a, b, std::make_index_sequence<W>{}));
}
template <typename T, int W, int Q, int N, int C, std::size_t... Row>
inline void store_rows(const Vec<T>& a, const Vec<T>& b, T* z, std::ptrdiff_t ldz, std::index_sequence<Row...>) {
    (store_row<T, W, Q, N, C, static_cast<int>(Row)>(a, b, z, ldz), ...);
}

}  // namespace lane_sums_detail

// z[r·ldz + c] = sum_lanes(v[r·C + c]) for R rows of C sums each, bit for bit as lane_sums, where
// kSumsByPermute (the caller checks; elsewhere lane_sums and a copy); v is scratch. Each row's C
// sums are permuted out of the vectors the levels leave into one vector's first lanes and stored
// from there (AVX-512: R permutes and R masked stores), not taken through the stack as lane_sums
// does -- two vector stores, then R·C scalar loads (each waiting on a store it only partly
// overlaps) and R·C stores. On an AMD EPYC Zen 4, the softmax forward's 5 × 5 blocks with their
// operands in cache: 84% -> 91% of the FMA peak with AVX-512, 77% -> 80% with AVX2's 2 × 5 (the
// softmax epoch, 1 thread, MNIST: new/old 0.96 and 0.98).
template <typename T, int R, int C>
inline void lane_sums_to_rows(Vec<T> (&v)[R * C], T* z, std::ptrdiff_t ldz) {
    using namespace lane_sums_detail;
    constexpr int N = R * C, W = kLanes<T>, Q = block_lanes_of<T>();
    static_assert(kSumsByPermute<T, N, C>, "at most two vectors left, a row's sums in one vector");
    levels<Vec<T>, W, Q, W, N>(v);
    const Vec<T> a = v[0], b = vectors_left<W, N>() > 1 ? v[1] : v[0];
    store_rows<T, W, Q, N, C>(a, b, z, ldz, std::make_index_sequence<R>{});
}

}  // namespace
}  // namespace fastnn::vector_lanes
