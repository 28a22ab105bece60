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
constexpr int kBlocks = 1;
constexpr int kLanesF = 4;

inline V set1_16(int32_t v) { return _mm_set1_epi16(static_cast<int16_t>(v)); }
inline V set1_32(int32_t v) { return _mm_set1_epi32(v); }
inline V add16(V a, V b) { return _mm_add_epi16(a, b); }
inline V sub16(V a, V b) { return _mm_sub_epi16(a, b); }
inline V slli3(V a) { return _mm_slli_epi16(a, 3); }
inline V mulhi16(V a, V b) { return _mm_mulhi_epi16(a, b); }
inline V add32(V a, V b) { return _mm_add_epi32(a, b); }
inline V madd(V a, V b) { return _mm_madd_epi16(a, b); }
inline V shuffle8(V a, V m) { return _mm_shuffle_epi8(a, m); }
inline V sra32(V a, int s) { return _mm_sra_epi32(a, _mm_cvtsi32_si128(s)); }
inline V load_u8_i16(const uint8_t* p) { return _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))); }
inline V load_pair_table(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

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

inline V load_windows(const uint8_t* p, const int* off) {
  return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[0]));
}

inline void store_blocks_u8(uint8_t* dst, V acc) {
  const int32_t four = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(acc, acc), acc));
  std::memcpy(dst, &four, 4);
}

inline void store_norm(float* out, const uint8_t* s, float mean, float sd) {
  int32_t four;
  std::memcpy(&four, s, 4);
  const __m128 v = _mm_cvtepi32_ps(_mm_cvtepu8_epi32(_mm_cvtsi32_si128(four)));
  _mm_storeu_ps(out, _mm_div_ps(_mm_sub_ps(v, _mm_set1_ps(mean)), _mm_set1_ps(sd)));
}

// Strong downscales (no shuffle tables) go to the scalar loop.
int horizontal3_fallback(const HPassTables&, const uint8_t* const[3], int, uint8_t* const[3]) { return 0; }

#include "pixel/simd_kernels.inl"

// 8 columns per step; taps in pairs so one pmaddwd applies two rows' weights.
int vertical_kernel(const int16_t* wk, int n, int precision, const uint8_t* base, int64_t row_stride, int width,
                    uint8_t* dst) {
  const __m128i shift = _mm_cvtsi32_si128(precision);
  const V init = _mm_set1_epi32(1 << (precision - 1));
  const V zero = _mm_setzero_si128();
  int x = 0;
  for (; x + 8 <= width; x += 8) {
    V lo = init, hi = init;
    int k = 0;
    for (; k + 2 <= n; k += 2) {
      const V r0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(base + k * row_stride + x));
      const V r1 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(base + (k + 1) * row_stride + x));
      const V w = _mm_set1_epi32(static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(wk[k + 1])) << 16) |
                                                      static_cast<uint16_t>(wk[k])));
      const V p = _mm_unpacklo_epi8(r0, r1);  // r0[x], r1[x], r0[x+1], ...
      lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi8(p, zero), w));
      hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi8(p, zero), w));
    }
    if (k < n) {
      const V r0 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(base + k * row_stride + x));
      const V w = _mm_set1_epi32(static_cast<uint16_t>(wk[k]));
      const V p = _mm_unpacklo_epi8(r0, zero);  // r0[x], 0, r0[x+1], 0, ...
      lo = _mm_add_epi32(lo, _mm_madd_epi16(_mm_unpacklo_epi8(p, zero), w));
      hi = _mm_add_epi32(hi, _mm_madd_epi16(_mm_unpackhi_epi8(p, zero), w));
    }
    const V w16 = _mm_packs_epi32(_mm_sra_epi32(lo, shift), _mm_sra_epi32(hi, shift));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(dst + x), _mm_packus_epi16(w16, w16));
  }
  return x;
}

const RowKernels kKernels = {yuv_row_kernel, horizontal3_kernel, vertical_kernel, normalize_f32_kernel};

}  // namespace

const RowKernels* sse41_row_kernels() { return &kKernels; }

}  // namespace msce

#else

namespace msce {
const RowKernels* sse41_row_kernels() { return nullptr; }
}  // namespace msce

#endif
