#include "face/hold.hpp"

#include <algorithm>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "common/thread_pool.hpp"

namespace msce::face {

int64_t HeldFrames::bytes() const {
  int64_t total = 0;
  for (const Frame& f : frames) {
    const int chroma_rows = (f.height + 1) / 2;
    switch (f.layout) {
      case PixelLayout::kYUV420P:
        total += static_cast<int64_t>(f.linesize[0]) * f.height +
                 static_cast<int64_t>(f.linesize[1] + f.linesize[2]) * chroma_rows;
        break;
      case PixelLayout::kNV12:
        total += static_cast<int64_t>(f.linesize[0]) * f.height + static_cast<int64_t>(f.linesize[1]) * chroma_rows;
        break;
      case PixelLayout::kRGB24:
        total += static_cast<int64_t>(f.linesize[0]) * f.height;
        break;
    }
  }
  return total;
}

LoadStats decode_and_hold(VideoReader& reader, const std::vector<int64_t>& hold, std::vector<LoadJob>& jobs,
                          int threads, HeldFrames& held) {
  std::vector<int64_t> keep(hold);
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  held.indices.clear();
  held.frames.clear();
  return run_load_jobs(reader, jobs, threads, keep, [&](const Frame& frame) {
    if (std::binary_search(keep.begin(), keep.end(), frame.index)) {
      held.indices.push_back(frame.index);
      held.frames.push_back(frame);  // shares ownership of the planes
    }
  });
}

void run_held_jobs(const HeldFrames& held, std::vector<LoadJob>& jobs, int threads) {
  const int64_t past_held = held.indices.empty() ? 0 : held.indices.back() + 1;
  run_memory_jobs(
      past_held,
      [&](int64_t idx) -> Frame {
        const auto it = std::lower_bound(held.indices.begin(), held.indices.end(), idx);
        if (it == held.indices.end() || *it != idx) {
          throw PlanError("frame " + std::to_string(idx) + " was not held by the decode pass");
        }
        return held.frames[static_cast<size_t>(it - held.indices.begin())];
      },
      jobs, threads);
}

}  // namespace msce::face
