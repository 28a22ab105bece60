// Frame planning: which frames of a clip to use, from its presentation timestamps only.
// No FFmpeg here: the reader supplies timestamps, the planner returns indices.
#pragma once

#include <cstdint>
#include <vector>

namespace msce {

enum class Role : int { kFrame = 0, kKeyframe = 1, kGap = 2 };

struct PlanResult {
  std::vector<int64_t> indices;   // chronological
  std::vector<double> times;      // requested sampling time of each entry (seconds)
  std::vector<int> roles;         // Role
  std::vector<int> groups;        // keyframe number i, or gap number j (between keyframe j and j+1)
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

// Deterministic permutation of 0..n-1 (Fisher-Yates over SplitMix64 with unbiased
// rejection sampling): the same seed gives the same order on every platform.
std::vector<int64_t> seeded_permutation(int64_t n, uint64_t seed);

// Qwen's smart_resize: sides rounded to multiples of factor with round-half-even, then
// scaled into [min_pixels, max_pixels] keeping the aspect ratio.
void smart_resize(int height, int width, int factor, int64_t min_pixels, int64_t max_pixels, int* out_h,
                  int* out_w);

}  // namespace msce
