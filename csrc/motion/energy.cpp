#include "motion/energy.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <exception>
#include <string>
#include <thread>

#include "common/cpus.hpp"
#include "common/error.hpp"

namespace msce {

namespace {

// Four floats in one register (GCC/Clang vector extension: SSE on x86-64, NEON on arm64).
// The loops below process four pixels per step and reduce in a fixed order, so a result
// does not depend on where a row starts or on the thread that computes it.
typedef float f4 __attribute__((vector_size(16)));
typedef int32_t i4 __attribute__((vector_size(16)));

inline f4 load4(const float* p) {
  f4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store4(float* p, f4 v) { std::memcpy(p, &v, sizeof v); }
inline f4 splat(float x) { return f4{x, x, x, x}; }
inline float hsum(f4 v) { return (v[0] + v[1]) + (v[2] + v[3]); }
#if defined(__clang__)
#define MSCE_SHUFFLE4(a, b, i, j, k, l) __builtin_shufflevector(a, b, i, j, k, l)
#else
#define MSCE_SHUFFLE4(a, b, i, j, k, l) __builtin_shuffle(a, b, i4{i, j, k, l})
#endif
// m[r][c] -> m[c][r]
inline void transpose4(f4 m[4]) {
  const f4 t0 = MSCE_SHUFFLE4(m[0], m[1], 0, 4, 1, 5), t1 = MSCE_SHUFFLE4(m[0], m[1], 2, 6, 3, 7);
  const f4 t2 = MSCE_SHUFFLE4(m[2], m[3], 0, 4, 1, 5), t3 = MSCE_SHUFFLE4(m[2], m[3], 2, 6, 3, 7);
  m[0] = MSCE_SHUFFLE4(t0, t2, 0, 1, 4, 5);
  m[1] = MSCE_SHUFFLE4(t0, t2, 2, 3, 6, 7);
  m[2] = MSCE_SHUFFLE4(t1, t3, 0, 1, 4, 5);
  m[3] = MSCE_SHUFFLE4(t1, t3, 2, 3, 6, 7);
}

// Luma, 5-tap binomial blur (edges clamped), then zero mean / unit variance.
void prepare(const uint8_t* src, int h, int w, int channels, std::vector<float>& out, std::vector<float>& tmp) {
  const int64_t n = static_cast<int64_t>(h) * w;
  out.resize(n);
  tmp.resize(n);
  if (channels == 3) {
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = src + 3 * i;
      out[i] = static_cast<float>(77 * p[0] + 150 * p[1] + 29 * p[2]) * (1.0f / 256.0f);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(src[i]);
  }
  static constexpr float k[5] = {1.0f / 16, 4.0f / 16, 6.0f / 16, 4.0f / 16, 1.0f / 16};
  for (int y = 0; y < h; ++y) {
    const float* row = out.data() + static_cast<int64_t>(y) * w;
    float* dst = tmp.data() + static_cast<int64_t>(y) * w;
    auto clamped = [&](int x) {
      float s = 0.0f;
      for (int d = -2; d <= 2; ++d) s += k[d + 2] * row[std::clamp(x + d, 0, w - 1)];
      dst[x] = s;
    };
    const int lo = std::min(2, w), hi = std::max(lo, w - 2);
    for (int x = 0; x < lo; ++x) clamped(x);
    for (int x = lo; x < hi; ++x) {
      dst[x] = k[0] * row[x - 2] + k[1] * row[x - 1] + k[2] * row[x] + k[3] * row[x + 1] + k[4] * row[x + 2];
    }
    for (int x = hi; x < w; ++x) clamped(x);
  }
  double sum = 0.0, sum2 = 0.0;
  for (int y = 0; y < h; ++y) {
    const float* r[5];
    for (int d = -2; d <= 2; ++d) r[d + 2] = tmp.data() + static_cast<int64_t>(std::clamp(y + d, 0, h - 1)) * w;
    float* dst = out.data() + static_cast<int64_t>(y) * w;
    for (int x = 0; x < w; ++x) dst[x] = k[0] * r[0][x] + k[1] * r[1][x] + k[2] * r[2][x] + k[3] * r[3][x] + k[4] * r[4][x];
    // row sums in float (a row's values are 0..255), the frame's in double
    f4 s = splat(0.0f), s2 = splat(0.0f);
    int x = 0;
    for (; x + 4 <= w; x += 4) {
      const f4 v = load4(dst + x);
      s += v;
      s2 += v * v;
    }
    float ts = hsum(s), ts2 = hsum(s2);
    for (; x < w; ++x) {
      ts += dst[x];
      ts2 += dst[x] * dst[x];
    }
    sum += ts;
    sum2 += ts2;
  }
  const double mean = sum / static_cast<double>(n);
  const double var = std::max(0.0, sum2 / static_cast<double>(n) - mean * mean);
  const float inv = var > 1e-12 ? static_cast<float>(1.0 / std::sqrt(var)) : 1.0f;
  const float m = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) out[i] = (out[i] - m) * inv;
}

// Sum of |a - b| over h rows of w values (a row in four float running sums, rows in double).
double abs_diff_sum(const float* a, const float* b, int h, int w) {
  double total = 0.0;
  for (int y = 0; y < h; ++y, a += w, b += w) {
    f4 s = splat(0.0f);
    int x = 0;
    for (; x + 4 <= w; x += 4) {
      const f4 d = load4(a + x) - load4(b + x);
      s += d < 0 ? -d : d;
    }
    float row = hsum(s);
    for (; x < w; ++x) row += std::fabs(a[x] - b[x]);
    total += row;
  }
  return total;
}

// 2x2 box average (odd last row/column dropped).
void halve(const std::vector<float>& src, int h, int w, std::vector<float>& dst) {
  const int dh = h / 2, dw = w / 2;
  dst.resize(static_cast<size_t>(dh) * dw);
  for (int y = 0; y < dh; ++y) {
    const float* r0 = src.data() + static_cast<int64_t>(2 * y) * w;
    const float* r1 = r0 + w;
    for (int x = 0; x < dw; ++x) dst[static_cast<size_t>(y) * dw + x] = 0.25f * (r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]);
  }
}

// Affine motion field in pixels, over coordinates normalized to [-1, 1] about the centre:
// g(x) = (p[0] + p[1] cx + p[2] cy, p[3] + p[4] cx + p[5] cy).
struct Affine {
  double p[6] = {0, 0, 0, 0, 0, 0};
  double gx(double cx, double cy) const { return p[0] + p[1] * cx + p[2] * cy; }
  double gy(double cx, double cy) const { return p[3] + p[4] * cx + p[5] * cy; }
  Affine scaled(double s) const {
    Affine a;
    for (int i = 0; i < 6; ++i) a.p[i] = p[i] * s;
    return a;
  }
};

// Catmull-Rom weights of taps 0..3 for samples at fractions f past tap 1 (one sample per lane).
inline void cubic_weights(f4 f, f4 w[4]) {
  const f4 f2 = f * f, f3 = f2 * f;
  w[0] = 0.5f * (2.0f * f2 - f3 - f);
  w[1] = 0.5f * (3.0f * f3 - 5.0f * f2 + 2.0f);
  w[2] = 0.5f * (4.0f * f2 - 3.0f * f3 + f);
  w[3] = 0.5f * (f3 - f2);
}

// The frame with its edge pixels repeated kPad times on every side (row stride w + 2 kPad):
// the taps of a clamped sample position are then all in the padded frame.
constexpr int kPad = 2;
void pad_edges(const std::vector<float>& src, int h, int w, std::vector<float>& dst) {
  const int pw = w + 2 * kPad;
  dst.resize(static_cast<size_t>(h + 2 * kPad) * pw);
  for (int y = -kPad; y < h + kPad; ++y) {
    const float* r = src.data() + static_cast<int64_t>(std::clamp(y, 0, h - 1)) * w;
    float* d = dst.data() + static_cast<int64_t>(y + kPad) * pw;
    for (int x = 0; x < kPad; ++x) d[x] = r[0];
    std::memcpy(d + kPad, r, sizeof(float) * static_cast<size_t>(w));
    for (int x = 0; x < kPad; ++x) d[kPad + w + x] = r[w - 1];
  }
}

// dst(x) = src(x - g(x)): the previous frame moved by the head motion (Catmull-Rom
// bicubic, edges clamped; bilinear would blur the moved frame and read as motion).
// `padded`: src through pad_edges. Four pixels per step: positions, validity and weights
// in the lanes; a pixel's 4x4 taps are four row vectors, weighted by rows, then by
// columns, and summed as (c0 + c1) + (c2 + c3).
void warp(const std::vector<float>& padded, int h, int w, const Affine& g, std::vector<float>& dst,
          std::vector<float>& valid) {
  dst.resize(static_cast<size_t>(h) * w);
  valid.resize(static_cast<size_t>(h) * w);
  const double hw = 0.5 * w, hh = 0.5 * h;
  const int pw = w + 2 * kPad;
  const float wmax = static_cast<float>(w - 1), hmax = static_cast<float>(h - 1);
  // tap (0, 0) of a sample whose integer position is (0, 0): one pixel up and left of it
  const float* s = padded.data() + static_cast<int64_t>(kPad - 1) * pw + (kPad - 1);
  const f4 lane = {0.0f, 1.0f, 2.0f, 3.0f};
  const i4 one = (i4)splat(1.0f);  // the bits of 1.0f in every lane
  for (int y = 0; y < h; ++y) {
    const double cy = (y + 0.5 - hh) / hh;
    // source position = (x, y) - g(x, y): linear along the row
    const f4 row_x = splat(static_cast<float>(-(g.p[0] + g.p[1] * (0.5 - hw) / hw + g.p[2] * cy)));
    const f4 row_y = splat(static_cast<float>(y - (g.p[3] + g.p[4] * (0.5 - hw) / hw + g.p[5] * cy)));
    const f4 step_x = splat(static_cast<float>(1.0 - g.p[1] / hw)), step_y = splat(static_cast<float>(-g.p[4] / hw));
    float* out = dst.data() + static_cast<size_t>(y) * w;
    float* ok = valid.data() + static_cast<size_t>(y) * w;
    for (int x = 0; x < w; x += 4) {
      const f4 xs = splat(static_cast<float>(x)) + lane;
      const f4 ux = row_x + step_x * xs, uy = row_y + step_y * xs;
      // content that came from outside the frame has no counterpart: leave it out
      const i4 in = (ux >= 0.0f) & (ux <= wmax) & (uy >= 0.0f) & (uy <= hmax);
      const f4 sx = ux < 0.0f ? 0.0f : (ux > wmax ? wmax : ux);
      const f4 sy = uy < 0.0f ? 0.0f : (uy > hmax ? hmax : uy);
      const i4 ix = __builtin_convertvector(sx, i4), iy = __builtin_convertvector(sy, i4);
      f4 wx[4], wy[4];
      cubic_weights(sx - __builtin_convertvector(ix, f4), wx);
      cubic_weights(sy - __builtin_convertvector(iy, f4), wy);
      transpose4(wx);  // wx[l]: the column weights of pixel l
      int32_t first[4];
      const i4 offsets = iy * pw + ix;
      std::memcpy(first, &offsets, sizeof first);
      f4 c[4];
#pragma GCC unroll 4
      for (int l = 0; l < 4; ++l) {
        const float* r = s + first[l];
        f4 acc = splat(wy[0][l]) * load4(r);
        acc += splat(wy[1][l]) * load4(r + pw);
        acc += splat(wy[2][l]) * load4(r + 2 * pw);
        acc += splat(wy[3][l]) * load4(r + 3 * pw);
        c[l] = acc * wx[l];
      }
      transpose4(c);
      const f4 v = (c[0] + c[1]) + (c[2] + c[3]);
      const f4 flags = (f4)(in & one);  // 1 or 0
      if (x + 4 <= w) {
        store4(out + x, v);
        store4(ok + x, flags);
      } else {
        for (int l = 0; l < w - x; ++l) {
          out[x + l] = v[l];
          ok[x + l] = flags[l];
        }
      }
    }
  }
}

// Gradients of the mean frame on one row (its first `cols` pixels): central differences,
// one-sided (halved) at the left and right edges of the frame; times `ok` (if given: 1 or 0
// per pixel), so that an excluded pixel adds 0 to every sum.
void gradient_row(const float* __restrict row, const float* __restrict up, const float* __restrict down, int w,
                  int cols, const float* __restrict ok, float* __restrict dx, float* __restrict dy) {
  const int inner = std::min(cols, w - 1);
  dx[0] = 0.5f * (row[std::min(1, w - 1)] - row[0]);
  for (int x = 1; x < inner; ++x) dx[x] = 0.5f * (row[x + 1] - row[x - 1]);
  for (int x = std::max(inner, 1); x < cols; ++x) dx[x] = 0.5f * (row[w - 1] - row[x - 1]);
  for (int x = 0; x < cols; ++x) dy[x] = 0.5f * (down[x] - up[x]);
  if (ok) {
    for (int x = 0; x < cols; ++x) {
      dx[x] *= ok[x];
      dy[x] *= ok[x];
    }
  }
}

// Adds one row's products to the per-column sums.
void accumulate_row(const float* __restrict dx, const float* __restrict dy, const float* __restrict p0,
                    const float* __restrict p1, int cols, float* __restrict cxx, float* __restrict cxy,
                    float* __restrict cyy, float* __restrict cxt, float* __restrict cyt) {
  for (int x = 0; x < cols; ++x) {
    const float it = p1[x] - p0[x];
    cxx[x] += dx[x] * dx[x];
    cxy[x] += dx[x] * dy[x];
    cyy[x] += dy[x] * dy[x];
    cxt[x] += dx[x] * it;
    cyt[x] += dy[x] * it;
  }
}

struct Block {
  double sxx = 0, sxy = 0, syy = 0, sxt = 0, syt = 0;
  double cx = 0, cy = 0;  // centre, in [-1, 1] frame coordinates
  double vx = 0, vy = 0;  // regularized flow
  double weight = 0;      // smaller eigenvalue of A
  bool used = true;
};

struct BlockGrid {
  int h = 0, w = 0, bs = 0, nbx = 0, nby = 0;
  std::vector<Block> blocks;
  std::vector<float> mid, gx, gy, cols5;  // work rows of solve()
  double lambda = 0.0;

