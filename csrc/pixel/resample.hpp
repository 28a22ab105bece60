// Fixed-point resampling tables, computed the way torch's antialiased uint8 interpolate
// computes them (align_corners=False, scale = in/out, PIL-style support, weights
// normalized in double, then scaled to int16 at the largest precision that keeps the
// biggest weight below 2^15). Both CPU and CUDA transforms consume these tables.
// Filters and their support radius in input samples at scale 1: bilinear 1, bicubic 2
// (a = -0.5), Lanczos 3 (torch's mode="lanczos", which transformers' LANCZOS maps to).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

namespace msce {

enum class Interp : int { kBicubic = 0, kBilinear = 1, kLanczos = 2 };

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
  // Tables of the SIMD horizontal pass (simd_dispatch.hpp, HPassTables): outputs in blocks
  // of 4, taps in `shuffle_pairs` pairs; pair k of block b is read from the 16-byte window at
  // first[4b] + 2 * (k / shuffle_per_window) * shuffle_per_window. For each (block pair,
  // pair, block): a pshufb mask picking the pair's two bytes per output (zero-extended to
  // int16) and the pair's int16 weights per output (0 past the output's count).
  // shuffle_pairs == 0 when 4 consecutive outputs span more than one window (downscales
  // beyond about 4.5x).
  int shuffle_pairs = 0;
  int shuffle_per_window = 0;
  std::vector<uint8_t> shuffle_masks;    // [2 * (out/16 rounded up)][pairs][2][16]
  std::vector<int16_t> shuffle_weights;  // [2 * (out/16 rounded up)][pairs][2][8]
  // Tables of the vertical pass over pair rows (transform_cpu.cpp): pair p holds samples
  // first[0] + 2p and first[0] + 2p + 1. Output i reads pairs [pair_first[i], pair_first[i] +
  // pair_count[i]) with the packed int16 weight pairs (low: the pair's first sample) at
  // pair_weights[i * pair_stride]; zero weights at either end of a filter are left out (a pair
  // less for about half the outputs of 720 -> 336). ring_pairs: the largest untrimmed pair span
  // (what a ring of pair rows must hold); first_monotone: `first` never decreases (torch's
  // tables), so such a ring suffices. Empty for an identity axis.
  std::vector<int32_t> pair_first;
  std::vector<int32_t> pair_count;
  std::vector<int32_t> pair_weights;
  int pair_stride = 0;
  int ring_pairs = 1;
  bool first_monotone = true;
};

ResampleAxis make_resample_axis(int in_size, int out_size, Interp interp);

// Output crop: the tables of outputs [offset, offset + out_size) of a resample from in_size to
// full_size. Each output sample depends only on its own row of the table, so the kept outputs
// equal the corresponding samples of the full resample (resize, then crop) bit for bit; the
// dropped ones are never computed. An identity axis (in_size == full_size) that is cropped
// becomes one tap of weight 1.0 per output, which reproduces the source samples exactly.
ResampleAxis make_resample_axis(int in_size, int full_size, int offset, int out_size, Interp interp);

// Cached variants: tables are reused across frames and threads.
std::shared_ptr<const ResampleAxis> cached_resample_axis(int in_size, int out_size, Interp interp);
std::shared_ptr<const ResampleAxis> cached_resample_axis(int in_size, int full_size, int offset, int out_size,
                                                         Interp interp);

}  // namespace msce
