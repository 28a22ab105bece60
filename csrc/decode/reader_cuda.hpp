// NVDEC decoding through FFmpeg's CUDA hwaccel: frames stay in device memory as NV12 and
// go straight to the CUDA transform. Built only with FFmpeg and CUDA (MSCE_HAVE_FFMPEG and
// MSCE_HAVE_CUDA).
//
// Frame i is the i-th frame in presentation order, as for VideoReader: the reader scans the
// packets once, sorts their timestamps and checks the result against the CPU reader's
// metadata (count and timestamps). Any disagreement, and anything this path does not
// handle (no NVDEC on the machine, codec or profile NVDEC cannot decode, 10-bit output,
// rotated video), throws UnsupportedError with the cause, so callers can fall back to CPU
// decoding + GPU transform.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "decode/reader.hpp"

namespace msce {

class NvdecReader {
 public:
  // `meta`: the CPU reader's metadata of the same file (path, frame timestamps, colour).
  // `hardware` = false decodes the same way on the CPU (software decoder, yuv420p host
  // frames): the tests use it to check this reader's indexing and seeking without a GPU.
  NvdecReader(const VideoMetadata& meta, int device, int64_t seek_threshold = 16, bool hardware = true);
  ~NvdecReader();
  NvdecReader(const NvdecReader&) = delete;
  NvdecReader& operator=(const NvdecReader&) = delete;

  // The CUDA stream FFmpeg copies decoded pictures on (0: the legacy default stream).
  // Consumers must order their reads after it.
  std::uintptr_t decode_stream() const;

  // Decodes `indices` (strictly ascending, in range), calling `sink` once per index with a
  // kNV12 frame whose planes are device pointers (software mode: kYUV420P host planes);
  // `keep` holds the picture alive.
  using Sink = std::function<void(const Frame& frame, std::shared_ptr<const void> keep)>;
  void decode(const std::vector<int64_t>& indices, const Sink& sink);

  VideoReader::Stats last_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether libnvcuvid (the driver's decode library) can be loaded here; `why` says why not.
bool nvdec_library_available(std::string* why);

// Whether this FFmpeg build has the CUDA hwaccel and the driver's decode library loads.
// It does not open a device: the CUDA runtime status is checked separately.
bool nvdec_supported(std::string* why);

}  // namespace msce