  void init(int height, int width, int block) {
    h = height;
    w = width;
    bs = block;
    nbx = w / bs;
    nby = h / bs;
    blocks.assign(static_cast<size_t>(nbx) * nby, Block{});
    for (int by = 0; by < nby; ++by) {
      for (int bx = 0; bx < nbx; ++bx) {
        Block& b = blocks[static_cast<size_t>(by) * nbx + bx];
        b.cx = ((bx + 0.5) * bs - 0.5 * w) / (0.5 * w);
        b.cy = ((by + 0.5) * bs - 0.5 * h) / (0.5 * h);
      }
    }
    mid.resize(static_cast<size_t>(h) * w);
  }

  // LK normal equations per block for the pair (i0, i1), gradients of their mean; the
  // regularized block flows; each block's corner strength.
  // `valid` (or null: all pixels) marks the pixels that take part.
  // The products are summed per column over a block row's rows (element-wise loops, which
  // the compiler vectorizes), then per block over its columns, in that fixed order.
  void solve(const std::vector<float>& i0, const std::vector<float>& i1, const std::vector<float>* valid,
             double regularization) {
    const int64_t n = static_cast<int64_t>(h) * w;
    float* m = mid.data();
    for (int64_t i = 0; i < n; ++i) m[i] = 0.5f * (i0[i] + i1[i]);
    const int cols = nbx * bs;
    cols5.resize(5 * static_cast<size_t>(cols));  // zeroed per block row below
    gx.resize(cols);
    gy.resize(cols);
    float* cxx = cols5.data();
    float* cxy = cxx + cols;
    float* cyy = cxy + cols;
    float* cxt = cyy + cols;
    float* cyt = cxt + cols;
    float* dx = gx.data();
    float* dy = gy.data();
    for (int by = 0; by < nby; ++by) {
      std::fill(cols5.begin(), cols5.end(), 0.0f);
      for (int y = by * bs; y < (by + 1) * bs; ++y) {
        const float* row = m + static_cast<int64_t>(y) * w;
        const float* up = m + static_cast<int64_t>(std::max(y - 1, 0)) * w;
        const float* down = m + static_cast<int64_t>(std::min(y + 1, h - 1)) * w;
        const float* p0 = i0.data() + static_cast<int64_t>(y) * w;
        const float* p1 = i1.data() + static_cast<int64_t>(y) * w;
        gradient_row(row, up, down, w, cols, valid ? valid->data() + static_cast<int64_t>(y) * w : nullptr, dx, dy);
        accumulate_row(dx, dy, p0, p1, cols, cxx, cxy, cyy, cxt, cyt);
      }
      Block* brow = blocks.data() + static_cast<size_t>(by) * nbx;
      for (int bx = 0; bx < nbx; ++bx) {
        float sxx = 0, sxy = 0, syy = 0, sxt = 0, syt = 0;
        for (int x = bx * bs; x < (bx + 1) * bs; ++x) {
          sxx += cxx[x];
          sxy += cxy[x];
          syy += cyy[x];
          sxt += cxt[x];
          syt += cyt[x];
        }
        Block& b = brow[bx];
        b.sxx = sxx;
        b.sxy = sxy;
        b.syy = syy;
        b.sxt = sxt;
        b.syt = syt;
      }
    }
    double mean_trace = 0.0;
    for (const Block& b : blocks) mean_trace += b.sxx + b.syy;
    mean_trace /= static_cast<double>(blocks.size());
    lambda = regularization * mean_trace + 1e-9;
    for (Block& b : blocks) {
      const double a = b.sxx + lambda, c = b.syy + lambda, d = b.sxy;
      const double det = a * c - d * d;
      b.vx = (-c * b.sxt + d * b.syt) / det;
      b.vy = (d * b.sxt - a * b.syt) / det;
      const double tr = b.sxx + b.syy;
      const double disc = std::sqrt(std::max(0.0, tr * tr - 4.0 * (b.sxx * b.syy - b.sxy * b.sxy)));
      b.weight = std::max(0.0, 0.5 * (tr - disc));
      b.used = true;
    }
  }

