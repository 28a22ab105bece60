#include "pipeline/load.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "common/cpus.hpp"
#include "common/error.hpp"
#include "common/thread_pool.hpp"

namespace msce {

using Targets = SlotTargets;

std::map<int64_t, SlotTargets> slots_by_index(const std::vector<LoadJob>& jobs, int64_t num_frames) {
  std::map<int64_t, SlotTargets> wanted;
  for (size_t j = 0; j < jobs.size(); ++j) {
    const LoadJob& job = jobs[j];
    job.spec.validate();
    if (!job.out) throw TransformError("output buffer is missing");
    if (!job.crops.empty() && job.crops.size() != job.indices.size()) {
      throw TransformError("got " + std::to_string(job.crops.size()) + " crop boxes for " +
                           std::to_string(job.indices.size()) + " frames");
    }
    if (job.slots < static_cast<int64_t>(job.indices.size())) throw TransformError("output has too few slots");
    for (size_t s = 0; s < job.indices.size(); ++s) {
      const int64_t idx = job.indices[s];
      if (idx < 0 || idx >= num_frames) {
        throw PlanError("frame index " + std::to_string(idx) + " is outside the clip (" + std::to_string(num_frames) +
                        " frames)");
      }
      wanted[idx].emplace_back(j, static_cast<int64_t>(s));
    }
  }
  return wanted;
}

void transform_targets(const Frame& f, const SlotTargets& targets, const std::vector<LoadJob>& jobs) {
  for (const auto& [j, slot] : targets) {
    const LoadJob& job = jobs[j];
    const CropBox box = job.crops.empty() ? CropBox{} : job.crops[slot];
    transform_frame_cpu(f, box, job.spec, job.out, slot);
  }
}

Frame rgb24_frame(const uint8_t* frames, int64_t index, int height, int width) {
  Frame f;
  f.layout = PixelLayout::kRGB24;
  f.data[0] = frames + index * static_cast<int64_t>(height) * width * 3;
  f.linesize[0] = width * 3;
  f.width = width;
  f.height = height;
  f.index = index;
  return f;
}

// Asks the kernel to back the jobs' output buffers with transparent huge pages. Outputs are
// usually fresh (torch.empty, new[]), so the transform's first write to every 4-KiB page is a
// page fault: ~70,000 of them for a 285-MB dense 720p output, about as much CPU time as the
// transform itself. With huge pages it is one fault per 2 MiB. Only advice: ignored where THP
// is off, and the bytes written are the same.
void advise_huge_pages(const std::vector<LoadJob>& jobs) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const uintptr_t huge = uintptr_t{2} << 20;
  for (const LoadJob& job : jobs) {
    const uintptr_t begin = reinterpret_cast<uintptr_t>(job.out);
    const uintptr_t end = begin + static_cast<uintptr_t>(job.spec.buffer_elements(job.slots)) * job.spec.element_size();
    const uintptr_t a = (begin + huge - 1) & ~(huge - 1), b = end & ~(huge - 1);
    if (job.out && b > a) madvise(reinterpret_cast<void*>(a), b - a, MADV_HUGEPAGE);
  }
#else
  (void)jobs;
#endif
}

void pad_qwen_slots(std::vector<LoadJob>& jobs) {
  for (LoadJob& job : jobs) {
    const int64_t n = static_cast<int64_t>(job.indices.size());
    if (job.spec.layout != Layout::kQwen || n == 0) continue;
    for (int64_t s = n; s < job.slots; ++s) copy_qwen_slot(job.spec, job.out, n - 1, s);
  }
}

int worker_threads(int threads) { return threads > 0 ? threads : usable_cpus(); }

LoadStats run_load_jobs(VideoReader& reader, std::vector<LoadJob>& jobs, int threads,
                        const std::vector<int64_t>& extra, const FrameHook& on_frame) {
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t num_frames = reader.metadata().num_frames;
  auto wanted = slots_by_index(jobs, num_frames);
  advise_huge_pages(jobs);
  for (int64_t idx : extra) {
    if (idx < 0 || idx >= num_frames) {
      throw PlanError("frame index " + std::to_string(idx) + " is outside the clip (" + std::to_string(num_frames) +
                      " frames)");
    }
    wanted.try_emplace(idx);  // decoded for the hook, maybe with no job slot
  }
  std::vector<int64_t> order;
  order.reserve(wanted.size());
  for (const auto& kv : wanted) order.push_back(kv.first);

  LoadStats stats;
  const int n = worker_threads(threads);
  {
    // Workers transform while this thread decodes; in-flight frames are bounded.
    BoundedPool pool(n > 1 ? n : 0, 2 * n);
    reader.decode(order, [&](const Frame& frame) {
      if (on_frame) on_frame(frame);
      const SlotTargets* targets = &wanted.at(frame.index);
      if (targets->empty()) return;
      Frame kept = frame;  // shares ownership of the planes
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

void run_memory_jobs(int64_t count, const std::function<Frame(int64_t)>& frame_at, std::vector<LoadJob>& jobs,
                     int threads) {
  const auto wanted = slots_by_index(jobs, count);
  advise_huge_pages(jobs);
  const int n = worker_threads(threads);
  BoundedPool pool(n > 1 ? n : 0, 2 * n);
  for (const auto& [idx, targets] : wanted) {
    const Frame f = frame_at(idx);
    const SlotTargets* t = &targets;
    pool.submit([f, t, &jobs] { transform_targets(f, *t, jobs); });
  }
  pool.wait();
  pad_qwen_slots(jobs);
}

void run_array_jobs(const uint8_t* frames, int64_t count, int height, int width, std::vector<LoadJob>& jobs,
                    int threads) {
  run_memory_jobs(
      count, [&](int64_t idx) { return rgb24_frame(frames, idx, height, width); }, jobs, threads);
}

}  // namespace msce
