// A decoded picture as the readers hand it to the transforms, and the pixel enums both
// sides share. Kept apart from the readers so that pixel/ and pipeline/ code does not
// depend on FFmpeg or on decode/.
#pragma once

#include <cstdint>
#include <memory>

namespace msce {

// Layouts the fused transform reads directly. Everything else is converted by swscale
// to kRGB24 (8-bit) inside the reader.
enum class PixelLayout : int { kYUV420P = 0, kNV12 = 1, kRGB24 = 2 };
enum class ColorMatrix : int { kBT601 = 0, kBT709 = 1, kBT2020 = 2 };
enum class ColorRange : int { kLimited = 0, kFull = 1 };

// A decoded frame, already rotated to display orientation. Planes stay valid while
// `owner` is alive: copy the Frame (cheap) to keep it past the sink call.
struct Frame {
  PixelLayout layout = PixelLayout::kYUV420P;
  const uint8_t* data[3] = {nullptr, nullptr, nullptr};  // Y,U,V | Y,UV | RGB
  int linesize[3] = {0, 0, 0};
  int width = 0;
  int height = 0;
  ColorMatrix matrix = ColorMatrix::kBT601;
  ColorRange range = ColorRange::kLimited;
  int64_t index = 0;
  double timestamp = 0.0;
  // The decoder reported damage in this picture (FFmpeg's decode_error_flags or
  // AV_FRAME_FLAG_CORRUPT): it is the decoder's best effort, e.g. with concealed blocks.
  bool damaged = false;
  std::shared_ptr<const void> owner;
};

}  // namespace msce
