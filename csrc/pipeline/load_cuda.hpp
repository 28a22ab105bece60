// Decode -> transform with the transform on a CUDA device: the same LoadJob contract as
// load.hpp, with every job's `out` in device memory of `device`, and all work enqueued on
// `stream` (a cudaStream_t; 0 = legacy default stream). Only in builds with MSCE_HAVE_CUDA.
//
// When these calls return, the work is enqueued (and for NVDEC frames, finished reading
// the decoder's pictures); the outputs are complete in stream order, so consumers on the
// same stream need no synchronization.
#pragma once

#include <cstdint>
#include <vector>

#include "decode/reader.hpp"
#include "pipeline/load.hpp"

namespace msce {

struct CudaPlacement {
  int device = 0;
  std::uintptr_t stream = 0;
};

// CPU decode (VideoReader) + GPU transform: frames are staged in pinned memory and copied
// to the device asynchronously, in batches.
LoadStats run_load_jobs_cuda(VideoReader& reader, std::vector<LoadJob>& jobs, const CudaPlacement& where);

#if defined(MSCE_HAVE_FFMPEG)
// NVDEC decode (FFmpeg CUDA hwaccel) + GPU transform: frames never leave the device. Throws
// UnsupportedError naming the cause when NVDEC cannot be used for this file on this machine
// (callers fall back to run_load_jobs_cuda).
LoadStats run_load_jobs_nvdec(const VideoMetadata& meta, std::vector<LoadJob>& jobs, const CudaPlacement& where,
                              int64_t seek_threshold);
#endif

// Frames already in memory, (count, H, W, 3) uint8 RGB, contiguous: in host memory
// (staged + copied) or, with `on_device`, in device memory of `where.device` (read in place).
void run_array_jobs_cuda(const uint8_t* frames, bool on_device, int64_t count, int height, int width,
                         std::vector<LoadJob>& jobs, const CudaPlacement& where);

// Arbitrary host frames (any PixelLayout), for tests and callers with their own decoder.
void run_frame_jobs_cuda(const std::vector<Frame>& frames, std::vector<LoadJob>& jobs, const CudaPlacement& where);

}  // namespace msce
