// Frame planning: which frames of a clip to use, from its presentation timestamps only.
// No FFmpeg here: the reader supplies timestamps, the planner returns indices.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace msce {

enum class Role : int { kFrame = 0, kKeyframe = 1, kGap = 2 };

struct PlanResult {
  std::vector<int64_t> indices;   // chronological
  std::vector<double> times;      // requested sampling time of each entry (seconds)
  std::vector<int> roles;         // Role
  std::vector<int> groups;        // keyframe number i, or gap number j (between keyframe j and j+1)

  // Appends one entry to the four parallel columns.
  void add(int64_t index, double time, Role role, int group) {
    indices.push_back(index);
    times.push_back(time);
    roles.push_back(static_cast<int>(role));
    groups.push_back(group);
  }
};

// Index of the frame whose timestamp is nearest to t (ties go to the earlier frame).
int64_t nearest_frame(const std::vector<double>& timestamps, double t);

// Frames nearest to k / fps for k = 0, 1, ... while k / fps < duration (at least one).
PlanResult plan_uniform(const std::vector<double>& timestamps, double duration, double fps);
// Every frame.
PlanResult plan_dense(const std::vector<double>& timestamps);
// n frames at the centres of n equal segments of the clip: t_k = (k + 0.5) * duration / n.
PlanResult plan_count(const std::vector<double>& timestamps, double duration, int64_t n);
// Keyframes as plan_uniform(keyframe_fps); inside each of the n-1 gaps, up to m frames
// nearest to t_a + i * (t_b - t_a) / (m + 1), i = 1..m, strictly between the two
// keyframes and distinct (a gap holding fewer than m frames contributes all of them).
PlanResult plan_keyframes_with_gaps(const std::vector<double>& timestamps, double duration, double keyframe_fps,
                                    int gap_frames);

// The keyframes `keys` in order, each followed by the frames of its gap (a, b) to the next
// keyframe, tagged Role::kGap and group i: none when gap_frames is 0 or the gap holds no frame,
// every frame strictly inside when it holds at most gap_frames, else what fill(i, a, b, r)
// appends to r (ascending, strictly inside). The gap planners share this walk.
template <class Fill>
PlanResult keyframes_and_gaps(const PlanResult& keys, const std::vector<double>& timestamps, int gap_frames,
                              Fill fill) {
  PlanResult r;
  const std::size_t n = keys.indices.size();
  for (std::size_t i = 0; i < n; ++i) {
    r.add(keys.indices[i], keys.times[i], Role::kKeyframe, static_cast<int>(i));
    if (i + 1 == n) break;
    const int64_t a = keys.indices[i], b = keys.indices[i + 1];
    if (b - a < 2 || gap_frames == 0) continue;  // nothing strictly inside the gap
    if (b - a - 1 <= gap_frames) {
      for (int64_t idx = a + 1; idx < b; ++idx) r.add(idx, timestamps[idx], Role::kGap, static_cast<int>(i));
    } else {
      fill(static_cast<int>(i), a, b, r);
    }
  }
  return r;
}

// Deterministic permutation of 0..n-1 (Fisher-Yates over SplitMix64 with unbiased
// rejection sampling): the same seed gives the same order on every platform.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// Qwen's smart_resize: sides rounded to multiples of factor with round-half-even, then
// scaled into [min_pixels, max_pixels] keeping the aspect ratio.
void smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels, int* out_h,
                  int* out_w);

}  // namespace msce
