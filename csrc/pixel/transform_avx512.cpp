// AVX-512 row kernels of the CPU transform (compiled with -mavx512f -mavx512bw -mavx512vl
// -mavx512vnni; chosen at run time, see simd_dispatch.hpp). Raw pointers only: nothing here
// may be shared with other code. vpdpwssd (VNNI) fuses each pmaddwd with its accumulation
// (no saturation: the same int32 sum).
#include "pixel/simd_dispatch.hpp"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#include <immintrin.h>

namespace msce {
namespace {

using V = __m512i;
constexpr int kLanes16 = 32;  // int16 lanes = pixels per yuv step
constexpr int kLanes32 = 16;
constexpr int kBlocks = 4;    // 4-output blocks per horizontal step
constexpr int kLanesF = 16;
constexpr int kMinRun = 1;  // normalize_block_f32: masked tails serve runs of any length

inline V set1_16(int32_t v) { return _mm512_set1_epi16(static_cast<int16_t>(v)); }
inline V set1_32(int32_t v) { return _mm512_set1_epi32(v); }
inline V add16(V a, V b) { return _mm512_add_epi16(a, b); }
inline V sub16(V a, V b) { return _mm512_sub_epi16(a, b); }
inline V slli3(V a) { return _mm512_slli_epi16(a, 3); }
inline V mulhi16(V a, V b) { return _mm512_mulhi_epi16(a, b); }
inline V madd_acc(V acc, V a, V b) { return _mm512_dpwssd_epi32(acc, a, b); }
inline V shuffle8(V a, V m) { return _mm512_shuffle_epi8(a, m); }
inline V sra32(V a, int s) { return _mm512_sra_epi32(a, _mm_cvtsi32_si128(s)); }
inline V load_u8_i16(const uint8_t* p) {
  return _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline V load_i16(const int16_t* p) { return _mm512_loadu_si512(p); }

// Shuffle masks / weights of tap pair k for blocks b..b+3: the entry of block pair (b, b+1)
// and, P entries further, that of (b+2, b+3).
inline V load_masks(const uint8_t* p, int pairs) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 32 * pairs));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}
inline V load_weights(const int16_t* p, int pairs) {
  const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16 * pairs));
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// 32 luma pixels from luma column x = 2j: chroma samples j..j+15, each duplicated.
inline void load_chroma_dup(const uint8_t* up, const uint8_t* vp, int cstep, int j, V* u, V* v) {
  __m256i uu, vv;
  if (cstep == 2) {  // NV12: one 32-byte load of 16 (u, v) pairs
    const __m256i uv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(up + 2 * j));
    uu = _mm256_shuffle_epi8(uv, _mm256_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14, 0, 0, 2, 2, 4,
                                                  4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14));
    vv = _mm256_shuffle_epi8(uv, _mm256_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15, 1, 1, 3, 3, 5,
                                                  5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15));
  } else {
    const __m128i u8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(up + j));
    const __m128i v8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(vp + j));
    uu = _mm256_set_m128i(_mm_unpackhi_epi8(u8, u8), _mm_unpacklo_epi8(u8, u8));
    vv = _mm256_set_m128i(_mm_unpackhi_epi8(v8, v8), _mm_unpacklo_epi8(v8, v8));
  }
  *u = _mm512_cvtepu8_epi16(uu);
  *v = _mm512_cvtepu8_epi16(vv);
}

// 32 int16 lanes -> 32 bytes clamped to 0..255, in order.
inline void store_u8_sat(uint8_t* p, V a) {
  const __m256i b = _mm512_cvtusepi16_epi8(_mm512_max_epi16(a, _mm512_setzero_si512()));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), b);
}

inline void store_u8_sat2(uint8_t* p, V a, V b) {
  store_u8_sat(p, a);
  store_u8_sat(p + kLanes16, b);
}

// Lane l holds the 16 bytes at p + off[l].
inline V load_windows(const uint8_t* p, const int* off) {
  const __m256i lo = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[0]))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[1])), 1);
  const __m256i hi = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[2]))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[3])), 1);
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

