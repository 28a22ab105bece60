// CPU loop of the fused transform. Per frame: convert only the source rows and columns
// the resampler reads to planar RGB, run the horizontal pass into a uint8 intermediate
// (as torch does: horizontal first, each pass rounded and clamped to uint8), run the
// vertical pass, then normalize and scatter into the target layout. All arithmetic is
// in pixel_math.hpp; the loops here are arranged so the compiler vectorizes them.
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#if defined(__AVX2__)
#include <immintrin.h>
#endif

#include "common/error.hpp"
#include "pixel/transform.hpp"

namespace msce {

void TransformSpec::validate() const {
  if (out_h < 0 || out_w < 0 || (out_h == 0) != (out_w == 0)) {
    throw TransformError("output size must be two positive integers (got " + std::to_string(out_h) + "x" +
                         std::to_string(out_w) + ")");
  }
  if (out_h > 16384 || out_w > 16384) throw TransformError("output size exceeds 16384 pixels per side");
  if (layout == Layout::kQwen) {
    if (out_h == 0) throw TransformError("Qwen layout needs an explicit output size");
    const int f = qwen.patch * qwen.merge;
    if (qwen.patch <= 0 || qwen.merge <= 0 || qwen.temporal <= 0 || out_h % f || out_w % f) {
      throw TransformError("Qwen output size " + std::to_string(out_h) + "x" + std::to_string(out_w) +
                           " is not a multiple of patch*merge = " + std::to_string(f));
    }
    if (dtype == DType::kU8) throw TransformError("Qwen layout needs a float dtype");
  }
  if (dtype == DType::kU8 && normalize) throw TransformError("normalization needs a float dtype");
  for (int c = 0; c < 3; ++c) {
    if (!(std[c] != 0.f)) throw TransformError("std must be non-zero");
  }
}

int64_t TransformSpec::buffer_elements(int64_t slots) const {
  const int64_t pixels = static_cast<int64_t>(out_h) * out_w;
  return slots * pixels * 3;
}

namespace {

struct Scratch {
  std::vector<uint8_t> row;    // 3 planar rows of the source columns read
  std::vector<uint8_t> inter;  // 3 planes: rows read x out_w (after the horizontal pass)
  std::vector<uint8_t> line;   // 3 planar rows of the final uint8 output row
  std::vector<int32_t> acc;    // out_w accumulators
};

thread_local Scratch tls_scratch;

#if defined(__AVX2__)
// 16 pixels of one 4:2:0 row: y holds 16 luma samples, u/v the 8 chroma samples they share.
// Same integer arithmetic as px::yuv_to_rgb (32-bit lanes; saturating packs = clamp_u8).
inline void yuv16_to_rgb_avx2(const px::ColorCoeffs& c, __m128i y, __m128i u8, __m128i v8, uint8_t* r, uint8_t* g,
                              uint8_t* b) {
  const __m128i u = _mm_unpacklo_epi8(u8, u8);  // u0 u0 u1 u1 ...
  const __m128i v = _mm_unpacklo_epi8(v8, v8);
  const __m256i ycoef = _mm256_set1_epi32(c.y_coeff), yoff = _mm256_set1_epi32(c.y_off);
  const __m256i c1024 = _mm256_set1_epi32(1024);
  const __m256i vr = _mm256_set1_epi32(c.vr), ug = _mm256_set1_epi32(c.ug);
  const __m256i vg = _mm256_set1_epi32(c.vg), ub = _mm256_set1_epi32(c.ub);
  __m256i rr[2], gg[2], bb[2];
  for (int h = 0; h < 2; ++h) {
    const __m128i ys = h ? _mm_srli_si128(y, 8) : y;
    const __m128i us = h ? _mm_srli_si128(u, 8) : u;
    const __m128i vs = h ? _mm_srli_si128(v, 8) : v;
    const __m256i y8 = _mm256_sub_epi32(_mm256_slli_epi32(_mm256_cvtepu8_epi32(ys), 3), yoff);
    const __m256i yy = _mm256_srai_epi32(_mm256_mullo_epi32(y8, ycoef), 16);
    const __m256i du = _mm256_sub_epi32(_mm256_slli_epi32(_mm256_cvtepu8_epi32(us), 3), c1024);
    const __m256i dv = _mm256_sub_epi32(_mm256_slli_epi32(_mm256_cvtepu8_epi32(vs), 3), c1024);
    rr[h] = _mm256_add_epi32(yy, _mm256_srai_epi32(_mm256_mullo_epi32(dv, vr), 16));
    gg[h] = _mm256_add_epi32(_mm256_add_epi32(yy, _mm256_srai_epi32(_mm256_mullo_epi32(du, ug), 16)),
                             _mm256_srai_epi32(_mm256_mullo_epi32(dv, vg), 16));
    bb[h] = _mm256_add_epi32(yy, _mm256_srai_epi32(_mm256_mullo_epi32(du, ub), 16));
  }
  auto store = [](__m256i lo, __m256i hi, uint8_t* dst) {
    __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(lo, hi), 0xD8);  // 16 x int16 in order
    __m256i b8 = _mm256_permute4x64_epi64(_mm256_packus_epi16(w16, w16), 0xD8);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm256_castsi256_si128(b8));
  };
  store(rr[0], rr[1], r);
  store(gg[0], gg[1], g);
  store(bb[0], bb[1], b);
}
#endif

