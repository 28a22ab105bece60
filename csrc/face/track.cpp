#include "face/track.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>

#include "common/error.hpp"

namespace msce::face {

namespace {

constexpr double kTimeEps = 1e-6;  // seconds: two times closer than this are the same frame
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMaxShift = 1.5;  // association fallback: centre moved <= this many face sizes
constexpr double kMaxScale = 1.5;  // ... and the size changed by at most this factor

bool finite_box(const Box& b) {
  return std::isfinite(b.x) && std::isfinite(b.y) && std::isfinite(b.w) && std::isfinite(b.h) && b.w > 0.0 &&
         b.h > 0.0;
}

std::vector<int> time_order(const std::vector<DetectionFrame>& frames) {
  std::vector<int> order(frames.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return frames[a].time < frames[b].time; });
  return order;
}

const Detection& at(const std::vector<DetectionFrame>& frames, const std::pair<int, int>& p) {
  return frames[p.first].detections[p.second];
}

// The track's box at time t by constant velocity from its last two detections.
Box predict(const Track& tr, const std::vector<DetectionFrame>& frames, double t) {
  const auto& last = tr.points.back();
  const Box b1 = at(frames, last).box;
  if (tr.points.size() < 2) return b1;
  const auto& prev = tr.points[tr.points.size() - 2];
  const Box b0 = at(frames, prev).box;
  const double t1 = frames[last.first].time, t0 = frames[prev.first].time;
  if (!(t1 - t0 > kTimeEps)) return b1;
  const double k = (t - t1) / (t1 - t0);
  Box p;
  p.x = b1.x + k * (b1.x - b0.x);
  p.y = b1.y + k * (b1.y - b0.y);
  p.w = std::max(1e-3, b1.w + k * (b1.w - b0.w));
  p.h = std::max(1e-3, b1.h + k * (b1.h - b0.h));
  return p;
}

// Weights of the local-linear smoother at one query time, reused for every channel.
struct Kernel {
  std::vector<int> idx;
  std::vector<double> d;  // t_i - at
  std::vector<double> w;
};

Kernel make_kernel(const std::vector<double>& t, double at, double sigma) {
  const int n = static_cast<int>(t.size());
  Kernel k;
  // distances to the nearest and second-nearest samples
  double d1 = std::numeric_limits<double>::infinity(), d2 = d1;
  for (double ti : t) {
    const double d = std::abs(ti - at);
    if (d < d1) {
      d2 = d1;
      d1 = d;
    } else if (d < d2) {
      d2 = d;
    }
  }
  if (!std::isfinite(d2)) d2 = d1;
  // 0.35 * d2 keeps the second-nearest sample's weight >= exp(-0.5 / 0.35^2) ~ 0.017, so the
  // fit always rests on two samples and stays continuous in `at`.
  const double s = std::max(sigma, 0.35 * d2);
  const double reach = std::max(5.0 * s, d2);
  for (int i = 0; i < n; ++i) {
    const double d = t[i] - at;
    if (std::abs(d) > reach) continue;
    k.idx.push_back(i);
    k.d.push_back(d);
    k.w.push_back(s > 0.0 ? std::exp(-0.5 * (d / s) * (d / s)) : 1.0);
  }
  return k;
}

double apply_kernel(const Kernel& k, const std::vector<double>& v) {
  double s0 = 0, s1 = 0, s2 = 0, t0 = 0, t1 = 0;
  for (size_t j = 0; j < k.idx.size(); ++j) {
    const double x = v[k.idx[j]];
    if (std::isnan(x)) continue;
    const double w = k.w[j], d = k.d[j];
    s0 += w;
    s1 += w * d;
    s2 += w * d * d;
    t0 += w * x;
    t1 += w * d * x;
  }
  if (!(s0 > 0.0)) return kNaN;
  const double det = s0 * s2 - s1 * s1;
  if (det > 1e-9 * s0 * s2 && det > 0.0) return (s2 * t0 - s1 * t1) / det;
  return t0 / s0;  // one distinct time: the weighted mean
}

// Piecewise-linear interpolation (sigma == 0): samples at equal times are averaged.
double interpolate(const std::vector<double>& t, const std::vector<double>& v, double at) {
  std::vector<double> tt, vv;
  for (size_t i = 0; i < t.size(); ++i) {
    if (std::isnan(v[i])) continue;
    if (!tt.empty() && std::abs(t[i] - tt.back()) <= kTimeEps) {
      vv.back() = 0.5 * (vv.back() + v[i]);
      continue;
    }
    tt.push_back(t[i]);
    vv.push_back(v[i]);
  }
  if (tt.empty()) return kNaN;
  if (at <= tt.front()) return vv.front();
  if (at >= tt.back()) return vv.back();
  const size_t hi = static_cast<size_t>(std::upper_bound(tt.begin(), tt.end(), at) - tt.begin());
  const size_t lo = hi - 1;
  const double a = (at - tt[lo]) / (tt[hi] - tt[lo]);
  return vv[lo] + a * (vv[hi] - vv[lo]);
}

void check_inputs(const std::vector<DetectionFrame>& frames, int width, int height, int num_landmarks) {
  if (width <= 0 || height <= 0) {
    throw TransformError("face tracking needs a positive frame size (got " + std::to_string(width) + "x" +
                         std::to_string(height) + ")");
  }
  if (num_landmarks < 0) throw TransformError("num_landmarks must be >= 0");
  for (const auto& f : frames) {
    if (!std::isfinite(f.time)) throw TransformError("a detection frame has a non-finite time");
    for (const auto& d : f.detections) {
      if (!finite_box(d.box)) {
        throw TransformError("a face detection has a non-finite or empty box (" + std::to_string(d.box.x) + ", " +
                             std::to_string(d.box.y) + ", " + std::to_string(d.box.w) + ", " +
                             std::to_string(d.box.h) + ")");
      }
      if (d.landmarks.size() != static_cast<size_t>(num_landmarks) * 2) {
        throw TransformError("a face detection has " + std::to_string(d.landmarks.size()) +
                             " landmark values, expected " + std::to_string(num_landmarks * 2));
      }
    }
  }
}

}  // namespace

