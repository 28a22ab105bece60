// Host-side geometry of one (frame, target slot) pair for the GPU transform: the crop box
// checked against the frame, the cached resample tables, the source rows/columns the
// passes read and the scratch they need. Shared by the CUDA transformer and the host
// emulator of its kernels (transform_emulate.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "pixel/resample.hpp"
#include "pixel/transform.hpp"
#include "pixel/transform_kernels.hpp"

namespace msce {
namespace gpu {

struct FramePlan {
  CropBox box;
  std::shared_ptr<const ResampleAxis> hx;
  std::shared_ptr<const ResampleAxis> vy;
  int h_lo = 0, h_n = 0;  // source columns read, relative to the box
  int v_lo = 0, v_n = 0;  // source rows read, relative to the box
  size_t rgb_bytes = 0;    // 3 * v_n * h_n
  size_t inter_bytes = 0;  // 3 * v_n * out_w, 0 when the horizontal pass is the identity
};

// Same checks and messages as transform_frame_cpu (crop inside the frame, output size
// resolved). Throws TransformError.
FramePlan plan_frame(int width, int height, const CropBox& box, const TransformSpec& spec);

// AxisDesc over tables at the given addresses (device copies or the host vectors).
AxisDesc axis_desc(const ResampleAxis& ax, int lo, int n, const int32_t* first, const int32_t* count,
                   const int16_t* weights);

// A FrameDesc with source planes, output and scratch filled in; the caller sets h and v.
FrameDesc frame_desc(const FramePlan& plan, const Frame& src, const TransformSpec& spec, void* out, int64_t slot,
                     uint8_t* rgb, uint8_t* inter);

// Qwen temporal padding (slot `to` <- slot `from`) as one 2-D copy per channel: byte offsets
// of the first row, the row pitch, the bytes per row and the number of rows. The CUDA path
// hands these to cudaMemcpy2DAsync; copy_qwen_slot_emulated does the same copy on the host.
struct PadCopy2D {
  int64_t src_offset;
  int64_t dst_offset;
  int64_t pitch;
  int64_t width;
  int64_t height;
};
PadCopy2D qwen_pad_copy(const TransformSpec& spec, int64_t from, int64_t to, int channel);
void copy_qwen_slot_emulated(const TransformSpec& spec, void* out, int64_t from, int64_t to);

// Runs the kernels' element bodies in host loops: the same result as transform_frame_cpu
// (tests compare them bit for bit) through the GPU code path's indexing.
void transform_frame_emulated(const Frame& src, const CropBox& box, const TransformSpec& spec, void* out,
                              int64_t slot);

}  // namespace gpu
}  // namespace msce
