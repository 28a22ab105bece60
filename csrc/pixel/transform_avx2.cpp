// AVX2 row kernels of the CPU transform (compiled with -mavx2; chosen at run time, see
// simd_dispatch.hpp). Raw pointers only: nothing here may be shared with other code.
#include "pixel/simd_dispatch.hpp"

#if defined(__AVX2__)
#include <immintrin.h>

#include <cstring>

namespace msce {
namespace {

using V = __m256i;
constexpr int kLanes16 = 16;  // int16 lanes = pixels per yuv step
constexpr int kLanes32 = 8;
constexpr int kBlocks = 2;    // 4-output blocks per horizontal step
constexpr int kLanesF = 8;
constexpr int kMinRun = kLanesF;  // normalize_block_f32: tails overlap the previous vector

inline V set1_16(int32_t v) { return _mm256_set1_epi16(static_cast<int16_t>(v)); }
inline V set1_32(int32_t v) { return _mm256_set1_epi32(v); }
inline V add16(V a, V b) { return _mm256_add_epi16(a, b); }
inline V sub16(V a, V b) { return _mm256_sub_epi16(a, b); }
inline V slli3(V a) { return _mm256_slli_epi16(a, 3); }
inline V mulhi16(V a, V b) { return _mm256_mulhi_epi16(a, b); }
inline V add32(V a, V b) { return _mm256_add_epi32(a, b); }
inline V madd(V a, V b) { return _mm256_madd_epi16(a, b); }
inline V madd_acc(V acc, V a, V b) { return add32(acc, madd(a, b)); }
inline V shuffle8(V a, V m) { return _mm256_shuffle_epi8(a, m); }
inline V sra32(V a, int s) { return _mm256_sra_epi32(a, _mm_cvtsi32_si128(s)); }
inline V load_u8_i16(const uint8_t* p) { return _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline V load_pair_table(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
// Shuffle masks / weights of tap pair k for the block(s) of one step (see simd_kernels.inl).
inline V load_masks(const uint8_t* p, int) { return load_pair_table(p); }
inline V load_weights(const int16_t* p, int) { return load_pair_table(p); }
inline V load_i16(const int16_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// 16 luma pixels from luma column x = 2j: chroma samples j..j+7, each duplicated.
inline void load_chroma_dup(const uint8_t* up, const uint8_t* vp, int cstep, int j, V* u, V* v) {
  __m128i uu, vv;
  if (cstep == 2) {  // NV12: one 16-byte load of 8 (u, v) pairs
    const __m128i uv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(up + 2 * j));
    uu = _mm_shuffle_epi8(uv, _mm_setr_epi8(0, 0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14));
    vv = _mm_shuffle_epi8(uv, _mm_setr_epi8(1, 1, 3, 3, 5, 5, 7, 7, 9, 9, 11, 11, 13, 13, 15, 15));
  } else {
    const __m128i u8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(up + j));
    const __m128i v8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(vp + j));
    uu = _mm_unpacklo_epi8(u8, u8);
    vv = _mm_unpacklo_epi8(v8, v8);
  }
  *u = _mm256_cvtepu8_epi16(uu);
  *v = _mm256_cvtepu8_epi16(vv);
}

// 16 int16 lanes -> 16 bytes (saturating, in order).
inline void store_u8_sat(uint8_t* p, V a) {
  const V b = _mm256_permute4x64_epi64(_mm256_packus_epi16(a, a), 0xD8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_castsi256_si128(b));
}

// 2 x 16 int16 lanes -> 32 bytes (saturating, in order).
inline void store_u8_sat2(uint8_t* p, V a, V b) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm256_permute4x64_epi64(_mm256_packus_epi16(a, b), 0xD8));
}

// Lane l holds the 16 bytes at p + off[l].
inline V load_windows(const uint8_t* p, const int* off) {
  return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[0]))),
                                 _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + off[1])), 1);
}

// Row 0 and row 1 results of 8 outputs (int32, 4 per 128-bit lane) -> 8 (row 0, row 1)
// int16 pairs clamped to 0..255, in output order; only the first block (4 outputs) if nb == 1.
inline void store_pair_blocks(int16_t* dst, V r0, V r1, int nb) {
  const V p = _mm256_min_epu16(_mm256_packus_epi32(r0, r1), _mm256_set1_epi16(255));  // r0 0-3, r1 0-3 | 4-7
  const V m = _mm256_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0, 1, 8, 9, 2, 3, 10, 11, 4, 5,
                               12, 13, 6, 7, 14, 15);
  const V q = _mm256_shuffle_epi8(p, m);
  if (nb == 2) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), q);
  } else {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(q));
  }
}

// Four vectors of 8 int32 columns (0-7, 8-15, 16-23, 24-31) -> 32 bytes, saturated.
inline void store_cols_u8(uint8_t* dst, V a0, V a1, V a2, V a3) {
  const V p01 = _mm256_packs_epi32(a0, a1);  // 0-3, 8-11 | 4-7, 12-15
  const V p23 = _mm256_packs_epi32(a2, a3);  // 16-19, 24-27 | 20-23, 28-31
  const V b = _mm256_packus_epi16(p01, p23);  // 0-3, 8-11, 16-19, 24-27 | 4-7, 12-15, 20-23, 28-31
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst),
                      _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
}