// Row 0 and row 1 results of 16 outputs (int32, 4 per 128-bit lane) -> 16 (row 0, row 1)
// int16 pairs clamped to 0..255, in output order; only the first nb blocks of 4 outputs.
inline void store_pair_blocks(int16_t* dst, V r0, V r1, int nb) {
  const V p = _mm512_min_epu16(_mm512_packus_epi32(r0, r1), _mm512_set1_epi16(255));  // per lane: r0 0-3, r1 0-3
  const V m = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
  const V q = _mm512_shuffle_epi8(p, m);
  if (nb == 4) {
    _mm512_storeu_si512(dst, q);
  } else {
    _mm512_mask_storeu_epi64(dst, static_cast<__mmask8>((1u << (2 * nb)) - 1), q);
  }
}

// Four vectors of 16 int32 columns (0-15, 16-31, 32-47, 48-63) -> 64 bytes, saturated.
inline void store_cols_u8(uint8_t* dst, V a0, V a1, V a2, V a3) {
  // lane l of the packed bytes holds columns 4l.., 16 + 4l.., 32 + 4l.., 48 + 4l.. (4 each)
  const V b = _mm512_packus_epi16(_mm512_packs_epi32(a0, a1), _mm512_packs_epi32(a2, a3));
  const V idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_si512(dst, _mm512_permutexvar_epi32(idx, b));
}

// (v - mean) / sd of 16 values: the division, or its checked fused form (NormParams).
inline __m512 norm16(__m512i v, NormParams p) {
  const __m512 d = _mm512_sub_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(p.mean));
  if (p.recip == 0.f) return _mm512_div_ps(d, _mm512_set1_ps(p.sd));
  const __m512 r = _mm512_set1_ps(p.recip);
  const __m512 q = _mm512_mul_ps(d, r);
  return _mm512_fmadd_ps(_mm512_fnmadd_ps(q, _mm512_set1_ps(p.sd), d), r, q);
}

inline void store_norm(float* out, const uint8_t* s, NormParams p) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
  _mm512_storeu_ps(out, norm16(v, p));
}

// Values [i, n) of a run (fewer than 16): masked load and store.
inline void store_norm_tail(float* out, const uint8_t* s, int i, int n, NormParams p) {
  const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
  const __m512i v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, s + i));
  _mm512_mask_storeu_ps(out + i, k, norm16(v, p));
}

// 16 normalized values -> their bfloat16 bits (see bf16_bits in simd_kernels.inl); lanes under k.
inline void store_bf16_masked(uint16_t* out, __mmask16 k, __m512 f) {
  const __m512i x = _mm512_castps_si512(f);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
  const __m512i b = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(x, _mm512_set1_epi32(0x7fff)), lsb), 16);
  _mm512_mask_cvtepi32_storeu_epi16(out, k, b);
}

inline void store_norm_bf16(uint16_t* out, const uint8_t* s, NormParams p) {
  const __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
  store_bf16_masked(out, 0xFFFF, norm16(v, p));
}

inline void store_norm_bf16_tail(uint16_t* out, const uint8_t* s, int i, int n, NormParams p) {
  const __mmask16 k = static_cast<__mmask16>((1u << (n - i)) - 1);
  const __m512i v = _mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(k, s + i));
  store_bf16_masked(out + i, k, norm16(v, p));
}

// Strong downscales (no shuffle tables): the AVX2 per-output kernel (every CPU with this
// path has AVX2), else the scalar loop.
int horizontal2_fallback(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]) {
  const RowKernels* avx2 = avx2_row_kernels();
  return avx2 ? avx2->horizontal2(t, src, col0, dst) : 0;
}

#define MSCE_ROW_KERNELS_OF_THIS_ISA avx512_row_kernels
#include "pixel/simd_kernels.inl"  // closes the anonymous namespace
}  // namespace msce

#else  // compiler without the flags: the dispatcher skips this level
const msce::RowKernels* msce::avx512_row_kernels() { return nullptr; }
#endif
