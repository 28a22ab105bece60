// CPU loop of the fused transform. Per frame: convert only the source rows and columns
// the resampler reads to planar RGB, run the horizontal pass into a uint8 intermediate
// (as torch does: horizontal first, each pass rounded and clamped to uint8), run the
// vertical pass, then normalize and scatter into the target layout. All arithmetic is
// in pixel_math.hpp; the loops here are arranged so the compiler vectorizes them.
#include <algorithm>
#include <cstring>
#include <string>

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

// Source row `sy`, columns [x0, x0 + n) of the frame, to planar R, G, B.
void convert_row(const Frame& f, const px::ColorCoeffs& cc, int sy, int x0, int n, uint8_t* r, uint8_t* g,
                 uint8_t* b) {
  uint8_t rgb[3];
  switch (f.layout) {
    case PixelLayout::kYUV420P: {
      const uint8_t* yp = f.data[0] + static_cast<int64_t>(sy) * f.linesize[0];
      const uint8_t* up = f.data[1] + static_cast<int64_t>(sy >> 1) * f.linesize[1];
      const uint8_t* vp = f.data[2] + static_cast<int64_t>(sy >> 1) * f.linesize[2];
      for (int i = 0; i < n; ++i) {
        const int x = x0 + i;
        px::yuv_to_rgb(cc, yp[x], up[x >> 1], vp[x >> 1], rgb);
        r[i] = rgb[0];
        g[i] = rgb[1];
        b[i] = rgb[2];
      }
      break;
    }
    case PixelLayout::kNV12: {
      const uint8_t* yp = f.data[0] + static_cast<int64_t>(sy) * f.linesize[0];
      const uint8_t* uv = f.data[1] + static_cast<int64_t>(sy >> 1) * f.linesize[1];
      for (int i = 0; i < n; ++i) {
        const int x = x0 + i;
        px::yuv_to_rgb(cc, yp[x], uv[(x >> 1) * 2], uv[(x >> 1) * 2 + 1], rgb);
        r[i] = rgb[0];
        g[i] = rgb[1];
        b[i] = rgb[2];
      }
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

// Horizontal pass of one planar row: src holds columns [col0, ...) of the crop.
void horizontal(const ResampleAxis& ax, const uint8_t* src, int col0, uint8_t* dst) {
  const int prec = ax.precision;
  const int16_t* w = ax.weights.data();
  for (int ox = 0; ox < ax.out_size; ++ox) {
    const uint8_t* s = src + (ax.first[ox] - col0);
    const int16_t* wk = w + static_cast<int64_t>(ox) * ax.taps;
    dst[ox] = px::convolve_u8(s, 1, wk, ax.count[ox], prec);
  }
}

// Vertical pass for one output row of one plane: rows are `row_stride` apart in `src`.
void vertical(const ResampleAxis& ax, int oy, const uint8_t* src, int64_t row_stride, int width, int row0,
              int32_t* acc, uint8_t* dst) {
  const int prec = ax.precision;
  const int32_t init = 1 << (prec - 1);
  for (int x = 0; x < width; ++x) acc[x] = init;
  const int16_t* wk = ax.weights.data() + static_cast<int64_t>(oy) * ax.taps;
  const uint8_t* base = src + static_cast<int64_t>(ax.first[oy] - row0) * row_stride;
  for (int k = 0; k < ax.count[oy]; ++k) {
    const int32_t wv = wk[k];
    const uint8_t* s = base + k * row_stride;
    for (int x = 0; x < width; ++x) acc[x] += wv * static_cast<int32_t>(s[x]);
  }
  for (int x = 0; x < width; ++x) dst[x] = px::clamp_u8(acc[x] >> prec);
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

// Writes one final uint8 RGB row (planar) into the output slot.
template <typename T>
void write_row_float(const TransformSpec& spec, const uint8_t* const planes[3], int oy, int width, void* out,
                     int64_t slot) {
  T* o = static_cast<T*>(out);
  const int height = spec.out_h;
  if (spec.layout == Layout::kQwen) {
    const px::QwenGeometry& g = spec.qwen;
    const int64_t rw = px::qwen_row_width(g);
    for (int x0 = 0; x0 < width; x0 += g.patch) {
      const int64_t row = px::qwen_row(g, slot, oy, x0);
      for (int c = 0; c < 3; ++c) {
        T* dst = o + row * rw + px::qwen_col(g, slot, c, oy, x0);
        const uint8_t* s = planes[c] + x0;
        const float m = spec.mean[c], sd = spec.std[c];
        for (int i = 0; i < g.patch; ++i) dst[i] = convert_value<T>(px::normalize_u8(s[i], m, sd));
      }
    }
    return;
  }
  const int64_t plane = static_cast<int64_t>(height) * width;
  if (spec.layout == Layout::kNCHW) {
    for (int c = 0; c < 3; ++c) {
      T* dst = o + (slot * 3 + c) * plane + static_cast<int64_t>(oy) * width;
      const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
      for (int x = 0; x < width; ++x) dst[x] = convert_value<T>(px::normalize_u8(planes[c][x], m, sd));
    }
  } else {
    T* dst = o + slot * plane * 3 + static_cast<int64_t>(oy) * width * 3;
    for (int c = 0; c < 3; ++c) {
      const float m = spec.normalize ? spec.mean[c] : 0.f, sd = spec.normalize ? spec.std[c] : 1.f;
      for (int x = 0; x < width; ++x) dst[3 * x + c] = convert_value<T>(px::normalize_u8(planes[c][x], m, sd));
    }
  }
}

void write_row(const TransformSpec& spec, const uint8_t* const planes[3], int oy, int width, void* out,
               int64_t slot) {
  if (spec.dtype == DType::kF32) return write_row_float<float>(spec, planes, oy, width, out, slot);
  if (spec.dtype == DType::kF16) return write_row_float<uint16_t>(spec, planes, oy, width, out, slot);
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
  s.row.resize(static_cast<size_t>(ncols) * 3);
  s.inter.resize(static_cast<size_t>(nrows) * out_w * 3);
  s.line.resize(static_cast<size_t>(out_w) * 3);
  s.acc.resize(out_w);
  const int64_t inter_plane = static_cast<int64_t>(nrows) * out_w;

  const px::ColorCoeffs cc = px::make_color_coeffs(static_cast<int>(src.matrix), src.range == ColorRange::kFull);
  uint8_t* rr = s.row.data();
  uint8_t* rg = rr + ncols;
  uint8_t* rb = rg + ncols;
  for (int y = row0; y < row1; ++y) {
    convert_row(src, cc, box.y + y, box.x + col0, ncols, rr, rg, rb);
    uint8_t* dst[3];
    for (int c = 0; c < 3; ++c) dst[c] = s.inter.data() + c * inter_plane + static_cast<int64_t>(y - row0) * out_w;
    if (hx.identity) {
      std::memcpy(dst[0], rr, out_w);
      std::memcpy(dst[1], rg, out_w);
      std::memcpy(dst[2], rb, out_w);
    } else {
      horizontal(hx, rr, col0, dst[0]);
      horizontal(hx, rg, col0, dst[1]);
      horizontal(hx, rb, col0, dst[2]);
    }
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
    write_row(spec, planes, oy, out_w, out, slot);
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
