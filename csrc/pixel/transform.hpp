// The fused frame transform: decoded planes (YUV 4:2:0 / NV12 / RGB24) -> optional crop
// -> antialiased resize -> rescale + normalize -> the target layout, one frame at a time,
// written into one slot of a caller-owned output buffer.
#pragma once

#include <cstdint>
#include <vector>

#include "common/frame.hpp"
#include "pixel/pixel_math.hpp"
#include "pixel/resample.hpp"

namespace msce {

enum class Layout : int { kQwen = 0, kNCHW = 1, kNHWC = 2 };
// kBF16: bfloat16 (round to nearest even, as torch's float32 -> bfloat16 cast)
enum class DType : int { kU8 = 0, kF16 = 1, kF32 = 2, kBF16 = 3 };

struct TransformSpec {
  int out_h = 0;  // 0 with out_w = 0: keep the (cropped) source size; only for Frames layouts
  int out_w = 0;
  Interp interp = Interp::kBicubic;
  Layout layout = Layout::kNCHW;
  DType dtype = DType::kU8;
  bool normalize = false;
  // Already in 0..255 units (HF's fused rescale+normalize): y = (x - mean) / std.
  float mean[3] = {0.f, 0.f, 0.f};
  float std[3] = {1.f, 1.f, 1.f};
  px::QwenGeometry qwen{14, 2, 2, 0, 0, 3};  // grid_h/grid_w filled from out_h/out_w
  // Output crop (HF's resize-then-center_crop): resample to resize_h x resize_w, keep rows
  // [crop_y, crop_y + out_h) and columns [crop_x, crop_x + out_w); only kept samples are
  // computed. resize_h = resize_w = 0: no output crop (resample straight to out_h x out_w).
  int resize_h = 0;
  int resize_w = 0;
  int crop_y = 0;
  int crop_x = 0;
  int full_h() const { return resize_h > 0 ? resize_h : out_h; }
  int full_w() const { return resize_w > 0 ? resize_w : out_w; }
  // Two-stage resample (SmolVLM's video processor resizes twice): the (cropped) source is
  // first resampled to pre_h x pre_w and rounded to uint8 as torch does (both passes), and
  // that picture is then the source of the resample above. pre_h = pre_w = 0: one stage.
  int pre_h = 0;
  int pre_w = 0;
  bool two_stage() const { return pre_h > 0; }
  // The first stage as a spec of its own (pre_h x pre_w, packed uint8 RGB, no crop or
  // normalize), and the second: this spec without pre_h / pre_w. CPU, emulator and CUDA
  // paths chain the two the same way, the second reading the first's output as RGB24.
  TransformSpec first_stage() const;
  TransformSpec second_stage() const;

  void validate() const;
  size_t element_size() const {
    return dtype == DType::kU8 ? 1 : (dtype == DType::kF16 || dtype == DType::kBF16 ? 2 : 4);
  }
  // Elements of one output slot (one frame) for the Frames layouts; for kQwen the whole
  // buffer is (slots/temporal * grid_h * grid_w) x row width.
  int64_t buffer_elements(int64_t slots) const;
};

// Integer crop box in display coordinates; w == 0 means the full frame.
struct CropBox {
  int x = 0;
  int y = 0;
  int w = 0;
  int h = 0;
};

// Transforms `src` (cropped to `box`) and writes it into output slot `slot` of `out`.
// Thread-safe: independent calls may run concurrently on disjoint slots.
void transform_frame_cpu(const Frame& src, const CropBox& box, const TransformSpec& spec, void* out,
                         int64_t slot);

// A packed RGB24 frame over `data` (width x height, rows 3 * width bytes apart): the
// first stage's output as the second stage's source.
Frame rgb24_frame(const uint8_t* data, int width, int height);

// Copies slot `from` of a kQwen buffer to slot `to` (temporal padding repeats the last frame).
void copy_qwen_slot(const TransformSpec& spec, void* out, int64_t from, int64_t to);

// IEEE binary16 from float, round to nearest even.
MSCE_HD uint16_t float_to_half(float f);
// bfloat16 bits from float, round to nearest even (NaN stays a quiet NaN), as torch converts.
MSCE_HD uint16_t float_to_bfloat16(float f);

}  // namespace msce

#include "pixel/half.inl"
