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
    constexpr int W = kLanes<T>, Q = W < 16 / static_cast<int>(sizeof(T)) ? W : 16 / static_cast<int>(sizeof(T));
    static_assert(W <= 64, "at most 64 lanes");
    levels<Vec<T>, W, Q, W, N>(v);
    constexpr int left = vectors_left<W, N>();
    T lanes[left * W];
    for (int i = 0; i < left; ++i) store(lanes + i * W, v[i]);
    constexpr std::array<int, N> where = final_lanes<W, Q, N>();
    for (int a = 0; a < N; ++a) out[a] = lanes[where[a]];
}

}  // namespace
}  // namespace fastnn::vector_lanes