// Source row `sy`, columns [x0, x0 + n) of the frame, to planar R, G, B.
void convert_row(const Frame& f, const px::ColorCoeffs& cc, int sy, int x0, int n, uint8_t* __restrict r,
                 uint8_t* __restrict g, uint8_t* __restrict b) {
  uint8_t rgb[3];
  switch (f.layout) {
    case PixelLayout::kYUV420P:
    case PixelLayout::kNV12: {
      const bool nv12 = f.layout == PixelLayout::kNV12;
      const uint8_t* yp = f.data[0] + static_cast<int64_t>(sy) * f.linesize[0];
      const uint8_t* up = f.data[1] + static_cast<int64_t>(sy >> 1) * f.linesize[1];
      const uint8_t* vp = nv12 ? up + 1 : f.data[2] + static_cast<int64_t>(sy >> 1) * f.linesize[2];
      const int cstep = nv12 ? 2 : 1;  // chroma sample stride in bytes
      int i = 0;
      auto scalar = [&](int k) {
        const int x = x0 + k;
        px::yuv_to_rgb(cc, yp[x], up[(x >> 1) * cstep], vp[(x >> 1) * cstep], rgb);
        r[k] = rgb[0];
        g[k] = rgb[1];
        b[k] = rgb[2];
      };
      if (x0 & 1) scalar(i++);  // align luma x to an even column so pairs share chroma
#if defined(__AVX2__)
      for (; i + 16 <= n; i += 16) {
        const int x = x0 + i;
        const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(yp + x));
        __m128i u8, v8;
        if (nv12) {
          const __m128i uv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(up + x));  // u0 v0 u1 v1 ...
          const __m128i even = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, -1, -1, -1, -1, -1, -1, -1, -1);
          const __m128i odd = _mm_setr_epi8(1, 3, 5, 7, 9, 11, 13, 15, -1, -1, -1, -1, -1, -1, -1, -1);
          u8 = _mm_shuffle_epi8(uv, even);
          v8 = _mm_shuffle_epi8(uv, odd);
        } else {
          u8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(up + (x >> 1)));
          v8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(vp + (x >> 1)));
        }
        yuv16_to_rgb_avx2(cc, y, u8, v8, r + i, g + i, b + i);
      }
#endif
      for (; i < n; ++i) scalar(i);
      break;
    }
    case PixelLayout::kRGB24: {
      const uint8_t* p = f.data[0] + static_cast<int64_t>(sy) * f.linesize[0] + 3 * static_cast<int64_t>(x0);
      for (int i = 0; i < n; ++i) {
        r[i] = p[3 * i];
        g[i] = p[3 * i + 1];
        b[i] = p[3 * i + 2];
      }
      break;
    }
  }
}

#if defined(__AVX2__)
// Dot product of 16*CHUNKS taps: uint8 samples (widened to int16) times int16 weights.
template <int CHUNKS>
inline __m256i dot_taps(const uint8_t* sp, const int16_t* wk) {
  __m256i a = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sp))),
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk)));
  for (int k = 1; k < CHUNKS; ++k) {
    a = _mm256_add_epi32(
        a, _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sp + 16 * k))),
                             _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wk + 16 * k))));
  }
  return a;
}

