#include "select/plan.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.hpp"

namespace msce {

namespace {

void check_timestamps(const std::vector<double>& ts) {
  if (ts.empty()) throw PlanError("the clip has no frames to plan over");
}

// Small slack so that k / fps landing on the duration by rounding is not counted.
constexpr double kEps = 1e-9;

}  // namespace

int64_t nearest_frame(const std::vector<double>& ts, double t) {
  check_timestamps(ts);
  auto it = std::lower_bound(ts.begin(), ts.end(), t);
  if (it == ts.begin()) return 0;
  if (it == ts.end()) return static_cast<int64_t>(ts.size()) - 1;
  const int64_t hi = it - ts.begin();
  const int64_t lo = hi - 1;
  return (t - ts[lo]) <= (ts[hi] - t) ? lo : hi;
}

PlanResult plan_uniform(const std::vector<double>& ts, double duration, double fps) {
  check_timestamps(ts);
  if (!(fps > 0.0) || !std::isfinite(fps)) throw PlanError("fps must be a positive number (got " + std::to_string(fps) + ")");
  PlanResult r;
  for (int64_t k = 0;; ++k) {
    const double t = static_cast<double>(k) / fps;
    if (k > 0 && t >= duration - kEps) break;
    r.add(nearest_frame(ts, t), t, Role::kFrame, 0);
    if (r.indices.size() > 10000000) throw PlanError("plan would exceed 10 million frames");
  }
  return r;
}

PlanResult plan_dense(const std::vector<double>& ts) {
  check_timestamps(ts);
  PlanResult r;
  const int64_t n = static_cast<int64_t>(ts.size());
  r.indices.resize(n);
  r.times.assign(ts.begin(), ts.end());
  r.roles.assign(n, static_cast<int>(Role::kFrame));
  r.groups.assign(n, 0);
  for (int64_t i = 0; i < n; ++i) r.indices[i] = i;
  return r;
}

PlanResult plan_count(const std::vector<double>& ts, double duration, int64_t n) {
  check_timestamps(ts);
  if (n <= 0) throw PlanError("frame count must be positive (got " + std::to_string(n) + ")");
  if (n > 10000000) throw PlanError("frame count too large");
  PlanResult r;
  for (int64_t k = 0; k < n; ++k) {
    const double t = (static_cast<double>(k) + 0.5) * duration / static_cast<double>(n);
    r.add(nearest_frame(ts, t), t, Role::kFrame, 0);
  }
  return r;
}

PlanResult plan_keyframes_with_gaps(const std::vector<double>& ts, double duration, double keyframe_fps,
                                    int gap_frames) {
  if (gap_frames < 0) throw PlanError("gap_frames must be >= 0 (got " + std::to_string(gap_frames) + ")");
  const PlanResult keys = plan_uniform(ts, duration, keyframe_fps);
  return keyframes_and_gaps(keys, ts, gap_frames, [&](int i, int64_t a, int64_t b, PlanResult& r) {
    const double ta = ts[a], tb = ts[b];
    int64_t last = a;
    for (int g = 1; g <= gap_frames; ++g) {
      const double t = ta + g * (tb - ta) / (gap_frames + 1);
      // keep strictly inside (a, b), increasing, and leave room for the frames still to place
      const int64_t idx = std::clamp(nearest_frame(ts, t), last + 1, b - 1 - (gap_frames - g));
      r.add(idx, t, Role::kGap, i);
      last = idx;
    }
  });
}

namespace {
uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// Uniform integer in [0, bound) by rejection (no modulo bias).
uint64_t bounded(uint64_t& state, uint64_t bound) {
  const uint64_t limit = UINT64_MAX - (UINT64_MAX % bound);
  for (;;) {
    const uint64_t v = splitmix64(state);
    if (v < limit) return v % bound;
  }
}
}  // namespace

std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed) {
  if (n < 0) throw PlanError("permutation size must be >= 0");
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = seed;
  for (int64_t i = n - 1; i > 0; --i) {
    const int64_t j = static_cast<int64_t>(bounded(state, static_cast<uint64_t>(i + 1)));
    std::swap(p[i], p[j]);
  }
  return p;
}

void smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels, int* out_h,
                  int* out_w) {
  if (height <= 0 || width <= 0) throw TransformError("smart_resize: height and width must be positive");
  if (factor <= 0) throw TransformError("smart_resize: factor must be positive");
  if (min_pixels > max_pixels) throw TransformError("smart_resize: min_pixels exceeds max_pixels");
  const double h = height, w = width;
  if (std::max(h, w) / std::min(h, w) > 200.0) {
    throw TransformError("smart_resize: aspect ratio must be below 200 (got " + std::to_string(std::max(h, w) / std::min(h, w)) + ")");
  }
  // Python's round() is half-to-even: nearbyint under the default rounding mode.
  double h_bar = std::nearbyint(h / factor) * factor;
  double w_bar = std::nearbyint(w / factor) * factor;
  if (h_bar * w_bar > static_cast<double>(max_pixels)) {
    const double beta = std::sqrt(h * w / static_cast<double>(max_pixels));
    h_bar = std::max<double>(factor, std::floor(h / beta / factor) * factor);
    w_bar = std::max<double>(factor, std::floor(w / beta / factor) * factor);
  } else if (h_bar * w_bar < static_cast<double>(min_pixels)) {
    const double beta = std::sqrt(static_cast<double>(min_pixels) / (h * w));
    h_bar = std::ceil(h * beta / factor) * factor;
    w_bar = std::ceil(w * beta / factor) * factor;
  }
  *out_h = static_cast<int>(h_bar);
  *out_w = static_cast<int>(w_bar);
}

}  // namespace msce
