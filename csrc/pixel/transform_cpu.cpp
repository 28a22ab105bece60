// CPU loop of the fused transform. Per frame, output row by output row: convert the source
// rows it needs (only the columns the resampler reads) to planar RGB two rows at a time, run
// the horizontal pass of the two rows into one "pair row" of a small ring (int16, the rows
// interleaved per column, see simd_dispatch.hpp), run the vertical pass over the ring's pair
// rows (as torch does: horizontal first, each pass rounded and clamped to uint8), then
// normalize and scatter into the target layout. The ring keeps the intermediate in L1/L2.
// All arithmetic is in pixel_math.hpp.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "common/error.hpp"
#include "pixel/simd_dispatch.hpp"
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
  if (resize_h != 0 || resize_w != 0 || crop_y != 0 || crop_x != 0) {
    if (out_h == 0 || resize_h <= 0 || resize_w <= 0 || crop_y < 0 || crop_x < 0 || crop_y + out_h > resize_h ||
        crop_x + out_w > resize_w || resize_h > 16384 || resize_w > 16384) {
      throw TransformError("output crop (" + std::to_string(crop_x) + ", " + std::to_string(crop_y) + ", " +
                           std::to_string(out_w) + ", " + std::to_string(out_h) + ") lies outside the " +
                           std::to_string(resize_w) + "x" + std::to_string(resize_h) + " resized frame");
    }
  }
  for (int c = 0; c < 3; ++c) {
    if (!(std[c] != 0.f)) throw TransformError("std must be non-zero");
  }
  if (pre_h != 0 || pre_w != 0) {
    if (pre_h <= 0 || pre_w <= 0 || pre_h > 16384 || pre_w > 16384 || out_h == 0) {
      throw TransformError("first-stage resize " + std::to_string(pre_w) + "x" + std::to_string(pre_h) +
                           " must be two positive sizes up to 16384, with an explicit output size");
    }
  }
}

TransformSpec TransformSpec::first_stage() const {
  TransformSpec s;
  s.out_h = pre_h;
  s.out_w = pre_w;
  s.interp = interp;
  s.layout = Layout::kNHWC;
  s.dtype = DType::kU8;
  return s;
}

TransformSpec TransformSpec::second_stage() const {
  TransformSpec s = *this;
  s.pre_h = 0;
  s.pre_w = 0;
  return s;
}

Frame rgb24_frame(const uint8_t* data, int width, int height) {
  Frame f;
  f.layout = PixelLayout::kRGB24;
  f.data[0] = data;
  f.linesize[0] = 3 * width;
  f.width = width;
  f.height = height;
  return f;
}

int64_t TransformSpec::buffer_elements(int64_t slots) const {
  const int64_t pixels = static_cast<int64_t>(out_h) * out_w;
  return slots * pixels * 3;
}