// Four outputs of one channel per step: four dot products reduced together, rounded,
// shifted and clamped by a saturating pack. Returns the first output not written.
template <int CHUNKS>
int horizontal_avx2(const ResampleAxis& ax, const uint8_t* const src[3], int col0, uint8_t* const dst[3]) {
  const int tp = ax.taps_padded;
  const int16_t* wbase = ax.weights_padded.data();
  const __m128i init = _mm_set1_epi32(1 << (ax.precision - 1));
  const __m128i shift = _mm_cvtsi32_si128(ax.precision);
  int ox = 0;
  for (; ox + 4 <= ax.out_size; ox += 4) {
    const int16_t* w0 = wbase + static_cast<int64_t>(ox) * tp;
    const int o0 = ax.first[ox] - col0, o1 = ax.first[ox + 1] - col0;
    const int o2 = ax.first[ox + 2] - col0, o3 = ax.first[ox + 3] - col0;
    for (int c = 0; c < 3; ++c) {
      const uint8_t* sc = src[c];
      const __m256i a0 = dot_taps<CHUNKS>(sc + o0, w0);
      const __m256i a1 = dot_taps<CHUNKS>(sc + o1, w0 + tp);
      const __m256i a2 = dot_taps<CHUNKS>(sc + o2, w0 + 2 * tp);
      const __m256i a3 = dot_taps<CHUNKS>(sc + o3, w0 + 3 * tp);
      const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
      __m128i sum = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      sum = _mm_sra_epi32(_mm_add_epi32(sum, init), shift);
      const int32_t four = _mm_cvtsi128_si32(_mm_packus_epi16(_mm_packs_epi32(sum, sum), sum));
      std::memcpy(dst[c] + ox, &four, 4);
    }
  }
  return ox;
}
#endif

// Horizontal pass of three planar rows (R, G, B share the weights): src rows hold columns
// [col0, ...) of the crop and are readable `taps_padded` bytes past their end.
void horizontal3(const ResampleAxis& ax, const uint8_t* const src[3], int col0, uint8_t* const dst[3]) {
  int ox = 0;
#if defined(__AVX2__)
  switch (ax.taps_padded / 16) {
    case 1: ox = horizontal_avx2<1>(ax, src, col0, dst); break;
    case 2: ox = horizontal_avx2<2>(ax, src, col0, dst); break;
    case 3: ox = horizontal_avx2<3>(ax, src, col0, dst); break;
    case 4: ox = horizontal_avx2<4>(ax, src, col0, dst); break;
    default: break;  // very strong downscales: scalar loop below
  }
#endif
  const int16_t* w = ax.weights.data();
  for (; ox < ax.out_size; ++ox) {
    const int off = ax.first[ox] - col0;
    const int16_t* wk = w + static_cast<int64_t>(ox) * ax.taps;
    for (int c = 0; c < 3; ++c) dst[c][ox] = px::convolve_u8(src[c] + off, 1, wk, ax.count[ox], ax.precision);
  }
}

// Vertical pass for one output row of one plane: rows are `row_stride` apart in `src`.
void vertical(const ResampleAxis& ax, int oy, const uint8_t* __restrict src, int64_t row_stride, int width, int row0,
              int32_t* __restrict acc, uint8_t* __restrict dst) {
  const int prec = ax.precision;
  const int32_t init = 1 << (prec - 1);
  const int16_t* wk = ax.weights.data() + static_cast<int64_t>(oy) * ax.taps;
  const uint8_t* base = src + static_cast<int64_t>(ax.first[oy] - row0) * row_stride;
  const int n = ax.count[oy];
  int x = 0;
#if defined(__AVX2__)
  // 16 columns per step; taps taken in pairs so one madd applies two rows' weights.
  const __m128i shift = _mm_cvtsi32_si128(prec);
  for (; x + 16 <= width; x += 16) {
    __m256i lo = _mm256_set1_epi32(init), hi = lo;
    int k = 0;
    for (; k + 2 <= n; k += 2) {
      const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + k * row_stride + x));
      const __m128i r1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + (k + 1) * row_stride + x));
      const __m256i w = _mm256_set1_epi32(static_cast<int32_t>((static_cast<uint32_t>(static_cast<uint16_t>(wk[k + 1])) << 16) |
                                                               static_cast<uint16_t>(wk[k])));
      const __m256i p0 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(r0, r1));  // r0[x], r1[x], ... for x..x+7
      const __m256i p1 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(r0, r1));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(p0, w));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(p1, w));
    }
    if (k < n) {
      const __m128i r0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(base + k * row_stride + x));
      const __m256i w = _mm256_set1_epi32(static_cast<uint16_t>(wk[k]));
      const __m256i p0 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(r0, _mm_setzero_si128()));
      const __m256i p1 = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(r0, _mm_setzero_si128()));
      lo = _mm256_add_epi32(lo, _mm256_madd_epi16(p0, w));
      hi = _mm256_add_epi32(hi, _mm256_madd_epi16(p1, w));
    }
    lo = _mm256_sra_epi32(lo, shift);
    hi = _mm256_sra_epi32(hi, shift);
    const __m256i w16 = _mm256_packs_epi32(lo, hi);  // lanes: lo0-3 hi0-3 | lo4-7 hi4-7
    const __m256i b8 = _mm256_packus_epi16(w16, w16);
    const __m128i l = _mm256_castsi256_si128(b8), h = _mm256_extracti128_si256(b8, 1);
    // l = [lo0-3 hi0-3 ...], h = [lo4-7 hi4-7 ...]: interleave back to x order
    const __m128i out = _mm_unpacklo_epi32(l, h);  // lo0-3 lo4-7 hi0-3 hi4-7
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + x), out);
  }
