#include "pixel/transform_desc.hpp"

#include <cstring>
#include <string>
#include <vector>

#include "common/error.hpp"

namespace msce {
namespace gpu {

FramePlan plan_frame(int width, int height, const CropBox& box_in, const TransformSpec& spec) {
  FramePlan p;
  p.box = box_in;
  if (p.box.w <= 0 || p.box.h <= 0) p.box = CropBox{0, 0, width, height};
  const CropBox& box = p.box;
  if (box.x < 0 || box.y < 0 || box.x + box.w > width || box.y + box.h > height) {
    throw TransformError("crop box (" + std::to_string(box.x) + ", " + std::to_string(box.y) + ", " +
                         std::to_string(box.w) + ", " + std::to_string(box.h) + ") lies outside the " +
                         std::to_string(width) + "x" + std::to_string(height) + " frame");
  }
  if (spec.out_w <= 0 || spec.out_h <= 0) {
    throw TransformError("output size must be resolved before the transform runs");
  }
  if (spec.two_stage()) {  // callers plan spec.first_stage() and spec.second_stage() apart
    throw TransformError("plan_frame takes one stage of a two-stage transform");
  }
  p.hx = cached_resample_axis(box.w, spec.full_w(), spec.crop_x, spec.out_w, spec.interp);
  p.vy = cached_resample_axis(box.h, spec.full_h(), spec.crop_y, spec.out_h, spec.interp);
  const ResampleAxis& hx = *p.hx;
  const ResampleAxis& vy = *p.vy;
  p.h_lo = hx.identity ? 0 : hx.first.front();
  p.h_n = (hx.identity ? box.w : hx.first.back() + hx.count.back()) - p.h_lo;
  p.v_lo = vy.identity ? 0 : vy.first.front();
  p.v_n = (vy.identity ? box.h : vy.first.back() + vy.count.back()) - p.v_lo;
  const int64_t limit = int64_t{1} << 31;
  if (static_cast<int64_t>(p.v_n) * p.h_n >= limit || static_cast<int64_t>(p.v_n) * spec.out_w >= limit ||
      static_cast<int64_t>(spec.out_h) * spec.out_w >= limit) {
    throw TransformError("frame too large for the GPU transform (a pass exceeds 2^31 pixels)");
  }
  p.rgb_bytes = 3 * static_cast<size_t>(p.v_n) * p.h_n;
  p.inter_bytes = hx.identity ? 0 : 3 * static_cast<size_t>(p.v_n) * spec.out_w;
  return p;
}

AxisDesc axis_desc(const ResampleAxis& ax, int lo, int n, const int32_t* first, const int32_t* count,
                   const int16_t* weights) {
  AxisDesc a;
  a.first = first;
  a.count = count;
  a.weights = weights;
  a.taps = ax.taps;
  a.precision = ax.precision;
  a.identity = ax.identity ? 1 : 0;
  a.lo = lo;
  a.n = n;
  a.out = ax.out_size;
  return a;
}

FrameDesc frame_desc(const FramePlan& plan, const Frame& src, const TransformSpec& spec, void* out, int64_t slot,
                     uint8_t* rgb, uint8_t* inter) {
  FrameDesc d{};
  for (int k = 0; k < 3; ++k) {
    d.plane[k] = src.data[k];
    d.pitch[k] = src.linesize[k];
  }
  d.src_layout = static_cast<int32_t>(src.layout);
  d.cc = px::make_color_coeffs(static_cast<int>(src.matrix), src.range == ColorRange::kFull);
  d.x0 = plan.box.x + plan.h_lo;
  d.y0 = plan.box.y + plan.v_lo;
  d.rgb = rgb;
  d.inter = plan.hx->identity ? rgb : inter;
  d.out = out;
  d.slot = slot;
  d.layout = static_cast<int32_t>(spec.layout);
  d.dtype = static_cast<int32_t>(spec.dtype);
  d.normalize = spec.normalize ? 1 : 0;
  for (int c = 0; c < 3; ++c) {
    d.mean[c] = spec.mean[c];
    d.std[c] = spec.std[c];
  }
  d.qwen = spec.qwen;
  return d;
}

PadCopy2D qwen_pad_copy(const TransformSpec& spec, int64_t from, int64_t to, int channel) {
  const px::QwenGeometry& g = spec.qwen;
  const int64_t esz = static_cast<int64_t>(spec.element_size());
  const int64_t rw = px::qwen_row_width(g);
  const int64_t rows = static_cast<int64_t>(g.grid_h) * g.grid_w;  // rows of one temporal patch
  const int64_t run = static_cast<int64_t>(g.patch) * g.patch;     // one channel's patch block
  const int64_t from_gt = from / g.temporal, to_gt = to / g.temporal;
  const int64_t from_ti = from % g.temporal, to_ti = to % g.temporal;
  PadCopy2D c;
  c.src_offset = ((from_gt * rows) * rw + (channel * g.temporal + from_ti) * run) * esz;
  c.dst_offset = ((to_gt * rows) * rw + (channel * g.temporal + to_ti) * run) * esz;
  c.pitch = rw * esz;
  c.width = run * esz;
  c.height = rows;
  return c;
}

void copy_qwen_slot_emulated(const TransformSpec& spec, void* out, int64_t from, int64_t to) {
  char* o = static_cast<char*>(out);
  for (int c = 0; c < spec.qwen.channels; ++c) {
    const PadCopy2D p = qwen_pad_copy(spec, from, to, c);
    for (int64_t r = 0; r < p.height; ++r) {
      std::memmove(o + p.dst_offset + r * p.pitch, o + p.src_offset + r * p.pitch, static_cast<size_t>(p.width));
    }
  }
}

void transform_frame_emulated(const Frame& src, const CropBox& box, const TransformSpec& spec, void* out,
                              int64_t slot) {
  if (spec.two_stage()) {  // as the CUDA transformer chains them: stage 1 into packed RGB, then stage 2
    std::vector<uint8_t> first(static_cast<size_t>(spec.pre_h) * spec.pre_w * 3);
    transform_frame_emulated(src, box, spec.first_stage(), first.data(), 0);
    transform_frame_emulated(rgb24_frame(first.data(), spec.pre_w, spec.pre_h), CropBox{}, spec.second_stage(), out,
                             slot);
    return;
  }
  const FramePlan plan = plan_frame(src.width, src.height, box, spec);
  std::vector<uint8_t> rgb(plan.rgb_bytes), inter(plan.inter_bytes);
  FrameDesc d = frame_desc(plan, src, spec, out, slot, rgb.data(), inter.data());
  const ResampleAxis& hx = *plan.hx;
  const ResampleAxis& vy = *plan.vy;
  d.h = axis_desc(hx, plan.h_lo, plan.h_n, hx.first.data(), hx.count.data(), hx.weights.data());
  d.v = axis_desc(vy, plan.v_lo, plan.v_n, vy.first.data(), vy.count.data(), vy.weights.data());
  for (int64_t i = 0, n = convert_count(d); i < n; ++i) convert_element(d, i);
  for (int64_t i = 0, n = hpass_count(d); i < n; ++i) hpass_element(d, i);
  for (int64_t i = 0, n = vpass_count(d); i < n; ++i) vpass_element(d, i);
}

}  // namespace gpu
}  // namespace msce