  // Residual flow of block b once the motion g is explained: (A + lambda I) r = -c - A g.
  void residual(const Block& b, const Affine& g, double* rx, double* ry) const {
    const double gx = g.gx(b.cx, b.cy), gy = g.gy(b.cx, b.cy);
    const double rhs_x = -b.sxt - (b.sxx * gx + b.sxy * gy);
    const double rhs_y = -b.syt - (b.sxy * gx + b.syy * gy);
    const double a = b.sxx + lambda, c = b.syy + lambda, d = b.sxy;
    const double det = a * c - d * d;
    *rx = (c * rhs_x - d * rhs_y) / det;
    *ry = (-d * rhs_x + a * rhs_y) / det;
  }
};

// Solves the 3x3 system n a = r (Gaussian elimination with partial pivoting); false if singular.
bool solve3(double n[3][3], double r[3], double a[3]) {
  int p[3] = {0, 1, 2};
  for (int c = 0; c < 3; ++c) {
    int best = c;
    for (int i = c + 1; i < 3; ++i)
      if (std::fabs(n[p[i]][c]) > std::fabs(n[p[best]][c])) best = i;
    std::swap(p[c], p[best]);
    const double piv = n[p[c]][c];
    if (std::fabs(piv) < 1e-12) return false;
    for (int i = c + 1; i < 3; ++i) {
      const double f = n[p[i]][c] / piv;
      for (int j = c; j < 3; ++j) n[p[i]][j] -= f * n[p[c]][j];
      r[p[i]] -= f * r[p[c]];
    }
  }
  for (int c = 2; c >= 0; --c) {
    double s = r[p[c]];
    for (int j = c + 1; j < 3; ++j) s -= n[p[c]][j] * a[j];
    a[c] = s / n[p[c]][c];
  }
  return true;
}

// Weighted least-squares affine field through the block flows of the used blocks.
Affine fit_affine(const std::vector<Block>& blocks) {
  double n[3][3] = {}, rx[3] = {}, ry[3] = {};
  double wsum = 0.0;
  for (const Block& b : blocks) {
    if (!b.used || b.weight <= 0.0) continue;
    const double phi[3] = {1.0, b.cx, b.cy};
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 3; ++j) n[i][j] += b.weight * phi[i] * phi[j];
      rx[i] += b.weight * phi[i] * b.vx;
      ry[i] += b.weight * phi[i] * b.vy;
    }
    wsum += b.weight;
  }
  Affine g;
  if (wsum <= 0.0) return g;
  double nx[3][3], ny[3][3], ax[3] = {0, 0, 0}, ay[3] = {0, 0, 0};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) nx[i][j] = ny[i][j] = n[i][j];
  if (solve3(nx, rx, ax) && solve3(ny, ry, ay)) {
    for (int i = 0; i < 3; ++i) {
      g.p[i] = ax[i];
      g.p[3 + i] = ay[i];
    }
    return g;
  }
  // Degenerate layout (texture in too few blocks): a pure translation.
  g.p[0] = rx[0] / n[0][0];
  g.p[3] = ry[0] / n[0][0];
  return g;
}

