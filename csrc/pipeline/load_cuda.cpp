// Decode -> GPU transform (see load_cuda.hpp). The CPU path decodes on this thread (FFmpeg's
// own threads do the work) and stages each frame into pinned memory as it arrives; the
// CUDA transformer uploads and transforms in batches while decoding goes on.
#if defined(MSCE_HAVE_CUDA)

#include "pipeline/load_cuda.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "common/error.hpp"
#include "pixel/transform_cuda.hpp"
#if defined(MSCE_HAVE_FFMPEG)
#include "decode/reader_cuda.hpp"
#endif

namespace msce {

namespace {

using Targets = std::vector<cuda::SlotTarget>;

// The CPU path's validation and grouping (slots_by_index), as device-side slot targets.
std::map<int64_t, Targets> targets_by_index(std::vector<LoadJob>& jobs, int64_t num_frames) {
  std::map<int64_t, Targets> wanted;
  for (const auto& [idx, slots] : slots_by_index(jobs, num_frames)) {
    Targets& out = wanted[idx];
    for (const auto& [j, s] : slots) {
      LoadJob& job = jobs[j];
      cuda::SlotTarget t;
      t.box = job.crops.empty() ? CropBox{} : job.crops[s];
      t.spec = &job.spec;
      t.out = job.out;
      t.slot = s;
      out.push_back(t);
    }
  }
  return wanted;
}

void check_outputs(const std::vector<LoadJob>& jobs, int device) {
  for (const LoadJob& job : jobs) cuda::check_device_pointer(job.out, device, "output tensor");
}

void pad_slots(cuda::Transformer& t, std::vector<LoadJob>& jobs) {
  for (LoadJob& job : jobs) {
    const int64_t n = static_cast<int64_t>(job.indices.size());
    if (job.spec.layout != Layout::kQwen || n == 0) continue;
    for (int64_t s = n; s < job.slots; ++s) t.copy_qwen_slot(job.spec, job.out, n - 1, s);
  }
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// What both loaders do once the last frame is queued: pad the Qwen slots, queue the finish
// (decoder pictures, NVDEC's included, go back to FFmpeg's pool only after the kernels read
// them) and take the reader's counts.
template <class Reader>
LoadStats finish_load(cuda::Transformer& t, std::vector<LoadJob>& jobs, Reader& reader, LoadStats stats,
                      std::chrono::steady_clock::time_point t0) {
  stats.decode_seconds = seconds_since(t0);
  pad_slots(t, jobs);
  t.finish(/*synchronize=*/false);
  const auto rs = reader.last_stats();
  stats.frames_decoded = rs.frames_decoded;
  stats.seeks = rs.seeks;
  stats.total_seconds = seconds_since(t0);
  return stats;
}

}  // namespace

LoadStats run_load_jobs_cuda(VideoReader& reader, std::vector<LoadJob>& jobs, const CudaPlacement& where) {
  const auto t0 = std::chrono::steady_clock::now();
  auto wanted = targets_by_index(jobs, reader.metadata().num_frames);
  check_outputs(jobs, where.device);
  std::vector<int64_t> order;
  order.reserve(wanted.size());
  for (const auto& kv : wanted) order.push_back(kv.first);

  auto t = cuda::acquire_transformer(where.device, where.stream);
  LoadStats stats;
  reader.decode(order, [&](const Frame& frame) {
    const Targets& targets = wanted.at(frame.index);
    t->add(frame, /*on_device=*/false, targets);
    stats.frames_transformed += static_cast<int64_t>(targets.size());
  });
  return finish_load(*t, jobs, reader, stats, t0);
}

#if defined(MSCE_HAVE_FFMPEG)
LoadStats run_load_jobs_nvdec(const VideoMetadata& meta, std::vector<LoadJob>& jobs, const CudaPlacement& where,
                              int64_t seek_threshold) {
  const auto t0 = std::chrono::steady_clock::now();
  auto wanted = targets_by_index(jobs, meta.num_frames);
  check_outputs(jobs, where.device);
  std::vector<int64_t> order;
  order.reserve(wanted.size());
  for (const auto& kv : wanted) order.push_back(kv.first);

  NvdecReader nvdec(meta, where.device, seek_threshold);
  auto t = cuda::acquire_transformer(where.device, where.stream);
  const std::uintptr_t producer = nvdec.decode_stream();
  LoadStats stats;
  nvdec.decode(order, [&](const Frame& frame, std::shared_ptr<const void> keep) {
    const Targets& targets = wanted.at(frame.index);
    t->wait_for(producer);
    t->add(frame, /*on_device=*/true, targets, std::move(keep));
    stats.frames_transformed += static_cast<int64_t>(targets.size());
  });
  return finish_load(*t, jobs, nvdec, stats, t0);
}
#endif

void run_array_jobs_cuda(const uint8_t* frames, bool on_device, int64_t count, int height, int width,
                         std::vector<LoadJob>& jobs, const CudaPlacement& where) {
  auto wanted = targets_by_index(jobs, count);
  check_outputs(jobs, where.device);
  if (on_device && count > 0) cuda::check_device_pointer(frames, where.device, "input frames");
  auto t = cuda::acquire_transformer(where.device, where.stream);
  for (const auto& [idx, targets] : wanted) {
    t->add(rgb24_frame(frames, idx, height, width), on_device, targets);
  }
  pad_slots(*t, jobs);
  t->finish(/*synchronize=*/false);
}

void run_frame_jobs_cuda(const std::vector<Frame>& frames, std::vector<LoadJob>& jobs, const CudaPlacement& where) {
  auto wanted = targets_by_index(jobs, static_cast<int64_t>(frames.size()));
  check_outputs(jobs, where.device);
  auto t = cuda::acquire_transformer(where.device, where.stream);
  for (const auto& [idx, targets] : wanted) t->add(frames[idx], /*on_device=*/false, targets);
  pad_slots(*t, jobs);
  t->finish(/*synchronize=*/false);
}

}  // namespace msce

#endif  // MSCE_HAVE_CUDA