#endif
  for (int xi = x; xi < width; ++xi) acc[xi] = init;
  for (int k = 0; k < n; ++k) {
    const int32_t wv = wk[k];
    const uint8_t* __restrict s = base + k * row_stride;
    for (int xi = x; xi < width; ++xi) acc[xi] += wv * static_cast<int32_t>(s[xi]);
  }
  for (int xi = x; xi < width; ++xi) dst[xi] = px::clamp_u8(acc[xi] >> prec);
}

template <typename T>
inline T convert_value(float v);
template <>
inline float convert_value<float>(float v) {
  return v;
}
template <>
inline uint16_t convert_value<uint16_t>(float v) {
  return float_to_half(v);
}

// Per-channel table of the normalized value of every uint8 level: the output is a pure
// function of (channel, level), so a lookup gives exactly px::normalize_u8's result.
template <typename T>
struct LevelTable {
  T v[3][256];
  explicit LevelTable(const TransformSpec& spec) {
    for (int c = 0; c < 3; ++c) {
      const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
      for (int l = 0; l < 256; ++l) v[c][l] = convert_value<T>(px::normalize_u8(static_cast<uint8_t>(l), m, sd));
    }
  }
};

// (x - mean) / std of a uint8 row into float32: the same two IEEE operations as
// px::normalize_u8 (vectorized where AVX2 is available, so results are identical).
void normalize_row_f32(const uint8_t* __restrict s, int n, const float* table, float mean, float sd,
                       float* __restrict out) {
  int x = 0;
#if defined(__AVX2__)
  const __m256 m = _mm256_set1_ps(mean), d = _mm256_set1_ps(sd);
  for (; x + 8 <= n; x += 8) {
    const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(s + x))));
    _mm256_storeu_ps(out + x, _mm256_div_ps(_mm256_sub_ps(v, m), d));
  }
#endif
  for (; x < n; ++x) out[x] = table[s[x]];
}