void TrackerOptions::validate() const {
  if (!(min_iou > 0.0 && min_iou <= 1.0)) throw TransformError("min_iou must lie in (0, 1]");
  if (!(max_gap >= 0.0) || !std::isfinite(max_gap)) throw TransformError("max_gap must be >= 0 seconds");
  if (min_hits < 1) throw TransformError("min_hits must be >= 1");
  if (!(sigma >= 0.0) || !std::isfinite(sigma)) throw TransformError("smoothing sigma must be >= 0 seconds");
  if (!(hold >= 0.0) || !std::isfinite(hold)) throw TransformError("hold must be >= 0 seconds");
  if (!(margin >= 1.0) || !std::isfinite(margin)) throw TransformError("margin must be >= 1");
  if (select == SelectPolicy::kTrackId && track_id < 0) throw TransformError("select by track id needs an id >= 0");
}

double iou(const Box& a, const Box& b) {
  if (a.area() <= 0.0 || b.area() <= 0.0) return 0.0;
  const double ix = std::min(a.x + a.w, b.x + b.w) - std::max(a.x, b.x);
  const double iy = std::min(a.y + a.h, b.y + b.h) - std::max(a.y, b.y);
  if (ix <= 0.0 || iy <= 0.0) return 0.0;
  const double inter = ix * iy;
  return inter / (a.area() + b.area() - inter);
}

