#include "face/hold.hpp"

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "common/error.hpp"
#include "common/thread_pool.hpp"

namespace msce::face {

namespace {

using Targets = SlotTargets;


int pool_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

}  // namespace

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
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t num_frames = reader.metadata().num_frames;
  auto wanted = slots_by_index(jobs, num_frames);
  std::vector<int64_t> keep(hold);
  std::sort(keep.begin(), keep.end());
  keep.erase(std::unique(keep.begin(), keep.end()), keep.end());
  for (int64_t idx : keep) {
    if (idx < 0 || idx >= num_frames) {
      throw PlanError("frame index " + std::to_string(idx) + " is outside the clip (" + std::to_string(num_frames) +
                      " frames)");
    }
    wanted.try_emplace(idx);  // held, maybe with no job slot
  }
  std::vector<int64_t> order;
  order.reserve(wanted.size());
  for (const auto& kv : wanted) order.push_back(kv.first);

  held.indices.clear();
  held.frames.clear();
  LoadStats stats;
  const int n = pool_threads(threads);
  {
    BoundedPool pool(n > 1 ? n : 0, 2 * n);
    reader.decode(order, [&](const Frame& frame) {
      if (std::binary_search(keep.begin(), keep.end(), frame.index)) {
        held.indices.push_back(frame.index);
        held.frames.push_back(frame);  // shares ownership of the planes
      }
      const Targets* targets = &wanted.at(frame.index);
      if (targets->empty()) return;
      Frame kept = frame;
      pool.submit([kept, targets, &jobs] { transform_targets(kept, *targets, jobs); });
      stats.frames_transformed += static_cast<int64_t>(targets->size());
    });
    stats.decode_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    pool.wait();
  }
  pad_qwen_slots(jobs);
  const auto rs = reader.last_stats();
  stats.frames_decoded = rs.frames_decoded;
  stats.seeks = rs.seeks;
  stats.total_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

void run_held_jobs(const HeldFrames& held, std::vector<LoadJob>& jobs, int threads) {
  const auto wanted = slots_by_index(jobs, std::numeric_limits<int64_t>::max());
  const int n = pool_threads(threads);
  BoundedPool pool(n > 1 ? n : 0, 2 * n);
  for (const auto& [idx, targets] : wanted) {
    const auto it = std::lower_bound(held.indices.begin(), held.indices.end(), idx);
    if (it == held.indices.end() || *it != idx) {
      throw PlanError("frame " + std::to_string(idx) + " was not held by the decode pass");
    }
    const Frame& f = held.frames[static_cast<size_t>(it - held.indices.begin())];
    const Targets* t = &targets;
    pool.submit([&f, t, &jobs] { transform_targets(f, *t, jobs); });
  }
  pool.wait();
  pad_qwen_slots(jobs);
}

}  // namespace msce::face
