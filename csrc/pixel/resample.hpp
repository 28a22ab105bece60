// Fixed-point resampling tables, computed the way torch's antialiased uint8 interpolate
// computes them (align_corners=False, scale = in/out, PIL-style support, weights
// normalized in double, then scaled to int16 at the largest precision that keeps the
// biggest weight below 2^15). Both CPU and CUDA transforms consume these tables.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace msce {

enum class Interp : int { kBicubic = 0, kBilinear = 1 };

struct ResampleAxis {
  int in_size = 0;
  int out_size = 0;
  int taps = 0;        // row stride of `weights`
  int precision = 0;   // fixed-point bits of the weights
  bool identity = false;  // in_size == out_size: the pass is skipped (torch skips it too)
  std::vector<int32_t> first;    // first source sample of each output sample
  std::vector<int32_t> count;    // number of source samples read
  std::vector<int16_t> weights;  // out_size x taps
  // The same weights zero-padded to `taps_padded` (a multiple of 16) per output sample,
  // for SIMD loops that read 16 taps at a time; the extra taps contribute exactly 0.
  int taps_padded = 0;
  std::vector<int16_t> weights_padded;
};

ResampleAxis make_resample_axis(int in_size, int out_size, Interp interp);

// Cached variant: tables are reused across frames and threads.
std::shared_ptr<const ResampleAxis> cached_resample_axis(int in_size, int out_size, Interp interp);

}  // namespace msce
