// Per-element bodies of the GPU transform, over the same pixel_math.hpp functions as the
// CPU loop (transform_cpu.cpp). One frame is described by a FrameDesc; its three passes
// are flat index spaces:
//   convert   i in [0, v.n * h.n)     source pixel -> planar RGB (only the rows/cols read)
//   hpass     i in [0, v.n * h.out)   horizontal taps -> uint8 intermediate
//   vpass     i in [0, v.out * h.out) vertical taps -> uint8 -> normalize -> target layout
// transform_cuda.cu runs them as grid-stride kernels; transform_emulate.cpp runs them in
// plain host loops so the CPU test suite checks the kernels' indexing, not just the math.
#pragma once

#include <cstdint>

#include "pixel/pixel_math.hpp"
#include "pixel/transform.hpp"

namespace msce {
namespace gpu {

// One resampling axis as the kernels see it (tables in device memory, or host memory for
// the emulator). lo/n: the source samples the pass reads, relative to the crop box.
struct AxisDesc {
  const int32_t* first;
  const int32_t* count;
  const int16_t* weights;
  int32_t taps;
  int32_t precision;
  int32_t identity;
  int32_t lo;
  int32_t n;
  int32_t out;
};

struct FrameDesc {
  // source planes: Y,U,V | Y,UV | RGB (PixelLayout)
  const uint8_t* plane[3];
  int64_t pitch[3];
  int32_t src_layout;
  px::ColorCoeffs cc;
  int32_t x0;  // absolute column of the first source sample read (box.x + h.lo)
  int32_t y0;  // absolute row of the first source row read (box.y + v.lo)
  AxisDesc h;
  AxisDesc v;
  uint8_t* rgb;    // 3 planes of v.n x h.n
  uint8_t* inter;  // 3 planes of v.n x h.out (== rgb when h.identity)
  // output
  void* out;
  int64_t slot;
  int32_t layout;  // Layout
  int32_t dtype;   // DType
  int32_t normalize;
  float mean[3];
  float std[3];
  px::QwenGeometry qwen;
};

MSCE_HD int64_t convert_count(const FrameDesc& d) { return static_cast<int64_t>(d.v.n) * d.h.n; }
MSCE_HD int64_t hpass_count(const FrameDesc& d) {
  return d.h.identity ? 0 : static_cast<int64_t>(d.v.n) * d.h.out;
}
MSCE_HD int64_t vpass_count(const FrameDesc& d) { return static_cast<int64_t>(d.v.out) * d.h.out; }

// Source pixel (row y, col x of the rows/cols read) -> planar RGB, as convert_row does.
MSCE_HD void convert_element(const FrameDesc& d, int64_t i) {
  const int32_t k = static_cast<int32_t>(i);  // plan_frame keeps every pass below 2^31 elements
  const int32_t y = k / d.h.n;
  const int32_t x = k - y * d.h.n;
  const int32_t sy = d.y0 + y;
  const int32_t sx = d.x0 + x;
  uint8_t rgb[3];
  if (d.src_layout == static_cast<int32_t>(PixelLayout::kRGB24)) {
    const uint8_t* p = d.plane[0] + sy * d.pitch[0] + 3 * static_cast<int64_t>(sx);
    rgb[0] = p[0];
    rgb[1] = p[1];
    rgb[2] = p[2];
  } else if (d.src_layout == static_cast<int32_t>(PixelLayout::kNV12)) {
    const uint8_t* uv = d.plane[1] + (sy >> 1) * d.pitch[1] + (sx >> 1) * 2;
    px::yuv_to_rgb(d.cc, d.plane[0][sy * d.pitch[0] + sx], uv[0], uv[1], rgb);
  } else {
    const int64_t c = (sy >> 1);
    px::yuv_to_rgb(d.cc, d.plane[0][sy * d.pitch[0] + sx], d.plane[1][c * d.pitch[1] + (sx >> 1)],
                   d.plane[2][c * d.pitch[2] + (sx >> 1)], rgb);
  }
  const int64_t plane = convert_count(d);
  const int64_t at = static_cast<int64_t>(y) * d.h.n + x;
  d.rgb[at] = rgb[0];
  d.rgb[plane + at] = rgb[1];
  d.rgb[2 * plane + at] = rgb[2];
}

// Horizontal pass of one intermediate sample (all three channels).
MSCE_HD void hpass_element(const FrameDesc& d, int64_t i) {
  const int32_t k = static_cast<int32_t>(i);
  const int32_t y = k / d.h.out;
  const int32_t ox = k - y * d.h.out;
  const int64_t src_plane = convert_count(d);
  const int64_t dst_plane = static_cast<int64_t>(d.v.n) * d.h.out;
  const int16_t* w = d.h.weights + static_cast<int64_t>(ox) * d.h.taps;
  const uint8_t* s = d.rgb + static_cast<int64_t>(y) * d.h.n + (d.h.first[ox] - d.h.lo);
  const int64_t at = static_cast<int64_t>(y) * d.h.out + ox;
  for (int c = 0; c < 3; ++c) {
    d.inter[c * dst_plane + at] = px::convolve_u8(s + c * src_plane, 1, w, d.h.count[ox], d.h.precision);
  }
}

// Writes the final uint8 RGB of output pixel (oy, ox) into the target layout, with the
// same normalize_u8 arithmetic as transform_cpu.cpp's write_row.
template <typename T>
MSCE_HD void store_float(const FrameDesc& d, int32_t oy, int32_t ox, const uint8_t* v) {
  T* o = static_cast<T*>(d.out);
  if (d.layout == static_cast<int32_t>(Layout::kQwen)) {
    const int64_t row = px::qwen_row(d.qwen, d.slot, oy, ox) * px::qwen_row_width(d.qwen);
    for (int c = 0; c < 3; ++c) {
      o[row + px::qwen_col(d.qwen, d.slot, c, oy, ox)] = to_out<T>(px::normalize_u8(v[c], d.mean[c], d.std[c]));
    }
    return;
  }
  const int64_t plane = static_cast<int64_t>(d.v.out) * d.h.out;
  const int64_t at = static_cast<int64_t>(oy) * d.h.out + ox;
  for (int c = 0; c < 3; ++c) {
    const float m = d.normalize ? d.mean[c] : 0.f;
    const float sd = d.normalize ? d.std[c] : 1.f;
    const T value = to_out<T>(px::normalize_u8(v[c], m, sd));
    if (d.layout == static_cast<int32_t>(Layout::kNCHW)) {
      o[(d.slot * 3 + c) * plane + at] = value;
    } else {
      o[(d.slot * plane + at) * 3 + c] = value;
    }
  }
}

MSCE_HD void store_u8(const FrameDesc& d, int32_t oy, int32_t ox, const uint8_t* v) {
  uint8_t* o = static_cast<uint8_t*>(d.out);
  const int64_t plane = static_cast<int64_t>(d.v.out) * d.h.out;
  const int64_t at = static_cast<int64_t>(oy) * d.h.out + ox;
  for (int c = 0; c < 3; ++c) {
    if (d.layout == static_cast<int32_t>(Layout::kNCHW)) {
      o[(d.slot * 3 + c) * plane + at] = v[c];
    } else {
      o[(d.slot * plane + at) * 3 + c] = v[c];
    }
  }
}

// Vertical pass of one output pixel, then normalize and scatter into the target layout.
MSCE_HD void vpass_element(const FrameDesc& d, int64_t i) {
  const int32_t k = static_cast<int32_t>(i);
  const int32_t oy = k / d.h.out;
  const int32_t ox = k - oy * d.h.out;
  const int64_t plane = static_cast<int64_t>(d.v.n) * d.h.out;
  uint8_t v[3];
  if (d.v.identity) {
    const int64_t at = static_cast<int64_t>(oy) * d.h.out + ox;
    for (int c = 0; c < 3; ++c) v[c] = d.inter[c * plane + at];
  } else {
    const int16_t* w = d.v.weights + static_cast<int64_t>(oy) * d.v.taps;
    const uint8_t* s = d.inter + static_cast<int64_t>(d.v.first[oy] - d.v.lo) * d.h.out + ox;
    for (int c = 0; c < 3; ++c) {
      v[c] = px::convolve_u8(s + c * plane, d.h.out, w, d.v.count[oy], d.v.precision);
    }
  }
  if (d.dtype == static_cast<int32_t>(DType::kU8)) {
    store_u8(d, oy, ox, v);
  } else if (d.dtype == static_cast<int32_t>(DType::kF16)) {
    store_float<uint16_t>(d, oy, ox, v);
  } else if (d.dtype == static_cast<int32_t>(DType::kBF16)) {
    store_float<BF16Bits>(d, oy, ox, v);
  } else {
    store_float<float>(d, oy, ox, v);
  }
}

}  // namespace gpu
}  // namespace msce