std::vector<Track> associate(const std::vector<DetectionFrame>& frames, double min_iou, double max_gap) {
  std::vector<Track> tracks;
  std::vector<int> live;  // indices into tracks
  for (int k : time_order(frames)) {
    const double t = frames[k].time;
    live.erase(std::remove_if(live.begin(), live.end(),
                              [&](int a) {
                                return t - frames[tracks[a].points.back().first].time > max_gap + kTimeEps;
                              }),
               live.end());
    const auto& dets = frames[k].detections;
    std::vector<std::tuple<double, int, int>> pairs;  // (-iou, track, detection)
    for (int a : live) {
      if (frames[tracks[a].points.back().first].time >= t - kTimeEps) continue;  // already seen at this time
      const Box p = predict(tracks[a], frames, t);
      for (int j = 0; j < static_cast<int>(dets.size()); ++j) {
        const double v = iou(p, dets[j].box);
        if (v >= min_iou) pairs.emplace_back(-v, a, j);
      }
    }
    std::sort(pairs.begin(), pairs.end());
    std::vector<char> track_used(tracks.size(), 0), det_used(dets.size(), 0);
    for (const auto& [neg, a, j] : pairs) {
      if (track_used[a] || det_used[j]) continue;
      track_used[a] = det_used[j] = 1;
      tracks[a].points.emplace_back(k, j);
    }
    // Fallback for fast motion or sparse detections, where boxes no longer overlap enough:
    // a face that moved less than kMaxShift face sizes and kept its size within kMaxScale.
    std::vector<std::tuple<double, int, int>> near;  // (distance, track, detection)
    for (int a : live) {
      if (track_used[a] || frames[tracks[a].points.back().first].time >= t - kTimeEps) continue;
      const Box p = predict(tracks[a], frames, t);
      for (int j = 0; j < static_cast<int>(dets.size()); ++j) {
        if (det_used[j]) continue;
        const Box& b = dets[j].box;
        const double sp = std::max(p.w, p.h), sb = std::max(b.w, b.h);
        if (std::max(sp, sb) > kMaxScale * std::min(sp, sb)) continue;
        const double d = std::hypot(b.cx() - p.cx(), b.cy() - p.cy()) / std::max(sp, sb);
        if (d <= kMaxShift) near.emplace_back(d, a, j);
      }
    }
    std::sort(near.begin(), near.end());
    for (const auto& [dist, a, j] : near) {
      if (track_used[a] || det_used[j]) continue;
      track_used[a] = det_used[j] = 1;
      tracks[a].points.emplace_back(k, j);
    }
    std::vector<int> fresh;
    for (int j = 0; j < static_cast<int>(dets.size()); ++j) {
      if (!det_used[j]) fresh.push_back(j);
    }
    std::stable_sort(fresh.begin(), fresh.end(), [&](int a, int b) {
      return std::make_pair(dets[a].box.x, dets[a].box.y) < std::make_pair(dets[b].box.x, dets[b].box.y);
    });
    for (int j : fresh) {
      Track tr;
      tr.id = static_cast<int>(tracks.size());
      tr.points.emplace_back(k, j);
      live.push_back(tr.id);
      tracks.push_back(std::move(tr));
    }
  }
  return tracks;
}

int select_track(const std::vector<Track>& tracks, const std::vector<DetectionFrame>& frames, int width, int height,
                 const TrackerOptions& o) {
  int best = -1;
  double best_score = -1.0;
  const double half_diag = 0.5 * std::hypot(static_cast<double>(width), static_cast<double>(height));
  for (int i = 0; i < static_cast<int>(tracks.size()); ++i) {
    const Track& tr = tracks[i];
    if (o.select == SelectPolicy::kTrackId) {
      if (tr.id == o.track_id) return i;
      continue;
    }
    if (static_cast<int>(tr.points.size()) < o.min_hits) continue;
    double score = 0.0;
    for (const auto& p : tr.points) {
      const Box& b = at(frames, p).box;
      if (o.select == SelectPolicy::kLargest) {
        score += b.area();
      } else {
        const double dist = std::hypot(b.cx() - 0.5 * width, b.cy() - 0.5 * height);
        score += 1.0 - std::min(1.0, dist / half_diag);
      }
    }
    if (score > best_score) {
      best_score = score;
      best = i;
    }
  }
  return best;
}

double smooth_at(const std::vector<double>& t, const std::vector<double>& v, double at, double sigma) {
  if (t.size() != v.size()) throw TransformError("smooth_at: times and values differ in length");
  if (t.empty()) return kNaN;
  if (sigma <= 0.0) {
    std::vector<int> order(t.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return t[a] < t[b]; });
    std::vector<double> ts, vs;
    for (int i : order) {
      ts.push_back(t[i]);
      vs.push_back(v[i]);
    }
    return interpolate(ts, vs, at);
  }
  return apply_kernel(make_kernel(t, at, sigma), v);
}

CropBox square_crop(double cx, double cy, int side, int width, int height) {
  side = std::max(1, std::min({side, width, height}));
  const int x = static_cast<int>(std::nearbyint(cx - 0.5 * side));
  const int y = static_cast<int>(std::nearbyint(cy - 0.5 * side));
  return CropBox{std::clamp(x, 0, width - side), std::clamp(y, 0, height - side), side, side};
}