// Writes one final uint8 RGB row (planar) into the output slot.
template <typename T>
void write_row_float(const TransformSpec& spec, const LevelTable<T>& lut, const uint8_t* const planes[3], int oy,
                     int width, void* out, int64_t slot) {
  T* o = static_cast<T*>(out);
  const int height = spec.out_h;
  if constexpr (std::is_same_v<T, float>) {
    if (spec.layout != Layout::kNHWC) {
      // normalize whole rows with SIMD, then copy patch-wide runs (Qwen) or the row (NCHW)
      thread_local std::vector<float> tmp;
      tmp.resize(static_cast<size_t>(width));
      const int64_t plane = static_cast<int64_t>(height) * width;
      for (int c = 0; c < 3; ++c) {
        const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
        if (spec.layout == Layout::kNCHW) {
          normalize_row_f32(planes[c], width, lut.v[c], m, sd, o + (slot * 3 + c) * plane + static_cast<int64_t>(oy) * width);
          continue;
        }
        normalize_row_f32(planes[c], width, lut.v[c], m, sd, tmp.data());
        const px::QwenGeometry& g = spec.qwen;
        const int64_t rw = px::qwen_row_width(g);
        for (int x0 = 0; x0 < width; x0 += g.patch) {
          float* dst = o + px::qwen_row(g, slot, oy, x0) * rw + px::qwen_col(g, slot, c, oy, x0);
          std::memcpy(dst, tmp.data() + x0, sizeof(float) * g.patch);
        }
      }
      return;
    }
  }
  if (spec.layout == Layout::kQwen) {
    const px::QwenGeometry& g = spec.qwen;
    const int64_t rw = px::qwen_row_width(g);
    for (int x0 = 0; x0 < width; x0 += g.patch) {
      const int64_t row = px::qwen_row(g, slot, oy, x0);
      for (int c = 0; c < 3; ++c) {
        T* dst = o + row * rw + px::qwen_col(g, slot, c, oy, x0);
        const uint8_t* s = planes[c] + x0;
        const T* table = lut.v[c];
        for (int i = 0; i < g.patch; ++i) dst[i] = table[s[i]];
      }
    }
    return;
  }
  const int64_t plane = static_cast<int64_t>(height) * width;
  if (spec.layout == Layout::kNCHW) {
    for (int c = 0; c < 3; ++c) {
      T* dst = o + (slot * 3 + c) * plane + static_cast<int64_t>(oy) * width;
      const T* table = lut.v[c];
      for (int x = 0; x < width; ++x) dst[x] = table[planes[c][x]];
    }
  } else {
    T* dst = o + slot * plane * 3 + static_cast<int64_t>(oy) * width * 3;
    for (int c = 0; c < 3; ++c) {
      const T* table = lut.v[c];
      for (int x = 0; x < width; ++x) dst[3 * x + c] = table[planes[c][x]];
    }
  }
}

void write_row(const TransformSpec& spec, const void* lut, const uint8_t* const planes[3], int oy, int width,
               void* out, int64_t slot) {
  if (spec.dtype == DType::kF32) {
    return write_row_float<float>(spec, *static_cast<const LevelTable<float>*>(lut), planes, oy, width, out, slot);
  }
  if (spec.dtype == DType::kF16) {
    return write_row_float<uint16_t>(spec, *static_cast<const LevelTable<uint16_t>*>(lut), planes, oy, width, out,
                                     slot);
  }
  uint8_t* o = static_cast<uint8_t*>(out);
  const int64_t plane = static_cast<int64_t>(spec.out_h) * width;
  if (spec.layout == Layout::kNCHW) {
    for (int c = 0; c < 3; ++c) {
      std::memcpy(o + (slot * 3 + c) * plane + static_cast<int64_t>(oy) * width, planes[c], width);
    }
  } else {
    uint8_t* dst = o + slot * plane * 3 + static_cast<int64_t>(oy) * width * 3;
    for (int x = 0; x < width; ++x) {
      dst[3 * x] = planes[0][x];
      dst[3 * x + 1] = planes[1][x];
      dst[3 * x + 2] = planes[2][x];
    }
  }
}

}  // namespace

