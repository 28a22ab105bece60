// Decode once, crop later: for crop="face" the crop boxes are known only after the face has
// been found on a subsample, which needs the whole clip's detections (the smoother looks
// both ways). Instead of decoding twice, one pass runs the small detection jobs as frames
// arrive and holds the planned frames as decoded (their planes copied as they are into one
// reused block of msce's output pool, no colour conversion); the crop jobs then run on the
// held frames through the same fused transform. The motion-aware plan holds a whole clip the
// same way for its analysis and the load that follows.
#pragma once

#include <cstdint>
#include <vector>

#include "decode/reader.hpp"
#include "pipeline/load.hpp"

namespace msce::face {

struct HeldFrames {
  std::vector<int64_t> indices;  // ascending source indices
  std::vector<Frame> frames;     // frames[i] is source frame indices[i]
  int64_t bytes() const;         // memory held by the planes
};

// One decode pass over `hold` and every job's indices: the jobs run on the worker pool as
// frames arrive (like run_load_jobs) and the frames listed in `hold` are kept in `held`.
LoadStats decode_and_hold(VideoReader& reader, const std::vector<int64_t>& hold, std::vector<LoadJob>& jobs,
                          int threads, HeldFrames& held);

// Runs `jobs` over held frames (job indices are source indices, each of them held).
void run_held_jobs(const HeldFrames& held, std::vector<LoadJob>& jobs, int threads);

}  // namespace msce::face
