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
  std::vector<uint8_t> row;    // 3 planar rows of the source columns read
  std::vector<uint8_t> inter;  // 3 planes: rows read x out_w (after the horizontal pass)
  std::vector<uint8_t> line;   // 3 planar rows of the final uint8 output row
  std::vector<int32_t> acc;    // out_w accumulators
  std::vector<float> norm;     // one normalized row (Qwen layout)
  std::vector<int64_t> dst;    // per patch column: offset of its Qwen row (Qwen layout)
};

thread_local Scratch tls_scratch;

// Source row `sy`, columns [x0, x0 + n) of the frame, to planar R, G, B.
void convert_row(const RowKernels* kern, const Frame& f, const px::ColorCoeffs& cc, int sy, int x0, int n,
                 uint8_t* __restrict r, uint8_t* __restrict g, uint8_t* __restrict b) {
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
      if (kern) i += kern->yuv_row(cc, yp, up, vp, cstep, x0 + i, n - i, r + i, g + i, b + i);
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

// Horizontal pass of three planar rows (R, G, B share the weights): src rows hold columns
// [col0, ...) of the crop and are readable `taps_padded` + 32 bytes past their end.
void horizontal3(const RowKernels* kern, const ResampleAxis& ax, const HPassTables& t, const uint8_t* const src[3],
                 int col0, uint8_t* const dst[3]) {
  int ox = kern ? kern->horizontal3(t, src, col0, dst) : 0;
  const int16_t* w = ax.weights.data();
  for (; ox < ax.out_size; ++ox) {
    const int off = ax.first[ox] - col0;
    const int16_t* wk = w + static_cast<int64_t>(ox) * ax.taps;
    for (int c = 0; c < 3; ++c) dst[c][ox] = px::convolve_u8(src[c] + off, 1, wk, ax.count[ox], ax.precision);
  }
}

// Vertical pass for one output row of one plane: rows are `row_stride` apart in `src`.
void vertical(const RowKernels* kern, const ResampleAxis& ax, int oy, const uint8_t* __restrict src,
              int64_t row_stride, int width, int row0, int32_t* __restrict acc, uint8_t* __restrict dst) {
  const int prec = ax.precision;
  const int32_t init = 1 << (prec - 1);
  const int16_t* wk = ax.weights.data() + static_cast<int64_t>(oy) * ax.taps;
  const uint8_t* base = src + static_cast<int64_t>(ax.first[oy] - row0) * row_stride;
  const int n = ax.count[oy];
  const int x = kern ? kern->vertical(wk, n, prec, base, row_stride, width, dst) : 0;
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

// (x - mean) / std of a uint8 row into float32: the SIMD kernel does the same two IEEE
// operations as px::normalize_u8; the tail reads the level table built from it.
void normalize_row_f32(const RowKernels* kern, const uint8_t* __restrict s, int n, const float* table, float mean,
                       float sd, float* __restrict out) {
  int x = kern ? kern->normalize_f32(s, n, mean, sd, out) : 0;
  for (; x < n; ++x) out[x] = table[s[x]];
}

// Writes one final uint8 RGB row (planar) into the output slot.
template <typename T>
void write_row_float(const RowKernels* kern, const TransformSpec& spec, const LevelTable<T>& lut,
                     const uint8_t* const planes[3], int oy, int width, void* out, int64_t slot) {
  T* o = static_cast<T*>(out);
  const int height = spec.out_h;
  if constexpr (std::is_same_v<T, float>) {
    if (spec.layout != Layout::kNHWC) {
      // normalize whole rows with SIMD, then copy patch-wide runs (Qwen) or the row (NCHW)
      Scratch& s = tls_scratch;
      const int64_t plane = static_cast<int64_t>(height) * width;
      const px::QwenGeometry& g = spec.qwen;
      const int64_t rw = px::qwen_row_width(g);
      const int patches = spec.layout == Layout::kQwen ? width / g.patch : 0;
      if (patches) {
        s.norm.resize(static_cast<size_t>(width));
        s.dst.resize(static_cast<size_t>(patches));
        for (int p = 0; p < patches; ++p) s.dst[p] = px::qwen_row(g, slot, oy, p * g.patch) * rw;
      }
      for (int c = 0; c < 3; ++c) {
        const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
        if (spec.layout == Layout::kNCHW) {
          normalize_row_f32(kern, planes[c], width, lut.v[c], m, sd,
                            o + (slot * 3 + c) * plane + static_cast<int64_t>(oy) * width);
          continue;
        }
        normalize_row_f32(kern, planes[c], width, lut.v[c], m, sd, s.norm.data());
        const int64_t col = px::qwen_col(g, slot, c, oy, 0);  // the same for every patch of the row
        const float* src = s.norm.data();
        if (g.patch == 14) {
          for (int p = 0; p < patches; ++p) std::memcpy(o + s.dst[p] + col, src + 14 * p, sizeof(float) * 14);
        } else {
          for (int p = 0; p < patches; ++p) {
            std::memcpy(o + s.dst[p] + col, src + g.patch * p, sizeof(float) * g.patch);
          }
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

void write_row(const RowKernels* kern, const TransformSpec& spec, const void* lut, const uint8_t* const planes[3], int oy, int width,
               void* out, int64_t slot) {
  if (spec.dtype == DType::kF32) {
    return write_row_float<float>(kern, spec, *static_cast<const LevelTable<float>*>(lut), planes, oy, width, out, slot);
  }
  if (spec.dtype == DType::kF16) {
    return write_row_float<uint16_t>(kern, spec, *static_cast<const LevelTable<uint16_t>*>(lut), planes, oy, width, out,
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
  // each planar row is followed by zeros the SIMD horizontal pass may read past its end
  const int row_stride = ncols + hx.taps_padded + 32;
  s.row.assign(static_cast<size_t>(row_stride) * 3, 0);
  s.inter.resize(static_cast<size_t>(nrows) * out_w * 3);
  s.line.resize(static_cast<size_t>(out_w) * 3);
  s.acc.resize(out_w);
  const int64_t inter_plane = static_cast<int64_t>(nrows) * out_w;

  const RowKernels* kern = active_row_kernels();
  const HPassTables ht = hpass_tables(hx);
  const px::ColorCoeffs cc = px::make_color_coeffs(static_cast<int>(src.matrix), src.range == ColorRange::kFull);
  uint8_t* rr = s.row.data();
  uint8_t* rg = rr + row_stride;
  uint8_t* rb = rg + row_stride;
  const uint8_t* const rows[3] = {rr, rg, rb};
  for (int y = row0; y < row1; ++y) {
    convert_row(kern, src, cc, box.y + y, box.x + col0, ncols, rr, rg, rb);
    uint8_t* dst[3];
    for (int c = 0; c < 3; ++c) dst[c] = s.inter.data() + c * inter_plane + static_cast<int64_t>(y - row0) * out_w;
    if (hx.identity) {
      std::memcpy(dst[0], rr, out_w);
      std::memcpy(dst[1], rg, out_w);
      std::memcpy(dst[2], rb, out_w);
    } else {
      horizontal3(kern, hx, ht, rows, col0, dst);
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
        vertical(kern, vy, oy, s.inter.data() + c * inter_plane, out_w, out_w, row0, s.acc.data(), line);
        planes[c] = line;
      }
    }
    write_row(kern, spec, lut, planes, oy, out_w, out, slot);
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
