// SSE4.1 row kernels of the CPU transform (compiled with -msse4.1; chosen at run time, see
// simd_dispatch.hpp). Raw pointers only: nothing here may be shared with other code.
#include "pixel/simd_dispatch.hpp"

#if defined(__SSE4_1__)
#include <smmintrin.h>

#include <cstring>

namespace msce {
namespace {

using V = __m128i;
constexpr int kLanes16 = 8;
constexpr int kLanes32 = 4;
constexpr int kBlocks = 1;
constexpr int kLanesF = 4;
constexpr int kMinRun = kLanesF;  // normalize_block_f32: tails overlap the previous vector

inline V set1_16(int32_t v) { return _mm_set1_epi16(static_cast<int16_t>(v)); }
inline V set1_32(int32_t v) { return _mm_set1_epi32(v); }
inline V add16(V a, V b) { return _mm_add_epi16(a, b); }
inline V sub16(V a, V b) { return _mm_sub_epi16(a, b); }
inline V slli3(V a) { return _mm_slli_epi16(a, 3); }
inline V mulhi16(V a, V b) { return _mm_mulhi_epi16(a, b); }
inline V add32(V a, V b) { return _mm_add_epi32(a, b); }
inline V madd(V a, V b) { return _mm_madd_epi16(a, b); }
inline V madd_acc(V acc, V a, V b) { return add32(acc, madd(a, b)); }
inline V shuffle8(V a, V m) { return _mm_shuffle_epi8(a, m); }
inline V sra32(V a, int s) { return _mm_sra_epi32(a, _mm_cvtsi32_si128(s)); }
inline V load_u8_i16(const uint8_t* p) { return _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline V load_pair_table(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }
// Shuffle masks / weights of tap pair k for the block(s) of one step (see simd_kernels.inl).
inline V load_masks(const uint8_t* p, int) { return load_pair_table(p); }
inline V load_weights(const int16_t* p, int) { return load_pair_table(p); }
inline V load_i16(const int16_t* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)); }

// 8 luma pixels from luma column x = 2j: chroma samples j..j+3, each duplicated.
inline void load_chroma_dup(const uint8_t* up, const uint8_t* vp, int cstep, int j, V* u, V* v) {
  __m128i uu, vv;
  if (cstep == 2) {  // NV12: 4 (u, v) pairs
    const __m128i uv = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(up + 2 * j));
    uu = _mm_shuffle_epi8(uv, _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, -1, -1, -1, -1, -1, -1, -1, -1));
    vv = _mm_shuffle_epi8(uv, _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, -1, -1, -1, -1, -1, -1, -1, -1));
  } else {
    int32_t u4, v4;
    std::memcpy(&u4, up + j, 4);
    std::memcpy(&v4, vp + j, 4);
    const __m128i u8 = _mm_cvtsi32_si128(u4), v8 = _mm_cvtsi32_si128(v4);
    uu = _mm_unpacklo_epi8(u8, u8);
    vv = _mm_unpacklo_epi8(v8, v8);
  }
  *u = _mm_cvtepu8_epi16(uu);
  *v = _mm_cvtepu8_epi16(vv);
}

inline void store_u8_sat(uint8_t* p, V a) { _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(a, a)); }

// 2 x 8 int16 lanes -> 16 bytes (saturating, in order).
inline void store_u8_sat2(uint8_t* p, V a, V b) { _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_packus_epi16(a, b)); }

inline V load_windows(const uint8_t* p, const int* off) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[0]));
}

// Row 0 and row 1 results of 4 outputs (int32) -> 4 (row 0, row 1) int16 pairs clamped to 0..255.
inline void store_pair_blocks(int16_t* dst, V r0, V r1, int) {
  const V p = _mm_min_epu16(_mm_packus_epi32(r0, r1), _mm_set1_epi16(255));  // r0 0-3, r1 0-3
  const V q = _mm_shuffle_epi8(p, _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), q);
}

// Four vectors of 4 int32 columns -> 16 bytes, saturated.
inline void store_cols_u8(uint8_t* dst, V a0, V a1, V a2, V a3) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_packus_epi16(_mm_packs_epi32(a0, a1), _mm_packs_epi32(a2, a3)));
}

inline void store_norm(float* out, const uint8_t* s, NormParams p) {
  int32_t four;
  std::memcpy(&four, s, 4);
  const __m128 v = _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)));
  _mm_storeu_ps(out, _mm_div_ps(_mm_sub_ps(v, _mm_set1_ps(p.mean)), _mm_set1_ps(p.sd)));  // no FMA: divide
}

// Values [i, n) of a run of n >= kLanesF: the run's last kLanesF values (same results where
// they overlap the previous vector).
inline void store_norm_tail(float* out, const uint8_t* s, int, int n, NormParams p) {
  store_norm(out + n - kLanesF, s + n - kLanesF, p);
}

// Four normalized values -> their bfloat16 bits (see bf16_bits in simd_kernels.inl).
inline void store_norm_bf16(uint16_t* out, const uint8_t* s, NormParams p) {
  int32_t four;
  std::memcpy(&four, s, 4);
  const __m128 v = _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)));
  const __m128i x = _mm_castps_si128(_mm_div_ps(_mm_sub_ps(v, _mm_set1_ps(p.mean)), _mm_set1_ps(p.sd)));
  const __m128i lsb = _mm_and_si128(_mm_srli_epi32(x, 16), _mm_set1_epi32(1));
  const __m128i b = _mm_srli_epi32(_mm_add_epi32(_mm_add_epi32(x, _mm_set1_epi32(0x7fff)), lsb), 16);
  _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi32(b, b));
}

inline void store_norm_bf16_tail(uint16_t* out, const uint8_t* s, int, int n, NormParams p) {
  store_norm_bf16(out + n - kLanesF, s + n - kLanesF, p);
}

// Strong downscales (no shuffle tables) go to the scalar loop.
int horizontal2_fallback(const HPassTables&, const uint8_t* const[6], int, int16_t* const[3]) { return 0; }

#define MSCE_ROW_KERNELS_OF_THIS_ISA sse41_row_kernels
#include "pixel/simd_kernels.inl"  // closes the anonymous namespace
}  // namespace msce

#else  // compiler without the flags: the dispatcher skips this level
const msce::RowKernels* msce::sse41_row_kernels() { return nullptr; }
#endif