// Affine fit, then a refit without the 30 % of textured blocks it explains worst (the
// ones the face itself moves).
Affine robust_fit(std::vector<Block>& blocks) {
  Affine g = fit_affine(blocks);
  std::vector<double> err;
  err.reserve(blocks.size());
  for (const Block& b : blocks) {
    if (b.weight > 0.0) err.push_back(std::hypot(b.vx - g.gx(b.cx, b.cy), b.vy - g.gy(b.cx, b.cy)));
  }
  if (err.size() < 4) return g;
  std::vector<double> sorted = err;
  const size_t q = static_cast<size_t>(0.7 * static_cast<double>(sorted.size() - 1));
  std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(q), sorted.end());
  const double cut = sorted[q];
  size_t k = 0;
  for (Block& b : blocks) {
    if (b.weight <= 0.0) continue;
    b.used = err[k++] <= cut;
  }
  return fit_affine(blocks);
}

Affine add(const Affine& a, const Affine& b) {
  Affine s;
  for (int i = 0; i < 6; ++i) s.p[i] = a.p[i] + b.p[i];
  return s;
}

}  // namespace

MotionCurves motion_energy(const uint8_t* frames, int64_t count, int height, int width, int channels,
                           const MotionOptions& o) {
  if (count < 0) throw TransformError("motion_energy: negative frame count");
  if (channels != 1 && channels != 3) {
    throw TransformError("motion_energy: frames need 1 (grey) or 3 (RGB) channels, got " + std::to_string(channels));
  }
  if (o.block < 2) throw TransformError("motion_energy: block must be >= 2 (got " + std::to_string(o.block) + ")");
  if (height < o.block || width < o.block) {
    throw TransformError("motion_energy: frames of " + std::to_string(width) + "x" + std::to_string(height) +
                         " are smaller than one " + std::to_string(o.block) + "-px block");
  }
  if (!(o.top_fraction > 0.0 && o.top_fraction <= 1.0)) {
    throw TransformError("motion_energy: top_fraction must be in (0, 1]");
  }
  if (!(o.regularization >= 0.0) || !std::isfinite(o.regularization)) {
    throw TransformError("motion_energy: regularization must be a non-negative number");
  }
  if (count > 0 && frames == nullptr) throw TransformError("motion_energy: no frame data");

  MotionCurves out;
  out.energy.assign(count, 0.0f);
  out.difference.assign(count, 0.0f);
  out.global_dx.assign(count, 0.0f);
  out.global_dy.assign(count, 0.0f);
  if (count < 2) return out;

  const int h = height, w = width;
  const int64_t frame_bytes = static_cast<int64_t>(h) * w * channels;
  const int64_t npix = static_cast<int64_t>(h) * w;
  // The coarse level (half size) only when it still holds a 3x3 grid of blocks.
  const bool coarse = (h / 2) >= 3 * o.block && (w / 2) >= 3 * o.block;

  // Pairs (t-1, t) for t in [begin, end): every worker has its own buffers and prepares
  // the frame before its range itself, so results do not depend on the thread count.
  auto run_range = [&](int64_t begin, int64_t end) {
    BlockGrid fine, half;
    fine.init(h, w, o.block);
    if (coarse) half.init(h / 2, w / 2, o.block);
    std::vector<float> prev, cur, tmp, warped, prev_half, cur_half, prev_padded;
    std::vector<float> valid;  // 1 where the moved frame has a source pixel, else 0
    const size_t top_k = std::max<size_t>(1, static_cast<size_t>(std::ceil(o.top_fraction * fine.blocks.size())));
    std::vector<double> mags(fine.blocks.size());
    prepare(frames + (begin - 1) * frame_bytes, h, w, channels, prev, tmp);
    if (coarse) halve(prev, h, w, prev_half);
    for (int64_t t = begin; t < end; ++t) {
      prepare(frames + t * frame_bytes, h, w, channels, cur, tmp);
      const double diff = abs_diff_sum(cur.data(), prev.data(), h, w);
      // Head motion, coarse to fine: estimated at half size, then refined twice at full
      // size on the previous frame moved by the estimate so far (LK only sees small
      // displacements, and its linearization bias shrinks with each step).
      Affine g;
      if (coarse) {
        halve(cur, h, w, cur_half);
        half.solve(prev_half, cur_half, nullptr, o.regularization);
        g = robust_fit(half.blocks).scaled(2.0);
        pad_edges(prev, h, w, prev_padded);
        warp(prev_padded, h, w, g, warped, valid);
        fine.solve(warped, cur, &valid, o.regularization);
      } else {
        fine.solve(prev, cur, nullptr, o.regularization);
      }
      Affine dg = robust_fit(fine.blocks);
      if (coarse) {
        g = add(g, dg);
        warp(prev_padded, h, w, g, warped, valid);
        fine.solve(warped, cur, &valid, o.regularization);
        dg = robust_fit(fine.blocks);
      }
      for (size_t i = 0; i < fine.blocks.size(); ++i) {
        double rx, ry;
        fine.residual(fine.blocks[i], dg, &rx, &ry);
        mags[i] = std::hypot(rx, ry);
      }
      g = add(g, dg);
      std::nth_element(mags.begin(), mags.begin() + static_cast<std::ptrdiff_t>(top_k - 1), mags.end(),
                       std::greater<double>());
      double e = 0.0;
      for (size_t i = 0; i < top_k; ++i) e += mags[i];
      out.energy[t] = static_cast<float>(e / static_cast<double>(top_k));
      out.difference[t] = static_cast<float>(diff / static_cast<double>(npix));
      out.global_dx[t] = static_cast<float>(g.p[0]);
      out.global_dy[t] = static_cast<float>(g.p[3]);
      prev.swap(cur);
      if (coarse) prev_half.swap(cur_half);
    }
  };

  const int64_t pairs = count - 1;
  int64_t workers = o.threads > 0 ? o.threads : static_cast<int64_t>(usable_cpus());
  workers = std::max<int64_t>(1, std::min<int64_t>(workers, pairs / 16));  // >= 16 pairs per worker
  if (workers == 1) {
    run_range(1, count);
    return out;
  }
  std::vector<std::thread> pool;
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  for (int64_t k = 0; k < workers; ++k) {
    const int64_t begin = 1 + pairs * k / workers, end = 1 + pairs * (k + 1) / workers;
    pool.emplace_back([&, k, begin, end] {
      try {
        run_range(begin, end);
      } catch (...) {
        errors[static_cast<size_t>(k)] = std::current_exception();
      }
    });
  }
  for (auto& th : pool) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  return out;
}

}  // namespace msce
