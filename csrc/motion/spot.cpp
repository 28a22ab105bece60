#include "motion/spot.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "common/error.hpp"

namespace msce {

namespace {

int64_t frames_for(double seconds, double fps) {
  return static_cast<int64_t>(std::llround(std::max(0.0, seconds) * fps));
}

double median_of(std::vector<float>& v) {
  if (v.empty()) return 0.0;
  const size_t mid = v.size() / 2;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
  double m = v[mid];
  if (v.size() % 2 == 0) {
    const float lower = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
    m = 0.5 * (m + lower);
  }
  return m;
}

void check_options(double fps, const SpotOptions& o) {
  if (!(fps > 0.0) || !std::isfinite(fps)) throw PlanError("spotting needs a positive fps (got " + std::to_string(fps) + ")");
  const double vals[] = {o.smooth_s, o.baseline_s, o.k_high, o.k_low, o.merge_s, o.min_s, o.max_s, o.min_peak};
  for (double v : vals) {
    if (!(v >= 0.0) || !std::isfinite(v)) throw PlanError("spotting options must be non-negative numbers");
  }
  if (o.k_low > o.k_high) throw PlanError("spotting needs k_low <= k_high");
  if (o.min_s > o.max_s) throw PlanError("spotting needs min_s <= max_s");
}

}  // namespace

EnergyAnalysis analyze_energy(const std::vector<float>& energy, double fps, const SpotOptions& o) {
  check_options(fps, o);
  const int64_t n = static_cast<int64_t>(energy.size());
  EnergyAnalysis a;
  a.smoothed.assign(n, 0.0f);
  a.baseline.assign(n, 0.0f);
  a.excess.assign(n, 0.0f);
  a.raw_excess.assign(n, 0.0f);
  if (n == 0) return a;
  for (float e : energy) {
    if (!std::isfinite(e)) throw PlanError("the motion energy curve holds a non-finite value");
  }
  // energy[0] has no predecessor frame: treat it as its neighbour.
  std::vector<float> e(energy);
  if (n > 1) e[0] = e[1];
  const int64_t half = frames_for(o.smooth_s, fps) / 2;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t lo = std::max<int64_t>(0, t - half), hi = std::min<int64_t>(n - 1, t + half);
    double s = 0.0;
    for (int64_t i = lo; i <= hi; ++i) s += e[i];
    a.smoothed[t] = static_cast<float>(s / static_cast<double>(hi - lo + 1));
  }
  const int64_t bhalf = std::max<int64_t>(1, frames_for(o.baseline_s, fps) / 2);
  std::vector<float> win;
  for (int64_t t = 0; t < n; ++t) {
    const int64_t lo = std::max<int64_t>(0, t - bhalf), hi = std::min<int64_t>(n - 1, t + bhalf);
    win.assign(a.smoothed.begin() + lo, a.smoothed.begin() + hi + 1);
    a.baseline[t] = static_cast<float>(median_of(win));
    a.excess[t] = a.smoothed[t] - a.baseline[t];
    a.raw_excess[t] = e[t] - a.baseline[t];
  }
  std::vector<float> dev(a.excess);
  const double med = median_of(dev);
  double largest = 0.0;
  for (int64_t t = 0; t < n; ++t) {
    dev[t] = static_cast<float>(std::fabs(a.excess[t] - med));
    largest = std::max(largest, std::fabs(static_cast<double>(a.excess[t])));
  }
  a.noise = std::max({1.4826 * median_of(dev), 1e-3 * largest, 1e-9});
  a.low = o.k_low * a.noise;
  a.high = std::max(o.k_high * a.noise, o.min_peak);
  return a;
}

std::vector<Spot> spot_events(const std::vector<float>& energy, double fps, const SpotOptions& o) {
  const EnergyAnalysis a = analyze_energy(energy, fps, o);
  const int64_t n = static_cast<int64_t>(energy.size());
  std::vector<Spot> spots;
  // Runs above `low` (index 0 carries no motion of its own).
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t t = 1; t < n; ++t) {
    if (a.excess[t] <= a.low) continue;
    int64_t u = t;
    while (u + 1 < n && a.excess[u + 1] > a.low) ++u;
    runs.emplace_back(t, u);
    t = u;
  }
  const int64_t merge = frames_for(o.merge_s, fps);
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto& r : runs) {
    if (!merged.empty() && r.first - merged.back().second - 1 <= merge) {
      merged.back().second = r.second;
    } else {
      merged.push_back(r);
    }
  }
  const int64_t half = frames_for(o.smooth_s, fps) / 2;
  for (const auto& [r0, r1] : merged) {
    double peak = 0.0;
    for (int64_t t = r0; t <= r1; ++t) peak = std::max(peak, static_cast<double>(a.excess[t]));
    if (peak < a.high) continue;
    int64_t b0 = r0, b1 = r1;
    for (int64_t t = std::max<int64_t>(1, r0 - half); t <= r1; ++t) {
      if (a.raw_excess[t] > a.low) {
        b0 = t;
        break;
      }
    }
    for (int64_t t = std::min<int64_t>(n - 1, r1 + half); t >= b0; --t) {
      if (a.raw_excess[t] > a.low) {
        b1 = t;
        break;
      }
    }
    Spot s;
    s.onset = std::max<int64_t>(0, b0 - 1);
    s.offset = b1;
    const double length = static_cast<double>(s.offset - s.onset) / fps;
    if (length < o.min_s - 1e-9 || length > o.max_s + 1e-9) continue;
    double total = 0.0;
    for (int64_t t = s.onset + 1; t <= s.offset; ++t) total += std::max(0.0f, a.raw_excess[t]);
    s.apex = s.onset + 1;
    double cum = 0.0;
    for (int64_t t = s.onset + 1; t <= s.offset; ++t) {
      const double before = cum;
      cum += std::max(0.0f, a.raw_excess[t]);
      if (cum >= 0.5 * total) {
        // half the motion is done somewhere during the step t-1 -> t: take the nearer end
        s.apex = (cum - 0.5 * total) < (0.5 * total - before) ? t : t - 1;
        break;
      }
    }
    s.apex = std::clamp(s.apex, s.onset, s.offset);
    s.peak = peak;
    s.score = peak / a.noise;
    spots.push_back(s);
  }
  return spots;
}

