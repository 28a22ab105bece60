// Micro-expression spotting from a motion-energy curve, and the motion-aware MSCE plan
// (keyframes as plan_keyframes_with_gaps, gap frames at the motion peaks of each gap).
#pragma once

#include <cstdint>
#include <vector>

#include "select/plan.hpp"

namespace msce {

struct SpotOptions {
  double smooth_s = 0.08;     // centred moving average, seconds (odd number of frames, >= 1)
  double baseline_s = 2.0;    // running-median window of the baseline, seconds
  double k_high = 6.0;        // an event's peak exceeds the baseline by k_high * noise ...
  double k_low = 2.5;         // ... and it lasts while the excess stays above k_low * noise
  double merge_s = 0.2;       // runs this close merge (the onset and offset phases of one event)
  double min_s = 0.1;         // events shorter than this (onset to offset) are dropped
  double max_s = 1.0;         // ... and so are longer ones (micro-expressions last <= 0.5 s)
  double min_peak = 0.0;      // absolute floor on the high threshold, energy units
};

// The stages of the spotting rule, frame by frame.
struct EnergyAnalysis {
  std::vector<float> smoothed;  // moving average of the energy
  std::vector<float> baseline;  // running median of `smoothed`
  std::vector<float> excess;    // smoothed - baseline
  std::vector<float> raw_excess;  // energy - baseline (for the boundaries)
  double noise = 0.0;           // 1.4826 * MAD of `excess` over the clip (floored, see analyze_energy)
  double low = 0.0;             // k_low * noise
  double high = 0.0;            // max(k_high * noise, min_peak)
};

struct Spot {
  int64_t onset = 0;   // last frame before the movement starts
  int64_t apex = 0;    // frame by which half of the event's motion has happened
  int64_t offset = 0;  // frame at which the movement has ended
  double peak = 0.0;   // largest excess, energy units
  double score = 0.0;  // peak / noise
};

// energy[t] is the motion between frames t-1 and t (energy[0] unused); fps converts the
// option times to frames. The noise is floored at 1e-3 of the largest |excess| (and
// 1e-9) so a clean synthetic curve still has finite thresholds.
EnergyAnalysis analyze_energy(const std::vector<float>& energy, double fps, const SpotOptions& options);

// The rule (documented in docs/micro-expressions.md): runs where the smoothed excess
// exceeds `low`, merged across gaps <= merge_s, kept when their peak reaches `high` and
// their length lies in [min_s, max_s]. Boundaries come from the unsmoothed excess: onset =
// (first step above `low`) - 1, offset = last step above `low`, searched within the run
// widened by half the smoothing window. Apex = the frame where the cumulative positive
// excess inside [onset, offset] reaches half its total: for a movement that returns to
// neutral, the rise and the fall carry equal motion, so that is where the face is furthest
// from neutral. Spots are in time order.
std::vector<Spot> spot_events(const std::vector<float>& energy, double fps, const SpotOptions& options);

// Keyframes exactly as plan_keyframes_with_gaps(ts, duration, keyframe_fps, gap_frames); in
// each gap with more than gap_frames frames strictly inside, the same number of frames is
// chosen by motion: first the apex of every spotted event inside the gap (strongest
// first), then the frames of largest smoothed excess above `low`, each at least
// separation_s from the frames already chosen (non-maximum suppression), then, where the
// gap has fewer such peaks than gap_frames, the free frames nearest the uniform positions
// t_a + i (t_b - t_a) / (m + 1). A gap without motion thus gets MSCE's uniform frames.
// `energy` has one value per frame (energy.size() == ts.size()).
PlanResult plan_motion_aware_gaps(const std::vector<double>& ts, double duration, double keyframe_fps,
                                  int gap_frames, const std::vector<float>& energy, double fps,
                                  const SpotOptions& options, double separation_s);

}  // namespace msce
