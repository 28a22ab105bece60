// Per-pixel math shared by the CPU loops (transform_cpu.cpp) and the CUDA kernels.
// Everything here is a pure inline function marked MSCE_HD, so the CPU tests validate
// exactly the arithmetic the GPU runs. Integer arithmetic is used wherever a result
// must be bit-identical across compilers and devices.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define MSCE_HD __host__ __device__ __forceinline__
#else
#define MSCE_HD inline
#endif

namespace msce {
namespace px {

// ---- colour conversion -------------------------------------------------------------
// Y'CbCr -> R'G'B' with the integer arithmetic of FFmpeg's default (SIMD) yuv->rgb path,
// so frames equal what PyAV / torchcodec / decord hand to the HF processors:
//   y = (8*Y - y_off) * y_coeff >> 16                (13-bit coefficients, floor)
//   u = 8*U - 1024,  v = 8*V - 1024
//   R = y + (v*vr >> 16),  G = y + (u*ug >> 16) + (v*vg >> 16),  B = y + (u*ub >> 16)
// then clamped to 0..255. The 16.16 matrix constants are FFmpeg's published tables
// (BT.601, BT.709, BT.2020); limited range scales luma by 255/219 and offsets it by 16,
// full range scales chroma by 224/255.
struct ColorCoeffs {
  int32_t y_off;
  int32_t y_coeff;
  int32_t vr;
  int32_t ub;
  int32_t ug;
  int32_t vg;
};

MSCE_HD int32_t round_to_int16(int64_t v) { return static_cast<int32_t>((v + (1 << 15)) >> 16); }

// matrix: 0 = BT.601, 1 = BT.709, 2 = BT.2020 (non-constant luminance); full = full range.
MSCE_HD ColorCoeffs make_color_coeffs(int matrix, bool full) {
  // {crv, cbu, cgu, cgv} in 16.16 fixed point
  int64_t crv = 104597, cbu = 132201, cgu = 25675, cgv = 53279;
  if (matrix == 1) {
    crv = 117489; cbu = 138438; cgu = 13975; cgv = 34925;
  } else if (matrix == 2) {
    crv = 110013; cbu = 140363; cgu = 12277; cgv = 42626;
  }
  int64_t cy = 1 << 16, oy = 0;
  if (!full) {
    cy = (cy * 255) / 219;
    oy = int64_t{16} << 16;
  } else {
    crv = (crv * 224) / 255;
    cbu = (cbu * 224) / 255;
    cgu = (cgu * 224) / 255;
    cgv = (cgv * 224) / 255;
  }
  ColorCoeffs c;
  c.y_off = round_to_int16(oy * 8);
  c.y_coeff = round_to_int16(cy * 8192);
  c.vr = round_to_int16(crv * 8192);
  c.ub = round_to_int16(cbu * 8192);
  c.ug = round_to_int16(-cgu * 8192);
  c.vg = round_to_int16(-cgv * 8192);
  return c;
}

MSCE_HD uint8_t clamp_u8(int32_t v) { return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v)); }

MSCE_HD void yuv_to_rgb(const ColorCoeffs& c, int32_t y, int32_t u, int32_t v, uint8_t* rgb) {
  const int32_t yy = ((8 * y - c.y_off) * c.y_coeff) >> 16;
  const int32_t du = 8 * u - 1024;
  const int32_t dv = 8 * v - 1024;
  rgb[0] = clamp_u8(yy + ((dv * c.vr) >> 16));
  rgb[1] = clamp_u8(yy + ((du * c.ug) >> 16) + ((dv * c.vg) >> 16));
  rgb[2] = clamp_u8(yy + ((du * c.ub) >> 16));
}

// ---- resampling ----------------------------------------------------------------------
// Filters as torch's antialiased interpolate evaluates them (PIL's support convention).
// Bicubic uses the Keys kernel with a = -0.5.
MSCE_HD double cubic_filter(double x) {
  const double a = -0.5;
  x = x < 0 ? -x : x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

MSCE_HD double linear_filter(double x) {
  x = x < 0 ? -x : x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Lanczos with 3 lobes: sinc(x) * sinc(x / 3) on [-3, 3), 0 outside, sinc(0) = 1.
MSCE_HD double sinc(double x) {
  if (x == 0.0) return 1.0;
  const double t = x * 3.14159265358979323846;
  return sin(t) / t;
}

MSCE_HD double lanczos_filter(double x) {
  return (x >= -3.0 && x < 3.0) ? sinc(x) * sinc(x / 3.0) : 0.0;
}

// One output sample of a separable fixed-point pass: sum of n taps (int16 weights at
// `precision` bits) over source samples `stride` bytes apart, rounded, clamped to uint8.
MSCE_HD uint8_t convolve_u8(const uint8_t* src, int stride, const int16_t* w, int n, int precision) {
  int32_t acc = 1 << (precision - 1);
  for (int k = 0; k < n; ++k) acc += static_cast<int32_t>(w[k]) * static_cast<int32_t>(src[k * stride]);
  return clamp_u8(acc >> precision);
}

// ---- normalization ---------------------------------------------------------------------
// HF's fused rescale+normalize: mean' = mean/scale and std' = std/scale in float32, then
// (x - mean') / std' in float32 (subtract, then divide: the same two roundings).
MSCE_HD float normalize_u8(uint8_t v, float mean_scaled, float std_scaled) {
  return (static_cast<float>(v) - mean_scaled) / std_scaled;
}

// ---- Qwen-VL patch layout ----------------------------------------------------------------
// pixel_values_videos row/column of pixel (t, c, y, x) of a (T, C, H, W) clip, with patch p,
// temporal patch tp and spatial merge m, equal to HF's
// view(gt, tp, C, gh/m, m, p, gw/m, m, p).permute(0, 3, 6, 4, 7, 2, 1, 5, 8).
struct QwenGeometry {
  int32_t patch;
  int32_t temporal;
  int32_t merge;
  int32_t grid_h;  // H / patch
  int32_t grid_w;  // W / patch
  int32_t channels;
};

MSCE_HD int64_t qwen_row(const QwenGeometry& g, int64_t t, int32_t y, int32_t x) {
  const int64_t gt = t / g.temporal;
  const int32_t py = y / g.patch, px_ = x / g.patch;
  const int32_t hb = py / g.merge, mh = py % g.merge;
  const int32_t wb = px_ / g.merge, mw = px_ % g.merge;
  const int64_t blocks_w = g.grid_w / g.merge;
  const int64_t blocks_h = g.grid_h / g.merge;
  return (((gt * blocks_h + hb) * blocks_w + wb) * g.merge + mh) * g.merge + mw;
}

MSCE_HD int64_t qwen_col(const QwenGeometry& g, int64_t t, int32_t c, int32_t y, int32_t x) {
  const int32_t ti = static_cast<int32_t>(t % g.temporal);
  return ((static_cast<int64_t>(c) * g.temporal + ti) * g.patch + (y % g.patch)) * g.patch + (x % g.patch);
}

MSCE_HD int64_t qwen_row_width(const QwenGeometry& g) {
  return static_cast<int64_t>(g.channels) * g.temporal * g.patch * g.patch;
}

}  // namespace px
}  // namespace msce