TrackerResult track_faces(const std::vector<DetectionFrame>& frames, const std::vector<double>& query_times,
                          int width, int height, int num_landmarks, const TrackerOptions& o) {
  o.validate();
  check_inputs(frames, width, height, num_landmarks);
  TrackerResult r;
  r.tracks = associate(frames, o.min_iou, o.max_gap);
  r.selected = select_track(r.tracks, frames, width, height, o);

  const size_t nq = query_times.size();
  const size_t nl = static_cast<size_t>(num_landmarks) * 2;
  r.status.assign(nq, FrameStatus::kNone);
  r.faces.assign(nq, Box{});
  r.scores.assign(nq, 0.0);
  r.landmarks.assign(nq * nl, kNaN);
  r.crops.assign(nq, CropBox{});

  if (r.selected >= 0) {
    // The chosen track's samples, one channel per quantity (centre, size, score, landmarks).
    const Track& tr = r.tracks[r.selected];
    const size_t ns = tr.points.size();
    std::vector<double> ts(ns);
    std::vector<std::vector<double>> ch(5 + nl, std::vector<double>(ns));
    for (size_t i = 0; i < ns; ++i) {
      const Detection& d = at(frames, tr.points[i]);
      ts[i] = frames[tr.points[i].first].time;
      ch[0][i] = d.box.cx();
      ch[1][i] = d.box.cy();
      ch[2][i] = d.box.w;
      ch[3][i] = d.box.h;
      ch[4][i] = d.score;
      for (size_t c = 0; c < nl; ++c) ch[5 + c][i] = d.landmarks[c];
    }
    const double t_first = ts.front(), t_last = ts.back();  // points are in time order
    for (size_t q = 0; q < nq; ++q) {
      const double t = query_times[q];
      if (t < t_first - o.hold - kTimeEps || t > t_last + o.hold + kTimeEps) continue;
      const double tq = std::clamp(t, t_first, t_last);
      FrameStatus st = FrameStatus::kInterpolated;
      if (t < t_first - kTimeEps || t > t_last + kTimeEps) {
        st = FrameStatus::kHeld;
      } else {
        for (double ti : ts) {
          if (std::abs(ti - t) <= kTimeEps) st = FrameStatus::kDetected;
        }
      }
      std::vector<double> val(ch.size());
      if (o.sigma > 0.0) {
        const Kernel k = make_kernel(ts, tq, o.sigma);
        for (size_t c = 0; c < ch.size(); ++c) val[c] = apply_kernel(k, ch[c]);
      } else {
        for (size_t c = 0; c < ch.size(); ++c) val[c] = interpolate(ts, ch[c], tq);
      }
      const double w = std::max(1.0, val[2]), h = std::max(1.0, val[3]);
      r.status[q] = st;
      r.faces[q] = Box{val[0] - 0.5 * w, val[1] - 0.5 * h, w, h};
      r.scores[q] = std::clamp(val[4], 0.0, 1.0);
      for (size_t c = 0; c < nl; ++c) r.landmarks[q * nl + c] = val[5 + c];
    }
  }

  // Crop side: margin times the largest smoothed face side over the planned frames.
  double largest = 0.0;
  for (size_t q = 0; q < nq; ++q) {
    if (r.status[q] != FrameStatus::kNone) largest = std::max({largest, r.faces[q].w, r.faces[q].h});
  }
  const int short_side = std::min(width, height);
  const int clip_side =
      largest > 0.0 ? std::clamp(static_cast<int>(std::nearbyint(o.margin * largest)), 1, short_side) : short_side;
  r.crop_side = o.fixed_size ? clip_side : 0;
  for (size_t q = 0; q < nq; ++q) {
    if (r.status[q] == FrameStatus::kNone) {
      r.crops[q] = o.missing == Missing::kFull ? CropBox{0, 0, width, height}
                                               : square_crop(0.5 * width, 0.5 * height, clip_side, width, height);
      continue;
    }
    const Box& f = r.faces[q];
    const int side = o.fixed_size ? clip_side : static_cast<int>(std::nearbyint(o.margin * std::max(f.w, f.h)));
    r.crops[q] = square_crop(f.cx(), f.cy(), side, width, height);
  }
  return r;
}

}  // namespace msce::face
