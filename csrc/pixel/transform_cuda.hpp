// The fused transform on a CUDA device: the same per-pixel math as transform_cpu.cpp
// (pixel_math.hpp, through the element bodies of transform_kernels.hpp), batched over
// frames, enqueued on a caller-supplied stream, writing into caller-owned device memory.
//
// Frames come either from host memory (CPU decode, numpy arrays: copied into pinned
// staging, then one async H2D copy per batch) or from device memory (NVDEC frames, CUDA
// tensors: read in place). This header has no CUDA types, so plain C++ files can use it;
// everything here exists only in builds with MSCE_HAVE_CUDA.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/frame.hpp"
#include "pixel/transform.hpp"

namespace msce {
namespace cuda {

// Whether the CUDA runtime can run here, and a precise reason when it cannot (no driver,
// driver older than the runtime msce was built with, no device, device index out of range).
struct RuntimeStatus {
  bool ok = false;
  std::string reason;
  int device_count = 0;
  int driver_version = 0;   // e.g. 13000; 0 when no driver is installed
  int runtime_version = 0;  // the cudart msce links statically
};
RuntimeStatus runtime_status();

// One (frame -> output slot) assignment.
struct SlotTarget {
  CropBox box;
  const TransformSpec* spec = nullptr;  // must outlive finish()
  void* out = nullptr;                  // device memory
  int64_t slot = 0;
};

// Where a device pointer lives: cudaPointerGetAttributes' answer, checked against a device.
// Throws TransformError when `ptr` is not device (or managed) memory of `device`.
void check_device_pointer(const void* ptr, int device, const std::string& what);

class Transformer {
 public:
  // `stream` is a cudaStream_t (0 = the legacy default stream) on `device`.
  Transformer(int device, std::uintptr_t stream);
  ~Transformer();
  Transformer(const Transformer&) = delete;
  Transformer& operator=(const Transformer&) = delete;

  int device() const;
  // Later work goes to `stream`, ordered after everything already enqueued.
  void set_stream(std::uintptr_t stream);

  // Flushes and lets go of the stream (its end is kept as an event, so the stream may be
  // destroyed); the next set_stream orders its stream after that event.
  void detach();

  // Orders later work after everything enqueued so far on `producer` (a cudaStream_t, 0 =
  // legacy default stream), e.g. the stream a decoder copies its pictures on.
  void wait_for(std::uintptr_t producer);

  // Queues `frame` for every target. Host frames (on_device = false) are copied into pinned
  // staging before this returns. Device frames are read in place: `keep` holds them alive
  // until the kernels that read them have finished.
  void add(const Frame& frame, bool on_device, const std::vector<SlotTarget>& targets,
           std::shared_ptr<const void> keep = nullptr);

  // Enqueues the pending batch. Returns at once (the work runs on the stream).
  void flush();

  // Qwen temporal padding: slot `to` <- slot `from` (device-to-device, after the pending
  // batch), as copy_qwen_slot does on the host.
  void copy_qwen_slot(const TransformSpec& spec, void* out, int64_t from, int64_t to);

  // Drops queued frames that were not enqueued yet (used when a call fails half-way,
  // before the transformer is reused). Enqueued work is left to finish on the stream.
  void discard();

  // Flushes, then blocks until every frame held through `keep` can be released. With
  // `synchronize`, also waits for all enqueued work (the output is then complete).
  void finish(bool synchronize);

  struct Stats {
    int64_t frames = 0;       // frames added
    int64_t descriptors = 0;  // (frame, slot) pairs transformed
    int64_t batches = 0;
    int64_t bytes_h2d = 0;    // host frames copied to the device (staging uploads)
    int64_t table_uploads = 0;  // resample tables copied (once per geometry)
  };
  Stats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A transformer for `device` from a per-device pool (created on first use, reused by later
// calls so staging buffers and resample tables stay warm). The lease returns it.
std::shared_ptr<Transformer> acquire_transformer(int device, std::uintptr_t stream);

}  // namespace cuda
}  // namespace msce