PlanResult plan_motion_aware_gaps(const std::vector<double>& ts, double duration, double keyframe_fps,
                                  int gap_frames, const std::vector<float>& energy, double fps,
                                  const SpotOptions& o, double separation_s) {
  if (gap_frames < 0) throw PlanError("gap_frames must be >= 0 (got " + std::to_string(gap_frames) + ")");
  if (energy.size() != ts.size()) {
    throw PlanError("the motion energy curve has " + std::to_string(energy.size()) + " values for a clip of " +
                    std::to_string(ts.size()) + " frames");
  }
  if (!(separation_s >= 0.0) || !std::isfinite(separation_s)) throw PlanError("separation_s must be >= 0");
  const PlanResult keys = plan_uniform(ts, duration, keyframe_fps);
  const EnergyAnalysis a = analyze_energy(energy, fps, o);
  std::vector<Spot> spots = spot_events(energy, fps, o);
  std::stable_sort(spots.begin(), spots.end(), [](const Spot& x, const Spot& y) { return x.score > y.score; });
  const int64_t sep = std::max<int64_t>(1, frames_for(separation_s, fps));

  return keyframes_and_gaps(keys, ts, gap_frames, [&](int i, int64_t ka, int64_t kb, PlanResult& r) {
    std::vector<int64_t> chosen;
    auto taken = [&](int64_t idx) { return std::find(chosen.begin(), chosen.end(), idx) != chosen.end(); };
    auto near = [&](int64_t idx) {
      for (int64_t c : chosen)
        if (std::llabs(c - idx) < sep) return true;
      return false;
    };
    for (const Spot& s : spots) {
      if (static_cast<int>(chosen.size()) == gap_frames) break;
      if (s.apex > ka && s.apex < kb && !near(s.apex)) chosen.push_back(s.apex);
    }
    std::vector<int64_t> cand;
    for (int64_t idx = ka + 1; idx < kb; ++idx)
      if (a.excess[idx] > a.low) cand.push_back(idx);
    std::stable_sort(cand.begin(), cand.end(),
                     [&](int64_t x, int64_t y) { return a.excess[x] > a.excess[y]; });
    for (int64_t idx : cand) {
      if (static_cast<int>(chosen.size()) == gap_frames) break;
      if (!near(idx)) chosen.push_back(idx);
    }
    // Uniform fill: the free slot farthest from every chosen frame first, so the
    // remaining frames spread over the parts of the gap the peaks left uncovered.
    const double ta = ts[ka], tb = ts[kb];
    std::vector<bool> slot_used(static_cast<size_t>(gap_frames) + 1, false);
    while (static_cast<int>(chosen.size()) < gap_frames) {
      int best_slot = -1;
      double best_dist = -1.0;
      for (int g = 1; g <= gap_frames; ++g) {
        if (slot_used[g]) continue;
        const double target = ta + g * (tb - ta) / (gap_frames + 1);
        double dist = tb - ta;
        for (int64_t c : chosen) dist = std::min(dist, std::fabs(ts[c] - target));
        if (dist > best_dist) {
          best_dist = dist;
          best_slot = g;
        }
      }
      if (best_slot < 0) break;
      slot_used[best_slot] = true;
      const double target = ta + best_slot * (tb - ta) / (gap_frames + 1);
      int64_t best = -1;
      for (int64_t idx = ka + 1; idx < kb; ++idx) {
        if (taken(idx)) continue;
        if (best < 0 || std::fabs(ts[idx] - target) < std::fabs(ts[best] - target)) best = idx;
      }
      if (best < 0) break;
      chosen.push_back(best);
    }
    std::sort(chosen.begin(), chosen.end());
    for (int64_t idx : chosen) r.add(idx, ts[idx], Role::kGap, i);
  });
}

}  // namespace msce