void transform_frame_cpu(const Frame& src, const CropBox& box_in, const TransformSpec& spec, void* out,
                         int64_t slot) {
  CropBox box = box_in;
  if (box.w <= 0 || box.h <= 0) box = CropBox{0, 0, src.width, src.height};
  if (box.x < 0 || box.y < 0 || box.x + box.w > src.width || box.y + box.h > src.height) {
    throw TransformError("crop box (" + std::to_string(box.x) + ", " + std::to_string(box.y) + ", " +
                         std::to_string(box.w) + ", " + std::to_string(box.h) + ") lies outside the " +
                         std::to_string(src.width) + "x" + std::to_string(src.height) + " frame");
  }
  const int out_w = spec.out_w > 0 ? spec.out_w : box.w;
  const int out_h = spec.out_h > 0 ? spec.out_h : box.h;
  if (out_w != spec.out_w || out_h != spec.out_h) {
    throw TransformError("output size must be resolved before the transform runs");
  }
  auto hx_ptr = cached_resample_axis(box.w, out_w, spec.interp);
  auto vy_ptr = cached_resample_axis(box.h, out_h, spec.interp);
  const ResampleAxis& hx = *hx_ptr;
  const ResampleAxis& vy = *vy_ptr;

  // Source columns and rows that the passes read (crop-relative).
  const int col0 = hx.identity ? 0 : hx.first.front();
  const int col1 = hx.identity ? box.w : hx.first.back() + hx.count.back();
  const int row0 = vy.identity ? 0 : vy.first.front();
  const int row1 = vy.identity ? box.h : vy.first.back() + vy.count.back();
  const int ncols = col1 - col0;
  const int nrows = row1 - row0;

  Scratch& s = tls_scratch;
  // each planar row is followed by zeros the SIMD horizontal pass may read past its end
  const int row_stride = ncols + hx.taps_padded + 16;
  s.row.assign(static_cast<size_t>(row_stride) * 3, 0);
  s.inter.resize(static_cast<size_t>(nrows) * out_w * 3);
  s.line.resize(static_cast<size_t>(out_w) * 3);
  s.acc.resize(out_w);
  const int64_t inter_plane = static_cast<int64_t>(nrows) * out_w;

  const px::ColorCoeffs cc = px::make_color_coeffs(static_cast<int>(src.matrix), src.range == ColorRange::kFull);
  uint8_t* rr = s.row.data();
  uint8_t* rg = rr + row_stride;
  uint8_t* rb = rg + row_stride;
  const uint8_t* const rows[3] = {rr, rg, rb};
  for (int y = row0; y < row1; ++y) {
    convert_row(src, cc, box.y + y, box.x + col0, ncols, rr, rg, rb);
    uint8_t* dst[3];
    for (int c = 0; c < 3; ++c) dst[c] = s.inter.data() + c * inter_plane + static_cast<int64_t>(y - row0) * out_w;
    if (hx.identity) {
      std::memcpy(dst[0], rr, out_w);
      std::memcpy(dst[1], rg, out_w);
      std::memcpy(dst[2], rb, out_w);
    } else {
      horizontal3(hx, rows, col0, dst);
    }
  }
  // level tables are 3 KiB (float) / 1.5 KiB (half): rebuilt per frame, cheaper than the divisions
  std::unique_ptr<LevelTable<float>> lut32;
  std::unique_ptr<LevelTable<uint16_t>> lut16;
  const void* lut = nullptr;
  if (spec.dtype == DType::kF32) {
    lut32 = std::make_unique<LevelTable<float>>(spec);
    lut = lut32.get();
  } else if (spec.dtype == DType::kF16) {
    lut16 = std::make_unique<LevelTable<uint16_t>>(spec);
    lut = lut16.get();
  }
  const uint8_t* planes[3];
  for (int oy = 0; oy < out_h; ++oy) {
    if (vy.identity) {
      for (int c = 0; c < 3; ++c) planes[c] = s.inter.data() + c * inter_plane + static_cast<int64_t>(oy) * out_w;
    } else {
      for (int c = 0; c < 3; ++c) {
        uint8_t* line = s.line.data() + c * out_w;
        vertical(vy, oy, s.inter.data() + c * inter_plane, out_w, out_w, row0, s.acc.data(), line);
        planes[c] = line;
      }
    }
    write_row(spec, lut, planes, oy, out_w, out, slot);
  }
}

void copy_qwen_slot(const TransformSpec& spec, void* out, int64_t from, int64_t to) {
  const px::QwenGeometry& g = spec.qwen;
  const int64_t rw = px::qwen_row_width(g);
  const size_t esz = spec.element_size();
  char* o = static_cast<char*>(out);
  const int64_t rows_per_gt = static_cast<int64_t>(g.grid_h) * g.grid_w;
  const int64_t run = static_cast<int64_t>(g.patch) * g.patch;  // one channel's patch block
  const int64_t from_gt = from / g.temporal, to_gt = to / g.temporal;
  const int64_t from_ti = from % g.temporal, to_ti = to % g.temporal;
  for (int64_t r = 0; r < rows_per_gt; ++r) {
    char* src_row = o + ((from_gt * rows_per_gt + r) * rw) * esz;
    char* dst_row = o + ((to_gt * rows_per_gt + r) * rw) * esz;
    for (int c = 0; c < g.channels; ++c) {
      const int64_t src_off = ((c * g.temporal + from_ti) * run) * esz;
      const int64_t dst_off = ((c * g.temporal + to_ti) * run) * esz;
      std::memcpy(dst_row + dst_off, src_row + src_off, run * esz);
    }
  }
}

}  // namespace msce