// (v - mean) / sd of 8 values: the division, or its checked fused form (NormParams).
inline __m256 norm8(__m256 v, NormParams p) {
  const __m256 d = _mm256_sub_ps(v, _mm256_set1_ps(p.mean));
  if (p.recip == 0.f) return _mm256_div_ps(d, _mm256_set1_ps(p.sd));
  const __m256 r = _mm256_set1_ps(p.recip);
  const __m256 q = _mm256_mul_ps(d, r);
  return _mm256_fmadd_ps(_mm256_fnmadd_ps(q, _mm256_set1_ps(p.sd), d), r, q);
}

inline void store_norm(float* out, const uint8_t* s, NormParams p) {
  const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s))));
  _mm256_storeu_ps(out, norm8(v, p));
}

// Values [i, n) of a run of n >= kLanesF: the run's last kLanesF values (same results where
// they overlap the previous vector).
inline void store_norm_tail(float* out, const uint8_t* s, int, int n, NormParams p) {
  store_norm(out + n - kLanesF, s + n - kLanesF, p);
}

// Eight normalized values -> their bfloat16 bits (see bf16_bits in simd_kernels.inl).
inline void store_norm_bf16(uint16_t* out, const uint8_t* s, NormParams p) {
  const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s))));
  const __m256i x = _mm256_castps_si256(norm8(v, p));
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(x, 16), _mm256_set1_epi32(1));
  const __m256i b = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(x, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(b, b), 0xD8);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm256_castsi256_si128(packed));
}

inline void store_norm_bf16_tail(uint16_t* out, const uint8_t* s, int, int n, NormParams p) {
  store_norm_bf16(out + n - kLanesF, s + n - kLanesF, p);
}

// Dot product of 16*CHUNKS taps for one output: uint8 samples widened to int16 times weights.
template <int CHUNKS>
inline V dot_taps(const uint8_t* sp, const int16_t* wk) {
  V a = _mm256_madd_epi16(load_u8_i16(sp), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk)));
  for (int k = 1; k < CHUNKS; ++k) {
    a = _mm256_add_epi32(a, _mm256_madd_epi16(load_u8_i16(sp + 16 * k),
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk + 16 * k))));
  }
  return a;
}

// Strong downscales (no shuffle tables): four outputs of one (row, channel) per step, each a
// dot product over its zero-padded taps, reduced together.
template <int CHUNKS>
int horizontal_dot(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]) {
  const int tp = t.taps_padded;
  const __m128i init = _mm_set1_epi32(1 << (t.precision - 1));
  const __m128i shift = _mm_cvtsi32_si128(t.precision);
  int ox = 0;
  for (; ox + 4 <= t.out_size; ox += 4) {
    const int16_t* w0 = t.weights_padded + static_cast<int64_t>(ox) * tp;
    const int o0 = t.first[ox] - col0, o1 = t.first[ox + 1] - col0;
    const int o2 = t.first[ox + 2] - col0, o3 = t.first[ox + 3] - col0;
    for (int c = 0; c < 3; ++c) {
      __m128i rows[2];
      for (int r = 0; r < 2; ++r) {
        const uint8_t* sc = src[3 * r + c];
        const V a0 = dot_taps<CHUNKS>(sc + o0, w0);
        const V a1 = dot_taps<CHUNKS>(sc + o1, w0 + tp);
        const V a2 = dot_taps<CHUNKS>(sc + o2, w0 + 2 * tp);
        const V a3 = dot_taps<CHUNKS>(sc + o3, w0 + 3 * tp);
        const V h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
        const __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
        rows[r] = _mm_sra_epi32(_mm_add_epi32(sum, init), shift);
      }
      // rows 0 and 1 of the 4 outputs -> (row 0, row 1) int16 pairs clamped to 0..255
      const __m128i p = _mm_min_epu16(_mm_packus_epi32(rows[0], rows[1]), _mm_set1_epi16(255));
      const __m128i q = _mm_shuffle_epi8(p, _mm_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(dst[c] + 2 * ox), q);
    }
  }
  return ox;
}

int horizontal2_fallback(const HPassTables& t, const uint8_t* const src[6], int col0, int16_t* const dst[3]) {
  switch (t.taps_padded / 16) {
    case 1: return horizontal_dot<1>(t, src, col0, dst);
    case 2: return horizontal_dot<2>(t, src, col0, dst);
    case 3: return horizontal_dot<3>(t, src, col0, dst);
    case 4: return horizontal_dot<4>(t, src, col0, dst);
    default: return 0;  // very strong downscales: the scalar loop
  }
}

#define MSCE_ROW_KERNELS_OF_THIS_ISA avx2_row_kernels
#include "pixel/simd_kernels.inl"  // closes the anonymous namespace
}  // namespace msce

#else  // compiler without the flags: the dispatcher skips this level
const msce::RowKernels* msce::avx2_row_kernels() { return nullptr; }
#endif
