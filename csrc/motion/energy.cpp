#include "motion/energy.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <exception>
#include <string>
#include <thread>

#include "common/cpus.hpp"
#include "common/error.hpp"

namespace msce {

namespace {

// Luma, 5-tap binomial blur (edges clamped), then zero mean / unit variance.
void prepare(const uint8_t* src, int h, int w, int channels, std::vector<float>& out, std::vector<float>& tmp) {
  const int64_t n = static_cast<int64_t>(h) * w;
  out.resize(n);
  tmp.resize(n);
  if (channels == 3) {
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = src + 3 * i;
      out[i] = (77.0f * p[0] + 150.0f * p[1] + 29.0f * p[2]) * (1.0f / 256.0f);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>(src[i]);
  }
  static constexpr float k[5] = {1.0f / 16, 4.0f / 16, 6.0f / 16, 4.0f / 16, 1.0f / 16};
  for (int y = 0; y < h; ++y) {
    const float* row = out.data() + static_cast<int64_t>(y) * w;
    float* dst = tmp.data() + static_cast<int64_t>(y) * w;
    for (int x = 0; x < w; ++x) {
      if (x >= 2 && x + 2 < w) {
        dst[x] = k[0] * row[x - 2] + k[1] * row[x - 1] + k[2] * row[x] + k[3] * row[x + 1] + k[4] * row[x + 2];
        continue;
      }
      float s = 0.0f;
      for (int d = -2; d <= 2; ++d) s += k[d + 2] * row[std::clamp(x + d, 0, w - 1)];
      dst[x] = s;
    }
  }
  for (int y = 0; y < h; ++y) {
    const float* r[5];
    for (int d = -2; d <= 2; ++d) r[d + 2] = tmp.data() + static_cast<int64_t>(std::clamp(y + d, 0, h - 1)) * w;
    float* dst = out.data() + static_cast<int64_t>(y) * w;
    for (int x = 0; x < w; ++x) dst[x] = k[0] * r[0][x] + k[1] * r[1][x] + k[2] * r[2][x] + k[3] * r[3][x] + k[4] * r[4][x];
  }
  double sum = 0.0, sum2 = 0.0;
  for (int64_t i = 0; i < n; ++i) {
    sum += out[i];
    sum2 += static_cast<double>(out[i]) * out[i];
  }
  const double mean = sum / static_cast<double>(n);
  const double var = std::max(0.0, sum2 / static_cast<double>(n) - mean * mean);
  const float inv = var > 1e-12 ? static_cast<float>(1.0 / std::sqrt(var)) : 1.0f;
  const float m = static_cast<float>(mean);
  for (int64_t i = 0; i < n; ++i) out[i] = (out[i] - m) * inv;
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

// Catmull-Rom weights for a sample at fraction f past tap 1 of taps 0..3.
inline void cubic_weights(float f, float w[4]) {
  const float f2 = f * f, f3 = f2 * f;
  w[0] = 0.5f * (-f3 + 2.0f * f2 - f);
  w[1] = 0.5f * (3.0f * f3 - 5.0f * f2 + 2.0f);
  w[2] = 0.5f * (-3.0f * f3 + 4.0f * f2 + f);
  w[3] = 0.5f * (f3 - f2);
}

// dst(x) = src(x - g(x)): the previous frame moved by the head motion (Catmull-Rom
// bicubic, edges clamped; bilinear would blur the moved frame and read as motion).
void warp(const std::vector<float>& src, int h, int w, const Affine& g, std::vector<float>& dst,
          std::vector<uint8_t>& valid) {
  dst.resize(src.size());
  valid.resize(src.size());
  const double hw = 0.5 * w, hh = 0.5 * h;
  for (int y = 0; y < h; ++y) {
    const double cy = (y + 0.5 - hh) / hh;
    // source position = (x, y) - g(x, y): linear along the row
    const double row_x = -(g.p[0] + g.p[1] * (0.5 - hw) / hw + g.p[2] * cy);
    const double row_y = y - (g.p[3] + g.p[4] * (0.5 - hw) / hw + g.p[5] * cy);
    const double step_x = 1.0 - g.p[1] / hw, step_y = -g.p[4] / hw;
    float* out = dst.data() + static_cast<size_t>(y) * w;
    uint8_t* ok = valid.data() + static_cast<size_t>(y) * w;
    for (int x = 0; x < w; ++x) {
      const double ux = row_x + step_x * x, uy = row_y + step_y * x;
      // content that came from outside the frame has no counterpart: leave it out
      ok[x] = ux >= 0.0 && ux <= w - 1.0 && uy >= 0.0 && uy <= h - 1.0;
      const double sx = std::clamp(ux, 0.0, static_cast<double>(w - 1));
      const double sy = std::clamp(uy, 0.0, static_cast<double>(h - 1));
      const int ix = static_cast<int>(sx), iy = static_cast<int>(sy);
      float wx[4], wy[4];
      cubic_weights(static_cast<float>(sx - ix), wx);
      cubic_weights(static_cast<float>(sy - iy), wy);
      float v = 0.0f;
      if (ix >= 1 && ix + 2 < w && iy >= 1 && iy + 2 < h) {
        const float* r = src.data() + static_cast<int64_t>(iy - 1) * w + (ix - 1);
        for (int j = 0; j < 4; ++j, r += w) v += wy[j] * (wx[0] * r[0] + wx[1] * r[1] + wx[2] * r[2] + wx[3] * r[3]);
      } else {
        for (int j = 0; j < 4; ++j) {
          const float* row = src.data() + static_cast<int64_t>(std::clamp(iy - 1 + j, 0, h - 1)) * w;
          float acc = 0.0f;
          for (int i = 0; i < 4; ++i) acc += wx[i] * row[std::clamp(ix - 1 + i, 0, w - 1)];
          v += wy[j] * acc;
        }
      }
      out[x] = v;
    }
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
  std::vector<float> mid;
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
  void solve(const std::vector<float>& i0, const std::vector<float>& i1, const std::vector<uint8_t>* valid,
             double regularization) {
    for (size_t i = 0; i < mid.size(); ++i) mid[i] = 0.5f * (i0[i] + i1[i]);
    for (Block& b : blocks) b.sxx = b.sxy = b.syy = b.sxt = b.syt = 0.0;
    for (int y = 0; y < nby * bs; ++y) {
      const float* row = mid.data() + static_cast<int64_t>(y) * w;
      const float* up = mid.data() + static_cast<int64_t>(std::max(y - 1, 0)) * w;
      const float* down = mid.data() + static_cast<int64_t>(std::min(y + 1, h - 1)) * w;
      const float* p0 = i0.data() + static_cast<int64_t>(y) * w;
      const float* p1 = i1.data() + static_cast<int64_t>(y) * w;
      const uint8_t* ok = valid ? valid->data() + static_cast<int64_t>(y) * w : nullptr;
      Block* brow = blocks.data() + static_cast<size_t>(y / bs) * nbx;
      for (int bx = 0; bx < nbx; ++bx) {
        float sxx = 0, sxy = 0, syy = 0, sxt = 0, syt = 0;
        for (int x = bx * bs; x < (bx + 1) * bs; ++x) {
          if (ok && !ok[x]) continue;
          const float ix = 0.5f * (row[std::min(x + 1, w - 1)] - row[std::max(x - 1, 0)]);
          const float iy = 0.5f * (down[x] - up[x]);
          const float it = p1[x] - p0[x];
          sxx += ix * ix;
          sxy += ix * iy;
          syy += iy * iy;
          sxt += ix * it;
          syt += iy * it;
        }
        Block& b = brow[bx];
        b.sxx += sxx;
        b.sxy += sxy;
        b.syy += syy;
        b.sxt += sxt;
        b.syt += syt;
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
    std::vector<float> prev, cur, tmp, warped, prev_half, cur_half;
    std::vector<uint8_t> valid;
    const size_t top_k = std::max<size_t>(1, static_cast<size_t>(std::ceil(o.top_fraction * fine.blocks.size())));
    std::vector<double> mags(fine.blocks.size());
    prepare(frames + (begin - 1) * frame_bytes, h, w, channels, prev, tmp);
    if (coarse) halve(prev, h, w, prev_half);
    for (int64_t t = begin; t < end; ++t) {
      prepare(frames + t * frame_bytes, h, w, channels, cur, tmp);
      double diff = 0.0;
      for (int64_t i = 0; i < npix; ++i) diff += std::fabs(cur[i] - prev[i]);
      // Head motion, coarse to fine: estimated at half size, then refined twice at full
      // size on the previous frame moved by the estimate so far (LK only sees small
      // displacements, and its linearization bias shrinks with each step).
      Affine g;
      if (coarse) {
        halve(cur, h, w, cur_half);
        half.solve(prev_half, cur_half, nullptr, o.regularization);
        g = robust_fit(half.blocks).scaled(2.0);
        warp(prev, h, w, g, warped, valid);
        fine.solve(warped, cur, &valid, o.regularization);
      } else {
        fine.solve(prev, cur, nullptr, o.regularization);
      }
      Affine dg = robust_fit(fine.blocks);
      if (coarse) {
        g = add(g, dg);
        warp(prev, h, w, g, warped, valid);
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
