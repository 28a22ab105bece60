// Streaming decode -> transform: frames flow from the reader to a bounded thread pool that
// writes each one into its output slot(s), so at most a few decoded frames are alive at
// any time, whatever the clip length.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "decode/reader.hpp"
#include "pixel/transform.hpp"

namespace msce {

// One output buffer filled from a list of frame indices (slot s <- indices[s]; indices may
// repeat and need not be sorted). For the Qwen layout, slots past indices.size() up to
// `slots` repeat the last frame (temporal padding).
struct LoadJob {
  std::vector<int64_t> indices;
  std::vector<CropBox> crops;  // one per slot, or empty for full frames
  TransformSpec spec;
  void* out = nullptr;
  int64_t slots = 0;
};

// Output slots that want one source frame: (job, slot) pairs.
using SlotTargets = std::vector<std::pair<size_t, int64_t>>;

// Validates the jobs (spec, buffer, crop count, slot count, index range) and groups their
// output slots by source frame index. Shared by every load path (CPU, CUDA, face hold).
std::map<int64_t, SlotTargets> slots_by_index(const std::vector<LoadJob>& jobs, int64_t num_frames);

// Transforms one frame into every (job, slot) that wants it, on the CPU.
void transform_targets(const Frame& f, const SlotTargets& targets, const std::vector<LoadJob>& jobs);

// Frame `index` of a contiguous (count, height, width, 3) RGB24 array (host or device memory).
Frame rgb24_frame(const uint8_t* frames, int64_t index, int height, int width);

// Advises transparent huge pages for the jobs' output buffers (Linux; advice only).
void advise_huge_pages(const std::vector<LoadJob>& jobs);

// Qwen layout: slots past each job's last frame repeat it (temporal padding).
void pad_qwen_slots(std::vector<LoadJob>& jobs);

struct LoadStats {
  int64_t frames_decoded = 0;
  int64_t frames_transformed = 0;
  int64_t seeks = 0;
  double decode_seconds = 0.0;  // wall time of the decode loop (transform overlaps it)
  double total_seconds = 0.0;
};

// Worker threads for a load: `threads`, or usable_cpus() when `threads` <= 0.
int worker_threads(int threads);

// Called on the decoding thread with every decoded frame (before its transforms are queued).
using FrameHook = std::function<void(const Frame&)>;

// Decodes the union of all jobs' indices and `extra` (indices some hook wants, validated
// against the clip) once, in ascending order, and transforms every frame into every slot
// that wants it on `threads` worker threads (0 = hardware threads); in-flight frames are
// bounded.
LoadStats run_load_jobs(VideoReader& reader, std::vector<LoadJob>& jobs, int threads,
                        const std::vector<int64_t>& extra = {}, const FrameHook& on_frame = {});

// The same for frames already in memory: `frame_at(i)` gives source frame i of `count`.
void run_memory_jobs(int64_t count, const std::function<Frame(int64_t)>& frame_at, std::vector<LoadJob>& jobs,
                     int threads);

// Frames in memory as a contiguous (T, H, W, 3) uint8 RGB array.
void run_array_jobs(const uint8_t* frames, int64_t count, int height, int width, std::vector<LoadJob>& jobs,
                    int threads);

}  // namespace msce