namespace {

struct Scratch {
  std::vector<uint8_t> row;     // 2 source rows x 3 planar channels of the source columns read
  std::vector<int16_t> ring;    // 3 channels x ring slots x pair row (2 * out_w)
  std::vector<uint8_t> line;    // final uint8 output: 3 planar rows, or 3 x patch rows (Qwen float32)
  std::vector<const int16_t*> pair_rows;  // the pair rows one output row reads (one channel)
};

thread_local Scratch tls_scratch;

// Source rows sy .. sy + rows - 1 (rows = 1 or 2), columns [x0, x0 + n) of the frame, to
// planar R, G, B: row r into dst[3r], dst[3r + 1], dst[3r + 2]. Two 4:2:0 rows that share a
// chroma row (sy even) are converted together.
void convert_rows(const RowKernels* kern, const Frame& f, const px::ColorCoeffs& cc, int sy, int rows, int x0,
                  int n, uint8_t* const dst[6]) {
  if (rows == 2 && (f.layout == PixelLayout::kRGB24 || (sy & 1))) {
    convert_rows(kern, f, cc, sy, 1, x0, n, dst);
    convert_rows(kern, f, cc, sy + 1, 1, x0, n, dst + 3);
    return;
  }
  uint8_t rgb[3];
  switch (f.layout) {
    case PixelLayout::kYUV420P:
    case PixelLayout::kNV12: {
      const bool nv12 = f.layout == PixelLayout::kNV12;
      const uint8_t* const yp[2] = {f.data[0] + static_cast<int64_t>(sy) * f.linesize[0],
                                    f.data[0] + static_cast<int64_t>(sy + rows - 1) * f.linesize[0]};
      const uint8_t* up = f.data[1] + static_cast<int64_t>(sy >> 1) * f.linesize[1];
      const uint8_t* vp = nv12 ? up + 1 : f.data[2] + static_cast<int64_t>(sy >> 1) * f.linesize[2];
      const int cstep = nv12 ? 2 : 1;  // chroma sample stride in bytes
      auto scalar = [&](int k) {
        const int x = x0 + k;
        for (int r = 0; r < rows; ++r) {
          px::yuv_to_rgb(cc, yp[r][x], up[(x >> 1) * cstep], vp[(x >> 1) * cstep], rgb);
          for (int c = 0; c < 3; ++c) dst[3 * r + c][k] = rgb[c];
        }
      };
      int i = 0;
      if (x0 & 1) scalar(i++);  // align luma x to an even column so pairs share chroma
      if (kern) {
        uint8_t* const d[6] = {dst[0] + i, dst[1] + i, dst[2] + i, rows == 2 ? dst[3] + i : nullptr,
                               rows == 2 ? dst[4] + i : nullptr, rows == 2 ? dst[5] + i : nullptr};
        i += kern->yuv_rows(cc, yp, rows, up, vp, cstep, x0 + i, n - i, d);
      }
      for (; i < n; ++i) scalar(i);
      break;
    }
    case PixelLayout::kRGB24: {
      const uint8_t* p = f.data[0] + static_cast<int64_t>(sy) * f.linesize[0] + 3 * static_cast<int64_t>(x0);
      for (int i = 0; i < n; ++i) {
        dst[0][i] = p[3 * i];
        dst[1][i] = p[3 * i + 1];
        dst[2][i] = p[3 * i + 2];
      }
      break;
    }
  }
}

HPassTables hpass_tables(const ResampleAxis& ax) {
  HPassTables t;
  t.first = ax.first.data();
  t.out_size = ax.out_size;
  t.precision = ax.precision;
  t.pairs = ax.shuffle_pairs;
  t.per_window = ax.shuffle_per_window;
  t.masks = ax.shuffle_masks.data();
  t.weights = ax.shuffle_weights.data();
  t.taps_padded = ax.taps_padded;
  t.weights_padded = ax.weights_padded.data();
  return t;
}

// Horizontal pass of two source rows x three channels into one pair row per channel:
// src = {R0, G0, B0, R1, G1, B1} hold columns [col0, ...) of the crop and are readable
// `taps_padded` + 32 bytes past their end.
void horizontal2(const RowKernels* kern, const ResampleAxis& ax, const HPassTables& t, const uint8_t* const src[6],
                 int col0, int16_t* const dst[3]) {
  int ox = kern ? kern->horizontal2(t, src, col0, dst) : 0;
  const int16_t* w = ax.weights.data();
  for (; ox < ax.out_size; ++ox) {
    const int off = ax.first[ox] - col0;
    const int16_t* wk = w + static_cast<int64_t>(ox) * ax.taps;
    for (int r = 0; r < 2; ++r) {
      for (int c = 0; c < 3; ++c) {
        dst[c][2 * ox + r] = px::convolve_u8(src[3 * r + c] + off, 1, wk, ax.count[ox], ax.precision);
      }
    }
  }
}

// Vertical pass of one output row of one channel over `pairs` pair rows with packed
// weight pairs `wp` (low: the pair's first row).
void vertical(const RowKernels* kern, const int32_t* wp, const int16_t* const* rows, int pairs, int precision,
              int width, uint8_t* __restrict dst) {
  int x = kern ? kern->vertical(wp, rows, pairs, precision, width, dst) : 0;
  const int32_t init = 1 << (precision - 1);
  for (; x < width; ++x) {
    int32_t acc = init;
    for (int k = 0; k < pairs; ++k) {
      const int32_t lo = static_cast<int16_t>(wp[k] & 0xFFFF), hi = static_cast<int16_t>(wp[k] >> 16);
      acc += lo * rows[k][2 * x] + hi * rows[k][2 * x + 1];
    }
    dst[x] = px::clamp_u8(acc >> precision);
  }
}

// Per-channel table of the normalized value of every uint8 level: the output is a pure
// function of (channel, level), so a lookup gives exactly px::normalize_u8's result.
template <typename T>
struct LevelTable {
  T v[3][256];
  void fill(const TransformSpec& spec) {
    for (int c = 0; c < 3; ++c) {
      const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
      for (int l = 0; l < 256; ++l) v[c][l] = to_out<T>(px::normalize_u8(static_cast<uint8_t>(l), m, sd));
    }
  }
};

// 1 / sd when the fused form of the division that the FMA kernels use (NormParams:
// q = d * r, then q + fma(fma(-q, sd, d), r)) equals d / sd bit for bit for d = level - mean at
// every level 0..255, else 0 (the kernels divide). Exact by construction: the kernels see only
// these 256 inputs per channel. std::fma is the correctly rounded fused operation, as the
// vector instructions are.
float fma_reciprocal(float mean, float sd) {
  const float r = 1.0f / sd;
  if (!std::isfinite(r) || r == 0.f || !std::isfinite(mean)) return 0.f;
  for (int l = 0; l < 256; ++l) {
    const float d = static_cast<float>(l) - mean;
    const float q = d * r;
    const float fused = std::fma(std::fma(-q, sd, d), r, q);
    const float exact = d / sd;
    uint32_t a, b;
    std::memcpy(&a, &fused, 4);
    std::memcpy(&b, &exact, 4);
    if (a != b) return 0.f;
  }
  return r;
}

// The normalization of channel c for the kernels (the check above is kept per thread for the
// last (mean, sd) of each channel).
NormParams norm_params(const TransformSpec& spec, int c) {
  struct Entry {
    float mean = 0.f, sd = 0.f, recip = 0.f;
    bool valid = false;
  };
  thread_local Entry last[3];
  const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
  Entry& e = last[c];
  if (!e.valid || std::memcmp(&e.mean, &m, 4) != 0 || std::memcmp(&e.sd, &sd, 4) != 0) {
    e.mean = m;
    e.sd = sd;
    e.recip = fma_reciprocal(m, sd);
    e.valid = true;
  }
  return NormParams{m, sd, e.recip};
}

// A frame's normalization: the level table of its output type (refilled per frame, 768
// values, cheaper than the divisions it saves) and the kernels' per-channel parameters, in
// per-thread storage. Nothing for uint8 output.
struct Levels {
  LevelTable<float> f32;
  LevelTable<uint16_t> f16;
  LevelTable<BF16Bits> bf16;
  NormParams norm[3];
  void fill(const TransformSpec& spec) {
    if (spec.dtype == DType::kU8) return;
    if (spec.dtype == DType::kF32) f32.fill(spec);
    if (spec.dtype == DType::kF16) f16.fill(spec);
    if (spec.dtype == DType::kBF16) bf16.fill(spec);
    for (int c = 0; c < 3; ++c) norm[c] = norm_params(spec, c);
  }
  template <typename T>
  const LevelTable<T>& table() const {
    if constexpr (std::is_same_v<T, float>) {
      return f32;
    } else if constexpr (std::is_same_v<T, uint16_t>) {
      return f16;
    } else {
      return bf16;
    }
  }
};

thread_local Levels tls_levels;

// (x - mean) / std of a uint8 row into float32: the SIMD kernel does the same two IEEE
// operations as px::normalize_u8; the tail reads the level table built from it.
void normalize_row_f32(const RowKernels* kern, const uint8_t* __restrict s, int n, const float* table,
                       NormParams p, float* __restrict out) {
  int x = kern ? kern->normalize_f32(s, n, p, out) : 0;
  for (; x < n; ++x) out[x] = table[s[x]];
}

// Writes one final uint8 RGB row (planar) into the output slot.
template <typename T>
void write_row_float(const RowKernels* kern, const TransformSpec& spec, const Levels& levels,
                     const uint8_t* const planes[3], int oy, int width, void* out, int64_t slot) {
  const LevelTable<T>& lut = levels.table<T>();
  T* o = static_cast<T*>(out);
  const int height = spec.out_h;
  if constexpr (std::is_same_v<T, float>) {
    if (spec.layout == Layout::kNCHW) {  // normalize whole rows with SIMD
      const int64_t plane = static_cast<int64_t>(height) * width;
      for (int c = 0; c < 3; ++c) {
        normalize_row_f32(kern, planes[c], width, lut.v[c], levels.norm[c],
                          o + (slot * 3 + c) * plane + static_cast<int64_t>(oy) * width);
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

void write_row(const RowKernels* kern, const TransformSpec& spec, const Levels& levels, const uint8_t* const planes[3],
               int oy, int width, void* out, int64_t slot) {
  if (spec.dtype == DType::kF32) return write_row_float<float>(kern, spec, levels, planes, oy, width, out, slot);
  if (spec.dtype == DType::kF16) return write_row_float<uint16_t>(kern, spec, levels, planes, oy, width, out, slot);
  if (spec.dtype == DType::kBF16) return write_row_float<BF16Bits>(kern, spec, levels, planes, oy, width, out, slot);
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

// Qwen layout: writes a band of `patch` final uint8 rows (3 channels x patch rows x width,
// output rows y0..) patch by patch. One channel of one patch is patch*patch contiguous values,
// so the stores run sequentially through whole cache lines instead of scattering one
// patch-wide run per row over the output. float32 and bfloat16 through the SIMD kernels where
// there are some, float16 (and any rest) through the level table.
template <typename T>
void write_qwen_band(const RowKernels* kern, const TransformSpec& spec, const Levels& levels, const uint8_t* band,
                     int width, int y0, void* out, int64_t slot) {
  const LevelTable<T>& lut = levels.table<T>();
  const NormParams* norms = levels.norm;
  const px::QwenGeometry& g = spec.qwen;
  const int P = g.patch;
  const int64_t rw = px::qwen_row_width(g);
  T* o = static_cast<T*>(out);
  for (int p = 0; p < width / P; ++p) {
    T* row = o + px::qwen_row(g, slot, y0, p * P) * rw;
    for (int c = 0; c < 3; ++c) {
      const uint8_t* src = band + static_cast<int64_t>(c) * P * width + p * P;
      T* dst = row + px::qwen_col(g, slot, c, y0, 0);
      if constexpr (std::is_same_v<T, float>) {
        if (kern && kern->normalize_block_f32(src, width, P, P, norms[c], dst) == P) continue;
      } else if constexpr (std::is_same_v<T, BF16Bits>) {
        static_assert(sizeof(BF16Bits) == sizeof(uint16_t));
        if (kern && kern->normalize_block_bf16(src, width, P, P, norms[c], reinterpret_cast<uint16_t*>(dst)) == P) {
          continue;
        }
      }
      for (int i = 0; i < P; ++i) {
        for (int x = 0; x < P; ++x) dst[i * P + x] = lut.v[c][src[static_cast<int64_t>(i) * width + x]];
      }
    }
  }
}

// write_qwen_band for spec.dtype (a float dtype: the band writer's).
void write_band(const RowKernels* kern, const TransformSpec& spec, const Levels& levels, const uint8_t* band, int width,
                int y0, void* out, int64_t slot) {
  if (spec.dtype == DType::kF32) {
    write_qwen_band<float>(kern, spec, levels, band, width, y0, out, slot);
  } else if (spec.dtype == DType::kF16) {
    write_qwen_band<uint16_t>(kern, spec, levels, band, width, y0, out, slot);
  } else {
    write_qwen_band<BF16Bits>(kern, spec, levels, band, width, y0, out, slot);
  }
}

}  // namespace

void transform_frame_cpu(const Frame& src, const CropBox& box_in, const TransformSpec& spec, void* out,
                         int64_t slot) {
  if (spec.two_stage()) {
    // the first stage's picture, kept apart from tls_scratch (which both stages use)
    thread_local std::vector<uint8_t> first;
    first.resize(static_cast<size_t>(spec.pre_h) * spec.pre_w * 3);
    transform_frame_cpu(src, box_in, spec.first_stage(), first.data(), 0);
    transform_frame_cpu(rgb24_frame(first.data(), spec.pre_w, spec.pre_h), CropBox{}, spec.second_stage(), out,
                        slot);
    return;
  }
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
  auto hx_ptr = cached_resample_axis(box.w, spec.full_w(), spec.crop_x, out_w, spec.interp);
  auto vy_ptr = cached_resample_axis(box.h, spec.full_h(), spec.crop_y, out_h, spec.interp);
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
  const RowKernels* kern = active_row_kernels();
  const px::ColorCoeffs cc = px::make_color_coeffs(static_cast<int>(src.matrix), src.range == ColorRange::kFull);
  Levels& levels = tls_levels;
  levels.fill(spec);
  // Final uint8 rows: one row at a time, or for the Qwen layout a band of `patch` rows written
  // patch by patch (write_qwen_band).
  const bool banded = spec.layout == Layout::kQwen && spec.dtype != DType::kU8 && out_h % spec.qwen.patch == 0;
  const int band_rows = banded ? spec.qwen.patch : 1;
  s.line.resize(static_cast<size_t>(out_w) * 3 * band_rows);
  uint8_t* lines[3];
  auto start_row = [&](int oy) {
    const int r = oy % band_rows;
    for (int c = 0; c < 3; ++c) lines[c] = s.line.data() + (static_cast<int64_t>(c) * band_rows + r) * out_w;
  };
  auto finish_row = [&](int oy) {
    if (!banded) {
      const uint8_t* const planes[3] = {lines[0], lines[1], lines[2]};
      write_row(kern, spec, levels, planes, oy, out_w, out, slot);
    } else if (oy % band_rows == band_rows - 1) {
      write_band(kern, spec, levels, s.line.data(), out_w, oy - band_rows + 1, out, slot);
    }
  };
  if (hx.identity && vy.identity) {  // no resampling: convert each row straight into the output row
    for (int oy = 0; oy < out_h; ++oy) {
      start_row(oy);
      convert_rows(kern, src, cc, box.y + oy, 1, box.x, out_w, lines);
      finish_row(oy);
    }
    return;
  }

  // Pair rows: pair p holds source rows row0 + 2p and row0 + 2p + 1. Output row oy reads pairs
  // [p0, p0 + pairs) (the axis's pair tables); with non-decreasing first rows (torch's tables)
  // a ring of the largest span + 1 pair rows always still holds them, else every pair row is kept.
  const int total_pairs = (nrows + 1) / 2;
  const int slots = vy.first_monotone ? std::min(total_pairs, vy.ring_pairs + 1) : total_pairs;
  const int64_t pair_len = 2 * static_cast<int64_t>(out_w);
  s.ring.resize(static_cast<size_t>(3 * slots * pair_len));
  s.pair_rows.resize(static_cast<size_t>(vy.ring_pairs));
  auto pair_row = [&](int c, int p) {
    return s.ring.data() + (static_cast<int64_t>(c) * slots + p % slots) * pair_len;
  };

  // each planar source row is followed by zeros the SIMD horizontal pass may read past its end
  const int row_stride = ncols + hx.taps_padded + 32;
  s.row.assign(static_cast<size_t>(row_stride) * 6, 0);
  const uint8_t* srows[6];
  for (int i = 0; i < 6; ++i) srows[i] = s.row.data() + static_cast<int64_t>(i) * row_stride;
  const HPassTables ht = hpass_tables(hx);
  auto produce = [&](int p) {
    uint8_t* rgb[6];
    for (int i = 0; i < 6; ++i) rgb[i] = s.row.data() + static_cast<int64_t>(i) * row_stride;
    const int y = row0 + 2 * p;
    const int rows = std::min(2, row1 - y);
    convert_rows(kern, src, cc, box.y + y, rows, box.x + col0, ncols, rgb);
    if (rows == 1) {  // odd row count: the pair's second row is never weighted; keep it zero
      for (int c = 3; c < 6; ++c) std::memset(rgb[c], 0, ncols);
    }
    int16_t* dst[3] = {pair_row(0, p), pair_row(1, p), pair_row(2, p)};
    if (hx.identity) {
      for (int c = 0; c < 3; ++c) {
        for (int x = 0; x < out_w; ++x) {
          dst[c][2 * x] = srows[c][x];
          dst[c][2 * x + 1] = srows[3 + c][x];
        }
      }
    } else {
      horizontal2(kern, hx, ht, srows, col0, dst);
    }
  };

  int next_pair = 0;
  for (int oy = 0; oy < out_h; ++oy) {
    const int p0 = vy.identity ? oy >> 1 : vy.pair_first[oy];
    const int pairs = vy.identity ? 1 : vy.pair_count[oy];
    for (; next_pair < p0 + pairs; ++next_pair) produce(next_pair);
    start_row(oy);
    for (int c = 0; c < 3; ++c) {
      if (vy.identity) {
        const int16_t* pr = pair_row(c, p0) + (oy & 1);
        for (int x = 0; x < out_w; ++x) lines[c][x] = static_cast<uint8_t>(pr[2 * x]);
        continue;
      }
      for (int k = 0; k < pairs; ++k) s.pair_rows[k] = pair_row(c, p0 + k);
      vertical(kern, vy.pair_weights.data() + static_cast<int64_t>(oy) * vy.pair_stride, s.pair_rows.data(), pairs,
               vy.precision, out_w, lines[c]);
    }
    finish_row(oy);
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
